//! The maintenance section of `opsctl status`: per check, its schedule, when it runs next, how
//! its last run went and the last result per app. The scheduler keeps it in memory and writes
//! it to `<state>/maintenance-status.json` after every run (atomically: a temporary file, then
//! a rename), so another process (`opsctl maintenance status`, `opsctl status`) can read it
//! while `opsctl run` works.
//!
//! JSON shape (stable; `kind` tags the object):
//! `{"kind": "maintenance_status", "updated_at": RFC 3339, "checks": [{"check": "redis",
//! "enabled": true, "schedule": "every 5m, jitter up to 30s", "next_run": …, "running": false,
//! "runs": 12, "skipped": 0, "last_skipped_at": null, "last_started_at": …,
//! "last_finished_at": …, "last_duration_ms": 4, "results": [{"app", "status", "summary",
//! "signals", "at"}]}]}`. Times are UTC.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use opsctl_crds::kinds::maintenance::CheckName;
use serde::{Deserialize, Serialize};

use super::runner::AppResult;

/// File name of the status under the state directory.
pub const FILE: &str = "maintenance-status.json";

/// The whole maintenance status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceStatus {
    /// Always `maintenance_status`.
    pub kind: String,
    /// When it was last written (UTC).
    pub updated_at: DateTime<Utc>,
    /// One entry per scheduled check, in the ADR table's order.
    pub checks: Vec<CheckStatus>,
}

impl Default for MaintenanceStatus {
    fn default() -> Self {
        Self {
            kind: "maintenance_status".into(),
            updated_at: DateTime::<Utc>::default(),
            checks: Vec::new(),
        }
    }
}

/// One check's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckStatus {
    /// Which check.
    pub check: CheckName,
    /// `false`: switched off in the `MaintenanceSchedule`.
    pub enabled: bool,
    /// For people: `every 5m, jitter up to 30s` or `cron 0 6 * * * (UTC)`.
    pub schedule: String,
    /// When it runs next (UTC), jitter included.
    pub next_run: Option<DateTime<Utc>>,
    /// A run is in progress.
    pub running: bool,
    /// Runs started.
    pub runs: u64,
    /// Runs not started because the previous one was still going, or missed while the
    /// process could not run them (coalesced into one).
    pub skipped: u64,
    /// When a run was last skipped (UTC).
    pub last_skipped_at: Option<DateTime<Utc>>,
    /// When the last run started (UTC).
    pub last_started_at: Option<DateTime<Utc>>,
    /// When the last run finished (UTC).
    pub last_finished_at: Option<DateTime<Utc>>,
    /// How long the last finished run took, in milliseconds.
    pub last_duration_ms: Option<u64>,
    /// The last result per app.
    pub results: Vec<AppResult>,
}

impl MaintenanceStatus {
    /// The entry of `check`, created when missing.
    pub fn entry(&mut self, check: CheckName) -> &mut CheckStatus {
        if let Some(i) = self.checks.iter().position(|c| c.check == check) {
            return &mut self.checks[i];
        }
        self.checks.push(CheckStatus {
            check,
            enabled: true,
            schedule: String::new(),
            next_run: None,
            running: false,
            runs: 0,
            skipped: 0,
            last_skipped_at: None,
            last_started_at: None,
            last_finished_at: None,
            last_duration_ms: None,
            results: Vec::new(),
        });
        self.checks.sort_by_key(|c| c.check);
        let i = self
            .checks
            .iter()
            .position(|c| c.check == check)
            .unwrap_or_default();
        &mut self.checks[i]
    }

    /// The status file under `state`.
    pub fn path(state: &Path) -> PathBuf {
        state.join(FILE)
    }

    /// Read the status `opsctl run` wrote under `state`; `Ok(None)` when there is none yet.
    ///
    /// # Errors
    /// The file exists but cannot be read or parsed.
    pub fn load(state: &Path) -> Result<Option<Self>, std::io::Error> {
        match std::fs::read(Self::path(state)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Write it under `state`, atomically.
    ///
    /// # Errors
    /// The state directory cannot be written.
    pub fn save(&self, state: &Path) -> Result<(), std::io::Error> {
        std::fs::create_dir_all(state)?;
        let path = Self::path(state);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &path)
    }
}
