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
    /// Poll `machine` (expected at `version`) until a verdict; see [`Self::until_all_decided`].
    pub async fn until_decided(&self, machine: &str, version: &str) -> Verdict {
        let one = [(machine.to_owned(), version.to_owned())];
        let mut verdicts = self.until_all_decided(&one).await;
        verdicts.pop().map_or(
            Verdict::Blind {
                reason: "no verdict".into(),
            },
            |(_, v)| v,
        )
    }

    /// Poll the machines of a batch (each expected at its version) until every one has a
    /// verdict, or one has failed (then the others stay `Waiting`: flyctl cancels a batch at
    /// the first failure). One call per poll for the whole batch: `GET` of the machine for a
    /// batch of one, one list call for more (Fly's rate limits are per machine and action;
    /// NOTES.md §2.9). While a machine is starting, Fly's `wait` (≤ 1 s) replaces the sleep.
    /// A Fly that cannot be seen is `Waiting`, then `Blind`, never `Failed`; a stop request
    /// ends the wait as `Blind` too (no verdict, so no rollback).
    pub async fn until_all_decided(&self, machines: &[(String, String)]) -> Vec<(String, Verdict)> {
        let start = self.clock.now();
        let mut watches: Vec<Watch> = machines.iter().map(|_| Watch::new(start)).collect();
        let mut verdicts: Vec<Option<Verdict>> = vec![None; machines.len()];
        loop {
            if *self.stop.borrow() {
                let reason = "opsctl was asked to stop during the health wait";
                return finish(machines, verdicts, || Verdict::Blind {
                    reason: reason.into(),
                });
            }
            let seen = self.observe(machines).await;
            let mut starting = None;
            for (i, (id, version)) in machines.iter().enumerate() {
                if verdicts[i].is_some() {
                    continue;
                }
                let m = seen
                    .as_ref()
                    .and_then(|all| all.iter().find(|m| &m.id == id));
                let (next, verdict) = judge(
                    watches[i],
                    m,
                    version,
                    &self.deploy,
                    self.machine_checks,
                    self.clock.now(),
                );
                watches[i] = next;
                match verdict {
                    Verdict::Waiting { reason } => {
                        tracing::debug!(app = %self.app, machine = %id, "waiting for {reason}");
                        let is_starting = m.is_some_and(|m| {
                            matches!(
                                m.state,
                                MachineState::Replacing
                                    | MachineState::Starting
                                    | MachineState::Created
                            )
                        });
                        if is_starting && starting.is_none() {
                            starting = Some((id.clone(), version.clone()));
                        }
                    }
                    decided => {
                        if let Verdict::Failed(failure) = &decided {
                            // The moment a rollback becomes due; the latency benchmark
                            // (benches/latency.rs) measures from this line's timestamp.
                            tracing::warn!(app = %self.app, machine = %id, "health judgement: failed ({failure})");
                        }
                        verdicts[i] = Some(decided);
                    }
                }
            }
            if verdicts
                .iter()
                .any(|v| matches!(v, Some(Verdict::Failed(_))))
            {
                let reason = "not judged: another machine of the batch failed";
                return finish(machines, verdicts, || Verdict::Waiting {
                    reason: reason.into(),
                });
            }
            if verdicts.iter().all(Option::is_some) {
                return finish(machines, verdicts, || Verdict::Waiting {
                    reason: String::new(),
                });
            }
            if let Some((id, version)) = starting {
                // Fly's wait returns as soon as the version is started (or 408 after 1 s).
                let timeout = self.poll.max(Duration::from_secs(1));
                let _ = self
                    .client
                    .wait(&self.app, &id, &version, "started", timeout)
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

    /// One observation of the batch: `None` when Fly could not be asked.
    async fn observe(
        &self,
        machines: &[(String, String)],
    ) -> Option<Vec<opsctl_controllers::observed::ObservedMachine>> {
        let result = match machines {
            [(id, _)] => self
                .client
                .get_machine(&self.app, id)
                .await
                .map(|m| vec![m]),
            _ => self.client.list_machines(&self.app).await,
        };
        match result {
            Ok(ms) => Some(ms.iter().map(observe::machine).collect()),
            Err(e) => {
                tracing::debug!(app = %self.app, error = %e, "health poll failed");
                None
            }
        }
    }
}

/// Pair each machine with its verdict, `undecided()` for those without one.
fn finish(
    machines: &[(String, String)],
    verdicts: Vec<Option<Verdict>>,
    undecided: impl Fn() -> Verdict,
) -> Vec<(String, Verdict)> {
    machines
        .iter()
        .zip(verdicts)
        .map(|((id, _), v)| (id.clone(), v.unwrap_or_else(&undecided)))
        .collect()
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
