//! `opsctl approve ID` / `opsctl deny ID`: a human decides a gated plan.
//!
//! An approval binds to the plan it was shown: `approve` recomputes the app's plan from what
//! Fly reports now and compares its hash with the one recorded. The same → approved (the
//! running reconciler, or the next `opsctl apply`, carries it out). Different → refused as
//! stale (exit 1, code `approval.stale`), the stale approval is closed, and the new plan is
//! printed; the next pass queues it for approval. `deny` needs no check: refusing is always
//! safe.
//!
//! Decisions go to the state directory's decision inbox (no writer lock needed, so this works
//! while `opsctl run` runs; it picks the decision up on its next pass) and, when no other
//! process writes the state directory, straight into the journal too.
//!
//! JSON: `{"kind":"approval","id":…,"app":…,"state":"approved"|"denied","plan_hash":…}`; a
//! stale approval is an error object whose message includes the new plan.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::json;

use super::output::{Format, coded, print_json, print_text};
use super::plan::{planner, render};
use super::{Global, target, validate};
use crate::governance::approvals::{self, Approval};
use crate::governance::plan::plan_app;
use crate::records::{RecordStore, StoreError};
use crate::runtime::clock::{Clock, SystemClock};

/// Arguments of `approve` and `deny`.
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// The approval's id, as `opsctl pending` lists it (`approval-…`).
    pub id: String,
}

fn waiting(store: &RecordStore, id: &str) -> anyhow::Result<Approval> {
    let Some(a) = approvals::find(store, id)? else {
        return Err(coded(
            "approval.unknown",
            format!("no approval {id:?} in the records; `opsctl pending` lists those waiting"),
        ));
    };
    if a.data.state != "pending" {
        return Err(coded(
            "approval.decided",
            format!(
                "approval {id} is {}, not pending; nothing was changed",
                a.data.state
            ),
        ));
    }
    Ok(a)
}

/// Record `state` for `a` by `who` in the inbox, then in the journal when the writer lock is
/// free; return the approval as it now reads.
fn decide(global: &Global, a: &Approval, state: &str) -> anyhow::Result<Approval> {
    approvals::submit(&global.state, a, state, "cli", SystemClock.now())
        .with_context(|| format!("recording the decision in {}", global.state.display()))?;
    match RecordStore::open_write_at(global.store.as_deref(), &global.state) {
        Ok(store) => approvals::ingest(&store, SystemClock.now())?,
        Err(StoreError::Locked(_)) => {
            tracing::info!(
                "the state directory is in use (opsctl run?): it records the decision on its next pass"
            )
        }
        Err(e) => return Err(e.into()),
    }
    let store = RecordStore::open_read_at(global.store.as_deref(), &global.state)?;
    Ok(approvals::find(&store, a.id())?.unwrap_or_else(|| a.clone()))
}

pub async fn approve(args: DecideArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = RecordStore::open_read_at(global.store.as_deref(), &global.state)?;
    let a = waiting(&store, &args.id)?;
    let set = validate::load(global)?;
    let Some(app) = set.apps.iter().find(|x| x.app_name() == a.app()) else {
        decide(global, &a, "stale")?;
        return Err(coded(
            "approval.stale",
            format!(
                "approval {} is stale: no FlyApp {:?} in the manifests any more",
                a.id(),
                a.app()
            ),
        ));
    };
    if global.fly == "embedded" {
        // A fresh simulator in this process is not the Fly the plan was made against: every
        // approval would look stale (and be closed as such).
        return Err(coded(
            "config",
            format!(
                "approval {} cannot be checked against `--fly embedded`: that starts a new simulator in this process, not the Fly of the `opsctl run` that asked. Approve through that process's endpoint, at the address it listens on (`--listen`, default 127.0.0.1:9464): `curl -X POST -H \"Authorization: Bearer $OPSCTL_APPROVAL_TOKEN\" -H 'Content-Type: application/json' -d '{{\"plan_hash\":\"{}\"}}' http://127.0.0.1:9464/approvals/{}/approve` (docs/governance.md), or run `opsctl sim serve` and pass its URL as `--fly` to both `run` and `approve`. Nothing was decided.",
                a.id(),
                a.data.plan_hash,
                a.id()
            ),
        ));
    }
    let target = target::connect(&global.fly).await?;
    let planner = planner(&target, global, false)?;
    if a.is_rollback() {
        return approve_rollback(global, &planner, &set, app, &a).await;
    }
    let plan = plan_app(&planner, &set, app, SystemClock.now()).await?;
    if plan.plan_hash != a.data.plan_hash {
        decide(global, &a, "stale")?;
        return Err(coded(
            "approval.stale",
            format!(
                "approval {} is stale: it was for plan {}, but the plan computed now from Fly and the manifests in {} is {} (Fly's state or the manifests changed; pass the same --manifests as `opsctl run`); nothing was approved. The new plan (the next `opsctl apply` or `opsctl run` pass queues it for approval):\n{}",
                a.id(),
                a.data.plan_hash,
                global.manifests.display(),
                plan.plan_hash,
                render(&plan, None).trim_end()
            ),
        ));
    }
    let a = decide(global, &a, "approved")?;
    tracing::info!(approval = %a.id(), app = %a.app(), plan_hash = %a.data.plan_hash, "approved");
    done(
        global,
        &a,
        "approved this plan; the running reconciler or the next `opsctl apply` carries it out",
    )
}

/// A manual rollback's approval (`opsctl rollback`): re-check it against the rollback to the
/// same release computed now; the same hash → approved, and `opsctl rollback` carries it out.
async fn approve_rollback(
    global: &Global,
    planner: &crate::runtime::deploy::Deployer,
    set: &opsctl_crds::ManifestSet,
    app: &opsctl_crds::FlyApp,
    a: &Approval,
) -> anyhow::Result<ExitCode> {
    let version = a.rollback_version();
    let now_hash =
        match super::rollback::plan_rollback(planner, set, app, version, SystemClock.now()).await {
            Ok(plan) => plan.plan_hash,
            Err(e) => format!("none ({})", super::output::error_line(&e)),
        };
    if now_hash != a.data.plan_hash {
        decide(global, a, "stale")?;
        return Err(coded(
            "approval.stale",
            format!(
                "approval {} is stale: it was for rollback plan {}, but the rollback computed now from Fly and the manifests is {now_hash} (Fly's state changed); nothing was approved. Run `opsctl rollback {}` again to ask anew",
                a.id(),
                a.data.plan_hash,
                a.app()
            ),
        ));
    }
    let a = decide(global, a, "approved")?;
    tracing::info!(approval = %a.id(), app = %a.app(), plan_hash = %a.data.plan_hash, "rollback approved");
    let to = version.map(|v| format!(" --to {v}")).unwrap_or_default();
    done(
        global,
        &a,
        &format!(
            "approved this rollback; run `opsctl rollback {}{to}` to carry it out",
            a.app()
        ),
    )
}

pub fn deny(args: DecideArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let store = RecordStore::open_read_at(global.store.as_deref(), &global.state)?;
    let a = waiting(&store, &args.id)?;
    let a = decide(global, &a, "denied")?;
    tracing::info!(approval = %a.id(), app = %a.app(), "denied");
    done(
        global,
        &a,
        "denied; it is not carried out, and stays denied until the manifests or Fly change",
    )
}

fn done(global: &Global, a: &Approval, says: &str) -> anyhow::Result<ExitCode> {
    if global.output == Format::Json {
        print_json(&json!({"kind": "approval", "id": a.id(), "app": a.app(),
            "state": a.data.state, "plan_hash": a.data.plan_hash}))?;
    } else {
        print_text(&format!(
            "{} ({}, plan {}): {says}\n",
            a.id(),
            a.app(),
            a.data.plan_hash
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
