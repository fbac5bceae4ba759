//! SLO evaluation over 30 days of virtual time (milliseconds of real time): when pages and
//! tickets fire and stop, budget accounting, and the minimum sample count.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use opsctl_crds::DurationStr;
use opsctl_crds::kinds::health_slo::{HealthSloSpec, LatencyObjective, Ratio, Severity};

use super::*;

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

fn spec() -> HealthSloSpec {
    HealthSloSpec {
        latency: Some(LatencyObjective {
            threshold: "500ms".parse::<DurationStr>().unwrap(),
            target: Ratio(0.99),
        }),
        ..HealthSloSpec::default()
    }
}

/// (sli, severity, long window secs) → the firing intervals, as minutes from the start.
type Timeline = BTreeMap<(Sli, Severity, u64), Vec<(i64, Option<i64>)>>;

/// Evaluates every minute from `from` to `to` (minutes from the start) and records when each
/// alert rule starts and stops firing.
fn drive(spec: &HealthSloSpec, series: &SampleSeries, from: i64, to: i64) -> Timeline {
    let mut timeline: Timeline = BTreeMap::new();
    for minute in from..=to {
        let now = start() + Duration::minutes(minute);
        let report = evaluate("example-app", "lei", spec, series, now);
        for a in &report.alerts {
            let runs = timeline
                .entry((a.sli, a.severity, a.long_window_secs))
                .or_default();
            let open = runs.last().is_some_and(|r| r.1.is_none());
            if a.firing && !open {
                runs.push((minute, None));
            } else if !a.firing && open {
                runs.last_mut().unwrap().1 = Some(minute);
            }
        }
    }
    timeline
}

const DAY: i64 = 24 * 60;

/// 30 days of probes every 30 s: a 30-minute outage on day 5, a slow 2× burn on days 12–14, and
/// three hours of slow answers on day 20.
fn thirty_days() -> (Vec<Sample>, u32) {
    let outage = (5 * DAY + 600, 5 * DAY + 630); // minutes
    let slow_burn = (12 * DAY, 14 * DAY);
    let slow_answers = (20 * DAY + 720, 20 * DAY + 900);
    let mut samples = Vec::new();
    let mut failed = 0;
    for i in 1..=(30 * 2 * DAY) {
        let at = start() + Duration::seconds(30 * i);
        let minute = i / 2;
        let in_window = |(a, b): (i64, i64)| minute >= a && minute < b;
        let ok = !(in_window(outage) || (in_window(slow_burn) && i % 500 == 0));
        let latency_ms = if in_window(slow_answers) { 800 } else { 100 };
        if !ok {
            failed += 1;
        }
        samples.push(Sample { at, ok, latency_ms });
    }
    (samples, failed)
}

#[test]
fn thirty_days_of_virtual_time_page_ticket_and_budget() {
    let spec = spec();
    let (samples, failed) = thirty_days();
    let series = SampleSeries::new(&samples, Some(std::time::Duration::from_millis(500)));
    let t = drive(&spec, &series, 0, 30 * DAY);
    let runs = |sli, sev, long_h: u64| {
        t.get(&(sli, sev, long_h * 3600))
            .cloned()
            .unwrap_or_default()
    };
    let outage_start = 5 * DAY + 600;
    let outage_end = 5 * DAY + 630;

    // The fast page (14.4× over 1h and 5m) fires within two minutes of the outage starting and
    // stops within the 5-minute short window of it ending; once only.
    let fast = runs(Sli::Availability, Severity::Page, 1);
    assert_eq!(fast.len(), 1, "{fast:?}");
    let (on, off) = fast[0];
    assert!((outage_start..=outage_start + 2).contains(&on), "{on}");
    let off = off.expect("stops");
    assert!((outage_end..=outage_end + 5).contains(&off), "{off}");

    // The 6× page (6h / 30m) also fires for it and stops within its 30-minute short window.
    let slow_page = runs(Sli::Availability, Severity::Page, 6);
    assert_eq!(slow_page.len(), 1, "{slow_page:?}");
    assert!(slow_page[0].0 >= outage_start && slow_page[0].0 <= outage_start + 5);
    let off6 = slow_page[0].1.unwrap();
    assert!(
        (outage_end + 25..=outage_end + 30).contains(&off6),
        "{off6}"
    );

    // The 2× burn of days 12–14 never pages; the 1× ticket (3d / 6h) fires once the 3-day
    // window has averaged 1× (about 1.5 days in) and stops within 6 hours of the burn ending.
    let ticket3d = runs(Sli::Availability, Severity::Ticket, 72);
    let during_burn: Vec<_> = ticket3d.iter().filter(|r| r.0 >= 12 * DAY).collect();
    assert_eq!(during_burn.len(), 1, "{ticket3d:?}");
    let (on, off) = *during_burn[0];
    assert!(
        (13 * DAY + 10 * 60..=13 * DAY + 14 * 60).contains(&on),
        "fired at day {:.2}",
        on as f64 / DAY as f64
    );
    let off = off.expect("stops");
    assert!((14 * DAY - 60..=14 * DAY + 6 * 60).contains(&off), "{off}");
    let ticket1d = runs(Sli::Availability, Severity::Ticket, 24);
    assert!(
        ticket1d.iter().all(|r| r.0 < 12 * DAY),
        "a 2× burn must not raise the 3× ticket: {ticket1d:?}"
    );
    for long in [1, 6] {
        assert!(
            runs(Sli::Availability, Severity::Page, long)
                .iter()
                .all(|r| r.0 < 12 * DAY),
            "a 2× burn must not page"
        );
    }

    // Slow answers on day 20 page on latency, never on availability. With a 99% target, all
    // probes slow is a 100× burn, so the hour reaches 14.4× after 8.64 minutes.
    let lat = runs(Sli::Latency, Severity::Page, 1);
    assert_eq!(lat.len(), 1, "{lat:?}");
    let (on, off) = lat[0];
    assert!((20 * DAY + 728..=20 * DAY + 730).contains(&on), "{on}");
    let off = off.expect("stops");
    assert!((20 * DAY + 900..=20 * DAY + 905).contains(&off), "{off}");
    assert!(
        runs(Sli::Latency, Severity::Page, 1)
            .iter()
            .all(|r| r.0 >= 20 * DAY)
    );

    // The budget at the end of the period counts every failed probe of the 30 days.
    let end = evaluate(
        "example-app",
        "lei",
        &spec,
        &series,
        start() + Duration::days(30),
    );
    let avail = &end.objectives[0];
    assert_eq!(avail.period_bad, failed);
    assert_eq!(avail.period_samples, 86_400);
    let spent = f64::from(failed) / 86_400.0 / 0.001;
    let left = avail.budget_remaining.unwrap();
    assert!((left - (1.0 - spent)).abs() < 1e-6, "{left}");
    assert!((0.1..0.25).contains(&left), "{left}");
    assert!(end.signals().is_empty(), "all quiet at the end");
}

#[test]
fn the_outage_signal_is_a_page_with_a_stable_class() {
    let spec = spec();
    let (samples, _) = thirty_days();
    let series = SampleSeries::new(&samples, Some(std::time::Duration::from_millis(500)));
    let at = |m| start() + Duration::minutes(5 * DAY + 600 + m);
    let a = evaluate("example-app", "lei", &spec, &series, at(10));
    let b = evaluate("example-app", "lei", &spec, &series, at(20));
    let (sa, sb) = (a.signals(), b.signals());
    assert_eq!(sa.len(), 1, "{sa:?}");
    assert_eq!(sa[0].kind, SignalKind::SloBurn);
    assert_eq!(sa[0].class, "availability:page");
    assert_eq!(sa[0].fingerprint(), sb[0].fingerprint());
    assert!(sa[0].detail.contains("14.4× over 1h"), "{}", sa[0].detail);
    assert!(
        sa[0]
            .detail
            .starts_with("availability SLO lei (99.9%) burning"),
        "{}",
        sa[0].detail
    );
    // Burn rates for status: every alert window, shortest first.
    let windows: Vec<u64> = a.objectives[0]
        .burn_rates
        .iter()
        .map(|w| w.window_secs)
        .collect();
    assert_eq!(windows, [300, 1800, 3600, 7200, 21_600, 86_400, 259_200]);
    let five_min = a.objectives[0].burn_rates[0].burn_rate.unwrap();
    assert!((five_min - 1000.0).abs() < 1e-6, "{five_min}");
}

/// A quiet app probed every 5 minutes: one failed probe is a 1000× burn over 5 minutes and 83×
/// over the hour, but neither page's short window holds `minSamples` results, so nothing pages.
/// With `minSamples: 1` the same probe would page: the minimum is what prevents it. (The
/// tickets may fire: at 288 probes a day a 99.9% objective allows 0.29 failures a day, so one
/// failure really is a 3.5× burn over the day.)
#[test]
fn a_quiet_app_cannot_page_on_one_failed_probe() {
    let samples: Vec<Sample> = (1..=(3 * 24 * 12))
        .map(|i| Sample {
            at: start() + Duration::minutes(5 * i),
            ok: i != 300,
            latency_ms: 80,
        })
        .collect();
    let series = SampleSeries::new(&samples, None);
    let spec = HealthSloSpec::default();
    let t = drive(&spec, &series, 0, 3 * DAY);
    assert!(
        t.iter()
            .all(|((_, sev, _), runs)| *sev != Severity::Page || runs.is_empty()),
        "nothing may page: {t:?}"
    );
    let eager = HealthSloSpec {
        min_samples: 1,
        ..HealthSloSpec::default()
    };
    let t = drive(&eager, &series, 0, 3 * DAY);
    assert!(!t[&(Sli::Availability, Severity::Page, 3600)].is_empty());
}

#[test]
fn no_samples_means_unknown_not_healthy_or_burning() {
    let series = SampleSeries::new(&[], None);
    let r = evaluate("a", "s", &HealthSloSpec::default(), &series, start());
    assert_eq!(r.objectives[0].budget_remaining, None);
    assert!(
        r.objectives[0]
            .burn_rates
            .iter()
            .all(|w| w.burn_rate.is_none())
    );
    assert!(r.alerts.iter().all(|a| !a.firing && a.long_burn.is_none()));
    assert!(r.signals().is_empty());
}

#[test]
fn burn_rate_definition() {
    assert_eq!(
        burn_rate(1, 1000, 0.999, 10).map(|b| (b * 1e6).round()),
        Some(1e6)
    );
    assert_eq!(burn_rate(0, 1000, 0.999, 10), Some(0.0));
    assert_eq!(burn_rate(1, 9, 0.999, 10), None);
    assert_eq!(burn_rate(0, 0, 0.999, 0), None);
    assert_eq!(burn_rate(1, 10, 1.0, 1), None);
}

#[test]
fn windows_hold_samples_after_the_start_up_to_and_including_now() {
    let at = |s| start() + Duration::seconds(s);
    let samples = [
        Sample {
            at: at(0),
            ok: false,
            latency_ms: 1,
        },
        Sample {
            at: at(60),
            ok: true,
            latency_ms: 900,
        },
        Sample {
            at: at(120),
            ok: false,
            latency_ms: 1,
        },
        Sample {
            at: at(180),
            ok: true,
            latency_ms: 10,
        },
    ];
    let series = SampleSeries::new(&samples, Some(std::time::Duration::from_millis(500)));
    let w = series.window(at(120), std::time::Duration::from_secs(120));
    assert_eq!(
        w,
        WindowCounts {
            total: 2,
            failed: 1,
            slow: 1
        }
    );
    // A sample after `now` does not count.
    let w = series.window(at(60), std::time::Duration::from_secs(3600));
    assert_eq!(w.total, 2);
}
