//! An app's governed plan: what a reconcile pass would do right now (observe Fly, diff, plan
//! the rollout), each action with the governance decision and the rule that gave it, and the
//! hash of the observed state it was computed from. `opsctl plan` prints it; `apply`, `run`
//! and `approve` compute it the same way, so what `plan` shows is what they do.
//!
//! Inputs: the manifest set (the app and the policies), the Fly client, the record store (burn
//! in, last successful deploy, release commands done), `now` from the clock. Secret values never
//! enter a plan: details carry images and machine counts, never env values.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_controllers::diff::diff;
use opsctl_controllers::governance::{
    Action, ActionKind, BurnIn, Context, Decision, Verdict, burn_in, config_fingerprint, decide,
    plan_hash, policy_for,
};
use opsctl_controllers::history::{PastDeploy, may_deploy};
use opsctl_controllers::rollout;
use opsctl_crds::flyapp::Strategy;
use opsctl_crds::{FlyApp, ManifestSet};
use serde::Serialize;

use crate::fly::FlyError;
use crate::fly::observe::observe_machines;
use crate::records::{DeployRecord, DeployStatus, LinkKind, RecordKind, RecordStore, StoreError};
use crate::runtime::deploy::Deployer;

/// Price assumed for a temporary machine (canary, green, release command), US dollars per
/// hour: above Fly's shared-cpu-1x/1 GB list price (about $0.0089/h, fly.io/docs/about/pricing)
/// so the estimate errs high.
pub const USD_PER_MACHINE_HOUR: f64 = 0.05;
/// How long a temporary machine is assumed to live, minutes.
pub const TEMPORARY_MACHINE_MINUTES: f64 = 15.0;

/// One action and its decision.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedAction {
    /// The action.
    pub action: Action,
    /// What governance said.
    pub decision: Decision,
    /// The image it concerns (deploys and migrations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// One app's governed plan.
#[derive(Debug, Clone, Serialize)]
pub struct AppPlan {
    /// Fly app name.
    pub app: String,
    /// The policy that decided (`default`: the ADR's).
    pub policy: String,
    /// Burn-in of the app.
    pub burn_in: BurnIn,
    /// The facts the gates used.
    pub context: Context,
    /// Hash of the observed state and actions ([`plan_hash`]).
    pub plan_hash: String,
    /// Actions, in the order they would run.
    pub actions: Vec<PlannedAction>,
    /// Why a deploy will not start even if approved (a pinned-out image, a pause), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// An unfinished deploy will be finished first (recovery is not gated: it completes or
    /// rolls back what was already approved).
    pub recovering: bool,
    /// How long a gated plan waits for a decision.
    #[serde(skip)]
    pub approval_timeout: Duration,
}

impl AppPlan {
    /// The actions `apply`/`run` carry out (deploys and migrations); others are shown only.
    pub fn executable(&self) -> impl Iterator<Item = &PlannedAction> {
        self.actions
            .iter()
            .filter(|a| matches!(a.action.kind, ActionKind::Deploy | ActionKind::Migration))
    }

    /// The first executable action with `verdict`.
    pub fn first(&self, verdict: Verdict) -> Option<&PlannedAction> {
        self.executable().find(|a| a.decision.verdict == verdict)
    }
}

/// Why a plan could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Fly could not be observed (unknown, not unhealthy: nothing is decided).
    #[error("observing {app} on Fly")]
    Observe {
        /// App.
        app: String,
        /// Cause.
        #[source]
        source: Box<FlyError>,
    },
    /// The manifest asks for something the rollout planner does not support.
    #[error(transparent)]
    Rollout(#[from] rollout::PlanError),
    /// The record store could not be read.
    #[error("reading the records")]
    Store(#[from] StoreError),
}

/// The burn-in of `app` from the record store: deploy records, rollbacks (a later deploy that
/// put back the replaced image) and incidents with a `caused-by` link to a deploy.
///
/// # Errors
/// The store could not be read.
pub fn app_burn_in(
    store: &RecordStore,
    app: &str,
    spec: &opsctl_crds::kinds::governance::BurnInSpec,
) -> Result<(BurnIn, Vec<DeployRecord>), StoreError> {
    let records = store.deploys(Some(app))?;
    let history: Vec<PastDeploy> = records.iter().map(DeployRecord::past).collect();
    let mut implicated = burn_in::reverted(&history, |id| {
        records
            .iter()
            .find(|r| r.id == id)
            .and_then(|r| r.previous_image.clone())
    });
    let ids: BTreeSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    for incident in store.records(|r| r.kind == RecordKind::Incident)? {
        for link in &incident.links {
            if link.kind == LinkKind::CausedBy && ids.contains(link.to.as_str()) {
                implicated.insert(link.to.clone());
            }
        }
    }
    Ok((BurnIn::of(&history, &implicated, spec), records))
}

/// Compute `app`'s governed plan under `set`'s policies at `now`.
///
/// # Errors
/// [`PlanError`]: Fly not observable, an unsupported strategy, or the store unreadable.
pub async fn plan_app(
    deployer: &Deployer,
    set: &ManifestSet,
    app: &FlyApp,
    now: DateTime<Utc>,
) -> Result<AppPlan, PlanError> {
    // A plan reads machines only (diff, rollout plan, plan hash): one list call.
    let observed = observe_machines(&deployer.client, app.app_name())
        .await
        .map_err(|source| PlanError::Observe {
            app: app.app_name().to_owned(),
            source: Box::new(source),
        })?;
    plan_observed(deployer, set, app, &observed, now)
}

/// [`plan_app`] from machines already observed (`observed`, e.g. by the reconciler's quick
/// look a moment ago), so a pass does not list them twice.
///
/// # Errors
/// [`PlanError`]: an unsupported strategy, or the store unreadable.
pub fn plan_observed(
    deployer: &Deployer,
    set: &ManifestSet,
    app: &FlyApp,
    observed: &opsctl_controllers::observed::ObservedApp,
    now: DateTime<Utc>,
) -> Result<AppPlan, PlanError> {
    let name = app.app_name().to_owned();
    let (policy, source) = policy_for(&set.policies, &name);
    let (burn, records) = app_burn_in(&deployer.store, &name, &policy.burn_in)?;
    let recovering = records
        .first()
        .is_some_and(|r| r.status == DeployStatus::InProgress || r.needs_recovery);
    let drift = diff(app, observed);
    if recovering {
        // The unfinished deploy is finished (or rolled back) first; planning the next one
        // against its half-updated machines would be meaningless.
        return Ok(AppPlan {
            app: name,
            policy: source,
            burn_in: burn,
            context: Context::default(),
            plan_hash: plan_hash(&app.revision(), observed, &[]),
            actions: Vec::new(),
            blocked: None,
            recovering,
            approval_timeout: policy.approval_timeout.get(),
        });
    }
    let rollout = rollout::plan(app, observed, &drift)?;
    let fingerprint = config_fingerprint(app);
    let last_good = records.iter().find(|r| r.status == DeployStatus::Succeeded);
    let context = Context {
        // The PreCheck stage refuses a commit whose CI is not green before anything changes,
        // so a declared CI gate makes CI green a precondition of the deploy itself.
        ci_green: app.spec.deploy.pre_check.ci.is_some(),
        config_unchanged: last_good.is_some_and(|r| r.config_revision == fingerprint),
        ..Context::default()
    };
    let mut actions: Vec<(Action, Option<String>)> = Vec::new();
    let mut blocked = None;
    if !rollout.is_empty() {
        let history: Vec<PastDeploy> = records.iter().map(DeployRecord::past).collect();
        if let Err(b) = may_deploy(&history, &rollout.image, &app.revision(), false) {
            blocked = Some(b.to_string());
        }
        let touched: Vec<_> = rollout.touches().collect();
        let from: BTreeSet<&str> = touched.iter().map(|s| s.from_image.as_str()).collect();
        let from: Vec<&str> = from.into_iter().collect();
        let strategy = format!("{:?}", rollout.strategy).to_lowercase();
        let config = config_changes(&drift);
        let what = if from.iter().all(|f| *f == rollout.image) {
            format!("config change ({config})")
        } else if config.is_empty() {
            format!("image {} → {}", from.join(", "), rollout.image)
        } else {
            format!(
                "image {} → {}, and config ({config})",
                from.join(", "),
                rollout.image
            )
        };
        let temporary = match rollout.strategy {
            Strategy::Canary => rollout.canaries.len(),
            Strategy::Bluegreen => rollout.blue.len(),
            _ => 0,
        };
        if let Some(cmd) = app.spec.deploy.release_command.as_deref()
            && deployer
                .release_command_done(&name, cmd, &rollout.image)?
                .is_none()
        {
            actions.push((
                Action::new(
                    ActionKind::Migration,
                    &name,
                    format!("release command `{cmd}` for {}", rollout.image),
                    opsctl_controllers::governance::action::machine_hours_cost(
                        1,
                        TEMPORARY_MACHINE_MINUTES,
                        USD_PER_MACHINE_HOUR,
                    ),
                ),
                Some(rollout.image.clone()),
            ));
        }
        actions.push((
            Action::new(
                ActionKind::Deploy,
                &name,
                format!("{what} on {} machine(s), {strategy}", touched.len()),
                opsctl_controllers::governance::action::machine_hours_cost(
                    temporary,
                    TEMPORARY_MACHINE_MINUTES,
                    USD_PER_MACHINE_HOUR,
                ),
            ),
            Some(rollout.image.clone()),
        ));
    }
    let to_update = drift.machines_to_update();
    let scaling = drift
        .changes
        .iter()
        .filter(|c| c.machine().is_none_or(|m| !to_update.contains(m)))
        .count();
    if scaling > 0 {
        actions.push((
            Action::new(
                ActionKind::Scale,
                &name,
                format!("{scaling} machine count change(s); see `opsctl diff`"),
                0.0,
            ),
            None,
        ));
    }
    let bare: Vec<Action> = actions.iter().map(|(a, _)| a.clone()).collect();
    let hash = plan_hash(&app.revision(), observed, &bare);
    let actions = actions
        .into_iter()
        .map(|(action, image)| PlannedAction {
            decision: decide(&action, action.kind.role(), &policy, burn, context, now),
            action,
            image,
        })
        .collect();
    Ok(AppPlan {
        app: name,
        policy: source,
        burn_in: burn,
        context,
        plan_hash: hash,
        actions,
        blocked,
        recovering,
        approval_timeout: policy.approval_timeout.get(),
    })
}

/// The config changes of `drift` besides images, by name only (env values may be secrets):
/// `env PORT, env SECRET_KEY_BASE, check readyz, services, size, stop`, deduplicated across
/// machines, in that order; empty when only images change.
fn config_changes(drift: &opsctl_controllers::diff::AppDiff) -> String {
    use opsctl_controllers::diff::Change;
    let mut names: Vec<String> = Vec::new();
    for c in &drift.changes {
        let name = match c {
            Change::Env { key, .. } => format!("env {key}"),
            Change::Check { name, .. } => format!("check {name}"),
            Change::Services { .. } => "services".to_owned(),
            Change::Size { .. } => "size".to_owned(),
            Change::Stop { .. } => "stop".to_owned(),
            _ => continue,
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.join(", ")
}
