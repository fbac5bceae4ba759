//! Mixed images in a process group (case BUG-08, `../shared/cases/README.md`): what to do when
//! some machines of a group already run the manifest's image and others do not, and when a
//! group left mixed becomes an incident.
//!
//! - [`decide`]: the manifest's image is already on some machines of a group. When none of
//!   them fails health, the ordinary plan converges the lagging machines forward
//!   ([`MixedPlan::Forward`]). When one of them fails health, the image is bad: every machine
//!   of the group running it goes back to the last good image ([`MixedPlan::Rollback`]) —
//!   the image of the group's healthy machines, else the newest complete release whose image
//!   is not known bad (`history::rollback_choice`, BUG-12) — at most once per bad image
//!   (BUG-14: a second time escalates).
//! - [`peers`]: the machines of a mixed group already on the plan's image, which a rollout
//!   does not update but rolls back with the group when the image fails during the converge.
//! - [`mixed_too_long`]: the invariant `single_image_per_group`; a group left on several
//!   images for more than [`MIXED_GRACE`] with no deploy in flight is a degradation incident.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::MachineStep;
use crate::diff::{AppDiff, Change};
use crate::history::{PastDeploy, PastOutcome, RollbackChoice, rollback_choice};
use crate::observed::{CheckState, MachineState, ObservedApp, ObservedMachine};
use crate::signal::{Signal, SignalKind};

/// How long a group may stay on several images with no deploy in flight before it is an
/// incident (case BUG-08: "a violation that lasts > 10 min with no deploy in flight").
pub const MIXED_GRACE: Duration = Duration::from_secs(10 * 60);

/// What to do about one mixed group whose machines partly run the manifest's image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "plan", rename_all = "snake_case")]
pub enum MixedPlan {
    /// The image is healthy where it runs: converge the lagging machines forward (the
    /// ordinary rollout plan).
    Forward {
        /// Process group.
        group: String,
    },
    /// The image fails health where it runs: restore every machine of the group running it.
    Rollback(MixedRollback),
    /// The image fails health but may not be rolled back automatically: a human decides.
    Escalate {
        /// Process group.
        group: String,
        /// Why (stable word first: `rollback_already_done`, `no_known_good_release`).
        reason: String,
    },
}

/// A rollback of the machines of one group that run a failing image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MixedRollback {
    /// Process group.
    pub group: String,
    /// The failing image (the manifest's).
    pub failing_image: String,
    /// The image to restore: last good.
    pub to_image: String,
    /// Every machine of the group running the failing image; `from_image` is `to_image`
    /// (what the rollback restores), as for the steps of a failed rollout.
    pub machines: Vec<MachineStep>,
    /// The machines seen failing, with why (for the record).
    pub failing: Vec<(String, String)>,
}

/// Why `m` fails health as observed, or `None`: Fly marked it failed, it crash-loops, it
/// exited by itself and stays stopped, or a check is critical. A machine stopped on request
/// (autostop) or not yet checked is not failing: only what was seen counts.
pub fn failing_health(m: &ObservedMachine) -> Option<String> {
    if m.state == MachineState::Failed {
        return Some("Fly marked the machine failed".into());
    }
    if let Some(exit) = &m.last_exit
        && !exit.requested_stop
    {
        if exit.restarting && exit.restart_count > 1 && exit.exit_code != 0 {
            return Some(format!(
                "crash loop: exit code {}, {} restarts",
                exit.exit_code, exit.restart_count
            ));
        }
        if !exit.restarting && m.state == MachineState::Stopped {
            return Some(format!("exited with code {}", exit.exit_code));
        }
    }
    if m.state == MachineState::Started {
        let critical: Vec<&str> = m
            .checks
            .iter()
            .filter(|c| c.state == CheckState::Critical)
            .map(|c| c.name.as_str())
            .collect();
        if !critical.is_empty() {
            return Some(format!("checks critical: {}", critical.join(", ")));
        }
    }
    None
}

/// Whether an automatic rollback already happened for `image` (BUG-14: at most one).
fn rolled_back_before(history: &[PastDeploy], image: &str) -> bool {
    history.iter().any(|d| {
        d.image == image
            && matches!(
                d.outcome,
                PastOutcome::RolledBack | PastOutcome::RollbackFailed
            )
    })
}

/// Decide, for every group that `diff` reports mixed and where `image` (the manifest's) runs
/// on some machines, whether to converge forward or roll back (module docs). Groups where
/// `image` does not run yet are not listed: the ordinary rollout handles them. `releases` and
/// `history` (newest first) choose the target when no healthy machine runs a good image.
pub fn decide(
    image: &str,
    observed: &ObservedApp,
    diff: &AppDiff,
    history: &[PastDeploy],
) -> Vec<MixedPlan> {
    let bad = crate::history::bad_images(history);
    let mut out = Vec::new();
    for change in &diff.changes {
        let Change::MixedImages { group, images } = change else {
            continue;
        };
        let Some(on_image) = images.get(image) else {
            continue;
        };
        let machines: Vec<&ObservedMachine> =
            observed.managed().filter(|m| &m.group == group).collect();
        let on: Vec<&ObservedMachine> = machines
            .iter()
            .copied()
            .filter(|m| on_image.contains(&m.id))
            .collect();
        let failing: Vec<(String, String)> = on
            .iter()
            .filter_map(|m| failing_health(m).map(|why| (m.id.clone(), why)))
            .collect();
        if failing.is_empty() {
            out.push(MixedPlan::Forward {
                group: group.clone(),
            });
            continue;
        }
        if rolled_back_before(history, image) {
            out.push(MixedPlan::Escalate {
                group: group.clone(),
                reason: format!(
                    "rollback_already_done: {image} fails health on {} and was rolled back automatically before; no second automatic rollback",
                    failing.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ")
                ),
            });
            continue;
        }
        // The last good image: the one most healthy machines of the group run (not bad).
        let mut healthy: BTreeMap<&str, usize> = BTreeMap::new();
        for m in machines.iter().filter(|m| {
            m.image != image
                && m.state.is_running()
                && failing_health(m).is_none()
                && !bad.contains(m.image.as_str())
        }) {
            *healthy.entry(m.image.as_str()).or_default() += 1;
        }
        let candidate = healthy
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(i, _)| *i);
        let previous: Vec<&str> = candidate.into_iter().collect();
        let to_image = match rollback_choice(&previous, image, &observed.releases, history) {
            RollbackChoice::Restore => previous[0].to_owned(),
            RollbackChoice::ToRelease { image, .. } => image,
            RollbackChoice::Escalate { reason } => {
                out.push(MixedPlan::Escalate {
                    group: group.clone(),
                    reason,
                });
                continue;
            }
        };
        let mut steps: Vec<MachineStep> = on
            .iter()
            .map(|m| MachineStep {
                machine: m.id.clone(),
                group: m.group.clone(),
                region: m.region.clone(),
                from_image: to_image.clone(),
                skip_launch: !m.state.is_running() && failing_health(m).is_none(),
                wait_healthy: m.state.is_running() || failing_health(m).is_some(),
            })
            .collect();
        steps.sort_by(|a, b| a.machine.cmp(&b.machine));
        out.push(MixedPlan::Rollback(MixedRollback {
            group: group.clone(),
            failing_image: image.to_owned(),
            to_image,
            machines: steps,
            failing,
        }));
    }
    out
}

/// The machines of a mixed group already on `image` that `updated` (the rollout's machines)
/// does not include: a rollout of `image` leaves them alone, but when `image` fails health
/// during the converge they are rolled back with the group (BUG-08). Their `from_image` is
/// `image` (what they run).
pub fn peers(
    image: &str,
    observed: &ObservedApp,
    diff: &AppDiff,
    updated: &BTreeSet<&str>,
) -> Vec<MachineStep> {
    let mut out = Vec::new();
    for change in &diff.changes {
        let Change::MixedImages { group, images } = change else {
            continue;
        };
        let Some(on_image) = images.get(image) else {
            continue;
        };
        for m in observed.managed().filter(|m| {
            &m.group == group && on_image.contains(&m.id) && !updated.contains(m.id.as_str())
        }) {
            out.push(MachineStep {
                machine: m.id.clone(),
                group: m.group.clone(),
                region: m.region.clone(),
                from_image: m.image.clone(),
                skip_launch: !m.state.is_running(),
                wait_healthy: m.state.is_running(),
            });
        }
    }
    out.sort_by(|a, b| a.machine.cmp(&b.machine));
    out
}

/// The invariant `single_image_per_group` (BUG-08): `true` when a group first seen on several
/// images at `first_seen` (UTC) is still so at `now` (UTC), more than [`MIXED_GRACE`] later,
/// and no deploy of the app is in flight (`deploying`). A deploy in flight is converging it:
/// not a violation yet.
pub fn mixed_too_long(first_seen: DateTime<Utc>, now: DateTime<Utc>, deploying: bool) -> bool {
    if deploying {
        return false;
    }
    (now - first_seen)
        .to_std()
        .is_ok_and(|lasted| lasted > MIXED_GRACE)
}

/// Process group → image → machine ids, for the groups of one app that run several images
/// (the diff's `mixed_images` changes).
pub type MixedGroups = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The reconciler's memory for `single_image_per_group`: since when each `(app, group)` has
/// been seen on several images with no deploy in flight, and which violations were reported.
/// Time comes in as arguments (UTC, from the runtime's injected clock).
#[derive(Debug, Clone, Default)]
pub struct MixedWatch {
    since: BTreeMap<(String, String), DateTime<Utc>>,
    reported: BTreeSet<(String, String)>,
}

impl MixedWatch {
    /// Take one observation of `app` at `now`: `mixed` are its groups on several images,
    /// `deploying` whether a deploy of the app is in flight (then the clock of its groups
    /// restarts: the deploy is converging them). Returns one [`SignalKind::MixedImages`]
    /// signal per group whose violation just passed [`MIXED_GRACE`] ([`mixed_too_long`]), once
    /// per episode; a group seen on one image again is forgotten.
    pub fn observe(
        &mut self,
        app: &str,
        mixed: &MixedGroups,
        deploying: bool,
        now: DateTime<Utc>,
    ) -> Vec<Signal> {
        self.since
            .retain(|(a, g), _| a != app || (mixed.contains_key(g) && !deploying));
        self.reported
            .retain(|(a, g)| a != app || mixed.contains_key(g));
        if deploying {
            return vec![];
        }
        let mut out = Vec::new();
        for (group, images) in mixed {
            let key = (app.to_owned(), group.clone());
            let first = *self.since.entry(key.clone()).or_insert(now);
            if !mixed_too_long(first, now, deploying) || self.reported.contains(&key) {
                continue;
            }
            self.reported.insert(key);
            let minutes = (now - first).num_minutes();
            let list: Vec<String> = images
                .iter()
                .map(|(image, ids)| format!("{image}: {}", ids.join(", ")))
                .collect();
            out.push(Signal {
                app: Some(app.to_owned()),
                kind: SignalKind::MixedImages,
                release: None,
                class: format!("mixed_images:{group}"),
                source: "reconciler/single_image_per_group".into(),
                at: now,
                machine: None,
                detail: format!(
                    "process group {group} has run {} images for {minutes} min with no deploy in flight ({}); a human decides whether to converge forward or roll back",
                    images.len(),
                    list.join("; ")
                ),
                deploy: None,
                blind: None,
            });
        }
        out
    }
}

#[cfg(test)]
#[path = "mixed_tests.rs"]
mod tests;
