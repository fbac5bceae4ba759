//! `opsctl run`: the long-running reconciler.
//!
//! Level-triggered: every pass loads the manifests, observes Fly and deploys whatever drifted,
//! so a missed event costs latency, never correctness. A pass runs at start-up, when the
//! manifests checkout gets a new commit (noticed through a file-system watch within
//! milliseconds), and every `resync` interval. An invalid manifest set is rejected whole and
//! reported; the reconciler keeps acting on the last valid set. A stop request (SIGINT/SIGTERM)
//! ends the loop between steps: a running rollout stops before its next batch.
//!
//! Every deploy passes governance first ([`crate::governance::governed_deploy`]): a gated plan
//! is queued as a pending approval, and while any app waits the reconciler passes again every
//! `approval_poll` to notice `opsctl approve` (approvals are read from the records each pass).
//!
//! Not here yet: the work queue, adaptive polling, metrics and HA (issue #8).

use std::path::PathBuf;
use std::time::Duration;

use opsctl_crds::{ManifestSet, load_dir, load_files};
use tokio::sync::watch;
use tracing::Instrument;

use crate::governance::{Governed, governed_deploy};
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
    /// Where finished deploys are handed to the incident pipeline (`opsctl run` sets it).
    pub incidents: Option<tokio::sync::mpsc::Sender<opsctl_controllers::signal::Signal>>,
    /// How long after a deploy its health is judged for the incident hand-off.
    pub incident_settle: Duration,
    /// While some app waits for approval, pass again this often (default 5 s; each pass observes
    /// Fly, so this is a few reads per app every 5 s while a human decides).
    pub approval_poll: Duration,
    waiting: bool,
    last_valid: Option<ManifestSet>,
    last_commit: Option<String>,
    /// The last pass failed; `retry_in` is the current backoff.
    failing: bool,
    retry_in: Duration,
    /// Groups seen on several images with no deploy in flight (BUG-08, `single_image_per_group`).
    mixed: opsctl_controllers::rollout::mixed::MixedWatch,
}

/// First retry after a failed pass; doubles up to the resync interval.
const RETRY_FIRST: Duration = Duration::from_secs(5);

impl Reconciler {
    /// A reconciler over `manifests`.
    pub fn new(manifests: PathBuf, deployer: Deployer, resync: Duration) -> Self {
        Self {
            manifests,
            deployer,
            resync,
            incidents: None,
            incident_settle: Duration::from_secs(30),
            approval_poll: Duration::from_secs(5),
            waiting: false,
            last_valid: None,
            last_commit: None,
            failing: false,
            retry_in: RETRY_FIRST,
            mixed: Default::default(),
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
        let ok = self.pass("startup").await;
        let mut next = self.after_pass(ok);
        loop {
            let trigger = tokio::select! {
                _ = stop.changed() => break,
                Some(()) = events.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                    let head = git::head_commit(&self.manifests).await;
                    if head.is_some() && head == self.last_commit {
                        continue; // a change in the checkout that is not a new commit
                    }
                    if head != self.last_commit {
                        tracing::info!(commit = head.as_deref().unwrap_or("-"), "new commit");
                    }
                    self.last_commit = head;
                    if self.last_commit.is_some() { "commit" } else { "change" }
                }
                _ = tokio::time::sleep_until(next) => if self.failing { "retry" } else if self.waiting { "approval" } else { "resync" },
            };
            let ok = self.pass(trigger).await;
            next = self.after_pass(ok);
            if *stop.borrow() {
                break;
            }
        }
        tracing::info!("reconciler stopped");
        Ok(())
    }

    /// When the next timed pass is due: after `resync`, or sooner (with doubling backoff)
    /// when this pass failed, so a commit that met an unreachable Fly is not forgotten.
    fn after_pass(&mut self, ok: bool) -> tokio::time::Instant {
        self.failing = !ok;
        let wait = if ok {
            self.retry_in = RETRY_FIRST;
            if self.waiting {
                self.approval_poll.min(self.resync)
            } else {
                self.resync
            }
        } else {
            let wait = self.retry_in.min(self.resync);
            self.retry_in = (self.retry_in * 2).min(self.resync);
            wait
        };
        tokio::time::Instant::now() + wait
    }

    /// The manifests to act on: those of the checked-out commit when the directory is in a
    /// git checkout (never uncommitted edits), else the files as they are.
    async fn load(&self) -> Result<ManifestSet, opsctl_crds::LoadError> {
        if let Some(commit) = &self.last_commit {
            match git::committed_files(&self.manifests, commit).await {
                Ok(files) => return load_files(&files),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the committed manifests failed; using the working tree")
                }
            }
        }
        load_dir(&self.manifests)
    }

    /// One level-triggered pass over every app; `false` when something failed and the pass
    /// should be retried soon.
    async fn pass(&mut self, trigger: &str) -> bool {
        let mut ok = true;
        self.waiting = false;
        match self.load().await {
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
            return true;
        };
        let metrics = crate::metrics::global();
        metrics.set_manifests_loaded();
        for app in &set.apps {
            if *self.deployer.stop.borrow() {
                return ok;
            }
            let span = tracing::info_span!("reconcile", app = %app.app_name(), trigger, revision = self.last_commit.as_deref().unwrap_or("-"));
            let deployer = &self.deployer;
            let incidents = self.incidents.clone();
            let settle = self.incident_settle;
            let commit = self.last_commit.clone();
            let set = &set;
            let waiting = &mut self.waiting;
            let started = std::time::Instant::now();
            let name = app.app_name();
            let mut seen_mixed = None;
            let mixed_seen = &mut seen_mixed;
            let app_ok = async move {
                let outcome = match governed_deploy(deployer, set, app, Trigger::Reconcile, commit).await {
                    Ok(Governed::Ran { outcome, .. }) => Ok(outcome),
                    Ok(Governed::Waiting { approval, created, rule, .. }) => {
                        *waiting = true;
                        if !created {
                            tracing::debug!(%approval, %rule, "still waiting for approval");
                        }
                        metrics.set_drift(name, true);
                        return (true, "waiting");
                    }
                    Ok(Governed::Denied { rule, why, .. }) => {
                        tracing::warn!(%rule, "not deployed: {why}");
                        metrics.set_drift(name, true);
                        return (true, "denied");
                    }
                    Ok(Governed::Expired { approval, .. }) => {
                        tracing::debug!(%approval, "approval expired; nothing runs until the plan changes");
                        metrics.set_drift(name, true);
                        return (true, "waiting");
                    }
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok(Outcome::NothingToDo(d)) if d.is_empty() => {
                        *mixed_seen = Some(Default::default());
                        tracing::debug!("in sync");
                        metrics.set_drift(name, false);
                        (true, "ok")
                    }
                    Ok(Outcome::NothingToDo(d)) => {
                        *mixed_seen = Some(crate::runtime::deploy::mixed_of(&d));
                        tracing::warn!(changes = d.changes.len(), "drift that is not applied automatically (scaling)");
                        metrics.set_drift(name, true);
                        (true, "ok")
                    }
                    Ok(Outcome::Blocked { reason }) => {
                        tracing::warn!("{reason}");
                        metrics.set_drift(name, true);
                        (true, "blocked")
                    }
                    Ok(Outcome::Deployed(rec)) => {
                        tracing::info!(record = %rec.id, status = rec.status.as_str(), "deploy recorded");
                        metrics.deployed(name, rec.status.as_str());
                        metrics.set_drift(name, rec.status != crate::records::DeployStatus::Succeeded);
                        if let Some(tx) = incidents {
                            crate::incident::hand_off(deployer.client.clone(), deployer.clock.clone(), *rec, tx, settle);
                        }
                        (true, "ok")
                    }
                    Err(e) => {
                        tracing::error!(error = %e, cause = %error_chain(&e), "reconcile failed; retrying soon");
                        (false, "error")
                    }
                }
            }
            .instrument(span)
            .await;
            metrics.reconciled("deploy", app_ok.1, started.elapsed().as_secs_f64());
            ok &= app_ok.0;
            if app_ok.0 {
                self.check_single_image(app, seen_mixed).await;
            }
        }
        metrics.set_fly_reachable(ok);
        ok
    }

    /// The invariant `single_image_per_group` after every pass of `app` (case BUG-08): groups
    /// on several images (`seen`: from this pass's diff, else one observation) for more than
    /// 10 minutes with no deploy in flight → one `mixed_images` signal to the incident
    /// pipeline. Only with an incident channel; Fly unseen → nothing concluded.
    async fn check_single_image(
        &mut self,
        app: &opsctl_crds::FlyApp,
        seen: Option<crate::runtime::deploy::MixedGroups>,
    ) {
        let Some(tx) = self.incidents.clone() else {
            return;
        };
        let groups = match seen {
            Some(g) => g,
            None => match self.deployer.mixed_groups(app).await {
                Some(g) => g,
                None => return,
            },
        };
        let deploying = self
            .deployer
            .store
            .deploys(Some(app.app_name()))
            .ok()
            .and_then(|d| d.into_iter().next())
            .is_some_and(|r| r.status == crate::records::DeployStatus::InProgress);
        let now = self.deployer.clock.now();
        for signal in self.mixed.observe(app.app_name(), &groups, deploying, now) {
            tracing::warn!(app = %app.app_name(), class = %signal.class, "{}", signal.detail);
            if tx.send(signal).await.is_err() {
                tracing::warn!("incident pipeline is gone; mixed-images signal dropped");
            }
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

#[cfg(test)]
#[path = "reconciler_mixed_tests.rs"]
mod mixed_tests;
