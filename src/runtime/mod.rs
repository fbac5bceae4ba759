//! The runtime: drives the pure controllers against Fly.
//!
//! - [`clock`]: the injected clock (every decision's `now`).
//! - [`deploy`]: the rollout executor (observe → plan → record intent → act → judge → …).
//! - [`reconciler`]: `opsctl run`, the long-running loop that reacts to git commits.
//! - [`git`]: reading the manifests checkout's HEAD and watching it for commits.
//! - [`remote`]: `run --git-url`: opsctl's own clone of a remote, fetched on an interval or
//!   at once on a GitHub webhook.
//! - [`leader`]: leader election among replicas sharing a PostgreSQL store.

pub mod clock;
pub mod deploy;
pub mod git;
pub mod leader;
pub mod queue;
pub mod reconciler;
pub mod remote;
pub mod status_board;
