//! `opsctl apply`: one reconcile pass over every app: plan, pass governance, roll out what is
//! `auto` or approved, check health, roll back on failure, and record it all. A gated plan is
//! queued as a pending approval (`opsctl pending`, `opsctl approve ID`). Exit 0 when every app
//! is in sync or deployed, 3 when some app waits for approval (and none failed), 1 when any
//! deploy failed, was rolled back, halted, blocked or denied, or any app could not be handled
//! at all (not observable, unknown to Fly): each app is handled on its own, so one such error
//! does not stop or hide the others.
//!
//! `--plan FILE` carries out exactly a plan `opsctl plan --out FILE` wrote, for its apps only:
//! each app's plan is computed again first and compared with the file (plan hash of Fly's
//! machines and the actions, the manifests' desired-state revision, each action with its
//! verdict and rule); any difference refuses the whole file before anything is done (exit 1,
//! code `plan.stale`, naming what changed per app). Then it runs as a plain `apply` of those
//! apps, governance included.
//!
//! Ctrl-C (or SIGTERM) stops after the current step; a second one exits at once with 130 (see
//! `signal`). Apps not started by then are reported as `skipped`.
//!
//! JSON: `{"kind":"apply","ok":bool,"waiting":bool,"apps":[{"app":…,"outcome":"in_sync"|
//! "not_applied"|"blocked"|"deployed"|"waiting"|"denied"|"expired"|"error"|"skipped",
//! "reason"?:…,"record"?:{deploy record},"approval"?:"approval-…","rule"?:…,
//! "error"?:{"kind":"error","code":…,"message":…,"causes":[…]},"summary":…}]}`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use clap::Args;
use serde_json::{Value, json};

use super::output::{
    Format, coded, error_json, error_line, print_json, print_text, report_text_only,
};
use super::{Global, target, validate};
use crate::governance::plan::plan_app;
use crate::governance::{Governed, governed_deploy};
use crate::records::{DeployRecord, DeployStatus, Trigger};
use crate::runtime::deploy::Outcome;
use crate::runtime::git;

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Only this app.
    #[arg(long, conflicts_with = "plan")]
    pub app: Option<String>,
    /// Carry out exactly the plan `opsctl plan --out FILE` wrote (its apps only), like
    /// `terraform apply plan.tfplan`: refused with nothing done (exit 1) when the plan computed
    /// now differs (Fly's machines, the manifests, the actions or their governance decisions),
    /// with what changed. Governance still applies: a gated action waits for approval (exit 3).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

/// One app of a saved plan file: what `apply --plan` compares.
struct Saved {
    app: String,
    plan_hash: String,
    revision: Option<String>,
    actions: Vec<String>,
}

/// `kind: detail [verdict, rule]` of each action of a plan, as JSON from `plan_json`.
fn action_lines(actions: &Value) -> Vec<String> {
    actions
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{}: {} [{}, {}]",
                a["kind"].as_str().unwrap_or_default(),
                a["detail"].as_str().unwrap_or_default(),
                a["verdict"].as_str().unwrap_or_default(),
                a["rule"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// Read a plan file written by `opsctl plan --out`.
fn read_plan(path: &Path) -> anyhow::Result<(Vec<Saved>, String)> {
    let unreadable = |why: String| {
        coded(
            "plan.unreadable",
            format!(
                "{} is not a plan written by `opsctl plan --out`: {why}",
                path.display()
            ),
        )
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| unreadable(format!("cannot read it ({e})")))?;
    let doc: Value = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    if doc["kind"] != "plan" {
        return Err(unreadable("its `kind` is not \"plan\"".into()));
    }
    let computed = doc["computed_at"]
        .as_str()
        .unwrap_or("an unknown time")
        .to_owned();
    let mut saved = Vec::new();
    for a in doc["apps"]
        .as_array()
        .ok_or_else(|| unreadable("no `apps` list".into()))?
    {
        let app = a["app"].as_str().unwrap_or_default().to_owned();
        if a["outcome"] == "error" {
            return Err(coded(
                "plan.has_errors",
                format!(
                    "{} could not plan {app} (it holds an error, not a plan); nothing was done. Run `opsctl plan --out {}` again once it plans",
                    path.display(),
                    path.display()
                ),
            ));
        }
        let Some(hash) = a["plan_hash"].as_str() else {
            return Err(unreadable(format!("app {app:?} has no plan_hash")));
        };
        saved.push(Saved {
            app,
            plan_hash: hash.to_owned(),
            revision: a["revision"].as_str().map(str::to_owned),
            actions: action_lines(&a["actions"]),
        });
    }
    if saved.is_empty() {
        return Err(unreadable("it plans no app".into()));
    }
    Ok((saved, computed))
}

/// Recompute each saved app's plan now; the apps (in the file's order) when every one is the
/// same, else an error naming what changed per app. Nothing is done either way.
async fn check_plan<'a>(
    deployer: &crate::runtime::deploy::Deployer,
    set: &'a opsctl_crds::ManifestSet,
    path: &Path,
) -> anyhow::Result<Vec<&'a opsctl_crds::FlyApp>> {
    let (saved, computed) = read_plan(path)?;
    let now = deployer.clock.now();
    let mut apps = Vec::new();
    let mut changes = Vec::new();
    for s in &saved {
        let Some(app) = set.apps.iter().find(|a| a.app_name() == s.app) else {
            changes.push(format!("{}: no longer in the manifests", s.app));
            continue;
        };
        let plan = plan_app(deployer, set, app, now)
            .await
            .with_context(|| format!("planning {} again", s.app))?;
        let actions = action_lines(&super::plan::plan_json(&plan)["actions"]);
        let mut what = Vec::new();
        if s.revision.as_deref().is_some_and(|r| r != app.revision()) {
            what.push(format!(
                "the manifests changed (desired state {} → {})",
                s.revision.as_deref().unwrap_or_default(),
                app.revision()
            ));
        }
        if actions != s.actions {
            let fmt = |v: &[String]| {
                if v.is_empty() {
                    "nothing".to_owned()
                } else {
                    v.join("; ")
                }
            };
            what.push(format!(
                "the actions changed: planned {}, now {}",
                fmt(&s.actions),
                fmt(&actions)
            ));
        }
        if plan.plan_hash != s.plan_hash && what.is_empty() {
            what.push(
                "what Fly reports changed (machines, their images, instance versions or sizes)"
                    .to_owned(),
            );
        }
        if plan.plan_hash != s.plan_hash || !what.is_empty() {
            changes.push(format!(
                "{}: plan {} → {}: {}",
                s.app,
                s.plan_hash,
                plan.plan_hash,
                what.join("; ")
            ));
        }
        apps.push(app);
    }
    if !changes.is_empty() {
        return Err(coded(
            "plan.stale",
            format!(
                "the plan in {} (computed at {computed}) is not what a pass would do now; nothing was done. Changes:\n  {}\nReview the new plan with `opsctl plan --out {}` and apply that",
                path.display(),
                changes.join("\n  "),
                path.display()
            ),
        ));
    }
    Ok(apps)
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
    let apps: Vec<&opsctl_crds::FlyApp> = match &args.plan {
        Some(path) => check_plan(&deployer, &set, path).await?,
        None => set
            .apps
            .iter()
            .filter(|a| args.app.as_deref().is_none_or(|n| n == a.app_name()))
            .collect(),
    };
    let mut results = Vec::new();
    let mut ok = true;
    let mut failed = Vec::new();
    for app in apps {
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
