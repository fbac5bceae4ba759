//! One read of Oban's `oban_jobs` table for the watched queues: how many jobs are `available`
//! and `executing`, and the oldest executing ones with their ids and start times.
//!
//! Read-only: one `SELECT`, in a session that is itself read-only (see [`super::connect`]).
//!
//! The schema is Oban's (`oban-bg/oban`, `lib/oban/migrations/postgres/v01.ex` onwards):
//! `id bigserial`, `state oban_job_state` (an enum: `available`, `scheduled`, `executing`,
//! `retryable`, `completed`, `discarded`, and `cancelled` from later migrations), `queue text`,
//! `attempted_at timestamp without time zone` holding UTC. The states are compared with
//! literals (`state = 'executing'`), which PostgreSQL reads as the column's own type: that
//! works for the enum and for a plain text column, and keeps Oban's
//! `(state, queue, priority, scheduled_at, id)` index usable, where `state::text` would not.
//! The table is found through the session's `search_path` (Oban's default prefix is
//! `public`; for another prefix, add `options=-c%20search_path%3D<prefix>` to the URL).

use chrono::DateTime;
use sqlx::PgConnection;

use opsctl_controllers::drain::{ExecutingJob, Observation};

/// At most this many executing jobs are listed per observation (oldest first). More are
/// counted but not listed; see `opsctl_controllers::drain::judge` for why that only errs towards waiting.
pub(super) const LISTED_MAX: i64 = 200;

/// One statement, so the counts and the listed jobs come from the same snapshot. Every row
/// carries the counts; the `LEFT JOIN` yields one row with NULL job columns when nothing is
/// executing. `extract(epoch FROM timestamp)` reads a zoneless timestamp as UTC, as Oban
/// writes it (and gives the true instant for a `timestamptz`).
const SQL: &str = "\
SELECT c.available, c.executing, e.id, e.queue, e.attempted_at_us
FROM (
    SELECT count(*) FILTER (WHERE state = 'available') AS available,
           count(*) FILTER (WHERE state = 'executing') AS executing
    FROM oban_jobs
    WHERE state IN ('available', 'executing') AND queue = ANY($1)
) AS c
LEFT JOIN LATERAL (
    SELECT id, queue, (extract(epoch FROM attempted_at) * 1000000)::int8 AS attempted_at_us
    FROM oban_jobs
    WHERE state = 'executing' AND queue = ANY($1)
    ORDER BY attempted_at ASC NULLS LAST, id
    LIMIT $2
) AS e ON true";

type Row = (i64, i64, Option<i64>, Option<String>, Option<i64>);

/// Read the watched queues once.
///
/// # Errors
///
/// The driver's error, unchanged: the caller scrubs it (it may name the server).
pub(super) async fn observe(
    conn: &mut PgConnection,
    queues: &[String],
) -> Result<Observation, sqlx::Error> {
    // Not persistent: PostgreSQL's unnamed statement, so no named prepared statement is left
    // in the session, and the read also works through PgBouncer in transaction mode.
    let rows: Vec<Row> = sqlx::query_as(SQL)
        .persistent(false)
        .bind(queues)
        .bind(LISTED_MAX)
        .fetch_all(conn)
        .await?;
    let mut seen = Observation::default();
    for (available, executing, id, queue, attempted_at_us) in rows {
        seen.available = u64::try_from(available).unwrap_or(0);
        seen.executing = u64::try_from(executing).unwrap_or(0);
        if let Some(id) = id {
            seen.executing_jobs.push(ExecutingJob {
                id,
                queue: queue.unwrap_or_default(),
                attempted_at: attempted_at_us.and_then(DateTime::from_timestamp_micros),
            });
        }
    }
    Ok(seen)
}
