//! Classify: one signal plus the evidence gathered around it → a [`Verdict`] (class,
//! confidence, reason code, allowed steps).
//!
//! Runbook rules come first (the first matching rule of the runbooks that apply to the app);
//! otherwise the built-in rules below decide. They combine a log marker with the observed
//! machine state and health, never the marker alone (case BUG-20):
//!
//! | evidence | class | confidence | reason |
//! |---|---|---|---|
//! | `deploy_outage` (a deploy left a group with zero healthy machines) | outage | 0.95 | `deploy_left_zero_healthy` |
//! | every expected machine of the group down | outage | 0.95 | `all_instances_down` |
//! | some but not all down | degradation | 0.9 | `instance_down` |
//! | machine state unknown, external probes failing | outage | 0.75 | `probes_failing` |
//! | `redis_down`, probes not failing (ADR §7: Redis is a cache) | degradation | 0.9 | `dependency_down` |
//! | `postgres_down` with probes failing / without | outage 0.85 / degradation 0.8 | | `database_down` |
//! | connections, queue growth, cost, certificates, SLO burn | degradation | 0.85 | the signal kind |
//! | `mixed_images` (a group on several images > 10 min, no deploy in flight; BUG-08) | degradation | 0.9 | `mixed_images` (steps: escalate only) |
//! | only a child-process exit (`** (EXIT)`, `GenServer … terminating`), nothing down | noise | 0.9 | `child_restarted` |
//! | the same, more than 5 times in the last hour | degradation | 0.8 | `child_restarts_frequent` |
//! | a VM-death marker, but nothing down and probes passing | noise | 0.6 | `vm_restarted_recovered` (escalated: below 0.8) |
//! | `deploy_failed` (the deploy pipeline failed or rolled back) and nothing down | degradation | 0.9 | `deploy_failed_recovered` |
//! | nothing down, no marker, probes passing | noise | 0.6 | `transient` (escalated) |
//! | a log line with no known marker | unknown | 0.5 | `unrecognised_log` |
//! | machine state could not be observed | unknown | 0.4 | `state_unknown` |
//!
//! BEAM markers ([`BeamMarker`]): `erl_crash.dump`, `Kernel pid terminated`, `heart-beat
//! time-out` / `heart: … Would reboot`, `reached_max_restart_intensity` (the VM died) and
//! `** (EXIT)` / `GenServer … terminating` (a process exited; its supervisor restarts it).

use opsctl_crds::kinds::runbook::{RunbookRule, RunbookSpec};
use serde::{Deserialize, Serialize};

use super::{Classification, Step};
use crate::signal::{Signal, SignalKind};

/// What the runtime observed around a signal. Counts concern the process group (or app) the
/// signal is about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Machines that should be running (managed, not idled on purpose by autostop).
    pub machines_expected: usize,
    /// Of those, how many are down (stopped unexpectedly, failed, or checks critical); `None`
    /// when Fly could not be observed.
    pub machines_down: Option<usize>,
    /// External probes: `Some(true)` passing, `Some(false)` failing, `None` not known.
    pub probes_passing: Option<bool>,
    /// Log lines around the first signal (Fly logs), oldest first. Never secret values.
    pub logs: Vec<String>,
    /// How often this fingerprint was seen in the last hour, this signal included.
    pub occurrences_last_hour: u32,
}

/// The classification of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Class.
    pub class: Classification,
    /// 0.0 to 1.0.
    pub confidence: f64,
    /// Reason code (snake case, e.g. `all_instances_down`).
    pub reason: String,
    /// The runbook rule that decided (`runbook/rule`), `None` for the built-in rules.
    pub rule: Option<String>,
    /// Steps the runbook (or the built-in default) allows, in order.
    pub steps: Vec<Step>,
}

/// Markers in BEAM (Erlang/Elixir) logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BeamMarker {
    /// `erl_crash.dump` written: the VM died.
    CrashDump,
    /// `Kernel pid terminated`: the VM is going down.
    KernelPidTerminated,
    /// `heart-beat time-out` / `Would reboot`: heart decided the VM hung.
    HeartTimeout,
    /// A supervisor gave up (`reached_max_restart_intensity`).
    MaxRestartIntensity,
    /// `** (EXIT)` / `GenServer … terminating`: one process exited.
    ChildExit,
}

impl BeamMarker {
    /// Whether it means the whole VM died (not one process).
    pub fn is_vm_death(self) -> bool {
        !matches!(self, Self::ChildExit)
    }
}

/// Markers found in `line`.
pub fn beam_markers(line: &str) -> Vec<BeamMarker> {
    let mut out = Vec::new();
    if line.contains("erl_crash.dump") {
        out.push(BeamMarker::CrashDump);
    }
    if line.contains("Kernel pid terminated") {
        out.push(BeamMarker::KernelPidTerminated);
    }
    if line.contains("heart-beat time-out")
        || (line.contains("heart:") && line.contains("Would reboot"))
    {
        out.push(BeamMarker::HeartTimeout);
    }
    if line.contains("reached_max_restart_intensity") {
        out.push(BeamMarker::MaxRestartIntensity);
    }
    if line.contains("** (EXIT)") || (line.contains("GenServer") && line.contains("terminating")) {
        out.push(BeamMarker::ChildExit);
    }
    out
}

/// `(expected, down)` over an app's observed machines (optionally one process group): managed
/// machines that should run (a machine stopped or suspended on request, e.g. by autostop, is
/// idle, not expected; case BUG-07), and of those the ones not `started`, or `started` with a
/// check not passing. A machine whose checks have not run yet is not counted down.
pub fn machine_counts(
    machines: &[crate::observed::ObservedMachine],
    group: Option<&str>,
) -> (usize, usize) {
    use crate::observed::{CheckState, MachineState};
    let mut expected = 0;
    let mut down = 0;
    for m in machines {
        if !m.managed || m.state == MachineState::Destroyed || group.is_some_and(|g| g != m.group) {
            continue;
        }
        let idle = matches!(m.state, MachineState::Stopped | MachineState::Suspended)
            && m.last_exit
                .as_ref()
                .is_none_or(|e| e.requested_stop && e.exit_code == 0);
        if idle {
            continue;
        }
        expected += 1;
        let running = m.state == MachineState::Started;
        let failing = m.checks.iter().any(|c| c.state != CheckState::Passing);
        if !running || failing {
            down += 1;
        }
    }
    (expected, down)
}

/// The runbook rules that apply to `app`, in order: runbooks by name, rules as written.
pub fn rules_for<'a>(
    runbooks: &'a [(String, RunbookSpec)],
    app: Option<&str>,
) -> Vec<(&'a str, &'a RunbookRule)> {
    let mut books: Vec<&(String, RunbookSpec)> = runbooks
        .iter()
        .filter(|(_, rb)| rb.apps.is_empty() || app.is_some_and(|a| rb.apps.iter().any(|x| x == a)))
        .collect();
    books.sort_by(|a, b| a.0.cmp(&b.0));
    books
        .into_iter()
        .flat_map(|(name, rb)| rb.rules.iter().map(move |r| (name.as_str(), r)))
        .collect()
}

/// Whether `rule` matches `signal` (with its log lines).
pub fn rule_matches(rule: &RunbookRule, signal: &Signal, logs: &[String]) -> bool {
    let m = &rule.matcher;
    let kind_ok = m.signals.is_empty() || m.signals.iter().any(|s| s == signal.kind.as_str());
    let class_ok = m.classes.is_empty() || m.classes.contains(&signal.class);
    let logs_ok = m.log_patterns.is_empty()
        || m.log_patterns.iter().any(|p| {
            signal.detail.contains(p.as_str()) || logs.iter().any(|l| l.contains(p.as_str()))
        });
    kind_ok && class_ok && logs_ok
}

/// Classify `signal`: the first matching runbook rule, else the built-in rules.
pub fn classify(
    signal: &Signal,
    evidence: &Evidence,
    runbooks: &[(String, RunbookSpec)],
) -> Verdict {
    for (book, rule) in rules_for(runbooks, signal.app.as_deref()) {
        if rule_matches(rule, signal, &evidence.logs) {
            return Verdict {
                class: rule.classification,
                confidence: rule.confidence,
                reason: rule.name.clone(),
                rule: Some(format!("{book}/{}", rule.name)),
                steps: rule.steps.clone(),
            };
        }
    }
    builtin(signal, evidence)
}

fn verdict(class: Classification, confidence: f64, reason: &str) -> Verdict {
    Verdict {
        class,
        confidence,
        reason: reason.to_owned(),
        rule: None,
        steps: default_steps(class, reason),
    }
}

/// The built-in steps of a class (used when no runbook rule matched).
///
/// outage: rollback (when a deploy is recent), else restart, and escalate; degradation:
/// diagnose, then restart the one machine that is down, else escalate; unknown: escalate;
/// noise: nothing (escalated anyway when unsure).
pub fn default_steps(class: Classification, reason: &str) -> Vec<Step> {
    match class {
        Classification::Outage => vec![Step::Rollback, Step::RestartMachine, Step::Escalate],
        Classification::Degradation if reason == "instance_down" => {
            vec![Step::Diagnose, Step::RestartMachine, Step::Escalate]
        }
        // A group left on several images (BUG-08): a human picks forward or back; no
        // automatic action.
        Classification::Degradation if reason == "mixed_images" => vec![Step::Escalate],
        Classification::Degradation => vec![Step::Diagnose, Step::Escalate],
        Classification::Unknown => vec![Step::Diagnose, Step::Escalate],
        Classification::Noise => vec![],
    }
}

/// The built-in rules (module docs).
pub fn builtin(signal: &Signal, ev: &Evidence) -> Verdict {
    use Classification::{Degradation, Noise, Outage, Unknown};
    let probes_failing = ev.probes_passing == Some(false);
    let all_down = ev.machines_expected > 0 && ev.machines_down == Some(ev.machines_expected);
    let some_down = ev.machines_down.is_some_and(|d| d > 0) && !all_down;
    match signal.kind {
        SignalKind::DeployOutage => return verdict(Outage, 0.95, "deploy_left_zero_healthy"),
        SignalKind::RedisDown if !probes_failing && !all_down => {
            return verdict(Degradation, 0.9, "dependency_down");
        }
        SignalKind::PostgresDown => {
            return if probes_failing || all_down {
                verdict(Outage, 0.85, "database_down")
            } else {
                verdict(Degradation, 0.8, "database_down")
            };
        }
        SignalKind::PostgresConnections
        | SignalKind::QueueGrowth
        | SignalKind::CostAnomaly
        | SignalKind::CertExpiring
        | SignalKind::CertNotReady
        | SignalKind::SloBurn => return verdict(Degradation, 0.85, signal.kind.as_str()),
        SignalKind::ObserverBlind => return verdict(Unknown, 0.0, "observer_blind"),
        SignalKind::MixedImages => return verdict(Degradation, 0.9, "mixed_images"),
        _ => {}
    }
    let markers: Vec<BeamMarker> = ev
        .logs
        .iter()
        .map(String::as_str)
        .chain(std::iter::once(signal.detail.as_str()))
        .flat_map(beam_markers)
        .collect();
    let vm_death = markers.iter().any(|m| m.is_vm_death());
    let child_exit = markers.contains(&BeamMarker::ChildExit);
    if signal.kind == SignalKind::DeployFailed && ev.machines_down == Some(0) {
        // The deploy pipeline already answered (rolled back, or touched nothing) and every
        // machine is fine: recorded, diagnosed and escalated, nothing more to do.
        return verdict(Degradation, 0.9, "deploy_failed_recovered");
    }
    if all_down {
        return verdict(Outage, 0.95, "all_instances_down");
    }
    if some_down {
        return verdict(Degradation, 0.9, "instance_down");
    }
    let Some(_) = ev.machines_down else {
        return if probes_failing {
            verdict(Outage, 0.75, "probes_failing")
        } else {
            verdict(Unknown, 0.4, "state_unknown")
        };
    };
    // Nothing is down.
    if probes_failing {
        return verdict(Degradation, 0.7, "probes_failing");
    }
    if vm_death {
        return verdict(Noise, 0.6, "vm_restarted_recovered");
    }
    if child_exit {
        return if ev.occurrences_last_hour > 5 {
            verdict(Degradation, 0.8, "child_restarts_frequent")
        } else {
            verdict(Noise, 0.9, "child_restarted")
        };
    }
    if signal.kind == SignalKind::LogPattern {
        return verdict(Unknown, 0.5, "unrecognised_log");
    }
    verdict(Noise, 0.6, "transient")
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn signal(kind: SignalKind, detail: &str) -> Signal {
        Signal {
            app: Some("example-app".into()),
            kind,
            release: Some(42),
            class: String::new(),
            source: "test".into(),
            at: Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
            machine: Some("m1".into()),
            detail: detail.into(),
            deploy: None,
            blind: None,
        }
    }

    fn ev(expected: usize, down: Option<usize>, probes: Option<bool>, logs: &[&str]) -> Evidence {
        Evidence {
            machines_expected: expected,
            machines_down: down,
            probes_passing: probes,
            logs: logs.iter().map(|s| (*s).to_owned()).collect(),
            occurrences_last_hour: 1,
        }
    }

    const A: &[&str] = &[
        "[error] Supervisor MyApp.Supervisor had child MyApp.Repo exit with reason reached_max_restart_intensity",
        "Kernel pid terminated (application_controller) ({application_terminated,my_app,shutdown})",
        "Crash dump is being written to: erl_crash.dump...done",
    ];
    const B: &[&str] = &[
        "heart: Tue Mar 11 10:02:11 2025: heart-beat time-out, no activity for 65 seconds",
        "heart: Tue Mar 11 10:02:11 2025: Would reboot. Terminating.",
    ];
    const C: &[&str] = &[
        "[error] GenServer MyApp.BrokerConn terminating",
        "** (EXIT) heartbeat_timeout",
        "[info] MyApp.BrokerConn connected to broker",
    ];
    const D: &[&str] = &["[error] unexpected reply from upstream"];

    /// Case BUG-20 A–D, and the same markers under other machine states: the class comes from
    /// the marker *and* the observed state, never the marker alone.
    #[test]
    fn bug_20_beam_logs_with_machine_state() {
        use Classification::*;
        let table: &[(&[&str], Evidence, Classification, &str)] = &[
            (
                A,
                ev(2, Some(2), Some(false), A),
                Outage,
                "all_instances_down",
            ),
            (
                B,
                ev(2, Some(1), Some(true), B),
                Degradation,
                "instance_down",
            ),
            (C, ev(2, Some(0), Some(true), C), Noise, "child_restarted"),
            (
                D,
                ev(2, Some(0), Some(true), D),
                Unknown,
                "unrecognised_log",
            ),
            // The VM-death markers of A on machines that are all running again: noise, but
            // unsure (escalated by the response rules).
            (
                A,
                ev(2, Some(0), Some(true), A),
                Noise,
                "vm_restarted_recovered",
            ),
            // The heart time-out of B on both machines: like A.
            (B, ev(2, Some(2), None, B), Outage, "all_instances_down"),
            // A child exit while every machine is down is still an outage.
            (C, ev(1, Some(1), None, C), Outage, "all_instances_down"),
            // Nothing could be observed: never a guess at the app's health.
            (D, ev(2, None, None, D), Unknown, "state_unknown"),
        ];
        for (i, (_, e, class, reason)) in table.iter().enumerate() {
            let v = classify(&signal(SignalKind::LogPattern, ""), e, &[]);
            assert_eq!((v.class, v.reason.as_str()), (*class, *reason), "row {i}");
        }
        let mut frequent = ev(2, Some(0), Some(true), C);
        frequent.occurrences_last_hour = 6;
        let v = classify(&signal(SignalKind::LogPattern, ""), &frequent, &[]);
        assert_eq!(v.class, Degradation);
        let v = classify(
            &signal(SignalKind::LogPattern, ""),
            &ev(2, Some(0), Some(true), A),
            &[],
        );
        assert!(v.confidence < crate::incident::NOISE_CONFIDENCE_FLOOR);
    }

    #[test]
    fn markers_are_recognised_and_the_child_exit_is_not_vm_death() {
        assert!(beam_markers(A[2]).contains(&BeamMarker::CrashDump));
        assert!(beam_markers(A[1]).contains(&BeamMarker::KernelPidTerminated));
        assert!(beam_markers(B[0]).contains(&BeamMarker::HeartTimeout));
        assert!(beam_markers(A[0]).contains(&BeamMarker::MaxRestartIntensity));
        assert_eq!(beam_markers(C[1]), [BeamMarker::ChildExit]);
        assert!(beam_markers(D[0]).is_empty());
        // `heartbeat_timeout` (a broker connection's exit reason) is not heart's time-out.
        assert!(!beam_markers("** (EXIT) heartbeat_timeout").contains(&BeamMarker::HeartTimeout));
    }

    /// ADR §7: Redis down with HTTP fine is a degradation; Redis down with every machine down
    /// is judged by the machines.
    #[test]
    fn redis_down_with_http_fine_is_degradation() {
        let v = classify(
            &signal(SignalKind::RedisDown, ""),
            &ev(2, Some(0), Some(true), &[]),
            &[],
        );
        assert_eq!(v.class, Classification::Degradation);
        let v = classify(
            &signal(SignalKind::RedisDown, ""),
            &ev(2, Some(2), Some(false), &[]),
            &[],
        );
        assert_eq!(v.class, Classification::Outage);
    }

    #[test]
    fn bug_02_deploy_outage_is_an_outage() {
        let v = classify(
            &signal(SignalKind::DeployOutage, ""),
            &ev(1, Some(1), Some(false), &[]),
            &[],
        );
        assert_eq!(
            (v.class, v.reason.as_str()),
            (Classification::Outage, "deploy_left_zero_healthy")
        );
        assert_eq!(v.steps[0], Step::Rollback);
    }

    /// BUG-08: a group left on several images with no deploy in flight is a degradation
    /// whose only default step is to escalate (a human chooses forward or back), whatever
    /// the machines' state.
    #[test]
    fn bug_08_mixed_images_is_degradation_and_only_escalates() {
        let mut s = signal(SignalKind::MixedImages, "group app on 2 images for 11 min");
        s.class = "mixed_images:app".into();
        for e in [ev(3, Some(0), Some(true), &[]), ev(3, None, None, &[])] {
            let v = classify(&s, &e, &[]);
            assert_eq!(
                (v.class, v.reason.as_str()),
                (Classification::Degradation, "mixed_images")
            );
            assert_eq!(v.steps, vec![Step::Escalate]);
        }
        assert_eq!(
            s.fingerprint(),
            "example-app/mixed_images/42/mixed_images:app"
        );
    }

    #[test]
    fn runbook_rules_come_first_and_only_for_their_apps() {
        let yaml = "apiVersion: opsctl.dev/v1alpha1\nkind: Runbook\nmetadata: {name: lei}\nspec:\n  apps: [example-app]\n  rules:\n    - name: broker\n      match: {signals: [log_pattern], logPatterns: [BrokerConn]}\n      classification: degradation\n      confidence: 0.85\n      steps: [diagnose, escalate]\n";
        let set = opsctl_crds::load_str("rb.yaml".as_ref(), yaml).unwrap();
        let books: Vec<(String, RunbookSpec)> = set
            .runbooks
            .iter()
            .map(|m| (m.name().to_owned(), m.spec.clone()))
            .collect();
        let e = ev(2, Some(0), Some(true), C);
        let v = classify(&signal(SignalKind::LogPattern, ""), &e, &books);
        assert_eq!(v.class, Classification::Degradation);
        assert_eq!(v.rule.as_deref(), Some("lei/broker"));
        let mut other = signal(SignalKind::LogPattern, "");
        other.app = Some("other-app".into());
        assert_eq!(classify(&other, &e, &books).class, Classification::Noise);
    }

    /// Property: more machines down never makes the class milder, for every signal kind that
    /// is judged by machine state.
    #[test]
    fn more_machines_down_is_never_milder() {
        use super::super::Severity;
        let kinds = [
            SignalKind::MachineDown,
            SignalKind::CheckFailing,
            SignalKind::CrashLoop,
            SignalKind::ProbeFailed,
            SignalKind::LogPattern,
            SignalKind::DeployFailed,
        ];
        for kind in kinds {
            for expected in 1..6 {
                for logs in [A, B, C, D, &[][..]] {
                    for probes in [Some(true), Some(false), None] {
                        let mut last = None;
                        for down in 0..=expected {
                            let v =
                                builtin(&signal(kind, ""), &ev(expected, Some(down), probes, logs));
                            let s = Severity::of(v.class);
                            if down > 0 {
                                if let Some(prev) = last {
                                    assert!(s >= prev, "{kind:?} {expected} {down} {probes:?}");
                                }
                                last = Some(s);
                            }
                            if down == expected {
                                assert_eq!(v.class, Classification::Outage);
                            }
                        }
                    }
                }
            }
        }
    }
}
