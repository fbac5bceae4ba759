//! `opsctl status [APP]`: what opsctl knows about each app, as a list of sections. Each section
//! is one function from (manifests, records) to lines and a JSON value; add a section by adding
//! a function to [`SECTIONS`]. Sections here read no Fly state.
//!
//! Sections: `governance` (policy, burn-in phase and counted deploys, approvals waiting, last
//! deploy), `maintenance` (the last result of each maintenance check for the app, with its
//! age, from `<state>/maintenance-status.json`), `certificates` (per `CertWindow` hostname:
//! days left, status, next check, from `<state>/maintenance/certs.json`), `slo` (per
//! `HealthSLO`: error budget left and burn rate per alert window, computed now from the probe
//! samples under `<state>/slo/`), `incidents` (open incidents of the app from the journal).
//! The maintenance files are written by `opsctl run`; before its first checks the sections
//! say so. Times are UTC; ages and budgets are computed at the time `status` runs.
//!
//! JSON: `{"kind":"status","apps":[{"app":…,"<section>":{…}, …}]}`:
//! - `governance`: `{"policy":…,"phase":1|2|3,"counted_deploys":N,"next_deploy":N,
//!   "pending_approvals":[ids],"last_deploy"?:{"id":…,"status":…,"image":…}}`.
//! - `maintenance`: `{"updated_at": RFC 3339 | null, "checks": [{"check": "appHealth", "status":
//!   "ok"|"alert"|"unknown", "summary", "signals": [fingerprints], "at", "age_seconds"}]}` (only
//!   checks that have a result for the app; `updated_at` null: no status file yet).
//! - `certificates`: `{"hostnames": [{"hostname", "status": "ok"|"alert"|"unknown",
//!   "days_left": N | null, "not_after": RFC 3339 | null, "findings": ["expiring", …],
//!   "checked_at", "next_check_at"}]}`; `status` is `alert` when the last check had findings,
//!   `unknown` when neither Fly's view nor the handshake could be read.
//! - `slo`: `{"slos": [{"slo": name, "objectives": [{"sli": "availability"|"latency",
//!   "target": 0.999, "period_samples": N, "period_bad": N, "budget_remaining": 0.87 | null,
//!   "burn_rates": [{"window_secs", "samples", "burn_rate": 1.2 | null}]}], "firing":
//!   [{"sli", "severity": "page"|"ticket"}]}]}`; a null burn rate has fewer samples than
//!   `minSamples`, a null budget no samples at all.
//! - `incidents`: `{"open": [{"id", "title", "classification", "severity", "opened_at",
//!   "age_seconds"}]}`, newest first.
//! - `reconciler` (per app): the running `opsctl run`'s view of the app, `{"last_reconcile",
//!   "result", "next_reconcile", "pace": "idle"|"active"|"approval"|"backoff",
//!   "consecutive_failures", "error"?}`, or `null` when no process answers or it has not
//!   reconciled the app yet.
//!
//! The live state comes from the running process: `GET <--server>/status` (default the
//! default listen address of `opsctl run`, `http://127.0.0.1:9464`; 2 s timeout). The top-level
//! `"reconciler"` is that answer (`{"role": "single"|"leader"|"standby", "running", "workers",
//! "commit", "queue_depth", "apps": […]}`, see `StatusBoard::snapshot`) with `"server"` added,
//! or `{"running": false, "server": URL, "why": …}` when nothing answers there.

use chrono::{DateTime, Utc};
use clap::Args;
use opsctl_controllers::governance::policy_for;
use opsctl_crds::{FlyApp, ManifestSet};
use serde_json::{Value, json};
use std::process::ExitCode;

use super::output::{Format, print_json, print_text};
use super::{Global, validate};
use crate::governance::approvals;
use crate::governance::plan::app_burn_in;
use crate::maintenance::MaintenanceStatus;
use crate::maintenance::certs::{self, CertHostStatus};
use crate::maintenance::slo::{SampleStore, evaluate_slo};
use crate::records::{RecordKind, RecordStatus, RecordStore};

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this app.
    pub app: Option<String>,
    /// Base URL of a running `opsctl run`'s listener, for the reconciler's live state
    /// (`GET /status`); nothing answering there means "not running".
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    pub server: String,
}

/// What one section says about one app: text lines and a JSON value.
pub struct Section {
    /// Key in JSON, heading in text.
    pub name: &'static str,
    /// Lines for people.
    pub lines: Vec<String>,
    /// The same facts as JSON.
    pub json: Value,
}

/// Inputs every section gets.
pub struct StatusInputs<'a> {
    /// The manifest set.
    pub set: &'a ManifestSet,
    /// The record store, read-only.
    pub store: &'a RecordStore,
    /// The maintenance status `opsctl run` wrote (`Ok(None)`: none yet; `Err`: unreadable).
    pub maintenance: Result<Option<MaintenanceStatus>, String>,
    /// The certificate checker's last result per hostname (`Err`: unreadable).
    pub certs: Result<Vec<CertHostStatus>, String>,
    /// The probe samples of the `HealthSLO`s.
    pub samples: SampleStore,
    /// Now (UTC), for ages and SLO windows.
    pub now: DateTime<Utc>,
    /// The running reconciler's `/status` answer, when a process answered.
    pub live: Option<Value>,
}

type SectionFn = fn(&StatusInputs<'_>, &FlyApp) -> anyhow::Result<Section>;

/// The sections, in display order.
const SECTIONS: &[SectionFn] = &[
    reconciler,
    governance,
    maintenance,
    certificates,
    slo,
    incidents,
];

/// The running reconciler's view of one app (from `GET /status`).
fn reconciler(inputs: &StatusInputs<'_>, app: &FlyApp) -> anyhow::Result<Section> {
    let Some(live) = &inputs.live else {
        return Ok(Section {
            name: "reconciler",
            lines: vec!["not running (no `opsctl run` answers; see the top line)".into()],
            json: Value::Null,
        });
    };
    let entry = live["apps"]
        .as_array()
        .and_then(|apps| apps.iter().find(|a| a["app"] == app.app_name()))
        .cloned();
    let Some(entry) = entry else {
        return Ok(Section {
            name: "reconciler",
            lines: vec!["not reconciled yet by the running process".into()],
            json: Value::Null,
        });
    };
    let at = |k: &str| {
        entry[k]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
    };
    let mut line = match at("last_reconcile") {
        Some(t) => format!(
            "last {} {} ago",
            entry["result"].as_str().unwrap_or("-"),
            age_of(inputs.now, t)
        ),
        None => "not reconciled yet".to_owned(),
    };
    if let Some(next) = at("next_reconcile") {
        let wait = super::pending::age(next - inputs.now);
        line.push_str(&format!(
            ", next in {wait} ({})",
            entry["pace"].as_str().unwrap_or("-")
        ));
    }
    let failures = entry["consecutive_failures"].as_u64().unwrap_or(0);
    if failures > 0 {
        line.push_str(&format!(", {failures} consecutive failure(s)"));
    }
    let mut lines = vec![line];
    if let Some(e) = entry["error"].as_str() {
        lines.push(format!("last error: {e}"));
    }
    Ok(Section {
        name: "reconciler",
        lines,
        json: entry,
    })
}

/// Ask the running `opsctl run` at `server` for its live state: `Ok(snapshot)`, or `Err(why
/// not)` when nothing answers (not running) or the answer is not the reconciler's.
async fn live_state(server: &str) -> Result<Value, String> {
    let url = format!("{}/status", server.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let resp = client.get(&url).send().await.map_err(|e| {
        if e.is_connect() || e.is_timeout() {
            "nothing answers".to_owned()
        } else {
            format!("request failed: {e}")
        }
    })?;
    if !resp.status().is_success() {
        return Err(format!("{url} answered {}", resp.status()));
    }
    let v: Value = resp
        .json()
        .await
        .map_err(|e| format!("{url} did not answer JSON: {e}"))?;
    if v["kind"] != "reconciler" {
        return Err(format!("{url} is not an opsctl reconciler's status"));
    }
    Ok(v)
}

fn age_of(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    super::pending::age(now - t)
}

fn maintenance(inputs: &StatusInputs<'_>, app: &FlyApp) -> anyhow::Result<Section> {
    let name = app.app_name();
    let status = match &inputs.maintenance {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Ok(Section {
                name: "maintenance",
                lines: vec!["no maintenance status yet (`opsctl run` writes it)".into()],
                json: json!({"updated_at": null, "checks": []}),
            });
        }
        Err(e) => anyhow::bail!("{e}"),
    };
    let mut lines = Vec::new();
    let mut checks = Vec::new();
    for c in &status.checks {
        for r in c.results.iter().filter(|r| r.app == name) {
            let age = (inputs.now - r.at).num_seconds().max(0);
            lines.push(format!(
                "{:<20} {:<8} {:>7} ago  {}",
                c.check.as_str(),
                r.status.as_str(),
                age_of(inputs.now, r.at),
                r.summary
            ));
            checks.push(
                json!({"check": c.check, "status": r.status, "summary": r.summary,
                "signals": r.signals, "at": r.at, "age_seconds": age}),
            );
        }
    }
    if lines.is_empty() {
        lines.push("no check result for this app yet".into());
    }
    Ok(Section {
        name: "maintenance",
        lines,
        json: json!({"updated_at": status.updated_at, "checks": checks}),
    })
}

fn certificates(inputs: &StatusInputs<'_>, app: &FlyApp) -> anyhow::Result<Section> {
    let name = app.app_name();
    let all = match &inputs.certs {
        Ok(list) => list,
        Err(e) => anyhow::bail!("{e}"),
    };
    let declared = inputs
        .set
        .cert_windows
        .iter()
        .any(|w| w.spec.app_name(w.name()) == name);
    let mut lines = Vec::new();
    let mut hosts = Vec::new();
    for h in all.iter().filter(|h| h.last.app == name) {
        let a = &h.last;
        let status = if a.is_unknown() {
            "unknown"
        } else if a.findings.is_empty() {
            "ok"
        } else {
            "alert"
        };
        let findings: Vec<&str> = a.findings.iter().map(|f| f.kind.class()).collect();
        let days = a.remaining.map_or_else(
            || "days left unknown".to_owned(),
            |r| format!("{} days left", r.days_left),
        );
        let mut line = format!(
            "{:<32} {:<18} {:<8} next check {}",
            a.hostname,
            days,
            status,
            h.next_check_at.format("%Y-%m-%d %H:%M UTC")
        );
        if !findings.is_empty() {
            line.push_str(&format!(" ({})", findings.join(", ")));
        }
        lines.push(line);
        hosts.push(json!({"hostname": a.hostname, "status": status,
            "days_left": a.remaining.map(|r| r.days_left), "not_after": a.not_after,
            "findings": findings, "checked_at": a.at, "next_check_at": h.next_check_at}));
    }
    if lines.is_empty() {
        lines.push(if declared {
            "not checked yet (`opsctl run` checks each CertWindow hostname)".into()
        } else {
            "no CertWindow for this app".into()
        });
    }
    Ok(Section {
        name: "certificates",
        lines,
        json: json!({"hostnames": hosts}),
    })
}

fn slo(inputs: &StatusInputs<'_>, app: &FlyApp) -> anyhow::Result<Section> {
    let name = app.app_name();
    let mut lines = Vec::new();
    let mut slos = Vec::new();
    for m in inputs
        .set
        .slos
        .iter()
        .filter(|s| s.spec.app_name(s.name()) == name)
    {
        let report = evaluate_slo(&inputs.samples, m, inputs.now)?;
        let mut objectives = Vec::new();
        for o in &report.objectives {
            let budget = o.budget_remaining.map_or_else(
                || "no samples".to_owned(),
                |b| format!("{:.1}% of budget left", b * 100.0),
            );
            let burns: Vec<String> = o
                .burn_rates
                .iter()
                .map(|w| {
                    let win =
                        opsctl_crds::DurationStr(std::time::Duration::from_secs(w.window_secs));
                    w.burn_rate
                        .map_or_else(|| format!("{win} -"), |b| format!("{win} {b:.1}×"))
                })
                .collect();
            lines.push(format!(
                "{} {} {:.2}%: {budget}, {} of {} samples bad; burn {}",
                m.name(),
                o.sli.as_str(),
                o.target * 100.0,
                o.period_bad,
                o.period_samples,
                burns.join(", ")
            ));
            objectives.push(serde_json::to_value(o)?);
        }
        let firing: Vec<Value> = report
            .alerts
            .iter()
            .filter(|a| a.firing)
            .map(|a| json!({"sli": a.sli, "severity": a.severity}))
            .collect();
        for a in report.alerts.iter().filter(|a| a.firing) {
            lines.push(format!(
                "{} {} FIRING: {} at {}× over {} and {}",
                m.name(),
                a.sli.as_str(),
                serde_json::to_value(a.severity)?
                    .as_str()
                    .unwrap_or_default(),
                a.threshold,
                opsctl_crds::DurationStr(std::time::Duration::from_secs(a.long_window_secs)),
                opsctl_crds::DurationStr(std::time::Duration::from_secs(a.short_window_secs)),
            ));
        }
        slos.push(json!({"slo": m.name(), "objectives": objectives, "firing": firing}));
    }
    if lines.is_empty() {
        lines.push("no HealthSLO for this app".into());
    }
    Ok(Section {
        name: "slo",
        lines,
        json: json!({"slos": slos}),
    })
}

fn incidents(inputs: &StatusInputs<'_>, app: &FlyApp) -> anyhow::Result<Section> {
    let name = app.app_name();
    let mut open = inputs.store.records(|r| {
        r.kind == RecordKind::Incident
            && r.app.as_deref() == Some(name)
            && r.status != RecordStatus::Closed
    })?;
    open.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let mut lines = Vec::new();
    let mut list = Vec::new();
    for r in &open {
        let class = r.data.get("classification").cloned().unwrap_or(Value::Null);
        let severity = r.data.get("severity").cloned().unwrap_or(Value::Null);
        lines.push(format!(
            "{}  {:<24} {:<9} open for {}  {}",
            r.id,
            text(&class),
            text(&severity),
            age_of(inputs.now, r.created_at),
            r.title
        ));
        list.push(
            json!({"id": r.id, "title": r.title, "classification": class,
            "severity": severity, "opened_at": r.created_at,
            "age_seconds": (inputs.now - r.created_at).num_seconds().max(0)}),
        );
    }
    if lines.is_empty() {
        lines.push("no open incident".into());
    }
    Ok(Section {
        name: "incidents",
        lines,
        json: json!({"open": list}),
    })
}

fn governance(inputs: &StatusInputs<'_>, app: &FlyApp) -> anyhow::Result<Section> {
    let name = app.app_name();
    let (policy, source) = policy_for(&inputs.set.policies, name);
    let (burn, records) = app_burn_in(inputs.store, name, &policy.burn_in)?;
    let pending: Vec<String> = approvals::pending(inputs.store, Some(name))?
        .iter()
        .map(|a| a.id().to_owned())
        .collect();
    let mut lines = vec![format!(
        "policy {source}: burn-in phase {}, {} counted deploy(s), the next is deploy {}",
        burn.phase,
        burn.count,
        burn.count + 1
    )];
    if pending.is_empty() {
        lines.push("no approval waiting".into());
    } else {
        lines.push(format!("waiting for approval: {}", pending.join(", ")));
    }
    let last = records.first();
    if let Some(r) = last {
        lines.push(format!(
            "last deploy {} {} ({})",
            r.id,
            r.status.as_str(),
            r.image
        ));
    }
    let mut json = json!({"policy": source, "phase": burn.phase, "counted_deploys": burn.count,
        "next_deploy": burn.count + 1, "pending_approvals": pending});
    if let Some(r) = last {
        json["last_deploy"] = json!({"id": r.id, "status": r.status, "image": r.image});
    }
    Ok(Section {
        name: "governance",
        lines,
        json,
    })
}

pub async fn exec(args: StatusArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let set = validate::load(global)?;
    let apps: Vec<&FlyApp> = set
        .apps
        .iter()
        .filter(|a| args.app.as_deref().is_none_or(|n| n == a.app_name()))
        .collect();
    if let Some(name) = &args.app
        && apps.is_empty()
    {
        anyhow::bail!(
            "no FlyApp named {name:?} in {}",
            validate::shown(&global.manifests)
        );
    }
    let store = RecordStore::open_read_at(global.store.as_deref(), &global.state)?;
    let live = live_state(&args.server).await;
    let (live, live_json, live_line) = match live {
        Ok(mut v) => {
            let line = format!(
                "reconciler: running at {} (role {}, commit {}, queue depth {}, {} workers)",
                args.server,
                v["role"].as_str().unwrap_or("-"),
                v["commit"].as_str().map_or("-", |c| &c[..c.len().min(12)]),
                v["queue_depth"],
                v["workers"],
            );
            let snapshot = v.clone();
            v["server"] = json!(args.server);
            (Some(snapshot), v, line)
        }
        Err(why) => (
            None,
            json!({"running": false, "server": args.server, "why": why}),
            format!("reconciler: not running ({why} at {})", args.server),
        ),
    };
    let inputs = StatusInputs {
        set: &set,
        store: &store,
        maintenance: MaintenanceStatus::load(&global.state)
            .map_err(|e| format!("{}: {e}", MaintenanceStatus::path(&global.state).display())),
        certs: certs::load_status(&global.state).map_err(|e| e.to_string()),
        samples: SampleStore::new(&global.state),
        now: crate::runtime::clock::Clock::now(&crate::runtime::clock::SystemClock),
        live,
    };
    let mut values = Vec::new();
    let mut text = format!("{live_line}\n");
    for app in apps {
        let mut v = json!({"app": app.app_name()});
        text.push_str(&format!("{}\n", app.app_name()));
        for section in SECTIONS {
            let s = section(&inputs, app)?;
            text.push_str(&format!("  {}:\n", s.name));
            for l in &s.lines {
                text.push_str(&format!("    {l}\n"));
            }
            v[s.name] = s.json;
        }
        values.push(v);
    }
    if global.output == Format::Json {
        print_json(&json!({"kind": "status", "reconciler": live_json, "apps": values}))?;
    } else {
        print_text(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
