//! Certificate windows: from what Fly's certificates API and a TLS handshake show about one
//! hostname, decide what is wrong (expired, short, not ready, stuck on a CA rate limit, the two
//! views disagreeing) and when to look again (DESIGN.md §3 `CertWindow`; issue #6).
//!
//! Pure: the observations and `now` (UTC) come in as arguments; the runtime
//! (`opsctl::maintenance::certs`) makes the calls, and the [`CertFinding`]s go out as
//! [`Signal`]s to the incident pipeline. Nothing here ever asks for a certificate to be deleted,
//! re-added or re-ordered: the maintenance pipeline is read-only.
//!
//! Rules, with their sources (`../shared/cases/README.md`):
//! - **BUG-23**: every comparison is between UTC instants; "fewer than N days left" means
//!   `remaining_seconds < N × 86400`, so exactly 14 days is not short and 13 days 23 hours is;
//!   days left are printed floored (`floor(remaining_seconds / 86400)`, negative once expired);
//!   a certificate is expired once `now` is past its `notAfter` (RFC 5280 §4.1.2.5: the
//!   validity period includes `notAfter`).
//! - **BUG-21**: a certificate whose `rate_limited_until` is in the future is reported once as
//!   `acme_rate_limited` (the class stays the same until the state changes, so the incident
//!   pipeline does not repeat it) and re-checked at most hourly ([`next_check_at`]).
//! - **BUG-07** (the kind of fault): an observer that cannot see says so. A failed Fly call or
//!   handshake is `Unknown`, which raises no finding and never stands for "expired".

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use opsctl_crds::kinds::cert_window::{CertWindowSpec, OnShort};
use serde::{Deserialize, Serialize};

use crate::signal::{Signal, SignalKind};

/// Seconds in a day.
const DAY_SECS: i64 = 86_400;

/// A rate-limited certificate is looked at no more often than this (BUG-21).
pub const RATE_LIMITED_RECHECK: Duration = Duration::from_secs(3600);

/// Fly's expiry and the handshake's `notAfter` further apart than this disagree. Both read the
/// same certificate when they agree, so they match to the second; the slack allows for Fly
/// rounding its timestamps.
pub const DISAGREEMENT_SLACK_SECS: i64 = 60;

/// Time left on a certificate at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remaining {
    /// `notAfter − now` in seconds; negative once expired.
    pub seconds: i64,
    /// `floor(seconds / 86400)`: 13 for 13 days 23 hours, −1 for one hour past expiry.
    pub days_left: i64,
}

/// Time left on a certificate expiring at `not_after` (UTC) at `now` (UTC) (BUG-23).
pub fn remaining(not_after: DateTime<Utc>, now: DateTime<Utc>) -> Remaining {
    let seconds = (not_after - now).num_seconds();
    Remaining {
        seconds,
        days_left: seconds.div_euclid(DAY_SECS),
    }
}

/// True when fewer than `min_days` whole days are left: `seconds < min_days × 86400`
/// (BUG-23: exactly `min_days` days is not short, one second less is).
pub fn is_short(r: Remaining, min_days: u32) -> bool {
    r.seconds < i64::from(min_days) * DAY_SECS
}

/// Why a `notAfter` text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a certificate time: expected RFC 3339 (2025-03-03T02:00:00Z) or OpenSSL's `Mar  3 02:00:00 2025 GMT`"
)]
pub struct TimeParseError(pub String);

/// A certificate time as Fly (RFC 3339, e.g. `2025-03-03T02:00:00Z`) or OpenSSL
/// (`Mar  3 02:00:00 2025 GMT`, as `openssl x509 -enddate` prints) writes it, as a UTC instant
/// (BUG-23 case 4: both forms name the same instant).
///
/// # Errors
/// [`TimeParseError`] for anything else, including an OpenSSL time not in GMT.
pub fn parse_cert_time(text: &str) -> Result<DateTime<Utc>, TimeParseError> {
    let t = text.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(t) {
        return Ok(d.with_timezone(&Utc));
    }
    let err = || TimeParseError(text.to_owned());
    let body = t.strip_suffix("GMT").ok_or_else(err)?;
    let words: Vec<&str> = body.split_whitespace().collect();
    let joined = words.join(" ");
    NaiveDateTime::parse_from_str(&joined, "%b %d %H:%M:%S %Y")
        .map(|n| n.and_utc())
        .map_err(|_| err())
}

/// A certificate's status as Fly reports it (`status` of the certificates API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlyCertStatus {
    /// Issued and served.
    Active,
    /// Waiting for DNS / ACME validation (also while rate limited).
    PendingValidation,
    /// Waiting for the ownership TXT record.
    PendingOwnership,
    /// A status this version does not know, kept verbatim.
    Other(String),
}

impl FlyCertStatus {
    /// From Fly's spelling.
    pub fn from_wire(s: &str) -> Self {
        match s {
            "active" => Self::Active,
            "pending_validation" => Self::PendingValidation,
            "pending_ownership" => Self::PendingOwnership,
            other => Self::Other(other.to_owned()),
        }
    }

    /// Fly's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::PendingValidation => "pending_validation",
            Self::PendingOwnership => "pending_ownership",
            Self::Other(s) => s,
        }
    }
}

/// A DNS record Fly asks for before it can issue or serve a certificate
/// (`dns_requirements` of the certificates API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// `A`, `AAAA`, `CNAME` or `TXT`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The record's name (the hostname, `_acme-challenge.…`, `_fly-ownership.…`).
    pub name: String,
    /// What it must hold.
    pub value: String,
}

/// What Fly's certificates API said about one hostname, in domain terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlyCertView {
    /// Overall status.
    pub status: FlyCertStatus,
    /// Fly's `configured`: the certificate is ready to be served.
    pub configured: bool,
    /// Fly's `validation.dns_configured`: the hostname's DNS points at the app.
    pub dns_configured: bool,
    /// `expires_at` (UTC) of each issued certificate (ACME and custom); empty before issuance.
    pub expires_at: Vec<DateTime<Utc>>,
    /// ACME is rate limited by the CA until then (UTC), if it is.
    pub rate_limited_until: Option<DateTime<Utc>>,
    /// `validation_errors[].code` (`DNS_NOT_CONFIGURED`, `CAA_RECORD_MISSING_FLY`, …).
    pub validation_errors: Vec<String>,
    /// The records Fly asks for (`dns_requirements`).
    pub dns_requirements: Vec<DnsRecord>,
}

/// What the certificates API gave for a hostname.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum FlyCertObservation {
    /// The certificate as Fly shows it.
    Seen(FlyCertView),
    /// Fly answered 404: the hostname was never added to the app (or was removed).
    Missing,
    /// No answer (unreachable, 429, 5xx, timeout): unknown, not unhealthy.
    Unknown {
        /// What went wrong, for people.
        why: String,
    },
}

/// The trust verdict of the handshake's certificate chain (against the platform's roots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum TlsVerdict {
    /// Chain, name and dates verified.
    Trusted,
    /// Verification failed, with the verifier's reason (expired, unknown issuer, wrong name).
    Untrusted {
        /// The verifier's reason.
        reason: String,
    },
}

/// What a TLS handshake to the hostname showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum HandshakeObservation {
    /// The leaf certificate was read.
    Seen {
        /// The leaf's `notAfter`, UTC.
        not_after: DateTime<Utc>,
        /// Whether the chain verified.
        verdict: TlsVerdict,
    },
    /// Not attempted: a wildcard hostname has no single host to connect to.
    NotApplicable,
    /// Connect or handshake failed: unknown, never "expired".
    Unknown {
        /// What went wrong, for people.
        why: String,
    },
}

/// One thing wrong with a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "finding")]
pub enum CertFindingKind {
    /// `now` is past `notAfter`.
    Expired {
        /// The expiry, UTC.
        not_after: DateTime<Utc>,
        /// Floored, negative.
        days_left: i64,
    },
    /// Fewer than `min_days` whole days left.
    Expiring {
        /// The expiry, UTC.
        not_after: DateTime<Utc>,
        /// Floored.
        days_left: i64,
        /// The window's `minDaysRemaining`.
        min_days: u32,
    },
    /// ACME is blocked by the CA's rate limit until `until`; only waiting cures it (BUG-21).
    RateLimited {
        /// `rate_limited_until`, UTC.
        until: DateTime<Utc>,
    },
    /// The hostname's DNS does not point at the app: the records Fly asks for.
    DnsNotConfigured {
        /// What to create.
        records: Vec<DnsRecord>,
    },
    /// Not active for another reason (pending validation or ownership, validation errors).
    NotReady {
        /// Fly's status.
        status: FlyCertStatus,
        /// Fly's validation error codes.
        validation_errors: Vec<String>,
        /// The records Fly asks for.
        records: Vec<DnsRecord>,
    },
    /// Fly has no certificate for the hostname.
    Missing,
    /// The served chain does not verify, for a reason other than expiry.
    Untrusted {
        /// The verifier's reason.
        reason: String,
    },
    /// The certificate served differs from every one Fly lists (e.g. an issued certificate that
    /// has not reached Fly's edge, BUG-21's second report).
    ViewsDisagree {
        /// Fly's `expires_at` values.
        fly_expires_at: Vec<DateTime<Utc>>,
        /// The served leaf's `notAfter`.
        served_not_after: DateTime<Utc>,
    },
}

impl CertFindingKind {
    /// The signal `class`: a stable word per kind of finding (part of the fingerprint).
    pub fn class(&self) -> &'static str {
        match self {
            Self::Expired { .. } => "expired",
            Self::Expiring { .. } => "expiring",
            Self::RateLimited { .. } => "acme_rate_limited",
            Self::DnsNotConfigured { .. } => "dns_not_configured",
            Self::NotReady { .. } => "not_ready",
            Self::Missing => "missing",
            Self::Untrusted { .. } => "untrusted",
            Self::ViewsDisagree { .. } => "views_disagree",
        }
    }

    /// `cert_expiring` for expiry, `cert_not_ready` for the rest.
    pub fn signal_kind(&self) -> SignalKind {
        match self {
            Self::Expired { .. } | Self::Expiring { .. } => SignalKind::CertExpiring,
            _ => SignalKind::CertNotReady,
        }
    }
}

/// A finding about one hostname of one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertFinding {
    /// Fly app.
    pub app: String,
    /// Hostname.
    pub hostname: String,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: CertFindingKind,
    /// Words for people (times in RFC 3339 with `Z`).
    pub detail: String,
}

impl CertFinding {
    /// The signal for the incident pipeline. The hostname goes into `class` after the kind
    /// (`expiring:app.example.com`) so two hostnames of one app are two incidents, while
    /// `class` stays free of times and counts (the fingerprint is stable across checks).
    pub fn to_signal(&self, at: DateTime<Utc>) -> Signal {
        Signal {
            app: Some(self.app.clone()),
            kind: self.kind.signal_kind(),
            release: None,
            class: format!("{}:{}", self.kind.class(), self.hostname),
            source: "maintenance/certs".to_owned(),
            at,
            machine: None,
            detail: self.detail.clone(),
            deploy: None,
            blind: None,
        }
    }
}

/// Which view an expiry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpirySource {
    /// The served leaf, read in a TLS handshake.
    Handshake,
    /// Fly's certificates API.
    Fly,
}

/// Everything decided about one hostname at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertAssessment {
    /// Fly app.
    pub app: String,
    /// Hostname.
    pub hostname: String,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// The expiry that counts: the served leaf's when the handshake saw one, else the latest
    /// of Fly's. `None`: neither view gave one (unknown, or not issued yet).
    pub not_after: Option<DateTime<Utc>>,
    /// Where `not_after` came from.
    pub expiry_source: Option<ExpirySource>,
    /// Time left at `at`.
    pub remaining: Option<Remaining>,
    /// Fly's view.
    pub fly: FlyCertObservation,
    /// The handshake's view.
    pub handshake: HandshakeObservation,
    /// What is wrong; empty when all is well *or unknown* (see `fly` / `handshake`).
    pub findings: Vec<CertFinding>,
}

impl CertAssessment {
    /// True when neither view could be read: nothing is known, nothing is reported.
    pub fn is_unknown(&self) -> bool {
        matches!(self.fly, FlyCertObservation::Unknown { .. })
            && !matches!(self.handshake, HandshakeObservation::Seen { .. })
    }

    /// `rate_limited_until` when Fly showed one (past or future).
    pub fn rate_limited_until(&self) -> Option<DateTime<Utc>> {
        match &self.fly {
            FlyCertObservation::Seen(v) => v.rate_limited_until,
            _ => None,
        }
    }

    /// The signals the window's `onShort` asks for: one per finding with `alert`, none with
    /// `report`.
    pub fn signals(&self, on_short: OnShort) -> Vec<Signal> {
        match on_short {
            OnShort::Alert => self.findings.iter().map(|f| f.to_signal(self.at)).collect(),
            OnShort::Report => Vec::new(),
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn records_text(records: &[DnsRecord]) -> String {
    if records.is_empty() {
        return "Fly listed no DNS records".to_owned();
    }
    let list: Vec<String> = records
        .iter()
        .map(|r| format!("{} {} {}", r.kind, r.name, r.value))
        .collect();
    format!("Fly asks for: {}", list.join("; "))
}

/// Decides what is wrong with `hostname` of `app` under `window`, from Fly's view and the
/// handshake's, at `now` (UTC). Findings, in this order:
/// 1. Fly: `Missing`; `RateLimited` while `rate_limited_until > now` (instead of not-ready:
///    only waiting helps); `DnsNotConfigured` with the records Fly asks for; `NotReady` for any
///    other status than `active` or `configured: false`.
/// 2. Expiry (the served leaf's `notAfter`, else Fly's latest `expires_at`): `Expired` when
///    past it, else `Expiring` when fewer than `minDaysRemaining` whole days are left (BUG-23).
/// 3. `Untrusted` when the served chain does not verify for a reason other than expiry.
/// 4. `ViewsDisagree` when Fly lists certificates and none expires within
///    [`DISAGREEMENT_SLACK_SECS`] of the served one.
///
/// An `Unknown` view contributes nothing: no finding is ever made from missing information.
pub fn assess(
    app: &str,
    hostname: &str,
    window: &CertWindowSpec,
    fly: FlyCertObservation,
    handshake: HandshakeObservation,
    now: DateTime<Utc>,
) -> CertAssessment {
    let mut kinds = Vec::new();
    let mut details = Vec::new();
    let mut push = |k: CertFindingKind, d: String| {
        kinds.push(k);
        details.push(d);
    };

    match &fly {
        FlyCertObservation::Missing => push(
            CertFindingKind::Missing,
            format!(
                "Fly has no certificate for {hostname} on app {app}: add it with `fly certs add {hostname} -a {app}`"
            ),
        ),
        FlyCertObservation::Seen(v) => {
            let limited = v.rate_limited_until.filter(|u| *u > now);
            let ready = v.status == FlyCertStatus::Active && v.configured;
            if let Some(until) = limited {
                push(
                    CertFindingKind::RateLimited { until },
                    format!(
                        "certificate for {hostname} is {} and its CA rate limit lasts until {}; only waiting helps: do not delete or re-add it (new orders count against the limit)",
                        v.status.as_str(),
                        rfc3339(until)
                    ),
                );
            } else if !ready && !v.dns_configured {
                push(
                    CertFindingKind::DnsNotConfigured {
                        records: v.dns_requirements.clone(),
                    },
                    format!(
                        "DNS for {hostname} does not point at {app}; {}",
                        records_text(&v.dns_requirements)
                    ),
                );
            } else if !ready {
                let errors = if v.validation_errors.is_empty() {
                    String::new()
                } else {
                    format!(" (validation errors: {})", v.validation_errors.join(", "))
                };
                push(
                    CertFindingKind::NotReady {
                        status: v.status.clone(),
                        validation_errors: v.validation_errors.clone(),
                        records: v.dns_requirements.clone(),
                    },
                    format!(
                        "certificate for {hostname} is {}{errors}; {}",
                        v.status.as_str(),
                        records_text(&v.dns_requirements)
                    ),
                );
            }
        }
        FlyCertObservation::Unknown { .. } => {}
    }

    let fly_expiries: Vec<DateTime<Utc>> = match &fly {
        FlyCertObservation::Seen(v) => v.expires_at.clone(),
        _ => Vec::new(),
    };
    let (not_after, expiry_source, verdict) = match &handshake {
        HandshakeObservation::Seen { not_after, verdict } => (
            Some(*not_after),
            Some(ExpirySource::Handshake),
            Some(verdict),
        ),
        _ => match fly_expiries.iter().max() {
            Some(t) => (Some(*t), Some(ExpirySource::Fly), None),
            None => (None, None, None),
        },
    };
    let left = not_after.map(|t| remaining(t, now));
    let mut expired = false;
    if let (Some(t), Some(r)) = (not_after, left) {
        let seen_by = match expiry_source {
            Some(ExpirySource::Fly) => "Fly's certificates API",
            _ => "the TLS handshake",
        };
        if r.seconds < 0 {
            expired = true;
            push(
                CertFindingKind::Expired {
                    not_after: t,
                    days_left: r.days_left,
                },
                format!(
                    "certificate for {hostname} expired at {} ({} days left, seen by {seen_by})",
                    rfc3339(t),
                    r.days_left
                ),
            );
        } else if is_short(r, window.min_days_remaining) {
            push(
                CertFindingKind::Expiring {
                    not_after: t,
                    days_left: r.days_left,
                    min_days: window.min_days_remaining,
                },
                format!(
                    "certificate for {hostname} expires at {}: {} days left, fewer than {} (seen by {seen_by})",
                    rfc3339(t),
                    r.days_left,
                    window.min_days_remaining
                ),
            );
        }
    }
    if let Some(TlsVerdict::Untrusted { reason }) = verdict
        && !expired
    {
        push(
            CertFindingKind::Untrusted {
                reason: reason.clone(),
            },
            format!("the certificate {hostname} serves does not verify: {reason}"),
        );
    }
    if let HandshakeObservation::Seen {
        not_after: served, ..
    } = &handshake
        && !fly_expiries.is_empty()
        && !fly_expiries
            .iter()
            .any(|f| (*f - *served).num_seconds().abs() <= DISAGREEMENT_SLACK_SECS)
    {
        let listed: Vec<String> = fly_expiries.iter().map(|t| rfc3339(*t)).collect();
        push(
            CertFindingKind::ViewsDisagree {
                fly_expires_at: fly_expiries.clone(),
                served_not_after: *served,
            },
            format!(
                "{hostname} serves a certificate expiring {} but Fly lists {}",
                rfc3339(*served),
                listed.join(", ")
            ),
        );
    }

    let findings = kinds
        .into_iter()
        .zip(details)
        .map(|(kind, detail)| CertFinding {
            app: app.to_owned(),
            hostname: hostname.to_owned(),
            kind,
            detail,
        })
        .collect();
    CertAssessment {
        app: app.to_owned(),
        hostname: hostname.to_owned(),
        at: now,
        not_after,
        expiry_source,
        remaining: left,
        fly,
        handshake,
        findings,
    }
}

/// When to check a hostname again after a check at `last` (UTC): `last + interval`, but while
/// Fly reported a CA rate limit lasting past `last`, at the limit's end if sooner, and never
/// sooner than an hour after `last` (BUG-21: at most one check per hour; the cure is waiting).
pub fn next_check_at(
    last: DateTime<Utc>,
    rate_limited_until: Option<DateTime<Utc>>,
    interval: Duration,
) -> DateTime<Utc> {
    let span = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    let mut next = last
        .checked_add_signed(span(interval))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if let Some(until) = rate_limited_until.filter(|u| *u > last) {
        let floor = last + span(RATE_LIMITED_RECHECK);
        next = next.min(until).max(floor);
    }
    next
}

#[cfg(test)]
mod tests;
