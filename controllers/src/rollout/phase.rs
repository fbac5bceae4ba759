//! The rollout as a recorded state machine (issue #4; ADR: `PreCheck → Drain → Deploy →
//! HealthCheck → done | Rollback`).
//!
//! The runtime records the [`Phase`] a deploy is about to enter *before* it enters it (the
//! deploy record's `phase`), so a restarted opsctl knows how far a dead rollout got and
//! [`super::recovery`] decides from it. [`transition`] is the one rule book: it says which
//! phase may follow which, and rejects everything else (a rejected transition is an opsctl
//! bug, never a user error).
//!
//! ```text
//! (start) ─┬─> PreCheck ─> Drain ─> ReleaseCommand ─> Lease ─┬─> Canary{group}… ─> Deploy{1/n}
//!          └─ (each stage is optional: a later one may come first)  ├─> Deploy{1/n} ─> … Deploy{n/n} ─> HealthCheck
//!                                                             └─> BlueGreen
//! Deploy / HealthCheck / Recover ─> Rollback ─> Done(rolled_back | rollback_failed)
//! any unfinished phase ─> Recover{from} (a restart found it) ─> Lease | Rollback | Done(…)
//! every phase but Done ─> Done(outcome)     Done is final, except:
//! Done(succeeded) ─> Rollback   the incident pipeline found the finished release down
//!                               (outage after the deploy's settle time, BUG-02; ADR §5:
//!                               auto-rollback is unconditional on outage)
//! ```

use serde::{Deserialize, Serialize};

/// Where a rollout stands. Recorded before it is entered; each variant holds only its own
/// data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Checking the commit: CI status, release branch (nothing changed yet).
    PreCheck,
    /// Waiting for the Oban queues to empty (nothing changed yet).
    Drain,
    /// Running the release command (migrations) on a temporary machine; no app machine is
    /// touched yet.
    ReleaseCommand,
    /// Leasing every machine of the plan and creating the Fly release; no machine changed.
    Lease,
    /// Creating, judging and destroying the canary of one process group.
    Canary {
        /// Process group.
        group: String,
    },
    /// Updating batch `batch` of `of` (1-based) and waiting for its verdicts.
    Deploy {
        /// Batch number, from 1.
        batch: usize,
        /// Number of batches.
        of: usize,
    },
    /// Bluegreen: green created beside blue, judged, then swapped (and probed).
    BlueGreen,
    /// Every batch healthy: external probes judge the release.
    HealthCheck,
    /// Putting the touched machines' previous config back, as a new release.
    Rollback,
    /// A restarted opsctl found the deploy unfinished in phase `from` and is recovering it.
    Recover {
        /// The phase the dead process had recorded; `None` for a record written before
        /// phases were recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Box<Phase>>,
    },
    /// Finished.
    Done {
        /// How it ended.
        outcome: Outcome,
    },
}

/// How a finished rollout ended (the deploy record's final status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every machine updated and healthy.
    Succeeded,
    /// Failed; nothing to roll back (nothing touched, a canary or green failed, a pre-check
    /// or the release command said no).
    Failed,
    /// Failed; the touched machines run their previous config again.
    RolledBack,
    /// Failed and not restored (rollback failed, or not started: no target, image pruned or
    /// unknown): a human must act.
    RollbackFailed,
    /// Stopped without a verdict (asked to stop, Fly unreachable, nothing changed).
    Halted,
}

impl Phase {
    /// Snake-case name of the variant (`deploy`, `done`), for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::PreCheck => "pre_check",
            Self::Drain => "drain",
            Self::ReleaseCommand => "release_command",
            Self::Lease => "lease",
            Self::Canary { .. } => "canary",
            Self::Deploy { .. } => "deploy",
            Self::BlueGreen => "blue_green",
            Self::HealthCheck => "health_check",
            Self::Rollback => "rollback",
            Self::Recover { .. } => "recover",
            Self::Done { .. } => "done",
        }
    }

    /// Position in the forward order of the stages before any machine is touched.
    fn stage_rank(&self) -> Option<u8> {
        match self {
            Self::PreCheck => Some(0),
            Self::Drain => Some(1),
            Self::ReleaseCommand => Some(2),
            Self::Lease => Some(3),
            _ => None,
        }
    }

    /// True once machines may have changed on Fly (a canary, an update, green, a rollback).
    pub fn may_have_changed_machines(&self) -> bool {
        match self {
            Self::PreCheck | Self::Drain | Self::ReleaseCommand | Self::Lease => false,
            Self::Canary { .. }
            | Self::Deploy { .. }
            | Self::BlueGreen
            | Self::HealthCheck
            | Self::Rollback => true,
            // A record without a phase: assume the worst.
            Self::Recover { from } => from.as_ref().is_none_or(|f| f.may_have_changed_machines()),
            Self::Done { .. } => false,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Canary { group } => write!(f, "canary ({group})"),
            Self::Deploy { batch, of } => write!(f, "deploy (batch {batch}/{of})"),
            Self::Recover { from: Some(from) } => write!(f, "recover (from {from})"),
            Self::Recover { from: None } => f.write_str("recover (from an unphased record)"),
            Self::Done { outcome } => write!(f, "done ({outcome:?})"),
            other => f.write_str(other.name()),
        }
    }
}

/// A transition [`transition`] rejects: an opsctl bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("opsctl bug: illegal rollout transition from {from} to {to}")]
pub struct IllegalTransition {
    /// Where it was (`start` when nothing was recorded).
    pub from: String,
    /// Where it was asked to go.
    pub to: String,
}

/// Whether a rollout in phase `from` (`None`: nothing recorded yet, a new deploy or a record
/// written before phases existed) may enter `to`.
///
/// # Errors
/// [`IllegalTransition`] naming both phases.
pub fn transition(from: Option<&Phase>, to: &Phase) -> Result<(), IllegalTransition> {
    use Phase::*;
    let ok = match (from, to) {
        // Done is final, but for the incident pipeline rolling back a release that finished
        // and then went down; Recover is entered only from an unfinished phase.
        (
            Some(Done {
                outcome: Outcome::Succeeded,
            }),
            Rollback,
        ) => true,
        (Some(Done { .. }), _) => false,
        (_, Recover { from: inner }) => from == inner.as_deref(),
        // The stages before any machine changes run in order, each optional.
        (None, t) if t.stage_rank().is_some() => true,
        (Some(f), t) if f.stage_rank().is_some() && t.stage_rank().is_some() => {
            f.stage_rank() < t.stage_rank()
        }
        // A restart recovering the deploy continues (leases again), rolls back, or ends.
        (Some(Recover { .. }), Lease | Rollback | Done { .. }) => true,
        (Some(Recover { .. }), _) => false,
        // After the lease: the strategy's first step.
        (Some(Lease), Canary { .. } | Deploy { batch: 1, .. } | BlueGreen | HealthCheck) => true,
        (Some(Canary { .. }), Canary { .. } | Deploy { batch: 1, .. } | BlueGreen) => true,
        (Some(Deploy { batch, of }), Deploy { batch: b, of: o }) => b == &(batch + 1) && o == of,
        (Some(Deploy { batch, of }), HealthCheck) => batch == of,
        (Some(Deploy { .. } | HealthCheck), Rollback) => true,
        // Ending: a stage before machines change fails or halts, never rolls back.
        (Some(f), Done { outcome }) => match f {
            PreCheck | Drain | ReleaseCommand | Lease | Canary { .. } | BlueGreen => {
                matches!(
                    outcome,
                    Outcome::Failed | Outcome::Halted | Outcome::Succeeded
                ) && (*outcome != Outcome::Succeeded || matches!(f, BlueGreen))
            }
            Deploy { .. } => matches!(
                outcome,
                Outcome::Failed | Outcome::Halted | Outcome::RollbackFailed
            ),
            HealthCheck => !matches!(outcome, Outcome::RolledBack),
            Rollback => matches!(outcome, Outcome::RolledBack | Outcome::RollbackFailed),
            Recover { .. } | Done { .. } => false,
        },
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(IllegalTransition {
            from: from.map_or_else(|| "start".to_owned(), ToString::to_string),
            to: to.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(batch: usize, of: usize) -> Phase {
        Phase::Deploy { batch, of }
    }
    fn done(outcome: Outcome) -> Phase {
        Phase::Done { outcome }
    }
    fn recover(from: Phase) -> Phase {
        Phase::Recover {
            from: Some(Box::new(from)),
        }
    }

    #[test]
    fn every_legal_transition_is_accepted() {
        use Phase::*;
        let canary = Canary {
            group: "app".into(),
        };
        let legal: Vec<(Option<Phase>, Phase)> = vec![
            (None, PreCheck),
            (None, Drain),
            (None, ReleaseCommand),
            (None, Lease),
            (Some(PreCheck), Drain),
            (Some(PreCheck), ReleaseCommand),
            (Some(PreCheck), Lease),
            (Some(Drain), ReleaseCommand),
            (Some(Drain), Lease),
            (Some(ReleaseCommand), Lease),
            (Some(Lease), canary.clone()),
            (Some(Lease), deploy(1, 3)),
            (Some(Lease), BlueGreen),
            (Some(Lease), HealthCheck),
            (Some(canary.clone()), Canary { group: "w".into() }),
            (Some(canary.clone()), deploy(1, 2)),
            (Some(deploy(1, 3)), deploy(2, 3)),
            (Some(deploy(2, 3)), deploy(3, 3)),
            (Some(deploy(3, 3)), HealthCheck),
            (Some(deploy(2, 3)), Rollback),
            (Some(HealthCheck), Rollback),
            (Some(Rollback), done(Outcome::RolledBack)),
            (Some(Rollback), done(Outcome::RollbackFailed)),
            (Some(PreCheck), done(Outcome::Failed)),
            (Some(Drain), done(Outcome::Halted)),
            (Some(ReleaseCommand), done(Outcome::Failed)),
            (Some(Lease), done(Outcome::Halted)),
            (Some(canary.clone()), done(Outcome::Failed)),
            (Some(BlueGreen), done(Outcome::Succeeded)),
            (Some(BlueGreen), done(Outcome::Failed)),
            (Some(deploy(1, 2)), done(Outcome::Halted)),
            (Some(deploy(1, 2)), done(Outcome::Failed)),
            (Some(deploy(1, 2)), done(Outcome::RollbackFailed)),
            (Some(HealthCheck), done(Outcome::Succeeded)),
            (Some(deploy(2, 3)), recover(deploy(2, 3))),
            (None, Recover { from: None }),
            (Some(HealthCheck), done(Outcome::Failed)),
            (Some(Rollback), recover(Rollback)),
            (Some(recover(deploy(1, 2))), Lease),
            (Some(recover(deploy(1, 2))), Rollback),
            (Some(recover(PreCheck)), done(Outcome::Halted)),
            (Some(recover(HealthCheck)), done(Outcome::Succeeded)),
            (Some(done(Outcome::Succeeded)), Rollback),
        ];
        for (from, to) in legal {
            assert_eq!(
                transition(from.as_ref(), &to),
                Ok(()),
                "{from:?} -> {to:?} should be legal"
            );
        }
    }

    #[test]
    fn illegal_transitions_are_rejected() {
        use Phase::*;
        let illegal: Vec<(Option<Phase>, Phase)> = vec![
            // Backwards through the stages, or skipping a batch.
            (Some(Drain), PreCheck),
            (Some(Lease), ReleaseCommand),
            (Some(deploy(1, 3)), deploy(3, 3)),
            (Some(deploy(2, 3)), deploy(1, 3)),
            (Some(deploy(1, 3)), deploy(2, 4)),
            (Some(Lease), deploy(2, 3)),
            (Some(deploy(1, 3)), HealthCheck),
            // Touching machines before the lease.
            (None, deploy(1, 1)),
            (Some(PreCheck), deploy(1, 1)),
            (Some(ReleaseCommand), Rollback),
            // Rolling back what never changed, or a rollback rolled back.
            (Some(Lease), Rollback),
            (Some(Canary { group: "a".into() }), Rollback),
            (Some(Rollback), Rollback),
            (Some(Rollback), deploy(1, 1)),
            // Done is final; outcomes that cannot follow a phase.
            (Some(done(Outcome::Succeeded)), Lease),
            (Some(done(Outcome::Failed)), Rollback),
            (Some(done(Outcome::RolledBack)), Rollback),
            (Some(done(Outcome::Halted)), recover(Lease)),
            (Some(PreCheck), done(Outcome::RolledBack)),
            (Some(Lease), done(Outcome::Succeeded)),
            (Some(deploy(2, 2)), done(Outcome::Succeeded)),
            (Some(Rollback), done(Outcome::Succeeded)),
            // Recover names the phase it found.
            (Some(deploy(1, 2)), recover(HealthCheck)),
            (None, recover(deploy(1, 1))),
            (Some(Lease), Recover { from: None }),
            (Some(recover(Lease)), deploy(1, 1)),
        ];
        for (from, to) in illegal {
            let err = transition(from.as_ref(), &to).expect_err(&format!("{from:?} -> {to:?}"));
            assert!(err.to_string().starts_with("opsctl bug"), "{err}");
        }
    }

    #[test]
    fn phases_serialize_tagged_and_read_back() {
        let p = recover(deploy(2, 3));
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"phase": "recover", "from": {"phase": "deploy", "batch": 2, "of": 3}})
        );
        assert_eq!(serde_json::from_value::<Phase>(json).unwrap(), p);
        assert_eq!(
            serde_json::to_value(done(Outcome::RolledBack)).unwrap(),
            serde_json::json!({"phase": "done", "outcome": "rolled_back"})
        );
    }
}
