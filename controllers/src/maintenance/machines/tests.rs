use super::*;
use crate::maintenance::Status;
use crate::testkit::{machine, t0};

fn view(id: &str, state: MachineState, stop: Option<StopInfo>, scaling: Scaling) -> MachineView {
    let mut m = machine(id);
    m.state = state;
    MachineView {
        machine: m,
        scaling,
        last_stop: stop,
    }
}

fn requested() -> Option<StopInfo> {
    Some(StopInfo {
        exit_code: Some(0),
        oom_killed: false,
        requested_stop: true,
        restarting: false,
        restart_count: 0,
        at: t0(),
    })
}

fn exited(code: i32) -> Option<StopInfo> {
    Some(StopInfo {
        exit_code: Some(code),
        requested_stop: false,
        ..requested().unwrap()
    })
}

const AUTO: Scaling = Scaling {
    autostart: true,
    autostop: Autostop::Stop,
    min_machines_running: 1,
};

const ALWAYS_ON: Scaling = Scaling {
    autostart: false,
    autostop: Autostop::Off,
    min_machines_running: 0,
};

/// BUG-07 (../shared/cases/README.md): m1 started and passing, m2 stopped by autostop
/// (requested, exit 0), m3 suspended by autostop: m2 and m3 are idle, no alert, no signal.
#[test]
fn bug_07_autostopped_and_suspended_machines_are_idle_not_down() {
    let machines = [
        view("m1", MachineState::Started, None, AUTO),
        view("m2", MachineState::Stopped, requested(), AUTO),
        view(
            "m3",
            MachineState::Suspended,
            None,
            Scaling {
                autostop: Autostop::Suspend,
                ..AUTO
            },
        ),
    ];
    assert_eq!(machine_status(&machines[1]), MachineStatus::Idle);
    assert_eq!(machine_status(&machines[2]), MachineStatus::Idle);
    let j = judge("example-app", &machines, t0());
    assert_eq!(j.status, Status::Ok, "{j:?}");
    assert!(j.signals.is_empty());
    assert!(j.summary.contains("1 running, 2 idle"), "{}", j.summary);
}

/// BUG-07, second rule: a machine that stopped with a non-zero exit, or exited without a stop
/// request, is not idle even when autostart is on.
#[test]
fn bug_07_a_machine_that_stopped_by_itself_is_down_even_with_autostart() {
    for (stop, class) in [
        (exited(1), "exit:1"),
        (exited(0), "exit:0"),
        (exited(137), "exit:137"),
    ] {
        let v = view("m2", MachineState::Stopped, stop, AUTO);
        let MachineStatus::Down { class: got, .. } = machine_status(&v) else {
            panic!("{class}: not down");
        };
        assert_eq!(got, class);
        let j = judge(
            "example-app",
            &[view("m1", MachineState::Started, None, AUTO), v],
            t0(),
        );
        assert_eq!(j.status, Status::Alert);
        assert_eq!(j.signals.len(), 1);
        let s = &j.signals[0];
        assert_eq!(s.kind, SignalKind::MachineDown);
        assert_eq!(s.machine.as_deref(), Some("m2"));
        assert_eq!(
            s.fingerprint(),
            format!("example-app/machine_down/109/{class}")
        );
    }
}

#[test]
fn oom_failed_and_stopped_without_autostart_are_down() {
    let oom = StopInfo {
        oom_killed: true,
        exit_code: Some(137),
        ..exited(137).unwrap()
    };
    let cases = [
        (view("m1", MachineState::Stopped, Some(oom), AUTO), "oom"),
        (view("m2", MachineState::Failed, None, AUTO), "failed"),
        // `fly machine stop` on an always-on app: requested, but nothing will start it.
        (
            view("m3", MachineState::Stopped, requested(), ALWAYS_ON),
            "stopped",
        ),
        (
            view("m4", MachineState::Stopped, None, ALWAYS_ON),
            "stopped",
        ),
    ];
    for (v, class) in &cases {
        match machine_status(v) {
            MachineStatus::Down { class: got, .. } => assert_eq!(got, *class),
            other => panic!("{class}: {other:?}"),
        }
    }
}

#[test]
fn a_crash_loop_is_its_own_kind() {
    let looping = StopInfo {
        restarting: true,
        restart_count: 4,
        ..exited(1).unwrap()
    };
    let j = judge(
        "example-app",
        &[view("m1", MachineState::Stopped, Some(looping), ALWAYS_ON)],
        t0(),
    );
    assert_eq!(j.signals[0].kind, SignalKind::CrashLoop);
    assert_eq!(j.signals[0].class, "exit:1");
}

#[test]
fn running_and_transient_states_are_not_down() {
    for state in [
        MachineState::Started,
        MachineState::Starting,
        MachineState::Replacing,
        MachineState::Stopping,
        MachineState::Other("restarting".into()),
    ] {
        let v = view("m1", state.clone(), exited(1), ALWAYS_ON);
        assert_eq!(machine_status(&v), MachineStatus::Running, "{state:?}");
    }
}

#[test]
fn fewer_started_machines_than_min_machines_running_is_an_alert() {
    let machines = [
        view("m1", MachineState::Stopped, requested(), AUTO),
        view("m2", MachineState::Stopped, requested(), AUTO),
    ];
    let j = judge("example-app", &machines, t0());
    assert_eq!(j.status, Status::Alert);
    assert_eq!(j.signals.len(), 1, "{:?}", j.signals);
    assert_eq!(j.signals[0].class, "below_min_running:app");
    assert_eq!(j.signals[0].machine, None);
    // min 0: all idle is fine (scale to zero).
    let zero = Scaling {
        min_machines_running: 0,
        ..AUTO
    };
    let machines = [view("m1", MachineState::Stopped, requested(), zero)];
    assert_eq!(judge("example-app", &machines, t0()).status, Status::Ok);
}

#[test]
fn unmanaged_machines_are_not_judged() {
    let mut v = view("m9", MachineState::Failed, exited(1), ALWAYS_ON);
    v.machine.managed = false;
    let j = judge("example-app", &[v], t0());
    assert_eq!(j.status, Status::Ok);
    assert!(j.summary.contains("of 0 managed"), "{}", j.summary);
}

/// BUG-07's kind, over every combination of stopped-like state, exit, request, OOM and
/// autostart: a machine is idle exactly when it was stopped on request (or never ran) without
/// the OOM killer and autostart will bring it back; everything else that does not run is down,
/// and an idle machine never raises a signal.
#[test]
fn idle_exactly_when_requested_and_autostart_over_all_combinations() {
    for state in [
        MachineState::Stopped,
        MachineState::Suspended,
        MachineState::Created,
    ] {
        for code in [None, Some(0), Some(1), Some(137)] {
            for requested in [false, true] {
                for oom in [false, true] {
                    for autostart in [false, true] {
                        let stop = code.map(|c| StopInfo {
                            exit_code: Some(c),
                            oom_killed: oom,
                            requested_stop: requested,
                            restarting: false,
                            restart_count: 0,
                            at: t0(),
                        });
                        let scaling = Scaling {
                            autostart,
                            autostop: Autostop::Stop,
                            min_machines_running: 0,
                        };
                        let v = view("m1", state.clone(), stop.clone(), scaling);
                        let expect_idle = autostart
                            && stop
                                .as_ref()
                                .is_none_or(|s| s.requested_stop && !s.oom_killed);
                        let got = machine_status(&v);
                        let case = format!(
                            "{state:?} {code:?} requested={requested} oom={oom} autostart={autostart}"
                        );
                        if expect_idle {
                            assert_eq!(got, MachineStatus::Idle, "{case}");
                            assert!(judge("a", &[v], t0()).signals.is_empty(), "{case}");
                        } else {
                            assert!(matches!(got, MachineStatus::Down { .. }), "{case}: {got:?}");
                        }
                    }
                }
            }
        }
    }
}
