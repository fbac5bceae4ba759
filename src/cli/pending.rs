//! `opsctl pending`: gated plans waiting for a human, oldest first, with their age. Read-only.
//!
//! JSON: `{"kind":"pending","approvals":[{"id":"approval-…","app":…,"created_at":UTC,
//! "age_secs":N,"overdue":bool,"plan_hash":…,"policy":…,"timeout_secs":N,"title":…,
//! "actions":[{"kind":…,"detail":…,"verdict":…,"rule":…,"why":…,"image"?:…}]}]}`. `overdue`:
//! older than the policy's timeout; the next `apply`/`run` pass expires it into an escalation.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::Global;
use super::output::{Format, print_json, print_text};
use crate::governance::approvals;
use crate::records::RecordStore;
use crate::runtime::clock::{Clock, SystemClock};

/// Arguments of `pending`.
#[derive(Debug, Args)]
pub struct PendingArgs {
    /// Only this app.
    pub app: Option<String>,
}

pub fn exec(args: PendingArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = RecordStore::open_read_at(global.store.as_deref(), &global.state)?;
    let now = SystemClock.now();
    let mut list = approvals::pending(&store, args.app.as_deref())?;
    list.reverse();
    if global.output == Format::Json {
        let items: Vec<_> = list
            .iter()
            .map(|a| {
                let age = a.age(now).num_seconds().max(0);
                json!({"id": a.id(), "app": a.app(), "created_at": a.record.created_at,
                "age_secs": age, "overdue": age >= i64::try_from(a.data.timeout_secs).unwrap_or(i64::MAX),
                "plan_hash": a.data.plan_hash, "policy": a.data.policy,
                "timeout_secs": a.data.timeout_secs, "title": a.record.title,
                "actions": a.data.actions})
            })
            .collect();
        print_json(&json!({"kind": "pending", "approvals": items}))?;
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        print_text("nothing waits for approval\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "{:<35} {:<15} {:>8}  {}\n",
        "APPROVAL", "APP", "AGE", "WAITING"
    );
    for a in &list {
        let gated: Vec<String> = a
            .data
            .actions
            .iter()
            .filter(|x| x.verdict == "gated")
            .map(|x| format!("{} {} [{}]", x.kind, x.detail, x.rule))
            .collect();
        text.push_str(&format!(
            "{:<35} {:<15} {:>8}  {}\n",
            a.id(),
            a.app(),
            age(a.age(now)),
            gated.join("; ")
        ));
    }
    text.push_str("approve with `opsctl approve ID`, refuse with `opsctl deny ID`\n");
    print_text(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// `3d4h`, `2h5m`, `4m10s`, `12s`.
pub fn age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    let (days, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if days > 0 {
        format!("{days}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}
