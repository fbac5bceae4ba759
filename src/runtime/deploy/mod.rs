//! The rollout executor: one deploy of one app, from observation to a finished record.
//!
//! Order of work (issue #2; NOTES.md §6.2): observe → diff → plan (pure, in
//! `opsctl-controllers`) → create a Fly release → lease every machine in the plan → per batch:
//! record the intent, update the machines (whole config replaced: new image, desired env and
//! size, release metadata), wait for `started`, poll until the controllers' `judge` says
//! healthy or failed → mark the release complete, or roll the touched machines back to their
//! previous config as a *new* release → release the leases.
//!
//! Guarantees: every step is appended to the record store before it is taken (no action
//! without a recorded intent; a store failure stops the deploy); Fly that cannot be seen halts
//! the rollout without a rollback; at most one automatic rollback per bad release (the
//! rollback is never itself rolled back, and an image that was rolled back is not deployed
//! again automatically); leases are released on every path; a stop request is honoured
//! between batches.

mod escalate;
mod health;
mod journal;
mod leases;
mod mixed;
mod recover;
mod release_command;
mod rollback;
mod stages;
mod strategies;
mod update;

use std::sync::Arc;
use std::time::Duration;

use opsctl_controllers::diff::{AppDiff, diff};
use opsctl_controllers::history::{PastDeploy, may_deploy};
use opsctl_controllers::rollout::phase::Phase;
use opsctl_controllers::rollout::{self, Failure, MachineStep, RolloutPlan, Verdict};
use opsctl_crds::FlyApp;
use tokio::sync::watch;
use tokio::task::JoinSet;

use self::health::HealthWait;
use self::leases::{Leases, release_all};
use self::update::{Desired, Touched, UpdateCtx};
use crate::fly::FlyClient;
use crate::fly::FlyError;
use crate::fly::observe::observe_app;
use crate::records::{
    DeployRecord, DeployStatus, MachineOutcome, MachineResult, RecordStore, ReleaseRef, StoreError,
    Trigger,
};
use crate::runtime::clock::Clock;

pub use self::mixed::{MixedGroups, mixed_of};

/// Why a deploy could not run or finish. A deploy that ran and failed is not an error: it is
/// an [`Outcome::Deployed`] whose record says `failed`/`rolled_back`.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Fly could not be observed or refused before anything was touched.
    #[error("observing {app} on Fly")]
    Observe {
        /// App.
        app: String,
        /// Cause.
        #[source]
        source: Box<FlyError>,
    },
    /// The manifest asks for something not supported.
    #[error(transparent)]
    Plan(#[from] rollout::PlanError),
    /// The record store failed; nothing further was done.
    #[error("recording the deploy")]
    Store(#[from] StoreError),
}

/// Reasons of deploys stopped by the PreCheck stage start with this.
const PRECHECK_BLOCKED: &str = "pre-check blocked the deploy";

/// What a deploy call did.
#[derive(Debug)]
pub enum Outcome {
    /// No machine config drifted (count drift, if any, is in the diff and not applied).
    NothingToDo(AppDiff),
    /// Not deployed, on purpose.
    Blocked {
        /// Why.
        reason: String,
    },
    /// A rollout ran; see the record's status.
    Deployed(Box<DeployRecord>),
}

/// Runs deploys.
pub struct Deployer {
    /// Fly client.
    pub client: FlyClient,
    /// Where records go.
    pub store: Arc<RecordStore>,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Delay between health polls.
    pub poll: Duration,
    /// Becomes `true` when the process is asked to stop.
    pub stop: watch::Receiver<bool>,
    /// How long to wait for a lease someone else holds to expire before giving up.
    pub lease_wait: Duration,
    /// The manifests checkout (for the release-branch pre-check), when known.
    pub manifests: Option<std::path::PathBuf>,
}

impl Deployer {
    /// A deployer with the default health poll (500 ms) and lease wait (10 min).
    pub fn new(
        client: FlyClient,
        store: Arc<RecordStore>,
        clock: Arc<dyn Clock>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        Self {
            client,
            store,
            clock,
            poll: Duration::from_millis(500),
            stop,
            lease_wait: Duration::from_secs(600),
            manifests: None,
        }
    }

    /// Deploy `app` if its machines drifted. `commit` is the manifests' git commit, if any.
    ///
    /// # Errors
    /// [`DeployError`]: observation failed (nothing done), unsupported strategy, or the record
    /// store failed (stopped at once, leases released).
    pub async fn deploy(
        &self,
        app: &FlyApp,
        trigger: Trigger,
        commit: Option<String>,
    ) -> Result<Outcome, DeployError> {
        let name = app.app_name().to_owned();
        let unfinished = self
            .store
            .deploys(Some(&name))?
            .into_iter()
            .next()
            .filter(|r| r.status == DeployStatus::InProgress || r.needs_recovery);
        if let Some(rec) = unfinished {
            let mut rec = self.recover(app, rec).await?;
            if rec.end_health.is_none() && rec.release.is_some() {
                self.observe_end_health(&mut rec).await;
                self.store.append(&rec)?;
            }
            // Finished or rolled back: that was this pass's deploy. Halted (nothing changed,
            // superseded, or not judged): plan afresh below.
            if rec.image == app.spec.image && rec.status != DeployStatus::Halted {
                return Ok(Outcome::Deployed(Box::new(rec)));
            }
        }
        let observed =
            observe_app(&self.client, &name)
                .await
                .map_err(|source| DeployError::Observe {
                    app: name.clone(),
                    source: Box::new(source),
                })?;
        let drift = diff(app, &observed);
        let history: Vec<PastDeploy> = self
            .store
            .deploys(Some(&name))?
            .iter()
            .map(DeployRecord::past)
            .collect();
        // Mixed images (BUG-08): the manifest's image already on some machines of a group and
        // failing there → roll those machines back instead of spreading it; not allowed to →
        // stop and say so (the mixed group becomes an incident if it stays).
        let mut rollbacks = Vec::new();
        for decision in rollout::mixed::decide(&app.spec.image, &observed, &drift, &history) {
            match decision {
                rollout::mixed::MixedPlan::Forward { .. } => {}
                rollout::mixed::MixedPlan::Rollback(rb) => rollbacks.push(rb),
                rollout::mixed::MixedPlan::Escalate { group, reason } => {
                    return Ok(Outcome::Blocked {
                        reason: format!(
                            "{} fails health on machines of group {group} that already run it (mixed images); not converging forward and not rolling back automatically: {reason}",
                            app.spec.image
                        ),
                    });
                }
            }
        }
        if !rollbacks.is_empty() {
            return self
                .mixed_rollback(app, &observed, rollbacks, trigger, commit)
                .await;
        }
        let plan = rollout::plan(app, &observed, &drift)?;
        if plan.is_empty() {
            return Ok(Outcome::NothingToDo(drift));
        }
        if let Err(block) = may_deploy(
            &history,
            &plan.image,
            &app.revision(),
            // A person at the terminal (`opsctl apply`, `opsctl rollback`) acknowledges a pause.
            matches!(trigger, Trigger::Apply | Trigger::Rollback),
        ) {
            return Ok(Outcome::Blocked {
                reason: block.to_string(),
            });
        }
        let mut rec = DeployRecord {
            commit,
            revision: app.revision(),
            config_revision: opsctl_controllers::governance::config_fingerprint(app),
            previous_image: plan.touches().next().map(|s| s.from_image.clone()),
            strategy: format!("{:?}", plan.strategy).to_lowercase(),
            machines: plan
                .touches()
                .map(|s| MachineOutcome {
                    machine: s.machine.clone(),
                    group: s.group.clone(),
                    region: s.region.clone(),
                    from_image: s.from_image.clone(),
                    to_image: plan.image.clone(),
                    result: MachineResult::Pending,
                    detail: None,
                })
                .collect(),
            ..DeployRecord::start(name.clone(), trigger, plan.image.clone(), self.clock.now())
        };
        // Migrations are always human: without an approved plan for this image (`opsctl
        // approve`), a pass stops before any stage writes a record or waits (unless this
        // image's release command already succeeded).
        if let Some(cmd) = app.spec.deploy.release_command.as_deref()
            && !crate::governance::approvals::migration_approved(&self.store, &name, &plan.image)?
            && self
                .release_command_done(&name, cmd, &plan.image)?
                .is_none()
        {
            return Ok(Outcome::Blocked {
                reason: format!(
                    "release command `{cmd}` for {} needs a human: migrations are always gated; approve the plan (`opsctl pending`, `opsctl approve ID`)",
                    plan.image
                ),
            });
        }
        tracing::info!(app = %name, image = %plan.image, machines = rec.machines.len(), "deploy started");
        if !app.spec.deploy.pre_check.is_empty() {
            let repeated = self.store.deploys(Some(&name))?.into_iter().find(|r| {
                r.status == DeployStatus::Failed
                    && r.commit == rec.commit
                    && r.image == rec.image
                    && r.reason
                        .as_deref()
                        .is_some_and(|why| why.starts_with(PRECHECK_BLOCKED))
            });
            if let Some(previous) = repeated {
                // Already recorded for this commit and image: say it again, record nothing new.
                return Ok(Outcome::Blocked {
                    reason: previous.reason.unwrap_or_default(),
                });
            }
            self.enter(&mut rec, Phase::PreCheck)?;
            if !self.pre_check(app, &mut rec).await? {
                rec.finished_at = Some(self.clock.now());
                self.store.append(&rec)?;
                return Ok(Outcome::Deployed(Box::new(rec)));
            }
        }
        if let Some(oban) = app.spec.deploy.drain.as_ref().and_then(|d| d.oban.as_ref()) {
            self.enter(&mut rec, Phase::Drain)?;
            if !self.drain(oban, &mut rec).await? {
                rec.finished_at = Some(self.clock.now());
                self.store.append(&rec)?;
                return Ok(Outcome::Deployed(Box::new(rec)));
            }
        }
        // Release command (migrations): once per image, human only, before any machine.
        if let Some(stop) = self.release_command_stage(app, &mut rec).await? {
            return Ok(stop);
        }
        let result = self.run(app, &plan, &mut rec).await;
        rec.finished_at = Some(self.clock.now());
        if result.is_ok() {
            self.observe_end_health(&mut rec).await;
        }
        self.store.append(&rec)?;
        result?;
        tracing::info!(app = %name, status = rec.status.as_str(), reason = rec.reason.as_deref().unwrap_or(""), "deploy finished");
        Ok(Outcome::Deployed(Box::new(rec)))
    }

    async fn run(
        &self,
        app: &FlyApp,
        plan: &RolloutPlan,
        rec: &mut DeployRecord,
    ) -> Result<(), StoreError> {
        let name = rec.app.clone();
        self.enter(rec, Phase::Lease)?;
        // Leases first: a deploy that cannot lease every machine changes nothing, not even the
        // release list on Fly.
        // The mixed group's machines already on the image too: they are rolled back with the
        // group if the image fails (BUG-08).
        let machines: Vec<String> = plan
            .touches()
            .chain(&plan.peers)
            .map(|s| s.machine.clone())
            .collect();
        self.intend(rec, format!("lease machines {}", machines.join(", ")))?;
        let leases = match self.lease_all(&name, &machines).await {
            Ok(l) => l,
            Err(e) => {
                self.done(rec, format!("failed: {e}"))?;
                if let Some(release) = &rec.release {
                    let _ = self.client.update_release(&release.id, "failed").await;
                }
                // Fly unreachable is not the deploy's failure: halted, retried by the next pass.
                let status = if e.is_unavailable() {
                    DeployStatus::Halted
                } else {
                    DeployStatus::Failed
                };
                return self.finish(
                    rec,
                    status,
                    format!("could not lease every machine, nothing was changed: {e}"),
                );
            }
        };
        rec.leases = leases.clone();
        self.done(rec, "leased")?;
        let release = match rec.release.clone() {
            Some(release) => release,
            None => match self.create_release(rec, &plan.image).await? {
                Some(release) => release,
                None => {
                    release_all(&self.client, &name, &leases).await;
                    rec.leases.clear();
                    return self.store.append(rec);
                }
            },
        };
        let refresher = self.refresh_leases(&name, &leases);
        let outcome = self.roll(app, plan, &release, &leases, rec).await;
        refresher.abort();
        release_all(&self.client, &name, &leases).await;
        rec.leases.clear();
        outcome
    }

    /// Create the Fly release of `rec` (recorded before and after). `None` when Fly refused:
    /// the record is then finished as failed.
    async fn create_release(
        &self,
        rec: &mut DeployRecord,
        image: &str,
    ) -> Result<Option<ReleaseRef>, StoreError> {
        self.intend(rec, format!("create a release for {image}"))?;
        let strategy = rec.strategy.to_uppercase();
        match self.client.create_release(&rec.app, image, &strategy).await {
            Ok((id, version)) => {
                let release = ReleaseRef { id, version };
                rec.release = Some(release.clone());
                self.done(rec, format!("release v{version}"))?;
                let _ = self.client.update_release(&release.id, "running").await;
                Ok(Some(release))
            }
            Err(e) => {
                self.done(rec, format!("failed: {e}"))?;
                let status = if e.is_unavailable() {
                    DeployStatus::Halted
                } else {
                    DeployStatus::Failed
                };
                self.finish(
                    rec,
                    status,
                    format!("could not create a release, nothing was changed: {e}"),
                )?;
                Ok(None)
            }
        }
    }

    /// One observation of the app when a deploy that may have touched machines ends: how
    /// many machines of each group are healthy (BUG-02). Fly unseen: left `None` (unknown),
    /// never zero.
    async fn observe_end_health(&self, rec: &mut DeployRecord) {
        if rec.release.is_none() {
            return;
        }
        match self.client.list_machines(&rec.app).await {
            Ok(machines) => {
                let observed = opsctl_controllers::observed::ObservedApp {
                    name: rec.app.clone(),
                    machines: machines.iter().map(crate::fly::observe::machine).collect(),
                    releases: vec![],
                };
                rec.end_health = Some(opsctl_controllers::rollout::report::group_health(&observed));
            }
            Err(e) => {
                tracing::warn!(app = %rec.app, error = %e, "could not observe the app after the deploy; its health is unknown");
            }
        }
    }

    fn health_wait(&self, app_name: &str, app: &FlyApp) -> HealthWait {
        HealthWait {
            client: self.client.clone(),
            app: app_name.to_owned(),
            clock: self.clock.clone(),
            poll: self.poll,
            deploy: app.spec.deploy.clone(),
            machine_checks: app.spec.health.machine_checks,
            stop: self.stop.clone(),
        }
    }

    async fn roll(
        &self,
        app: &FlyApp,
        plan: &RolloutPlan,
        release: &ReleaseRef,
        leases: &Leases,
        rec: &mut DeployRecord,
    ) -> Result<(), StoreError> {
        let name = rec.app.clone();
        for canary in &plan.canaries {
            self.enter(
                rec,
                Phase::Canary {
                    group: canary.group.clone(),
                },
            )?;
            if let Err(reason) = self.canary(app, plan, release, canary, rec).await? {
                let _ = self.client.update_release(&release.id, "failed").await;
                for m in &mut rec.machines {
                    m.result = MachineResult::Skipped;
                }
                return self.finish(rec, DeployStatus::Failed, reason);
            }
        }
        if !plan.blue.is_empty() {
            self.enter(rec, Phase::BlueGreen)?;
            return self.bluegreen(app, plan, release, leases, rec).await;
        }
        let mut touched: Vec<Touched> = Vec::new();
        for (i, batch) in plan.batches.iter().enumerate() {
            if *self.stop.borrow() {
                for s in plan.batches[i..].iter().flat_map(|b| &b.steps) {
                    Self::set_result(rec, &s.machine, MachineResult::Skipped, None);
                }
                let _ = self.client.update_release(&release.id, "interrupted").await;
                rec.needs_recovery = i > 0;
                return self.finish(
                    rec,
                    DeployStatus::Halted,
                    format!(
                        "interrupted before batch {} of {}: opsctl was asked to stop",
                        i + 1,
                        plan.batches.len()
                    ),
                );
            }
            self.enter(
                rec,
                Phase::Deploy {
                    batch: i + 1,
                    of: plan.batches.len(),
                },
            )?;
            let ids: Vec<&str> = batch.steps.iter().map(|s| s.machine.as_str()).collect();
            self.intend(
                rec,
                format!(
                    "update {} to {} (release v{}, batch {}/{})",
                    ids.join(", "),
                    plan.image,
                    release.version,
                    i + 1,
                    plan.batches.len()
                ),
            )?;
            let mut tasks = JoinSet::new();
            for step in &batch.steps {
                let ctx = UpdateCtx {
                    client: self.client.clone(),
                    app: name.clone(),
                    nonce: leases.get(&step.machine).cloned(),
                };
                let desired = Desired::new(app, &step.group, plan.image.clone(), release);
                let step = step.clone();
                tasks.spawn(async move { ctx.update(step, desired).await });
            }
            let mut waits = Vec::new();
            let mut update_error = None;
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(Ok((t, version))) => {
                        waits.push((t.step.clone(), version));
                        touched.push(t);
                    }
                    Ok(Err((step, e))) => update_error = Some((step, e)),
                    Err(join) => {
                        let e = FlyError::local(
                            crate::fly::FlyErrorKind::Protocol,
                            "POST",
                            "update",
                            join.to_string(),
                        );
                        update_error = Some((batch.steps[0].clone(), e));
                    }
                }
            }
            if let Some((step, e)) = update_error {
                self.done(rec, format!("update of {} failed: {e}", step.machine))?;
                Self::set_result(
                    rec,
                    &step.machine,
                    MachineResult::Failed,
                    Some(e.to_string()),
                );
                if e.is_unavailable() {
                    // Fly could not be reached: whether the update happened is unknown and the
                    // image is not at fault. Stop without a verdict; the next pass (or a
                    // restart's recovery) sees what is there.
                    let _ = self.client.update_release(&release.id, "interrupted").await;
                    let why = format!(
                        "halted: {} could not be updated on release v{} because Fly could not be reached ({e}); no rollback on what could not be seen",
                        step.machine, release.version
                    );
                    rec.needs_recovery = true;
                    return self.finish(rec, DeployStatus::Halted, why);
                }
                let reason = format!(
                    "{} could not be updated on release v{}: {e}",
                    step.machine, release.version
                );
                return self
                    .fail_group(app, plan, release, leases, touched, rec, reason)
                    .await;
            }
            self.done(rec, "updated")?;
            let watched: Vec<(MachineStep, String)> =
                waits.into_iter().filter(|(s, _)| s.wait_healthy).collect();
            let ids: Vec<(String, String)> = watched
                .iter()
                .map(|(s, v)| (s.machine.clone(), v.clone()))
                .collect();
            let verdicts = if ids.is_empty() {
                vec![]
            } else {
                self.health_wait(&name, app).until_all_decided(&ids).await
            };
            let mut failed: Option<(MachineStep, Verdict)> = None;
            for ((step, _), (_, verdict)) in watched.into_iter().zip(verdicts) {
                match &verdict {
                    Verdict::Healthy => {
                        Self::set_result(rec, &step.machine, MachineResult::Healthy, None)
                    }
                    Verdict::Failed(f) => {
                        Self::set_result(
                            rec,
                            &step.machine,
                            MachineResult::Failed,
                            Some(f.to_string()),
                        );
                        if !matches!(failed, Some((_, Verdict::Failed(_)))) {
                            failed = Some((step, verdict));
                        }
                    }
                    Verdict::Blind { reason } | Verdict::Waiting { reason } => {
                        Self::set_result(
                            rec,
                            &step.machine,
                            MachineResult::Failed,
                            Some(format!("unknown: {reason}")),
                        );
                        if !matches!(failed, Some((_, Verdict::Failed(_)))) {
                            failed = Some((step, verdict));
                        }
                    }
                }
            }
            for s in batch.steps.iter().filter(|s| !s.wait_healthy) {
                let (result, detail) = if s.skip_launch {
                    (MachineResult::Healthy, "kept stopped (skip_launch)")
                } else {
                    (
                        MachineResult::Unverified,
                        "updated; not verified (the immediate strategy does not wait)",
                    )
                };
                Self::set_result(rec, &s.machine, result, Some(detail.into()));
            }
            match failed {
                None => self.done(rec, "healthy")?,
                Some((step, Verdict::Failed(failure))) => {
                    rec.failed_health = true;
                    self.done(rec, format!("{} failed: {failure}", step.machine))?;
                    for s in plan.batches[i + 1..].iter().flat_map(|b| &b.steps) {
                        Self::set_result(rec, &s.machine, MachineResult::Skipped, None);
                    }
                    rec.health = Some(format!("{}: {failure}", step.machine));
                    let reason = failure_reason(&step.machine, release, &failure);
                    return self
                        .fail_group(app, plan, release, leases, touched, rec, reason)
                        .await;
                }
                Some((step, verdict)) => {
                    let why = match verdict {
                        Verdict::Blind { reason } | Verdict::Waiting { reason } => reason,
                        _ => String::new(),
                    };
                    self.done(rec, format!("{}: health unknown: {why}", step.machine))?;
                    rec.health = Some(format!("unknown: {why}"));
                    let _ = self.client.update_release(&release.id, "interrupted").await;
                    rec.needs_recovery = true;
                    return self.finish(rec, DeployStatus::Halted, format!("halted without a verdict on {} (release v{}): {why}; no rollback is done on what could not be seen", step.machine, release.version));
                }
            }
        }
        self.enter(rec, Phase::HealthCheck)?;
        if let Err(reason) = self.probe_stage(app, rec).await? {
            return self
                .fail_group(app, plan, release, leases, touched, rec, reason)
                .await;
        }
        let _ = self.client.update_release(&release.id, "complete").await;
        let unverified = rec
            .machines
            .iter()
            .filter(|m| m.result == MachineResult::Unverified)
            .count();
        rec.health = Some(if unverified == 0 {
            format!("all {} machines healthy", rec.machines.len())
        } else {
            format!(
                "{unverified} of {} machines updated without a health verdict (immediate)",
                rec.machines.len()
            )
        });
        rec.status = DeployStatus::Succeeded;
        Self::mark_done(rec);
        self.store.append(rec)
    }
}

pub(super) fn failure_reason(machine: &str, release: &ReleaseRef, failure: &Failure) -> String {
    format!(
        "machine {machine} failed health on release v{}: {failure}",
        release.version
    )
}
