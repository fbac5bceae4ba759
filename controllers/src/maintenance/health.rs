//! App health (ADR maintenance table: every 5 min): Fly's machine checks on the machines that
//! run, plus the `FlyApp`'s external probes (`spec.health`). A failure is a signal for the
//! incident pipeline.
//!
//! - Machine checks count only on `started`, managed machines, and only under
//!   `machineChecks: all-passing`: a stopped or autostopped machine reports no checks and is
//!   not unhealthy (case BUG-07); that a machine should run is [`super::machines`]' call. A
//!   check `critical` (or `warning`, which flyctl counts as not passing) →
//!   [`SignalKind::CheckFailing`], class `critical:<check>`. A started machine with no results
//!   yet has nothing to judge (Fly fills `checks` after the first run, NOTES.md §2.6).
//! - A probe that got a wrong answer → [`SignalKind::ProbeFailed`] with the runtime's class
//!   (`status:503`, `body`). A probe that got no answer (DNS, connect, timeout) is unknown.
//! - Fly's API unreadable → unknown for the machine part, blindness class
//!   [`super::FLY_API_BLIND`] with no app, so one Fly outage is one alert (BUG-30).
//!
//! Any app signal makes the judgement an alert; otherwise any unknown part makes it unknown.

use chrono::{DateTime, Utc};
use opsctl_crds::flyapp::MachineChecksRule;
use serde::{Deserialize, Serialize};

use super::machines::MachineView;
use super::{FLY_API_BLIND, Judgement, Observation, signal};
use crate::observed::{CheckState, MachineState};
use crate::signal::{Blind, SignalKind};

/// The check's name in signal `source`s and records.
pub const SOURCE: &str = "maintenance/app_health";

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSeen {
    /// The probe's URL without credentials or query (for people).
    pub url: String,
    /// `Seen(())`: passed; `Down`: a wrong answer; `Unknown`: no answer.
    pub result: Observation<()>,
}

/// Judge the app's health from its machines (as listed by Fly, or unknown) and probes.
pub fn judge(
    app: &str,
    machines: &Observation<Vec<MachineView>>,
    rule: MachineChecksRule,
    probes: &[ProbeSeen],
    now: DateTime<Utc>,
) -> Judgement {
    let mut signals = Vec::new();
    let mut parts = Vec::new();
    let mut blind: Option<(Option<&str>, Blind, &str, String)> = None;
    match (machines, rule) {
        (_, MachineChecksRule::Ignore) => parts.push("machine checks ignored".to_owned()),
        (Observation::Seen(list), MachineChecksRule::AllPassing) => {
            let started: Vec<&MachineView> = list
                .iter()
                .filter(|v| v.machine.managed && v.machine.state == MachineState::Started)
                .collect();
            let mut failing = 0;
            for v in &started {
                let bad: Vec<_> = v
                    .machine
                    .checks
                    .iter()
                    .filter(|c| c.state != CheckState::Passing)
                    .collect();
                if !bad.is_empty() {
                    failing += 1;
                }
                for c in bad {
                    let state = if c.state == CheckState::Warning {
                        "warning"
                    } else {
                        "critical"
                    };
                    let mut s = signal(
                        app,
                        SignalKind::CheckFailing,
                        format!("{state}:{}", c.name),
                        SOURCE,
                        now,
                        format!("check {} is {state} on machine {}", c.name, v.machine.id),
                    );
                    s.machine = Some(v.machine.id.clone());
                    s.release = v.machine.release_version;
                    signals.push(s);
                }
            }
            parts.push(format!(
                "{} of {} started machine(s) passing their checks",
                started.len() - failing,
                started.len()
            ));
        }
        (Observation::Down { reason, .. } | Observation::Unknown { reason }, _) => {
            parts.push(format!("machines unknown ({reason})"));
            blind = Some((
                None,
                Blind::FlyApi,
                FLY_API_BLIND,
                format!("Fly's machine list: {reason}"),
            ));
        }
    }
    let mut passed = 0;
    for p in probes {
        match &p.result {
            Observation::Seen(()) => passed += 1,
            Observation::Down { class, reason } => signals.push(signal(
                app,
                SignalKind::ProbeFailed,
                class.clone(),
                SOURCE,
                now,
                format!("probe {}: {reason}", p.url),
            )),
            Observation::Unknown { reason } => {
                if blind.is_none() {
                    blind = Some((
                        Some(app),
                        Blind::Dependency,
                        "probe",
                        format!("probe {}: {reason}", p.url),
                    ));
                }
            }
        }
    }
    if !probes.is_empty() {
        parts.push(format!("{passed} of {} probe(s) passed", probes.len()));
    }
    let summary = parts.join("; ");
    if !signals.is_empty() {
        return Judgement::alert(summary, signals);
    }
    if let Some((who, what, class, why)) = blind {
        let mut j = Judgement::blind(who, SOURCE, what, class, why.clone(), now);
        j.summary = format!("unknown: {why} ({summary})");
        return j;
    }
    Judgement::ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::Status;
    use crate::maintenance::machines::{Autostop, Scaling, StopInfo};
    use crate::observed::CheckResult;
    use crate::testkit::{machine, t0};

    fn view(id: &str, state: MachineState, checks: &[(&str, CheckState)]) -> MachineView {
        let mut m = machine(id);
        m.state = state;
        m.checks = checks
            .iter()
            .map(|(n, s)| CheckResult {
                name: (*n).into(),
                state: *s,
                output: String::new(),
            })
            .collect();
        MachineView {
            machine: m,
            scaling: Scaling {
                autostart: true,
                autostop: Autostop::Stop,
                min_machines_running: 1,
            },
            last_stop: None::<StopInfo>,
        }
    }

    fn ok_probe() -> ProbeSeen {
        ProbeSeen {
            url: "https://app.example.com/".into(),
            result: Observation::Seen(()),
        }
    }

    /// BUG-07: m1 started and passing, m2 and m3 autostopped with no checks, probe 200 → ok.
    #[test]
    fn bug_07_idle_machines_do_not_make_an_app_unhealthy() {
        let machines = vec![
            view(
                "m1",
                MachineState::Started,
                &[("http-health", CheckState::Passing)],
            ),
            view("m2", MachineState::Stopped, &[]),
            view("m3", MachineState::Suspended, &[]),
        ];
        let j = judge(
            "example-app",
            &Observation::Seen(machines),
            MachineChecksRule::AllPassing,
            &[ok_probe()],
            t0(),
        );
        assert_eq!(j.status, Status::Ok, "{j:?}");
        assert!(j.summary.contains("1 of 1 started"), "{}", j.summary);
    }

    #[test]
    fn a_critical_check_on_a_started_machine_is_a_signal() {
        let machines = vec![
            view(
                "m1",
                MachineState::Started,
                &[
                    ("readyz", CheckState::Critical),
                    ("alive", CheckState::Passing),
                ],
            ),
            view("m2", MachineState::Started, &[]),
        ];
        let j = judge(
            "example-app",
            &Observation::Seen(machines),
            MachineChecksRule::AllPassing,
            &[],
            t0(),
        );
        assert_eq!(j.status, Status::Alert);
        assert_eq!(j.signals.len(), 1);
        assert_eq!(
            j.signals[0].fingerprint(),
            "example-app/check_failing/109/critical:readyz"
        );
        // Ignored checks: the same machines are fine.
        let machines = vec![view(
            "m1",
            MachineState::Started,
            &[("readyz", CheckState::Critical)],
        )];
        let j = judge(
            "example-app",
            &Observation::Seen(machines),
            MachineChecksRule::Ignore,
            &[],
            t0(),
        );
        assert_eq!(j.status, Status::Ok);
    }

    #[test]
    fn a_wrong_answer_fails_a_probe_and_no_answer_is_unknown() {
        let failed = ProbeSeen {
            url: "https://app.example.com/".into(),
            result: Observation::Down {
                class: "status:503".into(),
                reason: "status 503, expected 200".into(),
            },
        };
        let seen = Observation::Seen(vec![]);
        let j = judge(
            "example-app",
            &seen,
            MachineChecksRule::AllPassing,
            &[failed],
            t0(),
        );
        assert_eq!(
            j.signals[0].fingerprint(),
            "example-app/probe_failed/-/status:503"
        );
        let timeout = ProbeSeen {
            url: "https://app.example.com/".into(),
            result: Observation::Unknown {
                reason: "timed out after 5s".into(),
            },
        };
        let j = judge(
            "example-app",
            &seen,
            MachineChecksRule::AllPassing,
            &[timeout],
            t0(),
        );
        assert_eq!(j.status, Status::Unknown);
        assert!(
            j.signals
                .iter()
                .all(|s| s.kind == SignalKind::ObserverBlind)
        );
        assert_eq!(
            j.signals[0].blind,
            Some(Blind::Dependency),
            "one app's probe"
        );
    }

    /// The kind of BUG-07 and BUG-30: when Fly's API cannot be read, health is unknown with one
    /// app-less blindness signal — never a check failure, whatever the probes say.
    #[test]
    fn fly_unreadable_is_unknown_never_unhealthy() {
        for reason in [
            "429 rate limit exceeded",
            "connection closed before message completed",
            "no answer within 30s",
        ] {
            let machines = Observation::Unknown {
                reason: reason.into(),
            };
            for probes in [vec![], vec![ok_probe()]] {
                let j = judge(
                    "example-app",
                    &machines,
                    MachineChecksRule::AllPassing,
                    &probes,
                    t0(),
                );
                assert_eq!(j.status, Status::Unknown, "{reason}");
                assert_eq!(j.signals.len(), 1);
                assert_eq!(j.signals[0].fingerprint(), "-/observer_blind/-/fly_api");
                assert_eq!(j.signals[0].blind, Some(Blind::FlyApi));
            }
        }
    }
}
