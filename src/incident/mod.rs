//! The incident pipeline (DESIGN.md §5, ADR §2): `Classify → Diagnose → Respond →
//! Postmortem`, as a task that consumes [`Signal`]s from a channel.
//!
//! Decisions are the pure `opsctl_controllers::incident` functions; this module gathers the
//! evidence (machines, Fly logs, deploy records), carries out the actions (rollback through the
//! deploy pipeline, restart + verify through the Fly client), and records everything as
//! [`Record`]s of kind `incident`, `postmortem` and `escalation` (docs/incidents.md).
//!
//! Escalations and notifications leave through two small traits, [`Escalator`] and
//! [`Notifier`], so the engineering-beads writer and the alert routes (webhook, Slack,
//! PagerDuty) plug in without this module knowing them. Neither may block for long: each call
//! is bounded by [`HANDOFF_TIMEOUT`].

mod classifier;
mod diagnose;
mod records;
mod respond;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_controllers::incident::book::{
    Admission, Book, CORRELATED_FINGERPRINT, Held, MONITORING_FINGERPRINT,
};
use opsctl_controllers::incident::classify::{Verdict, classify};
use opsctl_controllers::incident::respond::{Action, Context, plan};
use opsctl_controllers::incident::{Classification, NOISE_CONFIDENCE_FLOOR};
use opsctl_controllers::signal::Signal;
use opsctl_crds::ManifestSet;
use opsctl_crds::kinds::RunbookSpec;
use opsctl_crds::kinds::runbook::DEFAULT_RECENT_DEPLOY_WINDOW;
use tokio::sync::{mpsc, watch};

pub use classifier::{
    Classified, Classifier, INCIDENT_BUDGET_USD, LlmClassifier, LlmConfig, RuleClassifier, scrub,
};
pub use diagnose::{Diagnosis, LogLine, after_deploy, fetch_logs};
pub use respond::ActionResult;

use crate::records::{Record, RecordKind, RecordStatus, StoreError};
use crate::runtime::deploy::Deployer;

/// Longest an [`Escalator`] or [`Notifier`] call may take before the pipeline moves on (the
/// failure is logged and kept in the incident record).
pub const HANDOFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Capacity of the signal channel; senders wait when it is full (back-pressure, no loss).
pub const CHANNEL_CAPACITY: usize = 1024;

/// A boxed future, so the traits below are object safe.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hands an escalation to the humans' side: the engineering beads writer (a `caused-by`
/// dependency on the ops record), or anything else. The escalation is already in the journal
/// when this is called.
pub trait Escalator: Send + Sync {
    /// Deliver `escalation` (kind `escalation`, linked `caused-by` to `incident`).
    ///
    /// # Errors
    /// A message for the incident record when delivery failed.
    fn escalate<'a>(
        &'a self,
        escalation: &'a Record,
        incident: &'a Record,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A new incident.
    Opened,
    /// Its class or severity went up, or a response failed.
    Updated,
    /// Closed (resolved, or the observer can see again).
    Resolved,
}

/// Sends notifications (AlertRoute: webhook, Slack, PagerDuty Events v2 with `dedup_key` =
/// the incident fingerprint).
pub trait Notifier: Send + Sync {
    /// Notify about `incident` (its `data.fingerprint` is the dedup key).
    fn notify<'a>(&'a self, event: NotifyEvent, incident: &'a Record) -> BoxFuture<'a, ()>;
}

/// The default hand-offs: log only (the escalation record in the journal is the durable part).
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOnly;

impl Escalator for LogOnly {
    fn escalate<'a>(
        &'a self,
        escalation: &'a Record,
        incident: &'a Record,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            tracing::warn!(escalation = %escalation.id, incident = %incident.id, "{}", escalation.title);
            Ok(())
        })
    }
}

impl Notifier for LogOnly {
    fn notify<'a>(&'a self, event: NotifyEvent, incident: &'a Record) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::info!(incident = %incident.id, ?event, "{}", incident.title);
        })
    }
}

/// Tunables of the pipeline.
#[derive(Debug, Clone)]
pub struct IncidentConfig {
    /// Logs read before the first signal.
    pub log_window: chrono::Duration,
    /// How long a restarted machine must stay `started` with checks passing to count as
    /// restored.
    pub verify_stable: Duration,
    /// Longest wait for a restarted machine to become healthy.
    pub verify_timeout: Duration,
    /// Poll interval while verifying.
    pub poll: Duration,
    /// How long the observer counts as blind after an `observer_blind` signal.
    pub blind_hold: chrono::Duration,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        Self {
            log_window: chrono::Duration::minutes(5),
            verify_stable: Duration::from_secs(30),
            verify_timeout: Duration::from_secs(180),
            poll: Duration::from_secs(2),
            blind_hold: chrono::Duration::seconds(
                opsctl_controllers::incident::book::DEFAULT_BLIND_HOLD_SECS,
            ),
        }
    }
}

/// What the pipeline did with one signal (for tests and logs).
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    /// Held back (observer blind, or raised by a response).
    Held(Held),
    /// Counted in the monitoring-path-down incident (`true`: just opened).
    Monitoring(bool),
    /// Folded into the correlated many-apps incident (`true`: just opened).
    Correlated(bool),
    /// An occurrence added to an open incident, nothing else.
    Repeat(String),
    /// A new (or newly more severe) incident was classified and answered.
    Answered {
        /// Incident record id.
        incident: String,
        /// The verdict.
        class: Classification,
        /// Actions run and their results.
        actions: Vec<ActionResult>,
        /// Whether the incident closed as resolved.
        resolved: bool,
    },
}

/// The pipeline task.
pub struct IncidentPipeline {
    /// Runs rollbacks and gives the client, store and clock.
    pub deployer: Deployer,
    /// Where escalations go.
    pub escalator: Arc<dyn Escalator>,
    /// Where notifications go.
    pub notifier: Arc<dyn Notifier>,
    /// Classifies new incidents ([`RuleClassifier`] unless an LLM is configured).
    pub classifier: Arc<dyn Classifier>,
    /// Tunables.
    pub config: IncidentConfig,
    /// Manifests directory: apps and runbooks are re-read on each signal (the last valid set
    /// is kept when it does not load).
    pub manifests: Option<PathBuf>,
    /// The manifests in use (set directly in tests, or loaded from `manifests`).
    pub set: ManifestSet,
    book: Book,
}

/// The deploy pipeline's hand-off, without blocking it: after `settle` (checks had time to
/// run), the signals for the finished deploy `rec` ([`after_deploy`]) go into `tx`.
pub fn hand_off(
    client: crate::fly::FlyClient,
    clock: Arc<dyn crate::runtime::clock::Clock>,
    rec: crate::records::DeployRecord,
    tx: mpsc::Sender<Signal>,
    settle: Duration,
) {
    tokio::spawn(async move {
        tokio::time::sleep(settle).await;
        for s in after_deploy(&client, &rec, clock.now()).await {
            tracing::info!(deploy = %rec.id, fingerprint = %s.fingerprint(), "deploy hand-off to the incident pipeline");
            if tx.send(s).await.is_err() {
                tracing::warn!("incident pipeline is gone; deploy signal dropped");
            }
        }
    });
}

/// A channel for signals: the sender goes to every producer (maintenance checks, the deploy
/// hand-off), the receiver to [`IncidentPipeline::run`].
pub fn channel() -> (mpsc::Sender<Signal>, mpsc::Receiver<Signal>) {
    mpsc::channel(CHANNEL_CAPACITY)
}

impl IncidentPipeline {
    /// A pipeline acting through `deployer`; open incidents are read back from the journal, so
    /// a restart of opsctl keeps deduplicating into them.
    pub fn new(deployer: Deployer, config: IncidentConfig) -> Self {
        let mut book = Book::new();
        book.blind_hold = Some(config.blind_hold);
        for inc in records::open_incidents(&deployer.store) {
            book.restore(inc);
        }
        Self {
            deployer,
            escalator: Arc::new(LogOnly),
            notifier: Arc::new(LogOnly),
            classifier: Arc::new(RuleClassifier),
            config,
            manifests: None,
            set: ManifestSet::default(),
            book,
        }
    }

    /// Consume signals until `stop` becomes true or every sender is gone.
    pub async fn run(
        mut self,
        mut signals: mpsc::Receiver<Signal>,
        mut stop: watch::Receiver<bool>,
    ) {
        tracing::info!("incident pipeline started");
        loop {
            let signal = tokio::select! {
                _ = stop.changed() => break,
                s = signals.recv() => match s { Some(s) => s, None => break },
            };
            if let Err(e) = self.handle(signal).await {
                tracing::error!(error = %e, "incident pipeline could not record; signal dropped");
            }
            if *stop.borrow() {
                break;
            }
        }
        tracing::info!("incident pipeline stopped");
    }

    fn reload(&mut self) {
        if let Some(dir) = &self.manifests {
            match opsctl_crds::load_dir(dir) {
                Ok(set) => self.set = set,
                Err(e) => tracing::warn!(
                    errors = e.diagnostics.len(),
                    "manifests do not load; incidents use the last valid set"
                ),
            }
        }
    }

    fn runbooks(&self) -> Vec<(String, RunbookSpec)> {
        self.set
            .runbooks
            .iter()
            .map(|m| (m.name().to_owned(), m.spec.clone()))
            .collect()
    }

    fn window(&self, app: Option<&str>) -> chrono::Duration {
        let w = self
            .set
            .runbooks
            .iter()
            .filter(|m| {
                m.spec.apps.is_empty() || app.is_some_and(|a| m.spec.apps.iter().any(|x| x == a))
            })
            .find_map(|m| m.spec.recent_deploy_window)
            .unwrap_or(DEFAULT_RECENT_DEPLOY_WINDOW);
        chrono::Duration::from_std(w.get()).unwrap_or(chrono::Duration::hours(1))
    }

    /// Take in one signal: dedup, classify, respond, record.
    ///
    /// # Errors
    /// The record store failed (nothing further was done for this signal).
    pub async fn handle(&mut self, signal: Signal) -> Result<Handled, StoreError> {
        self.reload();
        let now = self.deployer.clock.now();
        self.close_quiet(now).await?;
        let known_app = self.book.get(MONITORING_FINGERPRINT).is_none_or(|m| {
            signal
                .app
                .as_ref()
                .is_none_or(|a| m.held_back_apps.contains(a))
        });
        let admission = self
            .book
            .admit(&signal, now, || Record::new_id(RecordKind::Incident, now));
        let is_new = matches!(admission, Admission::New(_));
        let fp = match admission {
            Admission::New(fp) | Admission::Repeat(fp) => fp,
            other => return self.not_answered(other, &signal, known_app, now).await,
        };
        self.answer(fp, signal, is_new, now).await
    }

    /// Close what went quiet: a multi-app correlation past its window, the monitoring-path
    /// incident once the observer sees again; then forget quiet entries of the book.
    async fn close_quiet(&mut self, now: DateTime<Utc>) -> Result<(), StoreError> {
        if let Some(c) = self.book.correlation_over(now) {
            let previous = records::latest(&self.deployer.store, &c.id);
            let mut rec = records::incident_record(&c, previous.as_ref());
            rec.close("quiet", now);
            self.deployer.store.append_record(&rec)?;
            self.notify(NotifyEvent::Resolved, &rec).await;
        }
        if let Some(m) = self.book.observer_recovered(now) {
            let previous = records::latest(&self.deployer.store, &m.id);
            let mut rec = records::incident_record(&m, previous.as_ref());
            rec.close("observer_recovered", now);
            self.deployer.store.append_record(&rec)?;
            self.notify(NotifyEvent::Resolved, &rec).await;
        }
        self.book.prune_quiet(now);
        Ok(())
    }

    /// A signal the book did not admit as its own incident: held back (folded into the
    /// monitoring incident when it names a newly affected app), or part of the monitoring-path
    /// or multi-app incident (recorded; notified and escalated when that incident is fresh).
    async fn not_answered(
        &mut self,
        admission: Admission,
        signal: &Signal,
        known_app: bool,
        now: DateTime<Utc>,
    ) -> Result<Handled, StoreError> {
        match admission {
            Admission::Held(h) => {
                tracing::info!(fingerprint = %signal.fingerprint(), reason = ?h, "signal held back");
                if h == Held::ObserverBlind
                    && !known_app
                    && let Some(m) = self.book.get(MONITORING_FINGERPRINT)
                {
                    // A newly affected app: folded into the monitoring incident's record.
                    let previous = records::latest(&self.deployer.store, &m.id);
                    let rec = records::incident_record(m, previous.as_ref());
                    self.deployer.store.append_record(&rec)?;
                }
                Ok(Handled::Held(h))
            }
            Admission::Monitoring(fresh) => {
                let m = self.book.get(MONITORING_FINGERPRINT).cloned();
                if let Some(m) = m {
                    let previous = records::latest(&self.deployer.store, &m.id);
                    let rec = records::incident_record(&m, previous.as_ref());
                    self.deployer.store.append_record(&rec)?;
                    if fresh {
                        self.notify(NotifyEvent::Opened, &rec).await;
                        self.escalate(&rec, &["monitoring_path_down".into()], now)
                            .await?;
                    }
                }
                Ok(Handled::Monitoring(fresh))
            }
            Admission::Correlated(fresh) => {
                if let Some(c) = self.book.get(CORRELATED_FINGERPRINT).cloned() {
                    let previous = records::latest(&self.deployer.store, &c.id);
                    let grew = previous.as_ref().is_none_or(|p| {
                        p.data["held_back_apps"].as_array().map_or(0, Vec::len)
                            < c.held_back_apps.len()
                    });
                    if grew {
                        let rec = records::incident_record(&c, previous.as_ref());
                        self.deployer.store.append_record(&rec)?;
                        if fresh {
                            self.notify(NotifyEvent::Opened, &rec).await;
                            self.escalate(&rec, &["multi_app_outage".into()], now)
                                .await?;
                        }
                    }
                }
                Ok(Handled::Correlated(fresh))
            }
            Admission::New(fp) | Admission::Repeat(fp) => Ok(Handled::Repeat(fp)),
        }
    }

    /// An admitted signal of incident `fp`: gather evidence, classify (the judgment step for a
    /// new incident, the rules for repeats), record, and — when the verdict rose — notify,
    /// plan from the runbooks, respond through governance and finish.
    async fn answer(
        &mut self,
        fp: String,
        signal: Signal,
        is_new: bool,
        now: DateTime<Utc>,
    ) -> Result<Handled, StoreError> {
        let Some(inc) = self.book.get(&fp).cloned() else {
            return Ok(Handled::Repeat(fp));
        };
        let (evidence, mut diagnosis, _) = diagnose::gather(
            &self.deployer.client,
            &signal,
            inc.first_seen,
            self.config.log_window,
            inc.last_hour(now),
        )
        .await;
        let runbooks = self.runbooks();
        let spent = records::latest(&self.deployer.store, &inc.id)
            .and_then(|r| r.data["llm_cost_usd"].as_f64())
            .unwrap_or(0.0);
        // The judgment step (when configured) runs for a new incident; repeats use the rules.
        let classified = if is_new {
            self.classifier
                .classify(&signal, &evidence, &runbooks, INCIDENT_BUDGET_USD - spent)
                .await
        } else {
            Classified {
                verdict: classify(&signal, &evidence, &runbooks),
                cost_usd: 0.0,
                escalate: None,
            }
        };
        let verdict = classified.verdict.clone();
        let raised = self.book.raise(&fp, &verdict);
        let Some(inc) = self.book.get(&fp).cloned() else {
            return Ok(Handled::Repeat(fp));
        };
        let previous = records::latest(&self.deployer.store, &inc.id);
        if !raised {
            // A repeat that changes nothing: one more occurrence on the record.
            if let Some(mut rec) = previous {
                records::update_counts(&mut rec, &inc, now);
                self.deployer.store.append_record(&rec)?;
            }
            return Ok(Handled::Repeat(fp));
        }
        let app = signal.app.clone().unwrap_or_default();
        let (deploy, deploys) =
            diagnose::blamed_deploy(&self.deployer.store, &app, inc.deploy.as_deref());
        diagnosis.deploys = deploys;
        let mut rec = records::incident_record(&inc, previous.as_ref());
        records::set_verdict(&mut rec, &verdict, &signal, deploy.as_ref(), now);
        if classified.cost_usd > 0.0 {
            rec.data["llm_cost_usd"] = serde_json::json!(spent + classified.cost_usd);
        }
        if let Some(why) = &classified.escalate {
            rec.data["judgment_failed"] = serde_json::json!(why);
        }
        rec.status = RecordStatus::InProgress;
        self.deployer.store.append_record(&rec)?;
        if verdict.class == Classification::Noise
            && verdict.confidence >= NOISE_CONFIDENCE_FLOOR
            && classified.escalate.is_none()
        {
            // Sure it is noise: recorded and closed, nobody notified; the book keeps counting
            // repeats for an hour (more than 5 an hour makes it a degradation).
            rec.close(format!("noise:{}", verdict.reason), now);
            self.deployer.store.append_record(&rec)?;
            return Ok(Handled::Answered {
                incident: rec.id,
                class: verdict.class,
                actions: vec![],
                resolved: true,
            });
        }
        let reopened = previous
            .as_ref()
            .is_some_and(|p| p.status != RecordStatus::Closed);
        self.notify(
            if reopened {
                NotifyEvent::Updated
            } else {
                NotifyEvent::Opened
            },
            &rec,
        )
        .await;
        let done = records::done_kinds(&rec);
        let recent = deploy.as_ref().map(diagnose::recent);
        let mut actions = plan(
            &verdict,
            &Context {
                first_seen: inc.first_seen,
                window: self.window(signal.app.as_deref()),
                deploy: recent.as_ref(),
                machine: signal.machine.as_deref(),
                done: &done,
            },
        );
        if let Some(why) = &classified.escalate {
            // The judgment step failed: the rules decided, and a human is told why.
            actions.push(Action::Escalate {
                reason: why.clone(),
            });
        }
        let results = self
            .respond(
                &mut rec,
                &verdict,
                &actions,
                &app,
                &diagnosis,
                deploy.as_ref(),
            )
            .await?;
        let resolved = self
            .finish(&fp, &mut rec, &verdict, &results, deploy.as_ref(), now)
            .await?;
        Ok(Handled::Answered {
            incident: rec.id,
            class: verdict.class,
            actions: results,
            resolved,
        })
    }

    /// Close or hand over: outage and degradation get a postmortem; anything that failed,
    /// asked to escalate or was not fixed is escalated (one escalation per response).
    async fn finish(
        &mut self,
        fp: &str,
        rec: &mut Record,
        verdict: &Verdict,
        results: &[ActionResult],
        deploy: Option<&crate::records::DeployRecord>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        let failed: Vec<&ActionResult> = results.iter().filter(|r| !r.ok).collect();
        let remedied = results
            .iter()
            .any(|r| r.ok && matches!(r.action.as_str(), "rollback" | "restart_machine"))
            || deploy.is_some_and(|d| {
                d.rollback
                    .as_ref()
                    .is_some_and(|r| r.outcome == "succeeded")
            });
        let healthy_now = match rec.app.as_deref() {
            Some(app) => respond::healthy_now(&self.deployer.client, app).await,
            None => false,
        };
        let resolved = failed.is_empty()
            && remedied
            && healthy_now
            && !results.iter().any(|r| {
                r.action == "escalate"
                    && (r.reason.starts_with("outage_") || r.reason.starts_with("unknown"))
            });
        let mut reasons: Vec<String> = results
            .iter()
            .filter(|r| r.action == "escalate")
            .map(|r| r.reason.clone())
            .collect();
        for f in &failed {
            reasons.push(format!("{}_failed: {}", f.action, f.detail));
        }
        if !resolved && remedied && failed.is_empty() && !healthy_now {
            reasons.push("outage_persisting_after_remediation".into());
        }
        let needs_postmortem = matches!(
            verdict.class,
            Classification::Outage | Classification::Degradation
        );
        if needs_postmortem && reasons.is_empty() {
            reasons.push(format!("postmortem:{}", verdict.reason));
        }
        if resolved {
            rec.close("resolved", now);
        } else {
            rec.status = RecordStatus::Blocked;
            rec.updated_at = now;
        }
        self.deployer.store.append_record(rec)?;
        if needs_postmortem {
            let pm = records::postmortem(rec, verdict, results, deploy, resolved, now);
            self.deployer.store.append_record(&pm)?;
        }
        if !reasons.is_empty() {
            self.escalate(rec, &reasons, now).await?;
        }
        if resolved {
            self.book.close(fp);
            self.notify(NotifyEvent::Resolved, rec).await;
        } else {
            if let Some(inc) = self.book.get_mut(fp) {
                inc.responded = true;
            }
            if !failed.is_empty() {
                self.notify(NotifyEvent::Updated, rec).await;
            }
        }
        Ok(resolved)
    }

    async fn escalate(
        &self,
        incident: &Record,
        reasons: &[String],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), StoreError> {
        let esc = records::escalation(incident, reasons, now);
        self.deployer.store.append_record(&esc)?;
        match tokio::time::timeout(HANDOFF_TIMEOUT, self.escalator.escalate(&esc, incident)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(escalation = %esc.id, error = %e, "escalation hand-off failed; the record stays in the journal")
            }
            Err(_) => {
                tracing::error!(escalation = %esc.id, "escalation hand-off timed out; the record stays in the journal")
            }
        }
        Ok(())
    }

    async fn notify(&self, event: NotifyEvent, rec: &Record) {
        if tokio::time::timeout(HANDOFF_TIMEOUT, self.notifier.notify(event, rec))
            .await
            .is_err()
        {
            tracing::error!(incident = %rec.id, "notification timed out");
        }
    }
}
