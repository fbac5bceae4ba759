//! The burn-in counter and phase (ADR §5), derived from the append-only deploy records — never
//! from a mutable number or from anything an agent reports.
//!
//! A deploy counts when it succeeded (healthy everywhere, no health failure), and nothing later
//! implicated it: no later rollback undid it, and no incident names it as its `caused-by`. The
//! runtime finds the implicated ids in the record store ([`reverted`] for rollbacks, incident
//! links for the rest) and passes them in.

use std::collections::BTreeSet;

use opsctl_crds::kinds::governance::BurnInSpec;
use serde::{Deserialize, Serialize};

use crate::history::{PastDeploy, PastOutcome};

/// Where an app stands in its burn-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BurnIn {
    /// Deploys that count (see the module doc).
    pub count: u32,
    /// Phase of the *next* deploy, 1–3: the next deploy is number `count + 1`.
    pub phase: u8,
}

impl BurnIn {
    /// The burn-in of `history` (any order) under `spec`, ignoring the deploys in
    /// `implicated` (ids of deploys a later rollback undid or an incident was caused by).
    pub fn of(history: &[PastDeploy], implicated: &BTreeSet<String>, spec: &BurnInSpec) -> Self {
        let count = count(history, implicated);
        Self {
            count,
            phase: phase(count, spec),
        }
    }
}

/// How many deploys of `history` count: succeeded, no machine failed health, not implicated.
pub fn count(history: &[PastDeploy], implicated: &BTreeSet<String>) -> u32 {
    let n = history
        .iter()
        .filter(|d| {
            d.outcome == PastOutcome::Succeeded && !d.failed_health && !implicated.contains(&d.id)
        })
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The phase of the deploy after `count` counted ones: deploy number `count + 1` is in phase 3
/// from `spec.phase3_from`, phase 2 from `spec.phase2_from`, else phase 1.
pub fn phase(count: u32, spec: &BurnInSpec) -> u8 {
    let next = count.saturating_add(1);
    if next >= spec.phase3_from.max(spec.phase2_from) {
        3
    } else if next >= spec.phase2_from {
        2
    } else {
        1
    }
}

/// Deploys that a later deploy undid: a later finished deploy put back the image this one
/// replaced (`previous_image` gives each deploy's replaced image, by id). That is a rollback
/// done by a new commit (a `git revert`) or by hand, and the undone deploy no longer counts.
/// `history` in any order; `at` orders them.
pub fn reverted(
    history: &[PastDeploy],
    previous_image: impl Fn(&str) -> Option<String>,
) -> BTreeSet<String> {
    let mut sorted: Vec<&PastDeploy> = history.iter().collect();
    sorted.sort_by(|a, b| a.at.cmp(&b.at).then(a.id.cmp(&b.id)));
    let mut out = BTreeSet::new();
    for (i, d) in sorted.iter().enumerate() {
        if d.outcome != PastOutcome::Succeeded {
            continue;
        }
        let Some(prev) = previous_image(&d.id).filter(|p| *p != d.image) else {
            continue;
        };
        let next = sorted[i + 1..]
            .iter()
            .find(|l| l.outcome == PastOutcome::Succeeded);
        if next.is_some_and(|l| l.image == prev) {
            out.insert(d.id.clone());
        }
    }
    out
}
