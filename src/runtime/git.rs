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

/// A change worth a look: something was created, written, renamed or removed, outside the
/// object database and lock files (a commit also rewrites a ref or the reflog, which counts).
fn is_change(event: &notify::Event) -> bool {
    use notify::EventKind;
    let kind = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
    );
    kind && event.paths.iter().any(|p| {
        let s = p.to_string_lossy();
        !s.contains("/.git/objects/") && !s.ends_with(".lock")
    })
}

async fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = git_bytes(dir, args).await?;
    let s = String::from_utf8(out).ok()?.trim().to_owned();
    (!s.is_empty()).then_some(s)
}

/// The manifest files of `dir` as committed at `commit`: `(path as seen from the current
/// directory, text)`. What a GitOps operator deploys is the commit, not the working tree: an
/// uncommitted edit is never deployed.
///
/// # Errors
/// A message when git cannot list or read the files.
pub async fn committed_files(dir: &Path, commit: &str) -> Result<Vec<(PathBuf, String)>, String> {
    let listing = git_bytes(dir, &["ls-tree", "-r", "-z", commit, "--", "."])
        .await
        .ok_or_else(|| format!("git ls-tree {commit} failed in {}", dir.display()))?;
    let mut files = Vec::new();
    // Each entry: `<mode> <type> <object>\t<path>` (git-ls-tree(1)).
    for entry in listing.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let entry = String::from_utf8_lossy(entry).into_owned();
        let Some((meta, name)) = entry.split_once('\t') else {
            continue;
        };
        let hidden = name.split('/').any(|part| part.starts_with('.'));
        if hidden || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        if meta.starts_with("120000") {
            // A symlink: git stores the link's target path, not the file behind it, so there
            // is no committed manifest to read (the directory loader skips links too).
            tracing::warn!(file = %name, "manifest is a symlink in the commit; skipped (commit the file itself)");
            continue;
        }
        let spec = format!("{commit}:./{name}");
        let text = git_bytes(dir, &["show", &spec])
            .await
            .ok_or_else(|| format!("git show {spec} failed in {}", dir.display()))?;
        let text =
            String::from_utf8(text).map_err(|_| format!("{name} at {commit} is not UTF-8 text"))?;
        files.push((dir.join(name), text));
    }
    Ok(files)
}

async fn git_bytes(dir: &Path, args: &[&str]) -> Option<Vec<u8>> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// Watch `paths` recursively; every change (create, modify, remove — not mere reads, which
/// git itself does constantly) sends `()` on the returned channel. Keep the returned watcher
/// alive for as long as events are wanted.
///
/// # Errors
/// When the platform watcher cannot be created or a path cannot be watched.
pub fn watch(
    paths: &[PathBuf],
) -> notify::Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && is_change(&event)
        {
            let _ = tx.send(());
        }
    })?;
    for p in paths {
        watcher.watch(p, RecursiveMode::Recursive)?;
    }
    Ok((watcher, rx))
}
