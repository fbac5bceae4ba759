//! The HTTP listener of `opsctl run` (`--listen`, default `127.0.0.1:9464`): one axum
//! [`Router`] that parts of opsctl add their routes to ([`router`]); serving it is separate
//! ([`serve`]), so handlers are tested with `oneshot` and no socket.
//!
//! Routes: `/metrics` (Prometheus/OpenMetrics text, [`crate::metrics`]), `/healthz` (200 while
//! the process serves), `/readyz` (200 once a valid manifest set is loaded and the last
//! reconcile pass reached Fly, else 503 saying what is missing), and the approval endpoint
//! ([`approvals`]), present only when an approval token is configured. `opsctl run` merges the
//! GitHub webhook receiver ([`webhook`], `POST /webhooks/github`) when a webhook secret is set.

pub mod approvals;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

/// Everything the routes need.
#[derive(Clone)]
pub struct HttpState {
    /// The approval endpoint's state; `None`: no token configured, endpoint disabled.
    pub approvals: Option<approvals::ApprovalState>,
    /// State directory: `/metrics` reads open incidents and maintenance results from it.
    pub state_dir: Option<PathBuf>,
    /// Manifests directory: `/metrics` evaluates its `HealthSLO`s at scrape time.
    pub manifests: Option<PathBuf>,
}

/// The router with every route enabled by `state`.
pub fn router(state: HttpState) -> Router {
    let state_dir = state.state_dir.clone();
    let manifests = state.manifests.clone();
    let mut router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let dir = state_dir.clone();
                let manifests = manifests.clone();
                async move {
                    let text = tokio::task::spawn_blocking(move || {
                        crate::metrics::global().render(dir.as_deref(), manifests.as_deref())
                    })
                    .await
                    .unwrap_or_default();
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(|| async {
                match crate::metrics::global().ready() {
                    Ok(()) => (StatusCode::OK, "ready\n".to_owned()).into_response(),
                    Err(why) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {why}\n"),
                    )
                        .into_response(),
                }
            }),
        );
    if let Some(a) = state.approvals {
        router = router.merge(approvals::router(a));
    }
    router
}

/// Serve `router` on `listener` until `stop` becomes true.
///
/// # Errors
/// The server failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        })
        .await
}

/// Bind `addr`.
///
/// # Errors
/// The address cannot be bound (in use, not local).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
