//! The deploy's Oban drain (`opsctl::drain`) against the PostgreSQL that runs on this machine,
//! with a real `oban_jobs` table made by each test (issue #4; case BUG-18,
//! ../shared/cases/README.md).
//!
//! The server comes from `OPSCTL_TEST_DATABASE_URL` (`.ci/run` exports
//! `postgres://postgres@127.0.0.1:5432/test`). Without it a test prints
//! `SKIPPED: OPSCTL_TEST_DATABASE_URL not set` and passes, except under `CI=true`, where it
//! fails. Each test works in its own schema `drain_test_<ulid>` (the drain finds it through
//! `search_path` in its URL) and drops it at the end, even on panic.
//!
//! Time: the drain decides with an injected clock whose origin is far from the real date, so a
//! job's age can only come from that clock (not from the database's `now()`). The waits are
//! real but short: 50 ms polls, timeouts of at most 2 s.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use opsctl::drain::{DrainError, DrainOutcome, DrainRequest, Stage, drain_oban};
use opsctl::runtime::clock::Clock;
use opsctl::secret::Secret;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(50);

/// The test server's URL, or `None` (after saying so) when the tests should skip.
///
/// # Panics
///
/// When the variable is missing under `CI=true`: CI must run these tests.
fn database_url() -> Option<String> {
    match std::env::var("OPSCTL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "OPSCTL_TEST_DATABASE_URL is not set under CI=true: .ci/run must start \
                 PostgreSQL and export it"
            );
            // Straight to stderr: libtest captures `eprintln!`, and this must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: OPSCTL_TEST_DATABASE_URL not set"
            );
            None
        }
    }
}

/// Real time, from a fixed origin in 2031: `now()` moves, but its date is not the server's.
struct TestClock {
    origin: DateTime<Utc>,
    started: Instant,
}

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            origin: DateTime::from_timestamp(1_930_000_000, 0).expect("in range"),
            started: Instant::now(),
        })
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.origin + TimeDelta::from_std(self.started.elapsed()).expect("in range")
    }
}

/// How the test table types `state`.
#[derive(Clone, Copy)]
enum StateColumn {
    /// Oban's own enum type, `oban_job_state`.
    ObanEnum,
    /// Plain text.
    Text,
}

/// A schema with an Oban-shaped `oban_jobs`, dropped on drop.
struct Fixture {
    url: String,
    schema: String,
    conn: PgConnection,
}

impl Fixture {
    /// `None` when the tests skip (no database configured).
    async fn new(state: StateColumn) -> Option<Self> {
        let fixture = Self::empty().await?;
        let s = &fixture.schema;
        let state_type = match state {
            StateColumn::ObanEnum => format!(
                "CREATE TYPE {s}.oban_job_state AS ENUM ('available', 'scheduled', \
                 'executing', 'retryable', 'completed', 'discarded', 'cancelled');"
            ),
            StateColumn::Text => String::new(),
        };
        let state_column = match state {
            StateColumn::ObanEnum => format!("{s}.oban_job_state"),
            StateColumn::Text => "text".to_string(),
        };
        // Oban's columns as of its v12 migration (lib/oban/migrations/postgres/), minus the
        // ones the drain never reads.
        let ddl = format!(
            "{state_type}
             CREATE TABLE {s}.oban_jobs (
                 id bigserial PRIMARY KEY,
                 state {state_column} NOT NULL DEFAULT 'available',
                 queue text NOT NULL DEFAULT 'default',
                 worker text NOT NULL DEFAULT 'Lei.AnalysisWorker',
                 args jsonb NOT NULL DEFAULT '{{}}',
                 attempt integer NOT NULL DEFAULT 0,
                 max_attempts integer NOT NULL DEFAULT 20,
                 priority integer NOT NULL DEFAULT 0,
                 inserted_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now()),
                 scheduled_at timestamp without time zone NOT NULL DEFAULT timezone('UTC', now()),
                 attempted_at timestamp without time zone,
                 completed_at timestamp without time zone,
                 attempted_by text[]
             );
             CREATE INDEX ON {s}.oban_jobs (state, queue, priority, scheduled_at, id);"
        );
        let mut fixture = fixture;
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut fixture.conn)
            .await
            .expect("create oban_jobs");
        Some(fixture)
    }

    /// A schema with no `oban_jobs` at all.
    async fn empty() -> Option<Self> {
        let url = database_url()?;
        let schema = format!(
            "drain_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut conn = PgConnection::connect(&url)
            .await
            .expect("connect to OPSCTL_TEST_DATABASE_URL");
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&mut conn)
            .await
            .expect("create schema");
        Some(Self { url, schema, conn })
    }

    /// The URL the drain gets: the test server, this schema on the `search_path` (as for an
    /// Oban prefix), and the schema's name as `application_name` to find its session.
    fn drain_url(&self) -> Secret {
        let mut url = url::Url::parse(&self.url).expect("OPSCTL_TEST_DATABASE_URL is a URL");
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={}", self.schema))
            .append_pair("application_name", &self.schema);
        Secret::new(url.to_string())
    }

    fn request(&self, queues: &[&str], timeout: Duration) -> DrainRequest {
        DrainRequest {
            database_url: self.drain_url(),
            queues: queues.iter().map(|q| q.to_string()).collect(),
            timeout,
            stranded_after: timeout,
            poll: POLL,
        }
    }

    /// Insert a job; `attempted_at` is taken as UTC, as Oban writes it. `state` is a constant
    /// of the test, written as a literal so it takes the column's type (enum or text).
    async fn insert(
        &mut self,
        queue: &str,
        state: &str,
        attempted_at: Option<DateTime<Utc>>,
    ) -> i64 {
        let sql = format!(
            "INSERT INTO {}.oban_jobs (queue, state, attempted_at, attempted_by)
             VALUES ($1, '{state}', to_timestamp($2::float8 / 1000000) AT TIME ZONE 'UTC',
                     CASE WHEN $2 IS NULL THEN NULL ELSE ARRAY['lei@m7'] END)
             RETURNING id",
            self.schema
        );
        sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(queue)
            .bind(attempted_at.map(|t| t.timestamp_micros()))
            .fetch_one(&mut self.conn)
            .await
            .expect("insert job")
    }

    /// Insert a job in state `executing`, its attempt begun at `attempted_at`.
    async fn executing(&mut self, queue: &str, attempted_at: DateTime<Utc>) -> i64 {
        self.insert(queue, "executing", Some(attempted_at)).await
    }

    /// Every job's (id, state), by id: to show the drain changed nothing.
    async fn jobs(&mut self) -> Vec<(i64, String)> {
        sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, state::text FROM {}.oban_jobs ORDER BY id",
            self.schema
        )))
        .fetch_all(&mut self.conn)
        .await
        .expect("read jobs")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime, which cannot block on itself.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = PgConnection::connect(&url).await?;
                sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&mut conn)
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(_))) {
            let _ = writeln!(std::io::stderr(), "could not drop schema {}", self.schema);
        }
    }
}

/// Set a job's state from another session, as an Oban node would.
async fn set_state(url: &str, schema: &str, id: i64, state: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connect");
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE {schema}.oban_jobs SET state = '{state}' WHERE id = $1"
    )))
    .bind(id)
    .execute(&mut conn)
    .await
    .expect("update job");
}

fn no_stop() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    std::mem::forget(tx);
    rx
}

async fn drain(req: &DrainRequest, clock: &Arc<TestClock>) -> Result<DrainOutcome, DrainError> {
    drain_oban(req, clock.as_ref(), no_stop()).await
}

/// A drain of `analysis` through `url`, 2 s timeout.
fn request_to(url: String) -> DrainRequest {
    DrainRequest {
        database_url: Secret::new(url),
        queues: vec!["analysis".into()],
        timeout: Duration::from_secs(2),
        stranded_after: Duration::from_secs(2),
        poll: POLL,
    }
}

fn ago(clock: &TestClock, d: Duration) -> DateTime<Utc> {
    clock.now() - TimeDelta::from_std(d).expect("in range")
}

#[tokio::test]
async fn empty_queue_is_drained_at_once() {
    let Some(mut db) = Fixture::new(StateColumn::ObanEnum).await else {
        return;
    };
    let clock = TestClock::new();
    // Finished, scheduled and retryable jobs are not waited for.
    for state in [
        "completed",
        "scheduled",
        "retryable",
        "discarded",
        "cancelled",
    ] {
        db.insert("analysis", state, None).await;
    }
    let req = db.request(&["analysis"], Duration::from_secs(2));
    let outcome = drain(&req, &clock).await.expect("drain");
    let DrainOutcome::Drained { waited, stranded } = outcome else {
        panic!("expected drained, got {outcome:?}");
    };
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");
    assert!(stranded.is_empty());
}

#[tokio::test]
async fn executing_job_is_waited_for_until_it_completes() {
    let Some(mut db) = Fixture::new(StateColumn::ObanEnum).await else {
        return;
    };
    let clock = TestClock::new();
    let id = db
        .executing("analysis", ago(&clock, Duration::from_secs(1)))
        .await;
    let (url, schema) = (db.url.clone(), db.schema.clone());
    let finisher_clock = clock.clone();
    let finisher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let completing_from = finisher_clock.now();
        set_state(&url, &schema, id, "completed").await;
        completing_from
    });

    let req = db.request(&["analysis"], Duration::from_secs(2));
    let outcome = drain(&req, &clock).await.expect("drain");
    let returned_at = clock.now();
    let completing_from = finisher.await.expect("finisher");

    let DrainOutcome::Drained { waited, stranded } = outcome else {
        panic!("expected drained, got {outcome:?}");
    };
    assert!(stranded.is_empty());
    assert!(
        waited >= Duration::from_millis(400),
        "drained after {waited:?}, before the job completed"
    );
    assert!(
        returned_at >= completing_from,
        "returned before the job was completed"
    );
    assert_eq!(db.jobs().await, [(id, "completed".to_string())]);
}

#[tokio::test]
async fn jobs_in_other_queues_are_ignored() {
    let Some(mut db) = Fixture::new(StateColumn::ObanEnum).await else {
        return;
    };
    let clock = TestClock::new();
    db.executing("mailers", ago(&clock, Duration::from_secs(1)))
        .await;
    db.insert("default", "available", None).await;
    db.insert("analysis", "completed", None).await;
    let req = db.request(&["analysis"], Duration::from_secs(2));
    let outcome = drain(&req, &clock).await.expect("drain");
    assert!(
        matches!(outcome, DrainOutcome::Drained { ref stranded, .. } if stranded.is_empty()),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn jobs_still_there_at_the_timeout_are_counted() {
    // A plain text `state` column, as a hand-made table might have: same query, same result.
    let Some(mut db) = Fixture::new(StateColumn::Text).await else {
        return;
    };
    let clock = TestClock::new();
    db.insert("analysis", "available", None).await;
    db.insert("exports", "available", None).await;
    db.executing("analysis", ago(&clock, Duration::from_secs(2)))
        .await;
    db.insert("mailers", "available", None).await; // not watched
    let before = db.jobs().await;

    let timeout = Duration::from_millis(600);
    let req = DrainRequest {
        stranded_after: Duration::from_secs(60),
        ..db.request(&["analysis", "exports"], timeout)
    };
    let outcome = drain(&req, &clock).await.expect("drain");
    let DrainOutcome::TimedOut {
        waited,
        executing,
        available,
        oldest_executing_age,
        stranded,
    } = outcome
    else {
        panic!("expected a timeout, got {outcome:?}");
    };
    assert!(
        waited >= timeout && waited < Duration::from_secs(2),
        "waited {waited:?}"
    );
    assert_eq!((executing, available), (1, 2));
    let oldest = oldest_executing_age.expect("an executing job");
    assert!(
        oldest >= Duration::from_secs(2) + timeout,
        "oldest {oldest:?}"
    );
    assert!(oldest < Duration::from_secs(10), "oldest {oldest:?}");
    assert!(stranded.is_empty());
    assert_eq!(db.jobs().await, before, "the drain changed oban_jobs");
}

#[tokio::test]
async fn stranded_executing_job_is_reported_not_waited_for() {
    // BUG-18: a job left `executing` 25 minutes ago by a node that was killed.
    let Some(mut db) = Fixture::new(StateColumn::ObanEnum).await else {
        return;
    };
    let clock = TestClock::new();
    let stranded_id = db
        .executing("analysis", ago(&clock, Duration::from_secs(25 * 60)))
        .await;
    let before = db.jobs().await;
    let req = db.request(&["analysis"], Duration::from_secs(2));
    let outcome = drain(&req, &clock).await.expect("drain");
    let DrainOutcome::Drained { waited, stranded } = &outcome else {
        panic!("expected drained, got {outcome:?}");
    };
    assert!(*waited < Duration::from_secs(1), "waited {waited:?}");
    assert_eq!(stranded.len(), 1);
    assert_eq!(stranded[0].id, stranded_id);
    assert_eq!(stranded[0].queue, "analysis");
    assert!(
        stranded[0].age >= Duration::from_secs(25 * 60),
        "{:?}",
        stranded[0]
    );
    assert!(
        stranded[0].age < Duration::from_secs(25 * 60 + 5),
        "{:?}",
        stranded[0]
    );
    assert!(
        outcome
            .to_string()
            .contains(&format!("1 stranded (ids {stranded_id})"))
    );
    // Read-only: still `executing`; rescuing it is Oban's (Lifeline) or a human's call.
    assert_eq!(db.jobs().await, before);
}

#[tokio::test]
async fn stranded_and_live_jobs_time_out_with_the_stranded_listed() {
    let Some(mut db) = Fixture::new(StateColumn::ObanEnum).await else {
        return;
    };
    let clock = TestClock::new();
    let old = db
        .executing("analysis", ago(&clock, Duration::from_secs(25 * 60)))
        .await;
    db.executing("analysis", ago(&clock, Duration::from_millis(100)))
        .await;
    // The young job grows older than `stranded_after` during the drain: it is still waited
    // for, because it was young when the drain began.
    let req = db.request(&["analysis"], Duration::from_millis(500));
    let outcome = drain(&req, &clock).await.expect("drain");
    let DrainOutcome::TimedOut {
        executing,
        available,
        oldest_executing_age,
        stranded,
        ..
    } = outcome
    else {
        panic!("expected a timeout, got {outcome:?}");
    };
    assert_eq!((executing, available), (2, 0));
    assert!(oldest_executing_age.expect("age") >= Duration::from_secs(25 * 60));
    let ids: Vec<i64> = stranded.iter().map(|j| j.id).collect();
    assert_eq!(ids, [old]);
}

#[tokio::test]
async fn a_broken_session_is_reopened() {
    let Some(mut db) = Fixture::new(StateColumn::ObanEnum).await else {
        return;
    };
    let clock = TestClock::new();
    let id = db
        .executing("analysis", ago(&clock, Duration::from_secs(1)))
        .await;
    let (url, schema) = (db.url.clone(), db.schema.clone());
    let meddler = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
        )
        .bind(&schema)
        .fetch_all(&mut conn)
        .await
        .expect("terminate the drain's session");
        tokio::time::sleep(Duration::from_millis(250)).await;
        set_state(&url, &schema, id, "completed").await;
        killed
    });
    let req = db.request(&["analysis"], Duration::from_secs(2));
    let outcome = drain(&req, &clock).await.expect("drain");
    let killed = meddler.await.expect("meddler");
    assert_eq!(
        killed,
        [true],
        "the drain's session was not found to break it"
    );
    let DrainOutcome::Drained { waited, .. } = outcome else {
        panic!("expected drained, got {outcome:?}");
    };
    assert!(waited >= Duration::from_millis(500), "waited {waited:?}");
}

#[tokio::test]
async fn a_stop_request_ends_the_drain() {
    let Some(mut db) = Fixture::new(StateColumn::ObanEnum).await else {
        return;
    };
    let clock = TestClock::new();
    db.insert("analysis", "available", None).await;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let _ = tx.send(true);
    });
    let req = db.request(&["analysis"], Duration::from_secs(2));
    let outcome = drain_oban(&req, clock.as_ref(), rx).await.expect("drain");
    let DrainOutcome::Stopped { waited } = outcome else {
        panic!("expected stopped, got {outcome:?}");
    };
    assert!(waited < Duration::from_secs(1), "waited {waited:?}");
}

#[tokio::test]
async fn no_jobs_table_is_not_oban() {
    let Some(db) = Fixture::empty().await else {
        return;
    };
    let clock = TestClock::new();
    let req = db.request(&["analysis"], Duration::from_secs(2));
    let err = drain(&req, &clock).await.expect_err("no table");
    assert!(
        matches!(err, DrainError::NotOban { ref sqlstate, .. } if sqlstate.as_deref() == Some("42P01")),
        "{err:?}"
    );
}

/// `text` and `debug` never show the URL, its password, user or database name.
fn assert_no_leak(err: &DrainError, url: &str, secrets: &[&str]) {
    for shown in [err.to_string(), format!("{err:?}")] {
        println!("error as shown: {shown}");
        assert!(!shown.contains(url), "URL in {shown}");
        for secret in secrets {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
}

#[tokio::test]
async fn unreachable_port_is_unavailable_and_names_no_secret() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("postgres://lei_drain_user:Pa55-w0rd-SECRET@127.0.0.1:{port}/lei_secret_db");
    let req = request_to(url.clone());
    let clock = TestClock::new();
    let started = Instant::now();
    let err = drain(&req, &clock).await.expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            err,
            DrainError::Unavailable {
                stage: Stage::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert_no_leak(
        &err,
        &url,
        &["Pa55-w0rd-SECRET", "lei_drain_user", "lei_secret_db"],
    );
}

#[tokio::test]
async fn refused_login_is_unavailable_and_names_no_secret() {
    let Some(base) = database_url() else {
        return;
    };
    let clock = TestClock::new();
    // An unknown role with a password (the test server may trust every known role, so a wrong
    // password alone would be let in), then a known role and an unknown database.
    let role = format!(
        "lei_no_such_role_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let mut unknown_role = url::Url::parse(&base).expect("url");
    unknown_role.set_username(&role).expect("username");
    unknown_role
        .set_password(Some("Pa55-w0rd-SECRET"))
        .expect("password");
    let mut unknown_db = url::Url::parse(&base).expect("url");
    unknown_db
        .set_password(Some("Pa55-w0rd-SECRET"))
        .expect("password");
    unknown_db.set_path("/lei_no_such_database_secret");

    for (url, class) in [(unknown_role, "28"), (unknown_db, "3D")] {
        let req = request_to(url.to_string());
        let err = drain(&req, &clock).await.expect_err("login refused");
        let DrainError::Unavailable {
            stage: Stage::Connect,
            sqlstate: Some(ref sqlstate),
            ..
        } = err
        else {
            panic!("expected unavailable at connect with a SQLSTATE, got {err:?}");
        };
        assert!(sqlstate.starts_with(class), "{err:?}");
        assert_no_leak(
            &err,
            url.as_str(),
            &["Pa55-w0rd-SECRET", &role, "lei_no_such_database_secret"],
        );
    }
}
