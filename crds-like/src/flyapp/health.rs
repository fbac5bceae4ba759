//! `spec.health`: what healthy means (machine checks rule, external probes, dependency
//! checks).

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;

/// `spec.health`: what healthy means.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSpec {
    /// Default `all-passing`: every managed machine has ≥ 1 check and all pass.
    #[serde(default)]
    pub machine_checks: MachineChecksRule,
    /// Probes opsctl runs itself from outside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<Probe>,
    /// Dependencies; one down is degradation, not outage (ADR §7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Dependencies>,
}

/// How machine checks decide health.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MachineChecksRule {
    /// ≥ 1 check and all passing on every managed machine (flyctl's rule).
    #[default]
    AllPassing,
    /// Machine checks are not consulted.
    Ignore,
}

/// An external probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// An HTTP GET.
    pub http: HttpProbe,
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpProbe {
    /// Absolute URL.
    pub url: String,
    /// Expected status. Default 200.
    #[serde(default = "default_expect_status")]
    pub expect_status: u16,
    /// Text the body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Default `5s`.
    #[serde(default = "default_probe_timeout")]
    pub timeout: DurationStr,
}

fn default_expect_status() -> u16 {
    200
}

fn default_probe_timeout() -> DurationStr {
    DurationStr::from_secs(5)
}

/// Dependencies of the app whose failure degrades it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Dependencies {
    /// Redis, URL read from the named environment variable (a secret: never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<UrlFromEnv>,
    /// PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresDependency>,
    /// Oban job queues in PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oban: Option<ObanDependency>,
}

/// A URL taken from an environment variable, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlFromEnv {
    /// Variable name, e.g. `LEI_REDIS_URL`.
    pub url_env: String,
}

/// PostgreSQL dependency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PostgresDependency {
    /// Variable holding the URL.
    pub url_env: String,
    /// Alert above this share of `max_connections` in use. Default 80.
    #[serde(default = "default_max_connections_percent")]
    pub max_connections_percent: u8,
}

fn default_max_connections_percent() -> u8 {
    80
}

/// Oban dependency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObanDependency {
    /// Variable holding the database URL.
    pub database_url_env: String,
    /// Queues to watch.
    pub queues: Vec<String>,
}
