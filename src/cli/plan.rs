//! `opsctl plan`: what a reconcile pass would do now, per app, each action with its governance
//! decision (`auto`, `gated`, `denied`) and the rule that gave it, and the hash of the observed
//! state the plan was computed from. Read-only: nothing is recorded or queued (`apply` and
//! `run` queue approvals). Exit 0 when no app has an action, 2 when some has, 1 when an app
//! could not be planned (1 wins).
//!
//! JSON (`-o json`, and the file `--out` writes): `{"kind":"plan","computed_at":UTC,
//! "apps":[{"app":…,"policy":…,"burn_in":{"count":N,"phase":1|2|3},"context":{"ci_green":…,
//! "config_unchanged":…,…},"plan_hash":"16 hex","revision":"16 hex (the FlyApp's desired
//! state)","recovering":bool,"blocked"?:…,
//! "pending_approval"?:"approval-…","actions":[{"kind":"deploy"|"migration"|"scale"|…,
//! "detail":…,"verdict":"auto"|"gated"|"denied","rule":…,"why":…,"estimated_cost_usd":…,
//! "image"?:…}]} | {"app":…,"outcome":"error","error":{…}}]}`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use serde_json::{Value, json};

use super::output::{Format, error_json, error_line, print_json, print_text, report_text_only};
use super::{Global, target, validate};
use crate::governance::approvals;
use crate::governance::plan::{AppPlan, plan_app};
use crate::records::RecordStore;
use crate::runtime::clock::SystemClock;
use crate::runtime::deploy::Deployer;

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
    /// Also write the plan (JSON, with its plan hashes) to this file; `opsctl apply --plan
    /// FILE` carries out exactly that plan later, or refuses if it changed.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// A deployer for planning and deciding: the target's client, the state directory's store
/// (read-only unless `write`), the system clock, and no stop requests.
pub fn planner(target: &target::Target, global: &Global, write: bool) -> anyhow::Result<Deployer> {
    let store = if write {
        RecordStore::open_write_at(global.store.as_deref(), &global.state)
            .context("opening the state directory")?
    } else {
        RecordStore::open_read_at(global.store.as_deref(), &global.state)?
    };
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let mut d = Deployer::new(
        target.client.clone(),
        Arc::new(store),
        Arc::new(SystemClock),
        stop,
    );
    d.manifests = Some(global.manifests.clone());
    Ok(d)
}

pub async fn exec(args: PlanArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let set = validate::load(global)?;
    let apps: Vec<_> = set
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
    let target = target::connect(&global.fly).await?;
    let planner = planner(&target, global, false)?;
    let now = planner.clock.now();
    let mut values = Vec::new();
    let mut text = String::new();
    let mut failed = Vec::new();
    let mut any_action = false;
    for app in apps {
        match plan_app(&planner, &set, app, now).await {
            Ok(plan) => {
                any_action |= !plan.actions.is_empty();
                // The newest human decision on this very plan (not a manual rollback's).
                let decision = approvals::approvals(&planner.store, Some(&plan.app))?
                    .into_iter()
                    .filter(|a| !a.is_rollback())
                    .find(|a| a.data.plan_hash == plan.plan_hash);
                let mut v = plan_json(&plan);
                // The desired state the plan was computed from: `apply --plan` refuses a plan
                // whose manifests changed since, even when the actions read the same.
                v["revision"] = json!(app.revision());
                if let Some(a) = &decision {
                    if a.data.state == "pending" {
                        v["pending_approval"] = json!(a.id());
                    }
                    v["approval"] = json!({"id": a.id(), "state": a.data.state});
                }
                text.push_str(&render(&plan, decision.as_ref()));
                values.push(v);
            }
            Err(e) => {
                let name = app.app_name();
                let e = anyhow::Error::new(e);
                text.push_str(&format!("{name}: error: {}\n", error_line(&e)));
                values.push(json!({"app": name, "outcome": "error", "error": error_json(&e)}));
                failed.push(name);
            }
        }
    }
    let doc = json!({"kind": "plan", "computed_at": now, "apps": values});
    if let Some(out) = &args.out {
        let body = serde_json::to_string_pretty(&doc)? + "\n";
        std::fs::write(out, body).with_context(|| format!("writing {}", out.display()))?;
    }
    if global.output == Format::Json {
        print_json(&doc)?;
    } else {
        print_text(&text)?;
    }
    if !failed.is_empty() {
        report_text_only(
            global,
            &anyhow::anyhow!(
                "{} app(s) could not be planned: {}",
                failed.len(),
                failed.join(", ")
            ),
        );
        return Ok(ExitCode::from(1));
    }
    Ok(if any_action {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// One app's plan as JSON (see the module doc).
pub fn plan_json(plan: &AppPlan) -> Value {
    let actions: Vec<Value> = plan
        .actions
        .iter()
        .map(|a| {
            let mut v = json!({"kind": a.action.kind, "detail": a.action.detail,
                "verdict": a.decision.verdict, "rule": a.decision.rule, "why": a.decision.why,
                "estimated_cost_usd": a.action.estimated_cost_usd});
            if let Some(image) = &a.image {
                v["image"] = json!(image);
            }
            v
        })
        .collect();
    let mut v = json!({"app": plan.app, "policy": plan.policy, "burn_in": plan.burn_in,
        "context": plan.context, "plan_hash": plan.plan_hash, "recovering": plan.recovering,
        "actions": actions});
    if let Some(b) = &plan.blocked {
        v["blocked"] = json!(b);
    }
    v
}

/// One app's plan as text.
pub fn render(plan: &AppPlan, decision: Option<&approvals::Approval>) -> String {
    let mut out = format!(
        "{}: policy {}, burn-in phase {} ({} counted deploys), plan {}\n",
        plan.app, plan.policy, plan.burn_in.phase, plan.burn_in.count, plan.plan_hash
    );
    if plan.actions.is_empty() {
        out.push_str("  in sync, nothing to do\n");
    }
    if plan.recovering {
        out.push_str("  an unfinished deploy is finished first (not gated)\n");
    }
    if let Some(b) = &plan.blocked {
        out.push_str(&format!(
            "  blocked: {b}\n  nothing below runs, whatever governance decides:\n"
        ));
    }
    for a in &plan.actions {
        out.push_str(&format!(
            "  {:<6} {:<9} {}\n         rule {}: {}\n",
            a.decision.verdict.as_str(),
            a.action.kind.as_str(),
            a.action.detail,
            a.decision.rule,
            a.decision.why
        ));
    }
    if let Some(a) = decision {
        let id = a.id();
        out.push_str(&match a.data.state.as_str() {
            "pending" => format!(
                "  waiting for approval {id}: `opsctl approve {id}` or `opsctl deny {id}`\n"
            ),
            "denied" => format!(
                "  denied by a human ({id}): nothing runs until the manifests or Fly change\n"
            ),
            "approved" => {
                format!("  approved ({id}): the next `opsctl apply` or `opsctl run` pass carries it out\n")
            }
            other => format!("  approval {id}: {other}\n"),
        });
    }
    out
}
