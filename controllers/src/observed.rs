//! Observed state: what Fly reported about an app, converted from Fly's wire format at the
//! client boundary. Names are the domain's (`group`, `release_version`), not Fly's
//! (`fly_process_group`, `fly_release_version`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::machine_config::ServiceConfig;

/// A machine's lifecycle state (Fly docs, "Machine states").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// Created, never started.
    Created,
    /// Booting.
    Starting,
    /// Running.
    Started,
    /// Shutting down.
    Stopping,
    /// Not running (exited, stopped or autostopped).
    Stopped,
    /// Suspended.
    Suspended,
    /// Being replaced by a new version (an update is under way).
    Replacing,
    /// Failed (persistent).
    Failed,
    /// Being destroyed, or destroyed.
    Destroyed,
    /// Any other state Fly reports (`updating`, `restarting`, `launch_failed`, …).
    Other(String),
}

impl MachineState {
    /// Map Fly's state string.
    pub fn from_fly(s: &str) -> Self {
        match s {
            "created" => Self::Created,
            "starting" => Self::Starting,
            "started" => Self::Started,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "suspended" | "suspending" => Self::Suspended,
            "replacing" | "updating" => Self::Replacing,
            "failed" | "launch_failed" => Self::Failed,
            "destroying" | "destroyed" => Self::Destroyed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Running, or about to run: started, starting, replacing (an update in flight) or
    /// failed (flyctl relaunches those). A deploy must launch such a machine on the new version
    /// (no `skip_launch`) and judge it; treating a machine caught mid-update as stopped would
    /// leave it stopped.
    pub fn is_running(&self) -> bool {
        matches!(
            self,
            Self::Started | Self::Starting | Self::Replacing | Self::Failed
        ) || matches!(self, Self::Other(s) if s == "restarting" || s == "updating")
    }

    /// Fly's spelling, for output.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Created => "created",
            Self::Starting => "starting",
            Self::Started => "started",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Suspended => "suspended",
            Self::Replacing => "replacing",
            Self::Failed => "failed",
            Self::Destroyed => "destroyed",
            Self::Other(s) => s,
        }
    }
}

/// Result of one Fly check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckState {
    /// Passing.
    Passing,
    /// Warning (counts as not passing, like flyctl).
    Warning,
    /// Critical.
    Critical,
}

/// One check result on a machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// Its state.
    pub state: CheckState,
    /// Last output (may be empty).
    pub output: String,
}

/// The latest process exit of a machine (from its newest `exit` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code.
    pub exit_code: i32,
    /// Killed by the OOM killer.
    pub oom_killed: bool,
    /// Someone asked for the stop.
    pub requested_stop: bool,
    /// Fly will restart it.
    pub restarting: bool,
    /// How often Fly has restarted it.
    pub restart_count: u32,
    /// When it exited (UTC).
    pub at: DateTime<Utc>,
}

/// A machine as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedMachine {
    /// Machine id.
    pub id: String,
    /// Region code.
    pub region: String,
    /// Process group (`app` when Fly's metadata has none).
    pub group: String,
    /// Lifecycle state.
    pub state: MachineState,
    /// Full image reference from the machine's config.
    pub image: String,
    /// Version id of the machine's current config (changes on every update).
    pub version: String,
    /// Release version the machine was last deployed by, if recorded.
    pub release_version: Option<i64>,
    /// Managed by Fly Launch (`fly_platform_version=v2`); unmanaged machines are never touched.
    pub managed: bool,
    /// Environment from the config, platform-added keys included.
    pub env: BTreeMap<String, String>,
    /// CPUs and memory, when the config says.
    pub guest: Option<GuestSize>,
    /// Check results; empty until the first check has run.
    pub checks: Vec<CheckResult>,
    /// Number of checks configured on the machine (top-level and service checks).
    pub configured_checks: usize,
    /// Services, top-level checks and stop settings from the config, as Fly has them (not
    /// normalised; `diff` normalises both sides). Default: none of them.
    #[serde(default)]
    pub service_config: ServiceConfig,
    /// Newest exit, if any.
    pub last_exit: Option<ExitInfo>,
    /// When the machine last started (UTC), from its newest `start` event.
    pub last_start: Option<DateTime<Utc>>,
    /// Out of proxy routing.
    pub cordoned: bool,
}

/// CPU and memory of a machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSize {
    /// `shared` or `performance`.
    pub cpu_kind: CpuKind,
    /// vCPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mb: u32,
}

/// CPU class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuKind {
    /// Shared vCPU.
    Shared,
    /// Dedicated vCPU.
    Performance,
}

impl GuestSize {
    /// Size of a Fly preset name (`shared-cpu-2x` → 2 shared CPUs, 512 MB;
    /// `performance-4x` → 4 CPUs, 8192 MB), with `memory_mb` overriding the preset's memory.
    /// Source: fly-go `MachinePresets` (NOTES.md §2.3). `None` for an unknown preset.
    pub fn from_preset(size: &str, memory_mb: Option<u32>) -> Option<Self> {
        let (kind, n) = if let Some(n) = size.strip_prefix("shared-cpu-") {
            (CpuKind::Shared, n)
        } else if let Some(n) = size.strip_prefix("performance-") {
            (CpuKind::Performance, n)
        } else {
            return None;
        };
        let cpus: u32 = n.strip_suffix('x')?.parse().ok()?;
        let per_cpu = match kind {
            CpuKind::Shared => 256,
            CpuKind::Performance => 2048,
        };
        Some(Self {
            cpu_kind: kind,
            cpus,
            memory_mb: memory_mb.unwrap_or(per_cpu * cpus),
        })
    }
}

/// A release as observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedRelease {
    /// Opaque id.
    pub id: String,
    /// Version, increasing per app.
    pub version: i64,
    /// `pending`, `running`, `complete`, `failed`, `interrupted`.
    pub status: String,
    /// Image of the release.
    pub image: Option<String>,
}

/// Everything observed about one app in one pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObservedApp {
    /// Fly app name.
    pub name: String,
    /// Machines, destroyed ones excluded, sorted by id.
    pub machines: Vec<ObservedMachine>,
    /// Releases, newest first.
    pub releases: Vec<ObservedRelease>,
}

impl ObservedApp {
    /// Managed machines only (the ones a deploy may touch).
    pub fn managed(&self) -> impl Iterator<Item = &ObservedMachine> {
        self.machines
            .iter()
            .filter(|m| m.managed && m.state != MachineState::Destroyed)
    }
}
