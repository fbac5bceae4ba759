//! The deploy's `Drain` decision (DESIGN.md §5, issue #4, case BUG-18), as a pure function:
//! given one observation of the watched Oban queues, when the drain started and `now`, is it
//! drained, timed out, or still waiting?
//!
//! No I/O and no clock reads: the runtime (`opsctl::drain::drain_oban`) reads `oban_jobs`,
//! calls [`judge`], and sleeps between reads. Its outcome, [`DrainOutcome`], goes into the
//! deploy record (docs/drain.md).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// One look at `oban_jobs` for the watched queues, taken in a single statement (one snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// Jobs in state `available` (ready to run, not yet picked up).
    pub available: u64,
    /// Jobs in state `executing`, all of them (including any not listed in `executing_jobs`).
    pub executing: u64,
    /// The oldest executing jobs, oldest first, at most the runtime's listing limit.
    pub executing_jobs: Vec<ExecutingJob>,
}

/// A job in state `executing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutingJob {
    /// `oban_jobs.id`.
    pub id: i64,
    /// `oban_jobs.queue`.
    pub queue: String,
    /// `oban_jobs.attempted_at` (UTC): when the running attempt started. `None` when the row
    /// has none (not something Oban writes for an executing job); such a job is never called
    /// stranded, so it is waited for.
    pub attempted_at: Option<DateTime<Utc>>,
}

/// The thresholds, from the runtime's `DrainRequest`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Give up waiting this long after the start.
    pub timeout: Duration,
    /// An executing job whose attempt had been running longer than this when the drain
    /// started is stranded.
    pub stranded_after: Duration,
}

/// What to do after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Keep waiting; poll again.
    Poll {
        /// Jobs still waited for: `available` + executing jobs that are not stranded.
        waiting_for: u64,
    },
    /// The drain is over.
    Done(DrainOutcome),
}

/// Decide after one observation.
///
/// Drained when no job is `available` and every `executing` job is stranded: its attempt began
/// more than `stranded_after` before the drain *started*. Such a job was most likely left
/// behind by a node killed mid-job (BUG-18) and will not finish by waiting, so it is reported,
/// not waited for. A job that was younger than that at the start is waited for, up to the
/// timeout, however old it grows meanwhile: it may be running, and the drain exists so that it
/// can finish. Otherwise timed out once `now - started >= timeout`, else poll again. A `now`
/// earlier than `started` (a clock step back) counts as no time waited.
pub fn judge(
    seen: &Observation,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
    limits: Limits,
) -> Next {
    let waited = age(started, now);
    let stranded: Vec<StrandedJob> = seen
        .executing_jobs
        .iter()
        .filter_map(|job| {
            let attempted_at = job.attempted_at?;
            (age(attempted_at, started) > limits.stranded_after).then(|| StrandedJob {
                id: job.id,
                queue: job.queue.clone(),
                attempted_at,
                age: age(attempted_at, now),
            })
        })
        .collect();
    let live_executing = seen.executing.saturating_sub(stranded.len() as u64);
    let waiting_for = seen.available.saturating_add(live_executing);
    if waiting_for == 0 {
        return Next::Done(DrainOutcome::Drained { waited, stranded });
    }
    if waited >= limits.timeout {
        let oldest_executing_age = seen
            .executing_jobs
            .iter()
            .filter_map(|job| job.attempted_at)
            .min()
            .map(|oldest| age(oldest, now));
        return Next::Done(DrainOutcome::TimedOut {
            waited,
            executing: seen.executing,
            available: seen.available,
            oldest_executing_age,
            stranded,
        });
    }
    Next::Poll { waiting_for }
}

/// `now - since`, or zero when `since` is in the future (clock skew between opsctl and the
/// database, or a clock step back).
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
}

/// How a drain ended. Every variant but `Stopped` lets the deploy go on; `TimedOut` and a
/// non-empty `stranded` are warnings to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainOutcome {
    /// No job `available` and no `executing` job other than stranded ones.
    Drained {
        /// From the start to the read that showed it, on the injected clock.
        waited: Duration,
        /// Executing jobs older than `stranded_after`, oldest first. Empty: none.
        stranded: Vec<StrandedJob>,
    },
    /// Still jobs to wait for when `timeout` had passed. The counts are from the last read.
    TimedOut {
        /// From the start to the last read, on the injected clock (at least `timeout`).
        waited: Duration,
        /// Jobs in state `executing` in the queues, stranded ones included.
        executing: u64,
        /// Jobs in state `available` in the queues.
        available: u64,
        /// Age of the oldest executing job's attempt. `None`: nothing executing (or no
        /// `attempted_at` on any).
        oldest_executing_age: Option<Duration>,
        /// Executing jobs older than `stranded_after`, oldest first.
        stranded: Vec<StrandedJob>,
    },
    /// opsctl was asked to stop before the drain ended. The deploy must not go on.
    Stopped {
        /// From the start to the stop request, on the injected clock.
        waited: Duration,
    },
}

impl DrainOutcome {
    /// The stranded jobs found (empty for `Stopped`).
    pub fn stranded(&self) -> &[StrandedJob] {
        match self {
            Self::Drained { stranded, .. } | Self::TimedOut { stranded, .. } => stranded,
            Self::Stopped { .. } => &[],
        }
    }
}

impl fmt::Display for DrainOutcome {
    /// One line for a record or a log: `drained after 1.2s`, `timed out after 300.0s: 3
    /// executing (oldest 1800.0s), 120 available; 2 stranded (ids 101, 102)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Drained { waited, .. } => write!(f, "drained after {waited:.1?}")?,
            Self::TimedOut {
                waited,
                executing,
                available,
                oldest_executing_age,
                ..
            } => {
                write!(f, "timed out after {waited:.1?}: {executing} executing")?;
                if let Some(oldest) = oldest_executing_age {
                    write!(f, " (oldest {oldest:.1?})")?;
                }
                write!(f, ", {available} available")?;
            }
            Self::Stopped { waited } => return write!(f, "stopped after {waited:.1?}"),
        }
        let stranded = self.stranded();
        if !stranded.is_empty() {
            let ids: Vec<String> = stranded.iter().map(|j| j.id.to_string()).collect();
            write!(f, "; {} stranded (ids {})", stranded.len(), ids.join(", "))?;
        }
        Ok(())
    }
}

/// An `executing` job whose attempt had been running for more than `stranded_after` when the
/// drain started (BUG-18: most likely left behind by a node killed mid-job; Oban's `Lifeline`
/// plugin rescues such jobs after its `rescue_after`, 60 min by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrandedJob {
    /// `oban_jobs.id`.
    pub id: i64,
    /// `oban_jobs.queue`.
    pub queue: String,
    /// `oban_jobs.attempted_at`, UTC.
    pub attempted_at: DateTime<Utc>,
    /// Injected clock's `now` minus `attempted_at`, at the read that found it.
    pub age: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_900_000_000 + secs, 0).expect("in range")
    }

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(300),
        stranded_after: Duration::from_secs(300),
    };

    fn executing(id: i64, attempted_at: Option<DateTime<Utc>>) -> ExecutingJob {
        ExecutingJob {
            id,
            queue: "analysis".into(),
            attempted_at,
        }
    }

    #[test]
    fn empty_queues_are_drained_at_once() {
        let next = judge(&Observation::default(), t(0), t(0), LIMITS);
        assert_eq!(
            next,
            Next::Done(DrainOutcome::Drained {
                waited: Duration::ZERO,
                stranded: vec![]
            })
        );
    }

    #[test]
    fn a_running_job_is_waited_for_until_the_timeout() {
        let seen = Observation {
            available: 0,
            executing: 1,
            executing_jobs: vec![executing(7, Some(t(-10)))],
        };
        assert_eq!(
            judge(&seen, t(0), t(299), LIMITS),
            Next::Poll { waiting_for: 1 }
        );
        // At the timeout the job is 310 s old, but it was 10 s old when the drain started:
        // a slow job, not a stranded one.
        let Next::Done(DrainOutcome::TimedOut {
            waited,
            executing,
            oldest_executing_age,
            stranded,
            ..
        }) = judge(&seen, t(0), t(300), LIMITS)
        else {
            panic!("expected a timeout");
        };
        assert_eq!(waited, Duration::from_secs(300));
        assert_eq!(executing, 1);
        assert_eq!(oldest_executing_age, Some(Duration::from_secs(310)));
        assert!(stranded.is_empty());
    }

    #[test]
    fn available_jobs_time_out_with_counts_and_the_oldest_age() {
        let seen = Observation {
            available: 120,
            executing: 3,
            executing_jobs: vec![
                executing(101, Some(t(-1500))),
                executing(102, Some(t(-1500))),
                executing(103, Some(t(-5))),
            ],
        };
        assert_eq!(
            judge(&seen, t(0), t(10), LIMITS),
            Next::Poll { waiting_for: 121 }
        );
        let Next::Done(DrainOutcome::TimedOut {
            waited,
            executing,
            available,
            oldest_executing_age,
            stranded,
        }) = judge(&seen, t(0), t(300), LIMITS)
        else {
            panic!("expected a timeout");
        };
        assert_eq!(waited, Duration::from_secs(300));
        assert_eq!((executing, available), (3, 120));
        assert_eq!(oldest_executing_age, Some(Duration::from_secs(1800)));
        let ids: Vec<i64> = stranded.iter().map(|j| j.id).collect();
        assert_eq!(ids, [101, 102]);
    }

    #[test]
    fn only_stranded_jobs_left_is_drained_with_a_finding() {
        // BUG-18: two jobs left `executing` 25 minutes ago by a node that no longer exists.
        let seen = Observation {
            available: 0,
            executing: 2,
            executing_jobs: vec![
                executing(101, Some(t(-1500))),
                executing(102, Some(t(-1500))),
            ],
        };
        let Next::Done(DrainOutcome::Drained { waited, stranded }) =
            judge(&seen, t(0), t(0), LIMITS)
        else {
            panic!("expected drained");
        };
        assert_eq!(waited, Duration::ZERO);
        assert_eq!(stranded.len(), 2);
    }

    #[test]
    fn unlisted_executing_jobs_are_still_waited_for() {
        // 3 executing but only the oldest (stranded) one listed: the other two count.
        let seen = Observation {
            available: 0,
            executing: 3,
            executing_jobs: vec![executing(1, Some(t(-1000)))],
        };
        assert_eq!(
            judge(&seen, t(0), t(1), LIMITS),
            Next::Poll { waiting_for: 2 }
        );
    }

    #[test]
    fn a_job_without_attempted_at_is_never_stranded() {
        let seen = Observation {
            available: 0,
            executing: 1,
            executing_jobs: vec![executing(1, None)],
        };
        assert_eq!(
            judge(&seen, t(0), t(1), LIMITS),
            Next::Poll { waiting_for: 1 }
        );
        let Next::Done(DrainOutcome::TimedOut {
            oldest_executing_age,
            stranded,
            ..
        }) = judge(&seen, t(0), t(300), LIMITS)
        else {
            panic!("expected a timeout");
        };
        assert_eq!(oldest_executing_age, None);
        assert!(stranded.is_empty());
    }

    #[test]
    fn a_clock_step_back_counts_as_no_wait() {
        let seen = Observation {
            available: 1,
            ..Observation::default()
        };
        assert_eq!(
            judge(&seen, t(0), t(-60), LIMITS),
            Next::Poll { waiting_for: 1 }
        );
        assert_eq!(age(t(10), t(0)), Duration::ZERO);
    }
}
