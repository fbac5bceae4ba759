//! Recovering a rollout whose process died (SIGKILL, crash, power loss).
//!
//! Every step of a rollout is recorded before it is taken, so the journal says how far a
//! dead rollout got. On the next pass for the app, before anything else, the deployer:
//! releases the leases the record says it held (our own, by nonce: case BUG-04 C); observes
//! which machines already run the new image; judges them; then rolls them back if one is
//! unhealthy, stops without a verdict if Fly cannot be seen, or — if they are healthy —
//! finishes the rollout under the same release and record (never a second deploy of the same
//! change). A rollout whose manifest changed meanwhile is closed as superseded and the new
//! manifest is deployed as usual.
//!
//! The decisions are the controllers' (`rollout::recovery`), made from the phase the dead
//! process had recorded: a deploy that died before any machine is closed without looking at
//! Fly; a deploy that died while rolling back has its rollback resumed (never turned into a
//! forward deploy, even if the machines on the bad image look healthy now); one that died
//! during its health check gets the health check again before it can succeed.
//!
//! Limitation: the record keeps each machine's previous *image*, not its whole previous
//! config, so a rollback after a crash restores the image onto the current config.

use opsctl_controllers::diff::diff;
use opsctl_controllers::observed::{MachineState, ObservedMachine};
use opsctl_controllers::rollout::phase::Phase;
use opsctl_controllers::rollout::recovery::{self, Judged, Recovery};
use opsctl_controllers::rollout::{self, MachineStep, Verdict};
use opsctl_crds::FlyApp;

use super::leases::release_all;
use super::update::Touched;
use super::{DeployError, Deployer};
use crate::fly::client::META_CREATE_ID;
use crate::fly::observe::observe_app;
use crate::records::{DeployRecord, DeployStatus, MachineResult};

impl Deployer {
    /// Finish or roll back `rec`, a deploy left `in_progress` by a process that stopped.
    /// Returns the record as it ends up (never `in_progress` unless Fly could not be seen).
    ///
    /// # Errors
    /// [`DeployError::Observe`] when Fly cannot be observed (the record stays in progress and
    /// the next pass tries again); store errors.
    pub(super) async fn recover(
        &self,
        app: &FlyApp,
        mut rec: DeployRecord,
    ) -> Result<DeployRecord, DeployError> {
        let name = rec.app.clone();
        tracing::warn!(app = %name, record = %rec.id, phase = %rec.phase.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string), "a deploy was left in progress by a process that stopped; recovering it");
        let found = rec.phase.clone();
        self.enter(
            &mut rec,
            Phase::Recover {
                from: found.clone().map(Box::new),
            },
        )?;
        self.intend(&mut rec, "recover: the process running this deploy stopped; release its leases and check what it changed".into())?;
        release_all(&self.client, &name, &rec.leases).await;
        rec.leases.clear();
        rec.needs_recovery = false;
        rec.status = DeployStatus::InProgress;
        if recovery::on_restart(found.as_ref(), rec.release.is_some()) == Recovery::NothingChanged {
            if let Some(release) = &rec.release {
                let _ = self.client.update_release(&release.id, "interrupted").await;
            }
            self.done(
                &mut rec,
                "nothing was changed on Fly (stopped before any machine)",
            )?;
            self.finish(
                &mut rec,
                DeployStatus::Halted,
                "the process stopped before changing anything".into(),
            )?;
            return self.close(rec);
        }
        if let Some(rec) = self.clean_up_created(&mut rec).await? {
            return self.close(rec);
        }
        let observed = match observe_app(&self.client, &name).await {
            Ok(o) => o,
            Err(source) => {
                self.done(&mut rec, format!("could not observe Fly: {source}"))?;
                return Err(DeployError::Observe {
                    app: name,
                    source: Box::new(source),
                });
            }
        };
        let Some(release) = rec.release.clone() else {
            self.done(&mut rec, "no release had been created: nothing was changed")?;
            self.finish(
                &mut rec,
                DeployStatus::Halted,
                "the process stopped before changing anything".into(),
            )?;
            return self.close(rec);
        };
        let touched: Vec<ObservedMachine> = rec
            .machines
            .iter()
            .filter_map(|m| {
                observed
                    .machines
                    .iter()
                    .find(|o| o.id == m.machine && o.image == rec.image)
            })
            .cloned()
            .collect();
        let summary = format!(
            "{} of {} machines run {}",
            touched.len(),
            rec.machines.len(),
            rec.image
        );
        self.done(&mut rec, summary)?;

        let mut judged = Judged {
            on_new_image: touched.len(),
            superseded: rec.image != app.spec.image,
            ..Judged::default()
        };
        let rolling_back = recovery::resumes_rollback(found.as_ref());
        for m in &touched {
            // Updated with `skip_launch`, a stopped machine stays stopped on purpose; anything
            // else (started, starting, replacing, exited) is judged. A dead rollback is
            // resumed without judging again.
            let kept_stopped = matches!(
                m.state,
                MachineState::Stopped | MachineState::Suspended | MachineState::Created
            ) && m.last_exit.as_ref().is_none_or(|e| e.requested_stop);
            let verdict = if kept_stopped || rolling_back {
                Verdict::Healthy
            } else {
                self.health_wait(&name, app)
                    .until_decided(&m.id, &m.version)
                    .await
            };
            match verdict {
                Verdict::Healthy => {
                    if !rolling_back {
                        Self::set_result(&mut rec, &m.id, MachineResult::Healthy, None);
                    }
                }
                Verdict::Failed(f) => {
                    Self::set_result(&mut rec, &m.id, MachineResult::Failed, Some(f.to_string()));
                    judged
                        .failure
                        .get_or_insert_with(|| super::failure_reason(&m.id, &release, &f));
                }
                Verdict::Blind { reason } | Verdict::Waiting { reason } => {
                    judged.blind.get_or_insert(format!("{}: {reason}", m.id));
                }
            }
        }

        match recovery::after_judging(found.as_ref(), &judged) {
            Recovery::RollBack { reason } => {
                if judged.failure.is_some() {
                    rec.failed_health = true;
                }
                self.roll_back_touched(app, &release, &touched, rec, reason)
                    .await
            }
            Recovery::RolledBack => {
                self.done(
                    &mut rec,
                    "no machine runs the new image: the rollback had finished",
                )?;
                let why = rec.reason.clone().unwrap_or_else(|| "failed".to_owned());
                self.finish(
                    &mut rec,
                    DeployStatus::RolledBack,
                    format!("{why} (rollback finished before the process stopped)"),
                )?;
                self.close(rec)
            }
            Recovery::HaltBlind { why } => {
                rec.needs_recovery = true;
                self.finish(&mut rec, DeployStatus::Halted, format!("recovery could not judge the updated machines ({why}); no rollback on what could not be seen"))?;
                self.close(rec)
            }
            Recovery::Superseded => {
                let _ = self.client.update_release(&release.id, "interrupted").await;
                let why = format!(
                    "superseded: the manifest now names {}; {} machine(s) already on {} and healthy",
                    app.spec.image,
                    touched.len(),
                    rec.image
                );
                self.finish(&mut rec, DeployStatus::Halted, why)?;
                self.close(rec)
            }
            Recovery::Continue | Recovery::NothingChanged | Recovery::Judge => {
                let plan = rollout::plan(app, &observed, &diff(app, &observed))?;
                if plan.is_empty() && app.spec.health.probes.is_empty() {
                    let _ = self.client.update_release(&release.id, "complete").await;
                    rec.status = DeployStatus::Succeeded;
                    rec.health = Some(format!(
                        "all {} machines healthy (finished after a restart)",
                        rec.machines.len()
                    ));
                    Self::mark_done(&mut rec);
                    self.done(
                        &mut rec,
                        "every machine already runs the image and is healthy",
                    )?;
                    return self.close(rec);
                }
                self.done(
                    &mut rec,
                    format!(
                        "continuing with {} machine(s) under release v{}, then the health check",
                        plan.steps().count(),
                        release.version
                    ),
                )?;
                self.run(app, &plan, &mut rec).await?;
                self.close(rec)
            }
        }
    }

    /// Roll back the machines of `rec` found on its image (recovery of a failed or
    /// half-rolled-back deploy): lease them, restore each one's previous image onto its
    /// current config, as a new release.
    async fn roll_back_touched(
        &self,
        app: &FlyApp,
        release: &crate::records::ReleaseRef,
        touched: &[ObservedMachine],
        mut rec: DeployRecord,
        reason: String,
    ) -> Result<DeployRecord, DeployError> {
        let name = rec.app.clone();
        let ids: Vec<String> = touched.iter().map(|m| m.id.clone()).collect();
        let leases = match self.lease_all(&name, &ids).await {
            Ok(l) => l,
            Err(e) => {
                let why = format!("{reason}; rollback not started: could not lease: {e}");
                self.finish(&mut rec, DeployStatus::RollbackFailed, why)?;
                return self.close(rec);
            }
        };
        let mut restore = Vec::new();
        for m in touched {
            let Some(outcome) = rec.machines.iter().find(|o| o.machine == m.id) else {
                continue;
            };
            let Ok(current) = self.client.get_machine(&name, &m.id).await else {
                continue;
            };
            let Some(mut before) = current.config else {
                continue;
            };
            before.image = outcome.from_image.clone();
            let step = MachineStep {
                machine: m.id.clone(),
                group: outcome.group.clone(),
                region: outcome.region.clone(),
                from_image: outcome.from_image.clone(),
                skip_launch: !m.state.is_running(),
                wait_healthy: m.state.is_running(),
            };
            restore.push(Touched { step, before });
        }
        rec.leases = leases.clone();
        self.fail(app, release, &leases, restore, &mut rec, reason)
            .await?;
        release_all(&self.client, &name, &leases).await;
        rec.leases.clear();
        self.close(rec)
    }

    /// Machines the dead rollout created (found by their `opsctl_create_id`, which starts with
    /// the record id): canaries are destroyed; bluegreen's green machines are destroyed and the
    /// blue ones put back into routing while any blue machine is left (blue keeps serving),
    /// else green is the fleet and the record succeeded. `Some(record)` when that settled the
    /// record (bluegreen), `None` to go on with the normal recovery.
    async fn clean_up_created(
        &self,
        rec: &mut DeployRecord,
    ) -> Result<Option<DeployRecord>, DeployError> {
        let name = rec.app.clone();
        let machines = match self.client.list_machines(&name).await {
            Ok(m) => m,
            Err(source) => {
                return Err(DeployError::Observe {
                    app: name,
                    source: Box::new(source),
                });
            }
        };
        let created_by = |m: &crate::fly::wire::Machine, kind: &str| {
            m.state != "destroyed"
                && m.config
                    .as_ref()
                    .and_then(|c| c.metadata.get(META_CREATE_ID))
                    .is_some_and(|id| id.starts_with(&format!("{}-{kind}-", rec.id)))
        };
        let canaries: Vec<String> = machines
            .iter()
            .filter(|m| created_by(m, "canary"))
            .map(|m| m.id.clone())
            .collect();
        let greens: Vec<String> = machines
            .iter()
            .filter(|m| created_by(m, "green"))
            .map(|m| m.id.clone())
            .collect();
        if !canaries.is_empty() {
            self.intend(
                rec,
                format!(
                    "destroy canaries {} left by the stopped process",
                    canaries.join(", ")
                ),
            )?;
            for id in &canaries {
                let _ = self.client.destroy_machine(&name, id, None).await;
            }
            self.done(rec, "destroyed")?;
        }
        if greens.is_empty() {
            return Ok(None);
        }
        let blue_left: Vec<String> = rec
            .machines
            .iter()
            .filter(|b| {
                machines
                    .iter()
                    .any(|m| m.id == b.machine && m.state != "destroyed" && m.state != "destroying")
            })
            .map(|b| b.machine.clone())
            .collect();
        if blue_left.is_empty() {
            self.done(
                rec,
                format!("bluegreen had finished: green {} serves", greens.join(", ")),
            )?;
            rec.status = DeployStatus::Succeeded;
            Self::mark_done(rec);
            return Ok(Some(rec.clone()));
        }
        self.intend(
            rec,
            format!(
                "bluegreen interrupted: destroy green {}, keep blue {} serving",
                greens.join(", "),
                blue_left.join(", ")
            ),
        )?;
        for id in &greens {
            let _ = self.client.destroy_machine(&name, id, None).await;
        }
        for id in &blue_left {
            let _ = self
                .client
                .machine_action(&name, id, crate::fly::MachineAction::Uncordon, None)
                .await;
        }
        self.done(rec, "green destroyed; blue in routing")?;
        if let Some(release) = &rec.release {
            let _ = self.client.update_release(&release.id, "interrupted").await;
        }
        self.finish(rec, DeployStatus::Halted, "bluegreen interrupted by a stopped process; green destroyed, blue serving; the next pass deploys again".into())?;
        Ok(Some(rec.clone()))
    }

    /// Stamp the end time and append the final snapshot.
    fn close(&self, mut rec: DeployRecord) -> Result<DeployRecord, DeployError> {
        rec.finished_at = Some(self.clock.now());
        self.store.append(&rec)?;
        tracing::info!(app = %rec.app, record = %rec.id, status = rec.status.as_str(), "recovered deploy closed");
        Ok(rec)
    }
}
