//! From Fly's machine list to what the status, health and cost judges take
//! (`opsctl_controllers::maintenance::{machines, cost}`): the observed machine plus its
//! services' autostop/autostart settings (config `services[].autostop`, `autostart`,
//! `min_machines_running`; NOTES.md §2.3: Fly answers `autostop` as `false`/`true` or
//! `"suspend"`), its newest stop, and its starts and stops (events, newest first, unix ms;
//! NOTES.md §2.5).

use chrono::{DateTime, TimeZone, Utc};
use opsctl_controllers::maintenance::cost::{CostInput, Transition};
use opsctl_controllers::maintenance::machines::{Autostop, MachineView, Scaling, StopInfo};
use serde_json::Value;

use crate::fly::observe;
use crate::fly::wire::{self, MachineEvent};

/// The status/health view of one wire machine.
pub fn view(m: &wire::Machine) -> MachineView {
    MachineView {
        machine: observe::machine(m),
        scaling: scaling(m),
        last_stop: last_stop(&m.events),
    }
}

/// The cost view of one wire machine.
pub fn cost_input(m: &wire::Machine) -> CostInput {
    let observed = observe::machine(m);
    CostInput {
        id: m.id.clone(),
        guest: observed.guest,
        running_now: observed.state.is_running(),
        transitions: m
            .events
            .iter()
            .filter_map(|e| {
                let running = match e.kind.as_str() {
                    "start" => true,
                    "exit" | "stop" | "suspend" | "destroy" => false,
                    _ => return None,
                };
                Some(Transition {
                    at: millis(e.timestamp),
                    running,
                })
            })
            .collect(),
    }
}

fn scaling(m: &wire::Machine) -> Scaling {
    let config = m.config.as_ref().or(m.incomplete_config.as_ref());
    let mut s = Scaling::default();
    for service in config.map(|c| c.services.as_slice()).unwrap_or_default() {
        if service.get("autostart").and_then(Value::as_bool) == Some(true) {
            s.autostart = true;
        }
        let autostop = match service.get("autostop") {
            Some(Value::Bool(true)) => Autostop::Stop,
            Some(Value::String(v)) if v == "stop" => Autostop::Stop,
            Some(Value::String(v)) if v == "suspend" => Autostop::Suspend,
            _ => Autostop::Off,
        };
        if autostop != Autostop::Off {
            s.autostop = autostop;
        }
        let min = service
            .get("min_machines_running")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0);
        s.min_machines_running = s.min_machines_running.max(min);
    }
    s
}

/// The newest `exit` or `stop` event. A `stop` (or `suspend`) without an `exit_event` was
/// asked for.
fn last_stop(events: &[MachineEvent]) -> Option<StopInfo> {
    let e = events
        .iter()
        .find(|e| matches!(e.kind.as_str(), "exit" | "stop" | "suspend"))?;
    let exit = e.request.as_ref().and_then(|r| r.exit_event.as_ref());
    Some(StopInfo {
        exit_code: exit.map(|x| x.exit_code),
        oom_killed: exit.is_some_and(|x| x.oom_killed),
        requested_stop: exit.map_or(e.kind != "exit", |x| x.requested_stop),
        restarting: exit.is_some_and(|x| x.restarting),
        restart_count: e.request.as_ref().map_or(0, |r| r.restart_count),
        at: millis(e.timestamp),
    })
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(json: Value) -> wire::Machine {
        serde_json::from_value(json).expect("wire machine")
    }

    #[test]
    fn reads_autostop_autostart_and_the_newest_stop() {
        let m = wire(serde_json::json!({
            "id": "3d8d413b29d089", "state": "stopped",
            "config": {"image": "x", "metadata": {"fly_platform_version": "v2"},
                "services": [{"internal_port": 8080, "autostop": "suspend", "autostart": true, "min_machines_running": 1},
                             {"internal_port": 9090, "autostop": false}]},
            "events": [
                {"type": "exit", "status": "stopped", "source": "flyd", "timestamp": 1_700_000_060_000_i64,
                 "request": {"exit_event": {"exit_code": 0, "requested_stop": true}, "restart_count": 0}},
                {"type": "start", "status": "started", "source": "flyd", "timestamp": 1_700_000_000_000_i64}
            ]
        }));
        let v = view(&m);
        assert_eq!(
            v.scaling,
            Scaling {
                autostart: true,
                autostop: Autostop::Suspend,
                min_machines_running: 1
            }
        );
        let stop = v.last_stop.expect("stop");
        assert!(stop.requested_stop);
        assert_eq!(stop.exit_code, Some(0));
        let c = cost_input(&m);
        assert_eq!(c.transitions.len(), 2);
        assert!(!c.running_now);
    }

    #[test]
    fn autostop_true_means_stop_and_a_bare_stop_event_was_requested() {
        let m = wire(serde_json::json!({
            "id": "3d8d413b29d089", "state": "stopped",
            "config": {"image": "x", "services": [{"internal_port": 8080, "autostop": true}]},
            "events": [{"type": "stop", "status": "stopped", "source": "user", "timestamp": 1}]
        }));
        let v = view(&m);
        assert_eq!(v.scaling.autostop, Autostop::Stop);
        assert!(!v.scaling.autostart);
        assert!(v.last_stop.expect("stop").requested_stop);
    }
}
