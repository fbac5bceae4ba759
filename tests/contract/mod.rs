//! Support for the contract tests (tests/contract_openapi.rs, tests/wire_examples.rs): the
//! Machines OpenAPI spec as a validator ([`openapi`]), the GraphQL schema as a query and
//! response checker ([`graphql`]), Fly's documented example bodies ([`examples`]) and a
//! recording simulator ([`recorder`]). Each test file uses part of it.
#![allow(dead_code)]

pub mod examples;
pub mod graphql;
pub mod openapi;
pub mod recorder;
