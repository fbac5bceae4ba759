//! What to do with a deploy a dead process left unfinished, decided from the [`Phase`] it
//! had recorded (issue #4, "Resume": finish or roll back the half-done rollout, never deploy
//! twice).
//!
//! Two decisions, with the runtime's observation in between (src/runtime/deploy/recover.rs):
//! [`on_restart`] from the record alone (nothing on Fly changed → close it; else observe), then
//! [`after_judging`] once the machines already on the new image have been judged.

use serde::{Deserialize, Serialize};

use super::phase::Phase;

/// What recovery does next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "recovery", rename_all = "snake_case")]
pub enum Recovery {
    /// Nothing on Fly was changed (the process died in a stage before any machine): close
    /// the record as halted; the next pass plans afresh.
    NothingChanged,
    /// Machines may have changed: observe Fly, judge the machines on the new image, then ask
    /// [`after_judging`].
    Judge,
    /// Roll the machines on the new image back (a failure was seen, or the process died while
    /// rolling back: this resumes that rollback, it is not a second one).
    RollBack {
        /// Why, for the record.
        reason: String,
    },
    /// The dead process was rolling back and no machine runs the new image any more: the
    /// rollback had finished; close the record as rolled back.
    RolledBack,
    /// The updated machines could not be judged (Fly unseen): halt, keep the record
    /// recoverable, never roll back on what could not be seen.
    HaltBlind {
        /// What could not be seen.
        why: String,
    },
    /// The manifest names another desired state now: close as superseded (halted); the new
    /// manifest is deployed as usual.
    Superseded,
    /// Continue the rollout under the same release and record (the machines left to update,
    /// then the health check; with none left, only the health check).
    Continue,
}

/// The innermost recorded phase: a recovery that itself died is recovered from the phase
/// the first process had reached.
fn origin(phase: Option<&Phase>) -> Option<&Phase> {
    match phase {
        Some(Phase::Recover { from }) => origin(from.as_deref()),
        other => other,
    }
}

/// True when the dead process was rolling back: recovery resumes that rollback without
/// judging the machines again.
pub fn resumes_rollback(phase: Option<&Phase>) -> bool {
    matches!(origin(phase), Some(Phase::Rollback))
}

/// First decision, from the record only. `release_created`: the record names a Fly release
/// (so the lease and release step had got that far).
///
/// Phases before any machine changes (pre-check, drain, release command, and the lease
/// before its release exists) need no observation: nothing was changed. A record written
/// before phases existed (`None`) is judged by `release_created`, as before.
pub fn on_restart(phase: Option<&Phase>, release_created: bool) -> Recovery {
    match origin(phase) {
        Some(Phase::PreCheck | Phase::Drain | Phase::ReleaseCommand) => Recovery::NothingChanged,
        Some(Phase::Lease) | None if !release_created => Recovery::NothingChanged,
        _ => Recovery::Judge,
    }
}

/// What recovery saw on Fly after [`Recovery::Judge`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Judged {
    /// Machines of the record that run the deploy's image now.
    pub on_new_image: usize,
    /// The first machine that failed health, in words (`None`: none failed).
    pub failure: Option<String>,
    /// The first machine that could not be judged, in words.
    pub blind: Option<String>,
    /// The manifest now names another image than the record's.
    pub superseded: bool,
}

/// Second decision, after judging. In order: a dead *rollback* is resumed (or closed when it
/// had finished) whatever the verdicts, because the deploy had already failed; a failed
/// machine → roll back; a machine not judged → halt; a changed manifest → superseded; else
/// continue (the runtime updates what is left and runs the health check again, so a deploy
/// that died during its health check is not declared healthy unprobed).
pub fn after_judging(phase: Option<&Phase>, judged: &Judged) -> Recovery {
    if resumes_rollback(phase) {
        return if judged.on_new_image == 0 {
            Recovery::RolledBack
        } else {
            Recovery::RollBack {
                reason: "the process stopped while rolling back; resuming the rollback".into(),
            }
        };
    }
    if let Some(reason) = &judged.failure {
        return Recovery::RollBack {
            reason: reason.clone(),
        };
    }
    if let Some(why) = &judged.blind {
        return Recovery::HaltBlind { why: why.clone() };
    }
    if judged.superseded {
        return Recovery::Superseded;
    }
    Recovery::Continue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recover(from: Phase) -> Phase {
        Phase::Recover {
            from: Some(Box::new(from)),
        }
    }

    #[test]
    fn nothing_changed_before_the_first_machine() {
        for p in [Phase::PreCheck, Phase::Drain, Phase::ReleaseCommand] {
            assert_eq!(on_restart(Some(&p), false), Recovery::NothingChanged, "{p}");
            assert_eq!(
                on_restart(Some(&recover(p.clone())), true),
                Recovery::NothingChanged
            );
        }
        assert_eq!(
            on_restart(Some(&Phase::Lease), false),
            Recovery::NothingChanged
        );
        assert_eq!(on_restart(Some(&Phase::Lease), true), Recovery::Judge);
        // Records from before phases: by the release, as before.
        assert_eq!(on_restart(None, false), Recovery::NothingChanged);
        assert_eq!(on_restart(None, true), Recovery::Judge);
        for p in [
            Phase::Deploy { batch: 2, of: 3 },
            Phase::HealthCheck,
            Phase::Rollback,
            Phase::BlueGreen,
            Phase::Canary {
                group: "app".into(),
            },
        ] {
            assert_eq!(on_restart(Some(&p), true), Recovery::Judge, "{p}");
        }
    }

    #[test]
    fn a_dead_rollback_is_resumed_never_turned_into_a_deploy() {
        let healthy_on_new = Judged {
            on_new_image: 1,
            ..Judged::default()
        };
        // Machines on the bad image look healthy (the probe failed, say): still roll back.
        for p in [Phase::Rollback, recover(Phase::Rollback)] {
            assert!(matches!(
                after_judging(Some(&p), &healthy_on_new),
                Recovery::RollBack { .. }
            ));
            assert_eq!(
                after_judging(Some(&p), &Judged::default()),
                Recovery::RolledBack
            );
        }
        // The same observation in the deploy phase continues the rollout.
        assert_eq!(
            after_judging(Some(&Phase::Deploy { batch: 1, of: 2 }), &healthy_on_new),
            Recovery::Continue
        );
    }

    #[test]
    fn failure_then_blindness_then_superseded_then_continue() {
        let p = Phase::Deploy { batch: 1, of: 2 };
        let all = Judged {
            on_new_image: 2,
            failure: Some("m1 failed".into()),
            blind: Some("m2: Fly unreachable".into()),
            superseded: true,
        };
        assert_eq!(
            after_judging(Some(&p), &all),
            Recovery::RollBack {
                reason: "m1 failed".into()
            }
        );
        let blind = Judged {
            failure: None,
            ..all.clone()
        };
        assert_eq!(
            after_judging(Some(&p), &blind),
            Recovery::HaltBlind {
                why: "m2: Fly unreachable".into()
            },
            "unknown never leads to a rollback"
        );
        let superseded = Judged {
            blind: None,
            ..blind
        };
        assert_eq!(after_judging(Some(&p), &superseded), Recovery::Superseded);
        assert_eq!(
            after_judging(Some(&Phase::HealthCheck), &Judged::default()),
            Recovery::Continue
        );
        assert_eq!(after_judging(None, &Judged::default()), Recovery::Continue);
    }
}
