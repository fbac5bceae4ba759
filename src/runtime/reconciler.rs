//! `opsctl run`: the long-running reconciler, on the work queue of [`crate::runtime::queue`].
//!
//! Level-triggered and keyed: the unit of work is one key `("FlyApp", app name)`, and each
//! reconcile of a key recomputes from the desired state (the last valid manifest set) and the
//! observed state (Fly now), so a missed or collapsed event costs latency, never correctness.
//!
//! - Keys: duplicates collapse (a burst of commits costs one reconcile per app), one reconcile
//!   per key at a time, `workers` keys at once (`opsctl run --workers N`, default 4).
//! - Triggers: start-up and every new commit of the manifests checkout (noticed through a
//!   file-system watch within milliseconds) reload the manifest set once and enqueue every app
//!   at once. An invalid set is rejected whole and reported; the reconciler keeps acting on the
//!   last valid set. Apps that left the set are dropped from the queue.
//! - Requeue after, decided per app from what the reconcile saw ([`Pace`], [`requeue_after`]):
//!   15–30 s (jittered) while a rollout is in flight or just finished, or the app has an open
//!   incident; `approval_poll` (default 5 s) while a plan waits for `opsctl approve`; the idle
//!   interval `resync` (default 5 min, jittered down by up to 10 %) otherwise. A failed reconcile
//!   is retried with the queue's per-key backoff (1 s doubling to 5 min, full jitter), forgotten
//!   after a success.
//! - Cost: an app in sync costs one Fly call per reconcile (the machines list; see
//!   [`crate::governance::governed_deploy`]'s fast path).
//! - State: the [`StatusBoard`] (served as `GET /status` by the listener, read by
//!   `opsctl status`) holds per app the last reconcile (UTC), its result, the next one due,
//!   consecutive failures; plus the queue depth and the replica's role. The depth is also the
//!   `opsctl_workqueue_depth` gauge.
//! - Stop (SIGINT/SIGTERM): the queue stops handing out keys, each worker finishes or parks its
//!   current step (a rollout stops before its next batch, recorded, leases released), and
//!   [`Reconciler::run`] returns once every worker is done.
//!
//! Every deploy passes governance first ([`crate::governance::governed_deploy`]): a gated plan
//! is queued as a pending approval (approvals are read from the records each reconcile).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use opsctl_crds::{FlyApp, ManifestSet, load_dir, load_files};
use serde::Serialize;
use tokio::sync::watch;
use tracing::Instrument;

pub use super::status_board::{AppStatus, StatusBoard};

use crate::governance::Governed;
use crate::governance::gate::governed_deploy_seen;
use crate::records::{DeployStatus, RecordKind, RecordStatus, Trigger};
use crate::runtime::deploy::{Deployer, MixedGroups, Outcome};
use crate::runtime::git;
use crate::runtime::queue::{Jitter, WorkQueue, full_jitter};

/// Debounce for bursts of file events (a commit writes several files).
const DEBOUNCE: Duration = Duration::from_millis(100);

/// Kind of the reconciler's keys.
pub const FLY_APP: &str = "FlyApp";

/// Default number of workers (`opsctl run --workers`).
pub const DEFAULT_WORKERS: usize = 4;

/// Default interval of an app with something going on: 15–30 s, jittered.
pub const ACTIVE_POLL: (Duration, Duration) = (Duration::from_secs(15), Duration::from_secs(30));

/// One work-queue key: the object's kind and name (here `("FlyApp", app name)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// Kind of object ([`FLY_APP`]).
    pub kind: &'static str,
    /// Its name (the Fly app name).
    pub name: String,
}

impl Key {
    /// The key of the Fly app `name`.
    pub fn app(name: &str) -> Self {
        Self {
            kind: FLY_APP,
            name: name.to_owned(),
        }
    }
}

/// How soon an app is looked at again, decided from what its reconcile saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// Nothing going on: after the idle interval (`--resync`).
    Idle,
    /// A rollout in flight or just finished, or an open incident: 15–30 s.
    Active,
    /// A plan waits for `opsctl approve`: every `--approval-poll`.
    Approval,
    /// The reconcile failed: the queue's per-key error backoff.
    Backoff,
}

/// The intervals [`requeue_after`] chooses from.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    /// Idle interval (`--resync`); also the ceiling of every other interval.
    pub idle: Duration,
    /// Interval range of [`Pace::Active`] (default 15–30 s).
    pub active: (Duration, Duration),
    /// Interval of [`Pace::Approval`] (`--approval-poll`).
    pub approval: Duration,
}

/// The delay before an app with `pace` is reconciled again (not for [`Pace::Backoff`], which
/// the queue decides; it gets the idle interval here). `jitter(ceiling)` picks in
/// `[0, ceiling]`: active apps land in `[lo, hi]`, idle apps in `[0.9 × idle, idle]` (so
/// `--resync` stays an upper bound and apps enqueued together spread apart); all capped at
/// `idle`.
pub fn requeue_after(pace: Pace, pacing: &Pacing, jitter: &Jitter) -> Duration {
    let idle = pacing.idle;
    let spread = |lo: Duration, hi: Duration| lo + jitter(hi.saturating_sub(lo)).min(hi - lo);
    match pace {
        Pace::Idle | Pace::Backoff => spread(idle.mul_f64(0.9), idle),
        Pace::Active => spread(pacing.active.0, pacing.active.1.max(pacing.active.0)).min(idle),
        Pace::Approval => pacing.approval.min(idle),
    }
}

/// The valid manifest set being acted on, with its apps indexed by name.
struct Loaded {
    set: Arc<ManifestSet>,
    index: HashMap<String, usize>,
}

/// The reconciler's configuration and state.
pub struct Reconciler {
    /// Manifests directory (inside a git checkout for commit triggers).
    pub manifests: PathBuf,
    /// Runs the deploys.
    pub deployer: Deployer,
    /// Idle interval: every app is reconciled at least this often.
    pub resync: Duration,
    /// Where finished deploys are handed to the incident pipeline (`opsctl run` sets it).
    pub incidents: Option<tokio::sync::mpsc::Sender<opsctl_controllers::signal::Signal>>,
    /// How long after a deploy its health is judged for the incident hand-off.
    pub incident_settle: Duration,
    /// While an app waits for approval, reconcile it this often (default 5 s; each costs a
    /// few Fly reads while a human decides).
    pub approval_poll: Duration,
    /// Interval range for apps with a rollout in flight or an open incident (15–30 s).
    pub active_poll: (Duration, Duration),
    /// Keys reconciled at once (at least 1).
    pub workers: usize,
    /// Where the live state goes (`GET /status`).
    pub board: Arc<StatusBoard>,
    /// Jitter of the requeue intervals ([`requeue_after`]).
    pub jitter: Jitter,
    queue: Arc<WorkQueue<Key>>,
    loaded: RwLock<Option<Loaded>>,
    commit: RwLock<Option<String>>,
    /// Why each queued app was queued (for the logs), by app.
    triggers: Mutex<HashMap<String, &'static str>>,
    /// Groups seen on several images with no deploy in flight (BUG-08, `single_image_per_group`).
    mixed: Mutex<opsctl_controllers::rollout::mixed::MixedWatch>,
}

/// What one reconcile of one app came to.
struct Reconciled {
    result: &'static str,
    pace: Pace,
    error: Option<String>,
    /// Groups on several images seen by this reconcile (`None`: not observed).
    mixed: Option<MixedGroups>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Reconciler {
    /// A reconciler over `manifests` with [`DEFAULT_WORKERS`] workers.
    pub fn new(manifests: PathBuf, deployer: Deployer, resync: Duration) -> Self {
        Self {
            manifests,
            deployer,
            resync,
            incidents: None,
            incident_settle: Duration::from_secs(30),
            approval_poll: Duration::from_secs(5),
            active_poll: ACTIVE_POLL,
            workers: DEFAULT_WORKERS,
            board: Arc::new(StatusBoard::default()),
            jitter: full_jitter(),
            queue: Arc::new(WorkQueue::new()),
            loaded: RwLock::new(None),
            commit: RwLock::new(None),
            triggers: Mutex::new(HashMap::new()),
            mixed: Mutex::default(),
        }
    }

    /// Run until `stop` becomes true; then stop handing out keys and return once every
    /// worker has finished or parked its current step.
    ///
    /// # Errors
    /// When the file-system watch cannot be set up.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut paths = vec![self.manifests.clone()];
        if let Some(dir) = git::git_dir(&self.manifests).await {
            paths.push(dir);
        } else {
            tracing::warn!(manifests = %self.manifests.display(), "not a git checkout: reacting to file changes, records carry no commit");
        }
        let (_watcher, mut events) = git::watch(&paths)?;
        let head = git::head_commit(&self.manifests).await;
        self.set_commit(head.clone());
        let workers = self.workers.max(1);
        {
            let mut b = self.board.lock();
            b.running = true;
            b.workers = workers;
            b.queue = Some(self.queue.clone());
        }
        tracing::info!(manifests = %self.manifests.display(), commit = head.as_deref().unwrap_or("-"), workers, "reconciler started");
        let this = Arc::new(self);
        this.reload("startup").await;
        let mut pool = tokio::task::JoinSet::new();
        for _ in 0..workers {
            let worker = this.clone();
            pool.spawn(async move { worker.work().await });
        }
        while !*stop.borrow() {
            tokio::select! {
                changed = stop.changed() => if changed.is_err() { break },
                Some(()) = events.recv() => {
                    tokio::time::sleep(DEBOUNCE).await;
                    while events.try_recv().is_ok() {}
                    let head = git::head_commit(&this.manifests).await;
                    let last = this.commit();
                    if head.is_some() && head == last {
                        continue; // a change in the checkout that is not a new commit
                    }
                    if head != last {
                        tracing::info!(commit = head.as_deref().unwrap_or("-"), "new commit");
                    }
                    let trigger = if head.is_some() { "commit" } else { "change" };
                    this.set_commit(head);
                    this.reload(trigger).await;
                }
            }
        }
        // Stop: no new keys; workers finish or park what they hold (the deployer sees the same
        // stop between steps and batches).
        this.queue.shut_down();
        tracing::info!(
            workers = pool.len(),
            "stopping: no new reconciles; workers finish or park their current step"
        );
        while let Some(joined) = pool.join_next().await {
            if let Err(e) = joined {
                tracing::error!(error = %e, "a reconcile worker panicked");
            }
        }
        {
            let mut b = this.board.lock();
            b.running = false;
            b.queue = None;
        }
        crate::metrics::global().set_workqueue_depth("deploy", 0);
        tracing::info!("reconciler stopped");
        Ok(())
    }

    fn commit(&self) -> Option<String> {
        self.commit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_commit(&self, commit: Option<String>) {
        self.board.lock().commit.clone_from(&commit);
        *self.commit.write().unwrap_or_else(|p| p.into_inner()) = commit;
    }

    fn current(&self) -> Option<(Arc<ManifestSet>, HashMap<String, usize>)> {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        loaded.as_ref().map(|l| (l.set.clone(), l.index.clone()))
    }

    fn update_depth(&self) {
        crate::metrics::global().set_workqueue_depth("deploy", self.queue.depth());
    }

    /// The manifests to act on: those of the checked-out commit when the directory is in a
    /// git checkout (never uncommitted edits), else the files as they are.
    async fn load(&self) -> Result<ManifestSet, opsctl_crds::LoadError> {
        if let Some(commit) = self.commit() {
            match git::committed_files(&self.manifests, &commit).await {
                Ok(files) => return load_files(&files),
                Err(e) => {
                    tracing::warn!(error = %e, "reading the committed manifests failed; using the working tree")
                }
            }
        }
        load_dir(&self.manifests)
    }

    /// Load the manifest set once (keep the last valid one when it is invalid), drop the
    /// apps that left it from the queue and the board, and enqueue every app now.
    async fn reload(&self, trigger: &'static str) {
        match self.load().await {
            Ok(set) => {
                let index = set
                    .apps
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (a.app_name().to_owned(), i))
                    .collect();
                *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Some(Loaded {
                    set: Arc::new(set),
                    index,
                });
            }
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
        let Some((set, index)) = self.current() else {
            tracing::warn!("no valid manifest set yet; nothing to reconcile");
            return;
        };
        crate::metrics::global().set_manifests_loaded();
        for key in self.queue.keys() {
            if !index.contains_key(&key.name) {
                tracing::info!(app = %key.name, "left the manifest set: dropped from the queue");
                self.queue.remove(&key);
            }
        }
        self.board
            .lock()
            .apps
            .retain(|name, _| index.contains_key(name));
        {
            let mut triggers = lock(&self.triggers);
            triggers.retain(|name, _| index.contains_key(name));
            for app in &set.apps {
                triggers.insert(app.app_name().to_owned(), trigger);
            }
        }
        for app in &set.apps {
            self.queue.add(Key::app(app.app_name()));
        }
        self.update_depth();
    }

    /// One worker: take a key, reconcile it, requeue it; until the queue shuts down.
    async fn work(self: Arc<Self>) {
        while let Some(key) = self.queue.next().await {
            self.update_depth();
            if !*self.deployer.stop.borrow() {
                self.reconcile(&key).await;
            }
            self.queue.done(&key);
            self.update_depth();
        }
    }

    /// Reconcile one key and decide when it comes back.
    async fn reconcile(&self, key: &Key) {
        let trigger = lock(&self.triggers).remove(&key.name).unwrap_or("resync");
        let Some((set, index)) = self.current() else {
            return;
        };
        let Some(&i) = index.get(&key.name) else {
            // Left the set between the reload and now.
            self.queue.remove(key);
            return;
        };
        let app = &set.apps[i];
        let span = tracing::info_span!("reconcile", app = %key.name, trigger, revision = self.commit().as_deref().unwrap_or("-"));
        let started = std::time::Instant::now();
        let done = self.reconcile_app(&set, app).instrument(span.clone()).await;
        let metrics = crate::metrics::global();
        metrics.reconciled("deploy", done.result, started.elapsed().as_secs_f64());
        let ok = done.pace != Pace::Backoff;
        if ok {
            self.check_single_image(app, done.mixed)
                .instrument(span.clone())
                .await;
        }
        let delay = if ok {
            self.queue.forget(key);
            let pacing = Pacing {
                idle: self.resync,
                active: self.active_poll,
                approval: self.approval_poll,
            };
            let delay = requeue_after(done.pace, &pacing, &self.jitter);
            self.queue.add_after(key.clone(), delay);
            delay
        } else {
            let delay = self.queue.add_rate_limited(key.clone());
            span.in_scope(|| {
                tracing::error!(
                    error = done.error.as_deref().unwrap_or("-"),
                    retry_in_ms = delay.as_millis() as u64,
                    "reconcile failed; retrying soon"
                );
            });
            delay
        };
        let now = self.deployer.clock.now();
        let status = AppStatus {
            app: key.name.clone(),
            last_reconcile: Some(now),
            result: Some(done.result.to_owned()),
            next_reconcile: chrono::Duration::from_std(delay).ok().map(|d| now + d),
            pace: done.pace,
            consecutive_failures: self.queue.failures(key),
            error: done.error,
        };
        self.board.lock().apps.insert(key.name.clone(), status);
        metrics.set_fly_reachable(!self.board.any_failing());
    }

    /// Whether `app` has something going on that the records show: a deploy in flight or
    /// left unfinished, or an open incident.
    fn busy(&self, app: &str) -> bool {
        let store = &self.deployer.store;
        let deploying = store.deploys(Some(app)).ok().is_some_and(|d| {
            d.first()
                .is_some_and(|r| r.status == DeployStatus::InProgress || r.needs_recovery)
        });
        deploying
            || store
                .records(|r| {
                    r.kind == RecordKind::Incident
                        && r.status != RecordStatus::Closed
                        && r.app.as_deref() == Some(app)
                })
                .is_ok_and(|open| !open.is_empty())
    }

    /// Governance, then the deployer, for one app: the result, the pace of its next
    /// reconcile and what it saw.
    async fn reconcile_app(&self, set: &ManifestSet, app: &FlyApp) -> Reconciled {
        let name = app.app_name();
        let metrics = crate::metrics::global();
        let deployer = &self.deployer;
        let quiet = |result, mixed| Reconciled {
            result,
            pace: if self.busy(name) {
                Pace::Active
            } else {
                Pace::Idle
            },
            error: None,
            mixed,
        };
        // The drift of the first look at the machines: the mixed-images check reads it instead
        // of listing the machines again.
        let mut seen = None;
        let seen_mixed = |seen: &Option<opsctl_controllers::diff::AppDiff>| {
            seen.as_ref().map(crate::runtime::deploy::mixed_of)
        };
        let outcome = match governed_deploy_seen(
            deployer,
            set,
            app,
            Trigger::Reconcile,
            self.commit(),
            &mut seen,
        )
        .await
        {
            Ok(Governed::Ran { outcome, .. }) => Ok(outcome),
            Ok(Governed::Waiting {
                approval,
                created,
                rule,
                ..
            }) => {
                if !created {
                    tracing::debug!(%approval, %rule, "still waiting for approval");
                }
                metrics.set_drift(name, true);
                return Reconciled {
                    result: "waiting",
                    pace: Pace::Approval,
                    error: None,
                    mixed: seen_mixed(&seen),
                };
            }
            Ok(Governed::Denied { rule, why, .. }) => {
                tracing::warn!(%rule, "not deployed: {why}");
                metrics.set_drift(name, true);
                return quiet("denied", seen_mixed(&seen));
            }
            Ok(Governed::Expired { approval, .. }) => {
                tracing::debug!(%approval, "approval expired; nothing runs until the plan changes");
                metrics.set_drift(name, true);
                return quiet("waiting", seen_mixed(&seen));
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(Outcome::NothingToDo(d)) if d.is_empty() => {
                tracing::debug!("in sync");
                metrics.set_drift(name, false);
                quiet("ok", Some(MixedGroups::default()))
            }
            Ok(Outcome::NothingToDo(d)) => {
                tracing::warn!(
                    changes = d.changes.len(),
                    "drift that is not applied automatically (scaling)"
                );
                metrics.set_drift(name, true);
                quiet("ok", Some(crate::runtime::deploy::mixed_of(&d)))
            }
            Ok(Outcome::Blocked { reason }) => {
                tracing::warn!("{reason}");
                metrics.set_drift(name, true);
                quiet("blocked", seen_mixed(&seen))
            }
            Ok(Outcome::Deployed(rec)) => {
                tracing::info!(record = %rec.id, status = rec.status.as_str(), "deploy recorded");
                metrics.deployed(name, rec.status.as_str());
                metrics.set_drift(name, rec.status != DeployStatus::Succeeded);
                if let Some(tx) = self.incidents.clone() {
                    crate::incident::hand_off(
                        deployer.client.clone(),
                        deployer.clock.clone(),
                        *rec,
                        tx,
                        self.incident_settle,
                    );
                }
                // Just deployed: watch it settle at the active pace.
                Reconciled {
                    result: "ok",
                    pace: Pace::Active,
                    error: None,
                    mixed: None,
                }
            }
            Err(e) => {
                let chain = error_chain(&e);
                let error = if chain.is_empty() {
                    e.to_string()
                } else {
                    format!("{e}: {chain}")
                };
                Reconciled {
                    result: "error",
                    pace: Pace::Backoff,
                    error: Some(error),
                    mixed: None,
                }
            }
        }
    }

    /// The invariant `single_image_per_group` after every reconcile of `app` (case BUG-08):
    /// groups on several images (`seen`: from this reconcile's diff, else one observation) for
    /// more than 10 minutes with no deploy in flight → one `mixed_images` signal to the incident
    /// pipeline. Only with an incident channel; Fly unseen → nothing concluded.
    async fn check_single_image(&self, app: &FlyApp, seen: Option<MixedGroups>) {
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
            .is_some_and(|r| r.status == DeployStatus::InProgress);
        let now = self.deployer.clock.now();
        let signals = lock(&self.mixed).observe(app.app_name(), &groups, deploying, now);
        for signal in signals {
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

#[cfg(test)]
#[path = "reconciler_tests.rs"]
mod tests;
