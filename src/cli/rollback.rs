//! `opsctl rollback APP [--to VERSION]`: a manual rollback, through governance.
//!
//! Fly has no rollback call: a rollback is a *new* release whose image is an older one
//! (DESIGN.md §4.1). This command chooses that older release, checks its image is still in the
//! registry, asks governance, and then runs the deploy pipeline (`Deployer::deploy`) with the
//! app's manifest pointed at the older image: the same lease → new release → per-strategy
//! update → health judgement → record path as every deploy, recorded with trigger `rollback`.
//!
//! Target: `--to VERSION` (`108` or `v108`) names a Fly release; by default the newest
//! `complete` release older than the current one whose image differs from the current image
//! and is not known bad (a machine failed health on it) — the controllers' `rollback_choice`,
//! as the deploy and incident pipelines choose. The current release is the newest release
//! version on the app's managed machines.
//!
//! Governance: the action is a `rollback` by a human (role `deployer`), decided by
//! `opsctl_controllers::governance::decide` under the app's policy; outside the auto-rollback
//! rules (health failure, outage) the policy's `gates.rollback` applies — gated in every phase
//! by default. Gated → a pending approval bound to the rollback's plan hash (observed machines
//! and the action, which names the target release) and exit 3; after `opsctl approve ID`, the
//! same `opsctl rollback` runs it (a changed Fly makes the approval stale). Denied → exit 1.
//!
//! Afterwards the image rolled back from is pinned out (the rollback's record, trigger
//! `rollback`, names it: `opsctl_controllers::history::PastDeploy::rolled_back_from`), so
//! `opsctl run`/`apply` do not redeploy it from the manifests; point `spec.image` at another
//! image to deploy again. The rollback does not run the release command (no
//! migration backwards) nor the PreCheck stage (it deploys no new commit).
//!
//! Exit: 0 rolled back (record `succeeded`), 3 waiting for approval, 1 otherwise (unknown app
//! or version, nothing to roll back to, image gone from the registry, denied, the rollback
//! release failed health — then the pipeline put the previous image back).
//!
//! JSON (`-o json`): `{"kind":"rollback","app":…,"outcome":"rolled_back"|"failed"|"waiting"|
//! "denied"|"expired"|"blocked"|"in_sync","from":{"version":N|null,"image":…},"to":{"version":N,
//! "image":…},"plan_hash":…,"rule":…,"why":…,"approval"?:…,"record"?:{deploy record},
//! "reason"?:…}`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::Args;
use opsctl_controllers::diff::diff;
use opsctl_controllers::governance::{
    Action, ActionKind, Context, Decision, Verdict, decide, plan_hash, policy_for,
};
use opsctl_controllers::history::{PastDeploy, RollbackChoice, rollback_choice};
use opsctl_controllers::observed::{ObservedApp, ObservedRelease};
use opsctl_controllers::rollout;
use opsctl_crds::flyapp::Strategy;
use opsctl_crds::{FlyApp, ManifestSet};
use serde_json::{Value, json};

use super::output::{Format, coded, print_json, print_progress, print_text};
use super::{Global, target, validate};
use crate::fly::observe::{observe_app, observe_releases};
use crate::governance::approvals::{self, Approval, ApprovalAction, ApprovalData};
use crate::governance::plan::{TEMPORARY_MACHINE_MINUTES, USD_PER_MACHINE_HOUR, app_burn_in};
use crate::records::{DeployRecord, DeployStatus, Trigger};
use crate::runtime::deploy::{Deployer, Outcome};
use crate::runtime::git;

/// Arguments of `rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The Fly app (as named by a FlyApp manifest).
    pub app: String,
    /// The Fly release version to go back to (`108` or `v108`, as `opsctl history` and `fly
    /// releases` show). Default: the newest complete release before the current one whose
    /// image differs and is not known bad.
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

/// A computed manual rollback: where from, where to, the governance decision and the plan
/// hash it binds an approval to.
#[derive(Debug, Clone)]
pub struct RollbackPlan {
    /// Fly app.
    pub app: String,
    /// Current release version (newest on the managed machines), if known.
    pub from_version: Option<i64>,
    /// Image the managed machines run now.
    pub from_image: String,
    /// Target release version.
    pub to_version: i64,
    /// Target image.
    pub to_image: String,
    /// The governed action.
    pub action: Action,
    /// What governance said.
    pub decision: Decision,
    /// Hash of the observed machines and the action ([`plan_hash`]).
    pub plan_hash: String,
    /// The policy's name (`default`: the ADR's).
    pub policy: String,
    /// How long a gated rollback waits for a decision.
    pub approval_timeout: Duration,
    /// The manifest pointed at the target image, without release command or pre-check.
    pub manifest: FlyApp,
}

fn parse_version(s: &str) -> anyhow::Result<i64> {
    s.trim()
        .trim_start_matches(['v', 'V'])
        .parse()
        .map_err(|_| {
            coded(
                "rollback.bad_version",
                format!("--to {s:?} is not a release version: write a number like 108 or v108"),
            )
        })
}

fn list(releases: &[ObservedRelease]) -> String {
    releases
        .iter()
        .take(10)
        .map(|r| {
            format!(
                "v{} ({}, {})",
                r.version,
                r.image.as_deref().unwrap_or("no image"),
                r.status
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The release and image the app runs now: the newest release version on its managed
/// machines (else the newest complete release), and the most common image on them.
fn current(observed: &ObservedApp, releases: &[ObservedRelease]) -> (Option<i64>, String) {
    let managed: Vec<_> = observed.managed().collect();
    let version = managed
        .iter()
        .filter_map(|m| m.release_version)
        .max()
        .or_else(|| {
            releases
                .iter()
                .filter(|r| r.status == "complete")
                .map(|r| r.version)
                .max()
        });
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for m in &managed {
        match counts.iter_mut().find(|(i, _)| *i == m.image) {
            Some((_, n)) => *n += 1,
            None => counts.push((&m.image, 1)),
        }
    }
    let image = counts
        .iter()
        .max_by_key(|(_, n)| *n)
        .map(|(i, _)| (*i).to_owned())
        .or_else(|| {
            version.and_then(|v| {
                releases
                    .iter()
                    .find(|r| r.version == v)
                    .and_then(|r| r.image.clone())
            })
        })
        .unwrap_or_default();
    (version, image)
}

/// Compute the manual rollback of `app` to `to` (a release version; `None` for the default
/// target) from what Fly and the records say now, with its governance decision at `now`.
///
/// # Errors
/// Fly not observable, the store unreadable; with a `coded` error (exit 1): the version is
/// unknown, has no image or is what runs now; no release to roll back to; the rollout
/// planner refuses the manifest.
pub async fn plan_rollback(
    deployer: &Deployer,
    set: &ManifestSet,
    app: &FlyApp,
    to: Option<i64>,
    now: DateTime<Utc>,
) -> anyhow::Result<RollbackPlan> {
    let name = app.app_name().to_owned();
    let observed = observe_app(&deployer.client, &name)
        .await
        .with_context(|| format!("observing {name} on Fly"))?;
    let releases = observe_releases(&deployer.client, &name)
        .await
        .with_context(|| format!("listing the releases of {name} on Fly"))?;
    let (from_version, from_image) = current(&observed, &releases);
    if from_image.is_empty() {
        return Err(coded(
            "rollback.nothing_running",
            format!("{name} has no managed machine on Fly: nothing to roll back"),
        ));
    }
    let (policy, source) = policy_for(&set.policies, &name);
    let (burn, records) = app_burn_in(&deployer.store, &name, &policy.burn_in)?;
    let history: Vec<PastDeploy> = records.iter().map(DeployRecord::past).collect();
    let (to_version, to_image) = match to {
        Some(v) => {
            let Some(r) = releases.iter().find(|r| r.version == v) else {
                return Err(coded(
                    "rollback.unknown_version",
                    format!(
                        "{name} has no release v{v} among its last {} releases on Fly; they are: {}",
                        releases.len(),
                        list(&releases)
                    ),
                ));
            };
            let Some(image) = r.image.clone() else {
                return Err(coded(
                    "rollback.no_image",
                    format!("release v{v} of {name} names no image; pick another with --to"),
                ));
            };
            (v, image)
        }
        None => {
            let older: Vec<ObservedRelease> = releases
                .iter()
                .filter(|r| from_version.is_none_or(|c| r.version < c))
                .cloned()
                .collect();
            match rollback_choice(&[], &from_image, &older, &history) {
                RollbackChoice::ToRelease { version, image } => (version, image),
                RollbackChoice::Restore | RollbackChoice::Escalate { .. } => {
                    return Err(coded(
                        "rollback.no_target",
                        format!(
                            "nothing to roll back to: {name} runs {from_image}{}, and no complete release before it has another image that is not known bad (releases: {}); name one with --to VERSION",
                            from_version.map(|v| format!(" (v{v})")).unwrap_or_default(),
                            list(&releases)
                        ),
                    ));
                }
            }
        }
    };
    if to_image == from_image {
        return Err(coded(
            "rollback.nothing_to_do",
            format!(
                "release v{to_version} has image {to_image}, which {name} already runs{}: nothing to roll back",
                from_version.map(|v| format!(" (v{v})")).unwrap_or_default()
            ),
        ));
    }
    let mut manifest = app.clone();
    manifest.spec.image.clone_from(&to_image);
    // No migration backwards, and no new commit to pre-check.
    manifest.spec.deploy.release_command = None;
    manifest.spec.deploy.pre_check = Default::default();
    let drift = diff(&manifest, &observed);
    let rollout = rollout::plan(&manifest, &observed, &drift)?;
    let temporary = match rollout.strategy {
        Strategy::Canary => rollout.canaries.len(),
        Strategy::Bluegreen => rollout.blue.len(),
        _ => 0,
    };
    let action = Action::new(
        ActionKind::Rollback,
        &name,
        format!(
            "roll back {}{} → v{to_version} ({to_image}) as a new release, {} machine(s), {}",
            from_image,
            from_version.map(|v| format!(" (v{v})")).unwrap_or_default(),
            rollout.touches().count(),
            format!("{:?}", rollout.strategy).to_lowercase()
        ),
        opsctl_controllers::governance::action::machine_hours_cost(
            temporary,
            TEMPORARY_MACHINE_MINUTES,
            USD_PER_MACHINE_HOUR,
        ),
    );
    // A rollback asked for by a person: neither an outage nor a health failure the
    // auto-rollback rules cover, so the policy's rollback gate decides.
    let decision = decide(
        &action,
        action.kind.role(),
        &policy,
        burn,
        Context::default(),
        now,
    );
    Ok(RollbackPlan {
        app: name,
        from_version,
        from_image,
        to_version,
        to_image,
        plan_hash: plan_hash(
            &manifest.revision(),
            &observed,
            std::slice::from_ref(&action),
        ),
        action,
        decision,
        policy: source,
        approval_timeout: policy.approval_timeout.get(),
        manifest,
    })
}

fn approval_data(plan: &RollbackPlan) -> ApprovalData {
    ApprovalData {
        state: "pending".into(),
        plan_hash: plan.plan_hash.clone(),
        actions: vec![ApprovalAction {
            kind: plan.action.kind.as_str().into(),
            detail: plan.action.detail.clone(),
            verdict: plan.decision.verdict.as_str().into(),
            rule: plan.decision.rule.clone(),
            why: plan.decision.why.clone(),
            image: Some(plan.to_image.clone()),
            release_version: Some(plan.to_version),
        }],
        policy: plan.policy.clone(),
        timeout_secs: plan.approval_timeout.as_secs(),
        decided_by: None,
    }
}

/// The FlyApp manifest named `app`, or an error listing the apps.
pub fn find_app<'a>(
    set: &'a ManifestSet,
    app: &str,
    global: &Global,
) -> anyhow::Result<&'a FlyApp> {
    set.apps
        .iter()
        .find(|a| a.app_name() == app)
        .ok_or_else(|| {
            let names: Vec<&str> = set.apps.iter().map(FlyApp::app_name).collect();
            coded(
                "rollback.unknown_app",
                format!(
                    "no FlyApp named {app:?} in {}; the apps are: {}",
                    validate::shown(&global.manifests),
                    if names.is_empty() {
                        "(none)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
}

pub async fn exec(args: RollbackArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let to = args.to.as_deref().map(parse_version).transpose()?;
    let set = validate::load(global)?;
    let app = find_app(&set, &args.app, global)?;
    let target = target::connect(&global.fly).await?;
    let (mut deployer, _stop) = target::deployer(&target, global)?;
    let (policy, _) = policy_for(&set.policies, app.app_name());
    deployer.client = deployer.client.with_role(
        crate::fly::RoleGuard::new(opsctl_controllers::governance::Role::Deployer, policy.roles)
            .with_hook(approvals::denial_recorder(
                deployer.store.clone(),
                deployer.clock.clone(),
            )),
    );
    deployer.poll = Duration::from_millis(500);
    let now = deployer.clock.now();
    approvals::ingest(&deployer.store, now)?;
    let plan = plan_rollback(&deployer, &set, app, to, now).await?;
    let name = plan.app.clone();
    let from = match plan.from_version {
        Some(v) => format!("v{v} ({})", plan.from_image),
        None => plan.from_image.clone(),
    };
    progress(
        global,
        &format!(
            "{name}: rolling back from {from} to v{} ({})",
            plan.to_version, plan.to_image
        ),
    );
    let mut doc = json!({"kind": "rollback", "app": name,
        "from": {"version": plan.from_version, "image": plan.from_image},
        "to": {"version": plan.to_version, "image": plan.to_image},
        "plan_hash": plan.plan_hash, "rule": plan.decision.rule, "why": plan.decision.why});
    // Fly prunes old images: a rollback onto one that cannot be pulled leaves machines that
    // cannot start. Asked before governance, so nobody approves an impossible rollback.
    progress(
        global,
        &format!(
            "{name}: checking that {} is still in the registry",
            plan.to_image
        ),
    );
    let verdict = deployer
        .check_registry(std::slice::from_ref(&plan.to_image))
        .await;
    if let Some((class, why)) = verdict.escalation() {
        return Err(coded(
            "rollback.image_unavailable",
            format!(
                "not rolling back {name} to v{}: {why} ({class}); nothing was changed. Push the image again, or pick another release with --to VERSION",
                plan.to_version
            ),
        ));
    }
    progress(
        global,
        &format!(
            "{name}: governance: {} ({}): {}",
            plan.decision.verdict.as_str(),
            plan.decision.rule,
            plan.decision.why
        ),
    );
    let store = &deployer.store;
    let mut approval: Option<Approval> = None;
    match plan.decision.verdict {
        Verdict::Denied => {
            doc["outcome"] = json!("denied");
            return finish(
                global,
                doc,
                &format!(
                    "{name}: rollback denied ({}): {}; nothing was changed\n",
                    plan.decision.rule, plan.decision.why
                ),
                1,
            );
        }
        Verdict::Auto => {}
        Verdict::Gated => {
            let mut current = None;
            for mut a in approvals::approvals(store, Some(&name))?
                .into_iter()
                .filter(Approval::is_rollback)
            {
                if a.data.plan_hash == plan.plan_hash {
                    if current.is_none() {
                        current = Some(a);
                    }
                } else if matches!(a.data.state.as_str(), "pending" | "approved") {
                    a.close(store, "superseded", now)?;
                }
            }
            match current {
                Some(a) if a.data.state == "approved" => {
                    progress(
                        global,
                        &format!("{name}: approved ({}); rolling back", a.id()),
                    );
                    approval = Some(a);
                }
                Some(mut a) if a.data.state == "pending" => {
                    let timeout = chrono::Duration::from_std(plan.approval_timeout)
                        .unwrap_or(chrono::Duration::MAX);
                    if a.age(now) >= timeout {
                        a.close(store, "expired", now)?;
                        let esc = approvals::escalate_expired(store, &a, now)?;
                        doc["outcome"] = json!("expired");
                        doc["approval"] = json!(a.id());
                        return finish(
                            global,
                            doc,
                            &format!(
                                "{name}: approval {} expired without a decision (escalation {}); nothing was changed. Run `opsctl rollback` again to ask anew\n",
                                a.id(),
                                esc.id
                            ),
                            1,
                        );
                    }
                    return waiting(global, doc, &plan, a.id(), false);
                }
                Some(a) if a.data.state == "denied" => {
                    doc["outcome"] = json!("denied");
                    doc["approval"] = json!(a.id());
                    return finish(
                        global,
                        doc,
                        &format!(
                            "{name}: a human denied this rollback ({}); nothing was changed\n",
                            a.id()
                        ),
                        1,
                    );
                }
                _ => {
                    let a = approvals::create_pending(
                        store,
                        &name,
                        format!(
                            "{name}: rollback {} — {}",
                            plan.action.detail, plan.decision.rule
                        ),
                        approval_data(&plan),
                        now,
                    )?;
                    return waiting(global, doc, &plan, a.id(), true);
                }
            }
        }
    }
    let commit = git::head_commit(&global.manifests).await;
    let outcome = deployer
        .deploy(&plan.manifest, Trigger::Rollback, commit)
        .await?;
    if let Some(a) = &approval {
        doc["approval"] = json!(a.id());
    }
    match outcome {
        Outcome::Deployed(rec) => {
            if let Some(mut a) = approval {
                a.applied(store, &rec.id, deployer.clock.now())?;
            }
            let ok = rec.status == DeployStatus::Succeeded;
            let mut text = format!("{}\n", super::apply::summary(&rec));
            if ok {
                text.push_str(&format!(
                    "{name}: {} is pinned out (rolled back by hand in {}): `opsctl run`/`apply` will not deploy it again from the manifests; point spec.image at another image to deploy again\n",
                    plan.from_image, rec.id
                ));
            }
            doc["outcome"] = json!(if ok { "rolled_back" } else { "failed" });
            doc["record"] = json!(rec);
            finish(global, doc, &text, if ok { 0 } else { 1 })
        }
        Outcome::Blocked { reason } => {
            doc["outcome"] = json!("blocked");
            doc["reason"] = json!(reason);
            finish(
                global,
                doc,
                &format!("{name}: rollback blocked: {reason}\n"),
                1,
            )
        }
        Outcome::NothingToDo(_) => {
            doc["outcome"] = json!("in_sync");
            finish(
                global,
                doc,
                &format!("{name}: already on {}: nothing to do\n", plan.to_image),
                0,
            )
        }
    }
}

fn waiting(
    global: &Global,
    mut doc: Value,
    plan: &RollbackPlan,
    id: &str,
    created: bool,
) -> anyhow::Result<ExitCode> {
    doc["outcome"] = json!("waiting");
    doc["approval"] = json!(id);
    doc["new"] = json!(created);
    let text = format!(
        "{}: rollback to v{} waiting for approval {id} ({}): {}; `opsctl approve {id}` then run this `opsctl rollback` again, or `opsctl deny {id}`\n",
        plan.app, plan.to_version, plan.decision.rule, plan.decision.why
    );
    finish(global, doc, &text, 3)
}

/// A progress line on stderr (stdout carries the result, text or JSON).
fn progress(_global: &Global, line: &str) {
    let _ = print_progress(&format!("{line}\n"));
}

fn finish(global: &Global, doc: Value, text: &str, code: u8) -> anyhow::Result<ExitCode> {
    if global.output == Format::Json {
        print_json(&doc)?;
    } else {
        print_text(text)?;
    }
    Ok(ExitCode::from(code))
}
