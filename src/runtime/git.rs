//! The manifests checkout: its HEAD commit, and a file-system watch that notices commits at
//! once (no polling of git on a timer; issue #2 item 7).
//!
//! Uses the `git` command for reading (present wherever a checkout is) and `notify` for the
//! watch. The watch covers the checkout's git directory, where every commit, checkout, pull
//! or reset rewrites `HEAD`, a ref or the reflog.

use std::path::{Path, PathBuf};

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// The commit checked out in the repository containing `dir`, or `None` when `dir` is not in
/// a git checkout (or git is missing).
pub async fn head_commit(dir: &Path) -> Option<String> {
    git(dir, &["rev-parse", "HEAD"]).await
}

/// The git directory of the checkout containing `dir` (absolute), if any.
pub async fn git_dir(dir: &Path) -> Option<PathBuf> {
    let out = git(dir, &["rev-parse", "--absolute-git-dir"]).await?;
    Some(PathBuf::from(out))
}

async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// Watch `paths` recursively; every change sends `()` on the returned channel. Keep the
/// returned watcher alive for as long as events are wanted.
///
/// # Errors
/// When the platform watcher cannot be created or a path cannot be watched.
pub fn watch(
    paths: &[PathBuf],
) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(());
        }
    })?;
    for p in paths {
        watcher.watch(p, RecursiveMode::Recursive)?;
    }
    Ok((watcher, rx))
}
