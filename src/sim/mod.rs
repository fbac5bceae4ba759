//! The Fly simulator: a local, stateful Fly that speaks Fly's wire format on loopback, so the
//! operator's real HTTP client can deploy to it (`opsctl sim serve`, `--fly embedded`, tests).
//!
//! One origin serves all three Fly APIs, as `--fly URL` expects: the Machines REST API under
//! `/v1`, GraphQL at `/graphql` and the releases REST API under `/api/v1`, plus a control API
//! under `/__sim/` ([`control`]). Bodies are the shared [`crate::fly::wire`] types.
//!
//! Behaviour comes from a [`Scenario`] (YAML, see `docs/simulator.md`): apps, machines,
//! releases, certificates, log lines, how each image behaves (`healthy`, `fails-checks`,
//! `crash-loop`, `exits`, `slow-start`), how release commands end (one-shot machines, see
//! [`machine::one_shot`]), Fly's rate limits and scripted faults. Time is
//! virtual ([`clock`]): transitions (`replacing` → `started`, checks empty → passing) happen at
//! virtual instants and are computed lazily on every access, so no background task runs and
//! `POST /__sim/advance` replaces sleeping in tests. Only rate-limit buckets, `wait`, and the
//! delays of `latency` and `createTimesOutButSucceeds` faults run on real (tokio) time.
//!
//! Not simulated (yet): volumes, exec, secrets, IP assignments, GraphQL certificates. The
//! simulator never imports the Fly client, and the client never imports it.
//!
//! Map: [`scenario`] (the file format) → [`state`] ([`SimState`], the shared handle) →
//! [`world`] (apps, releases) → [`machine`] (one machine's life); handlers in [`machines`],
//! [`metadata`], [`leases`], [`certificates`], [`logs`], [`releases`], [`registry`] (the image registry), [`control`]; every Fly
//! route passes [`auth`] (request counts, token check), [`faults`] and [`limits`] (Fly's rate
//! limits); [`error`] (Fly's error bodies).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use opsctl::sim::{Scenario, serve};
//! let sim = serve(Scenario::lowendinsight_default(), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("Fly at {}", sim.base_url()); // give this to `--fly`
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod certificates;
pub mod checks;
pub mod clock;
pub mod control;
pub mod error;
pub mod faults;
pub mod ids;
pub mod leases;
pub mod limits;
pub mod logs;
pub mod machine;
pub mod machines;
pub mod metadata;
pub mod registry;
pub mod releases;
pub mod scenario;
pub mod signals;
pub mod state;
pub mod world;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use scenario::{ImageBehavior, Scenario, ScenarioError};
pub use state::{LoggedRequest, REQUEST_LOG_CAPACITY, RequestCounts, SimState};

/// How long [`SimHandle::shutdown`] lets in-flight requests (a blocked `wait`) finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The whole simulator as an axum router: Fly's APIs plus `/__sim/`. Unknown paths answer
/// 404 `{"error":"not found"}`, a method a route does not serve 405 `{"error":"method not
/// allowed"}`; every Fly API answer carries a fresh `fly-request-id` ([`auth::fly_response`]).
pub fn router(state: SimState) -> Router {
    Router::new()
        .merge(machines::routes(&state))
        .merge(metadata::routes(&state))
        .merge(leases::routes(&state))
        .merge(certificates::routes(&state))
        .merge(logs::routes(&state))
        .merge(releases::routes(&state))
        .merge(registry::routes())
        .merge(control::routes())
        .fallback(auth::unmatched)
        .layer(axum::middleware::from_fn(auth::fly_response))
        .with_state(state)
}

/// A running simulator. Dropping it stops the server at once; [`SimHandle::shutdown`] stops it
/// gracefully.
#[derive(Debug)]
pub struct SimHandle {
    /// The bound address (the real port when asked for port 0).
    pub addr: SocketAddr,
    state: SimState,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// `http://ADDR`, the value for `--fly`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The simulator's state, to advance the clock, change images or read request counts
    /// in-process.
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Stops accepting connections, lets in-flight requests finish for up to 2 s, then stops.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        tracing::info!(addr = %self.addr, "fly simulator stopped");
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `addr` (port 0 picks a free port), spawns the server on the current tokio runtime and
/// returns at once.
///
/// # Errors
/// The bind error (address in use, permission denied, …).
pub async fn serve(scenario: Scenario, addr: SocketAddr) -> std::io::Result<SimHandle> {
    let state = SimState::new(scenario);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(state.clone());
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(error) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!(error = %error, "fly simulator server stopped with an error");
        }
    });
    tracing::info!(addr = %addr, "fly simulator listening");
    Ok(SimHandle {
        addr,
        state,
        stop: Some(stop),
        task: Some(task),
    })
}
