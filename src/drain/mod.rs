//! The deploy's `Drain` stage for Oban (DESIGN.md §5, issue #4, case BUG-18): before any
//! machine is replaced, wait until the app's Oban queues have no job `executing` or
//! `available`, so the deploy does not kill jobs mid-run and strand them in `executing`.
//!
//! [`drain_oban`] polls the app's PostgreSQL (`oban_jobs`) every [`DrainRequest::poll`]
//! and ends as one of:
//! - [`DrainOutcome::Drained`]: nothing left to wait for. Jobs that had already been
//!   `executing` for longer than [`DrainRequest::stranded_after`] when the drain began are not
//!   waited for (a killed node left them there; they will not finish by waiting) but listed as
//!   `stranded`: a finding for the record.
//! - [`DrainOutcome::TimedOut`]: jobs still running or waiting at [`DrainRequest::timeout`]
//!   (default 5 min). The deploy goes on with a warning record carrying the counts.
//! - [`DrainOutcome::Stopped`]: opsctl was asked to stop; the deploy must not go on.
//! - [`DrainError`]: the database could not be read. That is *unknown*, never "drained":
//!   the caller decides whether to deploy anyway.
//!
//! What it does not do: pause queues, cancel or rescue jobs, or write anything. The session is
//! read-only (`default_transaction_read_only=on`). Stranded jobs are Oban's to rescue (its
//! `Lifeline` plugin) or a human's. Nodes are not compared with `attempted_by`: a job that
//! legitimately runs longer than `stranded_after` is reported as stranded, so set it above the
//! app's longest job.
//!
//! Inputs: `spec.deploy.drain.oban` from the manifest ([`DrainRequest::from_env`]), the
//! database URL (a [`Secret`], never logged or echoed in an error, see `connect.rs`), the
//! runtime's [`Clock`] and stop signal. The decision itself is a pure function, `opsctl_controllers::drain::judge`.
//! More in docs/drain.md.

pub(crate) mod connect;
mod observe;

use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_crds::flyapp::ObanDrain;
use sqlx::PgConnection;
use tokio::sync::watch;

pub use self::connect::Stage;
use self::connect::{Target, timed_out};
use crate::runtime::clock::Clock;
use crate::secret::Secret;
pub use opsctl_controllers::drain::{DrainOutcome, StrandedJob};
use opsctl_controllers::drain::{Limits, Next, Observation, age, judge};

/// What to drain, and how long to wait.
#[derive(Debug, Clone)]
pub struct DrainRequest {
    /// PostgreSQL URL of the app's database (`postgres://user:password@host:port/db`), where
    /// Oban keeps `oban_jobs`. No TLS: use `sslmode=disable` (Fly Postgres inside 6PN) or leave
    /// `sslmode` out. For an Oban prefix other than `public`, add
    /// `options=-c%20search_path%3D<prefix>`.
    pub database_url: Secret,
    /// Oban queue names (`oban_jobs.queue`), e.g. `["analysis"]`. At least one.
    pub queues: Vec<String>,
    /// Stop waiting this long after the start, measured on the injected clock. The manifest's
    /// default is 5 min (`spec.deploy.drain.oban.timeout`).
    pub timeout: Duration,
    /// An `executing` job whose attempt began more than this before the drain started
    /// (`attempted_at`, UTC, versus the injected clock) is stranded: reported, not waited for.
    /// A job younger than that at the start is waited for, up to `timeout`, however old it
    /// grows meanwhile. [`Self::from_env`] uses `timeout`: a job already running longer than a
    /// whole drain window is not expected to finish in the next one.
    pub stranded_after: Duration,
    /// Pause between two reads. Default [`Self::DEFAULT_POLL`]; values under
    /// [`Self::MIN_POLL`] are raised to it.
    pub poll: Duration,
}

impl DrainRequest {
    /// Default pause between reads: one indexed `SELECT` every 2 s.
    pub const DEFAULT_POLL: Duration = Duration::from_secs(2);
    /// Shortest pause between reads, so a zero `poll` does not hammer the database.
    pub const MIN_POLL: Duration = Duration::from_millis(10);

    /// The request for a manifest's `spec.deploy.drain.oban`, reading the URL from the
    /// environment variable it names (`databaseUrlEnv`). `stranded_after` = `timeout`, `poll`
    /// = [`Self::DEFAULT_POLL`].
    ///
    /// # Errors
    ///
    /// [`DrainError::NoUrl`] when the variable is unset, empty or not UTF-8.
    pub fn from_env(spec: &ObanDrain) -> Result<Self, DrainError> {
        let url = std::env::var(&spec.database_url_env)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| DrainError::NoUrl {
                env: spec.database_url_env.clone(),
            })?;
        Ok(Self::new(spec, Secret::new(url)))
    }

    /// The request for a manifest's `spec.deploy.drain.oban` with the URL given.
    pub fn new(spec: &ObanDrain, database_url: Secret) -> Self {
        let timeout = spec.timeout.get();
        Self {
            database_url,
            queues: spec.queues.clone(),
            timeout,
            stranded_after: timeout,
            poll: Self::DEFAULT_POLL,
        }
    }

    /// How long one connect or one read may take: the timeout, within [1 s, 10 s].
    fn attempt_timeout(&self) -> Duration {
        self.timeout
            .clamp(Duration::from_secs(1), Duration::from_secs(10))
    }
}

/// Why the drain could not tell. None of these means "drained"; the caller decides whether to
/// deploy anyway. No message contains the database URL or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    /// The request names no queue (the manifest requires one: an opsctl bug).
    #[error("no Oban queue to drain")]
    NoQueues,
    /// The variable that should hold the URL is unset or empty: configuration to fix.
    #[error("the Oban database URL variable {env} is not set")]
    NoUrl {
        /// The variable's name (`databaseUrlEnv`).
        env: String,
    },
    /// The URL cannot be used: configuration to fix.
    #[error("the Oban database URL is not usable: {reason}")]
    InvalidUrl {
        /// What is wrong, without the URL.
        reason: String,
    },
    /// The database could not be reached, refused the login, or did not answer: retry later,
    /// or deploy with the queues' state unknown.
    #[error("the Oban database is unavailable ({stage}): {reason}{}", sqlstate_suffix(.sqlstate))]
    Unavailable {
        /// Connecting or reading.
        stage: Stage,
        /// What happened, scrubbed of the URL and its parts.
        reason: String,
        /// PostgreSQL's SQLSTATE when the server answered with an error (`28P01`: wrong
        /// password). `None`: no answer, or not a server error.
        sqlstate: Option<String>,
    },
    /// The database answered but has no usable `oban_jobs` (wrong database, Oban not
    /// installed, or an Oban prefix not on the `search_path`): configuration to fix.
    #[error("no usable Oban jobs table: {reason}{}", sqlstate_suffix(.sqlstate))]
    NotOban {
        /// What is missing, scrubbed of the URL and its parts.
        reason: String,
        /// PostgreSQL's SQLSTATE (`42P01`: no such table).
        sqlstate: Option<String>,
    },
}

fn sqlstate_suffix(sqlstate: &Option<String>) -> String {
    sqlstate
        .as_deref()
        .map(|s| format!(" [SQLSTATE {s}]"))
        .unwrap_or_default()
}

/// Wait until the Oban queues in `req` are drained, `req.timeout` passes, or `stop` turns true.
///
/// Reads `oban_jobs` at once, then every `req.poll`, through one read-only session that is
/// reopened if it breaks. "Drained" means no job in state `available` and none in `executing`
/// except stranded ones (see [`DrainRequest::stranded_after`]); `scheduled` and `retryable`
/// jobs are not waited for (they run later, on the new release). Time decisions use `clock`
/// only; the pauses are real (tokio) sleeps, cut short by the timeout and by `stop`. Each
/// connect and read is bounded by the timeout clamped to [1 s, 10 s], on the server too
/// (`statement_timeout`).
///
/// Logs each read at DEBUG, the end at INFO (drained) or WARN (timed out, stranded jobs),
/// with the queues and counts and never the URL.
///
/// # Errors
///
/// - [`DrainError::NoQueues`] for an empty `req.queues`; [`DrainError::InvalidUrl`] for a URL
///   that cannot be used (checked before any connection).
/// - [`DrainError::Unavailable`] when the first read fails (unreachable, login refused, no
///   answer), or when reads keep failing until the timeout after at least one succeeded.
/// - [`DrainError::NotOban`] when the database has no usable `oban_jobs`.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
/// use opsctl::drain::{DrainOutcome, DrainRequest, drain_oban};
/// use opsctl::runtime::clock::SystemClock;
/// use opsctl::secret::Secret;
///
/// # async fn run() -> Result<(), opsctl::drain::DrainError> {
/// let req = DrainRequest {
///     database_url: Secret::new("postgres://lei@lei-db.flycast:5432/lei?sslmode=disable"),
///     queues: vec!["analysis".into()],
///     timeout: Duration::from_secs(300),
///     stranded_after: Duration::from_secs(300),
///     poll: DrainRequest::DEFAULT_POLL,
/// };
/// let (_stop_tx, stop) = tokio::sync::watch::channel(false);
/// match drain_oban(&req, &SystemClock, stop).await? {
///     DrainOutcome::Stopped { .. } => { /* do not deploy */ }
///     outcome => println!("drain: {outcome}"), // record it, then deploy
/// }
/// # Ok(())
/// # }
/// ```
pub async fn drain_oban(
    req: &DrainRequest,
    clock: &dyn Clock,
    mut stop: watch::Receiver<bool>,
) -> Result<DrainOutcome, DrainError> {
    if req.queues.is_empty() {
        return Err(DrainError::NoQueues);
    }
    let within = req.attempt_timeout();
    let target = Target::parse(&req.database_url, within)?;
    let limits = Limits {
        timeout: req.timeout,
        stranded_after: req.stranded_after,
    };
    let queues = req.queues.join(",");
    let started = clock.now();
    let mut conn: Option<PgConnection> = None;
    let mut read_once = false;
    loop {
        if *stop.borrow_and_update() {
            return Ok(stopped(started, clock));
        }
        let read = tokio::select! {
            read = read(&target, &mut conn, &req.queues, within) => read,
            () = stop_requested(&mut stop) => return Ok(stopped(started, clock)),
        };
        let now = clock.now();
        match read {
            Ok(seen) => {
                read_once = true;
                match judge(&seen, started, now, limits) {
                    Next::Done(outcome) => {
                        report(&queues, &outcome);
                        return Ok(outcome);
                    }
                    Next::Poll { waiting_for } => tracing::debug!(
                        queues,
                        available = seen.available,
                        executing = seen.executing,
                        waiting_for,
                        "Oban drain: waiting"
                    ),
                }
            }
            Err(err @ DrainError::Unavailable { .. })
                if read_once && age(started, now) < req.timeout =>
            {
                tracing::warn!(queues, error = %err, "Oban drain: read failed, retrying");
            }
            Err(err) => return Err(err),
        }
        let remaining = req.timeout.saturating_sub(age(started, now));
        let pause = req.poll.max(DrainRequest::MIN_POLL).min(remaining);
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = stop_requested(&mut stop) => return Ok(stopped(started, clock)),
        }
    }
}

/// One read, (re)connecting first when there is no session. A failed read drops the session.
async fn read(
    target: &Target,
    conn: &mut Option<PgConnection>,
    queues: &[String],
    within: Duration,
) -> Result<Observation, DrainError> {
    let session = match conn {
        Some(session) => session,
        None => conn.insert(target.connect(within).await?),
    };
    let result = match tokio::time::timeout(within, observe::observe(session, queues)).await {
        Ok(Ok(seen)) => return Ok(seen),
        Ok(Err(e)) => Err(target.classify(&e, Stage::Query)),
        Err(_) => Err(timed_out(Stage::Query, within)),
    };
    *conn = None;
    result
}

/// Resolves when `stop` is (or becomes) true; never, once the sender is gone.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|&stopping| stopping).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn stopped(started: DateTime<Utc>, clock: &dyn Clock) -> DrainOutcome {
    DrainOutcome::Stopped {
        waited: age(started, clock.now()),
    }
}

fn report(queues: &str, outcome: &DrainOutcome) {
    let stranded: Vec<i64> = outcome.stranded().iter().map(|j| j.id).collect();
    match outcome {
        DrainOutcome::Drained { waited, .. } if stranded.is_empty() => tracing::info!(
            queues,
            waited_ms = waited.as_millis() as u64,
            "Oban queues drained"
        ),
        DrainOutcome::Drained { waited, .. } => tracing::warn!(
            queues,
            waited_ms = waited.as_millis() as u64,
            stranded = ?stranded,
            "Oban queues drained, but jobs are stranded in executing"
        ),
        DrainOutcome::TimedOut {
            executing,
            available,
            ..
        } => tracing::warn!(
            queues,
            executing,
            available,
            stranded = ?stranded,
            "Oban drain timed out; deploying anyway"
        ),
        DrainOutcome::Stopped { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_manifest_uses_the_timeout_for_strandedness() {
        let spec = ObanDrain {
            database_url_env: "LEI_DATABASE_URL".into(),
            queues: vec!["analysis".into()],
            timeout: opsctl_crds::DurationStr::from_secs(300),
        };
        let req = DrainRequest::new(&spec, Secret::new("postgres://x"));
        assert_eq!(req.timeout, Duration::from_secs(300));
        assert_eq!(req.stranded_after, Duration::from_secs(300));
        assert_eq!(req.poll, DrainRequest::DEFAULT_POLL);
        assert_eq!(req.attempt_timeout(), Duration::from_secs(10));
        assert_eq!(format!("{req:?}").matches("postgres").count(), 0);
    }

    #[test]
    fn a_missing_url_variable_is_named() {
        let spec = ObanDrain {
            database_url_env: "OPSCTL_DRAIN_TEST_SURELY_UNSET_VARIABLE".into(),
            queues: vec!["analysis".into()],
            timeout: opsctl_crds::DurationStr::from_secs(300),
        };
        let err = DrainRequest::from_env(&spec).expect_err("unset");
        assert_eq!(
            err.to_string(),
            "the Oban database URL variable OPSCTL_DRAIN_TEST_SURELY_UNSET_VARIABLE is not set"
        );
    }

    #[test]
    fn outcome_lines() {
        let stranded = vec![StrandedJob {
            id: 101,
            queue: "default".into(),
            attempted_at: DateTime::from_timestamp(0, 0).expect("epoch"),
            age: Duration::from_secs(1500),
        }];
        let timed_out = DrainOutcome::TimedOut {
            waited: Duration::from_secs(300),
            executing: 3,
            available: 120,
            oldest_executing_age: Some(Duration::from_secs(1500)),
            stranded,
        };
        assert_eq!(
            timed_out.to_string(),
            "timed out after 300.0s: 3 executing (oldest 1500.0s), 120 available; \
             1 stranded (ids 101)"
        );
        let drained = DrainOutcome::Drained {
            waited: Duration::from_millis(1200),
            stranded: vec![],
        };
        assert_eq!(drained.to_string(), "drained after 1.2s");
    }

    #[test]
    fn unavailable_names_its_sqlstate() {
        let err = DrainError::Unavailable {
            stage: Stage::Connect,
            reason: "authentication failed (wrong password?)".into(),
            sqlstate: Some("28P01".into()),
        };
        assert_eq!(
            err.to_string(),
            "the Oban database is unavailable (connect): authentication failed (wrong \
             password?) [SQLSTATE 28P01]"
        );
    }
}
