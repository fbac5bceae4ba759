//! `spec.deploy.preCheck`: the CI-status and release-branch gates, and the checked string
//! types their fields use (repository slug, API URL, env var name, check and branch names).

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;

/// `spec.deploy.preCheck`: what must hold before a deploy touches anything. Both gates are
/// optional; a gate that is absent does not run. A gate that runs and cannot be evaluated
/// (GitHub unreachable, the branch missing from the checkout) blocks the deploy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
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
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
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
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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
