//! The record store: every deploy leaves a record (a "bead") in the state directory
//! (DESIGN.md §7).
//!
//! Embedded backend: an append-only journal, `<state>/records.jsonl`. Each line is one
//! snapshot of one record; a record's history is every line with its id, and its current state
//! is the newest. An append is one `write` of one line followed by `fsync`, so an acknowledged
//! record survives a crash; a torn last line (a crash mid-write) is cut off by the next writer
//! and skipped by readers. One writer at a time: the writer holds an exclusive lock on
//! `<state>/records.lock` for as long as it lives.
//!
//! Two shapes share the journal: deploys ([`DeployRecord`], a line's `record`) and every other
//! kind ([`Record`]: incidents, postmortems, approvals, escalations, check findings; a line's
//! `item`).
//!
//! The beads `issues.jsonl` export/import and the engineering escalation writer are in
//! [`beads`].
//!
//! PostgreSQL backend (`--store postgres://…`, issue #8): the same snapshots in an append-only
//! table, for several replicas of `opsctl run` (see [`pg`] and docs/scaling.md). The backend
//! is chosen at open time ([`RecordStore::open_write_at`], [`RecordStore::open_read_at`]);
//! every other method is the same for both.

pub mod beads;
mod deploy;
pub mod pg;
mod record;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use deploy::{
    DeployRecord, DeployStatus, MachineOutcome, MachineResult, ReleaseRef, RollbackRecord,
    StepRecord, Trigger,
};
pub use record::{Link, LinkKind, Record, RecordKind, RecordStatus};

/// Store failures. The user fixes these (permissions, disk, another process).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Reading or writing the journal failed.
    #[error("record store {path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another opsctl process writes to this state directory.
    #[error("another opsctl process is writing to {0} (only one writer per state directory)")]
    Locked(PathBuf),
    /// The PostgreSQL store failed (unreachable, refused, bad `--store`). The message never
    /// contains the URL or its parts.
    #[error("record store (PostgreSQL): {message}")]
    Database {
        /// What failed, scrubbed of the URL.
        message: String,
    },
    /// A fenced write from a replica that is no longer the leader (its lease epoch was taken
    /// over, or it never held one): refused, so a stale leader cannot record, hence cannot
    /// take, a Fly step.
    #[error("record write refused: this replica is not the leader (lease epoch {epoch} is stale)")]
    Fenced {
        /// The epoch the write was attempted under (0: not held).
        epoch: i64,
    },
}

/// One journal line: a deploy snapshot (`record`) or another record's snapshot (`item`).
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    /// Journal format version.
    v: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<DeployRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    item: Option<Record>,
}

/// The record store: the embedded journal or PostgreSQL.
#[derive(Debug)]
pub struct RecordStore {
    dir: PathBuf,
    journal: PathBuf,
    backend: Backend,
}

/// Where the snapshots live.
#[derive(Debug)]
enum Backend {
    /// `<state>/records.jsonl`; the writer (journal, lock file) when opened for writing.
    Journal(Option<Mutex<(File, File)>>),
    /// PostgreSQL.
    Postgres(pg::PgStore),
}

impl RecordStore {
    /// Open `dir` for reading only (no lock; safe beside a running writer).
    pub fn open_read(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            journal: dir.join("records.jsonl"),
            backend: Backend::Journal(None),
        }
    }

    /// Open the store `store` names: `None` for the embedded journal under `dir` (read only),
    /// a `postgres://` URL for PostgreSQL (`dir` stays the state directory for other files).
    ///
    /// # Errors
    /// [`StoreError::Database`] when PostgreSQL cannot be reached or set up.
    pub fn open_read_at(store: Option<&str>, dir: &Path) -> Result<Self, StoreError> {
        match store {
            None => Ok(Self::open_read(dir)),
            Some(url) => Self::open_postgres(url, dir, None),
        }
    }

    /// As [`RecordStore::open_read_at`], for writing (unfenced on PostgreSQL: for one-shot
    /// commands; `opsctl run` uses [`RecordStore::open_postgres`] with its leader fence).
    ///
    /// # Errors
    /// As [`RecordStore::open_write`] and [`RecordStore::open_postgres`].
    pub fn open_write_at(store: Option<&str>, dir: &Path) -> Result<Self, StoreError> {
        match store {
            None => Self::open_write(dir),
            Some(url) => Self::open_postgres(url, dir, None),
        }
    }

    /// Open the PostgreSQL store at `url` (`postgres://…`; a schema other than `public` with
    /// `?options=-csearch_path%3DNAME`), creating its tables on first use. With `fence`, every
    /// append is refused unless the fence's lease epoch is current ([`StoreError::Fenced`]).
    ///
    /// # Errors
    /// [`StoreError::Database`]: a bad URL, PostgreSQL unreachable, tables not creatable.
    pub fn open_postgres(
        url: &str,
        dir: &Path,
        fence: Option<Arc<pg::Fence>>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            dir: dir.to_owned(),
            journal: dir.join("records.jsonl"),
            backend: Backend::Postgres(pg::PgStore::open(url, fence)?),
        })
    }

    /// Open `dir` for writing: creates it, takes the writer lock, cuts a torn last line.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process writes; [`StoreError::Io`] otherwise.
    pub fn open_write(dir: &Path) -> Result<Self, StoreError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| StoreError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("records.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(dir.to_owned()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let journal = dir.join("records.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&journal)
            .map_err(io(&journal))?;
        cut_torn_tail(&mut file).map_err(io(&journal))?;
        Ok(Self {
            dir: dir.to_owned(),
            journal,
            backend: Backend::Journal(Some(Mutex::new((file, lock)))),
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append a snapshot of `record`, durably (fsync) before returning.
    ///
    /// # Errors
    /// [`StoreError::Io`]; a store opened with [`RecordStore::open_read`] refuses with
    /// `PermissionDenied`.
    pub fn append(&self, record: &DeployRecord) -> Result<(), StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.append(record);
        }
        self.append_line(&Line {
            v: 1,
            record: Some(record.clone()),
            item: None,
        })
    }

    /// Append a snapshot of a non-deploy `record`, durably (fsync) before returning.
    ///
    /// # Errors
    /// As [`RecordStore::append`].
    pub fn append_record(&self, record: &Record) -> Result<(), StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.append_record(record);
        }
        self.append_line(&Line {
            v: 1,
            record: None,
            item: Some(record.clone()),
        })
    }

    fn append_line(&self, line: &Line) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: self.journal.clone(),
            source,
        };
        let Backend::Journal(Some(writer)) = &self.backend else {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "store opened read-only",
            )));
        };
        let mut line = serde_json::to_vec(line).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut guard = writer.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.write_all(&line).map_err(io)?;
        guard.0.sync_data().map_err(io)
    }

    /// Current state of every deploy record (newest snapshot per id), newest first, optionally
    /// only those of `app`.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the journal exists but cannot be read.
    pub fn deploys(&self, app: Option<&str>) -> Result<Vec<DeployRecord>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            let mut latest = pg.deploys(app)?;
            latest.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
            return Ok(latest);
        }
        let mut latest: Vec<DeployRecord> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for line in self.lines()? {
            let Some(rec) = line.record else { continue };
            if app.is_some_and(|a| a != rec.app) {
                continue;
            }
            match index.get(&rec.id) {
                Some(&i) => latest[i] = rec,
                None => {
                    index.insert(rec.id.clone(), latest.len());
                    latest.push(rec);
                }
            }
        }
        latest.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        Ok(latest)
    }

    /// Current state of every non-deploy record (newest snapshot per id) that `keep` accepts,
    /// newest first (by `created_at`, then id).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the journal exists but cannot be read.
    pub fn records(&self, keep: impl Fn(&Record) -> bool) -> Result<Vec<Record>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            let mut latest = pg.records()?;
            latest.retain(|r| keep(r));
            latest.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            return Ok(latest);
        }
        let mut latest: Vec<Record> = Vec::new();
        let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for line in self.lines()? {
            let Some(rec) = line.item else { continue };
            match index.get(&rec.id) {
                Some(&i) => latest[i] = rec,
                None => {
                    index.insert(rec.id.clone(), latest.len());
                    latest.push(rec);
                }
            }
        }
        latest.retain(|r| keep(r));
        latest.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(latest)
    }

    /// Every snapshot of record `id`, oldest first (its history); empty when unknown.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the journal exists but cannot be read.
    pub fn history_of(&self, id: &str) -> Result<Vec<Record>, StoreError> {
        if let Backend::Postgres(pg) = &self.backend {
            return pg.history_of(id);
        }
        Ok(self
            .lines()?
            .into_iter()
            .filter_map(|l| l.item)
            .filter(|r| r.id == id)
            .collect())
    }

    /// Every readable journal line, in order. A last line that does not parse is a torn write
    /// from a crash (the next writer cuts it); anywhere else it is damage worth a warning.
    fn lines(&self) -> Result<Vec<Line>, StoreError> {
        let file = match File::open(&self.journal) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => {
                return Err(StoreError::Io {
                    path: self.journal.clone(),
                    source,
                });
            }
        };
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|source| StoreError::Io {
                path: self.journal.clone(),
                source,
            })?;
        let last = lines.len().saturating_sub(1);
        let mut parsed = Vec::with_capacity(lines.len());
        for (n, line) in lines.iter().enumerate() {
            match serde_json::from_str::<Line>(line) {
                Ok(l) => parsed.push(l),
                Err(_) if n == last => {}
                Err(_) => {
                    tracing::warn!(journal = %self.journal.display(), line = n + 1, "skipping a damaged record line");
                }
            }
        }
        Ok(parsed)
    }
}

/// Truncate the file after its last newline (a partial line is a torn write).
fn cut_torn_tail(file: &mut File) -> std::io::Result<()> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let mut reader = BufReader::new(&*file);
    reader.seek(SeekFrom::Start(0))?;
    let mut good = 0u64;
    let mut pos = 0u64;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        if buf.last() == Some(&b'\n') {
            good = pos;
        }
    }
    if good < len {
        file.set_len(good)?;
        file.sync_data()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
