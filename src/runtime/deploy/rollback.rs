//! The rollback of a failed rollout: choose what to restore (controllers'
//! `rollback_choice`: never a known-bad image, BUG-12), put each touched machine's previous
//! config back as a *new* release (Fly has no rollback call), judge it, and record the result.
//! A rollback is never itself rolled back; when it fails, automatic deploys pause (BUG-14).
//! Before it starts, the images it restores are looked up in their registry; a pruned or
//! unknown image means no rollback and an escalation ([`super::escalate`]).

use opsctl_controllers::history::{PastDeploy, RollbackChoice, rollback_choice};
use opsctl_controllers::rollout::{self, MachineStep, Verdict};
use opsctl_crds::FlyApp;

use super::Deployer;
use super::leases::Leases;
use super::update::{Touched, UpdateCtx};
use crate::fly::observe::observe_releases;
use crate::records::{
    DeployRecord, DeployStatus, MachineResult, ReleaseRef, RollbackRecord, StoreError,
};

impl Deployer {
    /// The release failed: roll back what was touched (once), or just record the failure.
    pub(super) async fn fail(
        &self,
        app: &FlyApp,
        release: &ReleaseRef,
        leases: &Leases,
        touched: Vec<Touched>,
        rec: &mut DeployRecord,
        reason: String,
    ) -> Result<(), StoreError> {
        if !release.id.is_empty() {
            let _ = self.client.update_release(&release.id, "failed").await;
        }
        let steps: Vec<MachineStep> = touched.iter().map(|t| t.step.clone()).collect();
        let Some(mut rb) = rollout::rollback_plan(&steps, false) else {
            return self.finish(rec, DeployStatus::Failed, reason);
        };
        let releases = match observe_releases(&self.client, &rec.app).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(app = %rec.app, error = %e, "could not list releases for the rollback target");
                vec![]
            }
        };
        let history: Vec<PastDeploy> = self
            .store
            .deploys(Some(&rec.app))?
            .iter()
            .map(DeployRecord::past)
            .collect();
        let previous: Vec<&str> = steps.iter().map(|s| s.from_image.as_str()).collect();
        let image_override = match rollback_choice(&previous, &rec.image, &releases, &history) {
            RollbackChoice::Restore => None,
            RollbackChoice::ToRelease { version, image } => {
                tracing::warn!(app = %rec.app, version, image = %image, "previous image is known bad; rolling back to an older release");
                rb.image = image.clone();
                Some(image)
            }
            RollbackChoice::Escalate { reason: why } => {
                tracing::error!(app = %rec.app, "no rollback target ({why}); a human must act");
                return self.finish(
                    rec,
                    DeployStatus::RollbackFailed,
                    format!("{reason}; not rolled back: {why}"),
                );
            }
        };
        let name = rec.app.clone();
        let machines: Vec<String> = rb.machines.iter().map(|(m, _)| m.clone()).collect();
        self.enter(rec, opsctl_controllers::rollout::phase::Phase::Rollback)?;
        // Fly prunes old images: only roll back onto images known to be in the registry.
        let restore: Vec<String> = match &image_override {
            Some(image) => vec![image.clone()],
            None => touched.iter().map(|t| t.before.image.clone()).collect(),
        };
        let mut distinct = restore.clone();
        distinct.sort();
        distinct.dedup();
        self.intend(
            rec,
            format!(
                "check that {} still exist(s) in the registry before rolling back",
                distinct.join(", ")
            ),
        )?;
        let verdict = self.check_registry(&restore).await;
        if let Some((class, why)) = verdict.escalation() {
            self.done(rec, format!("not rolling back: {why}"))?;
            rec.rollback = Some(RollbackRecord {
                release: None,
                image: rb.image.clone(),
                machines: machines.clone(),
                outcome: format!("not started: {why}"),
            });
            let title = format!("{name}: rollback of {} not started", rec.id);
            let description = format!(
                "{reason}.\n\nThe automatic rollback to {} was not started: {why}. No machine was changed by a rollback; the touched machines ({}) still run {}. Automatic deploys of {name} are paused until a human runs `opsctl apply`. To restore service: push the previous image again (or build it), point spec.image at an image that exists, and run `opsctl apply`.",
                rb.image,
                machines.join(", "),
                rec.image
            );
            self.escalate(rec, class, title, description)?;
            return self.finish(
                rec,
                DeployStatus::RollbackFailed,
                format!("{reason}; not rolled back: {why}"),
            );
        }
        self.done(rec, "present")?;
        tracing::warn!(app = %rec.app, "{reason}; rolling back");
        self.intend(
            rec,
            format!(
                "roll back {} to {} as a new release",
                machines.join(", "),
                rb.image
            ),
        )?;
        let mut rollback = RollbackRecord {
            release: None,
            image: rb.image.clone(),
            machines: machines.clone(),
            outcome: String::new(),
        };
        let rb_release = match self
            .client
            .create_release(&name, &rb.image, "ROLLING")
            .await
        {
            Ok((id, version)) => ReleaseRef { id, version },
            Err(e) => {
                rollback.outcome = format!("could not create the rollback release: {e}");
                rec.rollback = Some(rollback);
                self.done(rec, "failed")?;
                return self.finish(
                    rec,
                    DeployStatus::RollbackFailed,
                    format!("{reason}; rollback failed: could not create a release: {e}"),
                );
            }
        };
        rollback.release = Some(rb_release.clone());
        let _ = self.client.update_release(&rb_release.id, "running").await;
        // The rollout's leases are still held (the caller releases them afterwards): the
        // rollback acts under them.
        let mut problems = Vec::new();
        for t in &touched {
            let ctx = UpdateCtx {
                client: self.client.clone(),
                app: name.clone(),
                nonce: leases.get(&t.step.machine).cloned(),
            };
            match ctx.restore(t, &rb_release, image_override.as_deref()).await {
                Ok(version) => {
                    if t.step.wait_healthy {
                        let w = self.health_wait(&name, app);
                        match w.until_decided(&t.step.machine, &version).await {
                            Verdict::Healthy => {}
                            other => problems.push(format!("{}: {other:?}", t.step.machine)),
                        }
                    }
                    Self::set_result(
                        rec,
                        &t.step.machine,
                        MachineResult::RolledBack,
                        Some(reason.clone()),
                    );
                }
                Err(e) => problems.push(format!("{}: {e}", t.step.machine)),
            }
        }
        if problems.is_empty() {
            let _ = self.client.update_release(&rb_release.id, "complete").await;
            rollback.outcome = "succeeded".into();
            rec.rollback = Some(rollback);
            self.done(
                rec,
                format!(
                    "rolled back to {} (release v{})",
                    rb.image, rb_release.version
                ),
            )?;
            self.finish(
                rec,
                DeployStatus::RolledBack,
                format!(
                    "{reason}; rolled back to {} as release v{}",
                    rb.image, rb_release.version
                ),
            )
        } else {
            let _ = self.client.update_release(&rb_release.id, "failed").await;
            rollback.outcome = format!("failed: {}", problems.join("; "));
            rec.rollback = Some(rollback);
            self.done(rec, "rollback failed")?;
            tracing::error!(app = %name, "rollback failed; a human must act: {}", problems.join("; "));
            self.finish(
                rec,
                DeployStatus::RollbackFailed,
                format!("{reason}; rollback failed: {}", problems.join("; ")),
            )
        }
    }
}

impl Deployer {
    /// Roll back a *finished* deploy (record `deploy_id` of `app`), for the incident pipeline:
    /// an outage after a deploy that looked fine (case BUG-02). Builds the touched machines
    /// from the record (their current config with the image they ran before) and goes through
    /// `Deployer::fail` above, so target choice (never a known-bad image), the new release,
    /// health judgement and recording are the deploy pipeline's own. At most once: a deploy
    /// whose record already holds a rollback is returned unchanged (case BUG-14).
    ///
    /// # Errors
    /// The record is unknown or has no release, Fly cannot be read or leased, or the store
    /// fails; nothing was changed on Fly then, except when the store failed mid-way.
    pub async fn rollback_finished(
        &self,
        app: &FlyApp,
        deploy_id: &str,
    ) -> Result<DeployRecord, String> {
        let name = app.app_name().to_owned();
        let mut rec = self
            .store
            .deploys(Some(&name))
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|r| r.id == deploy_id)
            .ok_or_else(|| format!("no deploy record {deploy_id} for {name}"))?;
        if rec.rollback.is_some() {
            return Ok(rec);
        }
        let release = rec.release.clone().ok_or_else(|| {
            format!("deploy {deploy_id} created no release; nothing to roll back")
        })?;
        let mut touched = Vec::new();
        for m in rec.machines.iter().filter(|m| {
            matches!(
                m.result,
                MachineResult::Healthy | MachineResult::Failed | MachineResult::Unverified
            )
        }) {
            let current = self
                .client
                .get_machine(&name, &m.machine)
                .await
                .map_err(|e| e.to_string())?;
            let Some(mut before) = current.config else {
                return Err(format!(
                    "Fly did not return {}'s config; not rolling back blind",
                    m.machine
                ));
            };
            before.image.clone_from(&m.from_image);
            touched.push(Touched {
                step: MachineStep {
                    machine: m.machine.clone(),
                    group: m.group.clone(),
                    region: m.region.clone(),
                    from_image: m.from_image.clone(),
                    skip_launch: false,
                    wait_healthy: true,
                },
                before,
            });
        }
        let machines: Vec<String> = touched.iter().map(|t| t.step.machine.clone()).collect();
        let leases = self
            .lease_all(&name, &machines)
            .await
            .map_err(|e| e.to_string())?;
        let reason = format!("incident: outage after deploy {deploy_id}");
        // The outage is a health failure of this deploy: pin its image/revision out so the
        // reconciler does not deploy it again automatically.
        rec.failed_health = true;
        let result = self
            .fail(app, &release, &leases, touched, &mut rec, reason)
            .await;
        super::leases::release_all(&self.client, &name, &leases).await;
        result.map_err(|e| e.to_string())?;
        Ok(rec)
    }
}
