//! What governance decides about: actions, the pipeline mode each belongs to, the agent role
//! that performs it, and the operation it needs from that role's allowlist (ADR §2–4).

use opsctl_crds::kinds::governance::{GatesSpec, Operation, PhaseGates, RoleSpec, RolesSpec};
use serde::{Deserialize, Serialize};

/// An agent role (ADR §3). Each controller acts as one role, and the Fly client refuses any
/// call outside that role's allowlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the deploy pipeline (rollouts, their rollbacks, release commands, scaling).
    Deployer,
    /// Runs the maintenance pipeline: read-only checks.
    Monitor,
    /// Runs the incident pipeline: classification and runbook responses.
    Responder,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 3] = [Role::Deployer, Role::Monitor, Role::Responder];

    /// Lowercase name, as in manifests and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Deployer => "deployer",
            Role::Monitor => "monitor",
            Role::Responder => "responder",
        }
    }

    /// This role's allowlist in `roles`.
    pub fn spec(self, roles: &RolesSpec) -> &RoleSpec {
        match self {
            Role::Deployer => &roles.deployer,
            Role::Monitor => &roles.monitor,
            Role::Responder => &roles.responder,
        }
    }

    /// Whether this role may use `op` under `roles`. The operations of
    /// [`Operation::ALWAYS_DENIED`] are refused whatever `roles` says.
    pub fn allows(self, roles: &RolesSpec, op: Operation) -> bool {
        self.spec(roles).allows(op)
    }
}

/// A pipeline mode (DESIGN.md §5); budgets are per mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Triggered by a commit or `opsctl apply`.
    Deploy,
    /// Reactive, from a signal.
    Incident,
    /// Periodic, read-only.
    Maintenance,
}

impl Mode {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Deploy => "deploy",
            Mode::Incident => "incident",
            Mode::Maintenance => "maintenance",
        }
    }
}

/// Kinds of actions the reconciler and the pipelines can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Roll out a new image or config through the app's strategy.
    Deploy,
    /// Go back to an earlier release.
    Rollback,
    /// Restart machines.
    Restart,
    /// Change machine counts or sizes.
    Scale,
    /// Run the release command (a database migration) before the rollout.
    Migration,
    /// Destroy a machine or process group outside a strategy.
    DestroyMachine,
    /// Classify an incident.
    IncidentClassification,
    /// Answer an incident with a runbook step.
    IncidentResponse,
    /// A periodic read-only check.
    MaintenanceCheck,
}

impl ActionKind {
    /// Snake-case name, as in JSON and rule ids.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Deploy => "deploy",
            ActionKind::Rollback => "rollback",
            ActionKind::Restart => "restart",
            ActionKind::Scale => "scale",
            ActionKind::Migration => "migration",
            ActionKind::DestroyMachine => "destroy_machine",
            ActionKind::IncidentClassification => "incident_classification",
            ActionKind::IncidentResponse => "incident_response",
            ActionKind::MaintenanceCheck => "maintenance_check",
        }
    }

    /// The pipeline mode it belongs to (its budget).
    pub fn mode(self) -> Mode {
        match self {
            ActionKind::IncidentClassification | ActionKind::IncidentResponse => Mode::Incident,
            ActionKind::MaintenanceCheck => Mode::Maintenance,
            _ => Mode::Deploy,
        }
    }

    /// The role that performs it.
    pub fn role(self) -> Role {
        match self.mode() {
            Mode::Deploy => Role::Deployer,
            Mode::Incident => Role::Responder,
            Mode::Maintenance => Role::Monitor,
        }
    }

    /// The operation it needs from the role's allowlist by default. A migration runs inside
    /// the deploy (flyctl's release command), so it needs `deploy`; destroying a machine
    /// outside a strategy is a raw machine command (always denied); an incident response
    /// names its own operation ([`Action::operation`]).
    pub fn operation(self) -> Operation {
        match self {
            ActionKind::Deploy | ActionKind::Migration => Operation::Deploy,
            ActionKind::Rollback => Operation::Rollback,
            ActionKind::Restart => Operation::MachineRestart,
            ActionKind::Scale => Operation::ScaleCount,
            ActionKind::DestroyMachine => Operation::MachineRaw,
            ActionKind::IncidentClassification
            | ActionKind::IncidentResponse
            | ActionKind::MaintenanceCheck => Operation::Status,
        }
    }

    /// Its gates in `gates`.
    pub fn gates(self, gates: &GatesSpec) -> PhaseGates {
        match self {
            ActionKind::Deploy => gates.deploy,
            ActionKind::Rollback => gates.rollback,
            ActionKind::Restart => gates.restart,
            ActionKind::Scale => gates.scale,
            ActionKind::Migration => gates.migration,
            ActionKind::DestroyMachine => gates.destroy_machine,
            ActionKind::IncidentClassification => gates.incident_classification,
            ActionKind::IncidentResponse => gates.incident_response,
            ActionKind::MaintenanceCheck => gates.maintenance_check,
        }
    }

    /// Whether freeze windows hold it back: deploy-mode actions other than rollbacks.
    pub fn frozen_by_windows(self) -> bool {
        self.mode() == Mode::Deploy && self != ActionKind::Rollback
    }
}

/// One action a plan proposes. Never holds a secret value (secret *names* may appear in
/// `detail`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    /// What it is.
    pub kind: ActionKind,
    /// Fly app it concerns.
    pub app: String,
    /// One line for people: what would change (`image A → B on 3 machines`).
    pub detail: String,
    /// Operation it needs from its role's allowlist (usually [`ActionKind::operation`]).
    pub operation: Operation,
    /// Estimated cost in US dollars: LLM spend where an LLM is used, API calls and
    /// machine-hours otherwise. Compared with the mode's budget cap.
    pub estimated_cost_usd: f64,
}

impl Action {
    /// An action of `kind` on `app` needing the kind's default operation.
    pub fn new(
        kind: ActionKind,
        app: impl Into<String>,
        detail: impl Into<String>,
        estimated_cost_usd: f64,
    ) -> Self {
        Self {
            kind,
            app: app.into(),
            detail: detail.into(),
            operation: kind.operation(),
            estimated_cost_usd,
        }
    }
}

/// Estimated cost of a rollout in US dollars, without an LLM: Fly API calls are free, so the
/// cost is the machine-hours of temporary machines (a canary or a green machine, a release
/// command machine) for about `minutes` each, at `usd_per_machine_hour` (Fly's price of the
/// VM size; shared-cpu-1x with 1 GB is about $0.0089/h on Fly's pricing page).
pub fn machine_hours_cost(
    temporary_machines: usize,
    minutes: f64,
    usd_per_machine_hour: f64,
) -> f64 {
    temporary_machines as f64 * minutes / 60.0 * usd_per_machine_hour
}
