//! Writing an escalation into an engineering repository's beads (DESIGN.md §7; ADR: the
//! engineering ↔ ops handoff): a new issue in `<repo>/.beads/issues.jsonl` with a `caused-by`
//! dependency on the ops record's issue (a cross-prefix edge, which beads stores since v1.0.1;
//! reference doc §1.6).
//!
//! File mode (the default): the file is read, the new line inserted at its sorted place, and
//! the whole written to a temporary file in the same directory, fsynced and renamed over the
//! original, so a reader (or `bd`'s auto-import) sees the old file or the new one, never half.
//! Other lines are kept byte for byte (no reformatting, minimal git diff). Concurrent opsctl
//! writers serialise on an exclusive `flock` of the `.beads` directory (no lock file left in the
//! repository; a lock file beside the issues file on non-Unix systems); `bd` itself does not
//! take that lock (its SQLite-era flush could overwrite an edit made inside its
//! 5 s debounce; reference doc §1.5).
//!
//! `bd` mode (`bd: true` on the target): `bd create` in the repository, for beads installs
//! where `issues.jsonl` is not the source of truth (Dolt era, v0.57+).
//!
//! Idempotent in both modes: an issue whose `external_ref` is `opsctl:<record id>` already in
//! the file is returned instead of writing a second one, so a retried escalation never makes a
//! chain of duplicates (the LowEndInsight "investigate the investigation" beads).

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};

use super::map::{beads_id_for, scrub_credentials};
use super::{BeadsDependency, BeadsError, BeadsIssue, BeadsLine, adaptive_len, hash_id, to_line};
use crate::records::{Record, RecordKind};

/// Where an engineering escalation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngTarget {
    /// The engineering repository's `issues.jsonl` (absolute, or relative to the process's
    /// working directory).
    pub path: PathBuf,
    /// The engineering issue prefix (`eng`, `lowendinsight`).
    pub prefix: String,
    /// Use `bd create` instead of editing the file.
    pub bd: Option<BdCommand>,
}

/// How to run `bd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BdCommand {
    /// The program (`bd`, or a path; GLITCHLAB and keiro honour `BEADS_BD_PATH` likewise).
    pub program: PathBuf,
}

/// The result of one escalation write.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EscalationWrite {
    /// The engineering issue id.
    pub id: String,
    /// The file (or repository, in `bd` mode) written.
    pub path: PathBuf,
    /// False when the issue was already there (nothing written).
    pub created: bool,
    /// The ops issue it depends on (`caused-by`).
    pub caused_by: String,
}

/// The engineering issue for ops record `record`, with id `id`, depending on `ops_id`.
pub fn escalation_issue(record: &Record, id: &str, ops_id: &str, now: DateTime<Utc>) -> BeadsIssue {
    let at = now.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    let mut issue = BeadsIssue::new(id, scrub_credentials(&record.title));
    let mut desc = scrub_credentials(&record.description);
    if !desc.is_empty() {
        desc.push_str("\n\n");
    }
    desc.push_str(&format!(
        "Escalated by opsctl from ops record {ops_id} (opsctl {}).",
        record.id
    ));
    issue.description = Some(desc);
    issue.status = Some("open".into());
    issue.priority = Some(i64::from(record.priority.min(4)));
    issue.issue_type = Some(
        match record.kind {
            RecordKind::Incident | RecordKind::Escalation | RecordKind::Postmortem => "bug",
            _ => "task",
        }
        .into(),
    );
    issue.created_at = Some(at.clone());
    issue.created_by = Some("opsctl".into());
    issue.updated_at = Some(at.clone());
    issue.external_ref = Some(format!("opsctl:{}", record.id));
    let mut labels = vec!["from:ops".to_owned(), "ops-escalation".to_owned()];
    if let Some(app) = &record.app {
        labels.push(format!("app:{app}"));
    }
    labels.sort();
    issue.labels = Some(labels);
    issue.dependencies = Some(vec![BeadsDependency {
        issue_id: id.to_owned(),
        depends_on_id: ops_id.to_owned(),
        kind: "caused-by".into(),
        created_at: Some(at),
        created_by: Some("opsctl".into()),
        extra: Default::default(),
    }]);
    issue
}

/// Write `record` as an escalation into `target`; `ops_prefix` names the ops namespace the
/// `caused-by` edge points into (the record's id there is [`beads_id_for`]).
///
/// Blocking file I/O (and, in `bd` mode, a child process): call it from
/// `tokio::task::spawn_blocking` in async code.
///
/// # Errors
/// [`BeadsError::Io`] when the directory is missing or the file cannot be written (the
/// directory is never created: a wrong path is a configuration error to report, not to paper
/// over); [`BeadsError::Line`] when the existing file has a bad line (it is left untouched);
/// [`BeadsError::Other`] when `bd` fails.
pub fn write_escalation(
    target: &EngTarget,
    record: &Record,
    ops_prefix: &str,
    now: DateTime<Utc>,
) -> Result<EscalationWrite, BeadsError> {
    let ops_id = beads_id_for(ops_prefix, &record.id);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| BeadsError::Io { path, source }
    };
    let dir = target
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(BeadsError::Io {
            path: dir.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the engineering beads directory does not exist (check the AlertRoute's beads.path)",
            ),
        });
    }
    // Lock the `.beads` directory itself (flock on its descriptor), so that nothing is left
    // behind in the engineering repository; elsewhere a lock file beside the issues file.
    #[cfg(unix)]
    let (lock, lock_path) = (std::fs::File::open(dir), dir.to_owned());
    #[cfg(not(unix))]
    let (lock, lock_path) = {
        let p = dir.join(format!(
            "{}.opsctl.lock",
            target
                .path
                .file_name()
                .map_or("issues.jsonl".into(), |n| n.to_string_lossy())
        ));
        (
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p),
            p,
        )
    };
    let lock = lock.map_err(io(&lock_path))?;
    lock.lock().map_err(io(&lock_path))?;

    let text = match std::fs::read_to_string(&target.path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(&target.path)(e)),
    };
    // Parse every line (a bad file is reported, not rewritten), but keep the raw text.
    let parsed = super::BeadsFile::parse(&target.path, &text)?;
    let external = format!("opsctl:{}", record.id);
    if let Some(found) = parsed
        .issues()
        .find(|i| i.external_ref.as_deref() == Some(external.as_str()))
    {
        return Ok(EscalationWrite {
            id: found.id.clone(),
            path: target.path.clone(),
            created: false,
            caused_by: ops_id,
        });
    }
    let ids: std::collections::HashSet<&str> = parsed.issues().map(|i| i.id.as_str()).collect();
    let id = hash_id(
        &target.prefix,
        &format!("{}\n{}", target.prefix, record.id),
        adaptive_len(ids.len() + 1),
        |c| ids.contains(c),
    );
    let issue = escalation_issue(record, &id, &ops_id, now);

    if let Some(bd) = &target.bd {
        run_bd(bd, target, &issue, &ops_id)?;
        return Ok(EscalationWrite {
            id,
            path: target.path.clone(),
            created: true,
            caused_by: ops_id,
        });
    }

    // Insert at the sorted place among the issue lines; other lines stay where they were.
    let new_line = to_line(&issue);
    let mut out = String::with_capacity(text.len() + new_line.len() + 1);
    let mut inserted = false;
    for raw in text.lines() {
        if !inserted
            && let Ok(BeadsLine::Issue(i)) = super::parse_line(raw)
            && i.id.as_str() > id.as_str()
        {
            out.push_str(&new_line);
            out.push('\n');
            inserted = true;
        }
        if !raw.trim().is_empty() {
            out.push_str(raw);
            out.push('\n');
        }
    }
    if !inserted {
        // After the last issue but before trailing non-issue lines would be nicer; beads
        // readers accept either, and classic files have none.
        out.push_str(&new_line);
        out.push('\n');
    }
    let tmp = dir.join(format!(
        ".{}.opsctl-{}.tmp",
        target
            .path
            .file_name()
            .map_or("issues.jsonl".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(out.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, &target.path).map_err(io(&target.path))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    drop(lock);
    Ok(EscalationWrite {
        id,
        path: target.path.clone(),
        created: true,
        caused_by: ops_id,
    })
}

/// `bd create` in the repository holding `.beads/` (the target file's grandparent).
fn run_bd(
    bd: &BdCommand,
    target: &EngTarget,
    issue: &BeadsIssue,
    ops_id: &str,
) -> Result<(), BeadsError> {
    let repo = target
        .path
        .parent()
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut cmd = std::process::Command::new(&bd.program);
    cmd.current_dir(repo)
        .arg("create")
        .arg(&issue.title)
        .arg("--id")
        .arg(&issue.id)
        .arg("-t")
        .arg(issue.issue_type.as_deref().unwrap_or("task"))
        .arg("-p")
        .arg(issue.priority.unwrap_or(2).to_string())
        .arg("-d")
        .arg(issue.description.as_deref().unwrap_or(""))
        .arg("-l")
        .arg(issue.labels().join(","))
        .arg("--deps")
        .arg(format!("caused-by:{ops_id}"))
        .arg("--external-ref")
        .arg(issue.external_ref.as_deref().unwrap_or(""))
        .arg("--force")
        .arg("--silent");
    let out = cmd.output().map_err(|e| {
        BeadsError::Other(format!(
            "running `{} create` in {}: {e}",
            bd.program.display(),
            repo.display()
        ))
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(BeadsError::Other(format!(
            "`{} create` in {} failed ({}): {}",
            bd.program.display(),
            repo.display(),
            out.status,
            stderr.trim()
        )));
    }
    Ok(())
}
