//! Talking to Fly: the HTTP client ([`client`]), the wire types it shares with the simulator
//! ([`wire`]), and the conversion of what Fly reports into domain observations ([`observe`]).

pub mod client;
pub mod observe;
pub mod wire;

pub use client::{Endpoints, FlyClient, FlyError, FlyErrorKind};
