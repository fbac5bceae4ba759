//! The simulator's virtual clock and its duration strings.
//!
//! Virtual now = `start` + (real time elapsed since the clock was made × `time_scale`) + the sum
//! of manual advances (`POST /__sim/advance`). Every timestamp the simulator hands out (machine
//! events, `created_at`, lease expiry, release dates) is on this clock, so a test can move a
//! 30-day window forward in one call instead of sleeping.
//!
//! This module does not sleep or schedule anything: machine state is computed lazily from
//! timestamps whenever it is read (see [`super::machine`]). Real time is read only here, from
//! [`std::time::Instant`].

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// A duration written as a string with units, as in scenario files and the control API:
/// `300ms`, `40s`, `5m`, `1h`, `2d`, or a sum such as `1m30s`. A bare number is an error
/// ("add a unit").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct DurationStr(pub Duration);

impl DurationStr {
    /// Parses `text`; see the type docs for the accepted forms.
    ///
    /// # Errors
    /// A message naming the offending text when it is empty, has no unit, an unknown unit, or a
    /// number too large.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("empty duration; write e.g. 300ms, 40s, 5m".to_string());
        }
        let mut total = Duration::ZERO;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!(
                    "invalid duration {text:?}; write e.g. 300ms, 40s, 5m"
                ));
            }
            let number: f64 = rest[..digits]
                .parse()
                .map_err(|_| format!("invalid number in duration {text:?}"))?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let seconds = match unit {
                "ms" => number / 1000.0,
                "s" => number,
                "m" => number * 60.0,
                "h" => number * 3600.0,
                "d" => number * 86_400.0,
                "" => {
                    return Err(format!(
                        "duration {text:?} has no unit; add one: ms, s, m, h or d"
                    ));
                }
                other => {
                    return Err(format!(
                        "unknown unit {other:?} in duration {text:?}; use ms, s, m, h or d"
                    ));
                }
            };
            let part = Duration::try_from_secs_f64(seconds)
                .map_err(|_| format!("duration {text:?} is out of range"))?;
            total = total
                .checked_add(part)
                .ok_or_else(|| format!("duration {text:?} is out of range"))?;
        }
        Ok(Self(total))
    }
}

impl fmt::Display for DurationStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) || ms == 0 {
            write!(f, "{ms}ms")
        } else if ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

impl Serialize for DurationStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let ms = |s: &str| DurationStr::parse(s).map(|d| d.0.as_millis());
        assert_eq!(ms("300ms"), Ok(300));
        assert_eq!(ms("40s"), Ok(40_000));
        assert_eq!(ms("1m30s"), Ok(90_000));
        assert_eq!(ms("1.5s"), Ok(1500));
        assert_eq!(ms("2d"), Ok(172_800_000));
        assert!(ms("40").unwrap_err().contains("no unit"));
        assert!(ms("4x").unwrap_err().contains("unknown unit"));
        assert!(ms("").is_err());
        assert!(ms("s").is_err());
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        let show = |ms: u64| DurationStr(Duration::from_millis(ms)).to_string();
        assert_eq!(show(300), "300ms");
        assert_eq!(show(40_000), "40s");
        assert_eq!(show(300_000), "5m");
        assert_eq!(show(7_200_000), "2h");
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
