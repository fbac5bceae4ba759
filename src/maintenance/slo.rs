//! Probe results per app, kept for `HealthSLO` evaluation, and the evaluation itself
//! (`opsctl_controllers::slo::evaluate` over the stored samples).
//!
//! The store is one append-only file per app, `STATE/slo/APP.samples`, of fixed 13-byte records
//! (little-endian): `i64` UTC unix milliseconds, `u32` latency in milliseconds, `u8` flags (bit
//! 0: the probe succeeded). 30 days of probes every 5 minutes are 8,640 records (112 KB); every
//! 30 s, 86,400 (1.1 MB). The size is bounded: when a file holds more than
//! [`SampleStore::max_records`] plus a quarter, it is rewritten (to a temporary file, then
//! renamed) keeping only records younger than the retention and at most `max_records` of them.
//! A torn last record (a crash mid-write) is ignored on read and cut off before the next
//! append. Samples are observations, not records of decisions: losing the last one to a power
//! cut is acceptable, so appends are not fsynced.
//!
//! Not here: running the probes (the scheduler does, and calls [`SampleStore::append`]).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use opsctl_controllers::slo::{Sample, SampleSeries, SloReport, evaluate};
use opsctl_crds::Manifest;
use opsctl_crds::kinds::HealthSloSpec;

/// Bytes per record.
pub const RECORD_LEN: usize = 13;
/// Default cap on records per app: 30 days of probes every 30 s (fast enough for the 5-minute
/// page window's 10 samples), plus slack; about 1.3 MB.
pub const DEFAULT_MAX_RECORDS: usize = 100_000;
/// Default retention: the default 30-day SLO period plus a day.
pub const DEFAULT_RETENTION: chrono::Duration = chrono::Duration::days(31);

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The app name cannot be a file name (Fly app names are lowercase letters, digits, `-`).
    #[error("`{0}` is not a Fly app name")]
    BadApp(String),
    /// Reading or writing a file failed.
    #[error("probe samples {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Probe results per app under a state directory.
#[derive(Debug)]
pub struct SampleStore {
    dir: PathBuf,
    max_records: usize,
    retention: chrono::Duration,
    write: Mutex<()>,
}

fn encode(s: &Sample) -> [u8; RECORD_LEN] {
    let mut b = [0_u8; RECORD_LEN];
    b[..8].copy_from_slice(&s.at.timestamp_millis().to_le_bytes());
    b[8..12].copy_from_slice(&s.latency_ms.to_le_bytes());
    b[12] = u8::from(s.ok);
    b
}

fn decode(b: &[u8]) -> Option<Sample> {
    let ms = i64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let latency_ms = u32::from_le_bytes(b.get(8..12)?.try_into().ok()?);
    let at = DateTime::from_timestamp_millis(ms)?;
    Some(Sample {
        at,
        ok: b.get(12)? & 1 == 1,
        latency_ms,
    })
}

impl SampleStore {
    /// The store under `state_dir` (`STATE/slo/`), created on first append, with
    /// [`DEFAULT_MAX_RECORDS`] and [`DEFAULT_RETENTION`].
    pub fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("slo"),
            max_records: DEFAULT_MAX_RECORDS,
            retention: DEFAULT_RETENTION,
            write: Mutex::new(()),
        }
    }

    /// The same store with another cap and retention (an SLO period longer than 30 days needs
    /// a longer retention).
    pub fn with_limits(mut self, max_records: usize, retention: chrono::Duration) -> Self {
        self.max_records = max_records.max(1);
        self.retention = retention;
        self
    }

    /// The cap on records kept per app.
    pub fn max_records(&self) -> usize {
        self.max_records
    }

    fn path(&self, app: &str) -> Result<PathBuf, StoreError> {
        let ok = !app.is_empty()
            && app.len() <= 63
            && app
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(StoreError::BadApp(app.to_owned()));
        }
        Ok(self.dir.join(format!("{app}.samples")))
    }

    /// Appends one probe result for `app`, compacting the file when it has grown past its cap
    /// (see the module docs); `now` (UTC) decides what is past the retention.
    ///
    /// # Errors
    /// [`StoreError`] for a bad app name or a failed write.
    pub fn append(&self, app: &str, sample: Sample, now: DateTime<Utc>) -> Result<(), StoreError> {
        let path = self.path(app)?;
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let torn = len % RECORD_LEN as u64;
        if torn != 0 {
            f.set_len(len - torn).map_err(io)?;
        }
        f.write_all(&encode(&sample)).map_err(io)?;
        let records = (len - torn) as usize / RECORD_LEN + 1;
        if records > self.max_records + self.max_records / 4 {
            drop(f);
            self.compact(&path, now).map_err(io)?;
        }
        Ok(())
    }

    fn compact(&self, path: &Path, now: DateTime<Utc>) -> std::io::Result<()> {
        let cutoff = now - self.retention;
        let mut kept: Vec<Sample> = read_all(path)?
            .into_iter()
            .filter(|s| s.at > cutoff)
            .collect();
        if kept.len() > self.max_records {
            kept.drain(..kept.len() - self.max_records);
        }
        let tmp = path.with_extension("samples.tmp");
        {
            let mut f = File::create(&tmp)?;
            let mut buf = Vec::with_capacity(kept.len() * RECORD_LEN);
            for s in &kept {
                buf.extend_from_slice(&encode(s));
            }
            f.write_all(&buf)?;
            f.sync_data()?;
        }
        std::fs::rename(&tmp, path)
    }

    /// `app`'s samples taken after `since` (UTC), oldest first as written. No file: none.
    ///
    /// # Errors
    /// [`StoreError`] for a bad app name or a failed read.
    pub fn read(&self, app: &str, since: DateTime<Utc>) -> Result<Vec<Sample>, StoreError> {
        let path = self.path(app)?;
        match read_all(&path) {
            Ok(all) => Ok(all.into_iter().filter(|s| s.at > since).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }
}

fn read_all(path: &Path) -> std::io::Result<Vec<Sample>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes.chunks_exact(RECORD_LEN).filter_map(decode).collect())
}

/// Evaluates `slo` at `now` (UTC) over its app's stored samples from the last period: error
/// budget left, burn rate per alert window and which alerts fire. The report is the SLO's
/// section of `opsctl status` (`objectives[].burn_rates[].burn_rate` is
/// `opsctl_slo_burn_rate`), and [`SloReport::signals`] gives the `slo_burn` signals.
///
/// # Errors
/// [`StoreError`] when the samples cannot be read.
pub fn evaluate_slo(
    store: &SampleStore,
    slo: &Manifest<HealthSloSpec>,
    now: DateTime<Utc>,
) -> Result<SloReport, StoreError> {
    let app = slo.spec.app_name(slo.name());
    let period = chrono::Duration::from_std(slo.spec.period.get()).unwrap_or(DEFAULT_RETENTION);
    let samples = store.read(app, now - period)?;
    let threshold = slo.spec.latency.as_ref().map(|l| l.threshold.get());
    let series = SampleSeries::new(&samples, threshold);
    Ok(evaluate(app, slo.name(), &slo.spec, &series, now))
}

/// Evaluates every `HealthSLO` over a [`SampleStore`] and keeps the last report per SLO for
/// `opsctl status` (budget left and burn rates per window).
#[derive(Debug)]
pub struct SloTracker {
    store: SampleStore,
    last: Mutex<std::collections::BTreeMap<String, SloReport>>,
}

impl SloTracker {
    /// A tracker over `store`.
    pub fn new(store: SampleStore) -> Self {
        Self {
            store,
            last: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// The store, to append probe results to.
    pub fn store(&self) -> &SampleStore {
        &self.store
    }

    /// Evaluates each of `slos` at `now` (UTC) and returns the `slo_burn` signals of the ones
    /// whose alerts fire. An SLO whose samples cannot be read is skipped with a warning (its
    /// last report stays as it was: unknown is not burning). SLOs no longer in `slos` are
    /// forgotten.
    pub fn evaluate_all(
        &self,
        slos: &[Manifest<HealthSloSpec>],
        now: DateTime<Utc>,
    ) -> Vec<opsctl_controllers::signal::Signal> {
        let mut signals = Vec::new();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for slo in slos {
            match evaluate_slo(&self.store, slo, now) {
                Ok(report) => {
                    signals.extend(report.signals());
                    last.insert(slo.name().to_owned(), report);
                }
                Err(e) => {
                    tracing::warn!(slo = slo.name(), error = %e, "SLO not evaluated: samples unreadable");
                }
            }
        }
        last.retain(|name, _| slos.iter().any(|s| s.name() == name));
        signals
    }

    /// Like [`SloTracker::evaluate_all`] for the SLOs of `app` only (the app-health check calls
    /// it after keeping the app's probe results); the other SLOs' last reports are kept.
    pub fn evaluate_app(
        &self,
        slos: &[Manifest<HealthSloSpec>],
        app: &str,
        now: DateTime<Utc>,
    ) -> Vec<opsctl_controllers::signal::Signal> {
        let mut signals = Vec::new();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        for slo in slos.iter().filter(|s| s.spec.app_name(s.name()) == app) {
            match evaluate_slo(&self.store, slo, now) {
                Ok(report) => {
                    signals.extend(report.signals());
                    last.insert(slo.name().to_owned(), report);
                }
                Err(e) => {
                    tracing::warn!(slo = slo.name(), error = %e, "SLO not evaluated: samples unreadable");
                }
            }
        }
        last.retain(|name, _| slos.iter().any(|s| s.name() == name));
        signals
    }

    /// The last report per SLO, sorted by name: `objectives[].budget_remaining` and
    /// `objectives[].burn_rates[]` (`opsctl_slo_burn_rate`), and which alerts fire.
    pub fn status(&self) -> Vec<SloReport> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn samples_round_trip_and_a_torn_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SampleStore::new(dir.path());
        let s = |m, ok, latency_ms| Sample {
            at: t0() + Duration::minutes(m),
            ok,
            latency_ms,
        };
        store.append("example-app", s(1, true, 120), t0()).unwrap();
        store
            .append("example-app", s(2, false, 5000), t0())
            .unwrap();
        // A crash mid-write leaves half a record.
        let path = dir.path().join("slo/example-app.samples");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(
            store.read("example-app", t0()).unwrap(),
            [s(1, true, 120), s(2, false, 5000)]
        );
        store.append("example-app", s(3, true, 80), t0()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * 13);
        assert_eq!(
            store
                .read("example-app", t0() + Duration::seconds(90))
                .unwrap(),
            [s(2, false, 5000), s(3, true, 80)]
        );
        assert!(store.read("other-app", t0()).unwrap().is_empty());
    }

    #[test]
    fn the_file_stays_bounded_over_thirty_days_of_five_minute_probes() {
        let dir = tempfile::tempdir().unwrap();
        let store = SampleStore::new(dir.path()).with_limits(8640, Duration::days(31));
        let path = dir.path().join("slo/lei.samples");
        let mut largest = 0;
        // 60 days at 5-minute probes: twice the cap.
        for i in 1..=(60 * 288) {
            let at = t0() + Duration::minutes(5 * i);
            let sample = Sample {
                at,
                ok: i % 97 != 0,
                latency_ms: 100,
            };
            store.append("lei", sample, at).unwrap();
            largest = largest.max(std::fs::metadata(&path).unwrap().len());
        }
        assert!(
            largest <= (8640 + 8640 / 4 + 1) * 13,
            "file grew to {largest} bytes"
        );
        let end = t0() + Duration::days(60);
        let kept = store.read("lei", end - Duration::days(30)).unwrap();
        assert_eq!(kept.len(), 30 * 288, "the last 30 days are all there");
    }

    #[test]
    fn app_names_that_are_not_file_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SampleStore::new(dir.path());
        for bad in ["../etc", "", "A", "a/b"] {
            assert!(matches!(store.read(bad, t0()), Err(StoreError::BadApp(_))));
        }
    }

    #[test]
    fn evaluation_reads_the_stored_period() {
        let dir = tempfile::tempdir().unwrap();
        let store = SampleStore::new(dir.path());
        // Two hours of 30-second probes, the last 10 minutes failing.
        for i in 1..=240 {
            let at = t0() + Duration::seconds(30 * i);
            let sample = Sample {
                at,
                ok: i <= 220,
                latency_ms: 100,
            };
            store.append("example-app", sample, at).unwrap();
        }
        let slo = Manifest {
            metadata: serde_json::from_value(serde_json::json!({"name": "example-app"})).unwrap(),
            spec: HealthSloSpec::default(),
            file: PathBuf::from("slo.yaml"),
        };
        let now = t0() + Duration::hours(2);
        let report = evaluate_slo(&store, &slo, now).unwrap();
        assert_eq!(report.objectives[0].period_samples, 240);
        assert_eq!(report.objectives[0].period_bad, 20);
        let signals = report.signals();
        assert_eq!(signals.len(), 1);
        assert_eq!(signals[0].class, "availability:page");
        // 20 failures of 240: 8.3% of a 0.1% budget → the budget is overspent.
        assert!(report.objectives[0].budget_remaining.unwrap() < 0.0);

        let tracker = SloTracker::new(store);
        let signals = tracker.evaluate_all(std::slice::from_ref(&slo), now);
        assert_eq!(signals.len(), 1);
        assert_eq!(tracker.status()[0].objectives[0].period_bad, 20);
        // An hour after the failures stopped, the 5-minute window is clean again: no page.
        for i in 241..=360 {
            let at = t0() + Duration::seconds(30 * i);
            let ok = Sample {
                at,
                ok: true,
                latency_ms: 90,
            };
            tracker.store().append("example-app", ok, at).unwrap();
        }
        let later = t0() + Duration::hours(3);
        let signals = tracker.evaluate_all(std::slice::from_ref(&slo), later);
        assert!(
            signals.iter().all(|s| s.class != "availability:page"),
            "{signals:?}"
        );
        assert!(tracker.evaluate_all(&[], later).is_empty());
        assert!(tracker.status().is_empty());
    }
}
