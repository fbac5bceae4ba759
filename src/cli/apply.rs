//! `opsctl apply`: one reconcile pass over every app: roll out what drifted, check health,
//! roll back on failure, and record it all. Exit 0 when every app is in sync or deployed, 1
//! when any deploy failed, was rolled back, halted or blocked.
//!
//! JSON: `{"kind":"apply","ok":bool,"apps":[{"app":…,"outcome":"in_sync"|"not_applied"|
//! "blocked"|"deployed","reason"?:…,"record"?:{deploy record}}]}`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use super::output::{Format, print_json, print_text};
use super::{Global, target, validate};
use crate::records::{DeployRecord, DeployStatus, RecordStore, Trigger};
use crate::runtime::clock::SystemClock;
use crate::runtime::deploy::{Deployer, Outcome};
use crate::runtime::git;

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
}

pub async fn exec(args: ApplyArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let set = validate::load(global)?;
    let target = target::connect(&global.fly).await?;
    let store =
        Arc::new(RecordStore::open_write(&global.state).context("opening the state directory")?);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::warn!("interrupt: stopping before the next step");
            let _ = stop_tx.send(true);
        }
    });
    let mut deployer = Deployer::new(target.client.clone(), store, Arc::new(SystemClock), stop);
    deployer.manifests = Some(global.manifests.clone());
    deployer.poll = Duration::from_millis(500);
    let commit = git::head_commit(&global.manifests).await;
    let mut results = Vec::new();
    let mut ok = true;
    for app in set
        .apps
        .iter()
        .filter(|a| args.app.as_deref().is_none_or(|n| n == a.app_name()))
    {
        let outcome = deployer.deploy(app, Trigger::Apply, commit.clone()).await?;
        let (value, good) = describe(app.app_name(), &outcome);
        ok &= good;
        results.push(value);
    }
    if global.output == Format::Json {
        print_json(&json!({"kind": "apply", "ok": ok, "apps": results}))?;
    } else {
        let text: String = results
            .iter()
            .map(|r| format!("{}\n", r["summary"].as_str().unwrap_or_default()))
            .collect();
        print_text(&text)?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One app's result as JSON (with a `summary` line for text output) and whether it is good.
pub fn describe(app: &str, outcome: &Outcome) -> (Value, bool) {
    match outcome {
        Outcome::NothingToDo(d) if d.is_empty() => (
            json!({"app": app, "outcome": "in_sync", "summary": format!("{app}: in sync, nothing to do")}),
            true,
        ),
        Outcome::NothingToDo(d) => (
            json!({"app": app, "outcome": "not_applied", "changes": d.changes,
                   "summary": format!("{app}: {} change(s) not applied automatically (scaling); see `opsctl diff`", d.changes.len())}),
            true,
        ),
        Outcome::Blocked { reason } => (
            json!({"app": app, "outcome": "blocked", "reason": reason, "summary": format!("{app}: blocked: {reason}")}),
            false,
        ),
        Outcome::Deployed(rec) => {
            let good = rec.status == DeployStatus::Succeeded;
            (
                json!({"app": app, "outcome": "deployed", "record": rec, "summary": summary(rec)}),
                good,
            )
        }
    }
}

/// One line about a deploy record.
pub fn summary(rec: &DeployRecord) -> String {
    let release = rec
        .release
        .as_ref()
        .map(|r| format!("release v{}", r.version))
        .unwrap_or_else(|| "no release".into());
    let detail = match rec.status {
        DeployStatus::Succeeded => rec.health.clone().unwrap_or_default(),
        _ => rec.reason.clone().unwrap_or_default(),
    };
    format!(
        "{}: {} ({release}, {}): {detail} [record {}]",
        rec.app,
        rec.status.as_str(),
        rec.image,
        rec.id
    )
}
