//! Respond: the actions a verdict allows, from the runbook's steps only (ADR risk table: no
//! freeform actions).
//!
//! - `unknown` → escalate, always (never a rollback; case BUG-20 D).
//! - `noise` → nothing; escalated when the confidence is under
//!   [`NOISE_CONFIDENCE_FLOOR`].
//! - `outage` → roll back the recent deploy (started at most `window` before the first signal)
//!   when the runbook allows `rollback`; at most one automatic rollback per bad release: a
//!   deploy that was already rolled back (by the deploy pipeline or by an earlier incident) is
//!   not rolled back again, the outage is escalated instead (cases BUG-02, BUG-14 B). Without a
//!   recent deploy: restart the machine(s) and escalate.
//! - `degradation` → diagnose, then the runbook's steps in order: restart the machine, scale
//!   (always gated: becomes a request for approval), escalate.
//!
//! Every action runs at most once per incident (the caller passes those already run).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::classify::Verdict;
use super::{Classification, NOISE_CONFIDENCE_FLOOR, Step};

/// A deploy as the response rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentDeploy {
    /// Deploy record id.
    pub id: String,
    /// UTC.
    pub started_at: DateTime<Utc>,
    /// An automatic rollback already ran for it (successful or not).
    pub rolled_back: bool,
}

/// An action of the response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Gather evidence (recent deploys, logs, machine events).
    Diagnose,
    /// Roll back this deploy through the deploy pipeline.
    Rollback {
        /// Deploy record id.
        deploy: String,
    },
    /// Restart this machine (`None`: every machine of the app that is down), then verify it is
    /// `started` with checks passing.
    RestartMachine {
        /// Machine id.
        machine: Option<String>,
    },
    /// Ask a human to approve scaling (scaling is always gated, DESIGN.md §6).
    RequestScale,
    /// Hand over to a human.
    Escalate {
        /// Reason code.
        reason: String,
    },
}

impl Action {
    /// Snake-case name of the action's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Diagnose => "diagnose",
            Self::Rollback { .. } => "rollback",
            Self::RestartMachine { .. } => "restart_machine",
            Self::RequestScale => "request_scale",
            Self::Escalate { .. } => "escalate",
        }
    }
}

/// What the response rules know besides the verdict.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// First signal of the incident, UTC.
    pub first_seen: DateTime<Utc>,
    /// How recent a deploy must be to be blamed (runbook `recentDeployWindow`).
    pub window: Duration,
    /// The app's newest deploy, if any.
    pub deploy: Option<&'a RecentDeploy>,
    /// Machine of the signal, when one.
    pub machine: Option<&'a str>,
    /// Kinds of actions already run for this incident ([`Action::kind`]).
    pub done: &'a [String],
}

/// The response to `verdict`, in order.
pub fn plan(verdict: &Verdict, ctx: &Context<'_>) -> Vec<Action> {
    let allows = |s: Step| verdict.steps.contains(&s);
    let mut out = Vec::new();
    match verdict.class {
        Classification::Unknown => {
            if allows(Step::Diagnose) {
                out.push(Action::Diagnose);
            }
            out.push(Action::Escalate {
                reason: format!("unknown:{}", verdict.reason),
            });
        }
        Classification::Noise => {
            if verdict.confidence < NOISE_CONFIDENCE_FLOOR {
                out.push(Action::Escalate {
                    reason: format!("noise_low_confidence:{}", verdict.reason),
                });
            }
        }
        Classification::Outage => {
            let recent = ctx
                .deploy
                .filter(|d| d.started_at >= ctx.first_seen - ctx.window);
            match recent {
                Some(d) if allows(Step::Rollback) && d.rolled_back => out.push(Action::Escalate {
                    reason: "outage_persisting_after_remediation".into(),
                }),
                Some(d) if allows(Step::Rollback) => out.push(Action::Rollback {
                    deploy: d.id.clone(),
                }),
                _ => {
                    if allows(Step::RestartMachine) {
                        out.push(Action::RestartMachine { machine: None });
                    }
                    out.push(Action::Escalate {
                        reason: if recent.is_some() {
                            "outage_rollback_not_allowed".into()
                        } else {
                            "outage_no_recent_deploy".into()
                        },
                    });
                }
            }
        }
        Classification::Degradation => {
            out.push(Action::Diagnose);
            for s in &verdict.steps {
                match s {
                    Step::RestartMachine => out.push(Action::RestartMachine {
                        machine: ctx.machine.map(str::to_owned),
                    }),
                    Step::Scale => out.push(Action::RequestScale),
                    Step::Rollback => {
                        if let Some(d) = ctx
                            .deploy
                            .filter(|d| d.started_at >= ctx.first_seen - ctx.window)
                            .filter(|d| !d.rolled_back)
                        {
                            out.push(Action::Rollback {
                                deploy: d.id.clone(),
                            });
                        }
                    }
                    Step::Escalate => out.push(Action::Escalate {
                        reason: format!("degradation:{}", verdict.reason),
                    }),
                    Step::Diagnose => {}
                }
            }
        }
    }
    out.retain(|a| !ctx.done.iter().any(|d| d == a.kind()) || a.kind() == "escalate");
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::incident::classify::default_steps;

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + Duration::minutes(min)
    }

    fn v(class: Classification, confidence: f64, reason: &str) -> Verdict {
        Verdict {
            class,
            confidence,
            reason: reason.into(),
            rule: None,
            steps: default_steps(class, reason),
        }
    }

    fn ctx<'a>(deploy: Option<&'a RecentDeploy>, done: &'a [String]) -> Context<'a> {
        Context {
            first_seen: t(0),
            window: Duration::hours(1),
            deploy,
            machine: Some("m1"),
            done,
        }
    }

    fn kinds(actions: &[Action]) -> Vec<&'static str> {
        actions.iter().map(Action::kind).collect()
    }

    #[test]
    fn response_table() {
        let recent = RecentDeploy {
            id: "deploy-1".into(),
            started_at: t(-5),
            rolled_back: false,
        };
        let rolled = RecentDeploy {
            rolled_back: true,
            ..recent.clone()
        };
        let old = RecentDeploy {
            started_at: t(-120),
            ..recent.clone()
        };
        use Classification::*;
        let none: &[String] = &[];
        let table: Vec<(Verdict, Option<&RecentDeploy>, Vec<&str>)> = vec![
            // BUG-02: outage after a recent deploy → rollback, once.
            (
                v(Outage, 0.95, "deploy_left_zero_healthy"),
                Some(&recent),
                vec!["rollback"],
            ),
            // BUG-14 B: the release was already rolled back → escalate, no second rollback.
            (
                v(Outage, 0.95, "all_instances_down"),
                Some(&rolled),
                vec!["escalate"],
            ),
            // Outside the window (BUG-20 A outside burn-in): restart + escalate.
            (
                v(Outage, 0.95, "all_instances_down"),
                Some(&old),
                vec!["restart_machine", "escalate"],
            ),
            (
                v(Outage, 0.95, "all_instances_down"),
                None,
                vec!["restart_machine", "escalate"],
            ),
            // BUG-20 B: one node down → diagnose, restart it; no rollback.
            (
                v(Degradation, 0.9, "instance_down"),
                Some(&recent),
                vec!["diagnose", "restart_machine", "escalate"],
            ),
            // ADR §7 Redis: diagnose, escalate.
            (
                v(Degradation, 0.9, "dependency_down"),
                Some(&recent),
                vec!["diagnose", "escalate"],
            ),
            // BUG-20 C: noise, sure → nothing; unsure → escalate.
            (v(Noise, 0.9, "child_restarted"), Some(&recent), vec![]),
            (
                v(Noise, 0.6, "vm_restarted_recovered"),
                Some(&recent),
                vec!["escalate"],
            ),
            // BUG-20 D: unknown → escalate, never a rollback, even right after a deploy.
            (
                v(Unknown, 0.5, "unrecognised_log"),
                Some(&recent),
                vec!["diagnose", "escalate"],
            ),
        ];
        for (i, (verdict, deploy, want)) in table.iter().enumerate() {
            assert_eq!(kinds(&plan(verdict, &ctx(*deploy, none))), *want, "row {i}");
        }
    }

    #[test]
    fn a_runbook_without_rollback_never_rolls_back() {
        let recent = RecentDeploy {
            id: "deploy-1".into(),
            started_at: t(-5),
            rolled_back: false,
        };
        let mut verdict = v(Classification::Outage, 0.95, "all_instances_down");
        verdict.steps = vec![Step::Escalate];
        assert_eq!(
            kinds(&plan(&verdict, &ctx(Some(&recent), &[]))),
            ["escalate"]
        );
    }

    #[test]
    fn actions_already_run_are_not_repeated_but_escalation_is_allowed() {
        let done = vec!["restart_machine".to_owned(), "diagnose".to_owned()];
        let verdict = v(Classification::Degradation, 0.9, "instance_down");
        assert_eq!(kinds(&plan(&verdict, &ctx(None, &done))), ["escalate"]);
    }

    /// Property: no verdict whatsoever yields a rollback unless the class is outage or
    /// degradation, a recent deploy exists, it was not rolled back, and the steps allow it.
    #[test]
    fn rollback_only_when_every_condition_holds() {
        use Classification::*;
        for class in [Noise, Degradation, Outage, Unknown] {
            for conf in [0.1, 0.79, 0.8, 1.0] {
                for age in [-200, -61, -59, 0, 10] {
                    for rolled_back in [false, true] {
                        for with_rb in [false, true] {
                            let d = RecentDeploy {
                                id: "d".into(),
                                started_at: t(age),
                                rolled_back,
                            };
                            let mut verdict = v(class, conf, "x");
                            verdict.steps = if with_rb {
                                vec![
                                    Step::Diagnose,
                                    Step::Rollback,
                                    Step::RestartMachine,
                                    Step::Escalate,
                                ]
                            } else {
                                vec![Step::Diagnose, Step::RestartMachine, Step::Escalate]
                            };
                            let acts = plan(&verdict, &ctx(Some(&d), &[]));
                            let rb = acts.iter().any(|a| a.kind() == "rollback");
                            let may = matches!(class, Outage | Degradation)
                                && age >= -60
                                && !rolled_back
                                && with_rb;
                            assert_eq!(rb, may, "{class:?} {conf} {age} {rolled_back} {with_rb}");
                            if class == Unknown {
                                assert!(acts.iter().any(|a| a.kind() == "escalate"));
                            }
                        }
                    }
                }
            }
        }
    }
}
