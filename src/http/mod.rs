//! The HTTP listener of `opsctl run` (`--listen`, default `127.0.0.1:9464`): one axum
//! [`Router`] that parts of opsctl add their routes to ([`router`]); serving it is separate
//! ([`serve`]), so handlers are tested with `oneshot` and no socket.
//!
//! Routes: `/metrics` (Prometheus/OpenMetrics text, [`crate::metrics`]), `/healthz` (200 while
//! the process serves), `/readyz` (200 once a valid manifest set is loaded and the last
//! reconcile pass reached Fly, else 503 saying what is missing; always 503 on a standby
//! replica, so a load balancer sends approvals and webhooks to the leader), `/status` (the
//! reconciler's live state as JSON, [`crate::runtime::reconciler::StatusBoard::snapshot`];
//! `opsctl status` reads it), and the approval endpoint ([`approvals`]), present only when an
//! approval token is configured. `opsctl run` merges the GitHub webhook receiver
//! ([`webhook`], `POST /webhooks/github`) when a webhook secret is set.

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
    /// The reconciler's live state: `/status` serves it, `/metrics` reads the queue depth
    /// from it. `None`: `/status` answers 404.
    pub reconciler: Option<std::sync::Arc<crate::runtime::reconciler::StatusBoard>>,
}

/// The router with every route enabled by `state`.
pub fn router(state: HttpState) -> Router {
    let state_dir = state.state_dir.clone();
    let manifests = state.manifests.clone();
    let board = state.reconciler.clone();
    let status_board = state.reconciler.clone();
    let ready_board = state.reconciler.clone();
    let mut router = Router::new()
        .route(
            "/metrics",
            get(move || {
                let dir = state_dir.clone();
                let manifests = manifests.clone();
                let board = board.clone();
                async move {
                    if let Some(b) = &board {
                        crate::metrics::global().set_workqueue_depth("deploy", b.queue_depth());
                    }
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
            "/status",
            get(move || {
                let board = status_board.clone();
                async move {
                    match board {
                        Some(b) => axum::Json(b.snapshot()).into_response(),
                        None => (StatusCode::NOT_FOUND, "no reconciler in this process\n")
                            .into_response(),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || async move {
                if ready_board.as_ref().is_some_and(|b| b.role() == "standby") {
                    // Out of a load balancer's rotation: approvals and webhooks go to the
                    // leader, the one replica that acts.
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "not ready: standby (another replica holds the lease and reconciles; this one takes over when the lease expires)\n".to_owned(),
                    )
                        .into_response();
                }
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
