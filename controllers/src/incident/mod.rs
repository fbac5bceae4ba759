//! The incident pipeline's decisions (DESIGN.md §5, ADR §2: `Classify → Diagnose → Respond →
//! Postmortem`), as pure functions. The runtime (`opsctl::incident`) feeds signals and the
//! evidence it gathered in, and carries out the actions these functions return.
//!
//! - [`book`]: which incident a signal belongs to: one open incident per fingerprint, repeats
//!   add occurrences, severity only goes up; opsctl's own blindness and its own failing
//!   responses never open app incidents (the real LEI beads: a health alert raised because the
//!   monitor could not find `flyctl`, and chains of "investigate the failed investigation"
//!   records); a blind observer means one `monitoring path down` incident and nothing else
//!   (case BUG-30).
//! - [`classify`]: `noise | degradation | outage | unknown` with a confidence, from runbook
//!   rules first, then the built-in rules (machine states, probes, BEAM log markers; cases
//!   BUG-02, BUG-20; ADR §7 for Redis).
//! - [`respond`]: the actions a verdict allows, from runbook steps only (ADR risk table), at
//!   most one automatic action of each kind per incident and one automatic rollback per bad
//!   release (cases BUG-02, BUG-14).

pub mod book;
pub mod classify;
pub mod respond;

pub use opsctl_crds::kinds::runbook::{Classification, Step};

/// Confidence under which `noise` is escalated rather than dropped (issue #7).
pub const NOISE_CONFIDENCE_FLOOR: f64 = 0.8;

/// How bad an incident is; only ever goes up while it is open (case BUG-22 in spirit: a later,
/// milder report never hides an earlier, worse one).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Noise: recorded only.
    Info,
    /// Not recognised: a human looks.
    Warning,
    /// Degradation.
    Major,
    /// Outage, or opsctl blind.
    Critical,
}

impl Severity {
    /// The severity of a class.
    pub fn of(class: Classification) -> Self {
        match class {
            Classification::Noise => Self::Info,
            Classification::Unknown => Self::Warning,
            Classification::Degradation => Self::Major,
            Classification::Outage => Self::Critical,
        }
    }

    /// Beads priority (0 critical … 3 low).
    pub fn priority(self) -> u8 {
        match self {
            Self::Critical => 0,
            Self::Major => 1,
            Self::Warning => 2,
            Self::Info => 3,
        }
    }

    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::signal::SignalKind;

    /// The runbook kind validates signal names against its own list; it must be every
    /// `SignalKind` except `observer_blind`.
    #[test]
    fn runbook_signal_names_are_the_signal_kinds() {
        let mut ours: Vec<&str> = SignalKind::ALL
            .iter()
            .map(|k| k.as_str())
            .filter(|s| *s != "observer_blind")
            .collect();
        ours.sort_unstable();
        let mut theirs = opsctl_crds::kinds::runbook::SIGNAL_KINDS.to_vec();
        theirs.sort_unstable();
        assert_eq!(ours, theirs);
    }
}
