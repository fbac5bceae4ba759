//! The maintenance pipeline's judges (DESIGN.md §5 "Maintenance"; the ADR's maintenance table,
//! issue #6): pure functions from one check's observation to a [`Judgement`] — a status and the
//! [`Signal`]s it raises for the incident pipeline, or none.
//!
//! The runtime (`src/maintenance/` in the `opsctl` crate) observes (Fly's machine list,
//! PostgreSQL, Redis, probes), converts what it saw into the types here, calls a judge, and
//! records a finding when the judgement changes. Nothing here awaits, reads a clock or the
//! environment: `now` is an argument.
//!
//! The rule every judge follows (STYLE.md §3; case BUG-07, BUG-30 in `../shared/cases/`): an
//! observation that could not be made (Fly API down or 429, a tool or URL missing, a timeout)
//! is [`Status::Unknown`] and raises at most one [`SignalKind::ObserverBlind`] signal, never
//! a signal against the app.
//!
//! Map: [`machines`] (stopped/failed machines that should run; autostopped ones are idle),
//! [`health`] (machine checks and external probes), [`postgres`] (connections in use),
//! [`redis`] (PING), [`oban`] (unbounded `available` growth), [`cost`] (machine-hours,
//! price, anomaly against the trailing average).

pub mod cost;
pub mod health;
pub mod machines;
pub mod oban;
pub mod postgres;
pub mod redis;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::signal::{Blind, Signal, SignalKind};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Seen, and nothing to report.
    Ok,
    /// Seen, and something is wrong: the judgement carries at least one signal.
    Alert,
    /// Could not see. Never the app's fault, never a reason to act.
    Unknown,
}

impl Status {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Alert => "alert",
            Self::Unknown => "unknown",
        }
    }
}

/// A judge's verdict on one check of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// Ok, alert or unknown.
    pub status: Status,
    /// One line for people (`2 of 3 machines started, 1 idle (autostopped)`). Never a secret.
    pub summary: String,
    /// Signals for the incident pipeline: empty when `Ok`; app signals when `Alert`; at most one
    /// [`SignalKind::ObserverBlind`] when `Unknown`.
    pub signals: Vec<Signal>,
}

impl Judgement {
    /// Nothing to report.
    pub fn ok(summary: impl Into<String>) -> Self {
        Self {
            status: Status::Ok,
            summary: summary.into(),
            signals: Vec::new(),
        }
    }

    /// Something is wrong; `signals` must not be empty (an alert with nothing to say is `ok`).
    pub fn alert(summary: impl Into<String>, signals: Vec<Signal>) -> Self {
        let status = if signals.is_empty() {
            Status::Ok
        } else {
            Status::Alert
        };
        Self {
            status,
            summary: summary.into(),
            signals,
        }
    }

    /// One app's dependency check could not run (URL unset, our login refused, a timeout): one
    /// [`SignalKind::ObserverBlind`] signal for `app`, [`Blind::Dependency`], class `source`'s
    /// check name (`maintenance/redis` → `redis`) so that it dedupes into one finding. Only
    /// that check's `unknown`: it holds back no other signal.
    pub fn unknown(app: &str, source: &str, why: impl Into<String>, now: DateTime<Utc>) -> Self {
        let class = source.rsplit('/').next().unwrap_or(source);
        Self::blind(Some(app), source, Blind::Dependency, class, why, now)
    }

    /// Fly's API could not be read (down, 429 after retries, timeout) by check `source`: one
    /// app-less [`SignalKind::ObserverBlind`] signal, [`Blind::FlyApi`], class
    /// [`FLY_API_BLIND`], so that every check blinded by one Fly outage raises the same
    /// fingerprint `-/observer_blind/-/fly_api` (case BUG-30: one "monitoring path down"
    /// alert, not one per app).
    pub fn fly_blind(source: &str, why: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self::blind(None, source, Blind::FlyApi, FLY_API_BLIND, why, now)
    }

    /// Could not see: one [`SignalKind::ObserverBlind`] signal for `app` (`None`: opsctl's own
    /// view), saying `what` went blind, with blindness `class` (short and stable: part of the
    /// fingerprint). Prefer [`Judgement::unknown`] and [`Judgement::fly_blind`].
    pub fn blind(
        app: Option<&str>,
        source: &str,
        what: Blind,
        class: &str,
        why: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Self {
        let why = why.into();
        Self {
            status: Status::Unknown,
            summary: format!("unknown: {why}"),
            signals: vec![Signal::observer_blind(app, what, class, source, now, why)],
        }
    }

    /// The same judgement of an app whose deploy is in flight: the rollout owns the app's health
    /// then (it judges every batch and rolls back a bad release itself), so the app's own
    /// signals (machines down, probes failing) are held back instead of opening a second
    /// incident for machines the rollout is replacing or rolling back. Blindness
    /// ([`SignalKind::ObserverBlind`]) still goes out: it is about our view, not the app. The
    /// status stays as judged, and the summary says why nothing was raised.
    pub fn during_rollout(mut self, deploy: &str) -> Self {
        let before = self.signals.len();
        self.signals.retain(|s| s.kind == SignalKind::ObserverBlind);
        if self.signals.len() < before {
            self.summary = format!(
                "{} (deploy {deploy} in flight: the rollout judges health; no signal raised)",
                self.summary
            );
        }
        self
    }

    /// The fingerprints of its signals, sorted and deduplicated: with `status`, what "the same
    /// finding as last time" means (a finding is recorded only when this changes).
    pub fn fingerprints(&self) -> Vec<String> {
        let mut f: Vec<String> = self.signals.iter().map(Signal::fingerprint).collect();
        f.sort();
        f.dedup();
        f
    }
}

/// Blindness class of a check that could not read Fly's API (down, 429, timeout).
pub const FLY_API_BLIND: &str = "fly_api";

/// What one observation of a dependency gave: the value, positive evidence that the thing is
/// down, or nothing to judge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "seen", rename_all = "snake_case")]
pub enum Observation<T> {
    /// Observed.
    Seen(T),
    /// The service answered that it is not there (connection refused, shutting down, an
    /// error reply): the dependency is down. `class` is short and stable (`refused`,
    /// `shutting_down`); `reason` is for people and holds no secret.
    Down {
        /// Failure class (part of the signal's fingerprint).
        class: String,
        /// Words for people.
        reason: String,
    },
    /// Nothing to judge: not configured, URL variable unset, timeout, DNS failure, our own
    /// credentials refused. Never counted against the app.
    Unknown {
        /// Words for people.
        reason: String,
    },
}

/// A signal of `kind` about `app` from check `source` at `now`.
pub(crate) fn signal(
    app: &str,
    kind: SignalKind,
    class: impl Into<String>,
    source: &str,
    now: DateTime<Utc>,
    detail: impl Into<String>,
) -> Signal {
    Signal {
        app: Some(app.to_owned()),
        kind,
        release: None,
        class: class.into(),
        source: source.to_owned(),
        at: now,
        machine: None,
        detail: detail.into(),
        deploy: None,
        blind: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(kind: SignalKind, class: &str) -> Signal {
        Signal {
            app: Some("lei".into()),
            kind,
            release: Some(7),
            class: class.into(),
            source: "maintenance/machines".into(),
            at: DateTime::<Utc>::UNIX_EPOCH,
            machine: Some("m1".into()),
            detail: String::new(),
            deploy: None,
            blind: None,
        }
    }

    #[test]
    fn a_rollout_holds_back_app_signals_but_not_blindness() {
        let j = Judgement::alert(
            "1 down",
            vec![
                signal(SignalKind::MachineDown, "stopped"),
                Signal {
                    blind: Some(Blind::FlyApi),
                    ..signal(SignalKind::ObserverBlind, FLY_API_BLIND)
                },
            ],
        )
        .during_rollout("d-1");
        assert_eq!(j.status, Status::Alert);
        assert_eq!(j.signals.len(), 1);
        assert_eq!(j.signals[0].kind, SignalKind::ObserverBlind);
        assert!(j.summary.contains("deploy d-1 in flight"), "{}", j.summary);

        let quiet = Judgement::ok("all fine").during_rollout("d-1");
        assert_eq!(quiet.summary, "all fine");
    }

    /// The producers say what went blind: Fly's API (app-less, one fingerprint for every check)
    /// or one app's dependency check (its own check name as class).
    #[test]
    fn producers_say_what_went_blind() {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let fly = Judgement::fly_blind(machines::SOURCE, "503 from Fly", now);
        assert_eq!(fly.status, Status::Unknown);
        assert_eq!(fly.signals[0].blind, Some(Blind::FlyApi));
        assert_eq!(fly.signals[0].fingerprint(), "-/observer_blind/-/fly_api");
        assert_eq!(fly.summary, "unknown: 503 from Fly");
        let dep = Judgement::unknown("lei", "maintenance/flyproxy", "URL unset", now);
        assert_eq!(dep.status, Status::Unknown);
        assert_eq!(dep.signals[0].blind, Some(Blind::Dependency));
        assert_eq!(
            dep.signals[0].fingerprint(),
            "lei/observer_blind/-/flyproxy"
        );
    }
}
