use chrono::Duration as ChronoDuration;
use serde_json::json;

use super::*;
use crate::diff::diff;
use crate::observed::{CheckResult, ExitInfo};
use crate::testkit::{NEW, OLD, app, machine, observed, t0};
use opsctl_crds::flyapp::MachineChecksRule::{AllPassing, Ignore};

fn ids(plan: &RolloutPlan) -> Vec<Vec<&str>> {
    plan.batches
        .iter()
        .map(|b| b.steps.iter().map(|s| s.machine.as_str()).collect())
        .collect()
}

fn plan_for(n: usize, extra: serde_json::Value) -> RolloutPlan {
    let a = app(n as u32, extra);
    let o = observed((0..n).rev().map(|i| machine(&format!("m{i}"))).collect());
    plan(&a, &o, &diff(&a, &o)).unwrap()
}

#[test]
fn rolling_updates_first_machine_alone_then_max_unavailable() {
    let p = plan_for(5, json!({"deploy": {"maxUnavailable": 2}}));
    assert_eq!(
        ids(&p),
        vec![vec!["m0"], vec!["m1", "m2"], vec!["m3", "m4"]]
    );
    assert!(
        p.steps()
            .all(|s| s.wait_healthy && !s.skip_launch && s.from_image == OLD)
    );
    assert_eq!(p.image, NEW);
}

#[test]
fn fraction_rounds_up() {
    assert_eq!(batch_size(MaxUnavailable::Fraction(0.33), 4), 2);
    assert_eq!(batch_size(MaxUnavailable::Fraction(0.33), 1), 1);
    assert_eq!(batch_size(MaxUnavailable::Count(0), 3), 1);
    let p = plan_for(4, json!({}));
    assert_eq!(ids(&p), vec![vec!["m0"], vec!["m1", "m2"], vec!["m3"]]);
}

#[test]
fn lowendinsight_two_machines_one_at_a_time() {
    let p = plan_for(2, json!({"deploy": {"maxUnavailable": 1}}));
    assert_eq!(ids(&p), vec![vec!["m0"], vec!["m1"]]);
}

#[test]
fn stopped_machines_go_last_and_stay_stopped() {
    let a = app(3, json!({}));
    let stopped = ObservedMachine {
        state: MachineState::Stopped,
        ..machine("m0")
    };
    let o = observed(vec![stopped, machine("m1"), machine("m2")]);
    let p = plan(&a, &o, &diff(&a, &o)).unwrap();
    assert_eq!(ids(&p), vec![vec!["m1"], vec!["m2"], vec!["m0"]]);
    let last = &p.batches[2].steps[0];
    assert!(last.skip_launch && !last.wait_healthy);
}

/// BUG-07 (shared/cases/README.md): autostopped machines are neither unhealthy nor proof. A
/// group whose machines are all stopped gets one machine started and verified; the rest stay
/// stopped.
#[test]
fn an_all_stopped_group_verifies_one_machine() {
    let a = app(3, json!({}));
    let stopped = |id: &str| ObservedMachine {
        state: MachineState::Stopped,
        ..machine(id)
    };
    let suspended = ObservedMachine {
        state: MachineState::Suspended,
        ..machine("m2")
    };
    let o = observed(vec![stopped("m0"), stopped("m1"), suspended]);
    let p = plan(&a, &o, &diff(&a, &o)).unwrap();
    assert_eq!(ids(&p), vec![vec!["m0"], vec!["m1", "m2"]]);
    let verify = &p.batches[0].steps[0];
    assert!(verify.wait_healthy && !verify.skip_launch, "{verify:?}");
    assert!(
        p.batches[1]
            .steps
            .iter()
            .all(|s| s.skip_launch && !s.wait_healthy)
    );
}

#[test]
fn every_group_is_verified_by_at_least_one_machine() {
    for running in 0..4usize {
        for stopped in 0..4usize {
            if running + stopped == 0 {
                continue;
            }
            let a = app((running + stopped) as u32, json!({}));
            let o = observed(
                (0..running)
                    .map(|i| machine(&format!("r{i}")))
                    .chain((0..stopped).map(|i| ObservedMachine {
                        state: MachineState::Stopped,
                        ..machine(&format!("s{i}"))
                    }))
                    .collect(),
            );
            let p = plan(&a, &o, &diff(&a, &o)).unwrap();
            assert!(
                p.steps().any(|s| s.wait_healthy),
                "running={running} stopped={stopped}"
            );
            assert_eq!(p.steps().count(), running + stopped);
            let kept_stopped = stopped - usize::from(running == 0);
            assert_eq!(p.steps().filter(|s| s.skip_launch).count(), kept_stopped);
        }
    }
}

#[test]
fn immediate_is_one_batch_without_waits() {
    let p = plan_for(3, json!({"deploy": {"strategy": "immediate"}}));
    assert_eq!(ids(&p), vec![vec!["m0", "m1", "m2"]]);
    assert!(p.steps().all(|s| !s.wait_healthy));
}

#[test]
fn no_batch_is_larger_than_max_unavailable_for_any_size() {
    for n in 1..12usize {
        for max in 1..5u32 {
            let p = plan_for(n, json!({"deploy": {"maxUnavailable": max}}));
            assert_eq!(p.batches[0].steps.len(), 1, "spearhead alone");
            assert!(p.batches.iter().all(|b| b.steps.len() <= max as usize));
            assert_eq!(p.steps().count(), n, "every drifted machine exactly once");
        }
    }
}

#[test]
fn canary_creates_one_per_group_in_the_primary_region_then_rolls() {
    let a = app(
        3,
        json!({"deploy": {"strategy": "canary", "maxUnavailable": 2}, "primaryRegion": "ord"}),
    );
    let mut in_ord = machine("m2");
    in_ord.region = "ord".into();
    let o = observed(vec![machine("m0"), machine("m1"), in_ord]);
    let p = plan(&a, &o, &diff(&a, &o)).unwrap();
    assert_eq!(
        p.canaries,
        vec![Canary {
            group: "app".into(),
            region: "ord".into(),
            template: "m0".into()
        }]
    );
    assert_eq!(ids(&p), vec![vec!["m0"], vec!["m1", "m2"]]);
}

#[test]
fn bluegreen_replaces_every_drifted_machine() {
    let a = app(2, json!({"deploy": {"strategy": "bluegreen"}}));
    let o = observed(vec![machine("m1"), machine("m0")]);
    let p = plan(&a, &o, &diff(&a, &o)).unwrap();
    assert!(p.batches.is_empty() && p.canaries.is_empty());
    assert_eq!(
        p.blue
            .iter()
            .map(|s| s.machine.as_str())
            .collect::<Vec<_>>(),
        ["m0", "m1"]
    );
    assert!(!p.is_empty());
}

#[test]
fn bluegreen_refuses_mixed_images_and_machines_without_checks() {
    let a = app(2, json!({"deploy": {"strategy": "bluegreen"}}));
    let mixed = ObservedMachine {
        image: "registry.fly.io/lowendinsight:deployment-OTHER".into(),
        ..machine("m1")
    };
    let o = observed(vec![machine("m0"), mixed]);
    assert!(matches!(
        plan(&a, &o, &diff(&a, &o)),
        Err(PlanError::BlueGreenMixedImages(_))
    ));
    let unchecked = ObservedMachine {
        configured_checks: 0,
        ..machine("m1")
    };
    let o = observed(vec![machine("m0"), unchecked]);
    assert_eq!(
        plan(&a, &o, &diff(&a, &o)),
        Err(PlanError::BlueGreenWithoutChecks("m1".into()))
    );
}

fn deploy() -> DeploySpec {
    serde_json::from_value(json!({"waitTimeout": "5m", "failAfter": "30s"})).unwrap()
}

fn updated(id: &str) -> ObservedMachine {
    ObservedMachine {
        image: NEW.into(),
        version: "new".into(),
        ..machine(id)
    }
}

fn at(secs: i64) -> chrono::DateTime<Utc> {
    t0() + ChronoDuration::seconds(secs)
}

#[test]
fn healthy_needs_at_least_one_check_and_all_passing() {
    let w = Watch::new(t0());
    let no_checks = ObservedMachine {
        checks: vec![],
        ..updated("m1")
    };
    assert!(matches!(
        judge(w, Some(&no_checks), "new", &deploy(), AllPassing, at(1)).1,
        Verdict::Waiting { .. }
    ));
    assert_eq!(
        judge(w, Some(&updated("m1")), "new", &deploy(), AllPassing, at(1)).1,
        Verdict::Healthy
    );
    let old_version = machine("m1");
    assert!(matches!(
        judge(w, Some(&old_version), "new", &deploy(), AllPassing, at(1)).1,
        Verdict::Waiting { .. }
    ));
}

#[test]
fn critical_checks_fail_after_fail_after_not_before() {
    let mut m = updated("m1");
    m.checks = vec![CheckResult {
        name: "servicecheck-00-tcp-8080".into(),
        state: CheckState::Critical,
        output: "connection refused".into(),
    }];
    let (w, v) = judge(
        Watch::new(t0()),
        Some(&m),
        "new",
        &deploy(),
        AllPassing,
        at(2),
    );
    assert!(matches!(v, Verdict::Waiting { .. }));
    let (w, v) = judge(w, Some(&m), "new", &deploy(), AllPassing, at(20));
    assert!(matches!(v, Verdict::Waiting { .. }));
    let (_, v) = judge(w, Some(&m), "new", &deploy(), AllPassing, at(32));
    assert!(
        matches!(&v, Verdict::Failed(Failure::ChecksCritical { checks, output }) if checks == &["servicecheck-00-tcp-8080"] && output == "connection refused"),
        "{v:?}"
    );
}

/// BUG-01 (shared/cases/README.md): an exited machine fails the step at once, with its code.
#[test]
fn exited_machine_fails_at_once_not_at_timeout() {
    let mut m = updated("m1");
    m.state = MachineState::Stopped;
    m.checks = vec![];
    m.last_exit = Some(ExitInfo {
        exit_code: 1,
        oom_killed: false,
        requested_stop: false,
        restarting: false,
        restart_count: 0,
        at: at(8),
    });
    let (_, v) = judge(
        Watch::new(t0()),
        Some(&m),
        "new",
        &deploy(),
        AllPassing,
        at(9),
    );
    assert_eq!(
        v,
        Verdict::Failed(Failure::MachineExited {
            exit_code: 1,
            oom_killed: false
        })
    );
    // Exit code 0 that nobody asked for is also an exit, not success.
    m.last_exit.as_mut().unwrap().exit_code = 0;
    let (_, v) = judge(
        Watch::new(t0()),
        Some(&m),
        "new",
        &deploy(),
        AllPassing,
        at(9),
    );
    assert_eq!(
        v,
        Verdict::Failed(Failure::MachineExited {
            exit_code: 0,
            oom_killed: false
        })
    );
}

#[test]
fn crash_loop_is_detected() {
    let mut m = updated("m1");
    m.last_exit = Some(ExitInfo {
        exit_code: 1,
        oom_killed: false,
        requested_stop: false,
        restarting: true,
        restart_count: 2,
        at: at(3),
    });
    let (_, v) = judge(
        Watch::new(t0()),
        Some(&m),
        "new",
        &deploy(),
        AllPassing,
        at(4),
    );
    assert_eq!(
        v,
        Verdict::Failed(Failure::CrashLoop {
            exit_code: 1,
            restart_count: 2
        })
    );
}

#[test]
fn an_exit_before_the_update_does_not_count() {
    let mut m = updated("m1");
    m.last_exit = Some(ExitInfo {
        exit_code: 1,
        oom_killed: false,
        requested_stop: false,
        restarting: false,
        restart_count: 0,
        at: at(-60),
    });
    assert_eq!(
        judge(
            Watch::new(t0()),
            Some(&m),
            "new",
            &deploy(),
            AllPassing,
            at(1)
        )
        .1,
        Verdict::Healthy
    );
}

#[test]
fn timeout_fails_with_what_was_awaited() {
    let m = ObservedMachine {
        checks: vec![],
        ..updated("m1")
    };
    let (_, v) = judge(
        Watch::new(t0()),
        Some(&m),
        "new",
        &deploy(),
        AllPassing,
        at(301),
    );
    assert!(
        matches!(v, Verdict::Failed(Failure::Timeout { .. })),
        "{v:?}"
    );
}

#[test]
fn unseen_machine_is_never_a_failure() {
    for secs in [1, 100, 299, 300, 10_000] {
        let (_, v) = judge(
            Watch::new(t0()),
            None,
            "new",
            &deploy(),
            AllPassing,
            at(secs),
        );
        assert!(
            !matches!(v, Verdict::Failed(_) | Verdict::Healthy),
            "{secs}s: {v:?}"
        );
    }
    let (_, v) = judge(
        Watch::new(t0()),
        None,
        "new",
        &deploy(),
        AllPassing,
        at(301),
    );
    assert!(matches!(v, Verdict::Blind { .. }));
}

#[test]
fn at_most_one_automatic_rollback() {
    let p = plan_for(2, json!({"deploy": {"maxUnavailable": 1}}));
    let touched: Vec<MachineStep> = p.steps().take(1).cloned().collect();
    let rb = rollback_plan(&touched, false).unwrap();
    assert_eq!(rb.image, OLD);
    assert_eq!(rb.machines, vec![("m0".to_owned(), OLD.to_owned())]);
    assert_eq!(rollback_plan(&touched, true), None);
    assert_eq!(rollback_plan(&[], false), None);
}

/// `health.machineChecks: ignore`: flyctl's smoke check instead of Fly's checks.
mod machine_checks_ignored {
    use super::*;

    fn critical_since_start(started: i64) -> ObservedMachine {
        let mut m = updated("m1");
        m.last_start = Some(at(started));
        m.checks = vec![CheckResult {
            name: "readyz".into(),
            state: CheckState::Critical,
            output: "503".into(),
        }];
        m
    }

    #[test]
    fn healthy_after_the_smoke_window_whatever_the_checks() {
        let m = critical_since_start(1);
        let (w, v) = judge(Watch::new(t0()), Some(&m), "new", &deploy(), Ignore, at(5));
        assert!(matches!(v, Verdict::Waiting { .. }), "{v:?}");
        // Critical for longer than failAfter (30 s) does not matter either.
        let (_, v) = judge(w, Some(&m), "new", &deploy(), Ignore, at(11));
        assert_eq!(v, Verdict::Healthy);
        let (_, v) = judge(w, Some(&m), "new", &deploy(), Ignore, at(60));
        assert_eq!(v, Verdict::Healthy);
        // The same machine under all-passing fails on its critical check.
        let (w, _) = judge(
            Watch::new(t0()),
            Some(&m),
            "new",
            &deploy(),
            AllPassing,
            at(5),
        );
        let (_, v) = judge(w, Some(&m), "new", &deploy(), AllPassing, at(40));
        assert!(
            matches!(v, Verdict::Failed(Failure::ChecksCritical { .. })),
            "{v:?}"
        );
    }

    #[test]
    fn never_healthy_inside_the_window() {
        for started in [-100, 0, 3] {
            let mut m = critical_since_start(started);
            m.checks.clear();
            for secs in 0..10 {
                let (_, v) = judge(
                    Watch::new(t0()),
                    Some(&m),
                    "new",
                    &deploy(),
                    Ignore,
                    at(secs),
                );
                assert_ne!(v, Verdict::Healthy, "started {started}, at {secs}s");
            }
        }
    }

    #[test]
    fn a_start_before_the_update_counts_from_the_update() {
        let m = critical_since_start(-60);
        let (_, v) = judge(Watch::new(t0()), Some(&m), "new", &deploy(), Ignore, at(9));
        assert!(matches!(v, Verdict::Waiting { .. }), "{v:?}");
        let (_, v) = judge(Watch::new(t0()), Some(&m), "new", &deploy(), Ignore, at(10));
        assert_eq!(v, Verdict::Healthy);
    }

    #[test]
    fn exits_and_crash_loops_still_fail() {
        let mut exited = critical_since_start(1);
        exited.state = MachineState::Stopped;
        exited.last_exit = Some(ExitInfo {
            exit_code: 1,
            oom_killed: false,
            requested_stop: false,
            restarting: false,
            restart_count: 0,
            at: at(3),
        });
        let (_, v) = judge(
            Watch::new(t0()),
            Some(&exited),
            "new",
            &deploy(),
            Ignore,
            at(30),
        );
        assert!(
            matches!(v, Verdict::Failed(Failure::MachineExited { .. })),
            "{v:?}"
        );

        let mut looping = critical_since_start(20);
        looping.last_exit = Some(ExitInfo {
            exit_code: 1,
            oom_killed: false,
            requested_stop: false,
            restarting: true,
            restart_count: 3,
            at: at(19),
        });
        let (_, v) = judge(
            Watch::new(t0()),
            Some(&looping),
            "new",
            &deploy(),
            Ignore,
            at(35),
        );
        assert!(
            matches!(v, Verdict::Failed(Failure::CrashLoop { .. })),
            "{v:?}"
        );
    }

    #[test]
    fn a_machine_that_never_starts_times_out() {
        let mut m = critical_since_start(1);
        m.state = MachineState::Starting;
        let (_, v) = judge(
            Watch::new(t0()),
            Some(&m),
            "new",
            &deploy(),
            Ignore,
            at(301),
        );
        assert!(
            matches!(v, Verdict::Failed(Failure::Timeout { .. })),
            "{v:?}"
        );
        let (_, v) = judge(Watch::new(t0()), None, "new", &deploy(), Ignore, at(301));
        assert!(
            matches!(v, Verdict::Blind { .. }),
            "unknown is never unhealthy: {v:?}"
        );
    }
}

/// BUG-14 (shared/cases/README.md): flapping checks never fail a step unless one stays
/// critical for `failAfter` without a break. Many pseudo-random sequences of critical/warning
/// observations, 10 s apart, each run of criticals shorter than `failAfter` (30 s).
#[test]
fn flapping_checks_never_fail_a_step() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..200 {
        let mut w = Watch::new(t0());
        let mut run = 0;
        for step in 1..=25i64 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // At most two criticals in a row (20 s < failAfter 30 s), then a break.
            let critical = run < 2 && (seed >> 33).is_multiple_of(2);
            run = if critical { run + 1 } else { 0 };
            let mut m = updated("m1");
            m.checks[0].state = if critical {
                CheckState::Critical
            } else {
                CheckState::Warning
            };
            let (next, v) = judge(w, Some(&m), "new", &deploy(), AllPassing, at(step * 10));
            w = next;
            assert!(
                !matches!(v, Verdict::Failed(Failure::ChecksCritical { .. })),
                "step {step}: {v:?}"
            );
        }
    }
}

/// A user test caught a machine mid-update (`replacing`, another operator's rollout) being
/// updated with `skip_launch` and left stopped. Running-ish states are launched and judged.
#[test]
fn a_machine_caught_mid_update_is_launched_and_judged() {
    for state in [
        MachineState::Replacing,
        MachineState::Starting,
        MachineState::Failed,
    ] {
        let a = app(2, json!({}));
        let o = observed(vec![
            ObservedMachine {
                state: state.clone(),
                ..machine("m0")
            },
            machine("m1"),
        ]);
        let p = plan(&a, &o, &diff(&a, &o)).unwrap();
        assert!(
            p.steps().all(|s| !s.skip_launch && s.wait_healthy),
            "{state:?}: {p:?}"
        );
    }
}
