//! Certificate window decisions: BUG-23's boundaries and time zones, BUG-21's rate limit, the
//! two views disagreeing, and unknown views that decide nothing.

use chrono::{DateTime, Duration, TimeZone, Utc};
use opsctl_crds::kinds::cert_window::{CertWindowSpec, OnShort};

use super::*;

const HOST: &str = "app.example.com";

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn window(days: u32) -> CertWindowSpec {
    CertWindowSpec {
        hostnames: vec![HOST.into()],
        min_days_remaining: days,
        ..CertWindowSpec::default()
    }
}

fn active(expires: DateTime<Utc>) -> FlyCertObservation {
    FlyCertObservation::Seen(FlyCertView {
        status: FlyCertStatus::Active,
        configured: true,
        dns_configured: true,
        expires_at: vec![expires],
        rate_limited_until: None,
        validation_errors: vec![],
        dns_requirements: vec![],
    })
}

fn served(not_after: DateTime<Utc>) -> HandshakeObservation {
    HandshakeObservation::Seen {
        not_after,
        verdict: TlsVerdict::Trusted,
    }
}

fn classes(a: &CertAssessment) -> Vec<&'static str> {
    a.findings.iter().map(|f| f.kind.class()).collect()
}

fn unknown_fly() -> FlyCertObservation {
    FlyCertObservation::Unknown { why: "429".into() }
}

/// BUG-23 cases 2 and 3, at the 14-day window and the case's own 30-day one.
#[test]
fn exactly_n_days_is_not_short_and_one_second_less_is() {
    let now = t("2025-02-01T02:00:00Z");
    for days in [14_u32, 30] {
        let exact = now + Duration::days(i64::from(days));
        let a = assess(HOST, HOST, &window(days), unknown_fly(), served(exact), now);
        assert!(a.findings.is_empty(), "{days}: {:?}", a.findings);
        assert_eq!(a.remaining.unwrap().days_left, i64::from(days));

        let short = exact - Duration::seconds(1);
        let a = assess(HOST, HOST, &window(days), unknown_fly(), served(short), now);
        assert_eq!(classes(&a), ["expiring"], "{days}");
        assert_eq!(a.remaining.unwrap().days_left, i64::from(days) - 1);
        assert!(
            a.findings[0]
                .detail
                .contains(&format!("{} days left", days - 1)),
            "{}",
            a.findings[0].detail
        );
    }
    // 13 days 23 hours against the default 14.
    let a = assess(
        HOST,
        HOST,
        &window(14),
        unknown_fly(),
        served(now + Duration::days(13) + Duration::hours(23)),
        now,
    );
    assert_eq!(classes(&a), ["expiring"]);
    assert_eq!(a.remaining.unwrap().days_left, 13);
}

/// BUG-23 case 3 literally: printed days floor to 29, and times print as RFC 3339 with `Z`.
#[test]
fn case_three_prints_29_days_and_a_utc_time() {
    let now = t("2025-02-01T02:00:00Z");
    let a = assess(
        HOST,
        HOST,
        &window(30),
        unknown_fly(),
        served(t("2025-03-03T01:59:59Z")),
        now,
    );
    let f = &a.findings[0];
    assert_eq!(
        f.kind,
        CertFindingKind::Expiring {
            not_after: t("2025-03-03T01:59:59Z"),
            days_left: 29,
            min_days: 30
        }
    );
    assert!(f.detail.contains("2025-03-03T01:59:59Z"), "{}", f.detail);
}

/// BUG-23 case 1: expired hours ago is expired (negative days), whatever the host's zone; the
/// instant is the same whether it was written in UTC or with an offset.
#[test]
fn expired_hours_ago_is_expired_not_expiring_today() {
    let not_after = t("2025-01-05T05:40:00Z");
    let now = t("2025-01-05T09:44:42Z");
    let a = assess(
        HOST,
        HOST,
        &window(14),
        unknown_fly(),
        served(not_after),
        now,
    );
    assert_eq!(classes(&a), ["expired"]);
    assert_eq!(a.remaining.unwrap().days_left, -1);
    let now_pacific = DateTime::parse_from_rfc3339("2025-01-05T01:44:42-08:00")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        assess(
            HOST,
            HOST,
            &window(14),
            unknown_fly(),
            served(not_after),
            now_pacific
        ),
        a
    );
    // At notAfter itself the certificate is still valid (RFC 5280: the period includes it).
    let at_end = assess(
        HOST,
        HOST,
        &window(1),
        unknown_fly(),
        served(not_after),
        not_after,
    );
    assert_eq!(classes(&at_end), ["expiring"]);
    let after = assess(
        HOST,
        HOST,
        &window(1),
        unknown_fly(),
        served(not_after),
        not_after + Duration::seconds(1),
    );
    assert_eq!(classes(&after), ["expired"]);
    assert_eq!(after.remaining.unwrap().days_left, -1);
}

/// BUG-23 case 4: OpenSSL's text form is the same instant as RFC 3339.
#[test]
fn openssl_time_text_parses_to_the_same_instant() {
    let a = parse_cert_time("Mar  3 02:00:00 2025 GMT").unwrap();
    assert_eq!(a, t("2025-03-03T02:00:00Z"));
    assert_eq!(parse_cert_time("2025-03-03T02:00:00Z").unwrap(), a);
    assert_eq!(parse_cert_time("2025-03-03T03:00:00+01:00").unwrap(), a);
    assert_eq!(
        parse_cert_time("Dec 13 10:00:00 2025 GMT").unwrap(),
        t("2025-12-13T10:00:00Z")
    );
    for bad in ["Mar  3 02:00:00 2025 PST", "tomorrow", ""] {
        assert!(parse_cert_time(bad).is_err(), "{bad}");
    }
    let now = t("2025-02-01T02:00:00Z");
    let r = assess(HOST, HOST, &window(30), unknown_fly(), served(a), now);
    assert!(r.findings.is_empty());
}

#[test]
fn days_left_floor_toward_minus_infinity() {
    let now = t("2025-01-01T00:00:00Z");
    let cases = [
        (Duration::days(14), 14),
        (Duration::days(14) - Duration::seconds(1), 13),
        (Duration::seconds(1), 0),
        (Duration::zero(), 0),
        (Duration::seconds(-1), -1),
        (-Duration::days(1), -1),
        (-Duration::days(1) - Duration::seconds(1), -2),
    ];
    for (d, want) in cases {
        assert_eq!(remaining(now + d, now).days_left, want, "{d}");
    }
}

/// BUG-21: rate-limited → one `acme_rate_limited` finding with the retry time, not a generic
/// not-ready one; the class does not change from check to check (no repeat notification).
#[test]
fn a_rate_limited_certificate_is_reported_as_waiting_for_the_ca() {
    let now = t("2025-06-01T12:00:00Z");
    let until = now + Duration::days(2);
    let view = FlyCertView {
        status: FlyCertStatus::PendingValidation,
        configured: true,
        dns_configured: true,
        expires_at: vec![],
        rate_limited_until: Some(until),
        validation_errors: vec![],
        dns_requirements: vec![],
    };
    let a = assess(
        "example-app",
        HOST,
        &window(14),
        FlyCertObservation::Seen(view.clone()),
        HandshakeObservation::Unknown {
            why: "connection refused".into(),
        },
        now,
    );
    assert_eq!(a.findings.len(), 1, "{:?}", a.findings);
    assert_eq!(a.findings[0].kind, CertFindingKind::RateLimited { until });
    assert!(a.findings[0].detail.contains("2025-06-03T12:00:00Z"));
    assert!(a.findings[0].detail.contains("do not delete or re-add"));
    let s1 = a.signals(OnShort::Alert);
    let later = assess(
        "example-app",
        HOST,
        &window(14),
        FlyCertObservation::Seen(view.clone()),
        HandshakeObservation::Unknown {
            why: "timeout".into(),
        },
        now + Duration::hours(5),
    );
    let s2 = later.signals(OnShort::Alert);
    assert_eq!(s1[0].kind, SignalKind::CertNotReady);
    assert_eq!(s1[0].fingerprint(), s2[0].fingerprint());
    assert_eq!(
        s1[0].fingerprint(),
        "example-app/cert_not_ready/-/acme_rate_limited:app.example.com"
    );
    // Once the limit has passed and the certificate is still pending, it is a plain not-ready.
    let after = assess(
        "example-app",
        HOST,
        &window(14),
        FlyCertObservation::Seen(view),
        HandshakeObservation::NotApplicable,
        until + Duration::seconds(1),
    );
    assert_eq!(classes(&after), ["not_ready"]);
}

/// BUG-21's variant: DNS not configured → the exact records Fly asks for.
#[test]
fn dns_not_configured_lists_the_records_fly_asks_for() {
    let records = vec![
        DnsRecord {
            kind: "AAAA".into(),
            name: HOST.into(),
            value: "2a09:8280:1::1".into(),
        },
        DnsRecord {
            kind: "CNAME".into(),
            name: "_acme-challenge.app.example.com".into(),
            value: "app.example.com.x1.flydns.net".into(),
        },
    ];
    let view = FlyCertView {
        status: FlyCertStatus::PendingValidation,
        configured: false,
        dns_configured: false,
        expires_at: vec![],
        rate_limited_until: None,
        validation_errors: vec!["DNS_NOT_CONFIGURED".into()],
        dns_requirements: records.clone(),
    };
    let now = t("2025-06-01T12:00:00Z");
    let a = assess(
        "example-app",
        HOST,
        &window(14),
        FlyCertObservation::Seen(view),
        HandshakeObservation::Unknown {
            why: "no address".into(),
        },
        now,
    );
    assert_eq!(
        a.findings[0].kind,
        CertFindingKind::DnsNotConfigured {
            records: records.clone()
        }
    );
    assert!(
        a.findings[0]
            .detail
            .contains("AAAA app.example.com 2a09:8280:1::1; CNAME _acme-challenge.app.example.com app.example.com.x1.flydns.net"),
        "{}",
        a.findings[0].detail
    );
    assert_eq!(a.findings.len(), 1);
    let s = a.signals(OnShort::Alert);
    assert_eq!(s[0].class, "dns_not_configured:app.example.com");
    assert!(a.signals(OnShort::Report).is_empty());
}

#[test]
fn pending_with_dns_in_place_is_not_ready_with_the_validation_errors() {
    let view = FlyCertView {
        status: FlyCertStatus::PendingOwnership,
        configured: false,
        dns_configured: true,
        expires_at: vec![],
        rate_limited_until: None,
        validation_errors: vec!["CAA_RECORD_MISSING_FLY".into()],
        dns_requirements: vec![],
    };
    let a = assess(
        "a",
        HOST,
        &window(14),
        FlyCertObservation::Seen(view),
        HandshakeObservation::NotApplicable,
        t("2025-06-01T00:00:00Z"),
    );
    assert_eq!(classes(&a), ["not_ready"]);
    assert!(a.findings[0].detail.contains("pending_ownership"));
    assert!(a.findings[0].detail.contains("CAA_RECORD_MISSING_FLY"));
}

#[test]
fn fly_and_the_handshake_disagreeing_is_reported() {
    let now = t("2025-06-01T00:00:00Z");
    let renewed = now + Duration::days(89);
    let stale = now + Duration::days(20);
    let a = assess(HOST, HOST, &window(14), active(renewed), served(stale), now);
    assert_eq!(classes(&a), ["views_disagree"]);
    // The served certificate decides the days left.
    assert_eq!(a.expiry_source, Some(ExpirySource::Handshake));
    assert_eq!(a.remaining.unwrap().days_left, 20);
    assert!(a.findings[0].detail.contains("Fly lists"));

    // Same certificate, a second apart: agreement.
    let a = assess(
        HOST,
        HOST,
        &window(14),
        active(renewed),
        served(renewed + Duration::seconds(1)),
        now,
    );
    assert!(a.findings.is_empty(), "{:?}", a.findings);
    // Fly lists two (ACME and custom): matching either is agreement.
    let mut both = active(renewed);
    if let FlyCertObservation::Seen(v) = &mut both {
        v.expires_at.push(stale);
    }
    let a = assess(HOST, HOST, &window(14), both, served(stale), now);
    assert!(a.findings.is_empty(), "{:?}", a.findings);
}

/// An unreachable view decides nothing: no "expired" from a failed handshake, no finding from
/// a failed API call, and Fly's own expiry counts when the handshake cannot be made.
#[test]
fn unknown_views_never_make_findings() {
    let now = t("2025-06-01T00:00:00Z");
    let a = assess(
        HOST,
        HOST,
        &window(14),
        unknown_fly(),
        HandshakeObservation::Unknown {
            why: "connection refused".into(),
        },
        now,
    );
    assert!(a.findings.is_empty());
    assert!(a.is_unknown());
    assert_eq!(a.remaining, None);

    let a = assess(
        HOST,
        HOST,
        &window(14),
        active(now + Duration::days(3)),
        HandshakeObservation::Unknown {
            why: "timeout".into(),
        },
        now,
    );
    assert_eq!(classes(&a), ["expiring"]);
    assert_eq!(a.expiry_source, Some(ExpirySource::Fly));
    assert!(a.findings[0].detail.contains("Fly's certificates API"));
}

#[test]
fn an_untrusted_chain_is_reported_unless_it_is_simply_expired() {
    let now = t("2025-06-01T00:00:00Z");
    let hs = |not_after| HandshakeObservation::Seen {
        not_after,
        verdict: TlsVerdict::Untrusted {
            reason: "unknown issuer".into(),
        },
    };
    let a = assess(
        HOST,
        HOST,
        &window(14),
        unknown_fly(),
        hs(now + Duration::days(60)),
        now,
    );
    assert_eq!(classes(&a), ["untrusted"]);
    let a = assess(
        HOST,
        HOST,
        &window(14),
        unknown_fly(),
        hs(now - Duration::days(1)),
        now,
    );
    assert_eq!(classes(&a), ["expired"]);
}

#[test]
fn a_missing_certificate_is_not_ready() {
    let a = assess(
        "example-app",
        HOST,
        &window(14),
        FlyCertObservation::Missing,
        HandshakeObservation::NotApplicable,
        t("2025-06-01T00:00:00Z"),
    );
    assert_eq!(classes(&a), ["missing"]);
    assert_eq!(a.findings[0].kind.signal_kind(), SignalKind::CertNotReady);
}

/// BUG-21: however short the interval, a rate-limited certificate is looked at hourly at most;
/// when the limit ends before the next regular check, it is looked at then.
#[test]
fn rate_limited_certificates_are_rechecked_at_most_hourly() {
    let last = Utc.with_ymd_and_hms(2025, 6, 1, 12, 0, 0).unwrap();
    let five_min = std::time::Duration::from_secs(300);
    let day = std::time::Duration::from_secs(86_400);
    assert_eq!(
        next_check_at(last, None, five_min),
        last + Duration::minutes(5)
    );
    assert_eq!(
        next_check_at(last, Some(last + Duration::days(2)), five_min),
        last + Duration::hours(1)
    );
    assert_eq!(
        next_check_at(last, Some(last + Duration::hours(3)), day),
        last + Duration::hours(3)
    );
    assert_eq!(
        next_check_at(last, Some(last + Duration::minutes(10)), day),
        last + Duration::hours(1)
    );
    // A limit that already ended changes nothing.
    assert_eq!(
        next_check_at(last, Some(last - Duration::hours(1)), five_min),
        last + Duration::minutes(5)
    );

    // Driven for two days at 1-minute ticks with a 5-minute interval: 48 checks, not 576.
    let until = last + Duration::days(2);
    let mut next = last;
    let mut checks = 0;
    let mut now = last;
    while now < until {
        if now >= next {
            checks += 1;
            next = next_check_at(now, Some(until), five_min);
        }
        now += Duration::minutes(1);
    }
    assert_eq!(checks, 48);
}
