//! Redis (ADR maintenance table: every 5 min): a PING that fails is a
//! [`SignalKind::RedisDown`] signal — a degradation, not an outage (ADR §7: for LowEndInsight a
//! Redis disconnect degrades caching while `/` still serves); the incident pipeline classifies
//! it so. No answer in time, or no URL to ask, is unknown.

use chrono::{DateTime, Utc};

use super::{Judgement, Observation, signal};
use crate::signal::SignalKind;

/// The check's name in signal `source`s and records.
pub const SOURCE: &str = "maintenance/redis";

/// Judge one PING: `Seen(())` is a `PONG`.
pub fn judge(app: &str, seen: &Observation<()>, now: DateTime<Utc>) -> Judgement {
    match seen {
        Observation::Seen(()) => Judgement::ok("PING answered PONG"),
        Observation::Down { class, reason } => {
            let s = signal(
                app,
                SignalKind::RedisDown,
                class.clone(),
                SOURCE,
                now,
                reason.clone(),
            );
            Judgement::alert(format!("Redis down: {reason}"), vec![s])
        }
        Observation::Unknown { reason } => Judgement::unknown(app, SOURCE, reason.clone(), now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::Status;
    use crate::testkit::t0;

    #[test]
    fn pong_is_ok_refused_is_down_timeout_is_unknown() {
        assert_eq!(judge("a", &Observation::Seen(()), t0()).status, Status::Ok);
        let down = Observation::Down {
            class: "refused".into(),
            reason: "connection refused".into(),
        };
        let j = judge("a", &down, t0());
        assert_eq!(j.status, Status::Alert);
        assert_eq!(j.signals[0].fingerprint(), "a/redis_down/-/refused");
        let j = judge(
            "a",
            &Observation::Unknown {
                reason: "no answer within 5s".into(),
            },
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
            Some(crate::signal::Blind::Dependency),
            "Redis unseen is that app's check, not the monitoring path"
        );
    }
}
