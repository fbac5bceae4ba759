//! Signals: what the maintenance checks, deploy health and log watchers report, and what the
//! incident pipeline consumes (DESIGN.md §5; ADR §2). A signal is a fact about one app (or about
//! opsctl's own view of Fly) at one instant; the incident pipeline turns signals into incidents
//! by their [`Signal::fingerprint`].
//!
//! The fingerprint is built from typed fields only (app, kind, release, failure class), never
//! from free text, so two reports of the same fault dedupe even when their wording differs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One observation worth the incident pipeline's attention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Fly app name; `None` for signals about opsctl's own view (e.g. Fly unreachable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// What kind of fault.
    pub kind: SignalKind,
    /// Fly release version the app ran when seen, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<i64>,
    /// A short, stable class of failure within the kind (`exit:1`, `critical:readyz`,
    /// `status:503`, `timeout`); part of the fingerprint, so keep it free of ids, numbers that
    /// change between reports, and text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub class: String,
    /// Which check or pipeline raised it (`maintenance/redis`, `deploy/health`).
    pub source: String,
    /// UTC.
    pub at: DateTime<Utc>,
    /// Machine concerned, when one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Words for people. Not part of the fingerprint. Never holds a secret value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The deploy record this signal comes from, when a deploy raised it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<String>,
    /// On an [`SignalKind::ObserverBlind`] signal, what went blind: opsctl's view of Fly (one
    /// "monitoring path down" incident that holds back every app's signals, case BUG-30) or one
    /// app's dependency check (only that check's `unknown`). `None` on every other kind, and on
    /// JSON written before the field existed (read as described at
    /// `incident::book::monitoring_path`). Not part of the fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blind: Option<Blind>,
}

impl Signal {
    /// An [`SignalKind::ObserverBlind`] signal: `what` went blind while check `source` looked at
    /// `app` (`None`: opsctl's own view, no app) at `at` (UTC). `class` is the short, stable
    /// blindness class of the fingerprint (`fly_api`, `tool_missing:flyctl`, `redis`); `detail`
    /// is for people and holds no secret.
    pub fn observer_blind(
        app: Option<&str>,
        what: Blind,
        class: impl Into<String>,
        source: &str,
        at: DateTime<Utc>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            app: app.map(str::to_owned),
            kind: SignalKind::ObserverBlind,
            release: None,
            class: class.into(),
            source: source.to_owned(),
            at,
            machine: None,
            detail: detail.into(),
            deploy: None,
            blind: Some(what),
        }
    }

    /// `app/kind/release/class`, e.g. `lowendinsight/machine_exited/42/exit:1`; `-` stands for
    /// an absent part. Stable across reports of the same fault.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.app.as_deref().unwrap_or("-"),
            self.kind.as_str(),
            self.release
                .map_or_else(|| "-".to_owned(), |r| r.to_string()),
            if self.class.is_empty() {
                "-"
            } else {
                &self.class
            },
        )
    }
}

/// What an [`SignalKind::ObserverBlind`] signal says went blind. The producer says it; the
/// incident book decides from it alone whether the signal is about opsctl's monitoring path
/// (`incident::book::monitoring_path`), never from the wording or prefix of `class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Blind {
    /// Fly's API could not be read (down, 429 after retries, slower than the check's timeout):
    /// opsctl's view of every app is gone. Monitoring path.
    FlyApi,
    /// A tool opsctl reads Fly through is missing or cannot run (the LEI `fly status` bead:
    /// `Erlang error: :enoent`). Monitoring path, even when the signal names an app.
    Tool,
    /// One app's dependency check could not run (Redis, PostgreSQL or Oban URL unset or our
    /// login refused, a probe without an answer, no certificate hostname seen). Only that
    /// check's `unknown`: not the monitoring path, holds nothing back.
    Dependency,
}

impl Blind {
    /// Snake-case name, as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlyApi => "fly_api",
            Self::Tool => "tool",
            Self::Dependency => "dependency",
        }
    }

    /// Whether this blindness is opsctl's own monitoring path (Fly's API or the tool that reads
    /// it) rather than one app's dependency check.
    pub fn is_monitoring_path(self) -> bool {
        match self {
            Self::FlyApi | Self::Tool => true,
            Self::Dependency => false,
        }
    }
}

/// Kinds of signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    /// A Fly machine check is critical or missing on a machine that should run.
    CheckFailing,
    /// An external probe from the manifest failed (status, body, timeout).
    ProbeFailed,
    /// A machine that should run is `stopped`/`failed`, or exited non-zero.
    MachineDown,
    /// A machine is in a crash loop (flyctl's rule).
    CrashLoop,
    /// A deploy failed health (the deploy pipeline rolled back or tried to).
    DeployFailed,
    /// A deploy left no healthy machine in a process group (BUG-02).
    DeployOutage,
    /// A TLS certificate has fewer days left than its window.
    CertExpiring,
    /// A certificate is not `active`/ready (pending validation, rate limited, errors).
    CertNotReady,
    /// PostgreSQL connections above the threshold.
    PostgresConnections,
    /// PostgreSQL unreachable.
    PostgresDown,
    /// Redis PING failed.
    RedisDown,
    /// Oban `available` jobs growing without bound.
    QueueGrowth,
    /// Cost estimate above twice the trailing average.
    CostAnomaly,
    /// An SLO burns its error budget too fast.
    SloBurn,
    /// A log line matched a known pattern (BEAM crash dump, `** (EXIT)`, …).
    LogPattern,
    /// opsctl could not observe (Fly API down, 429, tool missing): never the app's fault.
    ObserverBlind,
    /// A process group left on more than one image for more than 10 minutes with no deploy
    /// in flight (the invariant `single_image_per_group`, case BUG-08); `class` is
    /// `mixed_images:<group>`.
    MixedImages,
}

impl SignalKind {
    /// Every kind, in declaration order (a new variant goes here as well as in
    /// [`SignalKind::as_str`]; the runbook kind's name list is checked against this).
    pub const ALL: [SignalKind; 17] = [
        Self::CheckFailing,
        Self::ProbeFailed,
        Self::MachineDown,
        Self::CrashLoop,
        Self::DeployFailed,
        Self::DeployOutage,
        Self::CertExpiring,
        Self::CertNotReady,
        Self::PostgresConnections,
        Self::PostgresDown,
        Self::RedisDown,
        Self::QueueGrowth,
        Self::CostAnomaly,
        Self::SloBurn,
        Self::LogPattern,
        Self::ObserverBlind,
        Self::MixedImages,
    ];

    /// Snake-case name, as in JSON and fingerprints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CheckFailing => "check_failing",
            Self::ProbeFailed => "probe_failed",
            Self::MachineDown => "machine_down",
            Self::CrashLoop => "crash_loop",
            Self::DeployFailed => "deploy_failed",
            Self::DeployOutage => "deploy_outage",
            Self::CertExpiring => "cert_expiring",
            Self::CertNotReady => "cert_not_ready",
            Self::PostgresConnections => "postgres_connections",
            Self::PostgresDown => "postgres_down",
            Self::RedisDown => "redis_down",
            Self::QueueGrowth => "queue_growth",
            Self::CostAnomaly => "cost_anomaly",
            Self::SloBurn => "slo_burn",
            Self::LogPattern => "log_pattern",
            Self::ObserverBlind => "observer_blind",
            Self::MixedImages => "mixed_images",
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn every_kind_has_one_name_that_reads_back() {
        let mut names = std::collections::BTreeSet::new();
        for k in SignalKind::ALL {
            assert!(names.insert(k.as_str()), "{} twice", k.as_str());
            let back: SignalKind = serde_json::from_value(serde_json::json!(k.as_str())).unwrap();
            assert_eq!(back, k);
        }
    }

    #[test]
    fn the_fingerprint_ignores_wording_time_and_machine() {
        let at = |s| Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, s).unwrap();
        let a = Signal {
            app: Some("lei".into()),
            kind: SignalKind::MachineDown,
            release: Some(42),
            class: "exit:1".into(),
            source: "maintenance/machines".into(),
            at: at(0),
            machine: Some("m1".into()),
            detail: "machine m1 exited with code 1".into(),
            deploy: None,
            blind: None,
        };
        let b = Signal {
            at: at(30),
            machine: Some("m2".into()),
            detail: "exited (1)".into(),
            ..a.clone()
        };
        assert_eq!(a.fingerprint(), "lei/machine_down/42/exit:1");
        assert_eq!(a.fingerprint(), b.fingerprint());
        let other_release = Signal {
            release: Some(43),
            ..a.clone()
        };
        assert_ne!(a.fingerprint(), other_release.fingerprint());
        let blind = Signal {
            app: None,
            kind: SignalKind::ObserverBlind,
            release: None,
            class: String::new(),
            ..a
        };
        assert_eq!(blind.fingerprint(), "-/observer_blind/-/-");
    }

    /// What went blind is typed, read back from JSON, and changes no fingerprint; JSON written
    /// before the field existed still reads (with no `blind`).
    #[test]
    fn blindness_is_a_typed_field_outside_the_fingerprint() {
        let at = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
        let fly = Signal::observer_blind(
            None,
            Blind::FlyApi,
            "fly_api",
            "maintenance/machine_status",
            at,
            "Fly's machine list: 503",
        );
        assert_eq!(fly.fingerprint(), "-/observer_blind/-/fly_api");
        let json = serde_json::to_value(&fly).unwrap();
        assert_eq!(json["blind"], "fly_api");
        assert_eq!(serde_json::from_value::<Signal>(json).unwrap(), fly);
        let as_dependency = Signal {
            blind: Some(Blind::Dependency),
            ..fly.clone()
        };
        assert_eq!(as_dependency.fingerprint(), fly.fingerprint());

        let old = serde_json::json!({
            "kind": "observer_blind",
            "class": "fly_api",
            "source": "maintenance/machine_status",
            "at": "2026-11-29T12:00:00Z",
        });
        let old: Signal = serde_json::from_value(old).unwrap();
        assert_eq!(old.blind, None);
        assert_eq!(old.fingerprint(), fly.fingerprint());
        let plain = serde_json::to_value(Signal { blind: None, ..fly }).unwrap();
        assert!(plain.get("blind").is_none(), "{plain}");
    }
}
