//! Oban queue depth (ADR maintenance table: every 15 min): a queue whose `available` count
//! rose at each of the last N samples grows without bound — workers are not keeping up, or
//! not running at all (case BUG-18's `queue_stalled` is the extreme) → a
//! [`SignalKind::QueueGrowth`] alert naming the queue.
//!
//! The runtime keeps the last samples per queue (seen ones only: an unknown run adds none) and
//! passes them here oldest first. A steady or falling count, or one that went down once within
//! the window, is not growth. Source of the state names: Oban's `oban_job_state` enum.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{Judgement, Observation, signal};
use crate::signal::SignalKind;

/// The check's name in signal `source`s and records.
pub const SOURCE: &str = "maintenance/oban_queue_depth";

/// The growth rule (the schedule's `checks.obanQueueDepth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrowthRule {
    /// Samples that must each be above the one before (≥ 2).
    pub samples: usize,
    /// The newest count must be at least this.
    pub min_available: u64,
}

/// Whether the newest `rule.samples` of `history` (oldest first) rise strictly at every step
/// and end at `rule.min_available` or more. Fewer samples than that: not (yet) growth.
pub fn growing(history: &[u64], rule: GrowthRule) -> bool {
    let n = rule.samples.max(2);
    if history.len() < n {
        return false;
    }
    let window = &history[history.len() - n..];
    window.windows(2).all(|w| w[1] > w[0]) && window[n - 1] >= rule.min_available
}

/// Judge the `available` histories of the app's queues (queue → counts, oldest first, the
/// newest from this run).
pub fn judge(
    app: &str,
    seen: &Observation<BTreeMap<String, Vec<u64>>>,
    rule: GrowthRule,
    now: DateTime<Utc>,
) -> Judgement {
    match seen {
        Observation::Seen(queues) => {
            let mut signals = Vec::new();
            let mut parts = Vec::new();
            for (queue, history) in queues {
                let newest = history.last().copied().unwrap_or(0);
                parts.push(format!("{queue}: {newest} available"));
                if growing(history, rule) {
                    let tail = &history[history.len() - rule.samples.max(2)..];
                    signals.push(signal(
                        app,
                        SignalKind::QueueGrowth,
                        format!("queue:{queue}"),
                        SOURCE,
                        now,
                        format!(
                            "Oban queue {queue}: `available` rose at each of the last {} samples ({})",
                            tail.len(),
                            tail.iter().map(u64::to_string).collect::<Vec<_>>().join(" → ")
                        ),
                    ));
                }
            }
            Judgement::alert(parts.join(", "), signals)
        }
        Observation::Down { class, reason } => {
            let s = signal(
                app,
                SignalKind::PostgresDown,
                class.clone(),
                SOURCE,
                now,
                reason.clone(),
            );
            Judgement::alert(format!("Oban's database is down: {reason}"), vec![s])
        }
        Observation::Unknown { reason } => Judgement::unknown(app, SOURCE, reason.clone(), now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::Status;
    use crate::testkit::t0;

    const RULE: GrowthRule = GrowthRule {
        samples: 4,
        min_available: 0,
    };

    #[test]
    fn growth_means_a_rise_at_every_one_of_the_last_n_samples() {
        assert!(growing(&[5, 10, 20, 40], RULE));
        assert!(growing(&[100, 1, 2, 3, 4], RULE), "only the newest N count");
        assert!(!growing(&[10, 20, 40], RULE), "too few samples yet");
        assert!(!growing(&[5, 10, 10, 40], RULE), "a plateau breaks it");
        assert!(!growing(&[5, 10, 9, 40], RULE), "a dip breaks it");
        assert!(!growing(&[40, 30, 20, 10], RULE));
        assert!(!growing(&[0, 0, 0, 0], RULE));
        let floor = GrowthRule {
            min_available: 50,
            ..RULE
        };
        assert!(!growing(&[1, 2, 3, 4], floor));
        assert!(growing(&[20, 30, 40, 50], floor));
    }

    #[test]
    fn a_growing_queue_alerts_by_name_and_others_stay_quiet() {
        let queues = BTreeMap::from([
            ("analysis".to_owned(), vec![10, 30, 60, 120]),
            ("mailers".to_owned(), vec![3, 0, 2, 1]),
        ]);
        let j = judge("lei", &Observation::Seen(queues), RULE, t0());
        assert_eq!(j.status, Status::Alert);
        assert_eq!(j.signals.len(), 1);
        assert_eq!(
            j.signals[0].fingerprint(),
            "lei/queue_growth/-/queue:analysis"
        );
        assert!(
            j.signals[0].detail.contains("10 → 30 → 60 → 120"),
            "{}",
            j.signals[0].detail
        );
        assert!(
            j.summary.contains("analysis: 120 available"),
            "{}",
            j.summary
        );
    }

    #[test]
    fn an_unreadable_database_is_unknown_not_growth() {
        let j = judge(
            "lei",
            &Observation::Unknown {
                reason: "no answer within 30s".into(),
            },
            RULE,
            t0(),
        );
        assert_eq!(j.status, Status::Unknown);
        assert!(
            j.signals
                .iter()
                .all(|s| s.kind == SignalKind::ObserverBlind)
        );
        assert_eq!(j.signals[0].blind, Some(crate::signal::Blind::Dependency));
    }
}
