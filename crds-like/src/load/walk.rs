//! Finding the manifest files of a directory for [`super::load_dir`]: every `*.yaml` and
//! `*.yml` file below it, recursively, skipping hidden entries (name starting with `.`).
//!
//! Symbolic links: a link to a file is read like the file. A link to a directory is not
//! followed, with a warning naming it: a GitOps deploy reads the git commit, where git stores
//! the link and not the files behind it, so following it would let `opsctl validate` pass on
//! manifests the deploy never sees; not following links also rules out loops. A dangling (or
//! looping) link named `*.yaml`/`*.yml` is an error naming it and its target; another dangling
//! link is a warning. A FIFO, socket or device named `*.yaml` is an error (reading a FIFO would
//! block).
//!
//! Reads directory entries and link targets only; the files themselves are read by the caller.

use std::fs;
use std::path::{Path, PathBuf};

use super::{Diagnostic, file_problem};

/// What a walk found: files in no particular order, and problems (errors reject the set).
#[derive(Default)]
pub(super) struct Found {
    pub files: Vec<PathBuf>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// The manifest files below `dir`, and every problem met on the way.
pub(super) fn manifest_files(dir: &Path) -> Found {
    let mut found = Found::default();
    collect(dir, &mut found);
    found
}

/// Whether `path` ends in `.yaml` or `.yml`.
pub(super) fn is_manifest_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml")
}

/// The manifest files below `dir`, and problems with its entries, into `found`.
fn collect(dir: &Path, found: &mut Found) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            found
                .errors
                .push(file_problem(dir, format!("cannot read the directory: {e}")));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                found
                    .errors
                    .push(file_problem(dir, format!("cannot read the directory: {e}")));
                continue;
            }
        };
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(e) => {
                found.errors.push(file_problem(
                    &path,
                    format!("cannot read the directory entry: {e}"),
                ));
                continue;
            }
        };
        if file_type.is_dir() {
            collect(&path, found);
        } else if file_type.is_symlink() {
            symlink(&path, found);
        } else if is_manifest_name(&path) {
            if file_type.is_file() {
                found.files.push(path);
            } else {
                found.errors.push(not_a_file(&path));
            }
        }
    }
}

/// A symbolic link found in the tree: see the module docs for what happens to each kind.
fn symlink(path: &Path, found: &mut Found) {
    let target = fs::read_link(path)
        .map(|t| t.display().to_string())
        .unwrap_or_else(|_| "?".to_owned());
    let manifest = is_manifest_name(path);
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => found.warnings.push(Diagnostic {
            help: Some("move or copy the manifests into the directory; a deploy reads the git commit, which holds the link, not the files behind it".to_owned()),
            ..file_problem(
                path,
                format!("symbolic link to the directory `{target}` is not followed: manifests there are not loaded"),
            )
        }),
        Ok(meta) if meta.is_file() => {
            if manifest {
                found.files.push(path.to_path_buf());
            }
        }
        Ok(_) if manifest => found.errors.push(not_a_file(path)),
        Ok(_) => {}
        Err(e) => {
            let (message, help) = if e.kind() == std::io::ErrorKind::NotFound {
                (
                    format!("dangling symbolic link: its target `{target}` does not exist"),
                    "fix the link, or remove it",
                )
            } else {
                (
                    format!("cannot follow the symbolic link to `{target}`: {e}"),
                    "a link that points to itself or round in a loop cannot be read; fix or remove it",
                )
            };
            let d = Diagnostic {
                help: Some(help.to_owned()),
                ..file_problem(path, message)
            };
            if manifest {
                found.errors.push(d);
            } else {
                found.warnings.push(d);
            }
        }
    }
}

fn not_a_file(path: &Path) -> Diagnostic {
    file_problem(
        path,
        "not a regular file (a FIFO, socket or device): a manifest must be a file".to_owned(),
    )
}
