//! Reading a commit's CI results from GitHub's REST API: the combined commit status and the
//! check runs, with the headers GitHub documents, and failures sorted by whose move it is.
//!
//! Sources (the wire types below mirror these pages; fields we do not read are not declared):
//! - "Get the combined status for a specific reference":
//!   <https://docs.github.com/en/rest/commits/statuses#get-the-combined-status-for-a-specific-reference>
//!   `GET /repos/{owner}/{repo}/commits/{ref}/status` → `{state, statuses[{context, state,
//!   description, target_url}], sha, total_count}`; paginated over contexts (`per_page` ≤ 100).
//! - "List check runs for a Git reference":
//!   <https://docs.github.com/en/rest/checks/runs#list-check-runs-for-a-git-reference>
//!   `GET /repos/{owner}/{repo}/commits/{ref}/check-runs` → `{total_count, check_runs[{name,
//!   status, conclusion, html_url}]}`; `filter=latest` (the default) gives the newest run of
//!   each name; paginated (`per_page` ≤ 100).
//! - Headers: `Accept: application/vnd.github+json`, `X-GitHub-Api-Version: 2022-11-28`,
//!   `Authorization: Bearer <token>`, and a `User-Agent`, which GitHub requires
//!   (<https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api>).
//! - Rate limits: 429, or 403 with `x-ratelimit-remaining: 0` or a `retry-after` header
//!   (<https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api>).
//!
//! This module does not decide whether CI is green ([`super::ci`] does) and does not retry
//! (the wait loop there does). The token is only ever put into the `Authorization` header,
//! marked sensitive; no error carries it, nor the host (errors name the path).

use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_crds::flyapp::CiCheck;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::secret::Secret;

/// GitHub's REST API version this module was written against.
const API_VERSION: &str = "2022-11-28";
/// Largest page GitHub serves for both endpoints.
const PER_PAGE: usize = 100;
/// More pages than this (10,000 checks on one commit) is not a CI setup we can judge.
const MAX_PAGES: usize = 100;

/// `GET …/commits/{ref}/status`: the combined status (docs page in the module header).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CombinedStatus {
    // The top-level `state` is not read: GitHub says `pending` when there are no statuses at
    // all, which is every repository that uses only check runs (GitHub Actions), so
    // [`super::ci`] judges the contexts one by one instead.
    /// The newest status of each context.
    #[serde(default)]
    pub statuses: Vec<CommitStatus>,
    /// Number of contexts (all pages).
    #[serde(default)]
    pub total_count: usize,
}

/// One context's newest status.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CommitStatus {
    /// The status's name, e.g. `ci/jenkins`.
    pub context: String,
    /// `error`, `failure`, `pending` or `success`.
    pub state: String,
    /// Short text from the CI system.
    #[serde(default)]
    pub description: Option<String>,
    /// Link to the CI run.
    #[serde(default)]
    pub target_url: Option<String>,
}

/// `GET …/commits/{ref}/check-runs` (docs page in the module header).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CheckRuns {
    /// Number of check runs (all pages).
    pub total_count: usize,
    /// This page's check runs.
    #[serde(default)]
    pub check_runs: Vec<CheckRun>,
}

/// One check run.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct CheckRun {
    /// The check's name, e.g. `test`.
    pub name: String,
    /// `queued`, `in_progress`, `completed`, `waiting`, `requested` or `pending`.
    pub status: String,
    /// Set once completed: `success`, `neutral`, `skipped`, `failure`, `cancelled`,
    /// `timed_out`, `action_required` or `stale`.
    #[serde(default)]
    pub conclusion: Option<String>,
    /// Link to the run on github.com.
    #[serde(default)]
    pub html_url: Option<String>,
}

/// GitHub's error body, `{"message": "...", "documentation_url": "..."}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    message: String,
}

/// Both views of one commit's CI.
#[derive(Debug, Clone)]
pub(crate) struct Observation {
    pub statuses: Vec<CommitStatus>,
    pub check_runs: Vec<CheckRun>,
}

/// A failed read, by whose move it is. Never carries the token.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum GitHubError {
    /// No answer: connection refused, DNS, TLS, timeout. May clear by itself.
    #[error("GitHub could not be reached: GET {path}: {message}")]
    Unreachable { path: String, message: String },
    /// GitHub answered 5xx. May clear by itself.
    #[error("GitHub answered {status} for GET {path}: {message}")]
    Server {
        path: String,
        status: u16,
        message: String,
    },
    /// Rate limited (429, or 403 with the rate-limit headers). Waiting until `reset` helps.
    #[error(
        "GitHub rate-limited GET {path} ({status}){}{}",
        reset.map(|r| format!(", resets at {}", r.format("%Y-%m-%dT%H:%M:%SZ"))).unwrap_or_default(),
        retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default()
    )]
    RateLimited {
        path: String,
        status: u16,
        reset: Option<DateTime<Utc>>,
        retry_after: Option<Duration>,
    },
    /// GitHub refused (401, 403, 404, 422, …): the token, the repository name or the commit
    /// is wrong. The user fixes it; asking again will not help.
    #[error("GitHub refused GET {path} with {status}: {message}{hint}")]
    Refused {
        path: String,
        status: u16,
        message: String,
        hint: String,
    },
    /// The token cannot be sent: it is not a valid HTTP header value (a stray newline, …).
    #[error("the token in {env} is not a valid HTTP header value")]
    BadToken { env: String },
    /// An answer we could not read.
    #[error("GitHub's answer to GET {path} could not be read: {message}")]
    Protocol { path: String, message: String },
}

impl GitHubError {
    /// True when asking again soon may succeed (unreachable, 5xx).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GitHubError::Unreachable { .. } | GitHubError::Server { .. }
        )
    }
}

/// A GitHub REST client for one repository's CI results.
pub(crate) struct GitHub<'a> {
    pub http: &'a reqwest::Client,
    pub ci: &'a CiCheck,
    pub token: Option<&'a Secret>,
    /// Limit for one HTTP request.
    pub request_timeout: Duration,
}

impl GitHub<'_> {
    /// Read the combined status and the check runs of `sha` (every page of each).
    pub async fn observe(&self, sha: &str) -> Result<Observation, GitHubError> {
        let (statuses, check_runs) =
            tokio::try_join!(self.all_statuses(sha), self.all_check_runs(sha))?;
        Ok(Observation {
            statuses,
            check_runs,
        })
    }

    async fn all_statuses(&self, sha: &str) -> Result<Vec<CommitStatus>, GitHubError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let body: CombinedStatus = self.get(sha, "status", page).await?;
            let got = body.statuses.len();
            out.extend(body.statuses);
            if got < PER_PAGE || out.len() >= body.total_count {
                break;
            }
        }
        Ok(out)
    }

    async fn all_check_runs(&self, sha: &str) -> Result<Vec<CheckRun>, GitHubError> {
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let body: CheckRuns = self.get(sha, "check-runs", page).await?;
            let got = body.check_runs.len();
            out.extend(body.check_runs);
            if got < PER_PAGE || out.len() >= body.total_count {
                break;
            }
        }
        Ok(out)
    }

    /// Path of an endpoint under the API base, for requests and errors (no host).
    fn path(&self, sha: &str, endpoint: &str) -> String {
        format!(
            "/repos/{}/{}/commits/{sha}/{endpoint}",
            self.ci.repo.owner(),
            self.ci.repo.name()
        )
    }

    async fn get<T: DeserializeOwned>(
        &self,
        sha: &str,
        endpoint: &str,
        page: usize,
    ) -> Result<T, GitHubError> {
        let path = self.path(sha, endpoint);
        let base = self.ci.api_url.as_str().trim_end_matches('/');
        let mut request = self
            .http
            .get(format!("{base}{path}"))
            .query(&[("per_page", PER_PAGE), ("page", page)])
            .header(ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(USER_AGENT, concat!("opsctl/", env!("CARGO_PKG_VERSION")))
            .timeout(self.request_timeout);
        if let Some(token) = self.token.filter(|t| !t.is_empty()) {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                    GitHubError::BadToken {
                        env: self.ci.token_env.to_string(),
                    }
                })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        tracing::debug!(path = %path, page, "GitHub CI read");
        let response = request.send().await.map_err(|e| GitHubError::Unreachable {
            path: path.clone(),
            message: chain(&e.without_url()),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| GitHubError::Unreachable {
                path: path.clone(),
                message: chain(&e.without_url()),
            })?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| GitHubError::Protocol {
                path,
                message: e.to_string(),
            });
        }
        Err(self.classify(path, status, &headers, &body))
    }

    fn classify(
        &self,
        path: String,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> GitHubError {
        let message = serde_json::from_slice::<ErrorBody>(body)
            .map(|b| b.message)
            .unwrap_or_else(|_| status.canonical_reason().unwrap_or("no message").to_owned());
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let retry_after = header(RETRY_AFTER.as_str())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let exhausted = header("x-ratelimit-remaining").is_some_and(|v| v.trim() == "0");
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (exhausted
                    || retry_after.is_some()
                    || message.to_ascii_lowercase().contains("rate limit")));
        if rate_limited {
            return GitHubError::RateLimited {
                path,
                status: status.as_u16(),
                reset: header("x-ratelimit-reset")
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .and_then(|secs| DateTime::from_timestamp(secs, 0)),
                retry_after,
            };
        }
        if status.is_server_error() {
            return GitHubError::Server {
                path,
                status: status.as_u16(),
                message,
            };
        }
        let unauthenticated = self.token.is_none_or(Secret::is_empty);
        let token_env = &self.ci.token_env;
        let hint = match (status.as_u16(), unauthenticated) {
            (401 | 403 | 404, true) => format!(
                " (no token was sent: {token_env} is unset or empty; a private repository needs one)"
            ),
            (401, false) => format!(" (the token in {token_env} was not accepted)"),
            (403, false) => {
                format!(
                    " (the token in {token_env} cannot read statuses and checks of {})",
                    self.ci.repo
                )
            }
            (404, false) => format!(
                " (no repository {} that the token in {token_env} can see)",
                self.ci.repo
            ),
            (422, _) => format!(
                " (GitHub does not know this commit in {}: was it pushed?)",
                self.ci.repo
            ),
            _ => String::new(),
        };
        GitHubError::Refused {
            path,
            status: status.as_u16(),
            message,
            hint,
        }
    }
}

/// An error and its causes, joined with `: ` (reqwest's own Display stops at the top).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
