//! The canary and bluegreen strategies (flyctl's, NOTES.md §6.5–§6.6).
//!
//! Canary: per process group, one extra machine is created from the group's first machine's
//! config with the new image (out of proxy routing, metadata `fly_canary=true`), judged like
//! any updated machine, then destroyed whatever the verdict; a failing canary fails the deploy
//! before any existing machine is touched. Then the rollout goes on as rolling.
//!
//! Bluegreen: a green machine is created beside every blue one (same region, new config,
//! `skip_service_registration`, so unrouted); when every green machine is healthy, green is
//! uncordoned and blue is cordoned, stopped and destroyed. If any green machine fails, every
//! green machine is destroyed and blue never stops serving: nothing to roll back.

use opsctl_controllers::rollout::{Canary, RolloutPlan, Verdict};
use opsctl_crds::FlyApp;

use super::leases::Leases;
use super::update::Desired;
use super::{Deployer, failure_reason};
use crate::fly::MachineAction;
use crate::fly::wire::MachineRequest;
use crate::records::{DeployRecord, DeployStatus, MachineResult, ReleaseRef, StoreError};

/// Metadata flyctl puts on a canary.
const META_CANARY: &str = "fly_canary";
/// Metadata flyctl puts on bluegreen machines.
const META_BLUEGREEN_TAG: &str = "fly_bluegreen_deployment_tag";

impl Deployer {
    /// Create, judge and destroy one canary. `Ok(Err(reason))` when the canary failed.
    pub(super) async fn canary(
        &self,
        app: &FlyApp,
        plan: &RolloutPlan,
        release: &ReleaseRef,
        canary: &Canary,
        rec: &mut DeployRecord,
    ) -> Result<Result<(), String>, StoreError> {
        let name = rec.app.clone();
        self.intend(
            rec,
            format!(
                "create a canary for group {} in {} with {}",
                canary.group, canary.region, plan.image
            ),
        )?;
        let created = match self
            .create_from(
                app,
                &canary.template,
                &canary.group,
                &canary.region,
                &plan.image,
                release,
                &format!("{}-canary-{}", rec.id, canary.group),
                META_CANARY,
                "true",
            )
            .await
        {
            Ok(m) => m,
            Err(e) => {
                self.done(rec, format!("failed: {e}"))?;
                return Ok(Err(format!(
                    "could not create the canary for group {}: {e}",
                    canary.group
                )));
            }
        };
        self.done(rec, format!("canary {} created", created.0))?;
        let verdict = self
            .health_wait(&name, app)
            .until_decided(&created.0, &created.1)
            .await;
        self.intend(rec, format!("destroy canary {}", created.0))?;
        let destroyed = self.client.destroy_machine(&name, &created.0, None).await;
        self.done(
            rec,
            match &destroyed {
                Ok(()) => "destroyed".to_owned(),
                Err(e) => format!("could not destroy: {e}"),
            },
        )?;
        if matches!(verdict, Verdict::Failed(_)) {
            rec.failed_health = true;
        }
        Ok(match verdict {
            Verdict::Healthy => Ok(()),
            Verdict::Failed(f) => Err(format!(
                "canary {}: {}",
                created.0,
                failure_reason(&created.0, release, &f)
            )),
            Verdict::Blind { reason } | Verdict::Waiting { reason } => Err(format!(
                "canary {} could not be judged: {reason}; not going on",
                created.0
            )),
        })
    }

    /// Create a machine like `template` but with the desired config for `image`; returns
    /// `(id, version)`.
    #[allow(clippy::too_many_arguments)]
    async fn create_from(
        &self,
        app: &FlyApp,
        template: &str,
        group: &str,
        region: &str,
        image: &str,
        release: &ReleaseRef,
        create_id: &str,
        meta_key: &str,
        meta_value: &str,
    ) -> Result<(String, String), crate::fly::FlyError> {
        let name = app.app_name();
        let current = self.client.get_machine(name, template).await?;
        let base = current.config.unwrap_or_default();
        let mut config = Desired::new(app, group, image.to_owned(), release).apply(&base);
        config
            .metadata
            .insert(meta_key.to_owned(), meta_value.to_owned());
        let request = MachineRequest {
            config,
            region: Some(region.to_owned()),
            skip_service_registration: true,
            ..MachineRequest::default()
        };
        let m = self
            .client
            .create_machine(name, &request, create_id)
            .await?;
        Ok((m.id, m.instance_id))
    }

    /// Replace every blue machine by a green one.
    pub(super) async fn bluegreen(
        &self,
        app: &FlyApp,
        plan: &RolloutPlan,
        release: &ReleaseRef,
        leases: &Leases,
        rec: &mut DeployRecord,
    ) -> Result<(), StoreError> {
        let name = rec.app.clone();
        let tag = release.version.to_string();
        let blue: Vec<String> = plan.blue.iter().map(|s| s.machine.clone()).collect();
        self.intend(
            rec,
            format!("create green machines beside {}", blue.join(", ")),
        )?;
        let mut green: Vec<(String, String, String)> = Vec::new(); // (blue, green id, version)
        let mut failure: Option<String> = None;
        for step in &plan.blue {
            let create_id = format!("{}-green-{}", rec.id, step.machine);
            match self
                .create_from(
                    app,
                    &step.machine,
                    &step.group,
                    &step.region,
                    &plan.image,
                    release,
                    &create_id,
                    META_BLUEGREEN_TAG,
                    &tag,
                )
                .await
            {
                Ok((id, version)) => green.push((step.machine.clone(), id, version)),
                Err(e) => {
                    failure = Some(format!(
                        "could not create a green machine for {}: {e}",
                        step.machine
                    ));
                    break;
                }
            }
        }
        let ids: Vec<&str> = green.iter().map(|g| g.1.as_str()).collect();
        self.done(rec, format!("green: {}", ids.join(", ")))?;
        if failure.is_none() {
            for (blue_id, id, version) in &green {
                match self
                    .health_wait(&name, app)
                    .until_decided(id, version)
                    .await
                {
                    Verdict::Healthy => {}
                    Verdict::Failed(f) => {
                        rec.failed_health = true;
                        failure = Some(format!(
                            "green machine {id} (for {blue_id}): {}",
                            failure_reason(id, release, &f)
                        ));
                        break;
                    }
                    Verdict::Blind { reason } | Verdict::Waiting { reason } => {
                        failure = Some(format!("green machine {id} could not be judged: {reason}"));
                        break;
                    }
                }
            }
        }
        if let Some(reason) = failure {
            self.intend(
                rec,
                format!(
                    "destroy green machines {}; blue keeps serving",
                    ids.join(", ")
                ),
            )?;
            for (_, id, _) in &green {
                if let Err(e) = self.client.destroy_machine(&name, id, None).await {
                    tracing::error!(app = %name, machine = %id, error = %e, "could not destroy a green machine");
                }
            }
            self.done(rec, "destroyed")?;
            for m in &mut rec.machines {
                m.result = MachineResult::Skipped;
            }
            let _ = self.client.update_release(&release.id, "failed").await;
            rec.health = Some(reason.clone());
            return self.finish(
                rec,
                DeployStatus::Failed,
                format!("{reason}; green destroyed, blue untouched"),
            );
        }
        self.intend(rec, format!("route traffic to green {}", ids.join(", ")))?;
        for (_, id, _) in &green {
            if let Err(e) = self
                .client
                .machine_action(&name, id, MachineAction::Uncordon, None)
                .await
            {
                self.done(rec, format!("failed: {e}"))?;
                return self.finish(
                    rec,
                    DeployStatus::Halted,
                    format!(
                        "could not uncordon green {id}: {e}; both colours exist, a human must act"
                    ),
                );
            }
        }
        self.done(rec, "green serving")?;
        self.intend(rec, format!("cordon blue {}", blue.join(", ")))?;
        for blue_id in &blue {
            let nonce = leases.get(blue_id).map(String::as_str);
            let _ = self
                .client
                .machine_action(&name, blue_id, MachineAction::Cordon, nonce)
                .await;
        }
        self.done(rec, "only green routed")?;
        // Probe while blue is still there: a failing probe puts blue back into routing and
        // removes green, so nothing needs rolling back.
        if let Err(reason) = self.probe_stage(app, rec).await? {
            self.intend(
                rec,
                format!(
                    "probe failed: route blue {} again and destroy green {}",
                    blue.join(", "),
                    ids.join(", ")
                ),
            )?;
            for blue_id in &blue {
                let nonce = leases.get(blue_id).map(String::as_str);
                let _ = self
                    .client
                    .machine_action(&name, blue_id, MachineAction::Uncordon, nonce)
                    .await;
            }
            for (_, id, _) in &green {
                let _ = self.client.destroy_machine(&name, id, None).await;
            }
            self.done(rec, "blue serving again")?;
            for m in &mut rec.machines {
                m.result = MachineResult::Skipped;
            }
            let _ = self.client.update_release(&release.id, "failed").await;
            return self.finish(
                rec,
                DeployStatus::Failed,
                format!("{reason}; green destroyed, blue serving again"),
            );
        }
        self.intend(rec, format!("stop and destroy blue {}", blue.join(", ")))?;
        let mut problems = Vec::new();
        for (blue_id, green_id, _) in &green {
            let nonce = leases.get(blue_id).map(String::as_str);
            let steps = [
                self.client
                    .machine_action(&name, blue_id, MachineAction::Stop, nonce)
                    .await,
                self.client.destroy_machine(&name, blue_id, nonce).await,
            ];
            match steps.into_iter().find_map(Result::err) {
                None => Self::set_result(
                    rec,
                    blue_id,
                    MachineResult::Healthy,
                    Some(format!("replaced by {green_id}")),
                ),
                Some(e) => problems.push(format!("{blue_id}: {e}")),
            }
        }
        self.done(
            rec,
            if problems.is_empty() {
                "blue destroyed".to_owned()
            } else {
                problems.join("; ")
            },
        )?;
        let _ = self.client.update_release(&release.id, "complete").await;
        rec.health = Some(format!("all {} green machines healthy", green.len()));
        rec.status = DeployStatus::Succeeded;
        Self::mark_done(rec);
        if !problems.is_empty() {
            rec.reason = Some(format!(
                "green serves; some blue machines were not removed: {}",
                problems.join("; ")
            ));
        }
        self.store.append(rec)
    }
}
