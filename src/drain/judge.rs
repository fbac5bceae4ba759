//! The drain's decision, as a pure function: given one observation of the watched Oban queues,
//! when the drain started and `now`, is it drained, timed out, or still waiting?
//!
//! No I/O and no clock reads: [`super::drain_oban`] observes, calls [`judge`], and sleeps. This
//! is the part that would move to `opsctl-controllers` once the deploy pipeline's `Drain` stage
//! lives there (issue #4); it is here so the drain can be reviewed as one unit.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{DrainOutcome, StrandedJob};

/// One look at `oban_jobs` for the watched queues, taken in a single statement (one snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Observation {
    /// Jobs in state `available` (ready to run, not yet picked up).
    pub available: u64,
    /// Jobs in state `executing`, all of them (including any not listed in `executing_jobs`).
    pub executing: u64,
    /// The oldest executing jobs, oldest first, at most [`super::observe::LISTED_MAX`].
    pub executing_jobs: Vec<ExecutingJob>,
}

/// A job in state `executing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ExecutingJob {
    /// `oban_jobs.id`.
    pub id: i64,
    /// `oban_jobs.queue`.
    pub queue: String,
    /// `oban_jobs.attempted_at` (UTC): when the running attempt started. `None` when the row
    /// has none (not something Oban writes for an executing job); such a job is never called
    /// stranded, so it is waited for.
    pub attempted_at: Option<DateTime<Utc>>,
}

/// The thresholds, from [`super::DrainRequest`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Give up waiting this long after the start.
    pub timeout: Duration,
    /// An executing job whose attempt had been running longer than this when the drain
    /// started is stranded.
    pub stranded_after: Duration,
}

/// What to do after an observation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Next {
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
pub(super) fn judge(
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
pub(super) fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    (now - since).to_std().unwrap_or(Duration::ZERO)
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
