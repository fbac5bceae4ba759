//! Carrying out a response's actions, each after governance's decision (acting as the
//! `responder` role): diagnose (already gathered: summarised), rollback through the deploy
//! pipeline ([`Deployer::rollback_finished`](crate::runtime::deploy::Deployer)), restart
//! through the Fly client and verify, and a gated scale request.

use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_controllers::incident::classify::{Verdict, machine_counts};
use opsctl_controllers::incident::respond::Action;
use opsctl_controllers::observed::{CheckState, MachineState};
use serde::{Deserialize, Serialize};

use super::diagnose::Diagnosis;
use super::{IncidentPipeline, records};
use crate::fly::observe::{machine as observe_machine, observe_app};
use crate::fly::{FlyClient, MachineAction};
use crate::records::{DeployRecord, DeployStatus, Record, StoreError};

/// One action of a response and how it went (kept in the incident's `data.actions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// Action kind (`diagnose`, `rollback`, `restart_machine`, `request_scale`, `escalate`).
    pub action: String,
    /// For `escalate`: the reason code.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// It did what it should (a restart: the machine is `started` with checks passing).
    pub ok: bool,
    /// Not run because an earlier action failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// What happened, for people.
    pub detail: String,
    /// UTC.
    pub at: DateTime<Utc>,
}

impl ActionResult {
    pub(super) fn new(
        action: &Action,
        at: DateTime<Utc>,
        ok: bool,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            action: action.kind().to_owned(),
            reason: match action {
                Action::Escalate { reason } => reason.clone(),
                _ => String::new(),
            },
            ok,
            skipped: false,
            detail: detail.into(),
            at,
        }
    }

    pub(super) fn ok(action: &Action, at: DateTime<Utc>, detail: impl Into<String>) -> Self {
        Self::new(action, at, true, detail)
    }

    pub(super) fn skipped(action: &Action, at: DateTime<Utc>) -> Self {
        Self {
            skipped: true,
            ..Self::new(action, at, false, "not run: an earlier action failed")
        }
    }
}

/// Run one action.
pub(super) async fn run(
    p: &IncidentPipeline,
    action: &Action,
    app: &str,
    diagnosis: &Diagnosis,
    deploy: Option<&DeployRecord>,
    verdict: &Verdict,
) -> ActionResult {
    let now = || p.deployer.clock.now();
    match action {
        Action::Diagnose => {
            let mut detail = format!(
                "{} machines, {} log lines, {} recent deploys",
                diagnosis.machines.len(),
                diagnosis.logs.len(),
                diagnosis.deploys.len()
            );
            if !diagnosis.gaps.is_empty() {
                detail.push_str(&format!("; could not read: {}", diagnosis.gaps.join("; ")));
            }
            ActionResult::ok(action, now(), detail)
        }
        Action::Rollback { deploy: id } => {
            let Some(manifest) = p.set.apps.iter().find(|a| a.app_name() == app) else {
                return ActionResult::new(
                    action,
                    now(),
                    false,
                    format!("no FlyApp manifest for {app}: cannot roll back"),
                );
            };
            if deploy.is_some_and(|d| d.rollback.is_some()) {
                return ActionResult::new(
                    action,
                    now(),
                    false,
                    format!("deploy {id} was already rolled back once; not again"),
                );
            }
            match p.deployer.rollback_finished(manifest, id).await {
                Ok(rec) => {
                    let ok = rec.status == DeployStatus::RolledBack;
                    let detail = rec.reason.clone().unwrap_or_default();
                    ActionResult::new(action, now(), ok, detail)
                }
                Err(e) => ActionResult::new(action, now(), false, e),
            }
        }
        Action::RestartMachine { machine } => {
            let targets = match machine {
                Some(m) => vec![m.clone()],
                None => match observe_app(&p.deployer.client, app).await {
                    Ok(o) => o
                        .machines
                        .iter()
                        // Expected to run and counted down, judged one machine at a time.
                        .filter(|m| machine_counts(std::slice::from_ref(*m), None) == (1, 1))
                        .map(|m| m.id.clone())
                        .collect(),
                    Err(e) => {
                        return ActionResult::new(
                            action,
                            now(),
                            false,
                            format!("could not see the machines to restart: {e}"),
                        );
                    }
                },
            };
            if targets.is_empty() {
                return ActionResult::new(action, now(), false, "no machine is down to restart");
            }
            let mut problems = Vec::new();
            for m in &targets {
                if let Err(why) = restart_and_verify(&p.deployer.client, app, m, &p.config).await {
                    problems.push(format!("{m}: {why}"));
                }
            }
            if problems.is_empty() {
                ActionResult::ok(
                    action,
                    now(),
                    format!(
                        "restarted {} and verified started with checks passing",
                        targets.join(", ")
                    ),
                )
            } else {
                ActionResult::new(action, now(), false, problems.join("; "))
            }
        }
        Action::RequestScale => ActionResult::new(
            action,
            now(),
            false,
            format!(
                "scaling {app} is for a human ({}): opsctl does not change machine counts from an incident",
                verdict.reason
            ),
        ),
        Action::Escalate { .. } => ActionResult::ok(action, now(), "escalated at close"),
    }
}

/// Restart (or start, when stopped) machine `m`, then wait until it has been `started` with
/// every check passing for `verify_stable`. A machine that goes back to `stopped`/`failed`
/// after the restart is a failed response (the LEI bead: "Application restart attempt
/// resulted in machine shutdown (exit code 0)").
async fn restart_and_verify(
    client: &FlyClient,
    app: &str,
    m: &str,
    cfg: &super::IncidentConfig,
) -> Result<(), String> {
    let before = client
        .get_machine(app, m)
        .await
        .map_err(|e| format!("could not read the machine: {e}"))?;
    let action = match before.state.as_str() {
        "stopped" | "suspended" | "created" => MachineAction::Start,
        _ => MachineAction::Restart,
    };
    client
        .machine_action(app, m, action, None)
        .await
        .map_err(|e| format!("{} refused: {e}", action.as_str()))?;
    let started = tokio::time::Instant::now();
    let mut healthy_since: Option<tokio::time::Instant> = None;
    let mut moved = false;
    let mut last: String;
    loop {
        tokio::time::sleep(cfg.poll).await;
        let elapsed = started.elapsed();
        match client.get_machine(app, m).await {
            Ok(wm) => {
                let om = observe_machine(&wm);
                let passing = !om.checks.is_empty()
                    && om.checks.iter().all(|c| c.state == CheckState::Passing);
                last = format!(
                    "state {}, checks [{}]",
                    wm.state,
                    om.checks
                        .iter()
                        .map(|c| format!("{}={:?}", c.name, c.state).to_lowercase())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if om.state == MachineState::Started && passing {
                    let since = *healthy_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= cfg.verify_stable {
                        return Ok(());
                    }
                } else {
                    healthy_since = None;
                }
                let down = matches!(om.state, MachineState::Stopped | MachineState::Failed);
                if !down {
                    moved = true;
                }
                if down && (moved || elapsed > Duration::from_secs(5).max(cfg.poll * 5)) {
                    let exit = om.last_exit.map_or(String::new(), |e| {
                        format!(
                            " (exit code {}, requested stop {})",
                            e.exit_code, e.requested_stop
                        )
                    });
                    return Err(format!(
                        "{} left the machine {}{exit}",
                        action.as_str(),
                        wm.state
                    ));
                }
            }
            Err(e) => last = format!("could not read it: {e}"),
        }
        if elapsed >= cfg.verify_timeout {
            return Err(format!(
                "not started with checks passing within {}s: {last}",
                cfg.verify_timeout.as_secs()
            ));
        }
    }
}

/// Every expected machine of `app` is `started` with checks passing (none counted down);
/// `false` when Fly cannot be seen (unknown is never healthy here: nothing is closed blind).
pub(super) async fn healthy_now(client: &FlyClient, app: &str) -> bool {
    match observe_app(client, app).await {
        Ok(o) => {
            let (expected, down) = machine_counts(&o.machines, None);
            expected > 0 && down == 0
        }
        Err(_) => false,
    }
}

impl IncidentPipeline {
    /// Run the actions in order; the first failure stops the automatic ones (escalation still
    /// runs at the end, in [`IncidentPipeline::finish`]).
    pub(super) async fn respond(
        &mut self,
        rec: &mut Record,
        verdict: &Verdict,
        actions: &[Action],
        app: &str,
        diagnosis: &Diagnosis,
        deploy: Option<&crate::records::DeployRecord>,
    ) -> Result<Vec<ActionResult>, StoreError> {
        let mut results = Vec::new();
        for action in actions {
            if matches!(action, Action::Escalate { .. }) {
                results.push(ActionResult::ok(
                    action,
                    self.deployer.clock.now(),
                    "escalation at close",
                ));
                continue;
            }
            if results.iter().any(|r: &ActionResult| !r.ok) {
                results.push(ActionResult::skipped(action, self.deployer.clock.now()));
                continue;
            }
            // Every action passes governance first (ADR §4–5): a gated or denied response is
            // not run; it fails, so the incident is escalated to a human with the rule.
            if let Some(decision) = self.govern(action, verdict, app, deploy)
                && decision.verdict != opsctl_controllers::governance::Verdict::Auto
            {
                let result = ActionResult::new(
                    action,
                    self.deployer.clock.now(),
                    false,
                    format!(
                        "{} by governance ({}): {}; a human decides",
                        decision.verdict.as_str(),
                        decision.rule,
                        decision.why
                    ),
                );
                tracing::warn!(incident = %rec.id, action = action.kind(), rule = %decision.rule, "{}", result.detail);
                records::result(rec, &result);
                self.deployer.store.append_record(rec)?;
                results.push(result);
                continue;
            }
            records::intend(rec, action, self.deployer.clock.now());
            self.deployer.store.append_record(rec)?;
            let result = run(self, action, app, diagnosis, deploy, verdict).await;
            tracing::info!(incident = %rec.id, action = action.kind(), ok = result.ok, "{}", result.detail);
            records::result(rec, &result);
            self.deployer.store.append_record(rec)?;
            results.push(result);
        }
        Ok(results)
    }

    /// Governance's decision on a response that changes something (rollback, restart,
    /// scale), acting as the `responder` role under the app's policy and burn-in; `None` for
    /// diagnosis and escalation, which change nothing. A store that cannot be read counts as
    /// no burn-in (phase 1: the most careful).
    fn govern(
        &self,
        action: &Action,
        verdict: &Verdict,
        app: &str,
        deploy: Option<&crate::records::DeployRecord>,
    ) -> Option<opsctl_controllers::governance::Decision> {
        use opsctl_controllers::governance::{self as gov, ActionKind};
        let kind = match action {
            Action::Rollback { .. } => ActionKind::Rollback,
            Action::RestartMachine { .. } => ActionKind::Restart,
            Action::RequestScale => ActionKind::Scale,
            Action::Diagnose | Action::Escalate { .. } => return None,
        };
        let (policy, _) = gov::policy_for(&self.set.policies, app);
        let burn_in =
            crate::governance::plan::app_burn_in(&self.deployer.store, app, &policy.burn_in)
                .map_or(gov::BurnIn { count: 0, phase: 1 }, |(b, _)| b);
        let ctx = gov::Context {
            known_runbook: verdict.rule.is_some(),
            outage: verdict.class == opsctl_controllers::incident::Classification::Outage,
            health_failure: deploy.is_some_and(|d| d.failed_health),
            ..gov::Context::default()
        };
        let detail = format!("incident response: {} ({})", action.kind(), verdict.reason);
        // API calls only: a few cents at most, well under every cap.
        let act = gov::Action::new(kind, app, detail, 0.0);
        Some(gov::decide(
            &act,
            gov::Role::Responder,
            &policy,
            burn_in,
            ctx,
            self.deployer.clock.now(),
        ))
    }
}
