//! The PostgreSQL backend of the record store (`--store postgres://…`, issue #8), for several
//! replicas of `opsctl run` sharing one history.
//!
//! Same model as the embedded journal: an append-only table of snapshots, one row per
//! snapshot, and a record's current state is its newest row (highest `seq`). The table and its
//! guard are created on first use (idempotent DDL, serialised by a transaction-level advisory
//! lock so that two replicas starting together do not race); a trigger refuses `UPDATE`,
//! `DELETE` and `TRUNCATE`, so the history cannot be rewritten through SQL by mistake.
//!
//! ```sql
//! opsctl_records(seq bigserial primary key, id text, kind text, app text,
//!                body jsonb, epoch bigint, written_at timestamptz default now())
//! ```
//! `kind` is `deploy` for a [`DeployRecord`] and the [`RecordKind`](super::RecordKind) name
//! otherwise; `epoch` is the leader epoch the write was fenced with (`NULL` when unfenced).
//!
//! Fencing: a store opened with a [`Fence`] appends only while that fence's epoch is the
//! current epoch of its lease row in `opsctl_leader` (see `runtime::leader`), checked in the
//! same statement as the insert, which takes a share lock on the lease row: a replica that lost
//! the lease (paused, partitioned, slow) can no longer write, so it can no longer record the
//! intent of a Fly step, so it never takes one.
//!
//! Sync API over async sqlx: the store's callers are synchronous (the deployer appends between
//! steps, the CLI reads), and some run on a current-thread runtime (tests, `#[tokio::test]`),
//! where `block_in_place` panics and `Handle::block_on` deadlocks. So the pool lives on a
//! dedicated thread with its own runtime, and each call sends it a job and waits for the
//! reply; on a multi-thread runtime the wait goes through `block_in_place` so that the other
//! tasks move to another worker meanwhile. A call blocks its caller for one round trip, as the
//! embedded journal's `fsync` does.
//!
//! The database URL is a secret: it is never logged, and every error text is scrubbed of it
//! and its parts (user, password, host, database) before it leaves this module.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use super::{DeployRecord, Record, StoreError};
use crate::drain::connect::Scrubber;

/// Idempotent DDL for the records table, its append-only guard and the leader lease table.
/// Run in one transaction under `pg_advisory_xact_lock` so concurrent first uses serialise.
const SCHEMA: &[&str] = &[
    "SELECT pg_advisory_xact_lock(7243519)",
    "CREATE TABLE IF NOT EXISTS opsctl_records (
        seq bigserial PRIMARY KEY,
        id text NOT NULL,
        kind text NOT NULL,
        app text,
        body jsonb NOT NULL,
        epoch bigint,
        written_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX IF NOT EXISTS opsctl_records_id ON opsctl_records (id, seq)",
    "CREATE INDEX IF NOT EXISTS opsctl_records_kind_app ON opsctl_records (kind, app)",
    "CREATE OR REPLACE FUNCTION opsctl_records_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'opsctl_records is append-only: % refused', TG_OP;
        END $$",
    "CREATE OR REPLACE TRIGGER opsctl_records_no_rewrite
        BEFORE UPDATE OR DELETE ON opsctl_records
        FOR EACH ROW EXECUTE FUNCTION opsctl_records_append_only()",
    "CREATE OR REPLACE TRIGGER opsctl_records_no_truncate
        BEFORE TRUNCATE ON opsctl_records
        FOR EACH STATEMENT EXECUTE FUNCTION opsctl_records_append_only()",
    "CREATE TABLE IF NOT EXISTS opsctl_leader (
        name text PRIMARY KEY,
        holder text,
        epoch bigint NOT NULL,
        renewed_at timestamptz NOT NULL)",
];

/// Create the tables on first use (idempotent; safe when two replicas start at once).
///
/// # Errors
/// The database refused (no permission to create tables, no schema selected).
pub(crate) async fn ensure_schema(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for statement in SCHEMA {
        sqlx::query(*statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// A check of `--store`: a `postgres://` or `postgresql://` URL, parsed. Messages never
/// contain the URL.
///
/// # Errors
/// Not a URL, or another scheme.
pub(crate) fn parse_url(raw: &str) -> Result<(url::Url, Scrubber), StoreError> {
    let url = url::Url::parse(raw).map_err(|e| StoreError::Database {
        message: format!("--store is not a valid URL ({e}); expected postgres://USER@HOST/DB"),
    })?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(StoreError::Database {
            message: format!(
                "--store: expected a postgres:// URL, not a {}: URL (leave --store out for the \
                 embedded journal under --state)",
                url.scheme()
            ),
        });
    }
    let scrub = Scrubber::from_url(raw, &url);
    Ok((url, scrub))
}

/// Connect a small pool (connect timeout 10 s, statements time out after 10 s). One direct
/// connection first, so that an unreachable or refusing server is reported with its cause
/// (`Connection refused`, `password authentication failed`) at once, not as the pool's
/// "timed out while waiting for an open connection" 10 s later.
pub(crate) async fn connect(raw: &str, max: u32) -> Result<PgPool, sqlx::Error> {
    use sqlx::Connection;
    use std::str::FromStr;
    let options = sqlx::postgres::PgConnectOptions::from_str(raw)?
        .options([("statement_timeout", "10s")])
        .application_name("opsctl");
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        sqlx::PgConnection::connect_with(&options),
    )
    .await
    .map_err(|_| sqlx::Error::PoolTimedOut)??;
    first.close().await?;
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
}

/// The fencing token a leader writes under: lease `name`, held by `holder`, at `epoch`
/// (0 = not held: every fenced write is refused). Shared between the elector, which sets the
/// epoch on each acquisition and clears it on loss, and the store, which checks it.
#[derive(Debug)]
pub struct Fence {
    /// Lease row name in `opsctl_leader`.
    pub name: String,
    /// This process's holder id (unique per process start).
    pub holder: String,
    epoch: AtomicI64,
}

impl Fence {
    /// A fence for lease `name` held as `holder`, not held yet.
    pub fn new(name: impl Into<String>, holder: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            holder: holder.into(),
            epoch: AtomicI64::new(0),
        }
    }

    /// The epoch held now (0 when not the leader).
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Set the epoch held (0 on loss).
    pub fn set_epoch(&self, epoch: i64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }
}

type Job = Box<dyn FnOnce(PgPool) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The PostgreSQL record store (see the module docs).
#[derive(Debug)]
pub(crate) struct PgStore {
    jobs: tokio::sync::mpsc::UnboundedSender<Job>,
    scrub: Arc<Scrubber>,
    fence: Option<Arc<Fence>>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrubber([redacted])")
    }
}

impl PgStore {
    /// Connect to `raw` (a `postgres://` URL), create the tables if needed, and start the
    /// store's thread. With `fence`, appends are fenced (see the module docs).
    ///
    /// # Errors
    /// [`StoreError::Database`]: bad URL, database unreachable, DDL refused (scrubbed text).
    pub(crate) fn open(raw: &str, fence: Option<Arc<Fence>>) -> Result<Self, StoreError> {
        let (_, scrub) = parse_url(raw)?;
        let scrub = Arc::new(scrub);
        let (jobs, mut incoming) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<Result<(), String>>(1);
        let raw = raw.to_owned();
        let thread_scrub = scrub.clone();
        std::thread::Builder::new()
            .name("opsctl-pg-store".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("starting its runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    let pool = match connect(&raw, 4).await {
                        Ok(pool) => pool,
                        Err(e) => {
                            let _ = ready_tx.send(Err(thread_scrub.scrub(&e.to_string())));
                            return;
                        }
                    };
                    if let Err(e) = ensure_schema(&pool).await {
                        let _ = ready_tx.send(Err(format!(
                            "creating its tables: {}",
                            thread_scrub.scrub(&e.to_string())
                        )));
                        return;
                    }
                    let _ = ready_tx.send(Ok(()));
                    while let Some(job) = incoming.recv().await {
                        tokio::spawn(job(pool.clone()));
                    }
                    pool.close().await;
                });
            })
            .map_err(|e| StoreError::Database {
                message: format!("starting the store thread: {e}"),
            })?;
        match wait(|| ready_rx.recv()) {
            Ok(Ok(())) => Ok(Self { jobs, scrub, fence }),
            Ok(Err(message)) => Err(StoreError::Database { message }),
            Err(_) => Err(StoreError::Database {
                message: "the store thread ended".into(),
            }),
        }
    }

    /// Run `f` on the store's thread and wait for its result.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(PgPool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
        let job: Job = Box::new(move |pool| {
            Box::pin(async move {
                let _ = reply_tx.send(f(pool).await);
            })
        });
        let gone = || StoreError::Database {
            message: "the store thread ended".into(),
        };
        self.jobs.send(job).map_err(|_| gone())?;
        wait(|| reply_rx.recv()).map_err(|_| gone())?
    }

    fn db_error(scrub: &Scrubber, e: &sqlx::Error) -> StoreError {
        StoreError::Database {
            message: scrub.scrub(&e.to_string()),
        }
    }

    /// Append one snapshot (`kind`, `id`, `app`, JSON `body`), fenced when the store has a
    /// fence.
    fn insert(
        &self,
        kind: String,
        id: String,
        app: Option<String>,
        body: String,
    ) -> Result<(), StoreError> {
        let scrub = self.scrub.clone();
        let fence = self.fence.clone();
        self.call(move |pool| async move {
            let Some(fence) = fence else {
                sqlx::query(
                    "INSERT INTO opsctl_records (id, kind, app, body) VALUES ($1, $2, $3, $4::jsonb)",
                )
                .bind(&id)
                .bind(&kind)
                .bind(&app)
                .bind(&body)
                .execute(&pool)
                .await
                .map_err(|e| Self::db_error(&scrub, &e))?;
                return Ok(());
            };
            let epoch = fence.epoch();
            if epoch == 0 {
                return Err(StoreError::Fenced { epoch });
            }
            let done = sqlx::query(
                "INSERT INTO opsctl_records (id, kind, app, body, epoch)
                 SELECT $1, $2, $3, $4::jsonb, $5
                 WHERE EXISTS (SELECT 1 FROM opsctl_leader
                               WHERE name = $6 AND holder = $7 AND epoch = $5 FOR SHARE)",
            )
            .bind(&id)
            .bind(&kind)
            .bind(&app)
            .bind(&body)
            .bind(epoch)
            .bind(&fence.name)
            .bind(&fence.holder)
            .execute(&pool)
            .await
            .map_err(|e| Self::db_error(&scrub, &e))?;
            if done.rows_affected() == 1 {
                Ok(())
            } else {
                Err(StoreError::Fenced { epoch })
            }
        })
    }

    pub(crate) fn append(&self, record: &DeployRecord) -> Result<(), StoreError> {
        let body = serde_json::to_string(record).map_err(|e| StoreError::Database {
            message: format!("encoding the record: {e}"),
        })?;
        self.insert(
            "deploy".into(),
            record.id.clone(),
            Some(record.app.clone()),
            body,
        )
    }

    pub(crate) fn append_record(&self, record: &Record) -> Result<(), StoreError> {
        let body = serde_json::to_string(record).map_err(|e| StoreError::Database {
            message: format!("encoding the record: {e}"),
        })?;
        self.insert(
            record.kind.as_str().into(),
            record.id.clone(),
            record.app.clone(),
            body,
        )
    }

    /// Bodies of the rows `sql` selects (its one column is `body::text`), decoded; a row that
    /// does not decode (written by a newer opsctl, say) is skipped with a warning.
    fn bodies<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        sql: &'static str,
        arg: Option<String>,
    ) -> Result<Vec<T>, StoreError> {
        let scrub = self.scrub.clone();
        self.call(move |pool| async move {
            let rows: Vec<(i64, String)> = sqlx::query_as(sql)
                .bind(arg)
                .fetch_all(&pool)
                .await
                .map_err(|e| Self::db_error(&scrub, &e))?;
            Ok(rows
                .into_iter()
                .filter_map(|(seq, body)| match serde_json::from_str(&body) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(seq, error = %e, "skipping a record row that does not decode");
                        None
                    }
                })
                .collect())
        })
    }

    pub(crate) fn deploys(&self, app: Option<&str>) -> Result<Vec<DeployRecord>, StoreError> {
        self.bodies(
            "SELECT DISTINCT ON (id) seq, body::text FROM opsctl_records
             WHERE kind = 'deploy' AND ($1::text IS NULL OR app = $1)
             ORDER BY id, seq DESC",
            app.map(str::to_owned),
        )
    }

    pub(crate) fn records(&self) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT DISTINCT ON (id) seq, body::text FROM opsctl_records
             WHERE kind <> 'deploy' AND $1::text IS NULL
             ORDER BY id, seq DESC",
            None,
        )
    }

    pub(crate) fn history_of(&self, id: &str) -> Result<Vec<Record>, StoreError> {
        self.bodies(
            "SELECT seq, body::text FROM opsctl_records
             WHERE kind <> 'deploy' AND id = $1 ORDER BY seq",
            Some(id.to_owned()),
        )
    }
}

/// Block on `f`, through `block_in_place` on a multi-thread runtime worker (so its other tasks
/// move to another worker), directly elsewhere.
fn wait<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// A throw-away schema on the test database (`OPSCTL_TEST_DATABASE_URL`), for unit tests of the
/// PostgreSQL store and the leader election.
#[cfg(test)]
pub(crate) mod testdb {
    /// A fresh schema, dropped (with its tables) when this is dropped.
    pub(crate) struct Schema {
        base: String,
        name: String,
    }

    impl Schema {
        /// A fresh schema named after `test`, or `None` (a loud SKIP line) without
        /// `OPSCTL_TEST_DATABASE_URL`; a missing URL fails under `CI=true`.
        pub(crate) fn new(test: &str) -> Option<Self> {
            let Some(base) = std::env::var("OPSCTL_TEST_DATABASE_URL")
                .ok()
                .filter(|u| !u.is_empty())
            else {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "OPSCTL_TEST_DATABASE_URL is required under CI=true"
                );
                eprintln!("SKIP {test}: OPSCTL_TEST_DATABASE_URL is not set");
                return None;
            };
            let name = format!("t_{test}_{}", ulid::Ulid::new().to_string().to_lowercase());
            Self::exec(&base, &format!("CREATE SCHEMA {name}"));
            Some(Self { base, name })
        }

        /// The database URL with this schema first on the search path.
        pub(crate) fn url(&self) -> String {
            let sep = if self.base.contains('?') { '&' } else { '?' };
            format!("{}{sep}options=-csearch_path%3D{}", self.base, self.name)
        }

        /// Run `sql` on this schema.
        pub(crate) fn exec_here(&self, sql: &str) -> Result<u64, String> {
            let url = self.url();
            let sql = sql.to_owned();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let pool = super::connect(&url, 1).await.map_err(|e| e.to_string())?;
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok(done.rows_affected())
                })
            })
            .join()
            .unwrap()
        }

        fn exec(base: &str, sql: &str) {
            let (base, sql) = (base.to_owned(), sql.to_owned());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let pool = super::connect(&base, 1).await.expect("test database");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&pool)
                        .await
                        .expect("test schema");
                });
            })
            .join()
            .unwrap();
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            Self::exec(&self.base, &format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }
}
