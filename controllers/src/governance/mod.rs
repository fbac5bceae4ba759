//! Governance (ADR §4–5; DESIGN.md §6): every action the reconciler or a pipeline could take
//! passes [`decide`], one pure function of (action, role, policy, burn-in, context, now), and
//! the answer — `auto`, `gated` or `denied`, with the rule that decided it — is visible in
//! `opsctl plan` before anything happens.
//!
//! Map:
//! - [`action`]: actions, pipeline modes, agent roles and their operations.
//! - [`burn_in`]: the burn-in counter and phase, from the deploy history.
//! - [`freeze`]: freeze windows at `now`.
//! - this module: [`decide`], [`policy_for`], [`plan_hash`], [`config_fingerprint`].
//!
//! Not here: reading records, approvals and their timeouts, the Fly client's enforcement of
//! the allowlist (all in the `opsctl` crate, which calls these functions).

pub mod action;
pub mod burn_in;
pub mod freeze;

use chrono::{DateTime, Utc};
use opsctl_crds::kinds::governance::{Gate, GovernancePolicySpec};
use opsctl_crds::{FlyApp, Manifest};
use serde::{Deserialize, Serialize};

pub use self::action::{Action, ActionKind, Mode, Role};
pub use self::burn_in::BurnIn;
use crate::observed::ObservedApp;

/// What governance says about an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Runs without asking.
    Auto,
    /// Waits for `opsctl approve` (or `deny`).
    Gated,
    /// Never runs.
    Denied,
}

impl Verdict {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Auto => "auto",
            Verdict::Gated => "gated",
            Verdict::Denied => "denied",
        }
    }
}

/// A verdict and the rule that gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The verdict.
    pub verdict: Verdict,
    /// Stable rule id (`gate.deploy.phase1.gated`, `migration.always-human`,
    /// `budget.deploy.over-cap`, `role.monitor.not-allowed`, `freeze.deny-window`, …); see
    /// docs/governance.md for the list.
    pub rule: String,
    /// The rule applied to this case, for people.
    pub why: String,
}

impl Decision {
    fn new(verdict: Verdict, rule: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            verdict,
            rule: rule.into(),
            why: why.into(),
        }
    }
}

/// Facts about the situation that some gates depend on. All default to `false`: a fact not
/// established is treated as not holding (so `autoWhenSafe` stays gated).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    /// CI is green for the commit (or enforced green by the deploy's PreCheck stage before any
    /// change).
    pub ci_green: bool,
    /// The app's managed config other than the image is unchanged since the last successful
    /// deploy (see [`config_fingerprint`]).
    pub config_unchanged: bool,
    /// A runbook names this response for the incident's signal.
    pub known_runbook: bool,
    /// The incident is classified as an outage.
    pub outage: bool,
    /// The release being rolled back failed health.
    pub health_failure: bool,
}

/// Decide `action` performed by `role` under `policy`, with the app's `burn_in`, the
/// situation `ctx`, at `now` (UTC; for freeze windows). In order:
/// 1. an operation no role may use, or one outside `role`'s allowlist → denied;
/// 2. a rollback after a health failure or an outage, when the auto-rollback rules say so →
///    auto (before budgets and freeze windows: the ADR makes it unconditional);
/// 3. an estimated cost over the mode's cap (or not a finite, non-negative number) → denied;
/// 4. a migration → gated, always (whatever the policy says);
/// 5. a deploy-mode action (not a rollback) in a freeze → gated (waits; a human approval
///    overrides, like Argo CD's manual sync);
/// 6. the kind's gate in the burn-in phase.
pub fn decide(
    action: &Action,
    role: Role,
    policy: &GovernancePolicySpec,
    burn_in: BurnIn,
    ctx: Context,
    now: DateTime<Utc>,
) -> Decision {
    use Verdict::*;
    let op = action.operation;
    if op.always_denied() {
        return Decision::new(
            Denied,
            "role.always-denied",
            format!(
                "`{}` is denied to every role (ADR §4: no secrets, ssh/console, apps create/destroy, raw machine commands)",
                op.as_str()
            ),
        );
    }
    if !role.allows(&policy.roles, op) {
        return Decision::new(
            Denied,
            format!("role.{}.not-allowed", role.as_str()),
            format!(
                "the {} role's allowlist does not include `{}`",
                role.as_str(),
                op.as_str()
            ),
        );
    }
    if action.kind == ActionKind::Rollback {
        if ctx.outage && policy.auto_rollback.on_outage {
            return Decision::new(
                Auto,
                "rollback.auto.outage",
                "an outage rolls back first, unconditionally (ADR §5)",
            );
        }
        if ctx.health_failure && policy.auto_rollback.on_health_failure {
            return Decision::new(
                Auto,
                "rollback.auto.health-failure",
                "a release that failed health rolls back unconditionally (ADR §5)",
            );
        }
    }
    let mode = action.kind.mode();
    let cap = match mode {
        Mode::Deploy => policy.budgets.deploy_usd,
        Mode::Incident => policy.budgets.incident_usd,
        Mode::Maintenance => policy.budgets.maintenance_usd,
    };
    let cost = action.estimated_cost_usd;
    if !cost.is_finite() || cost < 0.0 || cost > cap {
        return Decision::new(
            Denied,
            format!("budget.{}.over-cap", mode.as_str()),
            format!(
                "estimated cost ${cost:.2} is over the {} cap of ${cap:.2} per action",
                mode.as_str()
            ),
        );
    }
    if action.kind == ActionKind::Migration {
        return Decision::new(
            Gated,
            "migration.always-human",
            "migrations (release commands) are always decided by a human (ADR §4)",
        );
    }
    if action.kind.frozen_by_windows()
        && let Some(f) = freeze::frozen(&policy.freeze_windows, now)
    {
        return Decision::new(Gated, f.rule, f.why);
    }
    let phase = burn_in.phase;
    let kind = action.kind.as_str();
    let gate = action.kind.gates(&policy.gates).in_phase(phase);
    let base = format!("gate.{kind}.phase{phase}");
    let at = format!(
        "{kind} in burn-in phase {phase} ({} counted deploys)",
        burn_in.count
    );
    match gate {
        Gate::Auto => Decision::new(Auto, format!("{base}.auto"), format!("{at}: auto")),
        Gate::Gated => Decision::new(
            Gated,
            format!("{base}.gated"),
            format!("{at}: gated, waits for approval"),
        ),
        Gate::Denied => Decision::new(Denied, format!("{base}.denied"), format!("{at}: denied")),
        Gate::AutoWhenSafe if !ctx.ci_green => Decision::new(
            Gated,
            format!("{base}.ci-not-green"),
            format!("{at}: auto only when CI is green for the commit, and it is not known green"),
        ),
        Gate::AutoWhenSafe if !ctx.config_unchanged => Decision::new(
            Gated,
            format!("{base}.config-changed"),
            format!(
                "{at}: auto only when the app's config other than the image is unchanged since the last successful deploy, and it changed"
            ),
        ),
        Gate::AutoWhenSafe => Decision::new(
            Auto,
            format!("{base}.auto-when-safe"),
            format!("{at}: CI green and config unchanged since the last successful deploy"),
        ),
        Gate::AutoWhenKnownRunbook if ctx.known_runbook => Decision::new(
            Auto,
            format!("{base}.known-runbook"),
            format!("{at}: a runbook names this response"),
        ),
        Gate::AutoWhenKnownRunbook => Decision::new(
            Gated,
            format!("{base}.no-runbook"),
            format!("{at}: auto only for known runbook responses, and no runbook names this one"),
        ),
    }
}

/// The policy governing `app`, and where it came from (the manifest's name, or `default`
/// for the ADR's tables): a policy whose `apps` names the app, else the first policy without
/// `apps`, else the ADR's default. `policies` as the loader sorts them (by name).
pub fn policy_for(
    policies: &[Manifest<GovernancePolicySpec>],
    app: &str,
) -> (GovernancePolicySpec, String) {
    policies
        .iter()
        .find(|p| p.spec.names(app))
        .or_else(|| policies.iter().find(|p| p.spec.apps.is_empty()))
        .map(|p| (p.spec.clone(), p.name().to_owned()))
        .unwrap_or_else(|| (GovernancePolicySpec::default(), "default".to_owned()))
}

/// FNV-1a 64 of `bytes`, as 16 hex digits: stable across runs and builds (a fingerprint, not
/// a security boundary).
fn fnv(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Fingerprint of the app's managed config other than the image: the whole `spec` (process
/// groups, env names and values, services, checks, deploy settings — what fly.toml carries)
/// with `image` left out. Two desired states that differ only by image have the same one.
pub fn config_fingerprint(app: &FlyApp) -> String {
    let mut spec = serde_json::to_value(&app.spec).unwrap_or_default();
    if let Some(obj) = spec.as_object_mut() {
        obj.remove("image");
    }
    fnv(spec.to_string().as_bytes())
}

/// A stable hash of what a plan was computed from and of the plan's actions: `desired`, the
/// fingerprint of the desired state (`FlyApp::revision`: the whole manifest, image, env and
/// config alike); per observed machine (sorted by id) its id, region, process group, image,
/// instance version, size and whether opsctl manages it; then each action's kind and detail.
/// Check results, timestamps and events are left out, so a flapping check does not make an
/// approval stale; any machine update (a new instance version) or any change to the manifest
/// does, so an approval or a denial never carries over to a desired state nobody saw.
pub fn plan_hash(desired: &str, observed: &ObservedApp, actions: &[Action]) -> String {
    let mut machines: Vec<_> = observed
        .machines
        .iter()
        .map(|m| {
            serde_json::json!([
                m.id, m.region, m.group, m.image, m.version, m.guest, m.managed
            ])
        })
        .collect();
    machines.sort_by_key(|v| v[0].as_str().unwrap_or_default().to_owned());
    let actions: Vec<_> = actions
        .iter()
        .map(|a| serde_json::json!([a.kind, a.app, a.detail]))
        .collect();
    let canonical = serde_json::json!({"app": observed.name, "desired": desired, "machines": machines, "actions": actions});
    fnv(canonical.to_string().as_bytes())
}

#[cfg(test)]
mod tests;
