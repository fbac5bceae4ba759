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
//! - [`certs`]: TLS certificates per `CertWindow` hostname, from Fly's certificates API and a
//!   direct TLS handshake.
//! - [`slo`]: probe results kept per app, and `HealthSLO` evaluation over them.
//!
//! More in docs/maintenance.md.

pub mod certs;
pub mod fly_view;
pub mod machines;
pub mod postgres;
pub mod redis;
pub mod runner;
pub mod scheduler;
pub mod slo;
pub mod status;

pub use fly_view::ReadOnlyFly;
pub use runner::{AppResult, EnvLookup, Maintenance, process_env};
pub use scheduler::{Manifests, Scheduler, TokioClock};
pub use status::MaintenanceStatus;

use std::path::PathBuf;
use std::sync::Arc;

use opsctl_controllers::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::fly::FlyClient;
use crate::records::RecordStore;
use crate::runtime::clock::Clock;

/// Capacity of the signal channel [`start`] makes when no incident pipeline is given.
const SIGNAL_BUFFER: usize = 1024;

/// Start the maintenance scheduler for `opsctl run`, beside the reconciler: checks read Fly
/// through a [`ReadOnlyFly`] made from `client`, record findings in `store` (the reconciler's,
/// since one process holds the writer lock), load `manifests` before each round, write the
/// status under `state_dir`, and end when `stop` turns true (await the handle).
///
/// `signals` is the incident pipeline's input. `None` (no pipeline wired yet): a task
/// receives them and logs each at DEBUG (findings are already logged and recorded on change).
pub fn start(
    client: FlyClient,
    store: Arc<RecordStore>,
    clock: Arc<dyn Clock>,
    manifests: PathBuf,
    state_dir: PathBuf,
    signals: Option<mpsc::Sender<Signal>>,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let signals = signals.unwrap_or_else(|| {
        let (tx, mut rx) = mpsc::channel::<Signal>(SIGNAL_BUFFER);
        tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                tracing::debug!(fingerprint = %s.fingerprint(), detail = %s.detail, "maintenance signal");
            }
        });
        tx
    });
    let maintenance = Arc::new(Maintenance::new(
        ReadOnlyFly::new(client),
        store,
        true,
        signals,
        clock.clone(),
        process_env(),
    ));
    let seed =
        u64::try_from(clock.now().timestamp_millis()).unwrap_or(1) ^ u64::from(std::process::id());
    let scheduler = Scheduler::new(
        maintenance,
        Manifests::Dir(manifests),
        clock,
        Some(state_dir),
        seed,
    );
    tokio::spawn(scheduler.run(stop))
}
