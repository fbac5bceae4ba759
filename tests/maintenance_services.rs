//! The maintenance checks against the real PostgreSQL and Redis of this machine (issue #6):
//! connections in use, Oban queue growth in a real `oban_jobs`, and Redis going down and
//! coming back — with one finding record per change, not per run.
//!
//! PostgreSQL comes from `OPSCTL_TEST_DATABASE_URL`; without it these tests print a SKIPPED
//! line and pass, except under `CI=true`, where they fail (as tests/drain_oban.rs). Redis is
//! a private `redis-server` child on a free port (`--save ''`), so stopping it does not touch
//! the shared Redis other tests use; without `redis-server` on the PATH the Redis tests skip
//! loudly (fail under `CI=true`). The shared Redis (`OPSCTL_TEST_REDIS_URL`) is only PINGed.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use opsctl::fly::{Endpoints, FlyClient};
use opsctl::maintenance::{EnvLookup, Maintenance, ReadOnlyFly, TokioClock, postgres, redis};
use opsctl::records::{RecordKind, RecordStatus, RecordStore};
use opsctl::secret::Secret;
use opsctl_controllers::incident::book::monitoring_path;
use opsctl_controllers::maintenance::{Observation, Status};
use opsctl_controllers::signal::{Blind, Signal, SignalKind};
use opsctl_crds::kinds::maintenance::CheckName;
use opsctl_crds::{ManifestSet, load_str};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::mpsc;

fn skip_or_fail(what: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} under CI=true: .ci/run must provide it"
    );
    // Straight to stderr: libtest captures `eprintln!`, and this must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

fn database_url() -> Option<String> {
    match std::env::var("OPSCTL_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            skip_or_fail("OPSCTL_TEST_DATABASE_URL not set");
            None
        }
    }
}

/// A maintenance runner for `manifests`, its environment `env` (name → URL), its signals and
/// its record store.
struct Rig {
    maintenance: Maintenance,
    signals: mpsc::Receiver<Signal>,
    store: Arc<RecordStore>,
    set: ManifestSet,
    _dir: tempfile::TempDir,
}

fn rig(manifests: &str, env: Vec<(&'static str, String)>) -> Rig {
    let set = load_str(std::path::Path::new("m.yaml"), manifests).expect("valid manifests");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RecordStore::open_write(dir.path()).expect("store"));
    let (tx, rx) = mpsc::channel(256);
    let lookup: EnvLookup = Arc::new(move |name| {
        env.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| Secret::new(v.clone()))
    });
    // Fly is never asked by these checks.
    let client =
        FlyClient::new(Endpoints::origin("http://127.0.0.1:9"), Secret::new("t")).expect("client");
    let clock = Arc::new(TokioClock::new(
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
    ));
    Rig {
        maintenance: Maintenance::new(
            ReadOnlyFly::new(client),
            store.clone(),
            true,
            tx,
            clock,
            lookup,
        ),
        signals: rx,
        store,
        set,
        _dir: dir,
    }
}

impl Rig {
    async fn run(&mut self, check: CheckName) -> (Status, String, Vec<Signal>) {
        let results = self.maintenance.run(check, &self.set).await;
        assert_eq!(results.len(), 1, "{results:?}");
        let mut signals = Vec::new();
        while let Ok(s) = self.signals.try_recv() {
            signals.push(s);
        }
        (results[0].status, results[0].summary.clone(), signals)
    }

    fn findings(&self) -> Vec<opsctl::records::Record> {
        self.store
            .records(|r| r.kind == RecordKind::Check)
            .expect("records")
    }
}

fn app_with(dependencies: &str) -> String {
    format!(
        "apiVersion: opsctl.dev/v1alpha1
kind: FlyApp
metadata: {{name: example-app}}
spec:
  image: registry.fly.io/example-app:v42
  processGroups: {{app: {{regions: {{iad: 1}}}}}}
  checks: {{alive: {{type: tcp, port: 8080}}}}
  health:
    dependencies: {dependencies}
---
apiVersion: opsctl.dev/v1alpha1
kind: MaintenanceSchedule
metadata: {{name: ops}}
spec:
  checks:
    redis: {{timeout: 2s}}
    postgresConnections: {{timeout: 5s}}
    obanQueueDepth: {{timeout: 5s, samples: 3}}
"
    )
}

// ---------------------------------------------------------------- PostgreSQL

#[tokio::test]
async fn postgres_connections_are_counted_against_max_minus_reserved() {
    let Some(url) = database_url() else { return };
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(PgConnection::connect(&url).await.expect("connect"));
    }
    let (max, reserved): (String, String) = sqlx::query_as(
        "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections')",
    )
    .fetch_one(&mut held[0])
    .await
    .expect("settings");
    let (max, reserved): (u32, u32) = (max.parse().unwrap(), reserved.parse().unwrap());

    let seen = postgres::connections(
        Some(Secret::new(url.clone())),
        "TEST_PG",
        Duration::from_secs(5),
    )
    .await;
    let Observation::Seen(c) = seen else {
        panic!("not seen: {seen:?}");
    };
    assert_eq!((c.max_connections, c.superuser_reserved), (max, reserved));
    assert!(c.in_use >= 5, "4 held + the check's own session: {c:?}");

    // Threshold 100 %: fine. Threshold 1 %: 5 connections are above it when fewer than 500
    // are available (the default max_connections is 100).
    let mut relaxed = rig(
        &app_with("{postgres: {urlEnv: TEST_PG, maxConnectionsPercent: 100}}"),
        vec![("TEST_PG", url.clone())],
    );
    let (status, summary, signals) = relaxed.run(CheckName::PostgresConnections).await;
    assert_eq!(status, Status::Ok, "{summary}");
    assert!(signals.is_empty());
    assert!(
        summary.contains(&format!("of {} connections", max - reserved)),
        "{summary}"
    );
    if max - reserved < 500 {
        let mut strict = rig(
            &app_with("{postgres: {urlEnv: TEST_PG, maxConnectionsPercent: 1}}"),
            vec![("TEST_PG", url.clone())],
        );
        let (status, summary, signals) = strict.run(CheckName::PostgresConnections).await;
        assert_eq!(status, Status::Alert, "{summary}");
        assert_eq!(
            signals[0].fingerprint(),
            "example-app/postgres_connections/-/above:1"
        );
        assert!(!summary.contains(&url) && !signals[0].detail.contains(&url));
    }
    drop(held);
}

#[tokio::test]
async fn postgres_refusing_is_down_and_a_missing_database_is_unknown() {
    let Some(url) = database_url() else { return };
    // A port nobody listens on: refused → PostgresDown.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let mut rig1 = rig(
        &app_with("{postgres: {urlEnv: TEST_PG}}"),
        vec![(
            "TEST_PG",
            format!("postgres://opsctl:pw-secret@127.0.0.1:{port}/x"),
        )],
    );
    let (status, summary, signals) = rig1.run(CheckName::PostgresConnections).await;
    assert_eq!(status, Status::Alert, "{summary}");
    assert_eq!(signals[0].kind, SignalKind::PostgresDown);
    assert!(!summary.contains("pw-secret"), "{summary}");

    // The server answers, but the database in the URL does not exist: our configuration,
    // not the app's outage.
    let mut bad = url::Url::parse(&url).expect("url");
    bad.set_path("/opsctl_no_such_database");
    let mut rig2 = rig(
        &app_with("{postgres: {urlEnv: TEST_PG}}"),
        vec![("TEST_PG", bad.to_string())],
    );
    let (status, summary, signals) = rig2.run(CheckName::PostgresConnections).await;
    assert_eq!(status, Status::Unknown, "{summary}");
    assert!(!signals.is_empty());
    assert!(signals.iter().all(|s| s.kind == SignalKind::ObserverBlind
        && s.blind == Some(Blind::Dependency)
        && !monitoring_path(s)));
    assert!(!summary.contains("opsctl_no_such_database"), "{summary}");
}

/// An `oban_jobs` table in a schema of its own, dropped at the end.
struct ObanSchema {
    url: String,
    schema: String,
    conn: PgConnection,
}

impl ObanSchema {
    async fn new() -> Option<Self> {
        let url = database_url()?;
        let schema = format!(
            "maint_test_{}",
            ulid::Ulid::new().to_string().to_lowercase()
        );
        let mut conn = PgConnection::connect(&url).await.expect("connect");
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.oban_jobs (
                 id bigserial PRIMARY KEY,
                 state text NOT NULL DEFAULT 'available',
                 queue text NOT NULL DEFAULT 'default');"
        )))
        .execute(&mut conn)
        .await
        .expect("create oban_jobs");
        Some(Self { url, schema, conn })
    }

    /// The URL the check gets: this schema on the `search_path` (as for an Oban prefix).
    fn check_url(&self) -> String {
        let mut url = url::Url::parse(&self.url).expect("url");
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={}", self.schema));
        url.to_string()
    }

    async fn add(&mut self, queue: &str, state: &str, n: usize) {
        for _ in 0..n {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO {}.oban_jobs (queue, state) VALUES ($1, $2)",
                self.schema
            )))
            .bind(queue)
            .bind(state)
            .execute(&mut self.conn)
            .await
            .expect("insert");
        }
    }

    async fn complete_all(&mut self, queue: &str) {
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE {}.oban_jobs SET state = 'completed' WHERE queue = $1",
            self.schema
        )))
        .bind(queue)
        .execute(&mut self.conn)
        .await
        .expect("update");
    }
}

impl Drop for ObanSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
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

#[tokio::test]
async fn oban_available_growing_over_three_samples_alerts_until_workers_catch_up() {
    let Some(mut db) = ObanSchema::new().await else {
        return;
    };
    let mut rig = rig(
        &app_with("{oban: {databaseUrlEnv: TEST_OBAN, queues: [analysis, mailers]}}"),
        vec![("TEST_OBAN", db.check_url())],
    );
    db.add("mailers", "available", 2).await;
    db.add("analysis", "executing", 5).await; // not `available`: never counted
    for (added, expect) in [(3, Status::Ok), (4, Status::Ok), (10, Status::Alert)] {
        db.add("analysis", "available", added).await;
        let (status, summary, signals) = rig.run(CheckName::ObanQueueDepth).await;
        assert_eq!(status, expect, "after adding {added}: {summary}");
        if expect == Status::Alert {
            assert_eq!(signals.len(), 1, "{signals:?}");
            assert_eq!(
                signals[0].fingerprint(),
                "example-app/queue_growth/-/queue:analysis"
            );
            assert!(
                signals[0].detail.contains("3 → 7 → 17"),
                "{}",
                signals[0].detail
            );
            assert!(summary.contains("mailers: 2 available"), "{summary}");
        }
    }
    // Still growing: the same finding, no second record.
    db.add("analysis", "available", 1).await;
    assert_eq!(rig.run(CheckName::ObanQueueDepth).await.0, Status::Alert);
    assert_eq!(rig.findings().len(), 1);
    // Workers catch up: the finding is resolved.
    db.complete_all("analysis").await;
    assert_eq!(rig.run(CheckName::ObanQueueDepth).await.0, Status::Ok);
    let findings = rig.findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].status, RecordStatus::Closed);
    assert_eq!(findings[0].close_reason.as_deref(), Some("resolved"));
}

#[tokio::test]
async fn oban_without_a_jobs_table_is_unknown() {
    let Some(url) = database_url() else { return };
    let mut u = url::Url::parse(&url).expect("url");
    u.query_pairs_mut()
        .append_pair("options", "-c search_path=opsctl_schema_without_oban");
    let mut rig = rig(
        &app_with("{oban: {databaseUrlEnv: TEST_OBAN, queues: [analysis]}}"),
        vec![("TEST_OBAN", u.to_string())],
    );
    let (status, summary, signals) = rig.run(CheckName::ObanQueueDepth).await;
    assert_eq!(status, Status::Unknown, "{summary}");
    assert!(!signals.is_empty());
    assert!(signals.iter().all(|s| s.kind == SignalKind::ObserverBlind
        && s.blind == Some(Blind::Dependency)
        && !monitoring_path(s)));
}

// ---------------------------------------------------------------- Redis

/// A private `redis-server` on `port`, killed on drop.
struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    /// `None` (after saying so) when `redis-server` is not installed.
    fn start(port: u16, extra: &[&str]) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        match child {
            Ok(child) => Some(Self { child }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                skip_or_fail("redis-server is not installed");
                None
            }
            Err(e) => panic!("starting redis-server: {e}"),
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Wait (real time, at most 5 s) until something listens on `port`.
async fn listening(port: u16) {
    for _ in 0..250 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("redis-server did not listen on {port}");
}

#[tokio::test]
async fn redis_down_comes_and_goes_with_one_finding() {
    let port = free_port();
    let Some(redis) = PrivateRedis::start(port, &[]) else {
        return;
    };
    listening(port).await;
    let mut rig = rig(
        &app_with("{redis: {urlEnv: TEST_REDIS}}"),
        vec![("TEST_REDIS", format!("redis://127.0.0.1:{port}"))],
    );
    let (status, summary, signals) = rig.run(CheckName::Redis).await;
    assert_eq!((status, signals.len()), (Status::Ok, 0), "{summary}");

    redis.stop();
    for _ in 0..2 {
        let (status, summary, signals) = rig.run(CheckName::Redis).await;
        assert_eq!(status, Status::Alert, "{summary}");
        assert_eq!(signals.len(), 1);
        assert_eq!(signals[0].fingerprint(), "example-app/redis_down/-/refused");
    }
    let findings = rig.findings();
    assert_eq!(
        findings.len(),
        1,
        "one record while it stays down: {findings:#?}"
    );
    assert_eq!(findings[0].status, RecordStatus::Open);

    let _redis = PrivateRedis::start(port, &[]).expect("restart");
    listening(port).await;
    let (status, summary, signals) = rig.run(CheckName::Redis).await;
    assert_eq!((status, signals.len()), (Status::Ok, 0), "{summary}");
    let findings = rig.findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].status, RecordStatus::Closed);
    assert_eq!(findings[0].close_reason.as_deref(), Some("resolved"));
    let history = rig.store.history_of(&findings[0].id).expect("history");
    assert_eq!(history.len(), 2, "opened once, closed once");
}

#[tokio::test]
async fn redis_credentials_are_sent_and_a_wrong_password_is_unknown_not_down() {
    let port = free_port();
    let Some(_redis) = PrivateRedis::start(port, &["--requirepass", "s3cr%t"]) else {
        return;
    };
    listening(port).await;
    let timeout = Duration::from_secs(2);
    // `%` percent-encoded in the URL, as a URL must carry it.
    let good = redis::ping(
        Some(Secret::new(format!("redis://:s3cr%25t@127.0.0.1:{port}"))),
        "R",
        timeout,
    )
    .await;
    assert_eq!(good, Observation::Seen(()));
    let wrong = redis::ping(
        Some(Secret::new(format!(
            "redis://:nope-secret@127.0.0.1:{port}"
        ))),
        "R",
        timeout,
    )
    .await;
    let Observation::Unknown { reason } = wrong else {
        panic!("{wrong:?}");
    };
    assert!(!reason.contains("nope-secret"), "{reason}");
    let none = redis::ping(
        Some(Secret::new(format!("redis://127.0.0.1:{port}"))),
        "R",
        timeout,
    )
    .await;
    // No credentials where the server wants them: NOAUTH is our configuration, not an outage.
    assert!(
        matches!(&none, Observation::Unknown { reason } if reason.contains("NOAUTH")),
        "{none:?}"
    );
}

#[tokio::test]
async fn the_shared_redis_answers_ping() {
    let url = match std::env::var("OPSCTL_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            skip_or_fail("OPSCTL_TEST_REDIS_URL not set");
            return;
        }
    };
    let seen = redis::ping(
        Some(Secret::new(url)),
        "OPSCTL_TEST_REDIS_URL",
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(seen, Observation::Seen(()));
}
