//! The HTTP listener of `opsctl run` (`--listen`, default `127.0.0.1:9464`): one axum
//! [`Router`] that parts of opsctl add their routes to ([`router`]); serving it is separate
//! ([`serve`]), so handlers are tested with `oneshot` and no socket.
//!
//! Routes so far: the approval endpoint ([`approvals`]), present only when an approval token
//! is configured.

pub mod approvals;

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::watch;

/// Everything the routes need.
#[derive(Clone)]
pub struct HttpState {
    /// The approval endpoint's state; `None`: no token configured, endpoint disabled.
    pub approvals: Option<approvals::ApprovalState>,
}

/// The router with every route enabled by `state`.
pub fn router(state: HttpState) -> Router {
    let mut router = Router::new();
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
