//! The clock. Every decision that depends on time takes `now` from a [`Clock`], so tests can
//! inject one; only [`SystemClock`] reads the system time.

use chrono::{DateTime, Utc};

/// A source of "now", in UTC.
pub trait Clock: Send + Sync {
    /// The current time, UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
