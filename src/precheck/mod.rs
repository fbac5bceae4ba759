//! The `PreCheck` stage of the deploy pipeline (DESIGN.md §5; issue #4; the handoff contract of
//! ADR §6): before a deploy touches anything, the commit's CI must be green, the commit must be
//! on the release branch, and the manifest set must be valid. A pre-check that fails, or that
//! cannot be evaluated, deploys nothing and says which gate blocked and why.
//!
//! Start with [`run`] (or [`PreCheck::run`] to choose the polling). Inputs: the app's
//! `spec.deploy.preCheck` ([`PreCheckSpec`], read by opsctl-crds), the commit, the manifests
//! checkout, an HTTP client and the GitHub token ([`token_from_env`]). Output: a
//! [`PreCheckReport`] for the deploy record, never an error: every way a gate can go wrong is
//! an [`Outcome`] in the report.
//!
//! Modules:
//! - `report`: the report and its outcomes ([`PreCheckReport`], [`CheckResult`], [`Outcome`]).
//! - `ci`: the `ci_status` gate: judging one observation, and waiting for pending CI.
//! - `github`: reading commit statuses and check runs from GitHub's REST API.
//! - `branch`: the `release_branch` gate, asked of git in the checkout.
//!
//! Not done here: recording the report (the deploy pipeline records it as a step), reading
//! manifests (the `config_valid` gate is passed by construction: the caller loaded the set),
//! fetching the checkout, and deciding governance (a green CI feeds the burn-in rules
//! elsewhere). Rules and sources are in docs/precheck.md.

mod branch;
mod ci;
mod github;
mod report;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use opsctl_crds::flyapp::{CiCheck, PreCheckSpec};
use tokio::sync::watch;

use self::ci::{CiWait, Patience};
use self::github::GitHub;
pub use self::report::{CheckName, CheckResult, Outcome, PreCheckReport};
use crate::runtime::clock::Clock;
use crate::secret::Secret;

/// How the `ci_status` gate polls GitHub and how long one call may take.
///
/// Defaults: first poll 5 s after the first look, doubling up to 30 s (a 10-minute wait makes
/// about 25 looks of 2 requests each, well under GitHub's 5,000 requests an hour for a token,
/// and near the 60 an hour allowed without one); 3 attempts when GitHub is unreachable or
/// answers 5xx; 15 s per HTTP request; 30 s per git command.
#[derive(Debug, Clone)]
pub struct Polling {
    /// Wait before the second look.
    pub first: Duration,
    /// The wait doubles after each look, up to this.
    pub max: Duration,
    /// Looks in a row that may fail with "unreachable" or 5xx before the gate is unknown.
    pub attempts: u32,
    /// Limit for one HTTP request to GitHub.
    pub request_timeout: Duration,
    /// Limit for one git command in the checkout.
    pub git_timeout: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(5),
            max: Duration::from_secs(30),
            attempts: 3,
            request_timeout: Duration::from_secs(15),
            git_timeout: Duration::from_secs(30),
        }
    }
}

/// Runs pre-checks. Holds what does not change between deploys.
#[derive(Clone)]
pub struct PreCheck {
    /// HTTP client for GitHub (any client; the runner sets its own headers and timeouts).
    pub http: reqwest::Client,
    /// Time source for the deadline and the report's timestamps.
    pub clock: Arc<dyn Clock>,
    /// Becomes `true` when opsctl is asked to stop; a wait for pending CI ends at once.
    pub stop: watch::Receiver<bool>,
    /// Polling and timeouts.
    pub polling: Polling,
}

impl PreCheck {
    /// A runner with the default [`Polling`].
    pub fn new(http: reqwest::Client, clock: Arc<dyn Clock>, stop: watch::Receiver<bool>) -> Self {
        Self {
            http,
            clock,
            stop,
            polling: Polling::default(),
        }
    }

    /// Check `commit` (a full hex SHA, as `git rev-parse HEAD` prints it) against `spec`.
    ///
    /// Order: `release_branch` (local, fast), then `ci_status` (may wait up to
    /// `spec.ci.timeout` for pending CI). When the branch gate already blocks, CI is looked at
    /// once and not waited for. `config_valid` is always passed: the caller loaded the set.
    /// `token` is sent to GitHub as `Authorization: Bearer …` and nowhere else; it is redacted
    /// from every reason in the report.
    pub async fn run(
        &self,
        spec: &PreCheckSpec,
        commit: &str,
        repo_dir: &Path,
        token: Option<Secret>,
    ) -> PreCheckReport {
        let started_at = self.clock.now();
        let commit_ok = is_commit_id(commit);
        let not_a_commit = || {
            Outcome::Unknown(format!(
                "`{commit}` is not a commit id: expected a full SHA (40 or 64 hex digits)"
            ))
        };

        let branch = match &spec.release_branch {
            None => Outcome::Skipped("no releaseBranch in spec.deploy.preCheck".to_owned()),
            Some(_) if !commit_ok => not_a_commit(),
            Some(name) => branch::check(repo_dir, commit, name, self.polling.git_timeout).await,
        };

        let ci = match &spec.ci {
            None => Outcome::Skipped("no ci in spec.deploy.preCheck".to_owned()),
            Some(_) if !commit_ok => not_a_commit(),
            Some(ci) => {
                let patience = if branch.blocks() {
                    Patience::Once(format!("release_branch is {}", branch.kind()))
                } else {
                    Patience::UpTo(ci.timeout.get())
                };
                let wait = CiWait {
                    github: GitHub {
                        http: &self.http,
                        ci,
                        token: token.as_ref(),
                        request_timeout: self.polling.request_timeout,
                    },
                    clock: self.clock.as_ref(),
                    stop: self.stop.clone(),
                    polling: &self.polling,
                };
                wait.run(commit, patience).await
            }
        };

        let config = Outcome::Passed(
            "the manifest set was loaded and validated before this deploy was planned".to_owned(),
        );
        let mut report = PreCheckReport {
            commit: commit.to_owned(),
            started_at,
            finished_at: self.clock.now(),
            checks: vec![
                CheckResult {
                    check: CheckName::CiStatus,
                    outcome: ci,
                },
                CheckResult {
                    check: CheckName::ReleaseBranch,
                    outcome: branch,
                },
                CheckResult {
                    check: CheckName::ConfigValid,
                    outcome: config,
                },
            ],
        };
        if let Some(token) = &token {
            report.redact(token);
        }
        report
    }
}

/// Run the `PreCheck` stage for `commit` with the default [`Polling`]; see [`PreCheck::run`].
///
/// # Example
/// ```no_run
/// # async fn example(app: &opsctl_crds::FlyApp, commit: &str, checkout: &std::path::Path) {
/// use std::sync::Arc;
/// use opsctl::precheck;
/// use opsctl::runtime::clock::SystemClock;
///
/// let (_stop_tx, stop) = tokio::sync::watch::channel(false);
/// let spec = &app.spec.deploy.pre_check;
/// let token = spec.ci.as_ref().and_then(precheck::token_from_env);
/// let report = precheck::run(
///     spec, commit, checkout, &reqwest::Client::new(), token, Arc::new(SystemClock), stop,
/// )
/// .await;
/// if !report.passed() {
///     // Deploy nothing; record the report. It displays which gate blocked and why:
///     // "pre-check blocked 6dcb09b: ci_status failed: check run `e2e` concluded failure".
///     let _why = report.to_string();
/// }
/// # }
/// ```
pub async fn run(
    spec: &PreCheckSpec,
    commit: &str,
    repo_dir: &Path,
    http: &reqwest::Client,
    token: Option<Secret>,
    clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
) -> PreCheckReport {
    PreCheck::new(http.clone(), clock, stop)
        .run(spec, commit, repo_dir, token)
        .await
}

/// The GitHub token named by `ci.tokenEnv`, read from the environment. `None` when the
/// variable is unset, empty or not UTF-8: requests then go out without `Authorization`, which
/// GitHub answers for public repositories only.
pub fn token_from_env(ci: &CiCheck) -> Option<Secret> {
    std::env::var(ci.token_env.as_str())
        .ok()
        .filter(|v| !v.is_empty())
        .map(Secret::new)
}

/// A full SHA-1 (40) or SHA-256 (64) commit id in hex. Anything else is refused before it
/// reaches a URL or a git command line.
fn is_commit_id(commit: &str) -> bool {
    matches!(commit.len(), 40 | 64) && commit.chars().all(|c| c.is_ascii_hexdigit())
}
