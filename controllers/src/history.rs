//! Decisions from the deploy history: which images are known bad, whether an automatic
//! deploy may run at all, and what a rollback may restore.
//!
//! The history is what the record store says (append-only deploy records), passed in as
//! [`PastDeploy`] values; nothing an agent or a mutable counter reports.
//!
//! Sources: cases BUG-12 (never roll back onto a release known bad), BUG-14 (at most one
//! automatic rollback, then pause until a human acts) and issue #4 ("after a rollback the bad
//! revision is pinned out: the reconciler does not redeploy it from git until the manifests
//! change again").

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::observed::ObservedRelease;

/// How a past deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PastOutcome {
    /// Still running (or its process died).
    InProgress,
    /// Healthy everywhere.
    Succeeded,
    /// Failed without touching health (e.g. could not lease).
    Failed,
    /// Failed health; rolled back.
    RolledBack,
    /// Failed health; the rollback failed too.
    RollbackFailed,
    /// Stopped without a verdict.
    Halted,
}

/// One past deploy, newest first in slices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastDeploy {
    /// Record id.
    pub id: String,
    /// Image it deployed.
    pub image: String,
    /// How it ended.
    pub outcome: PastOutcome,
    /// When it started (UTC).
    pub at: DateTime<Utc>,
    /// A machine failed health on this deploy (not an API error).
    pub failed_health: bool,
    /// The deploy changed the image (not only config); only then is a health failure the
    /// image's fault.
    pub image_changed: bool,
    /// Fingerprint of the desired state it deployed (`FlyApp::revision`).
    pub revision: String,
    /// For a manual rollback (`opsctl rollback`) that succeeded: the image a human rolled back
    /// from. Pinned out like an image that failed health: a person judged it bad.
    pub rolled_back_from: Option<String>,
}

/// Images on which a machine failed health after the image changed, and images a human
/// rolled back from: known bad. A deploy that failed because Fly could not be reached, or a
/// config-only change that failed, says nothing about its image.
pub fn bad_images(history: &[PastDeploy]) -> BTreeSet<&str> {
    history
        .iter()
        .filter(|d| d.failed_health && d.image_changed)
        .map(|d| d.image.as_str())
        .chain(history.iter().filter_map(|d| d.rolled_back_from.as_deref()))
        .collect()
}

/// Why an automatic deploy must not run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Block {
    /// A machine failed health on the image before: pinned out until the manifest names
    /// another image.
    PinnedOut {
        /// The image.
        image: String,
        /// The record that rolled it back.
        record: String,
    },
    /// A human rolled back from the image (`opsctl rollback`): pinned out until the manifest
    /// names another image.
    RolledBackByHand {
        /// The image.
        image: String,
        /// The manual rollback's record.
        record: String,
    },
    /// The last automatic rollback did not restore service: automatic deploys pause until a
    /// human acts (`opsctl apply` by hand).
    Paused {
        /// The record whose rollback failed.
        record: String,
    },
}

impl std::fmt::Display for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Block::PinnedOut { image, record } => write!(
                f,
                "image {image} failed health in {record}; it is pinned out until the manifest names another image"
            ),
            Block::RolledBackByHand { image, record } => write!(
                f,
                "image {image} was rolled back by hand in {record}; it is pinned out until the manifest names another image"
            ),
            Block::Paused { record } => write!(
                f,
                "automatic deploys are paused: the rollback of {record} did not restore service; a human must act (run `opsctl apply` by hand once fixed)"
            ),
        }
    }
}

/// Whether a deploy of `image` with desired state `revision` may start. Pinned out: an image
/// known bad, and the very desired state that failed health before (so a failed config change
/// is not retried in a loop either). `by_human` is true for `opsctl apply` run by a person,
/// which acknowledges a pause (BUG-14) but never un-pins.
///
/// # Errors
/// The [`Block`] that forbids it.
pub fn may_deploy(
    history: &[PastDeploy],
    image: &str,
    revision: &str,
    by_human: bool,
) -> Result<(), Block> {
    let pinned = |d: &&PastDeploy| {
        d.failed_health && ((d.image_changed && d.image == image) || d.revision == revision)
    };
    if let Some(bad) = history.iter().find(pinned) {
        return Err(Block::PinnedOut {
            image: image.to_owned(),
            record: bad.id.clone(),
        });
    }
    if let Some(manual) = history
        .iter()
        .find(|d| d.rolled_back_from.as_deref() == Some(image))
    {
        return Err(Block::RolledBackByHand {
            image: image.to_owned(),
            record: manual.id.clone(),
        });
    }
    let newest_finished = history
        .iter()
        .find(|d| d.outcome != PastOutcome::InProgress);
    if !by_human
        && let Some(last) = newest_finished
        && last.outcome == PastOutcome::RollbackFailed
    {
        return Err(Block::Paused {
            record: last.id.clone(),
        });
    }
    Ok(())
}

/// What an automatic rollback restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "choice", rename_all = "snake_case")]
pub enum RollbackChoice {
    /// Put each touched machine's previous config back (their previous images are not bad).
    Restore,
    /// The previous images are known bad: deploy this older release's image instead.
    ToRelease {
        /// Release version whose image is restored.
        version: i64,
        /// Its image.
        image: String,
    },
    /// No release is known good: do not roll back; escalate.
    Escalate {
        /// Why.
        reason: String,
    },
}

/// Choose the rollback target (BUG-12): the touched machines' previous images when none is
/// known bad; else the newest `complete` release whose image is not known bad and is not
/// `failing` (the image that just failed); else escalate.
pub fn rollback_choice(
    previous_images: &[&str],
    failing: &str,
    releases: &[ObservedRelease],
    history: &[PastDeploy],
) -> RollbackChoice {
    // A config-only change failed: the image is not at fault; put the previous config back.
    if !previous_images.is_empty() && previous_images.iter().all(|i| *i == failing) {
        return RollbackChoice::Restore;
    }
    let mut bad = bad_images(history);
    bad.insert(failing);
    if !previous_images.is_empty() && previous_images.iter().all(|i| !bad.contains(i)) {
        return RollbackChoice::Restore;
    }
    let mut complete: Vec<&ObservedRelease> =
        releases.iter().filter(|r| r.status == "complete").collect();
    complete.sort_by_key(|r| std::cmp::Reverse(r.version));
    for r in complete {
        if let Some(image) = &r.image
            && !bad.contains(image.as_str())
        {
            return RollbackChoice::ToRelease {
                version: r.version,
                image: image.clone(),
            };
        }
    }
    RollbackChoice::Escalate {
        reason: "no_known_good_release: every recent release is known bad or not complete".into(),
    }
}

/// What the image registry says about the images a rollback would restore (asked by the
/// runtime, `HEAD /v2/<name>/manifests/<ref>`; Fly prunes old images, NOTES.md §6.7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "registry", rename_all = "snake_case")]
pub enum RegistryVerdict {
    /// Every image is there.
    Present,
    /// The registry answered 404 for `image`: pruned.
    Absent {
        /// The missing image.
        image: String,
    },
    /// The registry could not be asked about `image` (unreachable, refused, 5xx).
    Unknown {
        /// The image asked about.
        image: String,
        /// Why it could not be asked.
        reason: String,
    },
}

impl RegistryVerdict {
    /// Whether a rollback may go ahead: only when every image is known to be present.
    /// `Some((class, why))` means do not roll back and escalate: a rollback onto an image
    /// that cannot be pulled leaves the machines failing to start, and an unknown answer is
    /// not evidence either way, so a human decides (never a blind rollback). `class` is a
    /// stable word for records and signals: `rollback_image_pruned` or
    /// `rollback_image_unknown`.
    pub fn escalation(&self) -> Option<(&'static str, String)> {
        match self {
            Self::Present => None,
            Self::Absent { image } => Some((
                "rollback_image_pruned",
                format!("image {image} is no longer in its registry (pruned)"),
            )),
            Self::Unknown { image, reason } => Some((
                "rollback_image_unknown",
                format!(
                    "could not ask the registry whether {image} still exists ({reason}); not rolling back blind"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
