//! The deploy record: what one rollout did, step by step (DESIGN.md §7; issue #2 item 8).
//!
//! Timestamps are UTC. Images are full references; no env values, tokens or URLs with
//! credentials are ever stored here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// `deploy-<ulid>`, sortable by creation time.
    pub id: String,
    /// Fly app name.
    pub app: String,
    /// Where it stands.
    pub status: DeployStatus,
    /// Why it ended as it did (failure, rollback, interruption); `None` on success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What started it.
    pub trigger: Trigger,
    /// Git commit of the manifests (`None` when they are not in a git checkout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Image deployed.
    pub image: String,
    /// Fingerprint of the desired state deployed (`FlyApp::revision`); empty in old records.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// Fingerprint of the desired state other than the image
    /// (`opsctl_controllers::governance::config_fingerprint`): governance compares it with the
    /// next deploy's ("fly.toml unchanged", ADR §5). Empty in old records (unknown: changed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config_revision: String,
    /// Image the machines ran before (the first touched machine's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_image: Option<String>,
    /// The Fly release created for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseRef>,
    /// `rolling` or `immediate`.
    pub strategy: String,
    /// Per-machine outcome, in plan order.
    pub machines: Vec<MachineOutcome>,
    /// A machine failed health on this deploy (Fly's verdict or a failing probe, not an API
    /// error): its image (when it changed) or its desired state is pinned out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed_health: bool,
    /// Health result in words (`all 2 machines healthy`, `m1: checks critical …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// The automatic rollback, if one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackRecord>,
    /// The rollout phase it is in, recorded *before* it is entered
    /// (`opsctl_controllers::rollout::phase`); `done` once finished. A halted record that
    /// needs recovery keeps the phase it halted in. `None` in records written before phases
    /// were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<opsctl_controllers::rollout::phase::Phase>,
    /// Every step, recorded *before* it was taken (`intent`), then its `result`.
    pub steps: Vec<StepRecord>,
    /// Halted with machines possibly on the new image and not judged (interrupted, or Fly
    /// could not be seen): the next pass judges them and finishes or rolls back, as after a
    /// crash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub needs_recovery: bool,
    /// Per process group, how many machines that should run were healthy when the deploy
    /// ended (one observation right after it; BUG-02). `None` when not observed: the deploy
    /// touched no machine, the app could not be observed, or an older record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_health: Option<Vec<opsctl_controllers::rollout::report::GroupHealth>>,
    /// The escalation record this deploy raised (a rollback not started because its image
    /// is pruned or could not be looked up), when it raised one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<String>,
    /// Leases this deploy holds right now (machine → nonce), so that a restarted opsctl can
    /// release its own leases at once (case BUG-04 C) instead of waiting for them to expire.
    /// Empty once released. Nonces are useless without the Fly token.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub leases: std::collections::BTreeMap<String, String>,
    /// UTC.
    pub started_at: DateTime<Utc>,
    /// UTC; `None` while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl DeployRecord {
    /// A deploy of `image` to `app` that starts now (`started_at`, UTC): `in_progress`, a new
    /// `deploy-<ulid>` id, strategy `rolling`, and nothing done yet. Callers fill in what they
    /// know (commit, revisions, previous image, machines, release) before recording it.
    pub fn start(
        app: impl Into<String>,
        trigger: Trigger,
        image: impl Into<String>,
        started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: format!("deploy-{}", ulid::Ulid::new().to_string().to_lowercase()),
            app: app.into(),
            status: DeployStatus::InProgress,
            reason: None,
            trigger,
            commit: None,
            image: image.into(),
            revision: String::new(),
            config_revision: String::new(),
            previous_image: None,
            release: None,
            strategy: "rolling".into(),
            machines: vec![],
            failed_health: false,
            health: None,
            rollback: None,
            steps: vec![],
            needs_recovery: false,
            escalation: None,
            end_health: None,
            phase: None,
            leases: Default::default(),
            started_at,
            finished_at: None,
        }
    }

    /// The end of this deploy as `opsctl_controllers::rollout::report::signals` takes it
    /// (`None` while in progress). The runtime hands the resulting signals to the incident
    /// pipeline.
    pub fn end(&self) -> Option<opsctl_controllers::rollout::report::DeployEnd> {
        Some(opsctl_controllers::rollout::report::DeployEnd {
            app: self.app.clone(),
            deploy: self.id.clone(),
            release: self.release.as_ref().map(|r| r.version),
            outcome: self.outcome()?,
            failed_health: self.failed_health,
            groups: self.end_health.clone(),
            reason: self.reason.clone(),
            at: self.finished_at.unwrap_or(self.started_at),
        })
    }

    /// The phase outcome matching a final `status` (`None` while in progress).
    pub fn outcome(&self) -> Option<opsctl_controllers::rollout::phase::Outcome> {
        use opsctl_controllers::rollout::phase::Outcome;
        match self.status {
            DeployStatus::InProgress => None,
            DeployStatus::Succeeded => Some(Outcome::Succeeded),
            DeployStatus::Failed => Some(Outcome::Failed),
            DeployStatus::RolledBack => Some(Outcome::RolledBack),
            DeployStatus::RollbackFailed => Some(Outcome::RollbackFailed),
            DeployStatus::Halted => Some(Outcome::Halted),
        }
    }

    /// The record as the controllers' history sees it.
    pub fn past(&self) -> opsctl_controllers::history::PastDeploy {
        use opsctl_controllers::history::PastOutcome;
        opsctl_controllers::history::PastDeploy {
            id: self.id.clone(),
            image: self.image.clone(),
            outcome: match self.status {
                DeployStatus::InProgress => PastOutcome::InProgress,
                DeployStatus::Succeeded => PastOutcome::Succeeded,
                DeployStatus::Failed => PastOutcome::Failed,
                DeployStatus::RolledBack => PastOutcome::RolledBack,
                DeployStatus::RollbackFailed => PastOutcome::RollbackFailed,
                DeployStatus::Halted => PastOutcome::Halted,
            },
            at: self.started_at,
            failed_health: self.failed_health,
            image_changed: self.machines.iter().any(|m| m.from_image != self.image),
            revision: self.revision.clone(),
            rolled_back_from: (self.trigger == Trigger::Rollback
                && self.status == DeployStatus::Succeeded)
                .then(|| self.previous_image.clone())
                .flatten(),
        }
    }
}

/// Status of a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployStatus {
    /// Running.
    InProgress,
    /// Every machine updated and healthy.
    Succeeded,
    /// Failed; nothing was rolled back (nothing touched, or rollback not allowed).
    Failed,
    /// Failed health; the touched machines run the previous image again.
    RolledBack,
    /// Failed, and the rollback failed too: a human must act.
    RollbackFailed,
    /// Stopped without a verdict: Fly could not be observed, or opsctl was asked to stop.
    Halted,
}

impl DeployStatus {
    /// Snake-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::RollbackFailed => "rollback_failed",
            Self::Halted => "halted",
        }
    }
}

/// What started a deploy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// `opsctl apply`.
    Apply,
    /// `opsctl run` noticed a commit (or started up with drift).
    Reconcile,
    /// `opsctl demo`.
    Demo,
    /// `opsctl rollback`: a manual rollback by a human, to an earlier release's image.
    Rollback,
}

/// A Fly release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRef {
    /// Fly's release id.
    pub id: String,
    /// Version number.
    pub version: i64,
}

/// One machine of a deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineOutcome {
    /// Machine id.
    pub machine: String,
    /// Process group.
    pub group: String,
    /// Region.
    pub region: String,
    /// Image before.
    pub from_image: String,
    /// Image deployed.
    pub to_image: String,
    /// Outcome.
    pub result: MachineResult,
    /// Details (failure text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Per-machine result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineResult {
    /// Not touched.
    Pending,
    /// Updated, healthy (or kept stopped on purpose).
    Healthy,
    /// Updated, failed health.
    Failed,
    /// Updated and running, but not judged (the immediate strategy does not wait).
    Unverified,
    /// Updated, then restored to the previous image.
    RolledBack,
    /// Not touched because the rollout stopped earlier.
    Skipped,
}

/// An automatic rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRecord {
    /// The new release (a rollback is a new release with the old image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<ReleaseRef>,
    /// Image restored.
    pub image: String,
    /// Machines restored.
    pub machines: Vec<String>,
    /// `succeeded` or what failed.
    pub outcome: String,
}

/// One step, recorded before it is taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// UTC, when the intent was recorded.
    pub at: DateTime<Utc>,
    /// What opsctl is about to do.
    pub intent: String,
    /// What happened (`None` until done, or if the process died in between).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}
