//! The PostgreSQL reads of the maintenance checks: connections in use
//! (`pg_stat_activity`, `max_connections`, `superuser_reserved_connections`) and Oban's
//! `available` count per queue. Both in one read-only session, opened as the deploy's drain
//! opens its own (`crate::drain::connect`: `default_transaction_read_only=on`, a
//! `statement_timeout`, the URL a [`Secret`] scrubbed from every error), named
//! `opsctl-maintenance` in `pg_stat_activity`.
//!
//! What failed decides what the judges hear ([`Observation`]): refused connections, "too many
//! clients" and a server shutting down are positive evidence ([`Observation::Down`]); a
//! missing URL variable, our own login refused, a timeout or a missing `oban_jobs` table are
//! [`Observation::Unknown`] — never the app's fault.

use std::collections::BTreeMap;
use std::time::Duration;

use opsctl_controllers::maintenance::Observation;
use opsctl_controllers::maintenance::postgres::Connections;
use sqlx::PgConnection;

use crate::drain::DrainError;
use crate::drain::connect::{Stage, Target};
use crate::secret::Secret;

/// `application_name` of the maintenance session (visible to a DBA in `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "opsctl-maintenance";

/// Client backends only: background workers (autovacuum, WAL writer, …) do not take a slot
/// of `max_connections` for ordinary roles. Our own session counts, as it takes a slot.
const CONNECTIONS_SQL: &str = "\
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8,
       current_setting('max_connections')::int8,
       current_setting('superuser_reserved_connections')::int8";

/// `available` jobs per watched queue; queues with none have no row.
const OBAN_SQL: &str = "\
SELECT queue, count(*)::int8 FROM oban_jobs
WHERE state = 'available' AND queue = ANY($1)
GROUP BY queue";

/// Open the session for `url` within `timeout` (also the statement timeout).
async fn open(url: &Secret, timeout: Duration) -> Result<(Target, PgConnection), DrainError> {
    let target = Target::parse(url, timeout)?.labelled(APPLICATION_NAME);
    let conn = target.connect(timeout).await?;
    Ok((target, conn))
}

/// Connections in use on the server behind `url`.
pub async fn connections(
    url: Option<Secret>,
    env: &str,
    timeout: Duration,
) -> Observation<Connections> {
    let Some(url) = url else {
        return unset(env);
    };
    let read = async {
        let (target, mut conn) = open(&url, timeout).await?;
        let row: (i64, i64, i64) = sqlx::query_as(CONNECTIONS_SQL)
            .persistent(false)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| target.classify(&e, Stage::Query))?;
        Ok::<_, DrainError>(Connections {
            in_use: clamp(row.0),
            max_connections: clamp(row.1),
            superuser_reserved: clamp(row.2),
        })
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(c)) => Observation::Seen(c),
        Ok(Err(e)) => observation(&e),
        Err(_) => timed_out(timeout),
    }
}

/// `available` jobs in each of `queues` (0 for a queue with none).
pub async fn oban_available(
    url: Option<Secret>,
    env: &str,
    queues: &[String],
    timeout: Duration,
) -> Observation<BTreeMap<String, u64>> {
    let Some(url) = url else {
        return unset(env);
    };
    let read = async {
        let (target, mut conn) = open(&url, timeout).await?;
        let rows: Vec<(String, i64)> = sqlx::query_as(OBAN_SQL)
            .persistent(false)
            .bind(queues)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| target.classify(&e, Stage::Query))?;
        let mut counts: BTreeMap<String, u64> = queues.iter().map(|q| (q.clone(), 0)).collect();
        for (queue, n) in rows {
            counts.insert(queue, u64::try_from(n).unwrap_or(0));
        }
        Ok::<_, DrainError>(counts)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(c)) => Observation::Seen(c),
        Ok(Err(e)) => observation(&e),
        Err(_) => timed_out(timeout),
    }
}

fn clamp(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

fn unset<T>(env: &str) -> Observation<T> {
    Observation::Unknown {
        reason: format!("{env} is not set in opsctl's environment"),
    }
}

fn timed_out<T>(timeout: Duration) -> Observation<T> {
    Observation::Unknown {
        reason: format!("no answer within {}", opsctl_crds::DurationStr(timeout)),
    }
}

/// Sort a (scrubbed) driver error into down or unknown.
fn observation<T>(e: &DrainError) -> Observation<T> {
    let why = reason(e);
    let down = |class: &str| Observation::Down {
        class: class.to_owned(),
        reason: why.clone(),
    };
    match e {
        DrainError::Unavailable {
            sqlstate: Some(code),
            ..
        } => match code.as_str() {
            "53300" => down("too_many_connections"),
            "57P01" | "57P02" | "57P03" => down("shutting_down"),
            c if c.starts_with("08") => down("refused"),
            _ => Observation::Unknown {
                reason: why.clone(),
            },
        },
        DrainError::Unavailable {
            stage: Stage::Connect,
            reason,
            sqlstate: None,
        } if reason.to_lowercase().contains("refused") => down("refused"),
        _ => Observation::Unknown { reason: why },
    }
}

/// Words for people, without the drain's wording (the error type is shared with it).
fn reason(e: &DrainError) -> String {
    match e {
        DrainError::Unavailable {
            stage,
            reason,
            sqlstate,
        } => match sqlstate {
            Some(code) => format!("PostgreSQL {stage} failed: {reason} (SQLSTATE {code})"),
            None => format!("PostgreSQL {stage} failed: {reason}"),
        },
        DrainError::InvalidUrl { reason } => format!("the database URL is not usable: {reason}"),
        DrainError::NotOban { reason, .. } => format!("no usable oban_jobs table: {reason}"),
        other => other.to_string(),
    }
}
