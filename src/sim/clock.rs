//! The simulator's virtual clock. Durations in scenario files and the control API are the
//! manifests' [`DurationStr`] (`300ms`, `40s`, `5m`, `1h`, `2d`, `1m30s`; a bare number is an
//! error), re-exported here so `sim::clock::DurationStr` keeps working.
//!
//! Virtual now = `start` + (real time elapsed since the clock was made × `time_scale`) + the sum
//! of manual advances (`POST /__sim/advance`). Every timestamp the simulator hands out (machine
//! events, `created_at`, lease expiry, release dates) is on this clock, so a test can move a
//! 30-day window forward in one call instead of sleeping.
//!
//! This module does not sleep or schedule anything: machine state is computed lazily from
//! timestamps whenever it is read (see [`super::machine`]). The virtual clock reads real time
//! only here, from [`std::time::Instant`]; what deliberately runs on real time instead (rate
//! limits, `wait`, fault delays) uses tokio's clock, which tests can pause.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
pub use opsctl_crds::DurationStr;

/// The virtual clock. Cheap to read; shared behind the simulator's `Arc`.
#[derive(Debug)]
pub struct VirtualClock {
    real_start: Instant,
    start: DateTime<Utc>,
    time_scale: f64,
    advanced: Mutex<Duration>,
}

impl VirtualClock {
    /// A clock reading `start` now and running `time_scale` virtual seconds per real second.
    /// A scale that is not finite or not positive is treated as 1 (the scenario loader rejects
    /// such values before they get here).
    pub fn new(start: DateTime<Utc>, time_scale: f64) -> Self {
        let time_scale = if time_scale.is_finite() && time_scale > 0.0 {
            time_scale
        } else {
            1.0
        };
        Self {
            real_start: Instant::now(),
            start,
            time_scale,
            advanced: Mutex::new(Duration::ZERO),
        }
    }

    /// The current virtual time, UTC.
    pub fn now(&self) -> DateTime<Utc> {
        let real = self.real_start.elapsed().as_secs_f64() * self.time_scale;
        let scaled = chrono::Duration::microseconds((real * 1e6).min(i64::MAX as f64 / 2.0) as i64);
        let advanced = *self.advanced.lock().unwrap_or_else(|e| e.into_inner());
        self.start + scaled + to_chrono(advanced)
    }

    /// Moves virtual time forward by `by` and returns the new virtual now.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        {
            let mut advanced = self.advanced.lock().unwrap_or_else(|e| e.into_inner());
            *advanced = advanced.saturating_add(by);
        }
        self.now()
    }

    /// Virtual seconds per real second.
    pub fn time_scale(&self) -> f64 {
        self.time_scale
    }
}

/// Converts a std duration to chrono's, saturating at about 292 years.
pub fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_the_manifests_ones() {
        let ms = |s: &str| s.parse::<DurationStr>().map(|d| d.0.as_millis());
        assert_eq!(ms("300ms"), Ok(300));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert!(ms("40").is_err(), "a bare number needs a unit");
        assert!(ms("4x").is_err());
        assert_eq!(DurationStr(Duration::from_secs(300)).to_string(), "5m");
    }

    #[test]
    fn advance_moves_virtual_time() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = VirtualClock::new(start, 1.0);
        let later = clock.advance(Duration::from_secs(3600));
        assert!(later >= start + chrono::Duration::hours(1));
        assert!(later < start + chrono::Duration::hours(1) + chrono::Duration::minutes(1));
    }
}
