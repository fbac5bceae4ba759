//! `opsctl history [APP]`: deploy records, then the app's other records (incidents,
//! postmortems, approvals, escalations, check findings), each newest first.
//!
//! JSON: `{"kind":"history","deploys":[deploy record…],"records":[record…]}` (fields as in
//! `docs/records.md`). Records imported from a beads file (kind `bead`) are left out unless
//! `--imported`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Global;
use super::output::{Format, print_json, print_text};
use crate::records::{Record, RecordKind, RecordStore};

/// Arguments of `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this app.
    pub app: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Also list issues imported from a beads file (`opsctl records import`).
    #[arg(long)]
    pub imported: bool,
}

pub fn exec(args: HistoryArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = RecordStore::open_read_at(global.store.as_deref(), &global.state)?;
    let mut deploys = store.deploys(args.app.as_deref())?;
    deploys.truncate(args.limit);
    let app = args.app.as_deref();
    let mut records = store.records(|r| {
        (args.imported || r.kind != RecordKind::Bead)
            // Records about no app (opsctl's own blindness) belong to every app's history.
            && app.is_none_or(|a| r.app.as_deref().is_none_or(|ra| ra == a))
    })?;
    records.truncate(args.limit);
    if global.output == Format::Json {
        print_json(&json!({"kind": "history", "deploys": deploys, "records": records}))?;
        return Ok(ExitCode::SUCCESS);
    }
    if deploys.is_empty() {
        let of = app.map_or_else(String::new, |a| format!(" of {a}"));
        print_text(&format!(
            "no deploy records{of} in {}\n",
            global.state.display()
        ))?;
        print_text(&records_table(&records))?;
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
    print_text(&text)?;
    print_text(&records_table(&records))?;
    Ok(ExitCode::SUCCESS)
}

/// The non-deploy records as a table after a blank line; empty when there are none.
fn records_table(records: &[Record]) -> String {
    if records.is_empty() {
        return String::new();
    }
    let mut text = format!(
        "\n{:<37} {:<11} {:<20} {:<15} {:<14} {}\n",
        "RECORD", "KIND", "CREATED (UTC)", "APP", "STATUS", "P  TITLE"
    );
    for r in records {
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let status = match &r.close_reason {
            Some(reason) => format!("{status}:{reason}"),
            None => status,
        };
        text.push_str(&format!(
            "{:<37} {:<11} {:<20} {:<15} {:<14} P{} {}\n",
            r.id,
            r.kind.as_str(),
            r.created_at.format("%Y-%m-%d %H:%M:%S"),
            r.app.as_deref().unwrap_or("-"),
            status,
            r.priority,
            r.title
        ));
    }
    text
}
