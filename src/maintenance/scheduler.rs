//! The maintenance scheduler: runs each check of the `MaintenanceSchedule` (or the ADR's
//! defaults) on its own clock — a fixed interval plus a random jitter, or a cron expression in
//! UTC — beside the reconciler in `opsctl run`, until the stop signal.
//!
//! Rules:
//! - **Fixed rate.** An interval check's runs are due at `start + k × interval`; each run
//!   fires a random delay in `[0, jitter]` after its due time (seeded, so tests are
//!   repeatable). A cron check is due at each occurrence.
//! - **No pile-up.** A check whose previous run is still going when the next comes due is not
//!   started again: that run is *skipped* (counted in the status, logged). Due times missed
//!   while the process could not run (a suspended laptop, a long stall) are coalesced into one
//!   run, and the missed ones are counted as skipped too. Checks of different kinds run
//!   concurrently, each at most once at a time.
//! - **Time.** "Now" comes from the injected [`Clock`]; waiting uses tokio's timer, so a test
//!   on tokio's paused clock with [`TokioClock`] runs 30 virtual days in milliseconds.
//! - **Manifests.** Re-read before each round of due checks (the committed files at HEAD when
//!   the directory is a git checkout, as the reconciler does); an invalid set keeps the last
//!   valid one. A changed schedule re-times the checks whose timing changed.
//! - **Stop.** When `stop` turns true the loop ends and runs in flight are aborted (they only
//!   read, so nothing is left half-done).
//!
//! [`CheckName::CertExpiry`] runs at least hourly ([`CERT_TICK`]) whatever its schedule says:
//! each run only reads the hostnames that are due by their `CertWindow`'s `interval` (or, for
//! a certificate stuck on a CA rate limit, at the limit's end but at most hourly: BUG-21), so
//! the tick is cheap and a window's own interval is kept to within an hour.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use opsctl_crds::kinds::maintenance::{CheckName, Every, MaintenanceScheduleSpec};
use opsctl_crds::{DurationStr, ManifestSet, load_dir, load_files};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::runner::Maintenance;
use super::status::MaintenanceStatus;
use crate::runtime::clock::Clock;
use crate::runtime::git;

/// The checks this scheduler runs (the ADR table).
pub const SCHEDULED: [CheckName; 7] = [
    CheckName::AppHealth,
    CheckName::CertExpiry,
    CheckName::MachineStatus,
    CheckName::PostgresConnections,
    CheckName::Redis,
    CheckName::CostSnapshot,
    CheckName::ObanQueueDepth,
];

/// The longest interval between two certificate-check runs (module docs).
pub const CERT_TICK: Duration = Duration::from_secs(3600);

/// How long to sleep when nothing is scheduled (every check disabled) before looking at the
/// manifests again.
const IDLE: Duration = Duration::from_secs(60);

/// A clock that follows tokio's timer: `origin` + the tokio time elapsed since creation. With
/// tokio's paused clock (tests), advancing tokio time advances this clock, so schedules, cron
/// occurrences and records agree.
#[derive(Debug)]
pub struct TokioClock {
    origin: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `origin` now.
    pub fn new(origin: DateTime<Utc>) -> Self {
        Self {
            origin,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + TimeDelta::from_std(self.start.elapsed()).unwrap_or(TimeDelta::MAX)
    }
}

/// Where the scheduler gets its manifests.
#[derive(Debug, Clone)]
pub enum Manifests {
    /// A fixed set (tests, `opsctl maintenance run-once`).
    Fixed(Box<ManifestSet>),
    /// A directory, re-read before each round (committed files at HEAD in a git checkout).
    Dir(PathBuf),
}

/// The next due time after a run due at `base` fired at `now`, and how many due times were
/// missed in between (coalesced). `None` when a cron expression has no next occurrence.
pub fn advance(
    every: &Every,
    base: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, u64)> {
    match every {
        Every::Interval(i) => {
            let step = TimeDelta::from_std(*i).ok()?.max(TimeDelta::seconds(1));
            let behind = (now - base).num_milliseconds().max(0);
            let k = behind / step.num_milliseconds() + 1;
            Some((
                base + step * i32::try_from(k).ok()?,
                u64::try_from(k - 1).ok()?,
            ))
        }
        Every::Cron(expr) => {
            let cron: croner::Cron = expr.as_str().parse().ok()?;
            let mut missed = 0;
            let mut next = cron.find_next_occurrence(&base, false).ok()?;
            while next <= now && missed < 100_000 {
                missed += 1;
                next = cron.find_next_occurrence(&next, false).ok()?;
            }
            Some((next, missed))
        }
    }
}

/// The first due time of a schedule that starts at `now`: at once for an interval, the next
/// occurrence for a cron expression.
pub fn first_due(every: &Every, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match every {
        Every::Interval(_) => Some(now),
        Every::Cron(expr) => expr
            .as_str()
            .parse::<croner::Cron>()
            .ok()?
            .find_next_occurrence(&now, false)
            .ok(),
    }
}

/// xorshift64*: the jitter's random source, seeded per scheduler.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A delay in `[0, max]`, in whole milliseconds.
    fn upto(&mut self, max: Duration) -> TimeDelta {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return TimeDelta::zero();
        }
        TimeDelta::milliseconds(i64::try_from(self.next() % (ms + 1)).unwrap_or(0))
    }
}

struct Slot {
    check: CheckName,
    enabled: bool,
    every: Every,
    jitter: Duration,
    /// Due time of the next run (without jitter).
    base: Option<DateTime<Utc>>,
    /// When the next run fires (with jitter).
    fire: Option<DateTime<Utc>>,
    running: Option<JoinHandle<()>>,
}

impl Slot {
    fn describe(&self) -> String {
        match &self.every {
            Every::Interval(i) => format!(
                "every {}, jitter up to {}",
                DurationStr(*i),
                DurationStr(self.jitter)
            ),
            Every::Cron(c) => format!("cron {c} (UTC)"),
        }
    }
}

/// The scheduler.
pub struct Scheduler {
    maintenance: Arc<Maintenance>,
    manifests: Manifests,
    clock: Arc<dyn Clock>,
    status: Arc<Mutex<MaintenanceStatus>>,
    state_dir: Option<PathBuf>,
    rng: Rng,
    last_valid: Option<Arc<ManifestSet>>,
}

impl Scheduler {
    /// A scheduler running `maintenance`'s checks on `manifests`, with `clock` for "now" and
    /// `seed` for the jitter. With `state_dir`, the status is written there after every run.
    pub fn new(
        maintenance: Arc<Maintenance>,
        manifests: Manifests,
        clock: Arc<dyn Clock>,
        state_dir: Option<PathBuf>,
        seed: u64,
    ) -> Self {
        Self {
            maintenance,
            manifests,
            clock,
            status: Arc::new(Mutex::new(MaintenanceStatus::default())),
            state_dir,
            rng: Rng(seed ^ 0x9e37_79b9_7f4a_7c15),
            last_valid: None,
        }
    }

    /// The live status (shared with the runs), for `opsctl status` in-process and tests.
    pub fn status(&self) -> Arc<Mutex<MaintenanceStatus>> {
        self.status.clone()
    }

    /// Run until `stop` becomes true (module docs for the rules).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut slots: Vec<Slot> = Vec::new();
        tracing::info!("maintenance scheduler started");
        loop {
            if *stop.borrow() {
                break;
            }
            let now = self.clock.now();
            if let Some(set) = self.load().await {
                self.retime(&mut slots, &set, now);
            }
            self.round(&mut slots, now);
            self.publish(&slots);
            let now = self.clock.now();
            let next = slots
                .iter()
                .filter(|s| s.enabled)
                .filter_map(|s| s.fire)
                .min();
            let wait = next.map_or(IDLE, |t| (t - now).to_std().unwrap_or(Duration::ZERO));
            tokio::select! {
                _ = stop.changed() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        for slot in &mut slots {
            if let Some(h) = slot.running.take() {
                h.abort();
            }
        }
        tracing::info!("maintenance scheduler stopped");
    }

    async fn load(&mut self) -> Option<Arc<ManifestSet>> {
        let loaded = match &self.manifests {
            Manifests::Fixed(set) => Ok((**set).clone()),
            Manifests::Dir(dir) => match git::head_commit(dir).await {
                Some(commit) => match git::committed_files(dir, &commit).await {
                    Ok(files) => load_files(&files),
                    Err(_) => load_dir(dir),
                },
                None => load_dir(dir),
            },
        };
        match loaded {
            Ok(set) => {
                if self.last_valid.as_deref() != Some(&set) {
                    self.last_valid = Some(Arc::new(set));
                }
            }
            Err(e) => tracing::warn!(
                errors = e.diagnostics.len(),
                "maintenance: manifest set rejected; keeping the last valid schedule"
            ),
        }
        self.last_valid.clone()
    }

    /// Create or re-time the slots from the set's schedule; a slot whose timing did not change
    /// keeps its due time.
    fn retime(&mut self, slots: &mut Vec<Slot>, set: &ManifestSet, now: DateTime<Utc>) {
        let default = MaintenanceScheduleSpec::default();
        let spec = set.schedules.first().map_or(&default, |m| &m.spec);
        for check in SCHEDULED {
            let t = spec.checks.timing(check);
            let (mut every, jitter, enabled) = (t.every(check), t.jitter(check), t.enabled);
            if check == CheckName::CertExpiry
                && matches!(every, Every::Interval(i) if i > CERT_TICK)
            {
                every = Every::Interval(CERT_TICK);
            }
            match slots.iter_mut().find(|s| s.check == check) {
                Some(s) if s.every == every && s.jitter == jitter && s.enabled == enabled => {}
                Some(s) => {
                    s.every = every;
                    s.jitter = jitter;
                    s.enabled = enabled;
                    s.base = None;
                }
                None => slots.push(Slot {
                    check,
                    enabled,
                    every,
                    jitter,
                    base: None,
                    fire: None,
                    running: None,
                }),
            }
        }
        for s in slots.iter_mut().filter(|s| s.base.is_none()) {
            s.base = first_due(&s.every, now);
            s.fire = s.base.map(|b| b + self.rng.upto(s.jitter));
        }
    }

    /// Start (or skip) every check that is due at `now`.
    fn round(&mut self, slots: &mut [Slot], now: DateTime<Utc>) {
        let Some(set) = self.last_valid.clone() else {
            return;
        };
        for s in slots.iter_mut().filter(|s| s.enabled) {
            let (Some(base), Some(fire)) = (s.base, s.fire) else {
                continue;
            };
            if fire > now {
                continue;
            }
            let busy = s.running.as_ref().is_some_and(|h| !h.is_finished());
            let Some((next, missed)) = advance(&s.every, base, now) else {
                s.base = None;
                s.fire = None;
                continue;
            };
            if busy {
                tracing::warn!(
                    check = s.check.as_str(),
                    "previous run still going: this run is skipped"
                );
            } else {
                s.running = Some(self.spawn(s.check, set.clone()));
            }
            let skipped = missed + u64::from(busy);
            if skipped > 0 {
                let mut status = self.lock();
                let e = status.entry(s.check);
                e.skipped += skipped;
                e.last_skipped_at = Some(now);
                if missed > 0 {
                    tracing::warn!(
                        check = s.check.as_str(),
                        missed,
                        "due runs missed while opsctl could not run them: coalesced into one"
                    );
                }
            }
            s.base = Some(next);
            s.fire = Some(next + self.rng.upto(s.jitter));
        }
    }

    fn spawn(&self, check: CheckName, set: Arc<ManifestSet>) -> JoinHandle<()> {
        let maintenance = self.maintenance.clone();
        let status = self.status.clone();
        let clock = self.clock.clone();
        let state_dir = self.state_dir.clone();
        {
            let mut s = self.lock();
            let e = s.entry(check);
            e.runs += 1;
            e.running = true;
            e.last_started_at = Some(clock.now());
        }
        let span = tracing::info_span!("maintenance", check = check.as_str());
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let started = tokio::time::Instant::now();
                let results = maintenance.run(check, &set).await;
                let mut s = status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = clock.now();
                s.updated_at = now;
                let e = s.entry(check);
                e.running = false;
                e.last_finished_at = Some(now);
                e.last_duration_ms =
                    Some(u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX));
                e.results = results;
                if let Some(dir) = &state_dir
                    && let Err(err) = s.save(dir)
                {
                    tracing::warn!(error = %err, "could not write the maintenance status");
                }
            },
            span,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MaintenanceStatus> {
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Copy the slots' schedules into the status and write it.
    fn publish(&self, slots: &[Slot]) {
        let mut status = self.lock();
        status.updated_at = self.clock.now();
        for s in slots {
            let e = status.entry(s.check);
            e.enabled = s.enabled;
            e.schedule = s.describe();
            e.next_run = if s.enabled { s.fire } else { None };
        }
        if let Some(dir) = &self.state_dir
            && let Err(err) = status.save(dir)
        {
            tracing::warn!(error = %err, "could not write the maintenance status");
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, h, m, 0).unwrap()
    }

    #[test]
    fn interval_runs_keep_a_fixed_rate_and_coalesce_missed_ones() {
        let every = Every::Interval(Duration::from_secs(300));
        // Fired with jitter at 12:01: next due 12:05, nothing missed.
        assert_eq!(advance(&every, t(12, 0), t(12, 1)), Some((t(12, 5), 0)));
        // The process stalled until 12:17: due 12:05, 12:10, 12:15 missed → next 12:20.
        assert_eq!(advance(&every, t(12, 0), t(12, 17)), Some((t(12, 20), 3)));
    }

    #[test]
    fn cron_runs_take_the_next_occurrence_in_utc() {
        let every = Every::Cron("0 6 * * *".to_owned().try_into().unwrap());
        assert_eq!(
            first_due(&every, t(12, 0)),
            Some(Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap())
        );
        let base = Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap();
        let (next, missed) = advance(&every, base, base).unwrap();
        assert_eq!(
            (next, missed),
            (Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap(), 0)
        );
        // Three days asleep: two occurrences missed.
        let (next, missed) = advance(
            &every,
            base,
            base + TimeDelta::days(2) + TimeDelta::hours(1),
        )
        .unwrap();
        assert_eq!(
            (next, missed),
            (Utc.with_ymd_and_hms(2026, 12, 3, 6, 0, 0).unwrap(), 2)
        );
    }

    #[test]
    fn jitter_stays_within_its_bound() {
        let mut rng = Rng(42);
        let max = Duration::from_secs(30);
        let draws: Vec<TimeDelta> = (0..1000).map(|_| rng.upto(max)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= TimeDelta::zero() && *d <= TimeDelta::seconds(30))
        );
        assert!(
            draws.iter().any(|d| *d > TimeDelta::seconds(20)),
            "spread over the range"
        );
        assert_eq!(Rng(1).upto(Duration::ZERO), TimeDelta::zero());
    }
}
