//! One run of one maintenance check over every `FlyApp`: observe (read-only), judge (the pure
//! `opsctl_controllers::maintenance` judges), then report: the signals go to the incident
//! pipeline's channel on every run, and a `Check` record is written only when a check's
//! finding for an app changes (status or signal fingerprints), so a long outage is one record,
//! not one per run. A finding that clears closes its record (`resolved`). Each cost snapshot is
//! recorded as a `CostSnapshot` record.
//!
//! Where the checks connect: the `FlyApp`'s `spec.health.dependencies` names the environment
//! variables (of opsctl's own process) holding the URLs — `redis.urlEnv`, `postgres.urlEnv`,
//! `oban.databaseUrlEnv` (else `spec.deploy.drain.oban.databaseUrlEnv`). An app that declares
//! none is not checked for it. Values are [`Secret`]s, read through the [`EnvLookup`] given
//! to [`Maintenance::new`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use opsctl_controllers::maintenance::{Judgement, Status};
use opsctl_controllers::signal::Signal;
use opsctl_crds::ManifestSet;
use opsctl_crds::kinds::maintenance::{CheckName, MaintenanceScheduleSpec};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::certs::CertChecker;
use super::fly_view::ReadOnlyFly;
use super::slo::SloTracker;
use crate::probes::http::HttpProber;
use crate::records::{Record, RecordKind, RecordStatus, RecordStore};
use crate::runtime::clock::Clock;
use crate::secret::Secret;

mod checks;

/// Reads an environment variable of opsctl's process by name (injected so tests need not
/// change the process environment).
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<Secret> + Send + Sync>;

/// The process environment; empty values count as unset.
pub fn process_env() -> EnvLookup {
    Arc::new(|name| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    })
}

/// The result of one check on one app, as `opsctl status` and `opsctl maintenance` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppResult {
    /// Fly app name.
    pub app: String,
    /// `ok`, `alert` or `unknown`.
    pub status: Status,
    /// One line for people.
    pub summary: String,
    /// Fingerprints of the signals raised (`app/kind/release/class`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<String>,
    /// When it was judged (UTC).
    pub at: DateTime<Utc>,
}

/// Runs maintenance checks. Cheap to share (`Arc`); one instance per process keeps the Oban
/// histories and the last finding per check and app.
pub struct Maintenance {
    fly: ReadOnlyFly,
    store: Arc<RecordStore>,
    record: bool,
    signals: mpsc::Sender<Signal>,
    clock: Arc<dyn Clock>,
    env: EnvLookup,
    prober: Option<HttpProber>,
    certs: Option<CertChecker>,
    slo: Option<SloTracker>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Last finding per (check, app), and its open record when it has one.
    last: HashMap<(CheckName, String), Last>,
    /// `available` samples per (app, queue), oldest first.
    oban: HashMap<(String, String), VecDeque<u64>>,
    /// Signals the incident pipeline's channel had no room for.
    dropped_signals: u64,
}

#[derive(Clone)]
struct Last {
    status: Status,
    fingerprints: Vec<String>,
    open: Option<Record>,
}

impl Maintenance {
    /// A runner reading Fly through `fly`, keeping findings in `store` (written only when
    /// `record` is true: `opsctl maintenance run-once` reads the store but does not write),
    /// sending signals on `signals`, taking `now` from `clock` and URLs from `env`.
    pub fn new(
        fly: ReadOnlyFly,
        store: Arc<RecordStore>,
        record: bool,
        signals: mpsc::Sender<Signal>,
        clock: Arc<dyn Clock>,
        env: EnvLookup,
    ) -> Self {
        Self {
            fly,
            store,
            record,
            signals,
            clock,
            env,
            prober: HttpProber::new().ok(),
            certs: None,
            slo: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Run [`CheckName::CertExpiry`] with `certs` (without one, that check has nothing to
    /// look at and reports no result).
    pub fn with_certs(mut self, certs: CertChecker) -> Self {
        self.certs = Some(certs);
        self
    }

    /// Keep every external probe result of [`CheckName::AppHealth`] in `slo`'s sample store
    /// and evaluate the app's `HealthSLO`s after each run (without one, SLOs are not tracked).
    pub fn with_slo(mut self, slo: SloTracker) -> Self {
        self.slo = Some(slo);
        self
    }

    /// The certificate checker, when there is one (its `status()` is the per-hostname view).
    pub fn certs(&self) -> Option<&CertChecker> {
        self.certs.as_ref()
    }

    /// The SLO tracker, when there is one.
    pub fn slo(&self) -> Option<&SloTracker> {
        self.slo.as_ref()
    }

    /// Signals dropped because the incident pipeline's channel was full.
    pub fn dropped_signals(&self) -> u64 {
        self.lock().dropped_signals
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run `check` once over every app of `set` and report each result. Apps for which the
    /// check has nothing to look at (no Redis declared, …) are left out.
    /// [`CheckName::CertExpiry`] runs the [`CertChecker`] (only due hostnames are checked) and
    /// reports one result per app that has a `CertWindow`, from the last assessment of each of
    /// its hostnames; without a checker it reports nothing.
    pub async fn run(&self, check: CheckName, set: &ManifestSet) -> Vec<AppResult> {
        if check == CheckName::CertExpiry {
            return self.cert_expiry(set).await;
        }
        let default = MaintenanceScheduleSpec::default();
        let schedule = set.schedules.first().map_or(&default, |m| &m.spec);
        let mut results = Vec::new();
        for app in &set.apps {
            let name = app.app_name();
            let judgement = match check {
                CheckName::AppHealth => {
                    let j = self.app_health(app, schedule, &set.slos).await;
                    Some(self.unless_rolling_out(name, j))
                }
                CheckName::MachineStatus => {
                    let j = self.machine_status(name, schedule).await;
                    Some(self.unless_rolling_out(name, j))
                }
                CheckName::PostgresConnections => self.postgres(app, schedule).await,
                CheckName::Redis => self.redis(app, schedule).await,
                CheckName::ObanQueueDepth => self.oban(app, schedule).await,
                CheckName::CostSnapshot => Some(self.cost(name, schedule).await),
                CheckName::CertExpiry => None, // handled above
            };
            if let Some(j) = judgement {
                results.push(self.report(check, name, j));
            }
        }
        results
    }

    /// `j`, or [`Judgement::during_rollout`] when `app` has a deploy in flight (its newest
    /// deploy record is `in_progress`): the rollout owns the app's health meanwhile. A store
    /// that cannot be read counts as no deploy: the check then raises what it sees.
    fn unless_rolling_out(&self, app: &str, j: Judgement) -> Judgement {
        let in_flight = self
            .store
            .deploys(Some(app))
            .ok()
            .and_then(|d| d.into_iter().next())
            .filter(|d| d.status == crate::records::DeployStatus::InProgress);
        match in_flight {
            Some(d) => j.during_rollout(&d.id),
            None => j,
        }
    }

    /// Send the signals, record the finding when it changed, and return the result.
    fn report(&self, check: CheckName, app: &str, j: Judgement) -> AppResult {
        let now = self.clock.now();
        for s in &j.signals {
            match self.signals.try_send(s.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.lock().dropped_signals += 1;
                    tracing::warn!(
                        check = check.as_str(),
                        app,
                        "incident pipeline is not keeping up: signal dropped"
                    );
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        let fingerprints = j.fingerprints();
        let key = (check, app.to_owned());
        let previous = {
            let state = self.lock();
            state.last.get(&key).cloned()
        };
        let previous = previous.or_else(|| self.last_recorded(check, app));
        let changed = previous
            .as_ref()
            .is_none_or(|p| p.status != j.status || p.fingerprints != fingerprints);
        let mut open = previous.and_then(|p| p.open);
        if changed {
            match j.status {
                Status::Ok => {
                    tracing::info!(check = check.as_str(), app, summary = %j.summary, "check ok")
                }
                Status::Alert => {
                    tracing::warn!(check = check.as_str(), app, summary = %j.summary, "check alert")
                }
                Status::Unknown => {
                    tracing::warn!(check = check.as_str(), app, summary = %j.summary, "check could not see")
                }
            }
            if self.record {
                if let Some(mut old) = open.take() {
                    let reason = if j.status == Status::Ok {
                        "resolved"
                    } else {
                        "superseded"
                    };
                    old.close(reason, now);
                    self.append(&old);
                }
                if j.status != Status::Ok {
                    let rec = finding(check, app, &j, &fingerprints, now);
                    self.append(&rec);
                    open = Some(rec);
                }
            }
        }
        self.lock().last.insert(
            key,
            Last {
                status: j.status,
                fingerprints: fingerprints.clone(),
                open,
            },
        );
        AppResult {
            app: app.to_owned(),
            status: j.status,
            summary: j.summary,
            signals: fingerprints,
            at: now,
        }
    }

    fn append(&self, rec: &Record) {
        if let Err(e) = self.store.append_record(rec) {
            tracing::error!(record = %rec.id, error = %e, "could not record a maintenance finding");
        }
    }

    /// The newest open `Check` record of `check` on `app` (after a restart, so an ongoing
    /// finding is not recorded again).
    fn last_recorded(&self, check: CheckName, app: &str) -> Option<Last> {
        let open = self
            .store
            .records(|r| {
                r.kind == RecordKind::Check
                    && r.app.as_deref() == Some(app)
                    && r.status != RecordStatus::Closed
                    && r.data.get("check").and_then(|c| c.as_str()) == Some(check.as_str())
            })
            .ok()?
            .into_iter()
            .next()?;
        let status = serde_json::from_value(open.data.get("status")?.clone()).ok()?;
        let fingerprints = serde_json::from_value(open.data.get("fingerprints")?.clone()).ok()?;
        Some(Last {
            status,
            fingerprints,
            open: Some(open),
        })
    }
}

/// A `Check` record for a finding: open while it lasts.
fn finding(
    check: CheckName,
    app: &str,
    j: &Judgement,
    fingerprints: &[String],
    now: DateTime<Utc>,
) -> Record {
    let mut rec = Record::new(
        RecordKind::Check,
        format!(
            "{} {app}: {}: {}",
            check.as_str(),
            j.status.as_str(),
            j.summary
        ),
        now,
    );
    rec.app = Some(app.to_owned());
    rec.priority = if j.status == Status::Alert { 2 } else { 3 };
    rec.description = j
        .signals
        .iter()
        .map(|s| s.detail.clone())
        .collect::<Vec<_>>()
        .join("\n");
    rec.labels = vec![
        "maintenance".into(),
        format!("check:{}", check.as_str()),
        format!("app:{app}"),
        j.status.as_str().into(),
    ];
    rec.data = serde_json::json!({
        "check": check.as_str(),
        "status": j.status,
        "summary": j.summary,
        "fingerprints": fingerprints,
        "signals": j.signals,
    });
    rec
}
