//! The `GovernancePolicy` kind: gates per action and burn-in phase, burn-in thresholds, budget
//! caps, the tool allowlist per agent role, auto-rollback rules, freeze windows and the
//! approval timeout (DESIGN.md §3, §6; ADR "Delivery and SRE — The Operations Org" §4–5).
//!
//! Every field has a default, and the defaults are the ADR's tables exactly (see
//! [`GovernancePolicySpec::default`] and docs/governance.md): with no `GovernancePolicy` in the
//! manifests, opsctl governs as the ADR says. A policy that is written overrides only the
//! sections it spells out. This module decides nothing: `opsctl_controllers::governance` reads
//! the spec and decides.
//!
//! Things no policy can change (checked by `rules`): migrations (`gates.migration`) are
//! gated in every phase; the operations of [`Operation::ALWAYS_DENIED`] are on no role's
//! allowlist.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;
use crate::load::Checker;
use crate::load::field_path as path;

/// `spec` of a `GovernancePolicy` manifest. `Default` is the ADR's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GovernancePolicySpec {
    /// Fly app names this policy governs. Empty (the default): every app. An app named by a
    /// policy's `apps` is governed by that policy; other apps by the first policy (by name)
    /// without `apps`; with none, by the ADR's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// Where the burn-in phases start. Default: phase 2 at deploy 11, phase 3 at deploy 51.
    #[serde(default)]
    pub burn_in: BurnInSpec,
    /// The verdict for each kind of action in each burn-in phase. Sections not written keep
    /// their ADR default.
    #[serde(default)]
    pub gates: GatesSpec,
    /// The operations each agent role may use (ADR §4).
    #[serde(default)]
    pub roles: RolesSpec,
    /// Estimated-cost caps per action, in US dollars, per pipeline mode.
    #[serde(default)]
    pub budgets: BudgetsSpec,
    /// When a rollback runs without asking anyone.
    #[serde(default)]
    pub auto_rollback: AutoRollbackSpec,
    /// Windows in which deploy-mode actions may (`allow`) or may not (`deny`) run, like Argo
    /// CD's sync windows. Empty (the default): no window, deploys run any time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze_windows: Vec<FreezeWindow>,
    /// How long a gated action waits for `opsctl approve`/`deny` before it is closed as
    /// expired and an escalation record is written (never an automatic action). Default `24h`.
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout: DurationStr,
}

fn default_approval_timeout() -> DurationStr {
    DurationStr::from_secs(24 * 3600)
}

impl Default for GovernancePolicySpec {
    /// The ADR's tables (§4–5), exactly: see docs/governance.md.
    fn default() -> Self {
        Self {
            apps: Vec::new(),
            burn_in: BurnInSpec::default(),
            gates: GatesSpec::default(),
            roles: RolesSpec::default(),
            budgets: BudgetsSpec::default(),
            auto_rollback: AutoRollbackSpec::default(),
            freeze_windows: Vec::new(),
            approval_timeout: default_approval_timeout(),
        }
    }
}

impl GovernancePolicySpec {
    /// True when this policy governs `app` by name (its `apps` names it).
    pub fn names(&self, app: &str) -> bool {
        self.apps.iter().any(|a| a == app)
    }
}

/// Burn-in thresholds, as 1-based deploy numbers: deploy *n* is the one made after *n − 1*
/// counted deploys (successful, never rolled back, no incident caused by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurnInSpec {
    /// First deploy number of phase 2. Default 11 (deploys 1–10 are phase 1).
    #[serde(default = "default_phase2")]
    pub phase2_from: u32,
    /// First deploy number of phase 3. Default 51 (deploys 11–50 are phase 2).
    #[serde(default = "default_phase3")]
    pub phase3_from: u32,
}

fn default_phase2() -> u32 {
    11
}
fn default_phase3() -> u32 {
    51
}

impl Default for BurnInSpec {
    fn default() -> Self {
        Self {
            phase2_from: default_phase2(),
            phase3_from: default_phase3(),
        }
    }
}

/// What happens to an action in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Gate {
    /// Runs without asking.
    Auto,
    /// Waits for `opsctl approve`.
    Gated,
    /// Never runs.
    Denied,
    /// Deploys only: auto when CI is green for the commit and the app's managed config other
    /// than the image is unchanged since the last successful deploy; gated otherwise.
    AutoWhenSafe,
    /// Incident responses (and restarts, rollbacks): auto when a runbook names the response
    /// for the incident's signal; gated otherwise.
    AutoWhenKnownRunbook,
}

impl Gate {
    /// The camelCase name, as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Gate::Auto => "auto",
            Gate::Gated => "gated",
            Gate::Denied => "denied",
            Gate::AutoWhenSafe => "autoWhenSafe",
            Gate::AutoWhenKnownRunbook => "autoWhenKnownRunbook",
        }
    }
}

/// The gate of one kind of action in each burn-in phase. All three are required when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PhaseGates {
    /// Phase 1 (deploys 1–10 by default).
    pub phase1: Gate,
    /// Phase 2 (deploys 11–50 by default).
    pub phase2: Gate,
    /// Phase 3 (deploy 51 on by default).
    pub phase3: Gate,
}

impl PhaseGates {
    /// The same gate in every phase.
    pub const fn all(gate: Gate) -> Self {
        Self {
            phase1: gate,
            phase2: gate,
            phase3: gate,
        }
    }

    /// The gate of phase `n` (1, 2 or 3; anything above 3 is phase 3).
    pub fn in_phase(&self, n: u8) -> Gate {
        match n {
            0 | 1 => self.phase1,
            2 => self.phase2,
            _ => self.phase3,
        }
    }
}

/// Gates per kind of action. Defaults (ADR §4–5): deploy gated / autoWhenSafe / auto; scaling
/// always gated; migrations always gated (human); incident classification auto; incident
/// response gated / gated / autoWhenKnownRunbook; maintenance checks auto (read-only);
/// restarts as incident responses; a rollback outside the auto-rollback rules gated;
/// destroying a machine outside a strategy denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct GatesSpec {
    /// A rollout of a new image or config.
    pub deploy: PhaseGates,
    /// A rollback that the auto-rollback rules do not cover (asked for by hand or by a plan).
    pub rollback: PhaseGates,
    /// Restarting machines.
    pub restart: PhaseGates,
    /// Changing machine counts or sizes.
    pub scale: PhaseGates,
    /// A release command (database migration). Always `gated`: a human decides.
    pub migration: PhaseGates,
    /// Destroying a machine or process group outside a deploy strategy.
    pub destroy_machine: PhaseGates,
    /// Classifying an incident (noise / degradation / outage / unknown).
    pub incident_classification: PhaseGates,
    /// Answering an incident (a runbook step).
    pub incident_response: PhaseGates,
    /// A periodic read-only check.
    pub maintenance_check: PhaseGates,
}

impl Default for GatesSpec {
    fn default() -> Self {
        use Gate::*;
        Self {
            deploy: PhaseGates {
                phase1: Gated,
                phase2: AutoWhenSafe,
                phase3: Auto,
            },
            rollback: PhaseGates::all(Gated),
            restart: PhaseGates {
                phase1: Gated,
                phase2: Gated,
                phase3: AutoWhenKnownRunbook,
            },
            scale: PhaseGates::all(Gated),
            migration: PhaseGates::all(Gated),
            destroy_machine: PhaseGates::all(Denied),
            incident_classification: PhaseGates::all(Auto),
            incident_response: PhaseGates {
                phase1: Gated,
                phase2: Gated,
                phase3: AutoWhenKnownRunbook,
            },
            maintenance_check: PhaseGates::all(Auto),
        }
    }
}

/// An operation an agent role may be allowed (ADR §4), named after the flyctl command it
/// stands for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// Roll out a release through a strategy (`fly deploy`), release command included:
    /// machine updates, creates and destroys inside a strategy, leases, release writes.
    Deploy,
    /// Read machines and app state (`fly status`).
    Status,
    /// Read logs (`fly logs`).
    Logs,
    /// Read releases (`fly releases`).
    Releases,
    /// Roll back to an earlier release (machine writes inside the rollback).
    Rollback,
    /// `fly scale show`.
    ScaleShow,
    /// `fly scale count`.
    ScaleCount,
    /// `fly scale vm`.
    ScaleVm,
    /// Read certificates (`fly certs list/show`).
    Certs,
    /// Read-only PostgreSQL queries (connection counts, job queues).
    PostgresReadOnly,
    /// `fly volumes list`.
    VolumesList,
    /// GET of the app's own health endpoint.
    HealthGet,
    /// Restart machines (`fly machine restart`); on no default allowlist (case BUG-20:
    /// "restart if restart is allowlisted").
    MachineRestart,
    /// `fly secrets set`. Always denied.
    SecretsSet,
    /// `fly secrets unset`. Always denied.
    SecretsUnset,
    /// `fly ssh console`. Always denied.
    Ssh,
    /// `fly console`. Always denied.
    Console,
    /// `fly apps create`. Always denied.
    AppsCreate,
    /// `fly apps destroy`. Always denied.
    AppsDestroy,
    /// Raw machine commands outside a strategy (`fly machine exec/run/destroy`). Always denied.
    MachineRaw,
}

impl Operation {
    /// Denied to every role whatever a policy says (ADR §4).
    pub const ALWAYS_DENIED: [Operation; 7] = [
        Operation::SecretsSet,
        Operation::SecretsUnset,
        Operation::Ssh,
        Operation::Console,
        Operation::AppsCreate,
        Operation::AppsDestroy,
        Operation::MachineRaw,
    ];

    /// The kebab-case name, as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Deploy => "deploy",
            Operation::Status => "status",
            Operation::Logs => "logs",
            Operation::Releases => "releases",
            Operation::Rollback => "rollback",
            Operation::ScaleShow => "scale-show",
            Operation::ScaleCount => "scale-count",
            Operation::ScaleVm => "scale-vm",
            Operation::Certs => "certs",
            Operation::PostgresReadOnly => "postgres-read-only",
            Operation::VolumesList => "volumes-list",
            Operation::HealthGet => "health-get",
            Operation::MachineRestart => "machine-restart",
            Operation::SecretsSet => "secrets-set",
            Operation::SecretsUnset => "secrets-unset",
            Operation::Ssh => "ssh",
            Operation::Console => "console",
            Operation::AppsCreate => "apps-create",
            Operation::AppsDestroy => "apps-destroy",
            Operation::MachineRaw => "machine-raw",
        }
    }

    /// True for the operations no policy can allow.
    pub fn always_denied(self) -> bool {
        Self::ALWAYS_DENIED.contains(&self)
    }
}

/// The operations one role may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSpec {
    /// Allowed operations. Required when the role is written.
    pub allow: Vec<Operation>,
    /// Operations taken away again (wins over `allow`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Operation>,
}

impl RoleSpec {
    fn allowing(ops: &[Operation]) -> Self {
        Self {
            allow: ops.to_vec(),
            deny: Vec::new(),
        }
    }

    /// Whether `op` is allowed: on `allow`, not on `deny`, and not always denied.
    pub fn allows(&self, op: Operation) -> bool {
        !op.always_denied() && self.allow.contains(&op) && !self.deny.contains(&op)
    }
}

/// The allowlist of each agent role (ADR §3–4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RolesSpec {
    /// Runs the deploy pipeline. Default: deploy, status, logs, releases, rollback, scale
    /// show/count/vm, certs, health-get.
    pub deployer: RoleSpec,
    /// Runs the maintenance pipeline, read-only. Default: status, logs, releases, scale-show,
    /// certs, postgres-read-only, volumes-list, health-get.
    pub monitor: RoleSpec,
    /// Runs the incident pipeline. Default: status, logs, releases, rollback, scale
    /// show/count/vm, certs, postgres-read-only, volumes-list, health-get.
    pub responder: RoleSpec,
}

impl Default for RolesSpec {
    fn default() -> Self {
        use Operation::*;
        Self {
            deployer: RoleSpec::allowing(&[
                Deploy, Status, Logs, Releases, Rollback, ScaleShow, ScaleCount, ScaleVm, Certs,
                HealthGet,
            ]),
            monitor: RoleSpec::allowing(&[
                Status,
                Logs,
                Releases,
                ScaleShow,
                Certs,
                PostgresReadOnly,
                VolumesList,
                HealthGet,
            ]),
            responder: RoleSpec::allowing(&[
                Status,
                Logs,
                Releases,
                Rollback,
                ScaleShow,
                ScaleCount,
                ScaleVm,
                Certs,
                PostgresReadOnly,
                VolumesList,
                HealthGet,
            ]),
        }
    }
}

/// Estimated-cost caps per action, US dollars (LLM spend where an LLM is used; API calls and
/// machine-hours otherwise). An action over its mode's cap is denied.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BudgetsSpec {
    /// Deploy-mode actions (deploy, rollback, migration, scale, restart, destroy). Default 0.50.
    pub deploy_usd: f64,
    /// Incident-mode actions (classification, response). Default 2.00.
    pub incident_usd: f64,
    /// Maintenance-mode actions (checks). Default 0.10.
    pub maintenance_usd: f64,
}

impl Default for BudgetsSpec {
    fn default() -> Self {
        Self {
            deploy_usd: 0.50,
            incident_usd: 2.00,
            maintenance_usd: 0.10,
        }
    }
}

/// Auto-rollback rules. The ADR makes both unconditional; turning one off is allowed with a
/// warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct AutoRollbackSpec {
    /// Roll back without asking when a new release fails health. Default true.
    pub on_health_failure: bool,
    /// Roll back without asking when an incident is classified as an outage. Default true.
    pub on_outage: bool,
}

impl Default for AutoRollbackSpec {
    fn default() -> Self {
        Self {
            on_health_failure: true,
            on_outage: true,
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum WindowKind {
    /// Deploy-mode actions may run only inside some allow window (when any is declared).
    Allow,
    /// Deploy-mode actions may not run inside this window (wins over allow).
    Deny,
}

/// A freeze (or allow) window: it opens at each occurrence of `schedule` in `timeZone` and
/// stays open for `duration` (Argo CD sync windows' semantics). Rollbacks for health failures
/// and outages run regardless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FreezeWindow {
    /// `allow` or `deny`.
    pub kind: WindowKind,
    /// A 5-field cron expression (minute hour day-of-month month day-of-week; croner syntax,
    /// `L`, `W` and `#` accepted), e.g. `"0 18 * * 5"` for Fridays 18:00.
    pub schedule: String,
    /// How long the window stays open after each start, e.g. `64h`.
    pub duration: DurationStr,
    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// Rules beyond types on one `GovernancePolicy` spec.
pub(crate) fn rules(c: &mut Checker<'_>, spec: &GovernancePolicySpec) {
    for (i, app) in spec.apps.iter().enumerate() {
        if app.trim().is_empty() {
            c.error(
                &path(&["spec", "apps"]).index(i),
                "an empty app name".into(),
                Some("write the Fly app name, or remove the entry".into()),
            );
        }
    }
    let b = spec.burn_in;
    if b.phase2_from < 1 {
        c.error(
            &path(&["spec", "burnIn", "phase2From"]),
            "phase 2 cannot start before deploy 1".into(),
            Some("the ADR's value is 11".into()),
        );
    }
    if b.phase3_from < b.phase2_from {
        c.error(
            &path(&["spec", "burnIn", "phase3From"]),
            format!(
                "phase 3 starts at deploy {}, before phase 2 (deploy {})",
                b.phase3_from, b.phase2_from
            ),
            Some("phase3From must be at least phase2From (the ADR's values are 11 and 51)".into()),
        );
    }
    gate_rules(c, &spec.gates);
    for (role, r) in [
        ("deployer", &spec.roles.deployer),
        ("monitor", &spec.roles.monitor),
        ("responder", &spec.roles.responder),
    ] {
        for (i, op) in r.allow.iter().enumerate() {
            if op.always_denied() {
                c.error(
                    &path(&["spec", "roles", role, "allow"]).index(i),
                    format!("`{}` is denied to every role (ADR §4) and cannot be allowed", op.as_str()),
                    Some("remove it: setting secrets, ssh/console, creating or destroying apps and raw machine commands are never an agent's".into()),
                );
            } else if r.deny.contains(op) {
                c.warn(
                    &path(&["spec", "roles", role, "allow"]).index(i),
                    format!("`{}` is both allowed and denied; deny wins", op.as_str()),
                    None,
                );
            }
        }
    }
    for (key, usd) in [
        ("deployUsd", spec.budgets.deploy_usd),
        ("incidentUsd", spec.budgets.incident_usd),
        ("maintenanceUsd", spec.budgets.maintenance_usd),
    ] {
        if !usd.is_finite() || usd < 0.0 {
            c.error(
                &path(&["spec", "budgets", key]),
                format!("a budget cap in US dollars must be 0 or more, got {usd}"),
                Some("the ADR's caps are 0.50 deploy, 2.00 incident, 0.10 maintenance".into()),
            );
        }
    }
    for (key, on) in [
        ("onHealthFailure", spec.auto_rollback.on_health_failure),
        ("onOutage", spec.auto_rollback.on_outage),
    ] {
        if !on {
            c.warn(
                &path(&["spec", "autoRollback", key]),
                "the ADR makes auto-rollback unconditional; with this off a failed release waits for a human".into(),
                None,
            );
        }
    }
    for (i, w) in spec.freeze_windows.iter().enumerate() {
        let at = |k: &str| path(&["spec", "freezeWindows"]).index(i).key(k);
        if let Err(e) = croner::Cron::from_str(&w.schedule) {
            c.error(
                &at("schedule"),
                format!("`{}` is not a cron schedule: {e}", w.schedule),
                Some(
                    "five fields: minute hour day-of-month month day-of-week, e.g. \"0 18 * * 5\""
                        .into(),
                ),
            );
        }
        if w.time_zone.parse::<chrono_tz::Tz>().is_err() {
            c.error(
                &at("timeZone"),
                format!("`{}` is not an IANA time zone", w.time_zone),
                Some("write a name from the tz database, like UTC, Europe/Berlin or America/New_York".into()),
            );
        }
        if w.duration.get().is_zero() {
            c.error(
                &at("duration"),
                "a window of 0s never opens".into(),
                Some("write how long it stays open, like 2h".into()),
            );
        }
    }
    if spec.approval_timeout.get().is_zero() {
        c.error(
            &path(&["spec", "approvalTimeout"]),
            "an approval timeout of 0s would expire every gated action at once".into(),
            Some("the default is 24h".into()),
        );
    }
}

fn gate_rules(c: &mut Checker<'_>, g: &GatesSpec) {
    let sections: [(&str, &PhaseGates); 9] = [
        ("deploy", &g.deploy),
        ("rollback", &g.rollback),
        ("restart", &g.restart),
        ("scale", &g.scale),
        ("migration", &g.migration),
        ("destroyMachine", &g.destroy_machine),
        ("incidentClassification", &g.incident_classification),
        ("incidentResponse", &g.incident_response),
        ("maintenanceCheck", &g.maintenance_check),
    ];
    for (section, gates) in sections {
        for (phase, gate) in [
            ("phase1", gates.phase1),
            ("phase2", gates.phase2),
            ("phase3", gates.phase3),
        ] {
            let at = path(&["spec", "gates", section, phase]);
            if section == "migration" && gate != Gate::Gated {
                c.error(
                    &at,
                    format!(
                        "migrations are always human (ADR §4), so `{}` is not allowed here",
                        gate.as_str()
                    ),
                    Some("write `gated`, or leave gates.migration out".into()),
                );
            } else if gate == Gate::AutoWhenSafe && section != "deploy" {
                c.error(
                    &at,
                    "`autoWhenSafe` (CI green, config unchanged) applies to deploys only".into(),
                    Some("write auto, gated or denied".into()),
                );
            } else if gate == Gate::AutoWhenKnownRunbook
                && !matches!(section, "incidentResponse" | "restart" | "rollback")
            {
                c.error(
                    &at,
                    "`autoWhenKnownRunbook` applies to incident responses, restarts and rollbacks only".into(),
                    Some("write auto, gated or denied".into()),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
