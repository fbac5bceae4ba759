//! The reconciler's live state, shared with the HTTP listener: `GET /status` serves
//! [`StatusBoard::snapshot`], `opsctl status --server` reads it, `/readyz` reads the role and
//! `/metrics` the queue depth.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::queue::WorkQueue;
use super::reconciler::{Key, Pace};

/// What the reconciler last did with one app (`GET /status`).
#[derive(Debug, Clone, Serialize)]
pub struct AppStatus {
    /// Fly app name.
    pub app: String,
    /// When its last reconcile finished, UTC (`None`: not reconciled yet).
    pub last_reconcile: Option<DateTime<Utc>>,
    /// `ok`, `error`, `waiting`, `blocked` or `denied` (as `opsctl_reconcile_total`).
    pub result: Option<String>,
    /// When the next reconcile is due, UTC (a commit brings it forward).
    pub next_reconcile: Option<DateTime<Utc>>,
    /// Why that soon.
    pub pace: Pace,
    /// Consecutive failed reconciles (0 after a success).
    pub consecutive_failures: u32,
    /// The last failure, when the last reconcile failed (error chain; no secrets: Fly errors
    /// carry no token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the board holds; the reconciler writes it under [`StatusBoard`]'s lock.
#[derive(Default)]
pub(crate) struct Board {
    pub(crate) role: String,
    pub(crate) running: bool,
    pub(crate) workers: usize,
    pub(crate) commit: Option<String>,
    pub(crate) apps: BTreeMap<String, AppStatus>,
    pub(crate) queue: Option<Arc<WorkQueue<Key>>>,
}

/// The live state of the reconciler, shared with the HTTP listener (`GET /status`). Cheap
/// to share behind an `Arc`; every method takes a short lock.
pub struct StatusBoard {
    state: Mutex<Board>,
}

impl StatusBoard {
    /// An empty board for a replica with `role` (`single`: no shared store; `leader`,
    /// `standby`: replicated with `--store postgres://…`).
    pub fn new(role: &str) -> Self {
        Self {
            state: Mutex::new(Board {
                role: role.to_owned(),
                ..Board::default()
            }),
        }
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Board> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Set the replica's role (`single`, `leader`, `standby`).
    pub fn set_role(&self, role: &str) {
        role.clone_into(&mut self.lock().role);
    }

    /// The replica's role: `single`, `leader` or `standby`.
    pub fn role(&self) -> String {
        self.lock().role.clone()
    }

    /// Keys ready in the reconciler's queue (0 while no reconciler runs).
    pub fn queue_depth(&self) -> usize {
        let queue = self.lock().queue.clone();
        queue.map_or(0, |q| q.depth())
    }

    /// Whether some app's last reconcile failed.
    pub(crate) fn any_failing(&self) -> bool {
        self.lock()
            .apps
            .values()
            .any(|a| a.consecutive_failures > 0)
    }

    /// Apps' statuses, by name.
    pub fn apps(&self) -> Vec<AppStatus> {
        self.lock().apps.values().cloned().collect()
    }

    /// The board as JSON: `{"kind":"reconciler","role":"single"|"leader"|"standby",
    /// "running":bool,"workers":N,"commit":sha|null,"queue_depth":N,"apps":[AppStatus…]}`
    /// (times RFC 3339 UTC).
    pub fn snapshot(&self) -> serde_json::Value {
        let depth = self.queue_depth();
        let b = self.lock();
        serde_json::json!({
            "kind": "reconciler",
            "role": b.role,
            "running": b.running,
            "workers": b.workers,
            "commit": b.commit,
            "queue_depth": depth,
            "apps": b.apps.values().collect::<Vec<_>>(),
        })
    }
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new("single")
    }
}
