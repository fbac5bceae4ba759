//! A remote manifests repository (`opsctl run --git-url URL`, issue #8): opsctl keeps its own
//! clone, fetches the branch on an interval (jittered) or at once when asked (the GitHub
//! webhook, [`FetchTrigger`]), and moves the clone to the fetched commit.
//!
//! The reconciler is not told anything: it watches the clone's git directory like any local
//! checkout ([`super::git`]), so a new commit in the clone is a new commit to it. A fetch that
//! fails (remote gone, network, credentials) changes nothing in the clone: the last fetched
//! commit keeps being reconciled, and the fetch is retried with backoff.
//!
//! Uses the `git` command (no libgit2). Credentials are git's own: a credential helper, SSH
//! keys and `~/.ssh/config`, or a token in the URL. The URL is never written to the clone's
//! `.git/config` nor put on a command line (git reads it from `GIT_CONFIG_*` environment
//! variables, git ≥ 2.31), and it is printed only without credentials ([`GitUrl::redacted`]).

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// First retry after a failed fetch; doubles per failure, up to the fetch interval.
pub const RETRY_FIRST: Duration = Duration::from_secs(5);

/// A git command of a fetch that takes longer than this is killed and counts as a failure
/// (a hung connection must not stop fetching for good). A first clone of a big repository
/// has the same limit.
pub const GIT_TIMEOUT: Duration = Duration::from_secs(300);

/// The smallest `--git-fetch-interval` accepted (a fetch per second is already a lot for a
/// hosted git service; a webhook is the way to go faster).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A git remote URL that may carry credentials (`https://x-access-token:TOKEN@github.com/…`):
/// `Debug` and `Display` print [`GitUrl::redacted`], so it cannot reach a log line by accident.
/// Any form git accepts: `https://…`, `ssh://…`, `git@host:org/repo.git`, `file:///path`, a path.
#[derive(Clone, PartialEq, Eq)]
pub struct GitUrl(String);

impl FromStr for GitUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("the git URL is empty".to_owned());
        }
        Ok(Self(s.to_owned()))
    }
}

impl GitUrl {
    /// The URL as given, for the one place that hands it to git.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without credentials, for logs and errors: the user-info of a `scheme://` URL
    /// is replaced by `[redacted]` when it has a password or the scheme is http(s) (where a
    /// user name alone can be a token); a query or fragment is replaced likewise. `ssh://git@…`,
    /// `git@host:path` and local paths are printed as they are.
    pub fn redacted(&self) -> String {
        let raw = &self.0;
        if raw.contains("://") {
            let Ok(mut url) = url::Url::parse(raw) else {
                // Unparseable: print only the scheme, never a part that could hold a token.
                let scheme = raw.split("://").next().unwrap_or_default();
                return format!("{scheme}://[unparseable URL redacted]");
            };
            let http = matches!(url.scheme(), "http" | "https");
            let secret_user = url.password().is_some() || (http && !url.username().is_empty());
            let secret_query = url.query().is_some() || url.fragment().is_some();
            if secret_user {
                let _ = url.set_password(None);
                let _ = url.set_username("");
            }
            url.set_query(None);
            url.set_fragment(None);
            let mut out = url.to_string();
            if secret_user && let Some(i) = out.find("://") {
                out.insert_str(i + 3, "[redacted]@");
            }
            if secret_query {
                out.push_str("?[redacted]");
            }
            return out;
        }
        // scp-like `user@host:path`: a `:` before the `@` would be a password.
        if let Some((user, rest)) = raw.split_once('@')
            && user.contains(':')
        {
            return format!("[redacted]@{rest}");
        }
        raw.clone()
    }

    /// The parts of the URL that must never be printed (password, user name of an http(s)
    /// URL, query), to scrub from git's own messages besides the URL itself.
    fn secrets(&self) -> Vec<String> {
        let mut out = vec![self.0.clone()];
        if !self.0.contains("://") {
            // scp-like `user:password@host:path` (the same reading as `redacted`).
            if let Some((user, _)) = self.0.split_once('@')
                && user.contains(':')
            {
                out.push(user.to_owned());
            }
        } else if let Ok(url) = url::Url::parse(&self.0) {
            out.extend(url.password().map(str::to_owned));
            if matches!(url.scheme(), "http" | "https") && !url.username().is_empty() {
                out.push(url.username().to_owned());
            }
            out.extend(url.query().map(str::to_owned));
        }
        // Percent-encoded and decoded forms both; short fragments would scrub ordinary words.
        let decoded: Vec<String> = out
            .iter()
            .filter_map(|s| url_decode(s).filter(|d| d != s))
            .collect();
        out.extend(decoded);
        out.retain(|s| s.len() >= 4);
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out
    }

    /// How git is told where the remote is: `(url, extra config)`. For an http(s) URL with
    /// credentials in it, the URL without them and one `http.<scheme>://<host>/.extraHeader`
    /// entry carrying them as `Authorization: Basic …` (RFC 7617), scoped to that host: both go
    /// to git through `GIT_CONFIG_*` environment variables, so neither `git` nor the
    /// `git-remote-http` helper it starts has the token in its command line (`ps`). Any other
    /// URL as it is, with no extra entry.
    fn for_git(&self) -> (String, Vec<(String, String)>) {
        use base64::Engine as _;
        let Ok(mut url) = url::Url::parse(&self.0) else {
            return (self.0.clone(), vec![]);
        };
        if !matches!(url.scheme(), "http" | "https")
            || (url.username().is_empty() && url.password().is_none())
        {
            return (self.0.clone(), vec![]);
        }
        let decode = |s: &str| url_decode(s).unwrap_or_else(|| s.to_owned());
        let user = decode(url.username());
        let password = url.password().map(decode).unwrap_or_default();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        let scope = format!("{}://{}/", url.scheme(), url.host_str().unwrap_or_default());
        let scope = match url.port() {
            Some(port) => format!("{}:{port}/", scope.trim_end_matches('/')),
            None => scope,
        };
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        (
            url.to_string(),
            vec![(
                format!("http.{scope}.extraHeader"),
                format!("Authorization: Basic {basic}"),
            )],
        )
    }

    /// `text` with the URL replaced by its redacted form and every credential part removed.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.replace(&self.0, &self.redacted());
        for secret in self.secrets() {
            out = out.replace(&secret, "[redacted]");
        }
        out
    }
}

fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl fmt::Debug for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for GitUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// What `opsctl run --git-url` fetches and where it keeps it.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    /// The remote repository.
    pub url: GitUrl,
    /// The branch followed (`main`): `refs/heads/<branch>` on the remote.
    pub branch: String,
    /// Manifests directory inside the repository, relative (empty: the repository root).
    pub path: PathBuf,
    /// Time between fetches (each one jittered by ±10 %); at least [`MIN_INTERVAL`].
    pub interval: Duration,
    /// opsctl's own clone (`<state>/checkout`); created on the first fetch. opsctl owns it: a
    /// local edit or commit in it is overwritten by the next fetched commit.
    pub clone_dir: PathBuf,
}

impl RemoteConfig {
    /// The manifests directory: `<clone_dir>/<path>`.
    pub fn manifests_dir(&self) -> PathBuf {
        if self.path.as_os_str().is_empty() {
            self.clone_dir.clone()
        } else {
            self.clone_dir.join(&self.path)
        }
    }

    /// Check the settings before anything runs.
    ///
    /// # Errors
    /// A message saying which setting is wrong: a branch name git refuses
    /// (`git check-ref-format`), a path that is absolute or leaves the repository, an
    /// interval under [`MIN_INTERVAL`], or git missing.
    pub async fn check(&self) -> Result<(), String> {
        if self.interval < MIN_INTERVAL {
            return Err(format!(
                "--git-fetch-interval must be at least {}s (for faster reactions use the webhook, docs/git.md)",
                MIN_INTERVAL.as_secs()
            ));
        }
        if self.path.is_absolute()
            || self
                .path
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!(
                "--git-path {:?} must be a directory inside the repository (relative, no `..`)",
                self.path
            ));
        }
        let refname = format!("refs/heads/{}", self.branch);
        let ok = tokio::process::Command::new("git")
            .args(["check-ref-format", &refname])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .map_err(|e| format!("cannot run git ({e}); install git to use --git-url"))?;
        if self.branch.starts_with('-') || !ok.success() {
            return Err(format!(
                "--git-branch {:?} is not a valid branch name",
                self.branch
            ));
        }
        Ok(())
    }

    fn remote_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }
}

/// What one fetch did to the clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// The remote branch is at the commit the clone has.
    Unchanged {
        /// That commit.
        commit: String,
    },
    /// The clone moved forward to the remote's commit (or was created, `from: None`).
    FastForward {
        /// The clone's commit before, if it had one.
        from: Option<String>,
        /// The commit now checked out.
        to: String,
    },
    /// The remote branch was rewritten (force-push): `from` is not an ancestor of `to`. The
    /// clone follows the remote (reset to `to`); commits only in `from` are no longer deployed.
    ForcePushed {
        /// The clone's commit before.
        from: String,
        /// The commit now checked out.
        to: String,
    },
}

impl Synced {
    /// The commit checked out after the fetch.
    pub fn commit(&self) -> &str {
        match self {
            Synced::Unchanged { commit } => commit,
            Synced::FastForward { to, .. } | Synced::ForcePushed { to, .. } => to,
        }
    }
}

/// A fetch that failed; the message names the command and has git's own words (credentials
/// scrubbed), and says nothing changed in the clone.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(String);

/// Fetch `config.branch` from the remote and move the clone to it: create the clone when
/// missing, fast-forward, or follow a force-push (reset). Only the checkout at the end
/// changes what the reconciler sees; a failure before it leaves the clone as it was.
///
/// # Errors
/// [`FetchError`] when a git command fails or times out ([`GIT_TIMEOUT`]).
pub async fn sync(config: &RemoteConfig) -> Result<Synced, FetchError> {
    let dir = &config.clone_dir;
    if !dir.join(".git").exists() {
        std::fs::create_dir_all(dir).map_err(|e| {
            FetchError(format!(
                "cannot create the clone directory {}: {e}",
                dir.display()
            ))
        })?;
        run_git(config, &["init", "-q"]).await?;
    }
    let refspec = format!("+refs/heads/{}:{}", config.branch, config.remote_ref());
    run_git(
        config,
        &[
            "fetch",
            "-q",
            "--no-tags",
            "--no-write-fetch-head",
            "origin",
            &refspec,
        ],
    )
    .await?;
    let to = run_git(
        config,
        &[
            "rev-parse",
            "--verify",
            &format!("{}^{{commit}}", config.remote_ref()),
        ],
    )
    .await?;
    let from = run_git(config, &["rev-parse", "--verify", "-q", "HEAD"])
        .await
        .ok()
        .filter(|s| !s.is_empty());
    if from.as_deref() == Some(to.as_str()) {
        return Ok(Synced::Unchanged { commit: to });
    }
    let forward = match &from {
        None => true,
        Some(from) => run_git(config, &["merge-base", "--is-ancestor", from, &to])
            .await
            .is_ok(),
    };
    run_git(
        config,
        &[
            "checkout",
            "-q",
            "--force",
            "--no-track",
            "-B",
            &config.branch,
            &to,
        ],
    )
    .await?;
    Ok(match (from, forward) {
        (Some(from), false) => Synced::ForcePushed { from, to },
        (from, _) => Synced::FastForward { from, to },
    })
}

/// Run git in the clone with the remote `origin` defined through the environment; the
/// trimmed stdout, or an error with git's scrubbed stderr.
async fn run_git(config: &RemoteConfig, args: &[&str]) -> Result<String, FetchError> {
    let mut command = tokio::process::Command::new("git");
    command.arg("-C").arg(&config.clone_dir).args(args);
    let (url, extra) = config.url.for_git();
    command
        .env("GIT_CONFIG_COUNT", (1 + extra.len()).to_string())
        .env("GIT_CONFIG_KEY_0", "remote.origin.url")
        .env("GIT_CONFIG_VALUE_0", url);
    for (i, (key, value)) in extra.iter().enumerate() {
        command
            .env(format!("GIT_CONFIG_KEY_{}", i + 1), key)
            .env(format!("GIT_CONFIG_VALUE_{}", i + 1), value);
    }
    command
        // Never wait for a password on a terminal: fail, and say so.
        .env("GIT_TERMINAL_PROMPT", "0")
        // The clone is the repository, whatever the environment of `opsctl run` says.
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    // Its own process group, so that a cancelled or timed-out fetch stops git's helpers
    // (`git-remote-https`) too, not only git.
    #[cfg(unix)]
    command.process_group(0);
    let verb = args.first().copied().unwrap_or("git");
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            FetchError(format!(
                "cannot run git ({e}); install git to use --git-url"
            ))
        })?;
    let mut group = ProcessGroup(child.id());
    let out = match tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output()).await {
        Err(_) => {
            return Err(FetchError(format!(
                "git {verb} timed out after {}s",
                GIT_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) => {
            return Err(FetchError(format!("git {verb}: {e}")));
        }
        Ok(Ok(out)) => {
            // git exited and was reaped: its group is gone, and its id may be reused.
            group.0 = None;
            out
        }
    };
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let said = if said.is_empty() {
            format!("exit {}", out.status.code().unwrap_or(-1))
        } else {
            config.url.scrub(&said)
        };
        return Err(FetchError(format!("git {verb} failed: {said}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A running git command's process group, killed when this is dropped while git still runs:
/// on a timeout, or when the fetch's future is dropped because `opsctl run` was asked to stop.
/// Cleared once git has exited.
struct ProcessGroup(Option<u32>);

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: killpg only sends a signal; `pid` is the group git was started in
            // (`process_group(0)`), which holds only git and the helpers it started.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

/// The wait before the next fetch: `interval` after a success; after `failures` failures in a
/// row, [`RETRY_FIRST`] doubled per further failure, never more than `interval`. Either is
/// scaled by `0.9 + 0.2 × jitter` (`jitter` in `[0, 1)`), so replicas and restarts spread out.
pub fn next_delay(interval: Duration, failures: u32, jitter: f64) -> Duration {
    let base = if failures == 0 {
        interval
    } else {
        let doubled = RETRY_FIRST.saturating_mul(1u32 << (failures - 1).min(16));
        doubled.min(interval)
    };
    base.mul_f64(0.9 + 0.2 * jitter.clamp(0.0, 1.0))
}

/// A number in `[0, 1)` from the process's hash seed (random per call), for jitter only.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// Asks the fetch loop for a fetch now (the webhook). Requests made while a fetch runs
/// coalesce into one more fetch after it.
#[derive(Clone, Default)]
pub struct FetchTrigger(Arc<Notify>);

impl FetchTrigger {
    /// Request a fetch now.
    pub fn fetch_now(&self) {
        self.0.notify_one();
    }

    /// Wait for a request (one made before this call counts, once).
    pub async fn requested(&self) {
        self.0.notified().await;
    }
}

/// Log what a fetch did; `why` is `interval`, `webhook` or `startup`.
pub fn log_synced(config: &RemoteConfig, synced: &Synced, why: &str) {
    let url = config.url.redacted();
    match synced {
        Synced::Unchanged { commit } => {
            tracing::debug!(%url, branch = %config.branch, %commit, why, "git fetch: no new commit")
        }
        Synced::FastForward { from: None, to } => {
            tracing::info!(%url, branch = %config.branch, commit = %to, why, "git clone ready")
        }
        Synced::FastForward {
            from: Some(from),
            to,
        } => {
            tracing::info!(%url, branch = %config.branch, %from, commit = %to, why, "git fetch: new commit")
        }
        Synced::ForcePushed { from, to } => tracing::warn!(
            %url, branch = %config.branch, %from, commit = %to, why,
            "git fetch: the remote branch was force-pushed; following it (commits only in the old history are no longer deployed)"
        ),
    }
}

/// Log a failed fetch: the URL without credentials, what git said, the commit still in force
/// (`last`, from [`checked_out`]).
pub fn log_failed(
    config: &RemoteConfig,
    error: &FetchError,
    last: Option<&str>,
    failures: u32,
    retry_in: Duration,
) {
    tracing::warn!(
        url = %config.url.redacted(),
        branch = %config.branch,
        error = %error,
        failures,
        retry_in_secs = retry_in.as_secs_f64(),
        "git fetch failed; still reconciling the last fetched commit {}",
        last.unwrap_or("(none)"),
    );
}

/// The fetch loop: every [`next_delay`], or at once on a [`FetchTrigger`] request, [`sync`];
/// runs until the task is aborted. `failures`: failed fetches in a row so far (the start-up
/// fetch's).
pub fn spawn(config: RemoteConfig, failures: u32) -> (FetchTrigger, tokio::task::JoinHandle<()>) {
    let trigger = FetchTrigger::default();
    let requests = trigger.clone();
    let task = tokio::spawn(async move {
        let mut failures = failures;
        loop {
            let wait = next_delay(config.interval, failures, jitter());
            let why = tokio::select! {
                _ = tokio::time::sleep(wait) => if failures > 0 { "retry" } else { "interval" },
                _ = requests.requested() => "webhook",
            };
            let result = sync(&config).await;
            crate::metrics::global().git_fetched(why, result.is_ok(), chrono::Utc::now());
            match result {
                Ok(synced) => {
                    if failures > 0 {
                        tracing::info!(url = %config.url.redacted(), failures, "git fetch works again");
                    }
                    failures = 0;
                    log_synced(&config, &synced, why);
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let retry_in = next_delay(config.interval, failures, 0.5);
                    let last = checked_out(&config.clone_dir).await;
                    log_failed(&config, &e, last.as_deref(), failures, retry_in);
                }
            }
        }
    });
    (trigger, task)
}

/// The commit checked out in opsctl's clone at `dir` (a previous run's, or the last fetch's);
/// `None` when there is no clone there yet. Never looks at a repository around `dir`.
pub async fn checked_out(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    super::git::head_commit(dir).await
}

#[cfg(test)]
mod tests;
