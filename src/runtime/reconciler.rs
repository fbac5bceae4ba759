//! `opsctl run`: the long-running reconciler.
//!
//! Level-triggered: every pass loads the manifests, observes Fly and deploys whatever drifted,
//! so a missed event costs latency, never correctness. A pass runs at start-up, when the
//! manifests checkout gets a new commit (noticed through a file-system watch within
//! milliseconds), and every `resync` interval. An invalid manifest set is rejected whole and
//! reported; the reconciler keeps acting on the last valid set. A stop request (SIGINT/SIGTERM)
//! ends the loop between steps: a running rollout stops before its next batch.
//!
//! Not here yet: the work queue, adaptive polling, metrics and HA (issue #8).

use std::path::PathBuf;
use std::time::Duration;

use opsctl_crds::{ManifestSet, load_dir};
use tokio::sync::watch;
use tracing::Instrument;

use crate::records::Trigger;
use crate::runtime::deploy::{Deployer, Outcome};
use crate::runtime::git;

/// Debounce for bursts of file events (a commit writes several files).
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The reconciler's configuration and state.
pub struct Reconciler {
    /// Manifests directory (inside a git checkout for commit triggers).
    pub manifests: PathBuf,
    /// Runs the deploys.
    pub deployer: Deployer,
    /// Full pass at least this often.
    pub resync: Duration,
    last_valid: Option<ManifestSet>,
    last_commit: Option<String>,
}

impl Reconciler {
    /// A reconciler over `manifests`.
    pub fn new(manifests: PathBuf, deployer: Deployer, resync: Duration) -> Self {
        Self {
            manifests,
            deployer,
            resync,
            last_valid: None,
            last_commit: None,
        }
    }

    /// Run until `stop` becomes true.
    ///
    /// # Errors
    /// When the file-system watch cannot be set up.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut paths = vec![self.manifests.clone()];
        if let Some(dir) = git::git_dir(&self.manifests).await {
            paths.push(dir);
        } else {
            tracing::warn!(manifests = %self.manifests.display(), "not a git checkout: reacting to file changes, records carry no commit");
        }
        let (_watcher, mut events) = git::watch(&paths)?;
        self.last_commit = git::head_commit(&self.manifests).await;
        tracing::info!(manifests = %self.manifests.display(), commit = self.last_commit.as_deref().unwrap_or("-"), "reconciler started");
        self.pass("startup").await;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                Some(()) = events.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                    let head = git::head_commit(&self.manifests).await;
                    if head != self.last_commit {
                        tracing::info!(commit = head.as_deref().unwrap_or("-"), "new commit");
                        self.last_commit = head;
                        self.pass("commit").await;
                    } else if head.is_none() {
                        self.pass("change").await;
                    }
                }
                _ = tokio::time::sleep(self.resync) => self.pass("resync").await,
            }
            if *stop.borrow() {
                break;
            }
        }
        tracing::info!("reconciler stopped");
        Ok(())
    }

    /// One level-triggered pass over every app.
    async fn pass(&mut self, trigger: &str) {
        match load_dir(&self.manifests) {
            Ok(set) => self.last_valid = Some(set),
            Err(e) => {
                for d in &e.diagnostics {
                    tracing::error!(trigger, "invalid manifest: {d}");
                }
                tracing::error!(
                    trigger,
                    errors = e.diagnostics.len(),
                    "manifest set rejected whole; acting on the last valid set"
                );
            }
        }
        let Some(set) = self.last_valid.clone() else {
            tracing::warn!("no valid manifest set yet; nothing to reconcile");
            return;
        };
        for app in &set.apps {
            if *self.deployer.stop.borrow() {
                return;
            }
            let span = tracing::info_span!("reconcile", app = %app.app_name(), trigger, revision = self.last_commit.as_deref().unwrap_or("-"));
            let deployer = &self.deployer;
            let commit = self.last_commit.clone();
            async move {
                match deployer.deploy(app, Trigger::Reconcile, commit).await {
                    Ok(Outcome::NothingToDo(d)) if d.is_empty() => tracing::debug!("in sync"),
                    Ok(Outcome::NothingToDo(d)) => {
                        tracing::warn!(changes = d.changes.len(), "drift that is not applied automatically (scaling)")
                    }
                    Ok(Outcome::Blocked { reason }) => tracing::warn!("{reason}"),
                    Ok(Outcome::Deployed(rec)) => {
                        tracing::info!(record = %rec.id, status = rec.status.as_str(), "deploy recorded")
                    }
                    Err(e) => tracing::error!(error = %e, cause = %error_chain(&e), "reconcile failed"),
                }
            }
            .instrument(span)
            .await;
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![];
    let mut cur = e.source();
    while let Some(c) = cur {
        parts.push(c.to_string());
        cur = c.source();
    }
    parts.join(": ")
}
