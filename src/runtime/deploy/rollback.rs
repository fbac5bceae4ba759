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
        let _ = self.client.update_release(&release.id, "failed").await;
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
