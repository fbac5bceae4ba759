//! Leader election among replicas of `opsctl run` sharing a PostgreSQL store (issue #8): a
//! lease row with a fencing epoch (docs/scaling.md explains the choice over an advisory lock).
//!
//! `opsctl_leader(name text primary key, holder text, epoch bigint, renewed_at timestamptz)`:
//! one row per lease name. The holder renews every [`LeaseConfig::renew_every`] (3 s); another
//! replica may take the row once it has not been renewed for [`LeaseConfig::ttl`] (10 s), by
//! the database clock (`now()`), so replicas' clocks do not matter. Each takeover increments
//! `epoch`: the fencing token the record store checks on every write (`records::pg`), so a
//! leader that lost the lease can no longer record, hence no longer take, a Fly step.
//!
//! Locally, a leader steps down when its last successful renewal (monotonic clock) is older
//! than `ttl - margin` (the database unreachable): by then another replica may take over.
//! Failover after a crash: at most `ttl` + one follower poll ([`LeaseConfig::poll_every`],
//! 2 s) = 12 s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio::sync::watch;

use crate::records::StoreError;
use crate::records::pg::{self, Fence};

/// Lease timing. Defaults: ttl 10 s, renew every 3 s, followers poll every 2 s, step down
/// locally 2 s before the ttl.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// A lease not renewed for this long may be taken over.
    pub ttl: Duration,
    /// The leader renews this often.
    pub renew_every: Duration,
    /// A follower tries to acquire this often.
    pub poll_every: Duration,
    /// The leader steps down when its last renewal is older than `ttl - margin`.
    pub margin: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(10),
            renew_every: Duration::from_secs(3),
            poll_every: Duration::from_secs(2),
            margin: Duration::from_secs(2),
        }
    }
}

/// A replica's side of one lease.
pub struct Elector {
    pool: PgPool,
    fence: Arc<Fence>,
    config: LeaseConfig,
    scrub: Arc<crate::drain::connect::Scrubber>,
}

/// A holder id unique to this process start: `<host>-<pid>-<ulid>` (the host from
/// `FLY_MACHINE_ID` or `HOSTNAME` when set).
pub fn holder_id() -> String {
    let host = std::env::var("FLY_MACHINE_ID")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "opsctl".into());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        ulid::Ulid::new().to_string().to_lowercase()
    )
}

impl Elector {
    /// Connect its own small pool to `url` (lease traffic never queues behind record writes)
    /// and create the tables if needed.
    ///
    /// # Errors
    /// [`StoreError::Database`] (scrubbed of the URL).
    pub async fn connect(
        url: &str,
        fence: Arc<Fence>,
        config: LeaseConfig,
    ) -> Result<Self, StoreError> {
        let (_, scrub) = pg::parse_url(url)?;
        let scrub = Arc::new(scrub);
        let err = |e: sqlx::Error| StoreError::Database {
            message: scrub.scrub(&e.to_string()),
        };
        let pool = pg::connect(url, 2).await.map_err(err)?;
        pg::ensure_schema(&pool).await.map_err(err)?;
        Ok(Self {
            pool,
            fence,
            config,
            scrub,
        })
    }

    /// Acquire the lease if free or expired, or renew it if held: the epoch held afterwards,
    /// or `None` when another replica holds it (or took it over). Sets the fence's epoch.
    ///
    /// # Errors
    /// [`StoreError::Database`] when the database cannot be asked (the fence is left as is;
    /// the caller steps down once its last renewal is too old).
    pub async fn try_acquire(&self) -> Result<Option<i64>, StoreError> {
        let held = self.fence.epoch();
        let row: Option<(i64,)> = sqlx::query_as(
            "INSERT INTO opsctl_leader AS l (name, holder, epoch, renewed_at)
             VALUES ($1, $2, 1, now())
             ON CONFLICT (name) DO UPDATE
                SET epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.epoch = $3
                                 THEN l.epoch ELSE l.epoch + 1 END,
                    holder = EXCLUDED.holder,
                    renewed_at = now()
              WHERE (l.holder = EXCLUDED.holder AND l.epoch = $3)
                 OR l.renewed_at < now() - make_interval(secs => $4)
             RETURNING epoch",
        )
        .bind(&self.fence.name)
        .bind(&self.fence.holder)
        .bind(held)
        .bind(self.config.ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| StoreError::Database {
            message: self.scrub.scrub(&e.to_string()),
        })?;
        let epoch = row.map(|(e,)| e);
        self.fence.set_epoch(epoch.unwrap_or(0));
        Ok(epoch)
    }

    /// Give the lease up at once (on shutdown), so a follower takes over on its next poll
    /// rather than after the ttl. Only if still held at this epoch.
    pub async fn release(&self) {
        let epoch = self.fence.epoch();
        self.fence.set_epoch(0);
        if epoch == 0 {
            return;
        }
        let released = sqlx::query(
            "UPDATE opsctl_leader SET holder = NULL, renewed_at = '-infinity'
             WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(&self.fence.name)
        .bind(&self.fence.holder)
        .bind(epoch)
        .execute(&self.pool)
        .await;
        match released {
            Ok(_) => tracing::info!(lease = %self.fence.name, epoch, "leadership released"),
            Err(e) => tracing::warn!(
                lease = %self.fence.name,
                error = %self.scrub.scrub(&e.to_string()),
                "could not release leadership; it expires by itself"
            ),
        }
    }

    /// Keep trying to lead until `stop`: the returned channel says `Some(epoch)` while this
    /// replica leads, `None` while it stands by. On stop, the lease is released.
    pub fn spawn(
        self,
        mut stop: watch::Receiver<bool>,
    ) -> (watch::Receiver<Option<i64>>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(None);
        let task = tokio::spawn(async move {
            let mut last_renewed: Option<Instant> = None;
            let mut said_standby = false;
            loop {
                if *stop.borrow() {
                    break;
                }
                let leading = tx.borrow().is_some();
                match self.try_acquire().await {
                    Ok(Some(epoch)) => {
                        last_renewed = Some(Instant::now());
                        if !leading {
                            tracing::info!(lease = %self.fence.name, epoch, holder = %self.fence.holder, "leadership acquired");
                            said_standby = false;
                            tx.send_replace(Some(epoch));
                        }
                    }
                    Ok(None) => {
                        if leading {
                            tracing::warn!(lease = %self.fence.name, "leadership lost: another replica took the lease over");
                            tx.send_replace(None);
                        }
                        if !said_standby {
                            tracing::info!(lease = %self.fence.name, "standing by: another replica is the leader");
                            said_standby = true;
                        }
                    }
                    Err(e) => {
                        let stale = last_renewed.is_none_or(|t| {
                            t.elapsed() > self.config.ttl.saturating_sub(self.config.margin)
                        });
                        tracing::warn!(lease = %self.fence.name, error = %e, "could not renew or acquire the lease");
                        if leading && stale {
                            tracing::warn!(lease = %self.fence.name, "leadership lost: the lease could not be renewed in time");
                            self.fence.set_epoch(0);
                            tx.send_replace(None);
                        }
                    }
                }
                let pause = if tx.borrow().is_some() {
                    self.config.renew_every
                } else {
                    self.config.poll_every
                };
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    changed = stop.changed() => if changed.is_err() { break },
                }
            }
            tx.send_replace(None);
            self.release().await;
            self.pool.close().await;
        });
        (rx, task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::pg::testdb::Schema;

    fn quick() -> LeaseConfig {
        LeaseConfig {
            ttl: Duration::from_secs(1),
            renew_every: Duration::from_millis(300),
            poll_every: Duration::from_millis(200),
            margin: Duration::from_millis(300),
        }
    }

    async fn elector(db: &Schema, holder: &str) -> Elector {
        Elector::connect(
            &db.url(),
            Arc::new(Fence::new("opsctl-run", holder)),
            quick(),
        )
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_leader_at_a_time_and_each_takeover_bumps_the_epoch() {
        let Some(db) = Schema::new("leader_one") else {
            return;
        };
        let a = elector(&db, "a").await;
        let b = elector(&db, "b").await;
        assert_eq!(a.try_acquire().await.unwrap(), Some(1));
        assert_eq!(b.try_acquire().await.unwrap(), None, "b stands by");
        assert_eq!(b.fence.epoch(), 0, "b may not write");
        assert_eq!(a.try_acquire().await.unwrap(), Some(1), "a renews");
        a.release().await;
        assert_eq!(a.fence.epoch(), 0);
        assert_eq!(
            b.try_acquire().await.unwrap(),
            Some(2),
            "a released lease is taken at once, under a new epoch"
        );
        assert_eq!(b.fence.epoch(), 2);
        assert_eq!(a.try_acquire().await.unwrap(), None, "a lost it");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lease_not_renewed_for_the_ttl_is_taken_over() {
        let Some(db) = Schema::new("leader_expiry") else {
            return;
        };
        let a = elector(&db, "a").await;
        let b = elector(&db, "b").await;
        assert_eq!(a.try_acquire().await.unwrap(), Some(1));
        assert_eq!(b.try_acquire().await.unwrap(), None);
        // `a` stops renewing (killed, paused): after the ttl, `b` takes over.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert_eq!(b.try_acquire().await.unwrap(), Some(2));
        assert_eq!(
            a.try_acquire().await.unwrap(),
            None,
            "the old leader learns it lost the lease on its next renewal"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_running_elector_leads_renews_and_releases_on_stop() {
        let Some(db) = Schema::new("leader_spawn") else {
            return;
        };
        let a = elector(&db, "a").await;
        let b = elector(&db, "b").await;
        let (stop_a, stop_rx_a) = watch::channel(false);
        let (mut leading_a, task_a) = a.spawn(stop_rx_a);
        let led = tokio::time::timeout(Duration::from_secs(5), leading_a.wait_for(Option::is_some))
            .await
            .expect("a leads")
            .map(|e| *e)
            .unwrap();
        assert_eq!(led, Some(1));
        let (stop_b, stop_rx_b) = watch::channel(false);
        let (mut leading_b, task_b) = b.spawn(stop_rx_b);
        // Several ttl periods: `a` keeps renewing, `b` keeps standing by.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(*leading_a.borrow(), Some(1));
        assert_eq!(*leading_b.borrow(), None);
        stop_a.send(true).unwrap();
        task_a.await.unwrap();
        let took =
            tokio::time::timeout(Duration::from_secs(5), leading_b.wait_for(Option::is_some))
                .await
                .expect("b takes over after a released")
                .map(|e| *e)
                .unwrap();
        assert_eq!(took, Some(2));
        stop_b.send(true).unwrap();
        task_b.await.unwrap();
        assert_eq!(
            db.exec_here("SELECT 1 FROM opsctl_leader WHERE holder IS NULL")
                .unwrap(),
            1,
            "no lease left held"
        );
    }
}
