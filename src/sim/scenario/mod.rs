//! Scenario files: what the simulated Fly looks like when it starts, and how images behave.
//!
//! A scenario is YAML, camelCase, strict: unknown keys, duplicate keys, tabs and unquoted
//! numbers or booleans in string fields are errors, and every error carries a line and a
//! column. After parsing, [`Scenario::from_yaml`] checks the rules YAML cannot express (unique
//! app names and machine ids, release versions, machines pointing at existing releases) and
//! reports all broken rules at once. The format is documented, with a complete example, in
//! `docs/simulator.md`; `examples/sim/lowendinsight.yaml` is the scenario `--fly embedded` runs.
//!
//! This module only describes; [`super::state`] turns a scenario into a running world.
//! Machine `config` blocks are Fly's own `MachineConfig` JSON shape written as YAML, so they
//! are open (unknown fields are kept, as Fly keeps them).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_saphyr::Spanned;

use super::certificates::CertificateSpec;
use super::clock::DurationStr;
use super::faults::FaultSpec;
use super::limits::RateLimits;
use super::logs::LogSpec;
use crate::fly::wire::MachineConfig;

/// The most YAML nodes (mappings, sequences, scalars) a scenario may have: about 30 per app of
/// 3 machines, so 100,000 such apps.
pub const MAX_SCENARIO_NODES: usize = 3_000_000;

/// The bundled LowEndInsight scenario (the same text as `examples/sim/lowendinsight.yaml`).
const LOWENDINSIGHT_YAML: &str = include_str!("../../../examples/sim/lowendinsight.yaml");

/// A whole scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Virtual seconds per real second (default 1). `3600` makes an hour pass each second.
    #[serde(default = "one")]
    pub time_scale: f64,
    /// Virtual time at start-up, RFC 3339 (default: the real time when the simulator starts).
    #[serde(default)]
    pub clock_start: Option<DateTime<Utc>>,
    /// Delays of machine transitions.
    #[serde(default)]
    pub timing: Timing,
    /// Owner written into leases the simulator grants (default `user@sim.fly.io`).
    #[serde(default = "default_lease_owner")]
    pub lease_owner: String,
    /// Behaviour of images not listed in `images` (default `healthy`).
    #[serde(default)]
    pub default_behavior: ImageBehavior,
    /// Behaviour per full image reference (`registry.fly.io/app:tag`).
    #[serde(default)]
    pub images: BTreeMap<String, ImageBehavior>,
    /// How a one-shot machine (a release command) running an image ends, per full image
    /// reference. Unlisted images exit 0 (or as their `images` behaviour says).
    #[serde(default)]
    pub release_commands: BTreeMap<String, ReleaseCommandSpec>,
    /// The apps that exist.
    #[serde(default)]
    pub apps: Vec<AppSpec>,
    /// Fly's rate limits (default: enabled, 1/s burst 3 per action, 5/s burst 10 for a
    /// machine GET).
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// Faults installed at start-up; their windows count from the clock start.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// Full image references already pruned from the registry at start-up: `HEAD
    /// /v2/<name>/manifests/<ref>` answers 404 for them (see `super::registry`).
    #[serde(default)]
    pub pruned_images: Vec<String>,
}

/// Delays of machine state transitions, in virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Timing {
    /// From a start, update or create to `started` (default `300ms`).
    pub start_delay: DurationStr,
    /// From `started` until check results appear; `checks` is empty before (default `500ms`).
    pub check_grace: DurationStr,
    /// From a stop or destroy request to `stopped` / `destroyed` (default `200ms`).
    pub stop_delay: DurationStr,
    /// How long a `crash-loop` or `exits` image runs before its process exits (default `1s`).
    pub exit_after: DurationStr,
}

impl Default for Timing {
    fn default() -> Self {
        let ms = |n| DurationStr(std::time::Duration::from_millis(n));
        Self {
            start_delay: ms(300),
            check_grace: ms(500),
            stop_delay: ms(200),
            exit_after: ms(1000),
        }
    }
}

/// How a machine running an image behaves. In YAML and JSON: `healthy`, `fails-checks`,
/// `crash-loop`, `{exits: N}` or `{slow-start: 40s}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageBehavior {
    /// Starts; every check passes after the grace period.
    #[default]
    Healthy,
    /// Starts; every check is `critical` after the grace period.
    FailsChecks,
    /// Starts, exits with code 1 after `timing.exitAfter`, is restarted by flyd, forever.
    /// Checks are critical.
    CrashLoop,
    /// Starts, exits with this code after `timing.exitAfter`, and stays `stopped`.
    Exits(i32),
    /// Healthy, but takes this long (instead of `timing.startDelay`) to reach `started`.
    SlowStart(DurationStr),
}

/// How a one-shot machine (Fly's release-command machine, group `fly_app_release_command`, or
/// any machine with `restart.policy: no` and `auto_destroy: true`) running an image ends.
/// In YAML: `{exitCode: 1, logs: ["** (Postgrex.Error) …"], runFor: 2s}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseCommandSpec {
    /// The command's exit code, 0–255 (default 0).
    pub exit_code: i32,
    /// Lines the command prints, in order, just before it exits (default none). Logged at
    /// level `info` when it exits 0, else `error`.
    pub logs: Vec<String>,
    /// How long it runs (default `timing.exitAfter`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_for: Option<DurationStr>,
}

/// One Fly app.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AppSpec {
    /// App name (also its id).
    pub name: Spanned<String>,
    /// Organisation slug (default `personal`).
    #[serde(default = "default_org")]
    pub org: String,
    /// Region for machines that name none, and the `PRIMARY_REGION` env (default `iad`).
    #[serde(default = "default_region")]
    pub primary_region: String,
    /// App status as `GET /v1/apps/{app}` reports it (default `deployed`).
    #[serde(default = "default_app_status")]
    pub status: String,
    /// Config template (Fly `MachineConfig` shape) for machines that give no `config`.
    #[serde(default)]
    pub machine_config: Option<MachineConfig>,
    /// Release history, any order.
    #[serde(default)]
    pub releases: Vec<ReleaseSpec>,
    /// Machines.
    #[serde(default)]
    pub machines: Vec<MachineSpec>,
    /// TLS certificates.
    #[serde(default)]
    pub certificates: Vec<CertificateSpec>,
    /// Log lines the app prints.
    #[serde(default)]
    pub logs: Vec<LogSpec>,
}

/// One release in an app's history.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseSpec {
    /// Version number, unique per app, ≥ 1.
    pub version: Spanned<i64>,
    /// Full image reference.
    pub image: String,
    /// Default `complete`.
    #[serde(default = "default_release_status")]
    pub status: ReleaseStatus,
    /// Release id (default: derived from app and version, stable across runs).
    #[serde(default)]
    pub id: Option<String>,
    /// `ROLLING` (default), `IMMEDIATE`, `CANARY`, `BLUEGREEN`.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Default `Release`.
    #[serde(default = "default_description")]
    pub description: String,
    /// Free text (default empty).
    #[serde(default)]
    pub reason: String,
    /// Who made it (default `deploy@sim.fly.io`).
    #[serde(default = "default_user")]
    pub user: String,
    /// Creation time (default: one hour before the clock start per newer version).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

/// A release's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseStatus {
    /// Created, not yet rolling out.
    Pending,
    /// Rolling out.
    Running,
    /// Done; the newest complete release is the app's current one.
    Complete,
    /// Rollout failed.
    Failed,
    /// Rollout interrupted.
    Interrupted,
}

impl ReleaseStatus {
    /// Fly's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }

    /// Parses Fly's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "complete" => Self::Complete,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            _ => return None,
        })
    }
}

/// One machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MachineSpec {
    /// 14 or 15 lowercase hex characters, unique in the scenario.
    pub id: Spanned<MachineId>,
    /// Default: derived from the process group and the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Default: the app's `primaryRegion`.
    #[serde(default)]
    pub region: Option<String>,
    /// State at start-up (default `started`, checks already past their grace period).
    #[serde(default)]
    pub state: InitialState,
    /// Image (default: `config.image`, else the app template's, else the `release`'s image).
    #[serde(default)]
    pub image: Option<String>,
    /// Process group (default `app`).
    #[serde(default = "default_group")]
    pub process_group: String,
    /// The release this machine runs: sets `fly_release_version` / `fly_release_id`.
    #[serde(default)]
    pub release: Option<Spanned<i64>>,
    /// Add `fly_platform_version: v2` and the group metadata (default true). `false` makes a
    /// machine that `fly deploy` (and opsctl) must ignore.
    #[serde(default = "yes")]
    pub managed: bool,
    /// Extra metadata, applied last.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Full config (Fly `MachineConfig` shape); default: the app's `machineConfig`.
    #[serde(default)]
    pub config: Option<MachineConfig>,
    /// Out of proxy routing at start-up.
    #[serde(default)]
    pub cordoned: bool,
    /// A lease someone else already holds at start-up.
    #[serde(default)]
    pub lease: Option<LeaseSpec>,
}

/// A machine's state when the simulator starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialState {
    /// Running, checks already reported.
    #[default]
    Started,
    /// Stopped by a user (or autostopped): not unhealthy.
    Stopped,
    /// Created with `skip_launch`, never started.
    Created,
}

/// A pre-held lease.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaseSpec {
    /// Who holds it, e.g. `someone-else@tokens.fly.io`.
    pub owner: String,
    /// Time to live from the clock start (default `1h`).
    #[serde(default = "default_lease_ttl")]
    pub ttl: DurationStr,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// A machine id: 14 or 15 lowercase hex characters (Fly's ids look like `3d8d413b29d089`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MachineId(pub String);

impl<'de> Deserialize<'de> for MachineId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let hex = s
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
        if !hex || !(14..=15).contains(&s.len()) {
            return Err(serde::de::Error::custom(format!(
                "machine id {s:?} must be 14 or 15 lowercase hex characters, like 3d8d413b29d089"
            )));
        }
        Ok(Self(s))
    }
}

/// A scenario that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid scenario; every problem found is listed.
    #[error("{}", render_problems(origin, problems))]
    Invalid {
        /// The file path, or `scenario` for text.
        origin: String,
        /// At least one problem.
        problems: Vec<Problem>,
    },
}

/// One thing wrong in a scenario, located (line and column are 1-based; 0 = unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: u64,
    /// 1-based column.
    pub column: u64,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

fn render_problems(origin: &str, problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("{origin}:{p}")).collect();
    lines.join("\n")
}

impl Scenario {
    /// Parses and checks a scenario from YAML text.
    ///
    /// # Errors
    /// [`ScenarioError::Invalid`] listing every problem with its line and column.
    ///
    /// ```
    /// let s = opsctl::sim::scenario::Scenario::from_yaml("apps: [{name: demo}]\n").unwrap();
    /// assert_eq!(s.apps[0].name.value, "demo");
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ScenarioError> {
        Self::parse(text, "scenario")
    }

    /// Reads and parses a scenario file; errors name the file.
    ///
    /// # Errors
    /// [`ScenarioError::Read`] when the file cannot be read, else as [`Scenario::from_yaml`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The bundled LowEndInsight scenario (`examples/sim/lowendinsight.yaml`): app
    /// `lowendinsight` on release v109 with two healthy machines in `iad`, and the images
    /// `…:deployment-OLD`/`-NEW` (healthy), `-BAD` (fails checks), `-CRASH` (crash loop).
    ///
    /// # Panics
    /// Only if the bundled file is invalid, which `sim::scenario::tests` rules out.
    pub fn lowendinsight_default() -> Self {
        match Self::from_yaml(LOWENDINSIGHT_YAML) {
            Ok(s) => s,
            Err(e) => panic!("bundled examples/sim/lowendinsight.yaml is invalid: {e}"),
        }
    }

    /// An empty world: no apps, default timing.
    pub fn empty() -> Self {
        Self {
            time_scale: 1.0,
            clock_start: None,
            timing: Timing::default(),
            lease_owner: default_lease_owner(),
            default_behavior: ImageBehavior::Healthy,
            images: BTreeMap::new(),
            release_commands: BTreeMap::new(),
            apps: Vec::new(),
            rate_limits: RateLimits::default(),
            faults: Vec::new(),
            pruned_images: Vec::new(),
        }
    }

    fn parse(text: &str, origin: &str) -> Result<Self, ScenarioError> {
        // serde-saphyr's default budget (250,000 nodes) stops at about 9,000 apps of 3
        // machines; the scale benchmark (benches/scale.rs) loads 10,000 and more. A scenario
        // is a local file of the person running the simulator, so a larger bound is safe.
        let options = serde_saphyr::options! {
            no_schema: true,
            strict_booleans: true,
            with_snippet: false,
            budget: serde_saphyr::budget! {
                max_nodes: MAX_SCENARIO_NODES,
                max_events: 4 * MAX_SCENARIO_NODES,
            },
        };
        let scenario: Scenario =
            serde_saphyr::from_str_with_options(text, options).map_err(|e| {
                let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
                let full = e.to_string();
                let message = match full.rfind(" at line ") {
                    Some(i) if line > 0 => full[..i].to_string(),
                    _ => full,
                };
                ScenarioError::Invalid {
                    origin: origin.to_string(),
                    problems: vec![Problem {
                        line,
                        column,
                        message,
                    }],
                }
            })?;
        let problems = scenario.check();
        if problems.is_empty() {
            Ok(scenario)
        } else {
            Err(ScenarioError::Invalid {
                origin: origin.to_string(),
                problems,
            })
        }
    }
}

impl MachineSpec {
    /// The image this machine runs: `image`, else `config.image`, else the app template's,
    /// else the image of its `release`. `None` when none of these is given.
    pub fn resolved_image(&self, app: &AppSpec) -> Option<String> {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        self.image
            .as_deref()
            .and_then(non_empty)
            .or_else(|| self.config.as_ref().and_then(|c| non_empty(&c.image)))
            .or_else(|| {
                app.machine_config
                    .as_ref()
                    .and_then(|c| non_empty(&c.image))
            })
            .or_else(|| {
                let version = self.release.as_ref()?.value;
                let release = app.releases.iter().find(|r| r.version.value == version)?;
                non_empty(&release.image)
            })
    }
}

fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn default_lease_owner() -> String {
    "user@sim.fly.io".to_string()
}
fn default_org() -> String {
    "personal".to_string()
}
fn default_region() -> String {
    "iad".to_string()
}
fn default_app_status() -> String {
    "deployed".to_string()
}
fn default_release_status() -> ReleaseStatus {
    ReleaseStatus::Complete
}
fn default_strategy() -> String {
    "ROLLING".to_string()
}
fn default_description() -> String {
    "Release".to_string()
}
fn default_user() -> String {
    "deploy@sim.fly.io".to_string()
}
fn default_group() -> String {
    "app".to_string()
}
fn default_lease_ttl() -> DurationStr {
    DurationStr(std::time::Duration::from_secs(3600))
}

mod rules;
#[cfg(test)]
mod tests;
