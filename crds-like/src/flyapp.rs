//! The `FlyApp` kind: the desired deployment of one Fly app (DESIGN.md §3).
//!
//! What users write, nothing more: serde types with `deny_unknown_fields`, defaults and their
//! documentation. Loading and located errors live in [`crate::load`]; decisions live in
//! `opsctl-controllers`.
//!
//! Split by part of the spec: processes, VM sizes, services, checks and stop settings here;
//! `spec.deploy` in `flyapp/deploy.rs`, `spec.deploy.preCheck` (and its checked strings) in
//! `flyapp/precheck.rs`, `spec.health` in `flyapp/health.rs`. Every type is re-exported here,
//! so paths stay `opsctl_crds::flyapp::X`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;

mod deploy;
mod health;
mod precheck;

pub use deploy::*;
pub use health::*;
pub(crate) use precheck::is_env_var_name;
pub use precheck::*;

/// `spec` of a `FlyApp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlyAppSpec {
    /// Fly app name. Absent: `metadata.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Fly organisation slug (`personal`). Informational for now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Full image reference every managed machine should run,
    /// e.g. `registry.fly.io/lowendinsight:deployment-01KKWE7CCCJ51WE7WX6WN2788H`. Checked
    /// against the distribution/reference grammar ([`crate::image_ref`]); it must carry a tag
    /// or a digest, and `:latest` (mutable) gets a warning.
    pub image: String,
    /// Path of the app's `fly.toml`, relative to the manifest file. Informational for now: the
    /// import (`opsctl import fly-toml`) copies what it can carry into this manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fly_toml: Option<String>,
    /// Fly region the app calls primary (`PRIMARY_REGION`); canaries go here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// Process groups by name (`app` is Fly's default group). At least one.
    pub process_groups: BTreeMap<String, ProcessGroup>,
    /// Environment for every machine. Keys are portable names (`[A-Za-z_][A-Za-z0-9_]*`) and
    /// may not start with `FLY_` (Fly reserves them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Services Fly Proxy routes to the machines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Fly machine checks (top-level `checks` of the machine config), by name; run by Fly and
    /// read back from the API.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// Signal and timeout Fly uses to stop a machine (`kill_signal`, `kill_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopConfig>,
    /// How a new image is rolled out.
    #[serde(default)]
    pub deploy: DeploySpec,
    /// What "healthy" means for this app.
    #[serde(default)]
    pub health: HealthSpec,
}

impl FlyAppSpec {
    /// The Fly app name: `spec.app`, else the manifest's `metadata.name`.
    pub fn app_name<'a>(&'a self, metadata_name: &'a str) -> &'a str {
        self.app.as_deref().unwrap_or(metadata_name)
    }
}

/// One process group: how many machines run where, and how big they are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProcessGroup {
    /// Machine count per region, e.g. `{iad: 2, ord: 1}`. A code must be three lowercase
    /// letters; one not in [`crate::regions::FLY_REGIONS`] gets a warning, not an error.
    pub regions: BTreeMap<String, u32>,
    /// Machine size. Absent: Fly's default, `shared-cpu-1x` with 256 MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmSpec>,
    /// Command for this group (fly.toml `[processes]`); absent: the image's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// Fly's machine size presets (fly-go `MachinePresets`; DESIGN.md §3): `shared-cpu-{1,2,4,6,8}x`
/// and `performance-{1,2,4,6,8,10,12,14,16}x`.
pub const VM_PRESETS: &[&str] = &[
    "shared-cpu-1x",
    "shared-cpu-2x",
    "shared-cpu-4x",
    "shared-cpu-6x",
    "shared-cpu-8x",
    "performance-1x",
    "performance-2x",
    "performance-4x",
    "performance-6x",
    "performance-8x",
    "performance-10x",
    "performance-12x",
    "performance-14x",
    "performance-16x",
];

/// Whether `size` is one of [`VM_PRESETS`].
pub fn is_vm_preset(size: &str) -> bool {
    VM_PRESETS.contains(&size)
}

/// Machine size: a Fly preset (`shared-cpu-1x` … `performance-16x`) and optional memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmSpec {
    /// Fly preset name.
    pub size: String,
    /// Memory in MB, a multiple of 256. Absent: the preset's (256 × CPUs for shared,
    /// 2048 × CPUs for performance; fly-go `MachinePresets`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
}

/// A Fly Proxy service (fly.toml `[[services]]` / `[http_service]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// `tcp` or `udp`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Port the app listens on inside the machine.
    pub internal_port: u16,
    /// Public ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Connection or request limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Service checks, run by Fly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Process groups served; absent: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<String>,
}

fn default_protocol() -> String {
    "tcp".to_owned()
}

/// A public port of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Public port.
    pub port: u16,
    /// `http`, `tls`, `proxy_proto`, …
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handlers: Vec<String>,
    /// Redirect HTTP to HTTPS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_https: bool,
}

/// Concurrency limits of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Concurrency {
    /// `connections` or `requests`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Fly Proxy prefers other machines above this.
    pub soft_limit: u32,
    /// Fly Proxy sends nothing more above this.
    pub hard_limit: u32,
}

/// A Fly check (machine-level or service-level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Check {
    /// `tcp` or `http`.
    #[serde(rename = "type")]
    pub kind: CheckKind,
    /// Port; for a service check absent means the service's internal port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path (http only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// HTTP method (http only). Absent: GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// How often Fly runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationStr>,
    /// How long one run may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// How long after start failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationStr>,
}

/// Check type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP request expecting 2xx.
    Http,
}

/// How Fly stops a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopConfig {
    /// e.g. `SIGINT`. Absent: `SIGINT` (Fly's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Grace before SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
}
