//! The maintenance pipeline's checks (DESIGN.md §5 "Maintenance (periodic)", issue #6):
//! read-only observations of the real services, whose findings become signals for the incident
//! pipeline. Each check is a function the scheduler calls; none of them mutates anything.
//!
//! - [`certs`]: TLS certificates per `CertWindow` hostname, from Fly's certificates API and a
//!   direct TLS handshake.
//! - [`slo`]: probe results kept per app, and `HealthSLO` evaluation over them.

pub mod certs;
pub mod slo;
