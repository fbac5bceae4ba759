//! The governance gate in front of the deployer, used by `opsctl apply` and `opsctl run`: plan,
//! decide, and run only what is `auto` or approved for this very plan hash. A gated plan gets
//! one pending approval record; a pass that finds it still pending waits (and expires it into
//! an escalation after the policy's timeout — never into an action).
//!
//! An app in sync costs one Fly call: with no unfinished deploy in the records, the gate first
//! lists the app's machines once; an empty diff ends there (pending approvals of the app are
//! superseded, nothing is planned). Anything else is planned in full.

use chrono::{DateTime, Utc};
use opsctl_controllers::governance::Verdict;
use opsctl_crds::{FlyApp, ManifestSet};

use super::approvals::{self, Approval, ApprovalAction, ApprovalData};
use super::plan::{AppPlan, PlanError, plan_app};
use crate::records::{DeployStatus, StoreError, Trigger};
use crate::runtime::deploy::{DeployError, Deployer, Outcome};

/// What the gate did with one app.
#[derive(Debug)]
pub enum Governed {
    /// The deployer ran (everything auto, approved, a recovery, or nothing to do).
    Ran {
        /// Its outcome.
        outcome: Outcome,
        /// The approval it ran under, if any.
        approval: Option<String>,
    },
    /// Waiting for `opsctl approve`.
    Waiting {
        /// The pending approval.
        approval: String,
        /// Created by this pass (else it was already waiting).
        created: bool,
        /// Rule of the gated action.
        rule: String,
        /// The rule, for people.
        why: String,
    },
    /// Not run: a rule denied an action, or a human denied the plan.
    Denied {
        /// Rule id (`human.denied` when a human did).
        rule: String,
        /// Why.
        why: String,
        /// The denied approval, when a human denied.
        approval: Option<String>,
    },
    /// The approval expired: escalated, nothing ran.
    Expired {
        /// The expired approval.
        approval: String,
        /// The escalation record.
        escalation: Option<String>,
    },
}

/// Why the gate could not decide or the deploy could not run.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// Planning failed (Fly not observable, unsupported strategy, store unreadable).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The deploy failed to run.
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// The store failed while recording an approval.
    #[error("recording the approval")]
    Store(#[from] StoreError),
}

fn approval_data(plan: &AppPlan) -> ApprovalData {
    ApprovalData {
        state: "pending".into(),
        plan_hash: plan.plan_hash.clone(),
        actions: plan
            .actions
            .iter()
            .map(|a| ApprovalAction {
                kind: a.action.kind.as_str().into(),
                detail: a.action.detail.clone(),
                verdict: a.decision.verdict.as_str().into(),
                rule: a.decision.rule.clone(),
                why: a.decision.why.clone(),
                image: a.image.clone(),
                release_version: None,
            })
            .collect(),
        policy: plan.policy.clone(),
        timeout_secs: plan.approval_timeout.as_secs(),
        decided_by: None,
    }
}

/// Plan `app`, decide, and deploy what governance allows. `trigger` and `commit` as for
/// [`Deployer::deploy`].
///
/// # Errors
/// [`GateError`].
pub async fn governed_deploy(
    deployer: &Deployer,
    set: &ManifestSet,
    app: &FlyApp,
    trigger: Trigger,
    commit: Option<String>,
) -> Result<Governed, GateError> {
    governed_deploy_seen(deployer, set, app, trigger, commit, &mut None).await
}

/// [`governed_deploy`], also leaving in `seen` the drift its first look at the machines found
/// when something differed (the reconciler checks its invariants on it instead of listing the
/// machines again).
///
/// # Errors
/// [`GateError`].
pub async fn governed_deploy_seen(
    deployer: &Deployer,
    set: &ManifestSet,
    app: &FlyApp,
    trigger: Trigger,
    commit: Option<String>,
    seen: &mut Option<opsctl_controllers::diff::AppDiff>,
) -> Result<Governed, GateError> {
    let now = deployer.clock.now();
    approvals::ingest(&deployer.store, now)?;
    let plan = match quick_look(deployer, app).await? {
        Look::InSync(in_sync) => {
            // Nothing to approve any more: an approval asked for earlier is moot.
            supersede_pending(deployer, app.app_name(), now)?;
            return Ok(Governed::Ran {
                outcome: Outcome::NothingToDo(in_sync),
                approval: None,
            });
        }
        // The machines just listed are what the plan is made from (no second list).
        Look::Differs(observed, drift) => {
            *seen = Some(drift);
            crate::governance::plan::plan_observed(deployer, set, app, &observed, now)?
        }
        Look::Unfinished => plan_app(deployer, set, app, now).await?,
    };
    let ran = |outcome, approval| Governed::Ran { outcome, approval };
    if plan.recovering {
        return Ok(ran(deployer.deploy(app, trigger, commit).await?, None));
    }
    if plan.blocked.is_some() || plan.executable().next().is_none() {
        // Nothing to approve any more (in sync, or blocked whatever a human says).
        supersede_open(deployer, &plan, now)?;
        return Ok(ran(deployer.deploy(app, trigger, commit).await?, None));
    }
    if let Some(denied) = plan.first(Verdict::Denied) {
        tracing::warn!(app = %plan.app, rule = %denied.decision.rule, "{}: {}", denied.action.kind.as_str(), denied.decision.why);
        return Ok(Governed::Denied {
            rule: denied.decision.rule.clone(),
            why: denied.decision.why.clone(),
            approval: None,
        });
    }
    let Some(gated) = plan.first(Verdict::Gated) else {
        // Automatic now (e.g. a freeze window closed): an approval asked for earlier is moot.
        supersede_open(deployer, &plan, now)?;
        return Ok(ran(deployer.deploy(app, trigger, commit).await?, None));
    };
    let store = &deployer.store;
    let mut current: Option<Approval> = None;
    // A manual rollback's approval is `opsctl rollback`'s to carry out, not this pass's.
    for mut a in approvals::approvals(store, Some(&plan.app))?
        .into_iter()
        .filter(|a| !a.is_rollback())
    {
        let open = matches!(a.data.state.as_str(), "pending" | "approved");
        if a.data.plan_hash == plan.plan_hash {
            if current.is_none() {
                current = Some(a);
            }
        } else if open {
            a.close(store, "superseded", now)?;
        }
    }
    let Some(mut approval) = current else {
        return Ok(ask(deployer, &plan, gated, now)?);
    };
    match approval.data.state.as_str() {
        "approved" => {
            tracing::info!(app = %plan.app, approval = %approval.id(), "running the approved plan");
            let outcome = deployer.deploy(app, trigger, commit).await?;
            if let Outcome::Deployed(rec) = &outcome {
                approval.applied(store, &rec.id, deployer.clock.now())?;
            }
            Ok(ran(outcome, Some(approval.id().to_owned())))
        }
        "pending" => {
            let age = approval.age(now);
            let timeout =
                chrono::Duration::from_std(plan.approval_timeout).unwrap_or(chrono::Duration::MAX);
            if age >= timeout {
                approval.close(store, "expired", now)?;
                let esc = approvals::escalate_expired(store, &approval, now)?;
                tracing::error!(app = %plan.app, approval = %approval.id(), escalation = %esc.id, "approval expired without a decision; escalated, nothing runs");
                return Ok(Governed::Expired {
                    approval: approval.id().to_owned(),
                    escalation: Some(esc.id),
                });
            }
            Ok(Governed::Waiting {
                approval: approval.id().to_owned(),
                created: false,
                rule: gated.decision.rule.clone(),
                why: gated.decision.why.clone(),
            })
        }
        "denied" => Ok(Governed::Denied {
            rule: "human.denied".into(),
            why: format!(
                "a human denied this plan ({}); it stays denied until the manifests or Fly change",
                approval.id()
            ),
            approval: Some(approval.id().to_owned()),
        }),
        "expired" => Ok(Governed::Expired {
            approval: approval.id().to_owned(),
            escalation: None,
        }),
        // Applied, stale or superseded with the same hash: the plan came back unchanged
        // (e.g. the deploy was undone by hand). Ask again.
        _ => Ok(ask(deployer, &plan, gated, now)?),
    }
}

/// Queue a pending approval for `plan`, whose first gated action is `gated`.
fn ask(
    deployer: &Deployer,
    plan: &AppPlan,
    gated: &super::plan::PlannedAction,
    now: DateTime<Utc>,
) -> Result<Governed, StoreError> {
    let a = approvals::create_pending(
        &deployer.store,
        &plan.app,
        format!(
            "{}: {} {} — {}",
            plan.app,
            gated.action.kind.as_str(),
            gated.action.detail,
            gated.decision.rule
        ),
        approval_data(plan),
        now,
    )?;
    tracing::info!(app = %plan.app, approval = %a.id(), rule = %gated.decision.rule, plan_hash = %plan.plan_hash, "waiting for approval: opsctl approve {}", a.id());
    Ok(Governed::Waiting {
        approval: a.id().to_owned(),
        created: true,
        rule: gated.decision.rule.clone(),
        why: gated.decision.why.clone(),
    })
}

/// Close the app's pending approvals as `superseded`: the plan no longer needs one.
fn supersede_open(
    deployer: &Deployer,
    plan: &AppPlan,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    supersede_pending(deployer, &plan.app, now)
}

/// Close `app`'s pending approvals as superseded, except manual rollbacks (`opsctl rollback`
/// asked for those; a reconcile pass has nothing to say about them).
fn supersede_pending(deployer: &Deployer, app: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
    for mut a in approvals::pending(&deployer.store, Some(app))?
        .into_iter()
        .filter(|a| !a.is_rollback())
    {
        a.close(&deployer.store, "superseded", now)?;
    }
    Ok(())
}

/// What the cheap look of a pass found.
enum Look {
    /// Every machine matches the manifest: nothing to plan, approve or deploy.
    InSync(opsctl_controllers::diff::AppDiff),
    /// Something differs: the machines just listed, to plan from, and the drift.
    Differs(
        Box<opsctl_controllers::observed::ObservedApp>,
        opsctl_controllers::diff::AppDiff,
    ),
    /// A deploy is unfinished in the records: the full plan (recovery) decides.
    Unfinished,
}

/// The cheap look of a pass: with no unfinished deploy of `app` in the records, one list call
/// (no releases, no per-machine reads) and the diff.
///
/// # Errors
/// The list call failed (Fly not observable) or the records could not be read.
async fn quick_look(deployer: &Deployer, app: &FlyApp) -> Result<Look, GateError> {
    let name = app.app_name();
    let unfinished = deployer
        .store
        .deploys(Some(name))?
        .first()
        .is_some_and(|r| r.status == DeployStatus::InProgress || r.needs_recovery);
    if unfinished {
        return Ok(Look::Unfinished);
    }
    let observed = crate::fly::observe::observe_machines(&deployer.client, name)
        .await
        .map_err(|source| PlanError::Observe {
            app: name.to_owned(),
            source: Box::new(source),
        })?;
    let drift = opsctl_controllers::diff::diff(app, &observed);
    Ok(if drift.is_empty() {
        Look::InSync(drift)
    } else {
        Look::Differs(Box::new(observed), drift)
    })
}
