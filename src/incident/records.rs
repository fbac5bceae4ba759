//! The incident pipeline's records: `incident` (one per open fingerprint, a snapshot per
//! change), `postmortem` (`parent-child` to the incident, `caused-by` the deploy) and
//! `escalation` (`caused-by` the incident, labelled `eng` for the engineering namespace).
//! Shapes are documented in docs/incidents.md.

use chrono::{DateTime, Utc};
use opsctl_controllers::incident::Severity;
use opsctl_controllers::incident::book::{
    CORRELATED_FINGERPRINT, MONITORING_FINGERPRINT, OpenIncident,
};
use opsctl_controllers::incident::classify::Verdict;
use opsctl_controllers::incident::respond::Action;
use opsctl_controllers::signal::Signal;
use serde_json::{Value, json};

use super::respond::ActionResult;
use crate::records::{DeployRecord, LinkKind, Record, RecordKind, RecordStatus, RecordStore};

/// The newest snapshot of record `id`.
pub(super) fn latest(store: &RecordStore, id: &str) -> Option<Record> {
    store.history_of(id).ok().and_then(|mut h| h.pop())
}

/// Open (not closed) incidents in the journal, as the book holds them.
pub(super) fn open_incidents(store: &RecordStore) -> Vec<OpenIncident> {
    store
        .records(|r| r.kind == RecordKind::Incident && r.status != RecordStatus::Closed)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| serde_json::from_value(r.data.get("state")?.clone()).ok())
        .collect()
}

fn title(inc: &OpenIncident) -> String {
    if inc.fingerprint == MONITORING_FINGERPRINT {
        return "Monitoring path down: opsctl cannot observe Fly (no app incidents while blind)"
            .into();
    }
    if inc.fingerprint == CORRELATED_FINGERPRINT {
        return format!(
            "Many apps failing together ({} apps): suspected platform or region cause",
            inc.held_back_apps.len()
        );
    }
    format!(
        "{} {}: {} ({})",
        inc.class.as_str(),
        inc.app.as_deref().unwrap_or("-"),
        inc.kind.as_str(),
        inc.reason
    )
}

/// The incident record for `inc`: the previous snapshot updated, or a new record.
pub(super) fn incident_record(inc: &OpenIncident, previous: Option<&Record>) -> Record {
    let mut rec = previous.cloned().unwrap_or_else(|| {
        let mut r = Record::new(RecordKind::Incident, title(inc), inc.first_seen);
        r.id.clone_from(&inc.id);
        r.app.clone_from(&inc.app);
        r.labels = vec!["ops".into(), "incident".into()];
        if let Some(app) = &inc.app {
            r.labels.push(format!("app:{app}"));
        }
        if inc.fingerprint == MONITORING_FINGERPRINT {
            r.labels.push("monitoring".into());
        }
        if inc.fingerprint == CORRELATED_FINGERPRINT {
            r.labels.push("correlated".into());
        }
        r.data = json!({"actions": [], "timeline": [
            {"at": inc.first_seen, "event": format!("first signal {}", inc.fingerprint)}
        ]});
        r
    });
    rec.title = title(inc);
    rec.priority = inc.severity.priority();
    rec.updated_at = inc.last_seen.max(rec.updated_at);
    set_state(&mut rec, inc);
    rec
}

fn set_state(rec: &mut Record, inc: &OpenIncident) {
    if !rec.data.is_object() {
        rec.data = json!({});
    }
    let d = &mut rec.data;
    d["fingerprint"] = json!(inc.fingerprint);
    d["occurrences"] = json!(inc.occurrences);
    d["severity"] = json!(inc.severity);
    d["classification"] = json!(inc.class);
    d["confidence"] = json!(inc.confidence);
    d["reason"] = json!(inc.reason);
    d["first_seen"] = json!(inc.first_seen);
    d["last_seen"] = json!(inc.last_seen);
    if inc.fingerprint == MONITORING_FINGERPRINT || inc.fingerprint == CORRELATED_FINGERPRINT {
        d["held_back_apps"] = json!(inc.held_back_apps);
        d["held_back_signals"] = json!(inc.held_back);
    }
    d["state"] = serde_json::to_value(inc).unwrap_or(Value::Null);
}

/// A repeat: new counts and times.
pub(super) fn update_counts(rec: &mut Record, inc: &OpenIncident, now: DateTime<Utc>) {
    set_state(rec, inc);
    rec.updated_at = now;
}

fn timeline(rec: &mut Record, at: DateTime<Utc>, event: String) {
    if !rec.data["timeline"].is_array() {
        rec.data["timeline"] = json!([]);
    }
    if let Some(t) = rec.data["timeline"].as_array_mut() {
        t.push(json!({"at": at, "event": event}));
    }
}

/// The verdict, the signal and the blamed deploy on the record.
pub(super) fn set_verdict(
    rec: &mut Record,
    v: &Verdict,
    signal: &Signal,
    deploy: Option<&DeployRecord>,
    now: DateTime<Utc>,
) {
    rec.data["rule"] = json!(v.rule);
    rec.data["steps"] = json!(v.steps);
    rec.description = format!(
        "{} ({}, confidence {:.2}). Signal from {}: {}",
        v.class.as_str(),
        v.reason,
        v.confidence,
        signal.source,
        signal.detail
    );
    if let Some(d) = deploy {
        rec.data["deploy"] = json!(d.id);
        rec.data["commit"] = json!(d.commit);
        rec.link(LinkKind::CausedBy, d.id.clone());
    }
    if !rec.labels.iter().any(|l| l == v.class.as_str()) {
        rec.labels.push(v.class.as_str().to_owned());
    }
    rec.updated_at = now;
    timeline(
        rec,
        now,
        format!(
            "classified {} ({}, confidence {:.2}{})",
            v.class.as_str(),
            v.reason,
            v.confidence,
            v.rule
                .as_ref()
                .map_or(String::new(), |r| format!(", rule {r}"))
        ),
    );
}

/// Record the intent of an action before running it.
pub(super) fn intend(rec: &mut Record, action: &Action, now: DateTime<Utc>) {
    timeline(rec, now, format!("{} started", action.kind()));
    rec.updated_at = now;
}

/// Record an action's result.
pub(super) fn result(rec: &mut Record, r: &ActionResult) {
    timeline(
        rec,
        r.at,
        format!(
            "{} {}: {}",
            r.action,
            if r.ok { "succeeded" } else { "failed" },
            r.detail
        ),
    );
    if let Some(a) = rec.data["actions"].as_array_mut() {
        a.push(serde_json::to_value(r).unwrap_or(Value::Null));
    } else {
        rec.data["actions"] = json!([r]);
    }
    rec.updated_at = r.at;
}

/// Kinds of actions run (successfully or not) on this incident: never run twice.
pub(super) fn done_kinds(rec: &Record) -> Vec<String> {
    rec.data["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["skipped"] != json!(true))
                .filter_map(|x| x["action"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The postmortem that closes (or hands over) an outage or degradation.
pub(super) fn postmortem(
    incident: &Record,
    v: &Verdict,
    results: &[ActionResult],
    deploy: Option<&DeployRecord>,
    resolved: bool,
    now: DateTime<Utc>,
) -> Record {
    let app = incident.app.as_deref().unwrap_or("-");
    let mut pm = Record::new(
        RecordKind::Postmortem,
        format!("Postmortem: {} {app} ({})", v.class.as_str(), v.reason),
        now,
    );
    pm.app.clone_from(&incident.app);
    pm.priority = Severity::of(v.class).priority();
    pm.labels = vec!["ops".into(), "postmortem".into(), v.class.as_str().into()];
    if let Some(a) = &incident.app {
        pm.labels.push(format!("app:{a}"));
    }
    pm.link(LinkKind::ParentChild, incident.id.clone());
    if let Some(d) = deploy {
        pm.link(LinkKind::CausedBy, d.id.clone());
        if let Some(c) = &d.commit {
            pm.labels.push(format!("commit:{c}"));
        }
    }
    let actions: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "- {}: {} — {}",
                r.action,
                if r.skipped {
                    "skipped"
                } else if r.ok {
                    "ok"
                } else {
                    "FAILED"
                },
                r.detail
            )
        })
        .collect();
    pm.description = format!(
        "Incident {} ({}), classified {} ({}, confidence {:.2}).\nCause: {}.\nActions:\n{}\nOutcome: {}.",
        incident.id,
        incident.data["fingerprint"].as_str().unwrap_or("-"),
        v.class.as_str(),
        v.reason,
        v.confidence,
        deploy.map_or_else(
            || "no deploy in the window".to_owned(),
            |d| format!(
                "deploy {} of {} (commit {})",
                d.id,
                d.image,
                d.commit.as_deref().unwrap_or("-")
            )
        ),
        if actions.is_empty() {
            "- none".to_owned()
        } else {
            actions.join("\n")
        },
        if resolved {
            "resolved"
        } else {
            "handed to a human (escalated)"
        }
    );
    pm.data = json!({
        "incident": incident.id,
        "fingerprint": incident.data["fingerprint"],
        "classification": v.class,
        "confidence": v.confidence,
        "reason": v.reason,
        "timeline": incident.data["timeline"],
        "actions": results,
        "resolved": resolved,
        "deploy": deploy.map(|d| d.id.clone()),
        "commit": deploy.and_then(|d| d.commit.clone()),
        "image": deploy.map(|d| d.image.clone()),
    });
    if resolved {
        pm.close("written", now);
    }
    pm
}

/// An escalation to the engineering namespace, `caused-by` the incident.
pub(super) fn escalation(incident: &Record, reasons: &[String], now: DateTime<Utc>) -> Record {
    let mut e = Record::new(
        RecordKind::Escalation,
        format!("Escalation: {}", incident.title),
        now,
    );
    e.app.clone_from(&incident.app);
    e.priority = incident.priority;
    e.labels = vec!["eng".into(), "escalation".into()];
    if let Some(a) = &incident.app {
        e.labels.push(format!("app:{a}"));
    }
    e.link(LinkKind::CausedBy, incident.id.clone());
    for l in &incident.links {
        if l.kind == LinkKind::CausedBy {
            e.link(LinkKind::Related, l.to.clone());
        }
    }
    e.description = format!(
        "{}\nReasons: {}\nIncident: {}",
        incident.description,
        reasons.join("; "),
        incident.id
    );
    e.data = json!({
        "incident": incident.id,
        "fingerprint": incident.data["fingerprint"],
        "reasons": reasons,
    });
    e
}
