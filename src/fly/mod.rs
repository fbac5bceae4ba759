//! Talking to Fly: the HTTP client ([`client`], [`releases`]), its transport (rate limits,
//! retries; `transport`), errors ([`error`]), the image registry check before a rollback
//! ([`registry`]), the wire types it shares with the simulator ([`wire`]), the agent role every
//! call is checked against ([`role`]), and the conversion of what Fly reports into domain
//! observations ([`observe`]).

pub mod certificates;
pub mod client;
pub mod error;
pub mod observe;
pub mod registry;
pub mod releases;
pub mod role;
pub(crate) mod transport;
pub mod wire;

pub use client::{Endpoints, FlyClient, MachineAction};
pub use error::{FlyError, FlyErrorKind};
pub use role::{DeniedCall, RoleGuard};
