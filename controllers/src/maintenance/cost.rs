//! Cost snapshot (ADR maintenance table: daily): an estimate of what an app's machines cost
//! over the last window — each machine's running hours (from its start/stop events) × the
//! hourly price of its size from the schedule's price table — and an anomaly alert when a
//! day's estimate is above `factor` × the trailing daily average (the ADR: 2×).
//!
//! An estimate, not a bill: only running time of priced machine presets counts (Fly also bills
//! stopped machines' root file systems, volumes, IPs and bandwidth), memory beyond the preset's
//! is not priced, and a machine whose events do not reach back to the window start is taken
//! to have been in the state its oldest event left it in before then. Prices come from the
//! manifests (<https://fly.io/docs/about/pricing/>).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Judgement, signal};
use crate::observed::{CpuKind, GuestSize};
use crate::signal::SignalKind;

/// The check's name in signal `source`s and records.
pub const SOURCE: &str = "maintenance/cost_snapshot";

/// A machine start or stop (from its `start`, `exit`, `stop`, `suspend` events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Running after it.
    pub running: bool,
}

/// One machine, for the estimate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostInput {
    /// Machine id.
    pub id: String,
    /// CPU and memory from its config.
    pub guest: Option<GuestSize>,
    /// Running at the time of the snapshot.
    pub running_now: bool,
    /// Its starts and stops, any order.
    pub transitions: Vec<Transition>,
}

/// The Fly preset of a guest size (`shared-cpu-2x`, `performance-4x`), the price table's key.
pub fn preset(guest: &GuestSize) -> String {
    match guest.cpu_kind {
        CpuKind::Shared => format!("shared-cpu-{}x", guest.cpus),
        CpuKind::Performance => format!("performance-{}x", guest.cpus),
    }
}

/// Seconds `[from, to)` during which a machine ran: replays `transitions` in time order; the
/// state before the first one is the opposite of what it turned to (a machine whose first event
/// in view is a start was not running before it), and with no transition at all it is
/// `running_now` throughout.
pub fn running_seconds(
    transitions: &[Transition],
    running_now: bool,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> i64 {
    let mut ts: Vec<Transition> = transitions.iter().copied().filter(|t| t.at < to).collect();
    ts.sort_by_key(|t| t.at);
    let mut running = match ts.first() {
        Some(first) => !first.running,
        None => running_now,
    };
    let mut since = from;
    let mut total = 0;
    for t in ts {
        if t.at > since {
            if running {
                total += (t.at - since).num_seconds();
            }
            since = t.at;
        }
        running = t.running;
    }
    if running && to > since {
        total += (to - since).num_seconds();
    }
    total
}

/// One machine's share of an estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineCost {
    /// Machine id.
    pub id: String,
    /// Its preset, when its size is known.
    pub size: Option<String>,
    /// Running hours in the window.
    pub hours: f64,
    /// Price of those hours in USD; `None` when its size has no price.
    pub usd: Option<f64>,
}

/// An app's cost over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostEstimate {
    /// Window start (UTC).
    pub from: DateTime<Utc>,
    /// Window end (UTC).
    pub to: DateTime<Utc>,
    /// Per machine.
    pub machines: Vec<MachineCost>,
    /// Sum of the priced machines, USD.
    pub total_usd: f64,
    /// Running hours of all machines.
    pub machine_hours: f64,
    /// Sizes that ran and have no price (so `total_usd` is too low).
    pub unpriced: Vec<String>,
}

/// Estimate `[from, to)` for `machines` with `prices` (USD per running hour by preset).
pub fn estimate(
    machines: &[CostInput],
    prices: &BTreeMap<String, f64>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> CostEstimate {
    let mut out = CostEstimate {
        from,
        to,
        machines: Vec::new(),
        total_usd: 0.0,
        machine_hours: 0.0,
        unpriced: Vec::new(),
    };
    for m in machines {
        let hours = running_seconds(&m.transitions, m.running_now, from, to) as f64 / 3600.0;
        let size = m.guest.as_ref().map(preset);
        let usd = size.as_ref().and_then(|s| prices.get(s)).map(|p| p * hours);
        if usd.is_none() && hours > 0.0 {
            let name = size.clone().unwrap_or_else(|| "unknown size".to_owned());
            if !out.unpriced.contains(&name) {
                out.unpriced.push(name);
            }
        }
        out.total_usd += usd.unwrap_or(0.0);
        out.machine_hours += hours;
        out.machines.push(MachineCost {
            id: m.id.clone(),
            size,
            hours,
            usd,
        });
    }
    out.unpriced.sort();
    out
}

/// Judge `today` against `trailing` (earlier daily totals in USD, the last `trailingDays`):
/// above `factor` × their mean → [`SignalKind::CostAnomaly`]. No earlier day, or a mean of
/// zero, gives no baseline and no anomaly; an empty price table judges nothing.
pub fn judge(
    app: &str,
    today: &CostEstimate,
    trailing: &[f64],
    factor: f64,
    priced: bool,
    now: DateTime<Utc>,
) -> Judgement {
    let mut summary = format!(
        "{:.1} machine-hours, ${:.2}",
        today.machine_hours, today.total_usd
    );
    if !today.unpriced.is_empty() {
        summary.push_str(&format!(" (unpriced: {})", today.unpriced.join(", ")));
    }
    if !priced {
        return Judgement::ok(format!("{summary}; no price table: no anomaly judged"));
    }
    if trailing.is_empty() {
        return Judgement::ok(format!("{summary}; no earlier snapshot to compare with"));
    }
    let mean = trailing.iter().sum::<f64>() / trailing.len() as f64;
    summary.push_str(&format!(
        " vs ${mean:.2} a day over the last {} day(s)",
        trailing.len()
    ));
    if mean > 0.0 && today.total_usd > factor * mean {
        let s = signal(
            app,
            SignalKind::CostAnomaly,
            format!("above:{factor}x"),
            SOURCE,
            now,
            format!(
                "${:.2} is {:.1}× the trailing daily average ${mean:.2}",
                today.total_usd,
                today.total_usd / mean
            ),
        );
        return Judgement::alert(summary, vec![s]);
    }
    Judgement::ok(summary)
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;
    use crate::maintenance::Status;
    use crate::testkit::t0;

    fn at(h: i64) -> DateTime<Utc> {
        t0() + Duration::hours(h)
    }

    fn tr(h: i64, running: bool) -> Transition {
        Transition { at: at(h), running }
    }

    #[test]
    fn running_time_replays_starts_and_stops_inside_the_window() {
        let (from, to) = (at(-24), at(0));
        // Always on, no events: the whole day.
        assert_eq!(running_seconds(&[], true, from, to), 86_400);
        assert_eq!(running_seconds(&[], false, from, to), 0);
        // Started 30 h ago (before the window), still running.
        assert_eq!(running_seconds(&[tr(-30, true)], true, from, to), 86_400);
        // Autostopped at -20, woken at -5, stopped at -2 (out of order on purpose).
        let ts = [tr(-2, false), tr(-20, false), tr(-5, true)];
        assert_eq!(running_seconds(&ts, false, from, to), (4 + 3) * 3600);
        // First event in view is a start at -6: not running before.
        assert_eq!(running_seconds(&[tr(-6, true)], true, from, to), 6 * 3600);
    }

    #[test]
    fn the_estimate_prices_running_hours_by_preset() {
        let shared = GuestSize::from_preset("shared-cpu-1x", Some(1024));
        let perf = GuestSize::from_preset("performance-2x", None);
        let machines = [
            CostInput {
                id: "m1".into(),
                guest: shared,
                running_now: true,
                transitions: vec![],
            },
            CostInput {
                id: "m2".into(),
                guest: shared,
                running_now: false,
                transitions: vec![tr(-12, false)],
            },
            CostInput {
                id: "m3".into(),
                guest: perf,
                running_now: true,
                transitions: vec![],
            },
        ];
        let prices = BTreeMap::from([("shared-cpu-1x".to_owned(), 0.01)]);
        let e = estimate(&machines, &prices, at(-24), at(0));
        assert!((e.machine_hours - 60.0).abs() < 1e-9, "{e:?}");
        assert!((e.total_usd - 0.36).abs() < 1e-9, "{e:?}");
        assert_eq!(e.unpriced, vec!["performance-2x"]);
    }

    fn day(usd: f64) -> CostEstimate {
        CostEstimate {
            from: at(-24),
            to: at(0),
            machines: vec![],
            total_usd: usd,
            machine_hours: 24.0,
            unpriced: vec![],
        }
    }

    #[test]
    fn above_twice_the_trailing_average_is_an_anomaly() {
        let week = [1.0, 1.0, 1.2, 0.8, 1.0, 1.0, 1.0];
        assert_eq!(
            judge("a", &day(2.0), &week, 2.0, true, t0()).status,
            Status::Ok,
            "exactly 2× is not above"
        );
        let j = judge("a", &day(2.01), &week, 2.0, true, t0());
        assert_eq!(j.status, Status::Alert);
        assert_eq!(j.signals[0].fingerprint(), "a/cost_anomaly/-/above:2x");
        // No baseline, or no prices: nothing judged.
        assert_eq!(
            judge("a", &day(50.0), &[], 2.0, true, t0()).status,
            Status::Ok
        );
        assert_eq!(
            judge("a", &day(50.0), &[0.0], 2.0, true, t0()).status,
            Status::Ok
        );
        assert_eq!(
            judge("a", &day(50.0), &week, 2.0, false, t0()).status,
            Status::Ok
        );
    }
}
