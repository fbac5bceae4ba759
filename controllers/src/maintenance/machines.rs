//! Fly machine status (ADR maintenance table: every 15 min): a managed machine that should run
//! but is `stopped` or `failed` is an alert — except a machine that autostop stopped or
//! suspended while autostart is on, which is idle, not down (case BUG-07; Fly docs
//! <https://fly.io/docs/launch/autostop-autostart>).
//!
//! Per machine ([`machine_status`]):
//! - `started`, `starting`, `replacing` (an update in flight), … → running.
//! - `failed` → down, class `failed`.
//! - `stopped`/`suspended`/`created`, judged by the newest stop (an `exit` or `stop` event,
//!   Fly's `exit_event`, NOTES.md §2.5):
//!   - killed by the OOM killer → down, `oom`;
//!   - a non-zero exit nobody asked for → down, `exit:N` (a [`SignalKind::CrashLoop`] when
//!     flyd is restarting it again and again: flyctl's crash test, `restart_count > 1`);
//!   - exit code 0 that nobody asked for → down, `exit:0` (stopped unexpectedly, BUG-07);
//!   - a requested stop (autostop is one, `fly machine stop` another) with autostart on →
//!     **idle**;
//!   - a requested stop with autostart off → down, `stopped`: nothing will start it again.
//!
//! Per process group: fewer started machines than the largest `min_machines_running` of its
//! services → down, `below_min_running:<group>`. Unmanaged machines (no
//! `fly_platform_version=v2`, or flyctl's reserved groups) are not judged.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Judgement, signal};
use crate::observed::{MachineState, ObservedMachine};
use crate::signal::{Signal, SignalKind};

/// The check's name in signal `source`s and records.
pub const SOURCE: &str = "maintenance/machine_status";

/// A machine as the status check sees it: the observed machine plus what its services say
/// about autostop/autostart and its newest stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineView {
    /// The machine (state, group, managed, release, checks, guest).
    pub machine: ObservedMachine,
    /// Autostop/autostart settings of its services.
    pub scaling: Scaling,
    /// The newest stop (`exit` or `stop` event), if any.
    pub last_stop: Option<StopInfo>,
}

/// Fly Proxy's autostop/autostart settings of one machine's services (config
/// `services[].autostop`, `autostart`, `min_machines_running`; NOTES.md §2.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaling {
    /// Fly Proxy starts the machine on a request (any service has `autostart: true`).
    pub autostart: bool,
    /// What Fly Proxy does to an idle machine.
    pub autostop: Autostop,
    /// Largest `min_machines_running` of its services (0 when none says).
    pub min_machines_running: u32,
}

/// `services[].autostop`: Fly answers `false`/`true` for off/stop and `"suspend"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Autostop {
    /// Never stopped for idleness.
    #[default]
    Off,
    /// Stopped when idle.
    Stop,
    /// Suspended when idle.
    Suspend,
}

/// The newest stop of a machine, from its newest `exit` (or `stop`) event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopInfo {
    /// Exit code; `None` when the event carries no `exit_event`.
    pub exit_code: Option<i32>,
    /// Killed by the OOM killer.
    pub oom_killed: bool,
    /// Someone (a user, Fly Proxy's autostop) asked for the stop. A `stop` event without an
    /// `exit_event` counts as requested.
    pub requested_stop: bool,
    /// flyd will restart it.
    pub restarting: bool,
    /// How often flyd has restarted it.
    pub restart_count: u32,
    /// When (UTC).
    pub at: DateTime<Utc>,
}

/// What one machine is, for the status check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum MachineStatus {
    /// Running or about to.
    Running,
    /// Stopped or suspended on request with autostart on: idle, not down (BUG-07).
    Idle,
    /// Should run and does not.
    Down {
        /// Stable class (`failed`, `oom`, `exit:1`, `exit:0`, `stopped`).
        class: String,
        /// A crash loop rather than a single exit.
        crash_loop: bool,
        /// Words for people.
        why: String,
    },
    /// Not managed by Fly Launch: not judged.
    Unmanaged,
}

/// The status of one machine (rules in the module docs).
pub fn machine_status(v: &MachineView) -> MachineStatus {
    let m = &v.machine;
    if !m.managed {
        return MachineStatus::Unmanaged;
    }
    match &m.state {
        MachineState::Failed => MachineStatus::Down {
            class: "failed".into(),
            crash_loop: false,
            why: format!("machine {} is failed", m.id),
        },
        MachineState::Stopped | MachineState::Suspended | MachineState::Created => {
            stopped_status(m, v.scaling, v.last_stop.as_ref())
        }
        MachineState::Destroyed => MachineStatus::Unmanaged,
        _ => MachineStatus::Running,
    }
}

fn stopped_status(m: &ObservedMachine, scaling: Scaling, stop: Option<&StopInfo>) -> MachineStatus {
    let state = m.state.as_str();
    let down = |class: String, crash_loop: bool, why: String| MachineStatus::Down {
        class,
        crash_loop,
        why,
    };
    if let Some(s) = stop {
        if s.oom_killed {
            return down(
                "oom".into(),
                false,
                format!("machine {} is {state}: killed by the OOM killer", m.id),
            );
        }
        let code = s.exit_code.unwrap_or(0);
        if !s.requested_stop && code != 0 {
            let crash_loop = s.restarting && s.restart_count > 1;
            return down(
                format!("exit:{code}"),
                crash_loop,
                format!(
                    "machine {} is {state}: its process exited with code {code}{}",
                    m.id,
                    if crash_loop {
                        format!(", restarted {} times", s.restart_count)
                    } else {
                        String::new()
                    }
                ),
            );
        }
        if !s.requested_stop {
            return down(
                "exit:0".into(),
                false,
                format!(
                    "machine {} is {state}: its process exited (code 0) without a stop request",
                    m.id
                ),
            );
        }
    }
    if scaling.autostart {
        return MachineStatus::Idle;
    }
    down(
        "stopped".into(),
        false,
        format!(
            "machine {} is {state} and autostart is off: nothing will start it",
            m.id
        ),
    )
}

/// Judge the machines of `app` (every machine Fly listed for it).
pub fn judge(app: &str, machines: &[MachineView], now: DateTime<Utc>) -> Judgement {
    let mut signals: Vec<Signal> = Vec::new();
    let (mut running, mut idle, mut down) = (0, 0, 0);
    let mut groups: std::collections::BTreeMap<&str, (u32, u32)> = Default::default();
    for v in machines {
        let m = &v.machine;
        let status = machine_status(v);
        if status == MachineStatus::Unmanaged {
            continue;
        }
        let g = groups.entry(m.group.as_str()).or_default();
        g.1 = g.1.max(v.scaling.min_machines_running);
        match status {
            MachineStatus::Running => {
                running += 1;
                if m.state == MachineState::Started {
                    g.0 += 1;
                }
            }
            MachineStatus::Idle => idle += 1,
            MachineStatus::Down {
                class,
                crash_loop,
                why,
            } => {
                down += 1;
                let kind = if crash_loop {
                    SignalKind::CrashLoop
                } else {
                    SignalKind::MachineDown
                };
                let mut s = signal(app, kind, class, SOURCE, now, why);
                s.machine = Some(m.id.clone());
                s.release = m.release_version;
                signals.push(s);
            }
            MachineStatus::Unmanaged => {}
        }
    }
    for (group, (started, min)) in &groups {
        if started < min {
            signals.push(signal(
                app,
                SignalKind::MachineDown,
                format!("below_min_running:{group}"),
                SOURCE,
                now,
                format!(
                    "group {group}: {started} machine(s) started, min_machines_running is {min}"
                ),
            ));
        }
    }
    let summary = format!(
        "{running} running, {idle} idle (autostopped), {down} down of {} managed",
        running + idle + down
    );
    Judgement::alert(summary, signals)
}

#[cfg(test)]
mod tests;
