//! The `FlyApp` kind: the desired deployment of one Fly app (DESIGN.md §3).
//!
//! What users write, nothing more: serde types with `deny_unknown_fields`, defaults and their
//! documentation. Loading and located errors live in [`crate::load`]; decisions live in
//! `opsctl-controllers`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;

/// `spec` of a `FlyApp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP request expecting 2xx.
    Http,
}

/// How Fly stops a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopConfig {
    /// e.g. `SIGINT`. Absent: `SIGINT` (Fly's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Grace before SIGKILL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
}

/// `spec.deploy`: the rollout strategy and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploySpec {
    /// Default `rolling` (flyctl's default).
    #[serde(default)]
    pub strategy: Strategy,
    /// Rolling only: how many machines of a group may be down at once, as a count (`1`, `2`)
    /// or a fraction in (0, 1) rounded up (`0.33`). Default 0.33, flyctl's default
    /// (NOTES.md §6.1).
    #[serde(default = "default_max_unavailable")]
    pub max_unavailable: MaxUnavailable,
    /// How long to wait for one machine to start and pass its checks. Default `5m`
    /// (flyctl's `wait_timeout`).
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout: DurationStr,
    /// A check that stays `critical` this long on a started machine fails that machine's step at
    /// once, instead of waiting out `waitTimeout`. Fly only reports `critical` after the check's
    /// own grace period, so this guards against flapping, not against slow starts. Default `30s`.
    /// Must be shorter than `waitTimeout`, or the wait would always time out first.
    #[serde(default = "default_fail_after")]
    pub fail_after: DurationStr,
    /// What to drain before machines are replaced (the `Drain` stage, DESIGN.md §5).
    /// Absent: nothing is drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainSpec>,
    /// A command run in a temporary machine before the rollout, usually a database migration
    /// (fly.toml `deploy.release_command`). Absent: none. A release command is always gated
    /// for a human (ADR §4, DESIGN.md §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<String>,
    /// Gates checked before anything is touched (the `PreCheck` stage, DESIGN.md §5; the
    /// handoff contract, ADR §6): CI green for the commit, the commit on the release branch.
    /// Absent or empty: neither gate runs, and a valid manifest set is the only pre-check.
    /// See docs/precheck.md.
    #[serde(default, skip_serializing_if = "PreCheckSpec::is_empty")]
    pub pre_check: PreCheckSpec,
}

/// `spec.deploy.drain`: work to let finish before machines are replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainSpec {
    /// Wait for these Oban queues to empty. Absent: no Oban drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oban: Option<ObanDrain>,
}

/// Drain Oban queues before a deploy: wait (read-only) until no job is `executing` or
/// `available` in `queues`, up to `timeout`, then deploy anyway with a warning (docs/drain.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObanDrain {
    /// Variable holding the database URL (a secret: never logged).
    pub database_url_env: String,
    /// Queues to drain, e.g. `[analysis]`. At least one.
    pub queues: Vec<String>,
    /// How long to wait before going on with a warning. Default `5m`.
    #[serde(default = "default_wait_timeout")]
    pub timeout: DurationStr,
}

impl Default for DeploySpec {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            max_unavailable: default_max_unavailable(),
            wait_timeout: default_wait_timeout(),
            fail_after: default_fail_after(),
            drain: None,
            release_command: None,
            pre_check: PreCheckSpec::default(),
        }
    }
}

fn default_max_unavailable() -> MaxUnavailable {
    MaxUnavailable::Fraction(0.33)
}

fn default_wait_timeout() -> DurationStr {
    DurationStr::from_secs(300)
}

fn default_fail_after() -> DurationStr {
    DurationStr::from_secs(30)
}

/// `spec.deploy.preCheck`: what must hold before a deploy touches anything. Both gates are
/// optional; a gate that is absent does not run. A gate that runs and cannot be evaluated
/// (GitHub unreachable, the branch missing from the checkout) blocks the deploy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreCheckSpec {
    /// The commit's CI must be green. Absent: CI is not consulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<CiCheck>,
    /// The commit must be reachable from `origin/<branch>` or `<branch>` in the manifests
    /// checkout, e.g. `main`. Absent: any commit may deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_branch: Option<BranchName>,
}

impl PreCheckSpec {
    /// True when no gate is configured.
    pub fn is_empty(&self) -> bool {
        self.ci.is_none() && self.release_branch.is_none()
    }
}

/// `spec.deploy.preCheck.ci`: where the commit's CI results are read, and which must pass.
///
/// Source of truth: GitHub's combined commit status
/// (<https://docs.github.com/en/rest/commits/statuses#get-the-combined-status-for-a-specific-reference>)
/// and check runs
/// (<https://docs.github.com/en/rest/checks/runs#list-check-runs-for-a-git-reference>).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CiCheck {
    /// CI provider. Default and only value: `github`.
    #[serde(default)]
    pub provider: CiProvider,
    /// Repository whose CI results count, as `owner/name`. Required.
    pub repo: RepoSlug,
    /// REST API base URL. Default `https://api.github.com`; GitHub Enterprise Server is
    /// `https://HOST/api/v3`. Tests point it at a local fake.
    #[serde(default = "default_github_api_url")]
    pub api_url: ApiUrl,
    /// Name of the environment variable holding the API token (a secret: never logged, never
    /// in a record). Default `GITHUB_TOKEN`. When the variable is unset, requests go out
    /// unauthenticated, which works for public repositories only (and at 60 requests an hour).
    #[serde(default = "default_token_env")]
    pub token_env: EnvVarName,
    /// Commit status contexts and check run names that must pass; others are ignored. Empty
    /// (the default): every status and check run reported for the commit must pass, and at
    /// least one must be reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required: Vec<CiCheckName>,
    /// How long to wait for pending CI before the pre-check fails. Default `10m`. `0s`: look
    /// once and do not wait.
    #[serde(default = "default_ci_timeout")]
    pub timeout: DurationStr,
}

fn default_github_api_url() -> ApiUrl {
    ApiUrl("https://api.github.com".to_owned())
}

fn default_token_env() -> EnvVarName {
    EnvVarName("GITHUB_TOKEN".to_owned())
}

fn default_ci_timeout() -> DurationStr {
    DurationStr::from_secs(600)
}

/// Where CI results come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CiProvider {
    /// GitHub's REST API: commit statuses and check runs.
    #[default]
    Github,
}

/// A string newtype whose value was checked when it was read: `$check(&str) -> Result<(),
/// String>` gives the refusal, which the loader reports at the value's line and column.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            fn try_from(value: String) -> Result<Self, String> {
                $check(&value).map(|()| Self(value))
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(value: &str) -> Result<Self, String> {
                Self::try_from(value.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

checked_string!(
    /// A GitHub repository as `owner/name`: an owner of letters, digits and `-` (at most 39),
    /// a name of letters, digits, `.`, `_` and `-` (at most 100, not `.` or `..`).
    RepoSlug,
    check_repo_slug
);

impl RepoSlug {
    /// The owner (user or organisation).
    pub fn owner(&self) -> &str {
        self.0.split_once('/').map_or("", |(owner, _)| owner)
    }

    /// The repository name.
    pub fn name(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, name)| name)
    }
}

fn check_repo_slug(v: &str) -> Result<(), String> {
    let refuse = || {
        Err(format!(
            "`{v}` is not a GitHub repository: expected `owner/name`, like `octocat/hello-world`"
        ))
    };
    let Some((owner, name)) = v.split_once('/') else {
        return refuse();
    };
    let owner_ok = (1..=39).contains(&owner.len())
        && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let name_ok = (1..=100).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if owner_ok && name_ok {
        Ok(())
    } else {
        refuse()
    }
}

checked_string!(
    /// An absolute `http(s)://` API base URL without credentials, query or fragment, e.g.
    /// `https://api.github.com`. A trailing `/` is allowed and ignored.
    ApiUrl,
    check_api_url
);

fn check_api_url(v: &str) -> Result<(), String> {
    let Some(rest) = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
    else {
        return Err(format!(
            "`{v}` is not an absolute http(s) URL: expected e.g. `https://api.github.com`"
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || v.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{v}` is not an absolute http(s) URL: expected e.g. `https://api.github.com`"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "`{v}` carries credentials: remove them and name the token's variable in tokenEnv"
        ));
    }
    if v.contains(['?', '#']) {
        return Err(format!(
            "`{v}` has a query or fragment: give the API's base URL only"
        ));
    }
    Ok(())
}

checked_string!(
    /// An environment variable name: a letter or `_`, then letters, digits and `_`.
    EnvVarName,
    check_env_var_name
);

/// Whether `v` is a portable environment variable name (POSIX.1-2017 XBD 8.1: letters, digits
/// and `_`, not starting with a digit), the rule for `env` keys and every `*Env` field.
pub(crate) fn is_env_var_name(v: &str) -> bool {
    let mut chars = v.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_env_var_name(v: &str) -> Result<(), String> {
    if is_env_var_name(v) {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not an environment variable name: use letters, digits and `_`, not starting with a digit, like `GITHUB_TOKEN`"
        ))
    }
}

checked_string!(
    /// A commit status context or check run name, as GitHub shows it (`ci/test`, `build`).
    /// Not empty, and not only blanks.
    CiCheckName,
    check_ci_check_name
);

fn check_ci_check_name(v: &str) -> Result<(), String> {
    if v.trim().is_empty() {
        Err("empty check name: give a status context or check run name as GitHub shows it, like `ci/test` or `build`".to_owned())
    } else {
        Ok(())
    }
}

checked_string!(
    /// A git branch name (`main`, `release/1.x`), following `git check-ref-format --branch`:
    /// no blanks, control characters, `~ ^ : ? * [ \`, `..`, `@{` or `//`; not starting with
    /// `-`, `.` or `/`; not ending with `/`, `.` or `.lock`. Written without `origin/` or
    /// `refs/`: opsctl looks at both `origin/<branch>` and `<branch>` itself.
    BranchName,
    check_branch_name
);

fn check_branch_name(v: &str) -> Result<(), String> {
    if v.starts_with("origin/") || v.starts_with("refs/") {
        let short = v
            .trim_start_matches("refs/heads/")
            .trim_start_matches("refs/remotes/")
            .trim_start_matches("origin/");
        return Err(format!(
            "`{v}` is a ref, not a branch name: write `{short}`; opsctl checks origin/{short} and {short} itself"
        ));
    }
    let bad_char = v
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "~^:?*[\\".contains(c));
    let ok = !v.is_empty()
        && !bad_char
        && !v.contains("..")
        && !v.contains("@{")
        && !v.contains("//")
        && v != "@"
        && !v.starts_with(['-', '.', '/'])
        && !v.ends_with(['/', '.'])
        && !v.ends_with(".lock")
        && !v.split('/').any(|part| part.starts_with('.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{v}` is not a valid git branch name (see `git check-ref-format`): expected e.g. `main` or `release/1.x`"
        ))
    }
}

/// Deploy strategy, as flyctl names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Per group: first machine alone, then up to `maxUnavailable` at a time.
    #[default]
    Rolling,
    /// One extra machine per group first; healthy → destroyed → rolling.
    Canary,
    /// New machines beside the old, switch when all are healthy.
    Bluegreen,
    /// Everything at once, no waits.
    Immediate,
}

/// `maxUnavailable`: a machine count (≥ 1) or a fraction in (0, 1).
///
/// Written as a YAML number: an integer is a count, a number with a fraction part is a
/// fraction (`1` is one machine, `0.5` half of the group). Range checks (count ≥ 1, fraction
/// strictly between 0 and 1) happen in validation so that they are reported with the others.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MaxUnavailable {
    /// At most this many machines of a group at once.
    Count(u32),
    /// This share of the group, rounded up.
    Fraction(f64),
}

impl<'de> Deserialize<'de> for MaxUnavailable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = MaxUnavailable;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a count like 1 or a fraction like 0.33")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxUnavailable, E> {
                u32::try_from(v).map(MaxUnavailable::Count).map_err(|_| {
                    E::custom(format_args!(
                        "maxUnavailable {v} is too large: expected a count like 1 or a fraction like 0.33"
                    ))
                })
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxUnavailable, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format_args!(
                        "maxUnavailable {v} is negative: expected a count like 1 or a fraction like 0.33"
                    ))),
                }
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<MaxUnavailable, E> {
                Ok(MaxUnavailable::Fraction(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxUnavailable, E> {
                Err(E::custom(format_args!(
                    "expected a count like 1 or a fraction like 0.33, found `{v}`"
                )))
            }
        }

        d.deserialize_any(Visitor)
    }
}

/// `spec.health`: what healthy means.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MachineChecksRule {
    /// ≥ 1 check and all passing on every managed machine (flyctl's rule).
    #[default]
    AllPassing,
    /// Machine checks are not consulted.
    Ignore,
}

/// An external probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// An HTTP GET.
    pub http: HttpProbe,
}

/// An HTTP probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlFromEnv {
    /// Variable name, e.g. `LEI_REDIS_URL`.
    pub url_env: String,
}

/// PostgreSQL dependency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObanDependency {
    /// Variable holding the database URL.
    pub database_url_env: String,
    /// Queues to watch.
    pub queues: Vec<String>,
}
