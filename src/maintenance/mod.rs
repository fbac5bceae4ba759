//! The maintenance pipeline (DESIGN.md §5 "Maintenance"; the ADR's maintenance table, issue
//! #6): periodic, read-only checks of every `FlyApp` — app health, machine status, PostgreSQL
//! connections, Redis, Oban queue depth, cost — whose findings become signals for the incident
//! pipeline and `Check` records. It never changes anything: Fly is reached through
//! [`ReadOnlyFly`], PostgreSQL through a read-only session, Redis with `PING` only.
//!
//! Map:
//! - [`scheduler`]: when each check runs (interval + jitter, or cron), no pile-up, status.
//! - [`runner`]: one run of one check over every app: observe, judge
//!   (`opsctl_controllers::maintenance`), send signals, record findings on change.
//! - [`fly_view`]: the read-only view of the Fly client.
//! - [`machines`]: Fly's machine list → the judges' views (autostop, last stop, run time).
//! - [`postgres`], [`redis`]: the dependency reads.
//! - [`status`]: the serialisable status section (`opsctl maintenance status`).
//!
//! The TLS certificate and SLO checks live beside these (`certs`, `slo`, another issue).
//! More in docs/maintenance.md.

pub mod fly_view;
pub mod machines;
pub mod postgres;
pub mod redis;
pub mod runner;
pub mod scheduler;
pub mod status;

pub use fly_view::ReadOnlyFly;
pub use runner::{AppResult, EnvLookup, Maintenance, process_env};
pub use scheduler::{Manifests, Scheduler, TokioClock};
pub use status::MaintenanceStatus;
