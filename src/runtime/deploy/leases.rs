//! Machine leases for a rollout: taken on every machine of the plan before anything changes
//! (all or none), refreshed while held, released on every path.
//!
//! flyctl takes leases with a 13 s TTL and refreshes them every `(ttl − 1 s) / 3` = 4 s
//! (NOTES.md §6.1), so a crashed deployer blocks nobody for long. A lease held by someone else
//! is never cleared: the deployer waits until it expires (bounded by `lease_wait`) and tries
//! again, else gives up with who holds it and until when (case BUG-04).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio::task::JoinHandle;

use super::Deployer;
use crate::fly::{FlyClient, FlyError};

/// Lease TTL in seconds (flyctl's).
pub(super) const LEASE_TTL_SECS: u64 = 13;
/// Refresh period (flyctl's).
const REFRESH: Duration = Duration::from_secs(4);
const DESCRIPTION: &str = "opsctl deploy";

/// Leases held by one rollout: machine id → nonce.
pub(super) type Leases = BTreeMap<String, String>;

impl Deployer {
    /// Lease every machine, or none: on a failure the leases taken are released.
    pub(super) async fn lease_all(
        &self,
        app: &str,
        machines: &[String],
    ) -> Result<Leases, FlyError> {
        let mut leases = Leases::new();
        for m in machines {
            match self.lease_one(app, m).await {
                Ok(nonce) => {
                    leases.insert(m.clone(), nonce);
                }
                Err(e) => {
                    release_all(&self.client, app, &leases).await;
                    return Err(e);
                }
            }
        }
        Ok(leases)
    }

    /// Acquire one lease, waiting out a lease someone else holds for up to `lease_wait`.
    async fn lease_one(&self, app: &str, machine: &str) -> Result<String, FlyError> {
        let deadline =
            self.clock.now() + chrono::Duration::from_std(self.lease_wait).unwrap_or_default();
        loop {
            match self
                .client
                .acquire_lease(app, machine, LEASE_TTL_SECS, DESCRIPTION, None)
                .await
            {
                Ok(lease) => return Ok(lease.nonce),
                Err(e) if e.is_lease_held() || e.kind == crate::fly::FlyErrorKind::Conflict => {
                    let held = self.client.get_lease(app, machine).await.ok().flatten();
                    let now = self.clock.now();
                    let until = held
                        .as_ref()
                        .and_then(|l| Utc.timestamp_opt(l.expires_at, 0).single())
                        .unwrap_or(now + chrono::Duration::seconds(LEASE_TTL_SECS as i64));
                    if until > deadline || *self.stop.borrow() {
                        let owner = held
                            .map(|l| l.owner)
                            .unwrap_or_else(|| "someone else".into());
                        return Err(FlyError {
                            message: format!(
                                "lease on {machine} held by {owner} until {}; not cleared (not ours), gave up waiting",
                                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                            ),
                            ..e
                        });
                    }
                    let pause =
                        (until - now).to_std().unwrap_or_default() + Duration::from_millis(250);
                    tracing::info!(
                        app,
                        machine,
                        wait_ms = pause.as_millis() as u64,
                        "lease held by someone else; waiting for it to expire"
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Refresh every lease every 4 s until the returned task is aborted.
    pub(super) fn refresh_leases(&self, app: &str, leases: &Leases) -> JoinHandle<()> {
        let client = self.client.clone();
        let app = app.to_owned();
        let leases = leases.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                for (m, nonce) in &leases {
                    // Each refresh runs as a task of its own, which aborting this loop does
                    // not cancel: a refresh already sent is always followed through.
                    let (client, app, m, nonce) =
                        (client.clone(), app.clone(), m.clone(), nonce.clone());
                    let _ = tokio::spawn(async move {
                        match client
                            .acquire_lease(&app, &m, LEASE_TTL_SECS, DESCRIPTION, Some(&nonce))
                            .await
                        {
                            // Our lease was released meanwhile (another process recovered
                            // this rollout while we were paused, or our own release raced
                            // this refresh): the refresh took a new lease nobody knows. Give
                            // it back at once rather than block the machine for a TTL.
                            Ok(lease) if lease.nonce != nonce => {
                                tracing::warn!(app = %app, machine = %m, "our lease was released meanwhile; giving the new one back");
                                let _ = client.release_lease(&app, &m, &lease.nonce).await;
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::warn!(app = %app, machine = %m, error = %e, "lease refresh failed");
                            }
                        }
                    })
                    .await;
                }
            }
        })
    }
}

/// Release every lease; failures are logged (the lease expires within its TTL anyway).
pub(super) async fn release_all(client: &FlyClient, app: &str, leases: &Leases) {
    for (machine, nonce) in leases {
        if let Err(e) = client.release_lease(app, machine, nonce).await {
            tracing::warn!(app, machine = %machine, error = %e, "could not release lease; it expires in {LEASE_TTL_SECS}s");
        }
    }
}
