//! `opsctl records export [--out FILE]` and `opsctl records import FILE`: the record store as a
//! beads `issues.jsonl` (classic format; `docs/records.md`, `crate::records::beads`).
//!
//! Export writes the JSONL on stdout (also under `-o json`: the file *is* the JSON), or to
//! `--out FILE` atomically (temporary file, fsync, rename) and then prints a summary:
//! `{"kind":"records_export","file":…,"prefix":…,"deploys":N,"records":N,"imported":N,"shadowed":N}`.
//! Import prints `{"kind":"records_import","file":…,"issues":N,"created":N,"updated":N,
//! "unchanged":N,"skipped_lines":N}`. A bad line is an error naming file and line (code
//! `records.invalid`); nothing is stored then.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::Global;
use super::output::{Format, coded, print_json, print_text};
use crate::records::RecordStore;
use crate::records::beads::{
    BeadsError, BeadsFile, ExportOptions, config_prefix, export_store, import_into_store,
    valid_prefix,
};

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Write every record as a beads issues.jsonl (stdout by default).
    ///
    /// Deploys, incidents, postmortems, approvals, escalations and imported beads: one issue
    /// per line, sorted by id, labels and dependencies embedded. Ids are `<prefix>-<hash>`: the prefix is --prefix, else `issue-prefix` in the
    /// config.yaml beside --out (or in ./.beads/), else `ops`.
    Export {
        /// Write here (atomically) instead of stdout, then print a summary (`-o json`: a JSON
        /// summary).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Issue id prefix.
        #[arg(long, env = "OPSCTL_BEADS_PREFIX")]
        prefix: Option<String>,
    },
    /// Read a beads issues.jsonl into the record store.
    ///
    /// Each issue is kept whole (a record of kind `bead`) and exported back unchanged;
    /// imported issues never become live deploys, incidents or approvals. Importing the same
    /// file twice changes nothing. A bad line stops the import before anything is stored.
    Import {
        /// The issues.jsonl file.
        file: PathBuf,
    },
}

pub fn exec(command: RecordsCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match command {
        RecordsCommand::Export { out, prefix } => export(out, prefix, global),
        RecordsCommand::Import { file } => import(&file, global),
    }
}

/// The prefix: the flag, else the beads config beside the output (or `./.beads`), else `ops`.
fn pick_prefix(flag: Option<String>, out: Option<&Path>) -> anyhow::Result<String> {
    let prefix = flag
        .or_else(|| {
            out.and_then(Path::parent)
                .and_then(config_prefix)
                .or_else(|| config_prefix(Path::new(".beads")))
        })
        .unwrap_or_else(|| "ops".to_owned());
    if !valid_prefix(&prefix) {
        return Err(coded(
            "usage",
            format!(
                "`{prefix}` is not a beads issue prefix: use lowercase letters, digits and `-` (not at the ends)"
            ),
        ));
    }
    Ok(prefix)
}

fn export(
    out: Option<PathBuf>,
    prefix: Option<String>,
    global: &Global,
) -> anyhow::Result<ExitCode> {
    let prefix = pick_prefix(prefix, out.as_deref())?;
    let store = RecordStore::open_read_at(global.store.as_deref(), &global.state)?;
    let opts = ExportOptions {
        prefix: prefix.clone(),
        ..ExportOptions::default()
    };
    let (file, summary) = export_store(&store, &opts)?;
    let text = file.to_text();
    let Some(out) = out else {
        print_text(&text)?;
        return Ok(ExitCode::SUCCESS);
    };
    write_atomically(&out, text.as_bytes())
        .with_context(|| format!("writing {}", out.display()))?;
    if global.output == Format::Json {
        print_json(&json!({
            "kind": "records_export", "file": out, "prefix": prefix,
            "deploys": summary.deploys, "records": summary.records,
            "imported": summary.imported, "shadowed": summary.shadowed,
        }))?;
    } else {
        let mut line = format!(
            "wrote {} issues to {} ({} deploys, {} records, {} imported)",
            summary.deploys + summary.records + summary.imported,
            out.display(),
            summary.deploys,
            summary.records,
            summary.imported
        );
        if summary.shadowed > 0 {
            line.push_str(&format!(
                "; {} imported issues not written: a native record has the same id",
                summary.shadowed
            ));
        }
        print_text(&format!("{line}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Write `bytes` to `path` through a temporary file in the same directory and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or("issues.jsonl".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{name}.opsctl-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn import(file: &Path, global: &Global) -> anyhow::Result<ExitCode> {
    let parsed = match BeadsFile::read(file) {
        Ok(f) => f,
        Err(e @ (BeadsError::Line { .. } | BeadsError::DuplicateId { .. })) => {
            return Err(coded("records.invalid", e.to_string()));
        }
        Err(e) => return Err(e.into()),
    };
    let store = RecordStore::open_write_at(global.store.as_deref(), &global.state)?;
    let now = crate::runtime::clock::Clock::now(&crate::runtime::clock::SystemClock);
    let s = import_into_store(&store, &parsed, now)?;
    if global.output == Format::Json {
        print_json(&json!({
            "kind": "records_import", "file": file, "issues": s.issues, "created": s.created,
            "updated": s.updated, "unchanged": s.unchanged, "skipped_lines": s.skipped_lines,
        }))?;
    } else {
        let mut line = format!(
            "imported {} issues from {}: {} new, {} updated, {} unchanged",
            s.issues,
            file.display(),
            s.created,
            s.updated,
            s.unchanged
        );
        if s.skipped_lines > 0 {
            line.push_str(&format!(
                "; {} lines that are not issues skipped",
                s.skipped_lines
            ));
        }
        print_text(&format!("{line}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}
