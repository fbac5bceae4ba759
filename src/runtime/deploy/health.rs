//! The HealthCheck stage: waiting for one updated machine to be judged healthy or failed
//! ([`HealthWait`]), and, once every batch of a rollout is healthy, the external probes of
//! `spec.health.probes` ([`Deployer::probe_stage`]).
//!
//! Probes run once, after the *whole* rollout rather than after every batch: only then does
//! every machine behind the public URL run the new release, so a probe's answer is about the
//! release and not about whichever old or new machine Fly Proxy picked. A probe that keeps
//! answering wrongly (`Failed`) fails the deploy like a failed machine, which rolls the touched
//! machines back; a probe that cannot get an answer (`Unknown`: DNS, connect, timeout) is
//! recorded as a warning and changes nothing ("a timeout is degradation, not health").

use std::sync::Arc;
use std::time::Duration;

use opsctl_controllers::observed::MachineState;
use opsctl_controllers::rollout::{Verdict, Watch, judge};
use opsctl_crds::FlyApp;
use opsctl_crds::flyapp::{DeploySpec, MachineChecksRule};
use tokio::sync::watch;

use super::Deployer;
use crate::fly::FlyClient;
use crate::fly::observe;
use crate::probes::http::{HttpProber, redacted};
use crate::probes::{ProbeResult, Retry, with_retries};
use crate::records::{DeployRecord, StoreError};
use crate::runtime::clock::Clock;

/// Polls one machine until the controllers' [`judge`] decides.
pub(super) struct HealthWait {
    pub client: FlyClient,
    pub app: String,
    pub clock: Arc<dyn Clock>,
    pub poll: Duration,
    pub deploy: DeploySpec,
    /// `health.machineChecks`: whether Fly's checks decide, or flyctl's smoke check.
    pub machine_checks: MachineChecksRule,
    pub stop: watch::Receiver<bool>,
}

impl HealthWait {
    /// Poll `machine` (expected at `version`) until a verdict. Uses Fly's `wait` while the
    /// machine is starting, then `GET` for checks. A Fly that cannot be seen is `Waiting`,
    /// then `Blind`, never `Failed`; a stop request ends the wait as `Blind` too (no verdict,
    /// so no rollback).
    pub async fn until_decided(&self, machine: &str, version: &str) -> Verdict {
        let mut watch = Watch::new(self.clock.now());
        loop {
            if *self.stop.borrow() {
                return Verdict::Blind {
                    reason: "opsctl was asked to stop during the health wait".into(),
                };
            }
            let seen = match self.client.get_machine(&self.app, machine).await {
                Ok(m) => Some(observe::machine(&m)),
                Err(e) => {
                    tracing::debug!(app = %self.app, machine, error = %e, "health poll failed");
                    None
                }
            };
            let (next, verdict) = judge(
                watch,
                seen.as_ref(),
                version,
                &self.deploy,
                self.machine_checks,
                self.clock.now(),
            );
            watch = next;
            let Verdict::Waiting { reason } = verdict else {
                return verdict;
            };
            tracing::debug!(app = %self.app, machine, "waiting for {reason}");
            let starting = seen.as_ref().is_some_and(|m| {
                matches!(
                    m.state,
                    MachineState::Replacing | MachineState::Starting | MachineState::Created
                )
            });
            if starting {
                // Fly's wait returns as soon as the version is started (or 408 after 1 s).
                let _ = self
                    .client
                    .wait(
                        &self.app,
                        machine,
                        version,
                        "started",
                        self.poll.max(Duration::from_secs(1)),
                    )
                    .await;
            } else {
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}

impl Deployer {
    /// Run every probe of `spec.health.probes` against the app, each recorded as a step
    /// (intent before, result after), with up to three attempts 1 s apart within
    /// `deploy.waitTimeout` ([`Retry::within`]). `Ok(Err(reason))` when a probe failed: the
    /// caller fails the deploy (and rolls back). Unknown results are warnings: logged, recorded
    /// in the step, and the deploy goes on.
    ///
    /// # Errors
    /// [`StoreError`] when a step cannot be recorded (nothing further is probed).
    pub(super) async fn probe_stage(
        &self,
        app: &FlyApp,
        rec: &mut DeployRecord,
    ) -> Result<Result<(), String>, StoreError> {
        let probes = &app.spec.health.probes;
        if probes.is_empty() {
            return Ok(Ok(()));
        }
        let prober = match HttpProber::new() {
            Ok(p) => p,
            Err(e) => {
                // Our side could not probe: unknown, never a reason to roll back.
                tracing::warn!(app = %rec.app, error = %e, "probes not run");
                self.intend(rec, "probe the app from outside".into())?;
                self.done(
                    rec,
                    format!("unknown: {e}; probes not run (warning, no rollback)"),
                )?;
                return Ok(Ok(()));
            }
        };
        let budget = app.spec.deploy.wait_timeout.get();
        let mut failure = None;
        for probe in probes {
            let p = &probe.http;
            let url = redacted(&p.url);
            let mut what = format!("probe GET {url}: expect {}", p.expect_status);
            if let Some(needle) = &p.body_contains {
                what.push_str(&format!(" and a body containing {needle:?}"));
            }
            self.intend(rec, what)?;
            let (result, attempts) = with_retries(Retry::within(budget), || prober.probe(p)).await;
            let tried = format!("{} attempt(s)", attempts.len());
            match &result {
                ProbeResult::Passed => self.done(rec, format!("passed ({tried})"))?,
                ProbeResult::Failed { reason } => {
                    tracing::warn!(app = %rec.app, url = %url, "probe failed: {reason}");
                    self.done(rec, format!("failed: {reason}"))?;
                    failure.get_or_insert_with(|| reason.clone());
                }
                ProbeResult::Unknown { reason } => {
                    tracing::warn!(app = %rec.app, url = %url, "probe could not see the app: {reason}");
                    self.done(
                        rec,
                        format!("unknown: {reason} ({tried}); warning: not counted as failing, no rollback"),
                    )?;
                }
            }
        }
        Ok(match failure {
            None => Ok(()),
            Some(reason) => {
                rec.failed_health = true;
                rec.health = Some(format!("probe failed: {reason}"));
                Err(format!(
                    "external probe failed after every machine was healthy: {reason}"
                ))
            }
        })
    }
}
