//! What a finished deploy tells the incident pipeline (ADR §2: `… → Rollback → alert →
//! postmortem`; case BUG-02: a deploy that leaves zero healthy machines is an outage, whatever
//! the deploy tool's own exit status said).
//!
//! The runtime observes the app once when a deploy ends and keeps, per process group, how
//! many machines that should run were healthy ([`group_health`]); [`signals`] turns the end of
//! the deploy into [`Signal`]s. Both are pure: the caller hands the signals on.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::phase::Outcome;
use crate::observed::{CheckState, MachineState, ObservedApp, ObservedMachine};
use crate::signal::{Signal, SignalKind};

/// Health of one process group when a deploy ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupHealth {
    /// Process group.
    pub group: String,
    /// Machines that should run: running, or exited without being asked to stop. Machines
    /// stopped on request (autostop, `skip_launch`) are not counted.
    pub expected: usize,
    /// Of those, started with every configured check passing (a machine with no check:
    /// started).
    pub healthy: usize,
}

/// Per-group health of `observed`'s managed machines, groups in name order.
pub fn group_health(observed: &ObservedApp) -> Vec<GroupHealth> {
    let mut groups: BTreeMap<&str, GroupHealth> = BTreeMap::new();
    for m in observed.managed() {
        let g = groups.entry(&m.group).or_insert_with(|| GroupHealth {
            group: m.group.clone(),
            expected: 0,
            healthy: 0,
        });
        if !should_run(m) {
            continue;
        }
        g.expected += 1;
        if is_healthy(m) {
            g.healthy += 1;
        }
    }
    groups.into_values().collect()
}

fn should_run(m: &ObservedMachine) -> bool {
    let asked_to_stop = m.last_exit.as_ref().is_some_and(|e| e.requested_stop);
    m.state.is_running() || !asked_to_stop && matches!(m.state, MachineState::Stopped)
}

fn is_healthy(m: &ObservedMachine) -> bool {
    m.state == MachineState::Started
        && if m.configured_checks == 0 {
            true
        } else {
            !m.checks.is_empty() && m.checks.iter().all(|c| c.state == CheckState::Passing)
        }
}

/// The end of a deploy, as [`signals`] needs it (the runtime converts its deploy record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployEnd {
    /// Fly app.
    pub app: String,
    /// Deploy record id.
    pub deploy: String,
    /// Fly release version of the deploy, when one was created.
    pub release: Option<i64>,
    /// How it ended.
    pub outcome: Outcome,
    /// A machine failed health (not an API error, not a pre-check).
    pub failed_health: bool,
    /// Per-group health when it ended; `None` when the app could not be observed then.
    pub groups: Option<Vec<GroupHealth>>,
    /// Why it ended as it did, in words.
    pub reason: Option<String>,
    /// When it ended (UTC).
    pub at: DateTime<Utc>,
}

/// The signals a finished deploy raises, for the incident pipeline:
/// - [`SignalKind::DeployOutage`] (class `zero_healthy:<group>`) for each process group with
///   machines that should run and none healthy (BUG-02), whatever the outcome;
/// - [`SignalKind::DeployFailed`] (class = the outcome: `rolled_back`, `rollback_failed`,
///   `failed`) when a machine failed health, or when the rollback failed or was not started.
///
/// Nothing for a success with every group healthy, for a halt (unknown is not a fault), or
/// for a pre-check, drain or release-command failure (no machine was touched; the release
/// command's own escalation covers it). Groups that could not be observed raise nothing.
pub fn signals(end: &DeployEnd) -> Vec<Signal> {
    let base = |kind: SignalKind, class: String, detail: String| Signal {
        app: Some(end.app.clone()),
        kind,
        release: end.release,
        class,
        source: "deploy".into(),
        at: end.at,
        machine: None,
        detail,
        deploy: Some(end.deploy.clone()),
        blind: None,
    };
    let mut out = Vec::new();
    for g in end.groups.iter().flatten() {
        if g.expected > 0 && g.healthy == 0 {
            out.push(base(
                SignalKind::DeployOutage,
                format!("zero_healthy:{}", g.group),
                format!(
                    "deploy_left_zero_healthy: 0 of {} machine(s) of group {} healthy after deploy {}",
                    g.expected, g.group, end.deploy
                ),
            ));
        }
    }
    let class = match end.outcome {
        Outcome::RollbackFailed => Some("rollback_failed"),
        Outcome::RolledBack if end.failed_health => Some("rolled_back"),
        Outcome::Failed if end.failed_health => Some("failed"),
        _ => None,
    };
    if let Some(class) = class {
        out.push(base(
            SignalKind::DeployFailed,
            class.into(),
            end.reason.clone().unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observed::{CheckResult, ExitInfo};
    use crate::testkit::{machine, observed, t0};

    fn critical(id: &str) -> ObservedMachine {
        let mut m = machine(id);
        m.checks[0].state = CheckState::Critical;
        m
    }

    fn end(outcome: Outcome, groups: Option<Vec<GroupHealth>>) -> DeployEnd {
        DeployEnd {
            app: "lowendinsight".into(),
            deploy: "deploy-01".into(),
            release: Some(42),
            outcome,
            failed_health: true,
            groups,
            reason: Some("machine m1 failed health on release v42".into()),
            at: t0(),
        }
    }

    #[test]
    fn group_health_counts_machines_that_should_run() {
        let mut autostopped = machine("m4");
        autostopped.state = MachineState::Stopped;
        autostopped.checks = vec![];
        autostopped.last_exit = Some(ExitInfo {
            exit_code: 0,
            oom_killed: false,
            requested_stop: true,
            restarting: false,
            restart_count: 0,
            at: t0(),
        });
        let mut crashed = machine("m5");
        crashed.state = MachineState::Stopped;
        crashed.last_exit = Some(ExitInfo {
            requested_stop: false,
            exit_code: 1,
            ..autostopped.last_exit.clone().unwrap()
        });
        let mut worker = machine("w1");
        worker.group = "worker".into();
        worker.configured_checks = 0;
        worker.checks = vec![];
        let mut no_results_yet = machine("m6");
        no_results_yet.checks = vec![];
        let mut warning = machine("m7");
        warning.checks.push(CheckResult {
            name: "readyz".into(),
            state: CheckState::Warning,
            output: String::new(),
        });
        let seen = observed(vec![
            machine("m1"),
            critical("m2"),
            autostopped,
            crashed,
            worker,
            no_results_yet,
            warning,
        ]);
        assert_eq!(
            group_health(&seen),
            vec![
                GroupHealth {
                    group: "app".into(),
                    expected: 5,
                    healthy: 1
                },
                GroupHealth {
                    group: "worker".into(),
                    expected: 1,
                    healthy: 1
                },
            ]
        );
    }

    /// BUG-02: the deploy's single machine stayed started but never passed its check: the
    /// outage is signalled even though the deploy "only" failed.
    #[test]
    fn zero_healthy_machines_in_a_group_is_an_outage() {
        let groups = group_health(&observed(vec![critical("m1")]));
        let sigs = signals(&end(Outcome::RollbackFailed, Some(groups)));
        let kinds: Vec<(SignalKind, &str)> =
            sigs.iter().map(|s| (s.kind, s.class.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (SignalKind::DeployOutage, "zero_healthy:app"),
                (SignalKind::DeployFailed, "rollback_failed"),
            ]
        );
        assert_eq!(
            sigs[0].fingerprint(),
            "lowendinsight/deploy_outage/42/zero_healthy:app"
        );
        assert_eq!(sigs[0].deploy.as_deref(), Some("deploy-01"));
        assert!(sigs[0].detail.contains("0 of 1"), "{}", sigs[0].detail);
    }

    #[test]
    fn a_restored_service_raises_only_the_failed_deploy() {
        let healthy = group_health(&observed(vec![machine("m1"), machine("m2")]));
        let sigs = signals(&end(Outcome::RolledBack, Some(healthy.clone())));
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].kind, SignalKind::DeployFailed);
        assert_eq!(sigs[0].class, "rolled_back");
        // Success, halts and failures that touched no machine raise nothing.
        let ok = DeployEnd {
            failed_health: false,
            ..end(Outcome::Succeeded, Some(healthy.clone()))
        };
        assert!(signals(&ok).is_empty());
        let halted = DeployEnd {
            failed_health: false,
            ..end(Outcome::Halted, None)
        };
        assert!(signals(&halted).is_empty(), "unknown is not a fault");
        let precheck = DeployEnd {
            failed_health: false,
            ..end(Outcome::Failed, Some(healthy))
        };
        assert!(signals(&precheck).is_empty());
    }

    #[test]
    fn unobserved_groups_raise_no_outage() {
        let sigs = signals(&end(Outcome::RollbackFailed, None));
        assert!(sigs.iter().all(|s| s.kind != SignalKind::DeployOutage));
    }
}
