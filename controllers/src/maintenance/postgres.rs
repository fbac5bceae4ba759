//! PostgreSQL connections (ADR maintenance table: every 15 min): connections in use over the
//! connections available to ordinary roles, `max_connections` minus
//! `superuser_reserved_connections`, above the `FlyApp`'s
//! `health.dependencies.postgres.maxConnectionsPercent` (default 80) → alert. Reaching the
//! limit starves the app of connections before the server itself is in trouble.
//!
//! PostgreSQL refusing connections (down, shutting down) is [`SignalKind::PostgresDown`];
//! "too many clients" (SQLSTATE 53300) is the connections alert at 100 %. Not being able to ask
//! (URL unset, our login refused, timeout) is unknown. Source of the settings:
//! <https://www.postgresql.org/docs/current/runtime-config-connection.html>.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Judgement, Observation, signal};
use crate::signal::SignalKind;

/// The check's name in signal `source`s and records.
pub const SOURCE: &str = "maintenance/postgres_connections";

/// One reading of the server's connection use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connections {
    /// Client backends in `pg_stat_activity`.
    pub in_use: u32,
    /// `max_connections`.
    pub max_connections: u32,
    /// `superuser_reserved_connections`.
    pub superuser_reserved: u32,
}

impl Connections {
    /// Connections ordinary roles can open: `max_connections - superuser_reserved_connections`
    /// (at least 1).
    pub fn available(&self) -> u32 {
        self.max_connections
            .saturating_sub(self.superuser_reserved)
            .max(1)
    }

    /// `in_use` as a percentage of [`Self::available`].
    pub fn percent(&self) -> f64 {
        f64::from(self.in_use) * 100.0 / f64::from(self.available())
    }
}

/// Judge one reading against `max_percent` (1–100).
pub fn judge(
    app: &str,
    seen: &Observation<Connections>,
    max_percent: u8,
    now: DateTime<Utc>,
) -> Judgement {
    match seen {
        Observation::Seen(c) => {
            let summary = format!(
                "{} of {} connections in use ({:.0} %; max_connections {} minus {} reserved), threshold {max_percent} %",
                c.in_use,
                c.available(),
                c.percent(),
                c.max_connections,
                c.superuser_reserved
            );
            if c.percent() > f64::from(max_percent) {
                let s = signal(
                    app,
                    SignalKind::PostgresConnections,
                    format!("above:{max_percent}"),
                    SOURCE,
                    now,
                    summary.clone(),
                );
                Judgement::alert(summary, vec![s])
            } else {
                Judgement::ok(summary)
            }
        }
        Observation::Down { class, reason } if class == "too_many_connections" => {
            let s = signal(
                app,
                SignalKind::PostgresConnections,
                format!("above:{max_percent}"),
                SOURCE,
                now,
                format!("the server refused a connection: {reason}"),
            );
            Judgement::alert(format!("no connection left: {reason}"), vec![s])
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
            Judgement::alert(format!("PostgreSQL down: {reason}"), vec![s])
        }
        Observation::Unknown { reason } => Judgement::unknown(app, SOURCE, reason.clone(), now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintenance::Status;
    use crate::testkit::t0;

    fn seen(in_use: u32) -> Observation<Connections> {
        Observation::Seen(Connections {
            in_use,
            max_connections: 100,
            superuser_reserved: 3,
        })
    }

    #[test]
    fn the_threshold_is_over_max_connections_minus_reserved() {
        // 97 available: 77 is 79.4 %, 78 is 80.4 %.
        assert_eq!(judge("a", &seen(77), 80, t0()).status, Status::Ok);
        let j = judge("a", &seen(78), 80, t0());
        assert_eq!(j.status, Status::Alert, "{j:?}");
        assert_eq!(
            j.signals[0].fingerprint(),
            "a/postgres_connections/-/above:80"
        );
        assert!(j.summary.contains("78 of 97"), "{}", j.summary);
        // Exactly at the threshold is not above it.
        let exact = Observation::Seen(Connections {
            in_use: 80,
            max_connections: 100,
            superuser_reserved: 0,
        });
        assert_eq!(judge("a", &exact, 80, t0()).status, Status::Ok);
    }

    #[test]
    fn down_full_and_unknown_are_told_apart() {
        let down = Observation::Down {
            class: "refused".into(),
            reason: "connection refused".into(),
        };
        let j = judge("a", &down, 80, t0());
        assert_eq!(j.signals[0].kind, SignalKind::PostgresDown);
        let full = Observation::Down {
            class: "too_many_connections".into(),
            reason: "the server has too many connections".into(),
        };
        assert_eq!(
            judge("a", &full, 80, t0()).signals[0].kind,
            SignalKind::PostgresConnections
        );
        let blind = Observation::Unknown {
            reason: "LEI_DATABASE_URL is not set".into(),
        };
        let j = judge("a", &blind, 80, t0());
        assert_eq!(j.status, Status::Unknown);
        assert_eq!(j.signals.len(), 1);
        assert_eq!(j.signals[0].kind, SignalKind::ObserverBlind);
        assert_eq!(j.signals[0].blind, Some(crate::signal::Blind::Dependency));
        assert_eq!(
            j.signals[0].fingerprint(),
            "a/observer_blind/-/postgres_connections"
        );
    }
}
