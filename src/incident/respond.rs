//! Carrying out a response's actions: diagnose (already gathered: summarised), rollback
//! through the deploy pipeline ([`Deployer::rollback_finished`](crate::runtime::deploy::Deployer)),
//! restart through the Fly client and verify, and a gated scale request.

use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_controllers::incident::classify::{Verdict, machine_counts};
use opsctl_controllers::incident::respond::Action;
use opsctl_controllers::observed::{CheckState, MachineState};
use serde::{Deserialize, Serialize};

use super::IncidentPipeline;
use super::diagnose::Diagnosis;
use crate::fly::observe::{machine as observe_machine, observe_app};
use crate::fly::{FlyClient, MachineAction};
use crate::records::{DeployRecord, DeployStatus};

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
