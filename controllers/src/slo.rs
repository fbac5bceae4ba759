//! `HealthSLO` evaluation: error budget over the period, burn rate per window, and the
//! multi-window, multi-burn-rate alerts of the Google SRE Workbook (chapter "Alerting on
//! SLOs", section 6), over opsctl's own probe results.
//!
//! Pure: samples and `now` (UTC) come in as arguments; the runtime
//! (`opsctl::maintenance::slo`) stores probe results and calls [`evaluate`]. Its
//! [`SloReport`] goes to `opsctl status` and, through [`SloReport::signals`], to the incident
//! pipeline as [`SignalKind::SloBurn`].
//!
//! Definitions (all windows end at `now` and hold the samples with `now − window < at ≤ now`):
//! - availability: a sample is bad when the probe failed; error ratio = failed / total.
//! - latency: over successful probes only (a failed probe is availability's concern); a sample
//!   is bad when slower than the threshold; error ratio = slow / successful.
//! - burn rate = error ratio / (1 − target): 1× spends the budget exactly over the period.
//! - a window with fewer than `minSamples` samples has no burn rate (`None`, unknown), and an
//!   alert whose windows are unknown does not fire: a quiet app cannot page on one failed probe.
//! - an alert fires while the burn rate over its long window **and** its short window are both
//!   at least its `burnRate`: the long window shows the burn is significant, the short one that
//!   it is still happening, so the alert stops within a short window of the fault ending.
//! - budget remaining = 1 − (period error ratio / (1 − target)); negative once overspent.

use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_crds::kinds::health_slo::{HealthSloSpec, Severity};
use serde::{Deserialize, Serialize};

use crate::signal::{Signal, SignalKind};

/// One probe result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When the probe finished, UTC.
    pub at: DateTime<Utc>,
    /// The probe succeeded (status, body and time limit as the manifest's probe says).
    pub ok: bool,
    /// How long it took, milliseconds.
    pub latency_ms: u32,
}

/// Which indicator an objective or alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sli {
    /// Share of successful probes.
    Availability,
    /// Share of successful probes within the latency threshold.
    Latency,
}

impl Sli {
    /// `availability` / `latency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Availability => "availability",
            Self::Latency => "latency",
        }
    }
}

/// Samples indexed for window queries: sorted by time, with running counts, so that counting
/// a window is two binary searches (a 30-day evaluation every minute stays cheap).
#[derive(Debug, Clone, Default)]
pub struct SampleSeries {
    /// Unix milliseconds, ascending.
    times: Vec<i64>,
    /// `failed[i]` = failed probes among the first `i` samples (length `n + 1`).
    failed: Vec<u32>,
    /// Successful probes among the first `i`.
    ok: Vec<u32>,
    /// Successful probes slower than the threshold among the first `i`.
    slow: Vec<u32>,
}

/// Counts over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCounts {
    /// All samples.
    pub total: u32,
    /// Failed probes.
    pub failed: u32,
    /// Successful probes slower than the latency threshold.
    pub slow: u32,
}

impl WindowCounts {
    /// (bad, eligible) samples for `sli`.
    fn of(self, sli: Sli) -> (u32, u32) {
        match sli {
            Sli::Availability => (self.failed, self.total),
            Sli::Latency => (self.slow, self.total - self.failed),
        }
    }
}

impl SampleSeries {
    /// Indexes `samples` (any order). `latency_threshold`: a successful probe slower than this
    /// counts as slow; `None` counts none.
    pub fn new(samples: &[Sample], latency_threshold: Option<Duration>) -> Self {
        let mut sorted: Vec<Sample> = samples.to_vec();
        sorted.sort_by_key(|s| s.at);
        let limit_ms = latency_threshold.map(|d| d.as_millis());
        let mut series = Self {
            times: Vec::with_capacity(sorted.len()),
            failed: Vec::with_capacity(sorted.len() + 1),
            ok: Vec::with_capacity(sorted.len() + 1),
            slow: Vec::with_capacity(sorted.len() + 1),
        };
        let (mut f, mut o, mut s) = (0_u32, 0_u32, 0_u32);
        series.failed.push(0);
        series.ok.push(0);
        series.slow.push(0);
        for x in &sorted {
            series.times.push(x.at.timestamp_millis());
            if x.ok {
                o += 1;
                if limit_ms.is_some_and(|l| u128::from(x.latency_ms) > l) {
                    s += 1;
                }
            } else {
                f += 1;
            }
            series.failed.push(f);
            series.ok.push(o);
            series.slow.push(s);
        }
        series
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.times.len()
    }

    /// True with no samples.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Counts over `(now − window, now]`.
    pub fn window(&self, now: DateTime<Utc>, window: Duration) -> WindowCounts {
        let end_ms = now.timestamp_millis();
        let start_ms = end_ms.saturating_sub(i64::try_from(window.as_millis()).unwrap_or(i64::MAX));
        let lo = self.times.partition_point(|t| *t <= start_ms);
        let hi = self.times.partition_point(|t| *t <= end_ms);
        if hi <= lo {
            return WindowCounts::default();
        }
        let failed = self.failed[hi] - self.failed[lo];
        let ok = self.ok[hi] - self.ok[lo];
        WindowCounts {
            total: failed + ok,
            failed,
            slow: self.slow[hi] - self.slow[lo],
        }
    }
}

/// Burn rate of `bad` out of `eligible` samples against an objective `target` (a fraction):
/// `(bad / eligible) / (1 − target)`. `None` with fewer than `min_samples` eligible samples
/// (too little data is unknown, not burning) or a target outside (0, 1).
/// Source: Google SRE Workbook, "Alerting on SLOs".
pub fn burn_rate(bad: u32, eligible: u32, target: f64, min_samples: u32) -> Option<f64> {
    let budget = 1.0 - target;
    if eligible == 0 || eligible < min_samples || !(budget > 0.0 && budget < 1.0) {
        return None;
    }
    Some(f64::from(bad) / f64::from(eligible) / budget)
}

/// Burn rate over one window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowBurn {
    /// Window length, seconds.
    pub window_secs: u64,
    /// Eligible samples in it.
    pub samples: u32,
    /// `None`: fewer than `minSamples` samples.
    pub burn_rate: Option<f64>,
}

/// One objective's state at `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliReport {
    /// Which indicator.
    pub sli: Sli,
    /// Its target, a fraction.
    pub target: f64,
    /// Eligible samples over the period.
    pub period_samples: u32,
    /// Bad samples over the period.
    pub period_bad: u32,
    /// Share of the error budget left over the period: 1.0 untouched, 0.0 spent, negative
    /// overspent. `None` with no samples.
    pub budget_remaining: Option<f64>,
    /// Burn rate over each distinct alert window, shortest first.
    pub burn_rates: Vec<WindowBurn>,
}

/// One alert rule's state at `now`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    /// Which indicator.
    pub sli: Sli,
    /// Page or ticket.
    pub severity: Severity,
    /// The rule's burn-rate threshold.
    pub threshold: f64,
    /// Long window, seconds.
    pub long_window_secs: u64,
    /// Short window, seconds.
    pub short_window_secs: u64,
    /// Burn rate over the long window (`None`: too few samples).
    pub long_burn: Option<f64>,
    /// Burn rate over the short window (`None`: too few samples).
    pub short_burn: Option<f64>,
    /// Both windows at or above the threshold.
    pub firing: bool,
}

/// A `HealthSLO` evaluated at one instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloReport {
    /// Fly app.
    pub app: String,
    /// The `HealthSLO`'s `metadata.name`.
    pub slo: String,
    /// When (UTC).
    pub at: DateTime<Utc>,
    /// Availability, always; latency when the SLO has a latency objective.
    pub objectives: Vec<SliReport>,
    /// Every alert rule, for each objective.
    pub alerts: Vec<AlertState>,
}

impl SloReport {
    /// The most severe firing alert of `sli`, if any.
    pub fn firing(&self, sli: Sli) -> Option<Severity> {
        self.alerts
            .iter()
            .filter(|a| a.sli == sli && a.firing)
            .map(|a| a.severity)
            .min()
    }

    /// One [`SignalKind::SloBurn`] per objective with a firing alert, at its most severe
    /// severity; `class` is `availability:page`, `latency:ticket`, … (stable while the same
    /// severity fires, so the incident pipeline does not repeat it every evaluation).
    pub fn signals(&self) -> Vec<Signal> {
        let mut out = Vec::new();
        for o in &self.objectives {
            let Some(sev) = self.firing(o.sli) else {
                continue;
            };
            let rules: Vec<String> = self
                .alerts
                .iter()
                .filter(|a| a.sli == o.sli && a.firing)
                .map(|a| {
                    format!(
                        "{}× over {} ({:.1}×) and {} ({:.1}×)",
                        a.threshold,
                        human(a.long_window_secs),
                        a.long_burn.unwrap_or(0.0),
                        human(a.short_window_secs),
                        a.short_burn.unwrap_or(0.0)
                    )
                })
                .collect();
            let budget = o
                .budget_remaining
                .map(|b| format!("; {:.1}% of the error budget left", b * 100.0))
                .unwrap_or_default();
            out.push(Signal {
                app: Some(self.app.clone()),
                kind: SignalKind::SloBurn,
                release: None,
                class: format!("{}:{}", o.sli.as_str(), sev.as_str()),
                source: "maintenance/slo".to_owned(),
                at: self.at,
                machine: None,
                detail: format!(
                    "{} SLO {} ({}) burning: {}{budget}",
                    o.sli.as_str(),
                    self.slo,
                    opsctl_crds::kinds::health_slo::Ratio(o.target),
                    rules.join(", ")
                ),
                deploy: None,
                blind: None,
            });
        }
        out
    }
}

/// `3600` → `1h`, `300` → `5m`, `86400` → `1d`.
fn human(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Evaluates `spec` (the `HealthSLO` named `name`, for `app`) over `series` at `now` (UTC).
/// `series` must have been built with the spec's latency threshold
/// ([`SampleSeries::new`]); samples after `now` are ignored.
pub fn evaluate(
    app: &str,
    name: &str,
    spec: &HealthSloSpec,
    series: &SampleSeries,
    now: DateTime<Utc>,
) -> SloReport {
    let mut objectives = vec![(Sli::Availability, spec.availability.get())];
    if let Some(l) = &spec.latency {
        objectives.push((Sli::Latency, l.target.get()));
    }
    let mut windows: Vec<Duration> = spec
        .alerts
        .iter()
        .flat_map(|a| [a.short_window.get(), a.long_window.get()])
        .collect();
    windows.sort();
    windows.dedup();

    let burn = |sli: Sli, target: f64, w: Duration| {
        let (bad, n) = series.window(now, w).of(sli);
        (n, burn_rate(bad, n, target, spec.min_samples))
    };
    let mut reports = Vec::new();
    let mut alerts = Vec::new();
    for (sli, target) in objectives {
        let (bad, n) = series.window(now, spec.period.get()).of(sli);
        let budget_remaining = burn_rate(bad, n, target, 1).map(|spent_share| 1.0 - spent_share);
        let burn_rates = windows
            .iter()
            .map(|w| {
                let (samples, burn_rate) = burn(sli, target, *w);
                WindowBurn {
                    window_secs: w.as_secs(),
                    samples,
                    burn_rate,
                }
            })
            .collect();
        reports.push(SliReport {
            sli,
            target,
            period_samples: n,
            period_bad: bad,
            budget_remaining,
            burn_rates,
        });
        for a in &spec.alerts {
            let (_, long_burn) = burn(sli, target, a.long_window.get());
            let (_, short_burn) = burn(sli, target, a.short_window.get());
            let firing = long_burn.is_some_and(|b| b >= a.burn_rate)
                && short_burn.is_some_and(|b| b >= a.burn_rate);
            alerts.push(AlertState {
                sli,
                severity: a.severity,
                threshold: a.burn_rate,
                long_window_secs: a.long_window.get().as_secs(),
                short_window_secs: a.short_window.get().as_secs(),
                long_burn,
                short_burn,
                firing,
            });
        }
    }
    SloReport {
        app: app.to_owned(),
        slo: name.to_owned(),
        at: now,
        objectives: reports,
        alerts,
    }
}

#[cfg(test)]
mod tests;
