//! Diagnose: the evidence around a signal (machine states and events, Fly logs around the
//! first signal, the app's recent deploys), and the hand-off from the deploy pipeline (a
//! finished deploy → signals).

use chrono::{DateTime, Duration, Utc};
use opsctl_controllers::incident::classify::{Evidence, machine_counts};
use opsctl_controllers::incident::respond::RecentDeploy;
use opsctl_controllers::observed::ObservedApp;
use opsctl_controllers::signal::{Signal, SignalKind};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::fly::observe::observe_app;
use crate::fly::transport::{Call, RetryPolicy};
use crate::fly::{FlyClient, FlyError};
use crate::records::{DeployRecord, DeployStatus, RecordStore};

/// Most log lines kept per diagnosis.
const MAX_LOG_LINES: usize = 200;

/// One app log line, as the logs endpoint answers it (docs/simulator.md "Logs").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix time, milliseconds.
    pub timestamp_ms: i64,
    /// Machine that printed it; empty for app-level lines.
    #[serde(default)]
    pub machine_id: String,
    /// `debug`, `info`, `warn`, `error`.
    #[serde(default)]
    pub level: String,
    /// The line.
    pub message: String,
}

#[derive(Deserialize)]
struct LogsPage {
    #[serde(default)]
    logs: Vec<LogLine>,
}

/// `GET /v1/apps/{app}/logs?since=<ms>&limit=<n>` on the Machines origin: app log lines after
/// `since`, oldest first. This polling endpoint is the simulator's (Fly's own logs are a
/// stream, `GET https://api.fly.io/api/v1/apps/{app}/logs`; docs/simulator.md "Logs").
///
/// # Errors
/// [`FlyError`] when the endpoint cannot be read.
pub async fn fetch_logs(
    client: &FlyClient,
    app: &str,
    since: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<LogLine>, FlyError> {
    let path = format!("/v1/apps/{app}/logs");
    let call = Call {
        method: Method::GET,
        url: format!(
            "{}{path}?since={}&limit={limit}",
            client.endpoints().machines,
            since.timestamp_millis()
        ),
        path,
        action: "logs",
        scope: app.to_owned(),
        read: true,
        body: None,
        nonce: None,
        timeout: std::time::Duration::from_secs(30),
        retry: RetryPolicy::Idempotent,
    };
    let page: LogsPage = client.transport.send(&call).await?;
    Ok(page.logs)
}

/// What the diagnosis found, kept in the incident's `data.diagnosis`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Machines: `id state (checks …, last exit …)`.
    pub machines: Vec<String>,
    /// Log lines around the first signal (at most `MAX_LOG_LINES`).
    pub logs: Vec<String>,
    /// Recent deploys of the app: `id status image (started …)`, newest first (at most 5).
    pub deploys: Vec<String>,
    /// What could not be read (Fly unreachable, …): the evidence is partial, never guessed.
    pub gaps: Vec<String>,
}

/// The evidence for classifying `signal`, and the diagnosis behind it.
pub async fn gather(
    client: &FlyClient,
    signal: &Signal,
    first_seen: DateTime<Utc>,
    log_window: Duration,
    occurrences_last_hour: u32,
) -> (Evidence, Diagnosis, Option<ObservedApp>) {
    let mut d = Diagnosis::default();
    let mut ev = Evidence {
        occurrences_last_hour,
        probes_passing: match signal.kind {
            SignalKind::ProbeFailed => Some(false),
            _ => None,
        },
        ..Evidence::default()
    };
    let Some(app) = signal.app.as_deref() else {
        return (ev, d, None);
    };
    let observed = match observe_app(client, app).await {
        Ok(o) => {
            let (expected, down) = machine_counts(&o.machines, None);
            ev.machines_expected = expected;
            ev.machines_down = Some(down);
            d.machines = o
                .machines
                .iter()
                .map(|m| {
                    let checks: Vec<String> = m
                        .checks
                        .iter()
                        .map(|c| format!("{}={:?}", c.name, c.state).to_lowercase())
                        .collect();
                    let exit = m.last_exit.as_ref().map_or(String::new(), |e| {
                        format!(
                            ", last exit {} at {} (requested {}, oom {})",
                            e.exit_code,
                            e.at.to_rfc3339(),
                            e.requested_stop,
                            e.oom_killed
                        )
                    });
                    format!(
                        "{} {:?} image {} (checks [{}]{exit})",
                        m.id,
                        m.state,
                        m.image,
                        checks.join(", ")
                    )
                })
                .collect();
            Some(o)
        }
        Err(e) => {
            d.gaps.push(format!("machines: {e}"));
            None
        }
    };
    match fetch_logs(client, app, first_seen - log_window, MAX_LOG_LINES).await {
        Ok(lines) => {
            // Classification reads the lines of the signal's machine only (another machine's
            // child restart says nothing about this one); the diagnosis keeps them all.
            ev.logs = lines
                .iter()
                .filter(|l| signal.machine.as_ref().is_none_or(|m| *m == l.machine_id))
                .map(|l| l.message.clone())
                .collect();
            d.logs = lines
                .iter()
                .map(|l| {
                    let at = DateTime::<Utc>::from_timestamp_millis(l.timestamp_ms)
                        .map_or_else(String::new, |t| t.to_rfc3339());
                    format!("{at} {} [{}] {}", l.machine_id, l.level, l.message)
                })
                .collect();
        }
        Err(e) => d.gaps.push(format!("logs: {e}")),
    }
    (ev, d, observed)
}

/// The deploy the incident is about: the signal's own deploy record, else the app's newest.
pub fn blamed_deploy(
    store: &RecordStore,
    app: &str,
    signal_deploy: Option<&str>,
) -> (Option<DeployRecord>, Vec<String>) {
    let deploys = match store.deploys(Some(app)) {
        Ok(d) => d,
        Err(e) => return (None, vec![format!("deploys: {e}")]),
    };
    let summary: Vec<String> = deploys
        .iter()
        .take(5)
        .map(|r| {
            format!(
                "{} {} {} (started {})",
                r.id,
                r.status.as_str(),
                r.image,
                r.started_at.to_rfc3339()
            )
        })
        .collect();
    let rec = match signal_deploy {
        Some(id) => deploys.into_iter().find(|r| r.id == id),
        None => deploys.into_iter().next(),
    };
    (rec, summary)
}

/// The response rules' view of a deploy record.
pub fn recent(rec: &DeployRecord) -> RecentDeploy {
    RecentDeploy {
        id: rec.id.clone(),
        started_at: rec.started_at,
        rolled_back: rec.rollback.is_some(),
    }
}

/// The hand-off from the deploy pipeline: signals for a finished deploy `rec` of `app`.
///
/// - failed, rolled back or rollback failed → `deploy_failed` (class = the status);
/// - any process group left with zero healthy machines (every expected machine stopped,
///   failed or with checks not passing; case BUG-02) → `deploy_outage`
///   (class `zero_healthy`), whatever the deploy tool's own status said.
///
/// Call it once the checks had time to run (the reconciler waits `settle` first). Fly that
/// cannot be observed gives no `deploy_outage` (blind is never unhealthy).
pub async fn after_deploy(
    client: &FlyClient,
    rec: &DeployRecord,
    now: DateTime<Utc>,
) -> Vec<Signal> {
    let base = Signal {
        app: Some(rec.app.clone()),
        kind: SignalKind::DeployFailed,
        release: rec.release.as_ref().map(|r| r.version),
        class: rec.status.as_str().to_owned(),
        source: "deploy/health".into(),
        at: now,
        machine: None,
        detail: rec.reason.clone().unwrap_or_default(),
        deploy: Some(rec.id.clone()),
        blind: None,
    };
    let failed = matches!(
        rec.status,
        DeployStatus::Failed | DeployStatus::RolledBack | DeployStatus::RollbackFailed
    );
    if rec.status == DeployStatus::InProgress || rec.status == DeployStatus::Halted {
        return vec![];
    }
    let mut out = Vec::new();
    if let Ok(o) = observe_app(client, &rec.app).await {
        let mut groups: Vec<&str> = o.machines.iter().map(|m| m.group.as_str()).collect();
        groups.sort_unstable();
        groups.dedup();
        for g in groups {
            let (expected, down) = machine_counts(&o.machines, Some(g));
            if expected > 0 && down == expected {
                out.push(Signal {
                    kind: SignalKind::DeployOutage,
                    class: "zero_healthy".into(),
                    detail: format!(
                        "after deploy {}: 0 of {expected} machines of group {g} healthy",
                        rec.id
                    ),
                    ..base.clone()
                });
                break;
            }
        }
    }
    // The outage is the worse report of the same deploy: one incident, not two.
    if out.is_empty() && failed {
        out.push(base);
    }
    out
}
