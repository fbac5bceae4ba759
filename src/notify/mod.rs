//! Notifications and escalations (`AlertRoute`, DESIGN.md §3; `docs/notifications.md`).
//!
//! - [`Event`]: what happened, built from a record ([`Event::from_record`],
//!   [`Event::from_deploy`]): an open record *triggers*, a closed one *resolves*.
//! - [`AlertRoutes`]: the `AlertRoute` manifests, resolved (relative beads paths made
//!   absolute), with [`AlertRoutes::targets_for`] choosing the targets of an event.
//! - [`Notifier`]: delivery to webhook, Slack and PagerDuty targets in the background.
//!   [`Notifier::notify`] is a plain (non-async) call that never waits: it puts the event on
//!   each matching target's bounded queue and returns; a full queue drops the event for that
//!   target (counted, logged, recorded). Each target has one worker, so a trigger and its
//!   resolve reach a target in order, and a hanging target delays only itself. Deliveries are
//!   retried with exponential backoff and jitter (backon) on 5xx, 429 (honouring
//!   `Retry-After`), timeouts and connection errors; a delivery that gives up is recorded as an
//!   `escalation` record labelled `notification-failed` (never itself notified, so a broken
//!   webhook cannot start a chain).
//! - [`escalate`]: write an escalation into the engineering beads of every matching route
//!   (`crate::records::beads::write_escalation`).
//!
//! Secrets: webhook URLs and routing keys are read from the environment at delivery (through
//! [`NotifierConfig::env`]), held as [`Secret`](crate::secret::Secret), and never logged:
//! errors are stripped of their URL, logs and records name the route and target kind only.

mod deliver;
mod escalate;
pub mod handoff;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use opsctl_crds::Manifest;
use opsctl_crds::kinds::AlertRouteSpec;
use opsctl_crds::kinds::alert_route::{RouteMatch, Severity, Target};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::records::{DeployRecord, DeployStatus, Record, RecordStatus, RecordStore};
use crate::runtime::clock::Clock;

pub use deliver::{DeliveryError, payload};
pub use escalate::{EscalateError, escalate};

/// Trigger (something is wrong, or happened) or resolve (it is over).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventAction {
    /// Open: PagerDuty `trigger`.
    Trigger,
    /// Closed: PagerDuty `resolve` with the same `dedup_key`.
    Resolve,
}

/// One notification. Never holds a secret value (records hold none).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Trigger or resolve.
    pub action: EventAction,
    /// Record kind (`incident`, `deploy`, …), as `AlertRoute` `match.kinds` names them.
    pub kind: String,
    /// Fly app, when the record concerns one.
    pub app: Option<String>,
    /// From the record's priority (P0 critical … P4 info).
    pub severity: Severity,
    /// One line.
    pub title: String,
    /// More words (the record's description); may be empty.
    pub detail: String,
    /// The opsctl record id.
    pub record: String,
    /// The record's status (`open`, `closed`, `rolled_back`, …).
    pub status: String,
    /// What ties a trigger to its resolve: an incident's fingerprint (`data.fingerprint`),
    /// else the record id; at most 255 characters (PagerDuty's limit).
    pub dedup_key: String,
    /// UTC, when the record last changed.
    pub at: DateTime<Utc>,
}

impl Event {
    /// The event of a non-deploy record: trigger while open, resolve once closed.
    pub fn from_record(r: &Record) -> Self {
        let dedup = r
            .data
            .get("fingerprint")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or(&r.id);
        Self {
            action: if r.status == RecordStatus::Closed {
                EventAction::Resolve
            } else {
                EventAction::Trigger
            },
            kind: r.kind.as_str().into(),
            app: r.app.clone(),
            severity: Severity::from_priority(r.priority),
            title: r.title.clone(),
            detail: r.description.clone(),
            record: r.id.clone(),
            status: serde_json::to_value(r.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            dedup_key: truncate(dedup, 255),
            at: r.updated_at,
        }
    }

    /// The event of a deploy: trigger while it runs or when a human must act (rollback failed,
    /// halted), resolve when it ended (succeeded, failed, rolled back). Severity: rollback
    /// failed critical, rolled back or failed high, others medium.
    pub fn from_deploy(d: &DeployRecord) -> Self {
        let (action, severity) = match d.status {
            DeployStatus::InProgress => (EventAction::Trigger, Severity::Info),
            DeployStatus::RollbackFailed => (EventAction::Trigger, Severity::Critical),
            DeployStatus::Halted => (EventAction::Trigger, Severity::High),
            DeployStatus::Failed | DeployStatus::RolledBack => {
                (EventAction::Resolve, Severity::High)
            }
            DeployStatus::Succeeded => (EventAction::Resolve, Severity::Medium),
        };
        let tag = d
            .image
            .rsplit_once(':')
            .map_or(d.image.as_str(), |(_, t)| t);
        Self {
            action,
            kind: "deploy".into(),
            app: Some(d.app.clone()),
            severity,
            title: format!("deploy {} {tag}: {}", d.app, d.status.as_str()),
            detail: d.reason.clone().unwrap_or_default(),
            record: d.id.clone(),
            status: d.status.as_str().into(),
            dedup_key: truncate(&d.id, 255),
            at: d.finished_at.unwrap_or(d.started_at),
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// RFC 3339 UTC.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One `AlertRoute`, resolved.
#[derive(Debug, Clone)]
pub struct Route {
    /// `metadata.name`.
    pub name: String,
    /// Its `match`.
    pub matches: RouteMatch,
    /// Its targets, in order.
    pub targets: Vec<Target>,
    /// The manifest's directory (relative beads paths are relative to it).
    pub base: PathBuf,
}

/// Every `AlertRoute`, resolved.
#[derive(Debug, Clone, Default)]
pub struct AlertRoutes {
    /// The routes, by name.
    pub routes: Vec<Route>,
}

/// One target chosen for an event: `route` name and target index (for logs and records).
#[derive(Debug, Clone)]
pub struct Chosen<'a> {
    /// The route.
    pub route: &'a Route,
    /// Index in its `targets`.
    pub index: usize,
    /// The target.
    pub target: &'a Target,
}

impl AlertRoutes {
    /// From the loaded manifests.
    pub fn from_manifests(manifests: &[Manifest<AlertRouteSpec>]) -> Self {
        Self {
            routes: manifests
                .iter()
                .map(|m| Route {
                    name: m.name().to_owned(),
                    matches: m.spec.matches.clone(),
                    targets: m.spec.targets.clone(),
                    base: m
                        .file
                        .parent()
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from(".")),
                })
                .collect(),
        }
    }

    /// Beads targets whose engineering repository is not there: `(route name, resolved
    /// issues.jsonl path)` for each whose parent directory (the repository's `.beads/`) does
    /// not exist, so escalations to it would fail. Not a load error (the path is on this
    /// machine, not in the manifests): `validate` warns, `run` logs it at start.
    pub fn missing_beads_dirs(&self) -> Vec<(String, PathBuf)> {
        let mut out = Vec::new();
        for r in &self.routes {
            for t in &r.targets {
                let Some(b) = &t.beads else { continue };
                let path = r.base.join(&b.path);
                if !path.parent().is_some_and(Path::is_dir) {
                    out.push((r.name.clone(), path));
                }
            }
        }
        out
    }

    /// Targets of every route whose `match` takes an event of `kind` about `app` at
    /// `severity`, in route then target order.
    pub fn targets_for(
        &self,
        kind: &str,
        app: Option<&str>,
        severity: Severity,
    ) -> Vec<Chosen<'_>> {
        self.routes
            .iter()
            .filter(|r| r.matches.matches(kind, app, severity))
            .flat_map(|r| {
                r.targets
                    .iter()
                    .enumerate()
                    .map(move |(index, target)| Chosen {
                        route: r,
                        index,
                        target,
                    })
            })
            .collect()
    }
}

/// Looks up an environment variable by name (the process environment by default; a map in
/// tests).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Delivery settings.
#[derive(Clone)]
pub struct NotifierConfig {
    /// Events waiting per target before new ones are dropped.
    pub queue: usize,
    /// Per-attempt timeout (connect + answer).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: usize,
    /// First backoff delay (doubles, with jitter).
    pub min_delay: Duration,
    /// Longest backoff delay (also caps a `Retry-After`).
    pub max_delay: Duration,
    /// Environment lookup for `urlEnv`, `webhookUrlEnv`, `routingKeyEnv`.
    pub env: EnvLookup,
    /// `payload.source` for PagerDuty when the event has no app, and the `client` field.
    pub source: String,
}

impl std::fmt::Debug for NotifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifierConfig")
            .field("queue", &self.queue)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("min_delay", &self.min_delay)
            .field("max_delay", &self.max_delay)
            .finish_non_exhaustive()
    }
}

impl Default for NotifierConfig {
    /// 256 queued events per target; 10 s per attempt; 5 retries from 1 s up to 60 s.
    fn default() -> Self {
        Self {
            queue: 256,
            timeout: Duration::from_secs(10),
            retries: 5,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            env: Arc::new(|name| std::env::var(name).ok()),
            source: "opsctl".into(),
        }
    }
}

/// The outcome of one delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Route name.
    pub route: String,
    /// `webhook`, `slack`, `pagerduty`.
    pub target: String,
    /// The event's record id.
    pub record: String,
    /// Trigger or resolve.
    pub action: EventAction,
    /// The event's dedup key.
    pub dedup_key: String,
    /// Attempts made (1 + retries).
    pub attempts: usize,
    /// `None` when delivered; else why it gave up (no secret in it).
    pub error: Option<String>,
}

/// Most recent deliveries kept in memory ([`Notifier::recent`]).
const RECENT: usize = 200;

/// A target's queue, keyed by (route name, target index).
/// Also the count of events dropped for it since its worker last recorded drops.
type TargetQueue = ((String, usize), mpsc::Sender<Event>, Arc<AtomicU64>);

struct Inner {
    routes: AlertRoutes,
    config: NotifierConfig,
    /// One queue per (route, target index) with a deliverable kind.
    queues: Mutex<Option<Vec<TargetQueue>>>,
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    dropped: AtomicU64,
    recent: Mutex<VecDeque<Delivery>>,
    store: Option<Arc<RecordStore>>,
    clock: Arc<dyn Clock>,
}

/// Background delivery of events to webhook, Slack and PagerDuty targets (module doc).
/// Cheap to clone; every clone feeds the same workers.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("routes", &self.inner.routes.routes.len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Start one worker per webhook, Slack and PagerDuty target of `routes` (beads targets are
    /// for [`escalate`]). `store`, when given, receives a record for every delivery that gives
    /// up. Must be called inside a tokio runtime.
    pub fn start(
        routes: AlertRoutes,
        config: NotifierConfig,
        store: Option<Arc<RecordStore>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .unwrap_or_default();
        let inner = Arc::new(Inner {
            routes,
            config,
            queues: Mutex::new(Some(Vec::new())),
            workers: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            store,
            clock,
        });
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for route in &inner.routes.routes {
            for (index, target) in route.targets.iter().enumerate() {
                if target.beads.is_some() || target.kind() == "none" {
                    continue;
                }
                let (tx, rx) = mpsc::channel(inner.config.queue.max(1));
                let drops = Arc::new(AtomicU64::new(0));
                queues.push(((route.name.clone(), index), tx, drops.clone()));
                workers.push(tokio::spawn(worker(
                    Arc::downgrade(&inner),
                    client.clone(),
                    route.name.clone(),
                    target.clone(),
                    rx,
                    drops,
                )));
            }
        }
        *inner.queues.lock().unwrap_or_else(|p| p.into_inner()) = Some(queues);
        *inner.workers.lock().unwrap_or_else(|p| p.into_inner()) = workers;
        Self { inner }
    }

    /// Queue `event` for every matching target and return at once (never waits, never fails).
    /// Returns how many targets took it; a target whose queue is full drops it (counted in
    /// [`Notifier::dropped`] and logged here; recorded as a failed delivery by the target's
    /// worker, so that this call does no I/O).
    pub fn notify(&self, event: &Event) -> usize {
        let chosen =
            self.inner
                .routes
                .targets_for(&event.kind, event.app.as_deref(), event.severity);
        let guard = self.inner.queues.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queues) = guard.as_ref() else {
            return 0;
        };
        let mut queued = 0;
        for c in chosen {
            let Some((_, tx, drops)) = queues
                .iter()
                .find(|((r, i), _, _)| *r == c.route.name && *i == c.index)
            else {
                continue;
            };
            match tx.try_send(event.clone()) {
                Ok(()) => queued += 1,
                Err(_) => {
                    // Counted here, recorded by the target's worker: no I/O on the caller.
                    self.inner.dropped.fetch_add(1, Ordering::Relaxed);
                    drops.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(route = %c.route.name, target = c.target.kind(), record = %event.record, "notification queue full; event dropped for this target");
                }
            }
        }
        queued
    }

    /// Events dropped because a target's queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// The most recent deliveries (up to 200), oldest first.
    pub fn recent(&self) -> Vec<Delivery> {
        self.inner
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Stop taking events, deliver (or give up on) everything queued, and wait for the
    /// workers. Later [`Notifier::notify`] calls are no-ops.
    pub async fn shutdown(&self) {
        drop(
            self.inner
                .queues
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let workers: Vec<_> =
            std::mem::take(&mut *self.inner.workers.lock().unwrap_or_else(|p| p.into_inner()));
        for w in workers {
            let _ = w.await;
        }
    }
}

/// One target's worker: deliver its events in order until its queue closes.
async fn worker(
    inner: std::sync::Weak<Inner>,
    client: reqwest::Client,
    route: String,
    target: Target,
    mut rx: mpsc::Receiver<Event>,
    drops: Arc<AtomicU64>,
) {
    while let Some(event) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        record_drops(&inner, &route, &target, &drops).await;
        let (attempts, result) = deliver::deliver(&client, &inner.config, &target, &event).await;
        let error = result.err().map(|e| e.to_string());
        match &error {
            None => {
                tracing::debug!(route = %route, target = target.kind(), record = %event.record, attempts, "notification delivered")
            }
            Some(e) => {
                tracing::warn!(route = %route, target = target.kind(), record = %event.record, attempts, error = %e, "notification not delivered; giving up")
            }
        }
        finish(
            &inner,
            Delivery {
                route: route.clone(),
                target: target.kind().into(),
                record: event.record.clone(),
                action: event.action,
                dedup_key: event.dedup_key.clone(),
                attempts,
                error,
            },
        )
        .await;
        record_drops(&inner, &route, &target, &drops).await;
    }
    if let Some(inner) = inner.upgrade() {
        record_drops(&inner, &route, &target, &drops).await;
    }
}

/// Record the events dropped for this target (queue full) since the last call, as one failed
/// delivery.
async fn record_drops(inner: &Arc<Inner>, route: &str, target: &Target, drops: &AtomicU64) {
    let n = drops.swap(0, Ordering::Relaxed);
    if n == 0 {
        return;
    }
    finish(
        inner,
        Delivery {
            route: route.to_owned(),
            target: target.kind().into(),
            record: "-".into(),
            action: EventAction::Trigger,
            dedup_key: String::new(),
            attempts: 0,
            error: Some(format!("queue full: {n} events dropped without an attempt")),
        },
    )
    .await;
}

/// Remember a delivery; record a failed one in the store (on the blocking pool: an append
/// fsyncs).
async fn finish(inner: &Arc<Inner>, d: Delivery) {
    if let (Some(err), Some(store)) = (&d.error, &inner.store) {
        let now = inner.clock.now();
        let mut r = Record::new(
            crate::records::RecordKind::Escalation,
            format!(
                "notification to {} (route {}) failed for {}",
                d.target, d.route, d.record
            ),
            now,
        );
        r.description = format!(
            "opsctl could not deliver a {} notification after {} attempts: {err}. Check the \
             target's endpoint and its environment variable.",
            match d.action {
                EventAction::Trigger => "trigger",
                EventAction::Resolve => "resolve",
            },
            d.attempts
        );
        r.priority = 2;
        r.labels = vec!["notification-failed".into(), format!("target:{}", d.target)];
        if crate::records::beads::is_opsctl_id(&d.record) {
            r.link(crate::records::LinkKind::Related, &d.record);
        }
        r.data = serde_json::to_value(&d).unwrap_or_default();
        let store = store.clone();
        let written = tokio::task::spawn_blocking(move || store.append_record(&r)).await;
        if let Ok(Err(e)) = written {
            tracing::warn!(error = %e, "could not record a failed notification");
        }
    }
    let mut recent = inner.recent.lock().unwrap_or_else(|p| p.into_inner());
    if recent.len() == RECENT {
        recent.pop_front();
    }
    recent.push_back(d);
}

#[cfg(test)]
mod tests;
