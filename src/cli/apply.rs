//! `opsctl apply`: one reconcile pass over every app: plan, pass governance, roll out what is
//! `auto` or approved, check health, roll back on failure, and record it all. A gated plan is
//! queued as a pending approval (`opsctl pending`, `opsctl approve ID`). Exit 0 when every app
//! is in sync or deployed, 3 when some app waits for approval (and none failed), 1 when any
//! deploy failed, was rolled back, halted, blocked or denied, or any app could not be handled
//! at all (not observable, unknown to Fly): each app is handled on its own, so one such error
//! does not stop or hide the others.
//!
//! Ctrl-C (or SIGTERM) stops after the current step; a second one exits at once with 130 (see
//! `signal`). Apps not started by then are reported as `skipped`.
//!
//! JSON: `{"kind":"apply","ok":bool,"waiting":bool,"apps":[{"app":…,"outcome":"in_sync"|
//! "not_applied"|"blocked"|"deployed"|"waiting"|"denied"|"expired"|"error"|"skipped",
//! "reason"?:…,"record"?:{deploy record},"approval"?:"approval-…","rule"?:…,
//! "error"?:{"kind":"error","code":…,"message":…,"causes":[…]},"summary":…}]}`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::output::{Format, error_json, error_line, print_json, print_text, report_text_only};
use super::{Global, target, validate};
use crate::governance::{Governed, governed_deploy};
use crate::records::{DeployRecord, DeployStatus, Trigger};
use crate::runtime::deploy::Outcome;
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
    let (mut deployer, stop) = target::deployer(&target, global)?;
    // The deploy pipeline acts as `deployer` under the allowlists of the policy for all apps
    // (per-app policies' roles are applied by their plans' decisions).
    let (policy, _) = opsctl_controllers::governance::policy_for(&set.policies, "");
    deployer.client = deployer.client.with_role(
        crate::fly::RoleGuard::new(opsctl_controllers::governance::Role::Deployer, policy.roles)
            .with_hook(crate::governance::approvals::denial_recorder(
                deployer.store.clone(),
                deployer.clock.clone(),
            )),
    );
    let mut waiting = false;
    deployer.poll = Duration::from_millis(500);
    let commit = git::head_commit(&global.manifests).await;
    let mut results = Vec::new();
    let mut ok = true;
    let mut failed = Vec::new();
    for app in set
        .apps
        .iter()
        .filter(|a| args.app.as_deref().is_none_or(|n| n == a.app_name()))
    {
        let name = app.app_name();
        if *stop.borrow() {
            results.push(json!({"app": name, "outcome": "skipped",
                "reason": "not started: opsctl was asked to stop",
                "summary": format!("{name}: skipped: not started, opsctl was asked to stop")}));
            ok = false;
            continue;
        }
        match governed_deploy(&deployer, &set, app, Trigger::Apply, commit.clone()).await {
            Ok(governed) => {
                let (value, good) = describe_governed(name, &governed);
                waiting |= matches!(governed, Governed::Waiting { .. });
                ok &= good;
                results.push(value);
            }
            Err(e) => {
                let e = anyhow::Error::new(e);
                results.push(
                    json!({"app": name, "outcome": "error", "error": error_json(&e),
                    "summary": format!("{name}: error: {}", error_line(&e))}),
                );
                failed.push(name);
                ok = false;
            }
        }
    }
    if global.output == Format::Json {
        print_json(&json!({"kind": "apply", "ok": ok, "waiting": waiting, "apps": results}))?;
    } else {
        let text: String = results
            .iter()
            .map(|r| format!("{}\n", r["summary"].as_str().unwrap_or_default()))
            .collect();
        print_text(&text)?;
    }
    if !failed.is_empty() {
        report_text_only(
            global,
            &anyhow::anyhow!(
                "{} of {} app(s) could not be applied: {}",
                failed.len(),
                results.len(),
                failed.join(", ")
            ),
        );
    }
    Ok(if !ok {
        ExitCode::from(1)
    } else if waiting {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// One app's governed result as JSON (with a `summary` line) and whether it is good (waiting
/// is good: nothing failed).
pub fn describe_governed(app: &str, governed: &Governed) -> (Value, bool) {
    match governed {
        Governed::Ran { outcome, approval } => {
            let (mut v, good) = describe(app, outcome);
            if let Some(id) = approval {
                v["approval"] = json!(id);
            }
            (v, good)
        }
        Governed::Waiting {
            approval,
            created,
            rule,
            why,
        } => (
            json!({"app": app, "outcome": "waiting", "approval": approval, "rule": rule,
                "reason": why, "new": created,
                "summary": format!("{app}: waiting for approval {approval} ({rule}): {why}; `opsctl approve {approval}` or `opsctl deny {approval}`")}),
            true,
        ),
        Governed::Denied {
            rule,
            why,
            approval,
        } => (
            json!({"app": app, "outcome": "denied", "rule": rule, "reason": why, "approval": approval,
                "summary": format!("{app}: denied ({rule}): {why}")}),
            false,
        ),
        Governed::Expired {
            approval,
            escalation,
        } => (
            json!({"app": app, "outcome": "expired", "approval": approval, "escalation": escalation,
                "summary": format!("{app}: approval {approval} expired without a decision; escalated, nothing ran")}),
            false,
        ),
    }
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
