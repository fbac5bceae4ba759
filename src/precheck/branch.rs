//! The `release_branch` gate: is the commit reachable from the release branch in the
//! manifests checkout? Asks git (`git merge-base --is-ancestor`), in `origin/<branch>` first
//! and then `<branch>`; reachable from either is a pass.
//!
//! Only local refs are read: nothing is fetched, so the checkout's own update (the
//! reconciler's pull) decides what `origin/<branch>` means. Refs are named in full
//! (`refs/remotes/origin/<branch>`, `refs/heads/<branch>`) so a tag of the same name is never
//! taken for the branch. The commit and branch were checked before they reach git (a commit is
//! hex, a branch name is validated by opsctl-crds), so neither can be read as an option.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use opsctl_crds::flyapp::BranchName;

use super::report::Outcome;

/// What one git command said.
enum Git {
    /// Exit code 0.
    Yes,
    /// Exit code 1 (`--is-ancestor`: not an ancestor; `--verify --quiet`: no such ref).
    No,
    /// git could not answer (missing, not a repository, a bad object, timeout).
    Error(String),
}

async fn git(dir: &Path, args: &[&str], timeout: Duration) -> Git {
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!("git {}", args.join(" "));
    match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => Git::Error(format!(
            "{shown} did not answer within {}s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Git::Error(format!("{shown} could not run: {e}")),
        Ok(Ok(out)) => match out.status.code() {
            Some(0) => Git::Yes,
            Some(1) => Git::No,
            _ => Git::Error(format!(
                "{shown} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        },
    }
}

/// The gate's outcome for `commit` (a full hex SHA) and `branch`, in the checkout at `dir`.
pub(crate) async fn check(
    dir: &Path,
    commit: &str,
    branch: &BranchName,
    timeout: Duration,
) -> Outcome {
    let short = commit.get(..7).unwrap_or(commit);
    let object = format!("{commit}^{{commit}}");
    match git(dir, &["rev-parse", "--verify", "--quiet", &object], timeout).await {
        Git::Yes => {}
        Git::No => {
            return Outcome::Unknown(format!(
                "commit {short} is not in the checkout at {}",
                dir.display()
            ));
        }
        Git::Error(e) => return Outcome::Unknown(e),
    }
    let candidates = [
        (
            format!("refs/remotes/origin/{branch}"),
            format!("origin/{branch}"),
        ),
        (format!("refs/heads/{branch}"), branch.to_string()),
    ];
    let mut looked_in = Vec::new();
    for (full, shown) in &candidates {
        let verify = format!("{full}^{{commit}}");
        match git(dir, &["rev-parse", "--verify", "--quiet", &verify], timeout).await {
            Git::Yes => {}
            Git::No => continue,
            Git::Error(e) => return Outcome::Unknown(e),
        }
        match git(dir, &["merge-base", "--is-ancestor", commit, full], timeout).await {
            Git::Yes => {
                return Outcome::Passed(format!("commit {short} is on {shown}"));
            }
            Git::No => looked_in.push(shown.as_str()),
            Git::Error(e) => return Outcome::Unknown(e),
        }
    }
    if looked_in.is_empty() {
        return Outcome::Unknown(format!(
            "neither origin/{branch} nor {branch} exists in the checkout at {}: fetch the release branch",
            dir.display()
        ));
    }
    Outcome::Failed(format!(
        "commit {short} is not on the release branch {branch} (not reachable from {})",
        looked_in.join(" or ")
    ))
}
