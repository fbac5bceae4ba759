//! Mixed images in a process group (case BUG-08): the runtime side of
//! `opsctl_controllers::rollout::mixed`.
//!
//! - Before a rollout converges a mixed group forward, [`Deployer::mixed_rollback`] acts on
//!   the controllers' [`MixedRollback`] decisions: the manifest's image already runs on some
//!   machines and fails health there, so every machine of the group running it is restored
//!   to the last good image — leased, judged (recorded as the HealthCheck phase: what was
//!   seen failing), then rolled back through the deploy pipeline's own
//!   [`Deployer::fail`](super::rollback) (target choice, registry check, new release, health
//!   judgement, at most one automatic rollback, records before every action).
//! - During a converge, the group's machines already on the image (the plan's `peers`) are
//!   leased with the rollout, and rolled back with the touched machines when the image fails
//!   ([`Deployer::with_peers`]): a rollback never leaves the group half on a bad image.
//! - [`Deployer::mixed_groups`]: one observation of which groups run several images, for the
//!   reconciler's `single_image_per_group` check.

use opsctl_controllers::observed::ObservedApp;
pub use opsctl_controllers::rollout::mixed::MixedGroups;
use opsctl_controllers::rollout::mixed::MixedRollback;
use opsctl_controllers::rollout::phase::Phase;
use opsctl_controllers::rollout::{MachineStep, RolloutPlan};
use opsctl_crds::FlyApp;

use super::leases::release_all;
use super::update::Touched;
use super::{DeployError, Deployer, Outcome};
use crate::fly::observe::observe_app;
use crate::records::{
    DeployRecord, DeployStatus, MachineOutcome, MachineResult, ReleaseRef, Trigger,
};

impl Deployer {
    /// Roll back every machine of the groups in `rollbacks` that runs the failing image
    /// (controllers' `mixed::decide`), as one deploy record: phases Lease → HealthCheck
    /// (what was seen failing) → Rollback → done. The record's `image` is the failing image
    /// and each machine's `from_image` the image it is restored to, so the image counts as
    /// known bad (pinned out: the reconciler does not deploy it again until the manifests
    /// change).
    ///
    /// # Errors
    /// [`DeployError::Store`] when the record store fails (leases are released first).
    pub(super) async fn mixed_rollback(
        &self,
        app: &FlyApp,
        observed: &ObservedApp,
        rollbacks: Vec<MixedRollback>,
        trigger: Trigger,
        commit: Option<String>,
    ) -> Result<Outcome, DeployError> {
        let name = app.app_name().to_owned();
        let failing_image = rollbacks[0].failing_image.clone();
        let steps: Vec<MachineStep> = rollbacks.iter().flat_map(|r| r.machines.clone()).collect();
        let seen: Vec<String> = rollbacks
            .iter()
            .flat_map(|r| r.failing.iter().map(|(m, why)| format!("{m}: {why}")))
            .collect();
        let groups: Vec<String> = rollbacks
            .iter()
            .map(|r| format!("{} → {}", r.group, r.to_image))
            .collect();
        let reason = format!(
            "{failing_image} fails health where it already runs ({}); mixed images (BUG-08): rolling back every machine of the group on it ({})",
            seen.join("; "),
            groups.join(", ")
        );
        // The release that put the failing image out, if Fly lists one (marked failed).
        let release = observed
            .releases
            .iter()
            .find(|r| r.image.as_deref() == Some(failing_image.as_str()))
            .map(|r| ReleaseRef {
                id: r.id.clone(),
                version: r.version,
            });
        let mut rec = DeployRecord {
            commit,
            revision: app.revision(),
            config_revision: opsctl_controllers::governance::config_fingerprint(app),
            previous_image: steps.first().map(|s| s.from_image.clone()),
            release: release.clone(),
            machines: steps
                .iter()
                .map(|s| {
                    let why = rollbacks
                        .iter()
                        .flat_map(|r| &r.failing)
                        .find(|(m, _)| *m == s.machine)
                        .map(|(_, why)| why.clone());
                    MachineOutcome {
                        machine: s.machine.clone(),
                        group: s.group.clone(),
                        region: s.region.clone(),
                        from_image: s.from_image.clone(),
                        to_image: failing_image.clone(),
                        result: if why.is_some() {
                            MachineResult::Failed
                        } else {
                            MachineResult::Pending
                        },
                        detail: Some(why.unwrap_or_else(|| {
                            format!("runs {failing_image} (mixed group); rolled back with it")
                        })),
                    }
                })
                .collect(),
            failed_health: true,
            health: Some(seen.join("; ")),
            ..DeployRecord::start(
                name.clone(),
                trigger,
                failing_image.clone(),
                self.clock.now(),
            )
        };
        tracing::warn!(app = %name, image = %failing_image, "{reason}");
        self.enter(&mut rec, Phase::Lease)?;
        let machines: Vec<String> = steps.iter().map(|s| s.machine.clone()).collect();
        self.intend(&mut rec, format!("lease machines {}", machines.join(", ")))?;
        let leases = match self.lease_all(&name, &machines).await {
            Ok(l) => l,
            Err(e) => {
                self.done(&mut rec, format!("failed: {e}"))?;
                let status = if e.is_unavailable() {
                    DeployStatus::Halted
                } else {
                    DeployStatus::Failed
                };
                rec.finished_at = Some(self.clock.now());
                self.finish(
                    &mut rec,
                    status,
                    format!("{reason}; could not lease every machine, nothing was changed: {e}"),
                )?;
                return Ok(Outcome::Deployed(Box::new(rec)));
            }
        };
        rec.leases = leases.clone();
        self.done(&mut rec, "leased")?;
        self.enter(&mut rec, Phase::HealthCheck)?;
        self.intend(
            &mut rec,
            format!("read the config of {} to restore it", machines.join(", ")),
        )?;
        let mut touched = Vec::new();
        let mut unseen = None;
        for s in &steps {
            match self.client.get_machine(&name, &s.machine).await {
                Ok(m) => match m.config {
                    Some(mut before) => {
                        before.image.clone_from(&s.from_image);
                        touched.push(Touched {
                            step: s.clone(),
                            before,
                        });
                    }
                    None => unseen = Some(format!("Fly did not return {}'s config", s.machine)),
                },
                Err(e) => unseen = Some(format!("{}: {e}", s.machine)),
            }
        }
        let result = if let Some(why) = unseen {
            // What cannot be seen is not rolled back blind.
            self.done(&mut rec, format!("unknown: {why}"))?;
            rec.needs_recovery = false;
            self.finish(
                &mut rec,
                DeployStatus::Halted,
                format!("{reason}; halted: {why}; no rollback on what could not be seen"),
            )
        } else {
            self.done(&mut rec, format!("failing: {}", seen.join("; ")))?;
            let release = release.unwrap_or(ReleaseRef {
                id: String::new(),
                version: 0,
            });
            self.fail(app, &release, &leases, touched, &mut rec, reason)
                .await
        };
        release_all(&self.client, &name, &leases).await;
        rec.leases.clear();
        rec.finished_at = Some(self.clock.now());
        self.observe_end_health(&mut rec).await;
        self.store.append(&rec)?;
        result?;
        tracing::info!(app = %name, status = rec.status.as_str(), reason = rec.reason.as_deref().unwrap_or(""), "mixed-images rollback finished");
        Ok(Outcome::Deployed(Box::new(rec)))
    }

    /// [`Deployer::fail`] for a rolling rollout: `touched` and the plan's peers
    /// ([`Self::with_peers`]) are rolled back together.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fail_group(
        &self,
        app: &FlyApp,
        plan: &RolloutPlan,
        release: &ReleaseRef,
        leases: &super::leases::Leases,
        touched: Vec<Touched>,
        rec: &mut DeployRecord,
        reason: String,
    ) -> Result<(), crate::records::StoreError> {
        let touched = self.with_peers(plan, touched, rec).await;
        self.fail(app, release, leases, touched, rec, reason).await
    }

    /// `touched` plus the plan's peers (machines of a mixed group already on the failing
    /// image, leased with the rollout), each to be restored to the image the touched machines
    /// ran before; they are added to the record. Nothing touched (an API error before any
    /// update): the image is not at fault, no peer is added. A peer whose config cannot be
    /// read is left alone (logged): no action on what could not be seen.
    pub(super) async fn with_peers(
        &self,
        plan: &RolloutPlan,
        mut touched: Vec<Touched>,
        rec: &mut DeployRecord,
    ) -> Vec<Touched> {
        let Some(target) = touched.first().map(|t| t.step.from_image.clone()) else {
            return touched;
        };
        for peer in &plan.peers {
            let config = match self.client.get_machine(&rec.app, &peer.machine).await {
                Ok(m) => m.config,
                Err(e) => {
                    tracing::warn!(app = %rec.app, machine = %peer.machine, error = %e, "could not read a machine of the mixed group; not rolling it back blind");
                    continue;
                }
            };
            let Some(mut before) = config else {
                continue;
            };
            before.image.clone_from(&target);
            rec.machines.push(MachineOutcome {
                machine: peer.machine.clone(),
                group: peer.group.clone(),
                region: peer.region.clone(),
                from_image: target.clone(),
                to_image: peer.from_image.clone(),
                result: MachineResult::Skipped,
                detail: Some(format!(
                    "ran {} before this deploy (mixed group); rolled back with it",
                    peer.from_image
                )),
            });
            touched.push(Touched {
                step: MachineStep {
                    from_image: target.clone(),
                    ..peer.clone()
                },
                before,
            });
        }
        touched
    }

    /// Which groups of `app` run more than one image, from one observation; `None` when Fly
    /// could not be observed (nothing is concluded from not seeing).
    pub async fn mixed_groups(&self, app: &FlyApp) -> Option<MixedGroups> {
        let observed = observe_app(&self.client, app.app_name()).await.ok()?;
        Some(mixed_of(&opsctl_controllers::diff::diff(app, &observed)))
    }
}

/// The `mixed_images` changes of a diff, by group.
pub fn mixed_of(diff: &opsctl_controllers::diff::AppDiff) -> MixedGroups {
    diff.changes
        .iter()
        .filter_map(|c| match c {
            opsctl_controllers::diff::Change::MixedImages { group, images } => {
                Some((group.clone(), images.clone()))
            }
            _ => None,
        })
        .collect()
}
