//! `opsctl history [APP]`: deploy records, newest first, then incidents, postmortems and
//! escalations (docs/incidents.md).
//!
//! JSON: `{"kind":"history","deploys":[deploy record…],"records":[record…]}` (deploy fields as
//! in `docs/records.md`, other records as in `docs/incidents.md`).

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Global;
use super::output::{Format, print_json, print_text};
use crate::records::{Record, RecordKind, RecordStatus, RecordStore};

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this app.
    pub app: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

pub fn exec(args: HistoryArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = RecordStore::open_read(&global.state);
    let mut deploys = store.deploys(args.app.as_deref())?;
    deploys.truncate(args.limit);
    let mut records = store.records(|r| {
        matches!(
            r.kind,
            RecordKind::Incident | RecordKind::Postmortem | RecordKind::Escalation
        ) && args
            .app
            .as_deref()
            .is_none_or(|a| r.app.as_deref().is_none_or(|ra| ra == a))
    })?;
    records.truncate(args.limit);
    if global.output == Format::Json {
        print_json(&json!({"kind": "history", "deploys": deploys, "records": records}))?;
        return Ok(ExitCode::SUCCESS);
    }
    let incidents = incident_text(&records);
    if deploys.is_empty() && !records.is_empty() {
        print_text(&incidents)?;
        return Ok(ExitCode::SUCCESS);
    }
    if deploys.is_empty() {
        print_text(&format!(
            "no deploy records in {}\n",
            global.state.display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "{:<33} {:<20} {:<15} {:<8} {:<9} {}\n",
        "RECORD", "STARTED (UTC)", "APP", "RELEASE", "COMMIT", "STATUS / IMAGE"
    );
    for r in &deploys {
        let release = r
            .release
            .as_ref()
            .map(|r| format!("v{}", r.version))
            .unwrap_or_else(|| "-".into());
        let commit = r
            .commit
            .as_deref()
            .map(|c| &c[..c.len().min(8)])
            .unwrap_or("-");
        text.push_str(&format!(
            "{:<33} {:<20} {:<15} {:<8} {:<9} {} {}\n",
            r.id,
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.app,
            release,
            commit,
            r.status.as_str(),
            r.image
        ));
        if let Some(reason) = &r.reason {
            text.push_str(&format!("    {reason}\n"));
        }
    }
    text.push_str(&incidents);
    print_text(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Incidents, postmortems and escalations as a table (empty string when there are none).
/// Records about no app (opsctl's own blindness) are listed for every app.
fn incident_text(records: &[Record]) -> String {
    if records.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "\n{:<38} {:<20} {:<15} {:<8} {}\n",
        "RECORD", "CREATED (UTC)", "APP", "STATUS", "TITLE"
    );
    for r in records {
        let status = match r.status {
            RecordStatus::Open => "open",
            RecordStatus::InProgress => "active",
            RecordStatus::Blocked => "blocked",
            RecordStatus::Closed => "closed",
        };
        text.push_str(&format!(
            "{:<38} {:<20} {:<15} {:<8} {}\n",
            r.id,
            r.created_at.format("%Y-%m-%d %H:%M:%S"),
            r.app.as_deref().unwrap_or("-"),
            status,
            r.title
        ));
    }
    text
}
