//! The incident book: which incident each signal belongs to.
//!
//! - One open incident per [`Signal::fingerprint`]; a repeat adds an occurrence; the severity
//!   only goes up while the incident is open ([`Book::raise`]).
//! - `observer_blind` signals never open an app incident. Those about opsctl's view of Fly
//!   ([`monitoring_path`]: the signal's typed [`Signal::blind`] says Fly's API — down, 429s —
//!   or the tool that reads it went blind), for every app, fold into one `monitoring path
//!   down` incident ([`MONITORING_FINGERPRINT`]); while the observer is blind (until
//!   [`Book::blind_hold`] after the last such signal) every app signal is held back and only
//!   listed in that incident, so nothing acts on what a blind observer believes (case
//!   BUG-30; the LEI `:enoent` health alert). One app's dependency check that could not run
//!   ([`Blind::Dependency`](crate::signal::Blind::Dependency)) is only that check's `unknown`:
//!   no incident, nothing held back.
//! - Signals raised by the incident pipeline's own responses (`source` starting with
//!   `incident/`) never open incidents: a failing response is recorded on its incident and
//!   escalated, never investigated by another incident (the LEI "investigate the failure of the
//!   investigation" chains).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::classify::Verdict;
use super::{Classification, Severity};
use crate::signal::{Signal, SignalKind};

/// The fingerprint of the one incident for opsctl's own blindness.
pub const MONITORING_FINGERPRINT: &str = "opsctl/monitoring_path_down";

/// The fingerprint of the one correlated incident when many apps fail together while the
/// observer can see (case BUG-30 variant: a suspected platform or region cause).
pub const CORRELATED_FINGERPRINT: &str = "opsctl/multi_app_outage";

/// Distinct apps whose availability signals within [`CORRELATION_WINDOW_SECS`] make one
/// correlated incident instead of one incident each.
pub const CORRELATION_APPS: usize = 5;

/// The correlation window (case BUG-30: "within 2 minutes").
pub const CORRELATION_WINDOW_SECS: i64 = 120;

/// A correlated incident with no new signal for this long is over.
pub const CORRELATION_QUIET_SECS: i64 = 600;

/// Prefix of `Signal::source` for signals the incident pipeline's own responses raise.
pub const OWN_SOURCE_PREFIX: &str = "incident/";

/// How long the observer counts as blind after its last `observer_blind` signal, by default:
/// two maintenance cycles of one minute (case BUG-30: per-app alerting resumes after two good
/// observation cycles).
pub const DEFAULT_BLIND_HOLD_SECS: i64 = 120;

/// One open incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    /// Its record id.
    pub id: String,
    /// [`Signal::fingerprint`], or [`MONITORING_FINGERPRINT`].
    pub fingerprint: String,
    /// App, when one.
    pub app: Option<String>,
    /// Signal kind of the first signal.
    pub kind: SignalKind,
    /// Current class (the most severe seen).
    pub class: Classification,
    /// Confidence of that class.
    pub confidence: f64,
    /// Reason code of that class.
    pub reason: String,
    /// Only goes up.
    pub severity: Severity,
    /// Signals counted, the first included.
    pub occurrences: u32,
    /// UTC.
    pub first_seen: DateTime<Utc>,
    /// UTC.
    pub last_seen: DateTime<Utc>,
    /// Times of the occurrences in the last hour (for rates), oldest first.
    pub recent: Vec<DateTime<Utc>>,
    /// Release seen with the first signal.
    pub release: Option<i64>,
    /// Deploy record the first signal came from.
    pub deploy: Option<String>,
    /// Machine of the first signal.
    pub machine: Option<String>,
    /// Monitoring incident only: apps whose signals were held back while blind.
    pub held_back_apps: BTreeSet<String>,
    /// Monitoring incident only: signals held back.
    pub held_back: u32,
    /// Automatic responses already run for this incident (at most one of each kind).
    pub responded: bool,
}

impl OpenIncident {
    /// Occurrences within the hour before `now`.
    pub fn last_hour(&self, now: DateTime<Utc>) -> u32 {
        u32::try_from(
            self.recent
                .iter()
                .filter(|t| now.signed_duration_since(**t) <= Duration::hours(1))
                .count(),
        )
        .unwrap_or(u32::MAX)
    }
}

/// Why a signal opened nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    /// The observer is blind: app signals cannot be trusted (case BUG-30).
    ObserverBlind,
    /// Raised by the pipeline's own response: never an incident about itself.
    OwnResponse,
}

/// What [`Book::admit`] did with a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A new incident with this fingerprint (the caller classifies and records it).
    New(String),
    /// An occurrence added to the open incident with this fingerprint.
    Repeat(String),
    /// opsctl's own blindness: counted in the monitoring incident (`true` when it was just
    /// opened).
    Monitoring(bool),
    /// One of many apps failing together: folded into the correlated incident (`true` when it
    /// was just opened); no per-app incident, no per-app action.
    Correlated(bool),
    /// Held back, opened nothing.
    Held(Held),
}

/// The open incidents, and whether the observer is blind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    open: BTreeMap<String, OpenIncident>,
    blind_until: Option<DateTime<Utc>>,
    /// Recent availability signals per app (for correlation), oldest first.
    #[serde(default)]
    recent_apps: Vec<(DateTime<Utc>, String)>,
    /// How long the observer stays blind after an `observer_blind` signal.
    pub blind_hold: Option<Duration>,
}

impl Book {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn hold(&self) -> Duration {
        self.blind_hold
            .unwrap_or_else(|| Duration::seconds(DEFAULT_BLIND_HOLD_SECS))
    }

    /// Whether the observer counts as blind at `now`.
    pub fn blind(&self, now: DateTime<Utc>) -> bool {
        self.blind_until.is_some_and(|u| now < u)
    }

    /// Take in one signal at `now`; `new_id` names a new incident's record.
    pub fn admit(
        &mut self,
        signal: &Signal,
        now: DateTime<Utc>,
        new_id: impl FnOnce() -> String,
    ) -> Admission {
        if signal.source.starts_with(OWN_SOURCE_PREFIX) {
            return Admission::Held(Held::OwnResponse);
        }
        if signal.kind == SignalKind::ObserverBlind && !monitoring_path(signal) {
            // One app's dependency check could not run (a URL not configured, a refused
            // connection): that check's `unknown`, never an incident, and no reason to hold
            // back the other signals.
            return Admission::Held(Held::ObserverBlind);
        }
        if signal.kind == SignalKind::ObserverBlind {
            self.blind_until = Some(now + self.hold());
            let fresh = !self.open.contains_key(MONITORING_FINGERPRINT);
            let inc = self
                .open
                .entry(MONITORING_FINGERPRINT.to_owned())
                .or_insert_with(|| OpenIncident {
                    id: new_id(),
                    fingerprint: MONITORING_FINGERPRINT.to_owned(),
                    app: None,
                    kind: SignalKind::ObserverBlind,
                    class: Classification::Unknown,
                    confidence: 1.0,
                    reason: "monitoring_path_down".into(),
                    severity: Severity::Critical,
                    occurrences: 0,
                    first_seen: signal.at,
                    last_seen: signal.at,
                    recent: vec![],
                    release: None,
                    deploy: None,
                    machine: None,
                    held_back_apps: BTreeSet::new(),
                    held_back: 0,
                    responded: false,
                });
            bump(inc, signal.at, now);
            return Admission::Monitoring(fresh);
        }
        if self.blind(now) {
            if let Some(m) = self.open.get_mut(MONITORING_FINGERPRINT) {
                m.held_back += 1;
                if let Some(app) = &signal.app {
                    m.held_back_apps.insert(app.clone());
                }
            }
            return Admission::Held(Held::ObserverBlind);
        }
        let availability = matches!(
            signal.kind,
            SignalKind::ProbeFailed
                | SignalKind::CheckFailing
                | SignalKind::MachineDown
                | SignalKind::CrashLoop
        );
        if availability && let Some(app) = &signal.app {
            if let Some(c) = self.open.get_mut(CORRELATED_FINGERPRINT) {
                bump(c, signal.at, now);
                c.held_back_apps.insert(app.clone());
                c.held_back += 1;
                return Admission::Correlated(false);
            }
            let window = Duration::seconds(CORRELATION_WINDOW_SECS);
            self.recent_apps
                .retain(|(t, _)| now.signed_duration_since(*t) <= window);
            self.recent_apps.push((signal.at, app.clone()));
            let apps: BTreeSet<String> = self.recent_apps.iter().map(|(_, a)| a.clone()).collect();
            if apps.len() >= CORRELATION_APPS {
                let mut inc = OpenIncident {
                    id: new_id(),
                    fingerprint: CORRELATED_FINGERPRINT.to_owned(),
                    app: None,
                    kind: signal.kind,
                    class: Classification::Outage,
                    confidence: 0.7,
                    reason: "multi_app_outage".into(),
                    severity: Severity::Critical,
                    occurrences: 0,
                    first_seen: self.recent_apps.first().map_or(signal.at, |(t, _)| *t),
                    last_seen: signal.at,
                    recent: vec![],
                    release: None,
                    deploy: None,
                    machine: None,
                    held_back_apps: apps,
                    held_back: 1,
                    responded: false,
                };
                bump(&mut inc, signal.at, now);
                self.open.insert(CORRELATED_FINGERPRINT.to_owned(), inc);
                self.recent_apps.clear();
                return Admission::Correlated(true);
            }
        }
        let fp = signal.fingerprint();
        if let Some(inc) = self.open.get_mut(&fp) {
            bump(inc, signal.at, now);
            return Admission::Repeat(fp);
        }
        let mut inc = OpenIncident {
            id: new_id(),
            fingerprint: fp.clone(),
            app: signal.app.clone(),
            kind: signal.kind,
            class: Classification::Noise,
            confidence: 0.0,
            reason: String::new(),
            severity: Severity::Info,
            occurrences: 0,
            first_seen: signal.at,
            last_seen: signal.at,
            recent: vec![],
            release: signal.release,
            deploy: signal.deploy.clone(),
            machine: signal.machine.clone(),
            held_back_apps: BTreeSet::new(),
            held_back: 0,
            responded: false,
        };
        bump(&mut inc, signal.at, now);
        self.open.insert(fp.clone(), inc);
        Admission::New(fp)
    }

    /// Apply a verdict to the open incident `fp`: the class changes only when its severity is
    /// higher than the incident's (the first verdict always applies). Returns whether it
    /// changed.
    pub fn raise(&mut self, fp: &str, v: &Verdict) -> bool {
        let Some(inc) = self.open.get_mut(fp) else {
            return false;
        };
        let s = Severity::of(v.class);
        let first = inc.reason.is_empty();
        if first || s > inc.severity {
            inc.severity = s;
            inc.class = v.class;
            inc.confidence = v.confidence;
            inc.reason.clone_from(&v.reason);
            true
        } else {
            false
        }
    }

    /// The open incident `fp`.
    pub fn get(&self, fp: &str) -> Option<&OpenIncident> {
        self.open.get(fp)
    }

    /// The open incident `fp`, to change.
    pub fn get_mut(&mut self, fp: &str) -> Option<&mut OpenIncident> {
        self.open.get_mut(fp)
    }

    /// Every open incident, by fingerprint.
    pub fn open(&self) -> impl Iterator<Item = &OpenIncident> {
        self.open.values()
    }

    /// Close `fp`: it leaves the book (a later signal opens a new incident).
    pub fn close(&mut self, fp: &str) -> Option<OpenIncident> {
        self.open.remove(fp)
    }

    /// Forget noise incidents (already closed records) quiet for an hour before `now`; the
    /// book keeps them only to count repeats.
    pub fn prune_quiet(&mut self, now: DateTime<Utc>) {
        self.open.retain(|_, i| {
            i.class != Classification::Noise
                || i.reason.is_empty()
                || now.signed_duration_since(i.last_seen) <= Duration::hours(1)
        });
    }

    /// The correlated incident, removed, once no app signal joined it for
    /// [`CORRELATION_QUIET_SECS`] before `now`.
    pub fn correlation_over(&mut self, now: DateTime<Utc>) -> Option<OpenIncident> {
        let quiet = self.open.get(CORRELATED_FINGERPRINT).is_some_and(|c| {
            now.signed_duration_since(c.last_seen) > Duration::seconds(CORRELATION_QUIET_SECS)
        });
        if quiet {
            self.open.remove(CORRELATED_FINGERPRINT)
        } else {
            None
        }
    }

    /// Put back an incident read from the records at start-up.
    pub fn restore(&mut self, inc: OpenIncident) {
        if inc.fingerprint == MONITORING_FINGERPRINT {
            // Still blind until the hold after its last signal, as before the restart.
            let until = inc.last_seen + self.hold();
            self.blind_until = Some(self.blind_until.map_or(until, |u| u.max(until)));
        }
        self.open.insert(inc.fingerprint.clone(), inc);
    }

    /// The monitoring incident, removed, once the observer is no longer blind at `now`.
    pub fn observer_recovered(&mut self, now: DateTime<Utc>) -> Option<OpenIncident> {
        if self.blind(now) {
            return None;
        }
        self.blind_until = None;
        self.open.remove(MONITORING_FINGERPRINT)
    }
}

fn bump(inc: &mut OpenIncident, at: DateTime<Utc>, now: DateTime<Utc>) {
    inc.occurrences += 1;
    inc.last_seen = inc.last_seen.max(at);
    inc.recent
        .retain(|t| now.signed_duration_since(*t) <= Duration::hours(1));
    inc.recent.push(at);
    if inc.recent.len() > 100 {
        inc.recent.remove(0);
    }
}

/// Whether an `observer_blind` signal is about opsctl's view of Fly — the monitoring path whose
/// loss holds back every app's signals (case BUG-30) — rather than one app's dependency check
/// that could not run (Redis, PostgreSQL, Oban, a probe, …), which is only that check's
/// `unknown`.
///
/// Decided by what the producer says went blind ([`Signal::blind`], a
/// [`Blind`](crate::signal::Blind)): `FlyApi` and `Tool` (the tool that reads Fly missing, as in
/// the LEI `:enoent` bead, even for one app) are the monitoring path; `Dependency` is not,
/// whatever its `class` reads like. A signal that does not say (JSON written before the field
/// existed) is the monitoring path when it has no app: an app-less signal is about opsctl's own
/// view by `Signal::app`'s contract, and every Fly-blind producer so far raised it app-less.
pub fn monitoring_path(signal: &Signal) -> bool {
    match signal.blind {
        Some(what) => what.is_monitoring_path(),
        None => signal.app.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::signal::Blind;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap() + Duration::seconds(s)
    }

    fn sig(app: &str, kind: SignalKind, release: i64, class: &str, at: i64) -> Signal {
        Signal {
            app: Some(app.into()),
            kind,
            release: Some(release),
            class: class.into(),
            source: "maintenance/machines".into(),
            at: t(at),
            machine: Some("m1".into()),
            detail: format!("detail {at}"),
            deploy: None,
            blind: None,
        }
    }

    fn verdict(class: Classification) -> Verdict {
        Verdict {
            class,
            confidence: 0.9,
            reason: class.as_str().into(),
            rule: None,
            steps: vec![],
        }
    }

    /// Property over generated sequences: at most one open incident per fingerprint, the
    /// occurrences add up to the signals admitted, and severity never goes down.
    #[test]
    fn one_incident_per_fingerprint_and_severity_only_rises() {
        let kinds = [
            SignalKind::MachineDown,
            SignalKind::ProbeFailed,
            SignalKind::RedisDown,
        ];
        let classes = [
            Classification::Noise,
            Classification::Unknown,
            Classification::Degradation,
            Classification::Outage,
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..50 {
            let mut book = Book::new();
            let mut ids = 0;
            let mut admitted: BTreeMap<String, u32> = BTreeMap::new();
            let mut last_sev: BTreeMap<String, Severity> = BTreeMap::new();
            for i in 0..200 {
                let app = ["a", "b"][usize::try_from(next(2)).unwrap()];
                let kind = kinds[usize::try_from(next(3)).unwrap()];
                let s = sig(app, kind, 40 + i64::try_from(next(2)).unwrap(), "exit:1", i);
                let adm = book.admit(&s, t(i), || {
                    ids += 1;
                    format!("incident-{ids}")
                });
                let fp = match adm {
                    Admission::New(fp) | Admission::Repeat(fp) => fp,
                    other => panic!("{other:?}"),
                };
                assert_eq!(fp, s.fingerprint());
                *admitted.entry(fp.clone()).or_default() += 1;
                book.raise(&fp, &verdict(classes[usize::try_from(next(4)).unwrap()]));
                let sev = book.get(&fp).unwrap().severity;
                if let Some(prev) = last_sev.insert(fp.clone(), sev) {
                    assert!(sev >= prev, "severity went down for {fp}");
                }
            }
            assert_eq!(book.open().count(), admitted.len());
            for inc in book.open() {
                assert_eq!(inc.occurrences, admitted[&inc.fingerprint]);
            }
            assert_eq!(ids, admitted.len(), "one id per fingerprint");
        }
    }

    /// Case BUG-30 main: the observer goes blind; 40 apps' probes fail at once → one
    /// monitoring incident, no app incident; app incidents again once the observer has been
    /// fine for the hold time.
    #[test]
    fn a_dependency_check_that_cannot_run_is_no_incident_and_blinds_nothing() {
        let mut book = Book::new();
        let redis_unknown = Signal {
            app: Some("lowendinsight".into()),
            kind: SignalKind::ObserverBlind,
            release: None,
            class: "redis".into(),
            source: "maintenance/redis".into(),
            at: t(0),
            machine: None,
            detail: "LEI_REDIS_URL is not set".into(),
            deploy: None,
            blind: Some(Blind::Dependency),
        };
        assert_eq!(
            book.admit(&redis_unknown, t(0), || "x".into()),
            Admission::Held(Held::ObserverBlind)
        );
        assert_eq!(book.open().count(), 0, "no monitoring incident");
        assert!(!book.blind(t(1)));
        let s = sig("lowendinsight", SignalKind::ProbeFailed, 1, "status:503", 1);
        assert!(matches!(
            book.admit(&s, t(1), || "y".into()),
            Admission::New(_)
        ));
    }

    /// What went blind is read from the typed field, never from `class`: a dependency check
    /// whose name starts with "fly" (`flyproxy`) is that check's `unknown`, no monitoring
    /// incident and nothing held back; a Fly-blind or tool-blind signal is the monitoring path
    /// whatever its class and whether or not it names an app.
    #[test]
    fn the_monitoring_path_is_what_went_blind_not_a_class_prefix() {
        let blind = |app: Option<&str>, what: Blind, class: &str| {
            Signal::observer_blind(app, what, class, "maintenance/x", t(0), "could not see")
        };
        for class in ["flyproxy", "fly_api", "tool_missing:flyctl", "redis"] {
            let dep = blind(Some("lowendinsight"), Blind::Dependency, class);
            assert!(!monitoring_path(&dep), "{class}");
            let mut book = Book::new();
            assert_eq!(
                book.admit(&dep, t(0), || "x".into()),
                Admission::Held(Held::ObserverBlind),
                "{class}"
            );
            assert_eq!(book.open().count(), 0, "{class}: no monitoring incident");
            assert!(!book.blind(t(1)), "{class}: nothing held back");
            let s = sig("other", SignalKind::ProbeFailed, 1, "status:503", 1);
            assert!(matches!(
                book.admit(&s, t(1), || "y".into()),
                Admission::New(_)
            ));
        }
        for class in ["flyproxy", "fly_api", "redis", "probe", ""] {
            for app in [None, Some("lowendinsight")] {
                for what in [Blind::FlyApi, Blind::Tool] {
                    let s = blind(app, what, class);
                    assert!(monitoring_path(&s), "{what:?} {class} {app:?}");
                    let mut book = Book::new();
                    assert_eq!(
                        book.admit(&s, t(0), || "m".into()),
                        Admission::Monitoring(true)
                    );
                    assert!(book.get(MONITORING_FINGERPRINT).is_some());
                    let held = sig("other", SignalKind::ProbeFailed, 1, "status:503", 1);
                    assert_eq!(
                        book.admit(&held, t(1), || "y".into()),
                        Admission::Held(Held::ObserverBlind),
                        "{what:?} {class} {app:?}: app signals held back"
                    );
                }
            }
        }
        // A signal that does not say (older JSON): app-less is opsctl's own view, an app's is
        // that app's check — whatever the class reads like.
        let untyped = |app: Option<&str>, class: &str| Signal {
            blind: None,
            ..blind(app, Blind::FlyApi, class)
        };
        assert!(monitoring_path(&untyped(None, "redis")));
        assert!(!monitoring_path(&untyped(Some("lowendinsight"), "fly_api")));
    }

    #[test]
    fn bug_30_blind_observer_holds_every_app_signal() {
        let mut book = Book::new();
        let mut ids = 0;
        let mut id = || {
            ids += 1;
            format!("incident-{ids}")
        };
        let blind = Signal {
            app: None,
            kind: SignalKind::ObserverBlind,
            release: None,
            class: "fly_api:timeout".into(),
            source: "maintenance/fly".into(),
            at: t(0),
            machine: None,
            detail: "every Fly API call timed out".into(),
            deploy: None,
            blind: Some(Blind::FlyApi),
        };
        assert_eq!(
            book.admit(&blind, t(0), &mut id),
            Admission::Monitoring(true)
        );
        for n in 0..40 {
            let s = sig(
                &format!("app-{n}"),
                SignalKind::ProbeFailed,
                1,
                "timeout",
                1,
            );
            assert_eq!(
                book.admit(&s, t(1), &mut id),
                Admission::Held(Held::ObserverBlind)
            );
        }
        // The LEI `:enoent` alert: the monitor's own tool missing, for one app.
        let enoent = Signal {
            app: Some("lowendinsight".into()),
            class: "tool_missing:flyctl".into(),
            blind: Some(Blind::Tool),
            ..blind.clone()
        };
        assert_eq!(
            book.admit(&enoent, t(2), &mut id),
            Admission::Monitoring(false)
        );
        assert_eq!(book.open().count(), 1);
        let m = book.get(MONITORING_FINGERPRINT).unwrap();
        assert_eq!(
            (m.held_back, m.held_back_apps.len(), m.occurrences),
            (40, 40, 2)
        );
        assert!(book.observer_recovered(t(60)).is_none(), "still blind");
        // A restarted opsctl that reads the incident back is still blind too.
        let mut again = Book::new();
        again.restore(book.get(MONITORING_FINGERPRINT).unwrap().clone());
        assert!(again.blind(t(60)));
        let s = sig("app-1", SignalKind::ProbeFailed, 1, "timeout", 60);
        assert_eq!(
            again.admit(&s, t(60), || "y".into()),
            Admission::Held(Held::ObserverBlind)
        );
        let closed = book
            .observer_recovered(t(2 + DEFAULT_BLIND_HOLD_SECS))
            .unwrap();
        assert_eq!(closed.fingerprint, MONITORING_FINGERPRINT);
        let s = sig("app-1", SignalKind::ProbeFailed, 1, "timeout", 200);
        assert!(matches!(book.admit(&s, t(200), &mut id), Admission::New(_)));
    }

    /// Case BUG-30 variant: the observer sees fine, but 30 apps fail probes within 2 minutes →
    /// the first few open their own incidents, every later one folds into one correlated
    /// incident listing them; it ends after 10 quiet minutes.
    #[test]
    fn bug_30_many_apps_failing_together_are_one_correlated_incident() {
        let mut book = Book::new();
        let mut n = 0;
        let mut id = || {
            n += 1;
            format!("incident-{n}")
        };
        let mut own = 0;
        let mut correlated = 0;
        for a in 0..30 {
            let s = sig(
                &format!("app-{a}"),
                SignalKind::ProbeFailed,
                1,
                "timeout",
                a * 2,
            );
            match book.admit(&s, t(a * 2), &mut id) {
                Admission::New(_) => own += 1,
                Admission::Correlated(fresh) => {
                    correlated += 1;
                    assert_eq!(fresh, correlated == 1);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(own, CORRELATION_APPS - 1);
        assert_eq!(correlated, 30 - own);
        let c = book.get(CORRELATED_FINGERPRINT).unwrap();
        assert_eq!(c.held_back_apps.len(), 30 - own + CORRELATION_APPS - 1);
        assert_eq!(c.class, Classification::Outage);
        assert!(book.correlation_over(t(100)).is_none());
        assert!(
            book.correlation_over(t(58 + CORRELATION_QUIET_SECS + 1))
                .is_some()
        );
        // Signals spread over time never correlate.
        let mut book = Book::new();
        for a in 0..30 {
            let s = sig(
                &format!("app-{a}"),
                SignalKind::ProbeFailed,
                1,
                "timeout",
                a * 60,
            );
            assert!(matches!(
                book.admit(&s, t(a * 60), || "x".into()),
                Admission::New(_)
            ));
        }
    }

    /// The LEI investigation chain: a signal raised by a response never opens an incident.
    #[test]
    fn own_response_signals_never_open_incidents() {
        let mut book = Book::new();
        let mut s = sig("lowendinsight", SignalKind::MachineDown, 1, "exit:0", 0);
        s.source = "incident/restart".into();
        for i in 0..10 {
            assert_eq!(
                book.admit(&s, t(i), || "x".into()),
                Admission::Held(Held::OwnResponse)
            );
        }
        assert_eq!(book.open().count(), 0);
    }
}
