//! `opsctl`: a GitOps reconciling operator for apps on Fly.io (see `DESIGN.md` in the shared
//! design folder and `docs/architecture.md`).
//!
//! This crate is the I/O side. Decisions are made by the pure `opsctl-controllers` crate from
//! manifests loaded by `opsctl-crds`; this crate observes Fly, calls the controllers, records
//! each intent, acts, and feeds the result back.
//!
//! Map (start with [`cli`], then [`runtime`]):
//! - [`cli`]: one module per subcommand and the one error renderer.
//! - [`runtime`]: the rollout executor and the long-running reconciler (`opsctl run`).
//! - [`fly`]: the Fly client and the [`fly::wire`] types it shares with the simulator.
//! - [`maintenance`]: the periodic read-only checks (health, machines, PostgreSQL, Redis, Oban,
//!   cost), their scheduler and status.
//! - [`sim`]: the local Fly simulator (`opsctl sim serve`, `--fly embedded`).
//! - [`incident`]: the incident pipeline (classify, diagnose, respond, postmortem).
//! - [`probes`]: external probes (HTTP) the deploy's HealthCheck stage runs.
//! - [`records`]: the append-only, crash-safe record store (deploy records).
//! - [`secret`]: the `Secret` newtype that never prints its value.

pub mod cli;
pub mod drain;
pub mod fly;
pub mod governance;
pub mod http;
pub mod incident;
pub mod maintenance;
pub mod metrics;
pub mod notify;
pub mod precheck;
pub mod probes;
pub mod records;
pub mod runtime;
pub mod secret;
pub mod sim;
