//! The `HealthSLO` kind: an availability and latency objective over probe results, with
//! multi-window, multi-burn-rate alerting (DESIGN.md §3).
//!
//! ```yaml
//! apiVersion: opsctl.dev/v1alpha1
//! kind: HealthSLO
//! metadata: {name: lowendinsight}
//! spec:
//!   app: lowendinsight             # default: metadata.name
//!   availability: 99.9%            # or 0.999 (default 99.9%)
//!   period: 30d                    # default 30d
//!   latency: {threshold: 500ms, target: 99%}   # optional
//!   minSamples: 10                 # per window; fewer → no verdict (default 10)
//!   alerts:                        # default: the four below
//!     - {severity: page,   burnRate: 14.4, longWindow: 1h, shortWindow: 5m}
//!     - {severity: page,   burnRate: 6,    longWindow: 6h, shortWindow: 30m}
//!     - {severity: ticket, burnRate: 3,    longWindow: 1d, shortWindow: 2h}
//!     - {severity: ticket, burnRate: 1,    longWindow: 3d, shortWindow: 6h}
//! ```
//!
//! The default alerts are the Google SRE Workbook's recommendation for a 30-day SLO (chapter
//! "Alerting on SLOs", section 6 "Multiwindow, Multi-Burn-Rate Alerts", table 5-8): 14.4× over
//! 1 h spends 2 % of the budget in an hour, 6× over 6 h spends 5 % in six hours, 3× over a day
//! and 1× over three days spend 10 % each; every short window is 1/12 of its long window. How
//! the windows are evaluated lives in `opsctl-controllers` (`slo`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;
use crate::load::{Checker, field_path};

/// Default `availability`: 99.9 %.
pub const DEFAULT_AVAILABILITY: Ratio = Ratio(0.999);
/// Default `period`: 30 days (the SRE Workbook's usual SLO period).
pub const DEFAULT_PERIOD: DurationStr = DurationStr::from_secs(30 * 86_400);
/// Default `minSamples`: a window with fewer probe results gives no verdict, so a quiet app
/// cannot page on one failed probe.
pub const DEFAULT_MIN_SAMPLES: u32 = 10;

/// `spec` of a `HealthSLO` manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSloSpec {
    /// Fly app whose probe results count; `None` means `metadata.name`
    /// ([`HealthSloSpec::app_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Share of probes that must succeed over `period`, in (0, 1); written `99.9%` or `0.999`.
    /// Default [`DEFAULT_AVAILABILITY`]. The error budget is `1 - availability`.
    #[serde(default = "default_availability")]
    pub availability: Ratio,
    /// The rolling period the objective holds over. Default [`DEFAULT_PERIOD`] (30d).
    #[serde(default = "default_period")]
    pub period: DurationStr,
    /// Optional latency objective over the successful probes. `None`: availability only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyObjective>,
    /// The fewest probe results a window needs before its burn rate counts; fewer means
    /// unknown (no alert). At least 1. Default [`DEFAULT_MIN_SAMPLES`].
    #[serde(default = "default_min_samples")]
    pub min_samples: u32,
    /// Burn-rate alerts; an alert fires while both its windows burn at least `burnRate`.
    /// Default [`default_alerts`] (the SRE Workbook's four).
    #[serde(default = "default_alerts")]
    pub alerts: Vec<BurnRateAlert>,
}

/// A latency objective: `target` of successful probes answer within `threshold`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyObjective {
    /// A probe slower than this is a bad latency sample (e.g. `500ms`).
    pub threshold: DurationStr,
    /// Share of successful probes that must be within `threshold`, in (0, 1).
    pub target: Ratio,
}

/// One multi-window burn-rate alert (SRE Workbook, "Alerting on SLOs").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BurnRateAlert {
    /// Who hears about it.
    pub severity: Severity,
    /// How many times faster than "exactly spent at the period's end" the budget burns
    /// (error ratio / error budget). Greater than 0.
    pub burn_rate: f64,
    /// The window that shows the burn is significant.
    pub long_window: DurationStr,
    /// The window that shows it is still happening (so the alert stops soon after the fault
    /// does); shorter than `longWindow`.
    pub short_window: DurationStr,
}

/// How urgent a burn-rate alert is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Wake someone up.
    Page,
    /// Handle in working hours.
    Ticket,
}

impl Severity {
    /// `page` / `ticket`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Page => "page",
            Self::Ticket => "ticket",
        }
    }
}

/// A fraction, read from `0.999` or `"99.9%"`; written back as the fraction.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Ratio(pub f64);

impl Ratio {
    /// The fraction (`0.999` for 99.9 %).
    pub fn get(self) -> f64 {
        self.0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Rounded to 6 decimals so 0.999 prints 99.9%, not 99.89999999999999%.
        write!(f, "{}%", (self.0 * 100.0 * 1e6).round() / 1e6)
    }
}

impl schemars::JsonSchema for Ratio {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Ratio".into()
    }

    /// A YAML number (the fraction, `0.999`) or a string percentage (`"99.9%"`), as the
    /// loader reads it; range checks are the loader's validation.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A fraction like 0.999 or a percentage like \"99.9%\".",
            "oneOf": [
                {"type": "number"},
                {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*%\\s*$"}
            ],
            "examples": [0.999, "99.9%"]
        })
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = Ratio;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a fraction like 0.999 or a percentage like 99.9%")
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Ratio, E> {
                Ok(Ratio(v))
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Ratio, E> {
                Ok(Ratio(v as f64))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Ratio, E> {
                Ok(Ratio(v as f64))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Ratio, E> {
                let t = v.trim();
                let bad = || {
                    E::custom(format_args!(
                        "`{v}` is not a fraction or a percentage: write 0.999 or 99.9%"
                    ))
                };
                match t.strip_suffix('%') {
                    Some(p) => {
                        let p: f64 = p.trim().parse().map_err(|_| bad())?;
                        if p.is_finite() {
                            Ok(Ratio(p / 100.0))
                        } else {
                            Err(bad())
                        }
                    }
                    None => t
                        .parse::<f64>()
                        .ok()
                        .filter(|x| x.is_finite())
                        .map(Ratio)
                        .ok_or_else(bad),
                }
            }
        }

        d.deserialize_any(Visitor)
    }
}

impl Default for HealthSloSpec {
    fn default() -> Self {
        Self {
            app: None,
            availability: DEFAULT_AVAILABILITY,
            period: DEFAULT_PERIOD,
            latency: None,
            min_samples: DEFAULT_MIN_SAMPLES,
            alerts: default_alerts(),
        }
    }
}

impl HealthSloSpec {
    /// The Fly app name (`spec.app`, else `metadata.name`).
    pub fn app_name<'a>(&'a self, metadata_name: &'a str) -> &'a str {
        self.app.as_deref().unwrap_or(metadata_name)
    }
}

fn default_availability() -> Ratio {
    DEFAULT_AVAILABILITY
}

fn default_period() -> DurationStr {
    DEFAULT_PERIOD
}

fn default_min_samples() -> u32 {
    DEFAULT_MIN_SAMPLES
}

/// The SRE Workbook's alerts for a 30-day SLO (table 5-8): page 14.4× over 1h and 5m, page 6×
/// over 6h and 30m, ticket 3× over 1d and 2h, ticket 1× over 3d and 6h.
pub fn default_alerts() -> Vec<BurnRateAlert> {
    let a = |severity, burn_rate, long: u64, short: u64| BurnRateAlert {
        severity,
        burn_rate,
        long_window: DurationStr::from_secs(long),
        short_window: DurationStr::from_secs(short),
    };
    vec![
        a(Severity::Page, 14.4, 3600, 300),
        a(Severity::Page, 6.0, 6 * 3600, 1800),
        a(Severity::Ticket, 3.0, 86_400, 2 * 3600),
        a(Severity::Ticket, 1.0, 3 * 86_400, 6 * 3600),
    ]
}

/// Checks that `r` is a fraction strictly between 0 and 1.
fn ratio_rule(c: &mut Checker<'_>, at: &[&str], r: Ratio) {
    let v = r.get();
    if !(v > 0.0 && v < 1.0) {
        let help = if v > 1.0 && v < 100.0 {
            format!("for {v} percent write {v}%")
        } else {
            "e.g. 99.9% or 0.999".to_owned()
        };
        c.error(
            &field_path(at),
            format!("a target must be between 0 and 1 (exclusive), got {v}"),
            Some(help),
        );
    }
}

/// Rules beyond types on one `HealthSLO` spec.
pub(crate) fn rules(c: &mut Checker<'_>, spec: &HealthSloSpec) {
    ratio_rule(c, &["spec", "availability"], spec.availability);
    if let Some(l) = &spec.latency {
        ratio_rule(c, &["spec", "latency", "target"], l.target);
        if l.threshold.get().is_zero() {
            c.error(
                &field_path(&["spec", "latency", "threshold"]),
                "a latency threshold of 0 counts every probe as slow".to_owned(),
                Some("e.g. threshold: 500ms".to_owned()),
            );
        }
    }
    let period = spec.period.get();
    if period.as_secs() < 3600 {
        c.error(
            &field_path(&["spec", "period"]),
            format!(
                "period {} is shorter than 1h: an error budget needs a longer period",
                spec.period
            ),
            Some("30d is the usual period".to_owned()),
        );
    }
    if spec.min_samples == 0 {
        c.error(
            &field_path(&["spec", "minSamples"]),
            "minSamples must be at least 1".to_owned(),
            Some("10 keeps one failed probe in a quiet window from paging".to_owned()),
        );
    }
    let budget = 1.0 - spec.availability.get();
    for (i, a) in spec.alerts.iter().enumerate() {
        let at = field_path(&["spec", "alerts"]).index(i);
        if !(a.burn_rate.is_finite() && a.burn_rate > 0.0) {
            c.error(
                &at.key("burnRate"),
                format!("burnRate must be greater than 0, got {}", a.burn_rate),
                Some("e.g. 14.4 (2% of a 30-day budget in an hour)".to_owned()),
            );
        } else if budget > 0.0 && budget < 1.0 && a.burn_rate * budget > 1.0 {
            c.error(
                &at.key("burnRate"),
                format!(
                    "burnRate {} can never be reached: with availability {} even 100% errors burn only {:.1}×",
                    a.burn_rate,
                    spec.availability,
                    1.0 / budget
                ),
                Some("lower the burn rate or raise the availability target".to_owned()),
            );
        }
        if a.short_window >= a.long_window {
            c.error(
                &at.key("shortWindow"),
                format!(
                    "shortWindow {} must be shorter than longWindow {}",
                    a.short_window, a.long_window
                ),
                Some("the SRE Workbook uses 1/12 of the long window, e.g. 1h and 5m".to_owned()),
            );
        }
        if a.short_window.get().is_zero() {
            c.error(
                &at.key("shortWindow"),
                "shortWindow must be longer than 0".to_owned(),
                None,
            );
        }
        if a.long_window > spec.period {
            c.error(
                &at.key("longWindow"),
                format!(
                    "longWindow {} is longer than the period {}",
                    a.long_window, spec.period
                ),
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn doc(spec: &str) -> String {
        format!(
            "apiVersion: opsctl.dev/v1alpha1\nkind: HealthSLO\nmetadata: {{name: lei}}\nspec:\n{spec}"
        )
    }

    fn load(spec: &str) -> HealthSloSpec {
        crate::load_str(Path::new("s.yaml"), &doc(spec))
            .expect("valid")
            .slos
            .remove(0)
            .spec
    }

    #[test]
    fn defaults_are_the_sre_workbook_ones() {
        let s = load("  app: example-app\n");
        assert_eq!(s.app_name("lei"), "example-app");
        assert_eq!(s.availability, Ratio(0.999));
        assert_eq!(s.period.get().as_secs(), 30 * 86_400);
        assert_eq!(s.min_samples, 10);
        let alerts: Vec<(Severity, f64, u64, u64)> = s
            .alerts
            .iter()
            .map(|a| {
                (
                    a.severity,
                    a.burn_rate,
                    a.long_window.get().as_secs(),
                    a.short_window.get().as_secs(),
                )
            })
            .collect();
        assert_eq!(
            alerts,
            [
                (Severity::Page, 14.4, 3600, 300),
                (Severity::Page, 6.0, 21_600, 1800),
                (Severity::Ticket, 3.0, 86_400, 7200),
                (Severity::Ticket, 1.0, 259_200, 21_600),
            ]
        );
    }

    #[test]
    fn targets_read_as_percentages_or_fractions() {
        let a = load("  availability: 99.5%\n  latency: {threshold: 500ms, target: 0.99}\n");
        assert!((a.availability.get() - 0.995).abs() < 1e-12);
        let l = a.latency.unwrap();
        assert_eq!(l.threshold.get().as_millis(), 500);
        assert_eq!(l.target, Ratio(0.99));
        let b = load("  availability: 0.999\n  latency: {threshold: 1s, target: \"95%\"}\n");
        assert_eq!(b.availability, Ratio(0.999));
        assert!((b.latency.unwrap().target.get() - 0.95).abs() < 1e-12);
    }

    #[test]
    fn ratios_print_as_percentages() {
        assert_eq!(Ratio(0.999).to_string(), "99.9%");
        assert_eq!(Ratio(0.9995).to_string(), "99.95%");
        assert_eq!(Ratio(0.99).to_string(), "99%");
    }

    #[test]
    fn own_alerts_replace_the_defaults() {
        let s = load(
            "  alerts:\n    - {severity: page, burnRate: 10, longWindow: 2h, shortWindow: 10m}\n",
        );
        assert_eq!(s.alerts.len(), 1);
        assert_eq!(s.alerts[0].burn_rate, 10.0);
    }

    #[test]
    fn bad_targets_and_windows_are_located_errors() {
        let text = doc(concat!(
            "  availability: 99.9\n",
            "  latency: {threshold: 0ms, target: 1}\n",
            "  period: 30m\n",
            "  minSamples: 0\n",
            "  alerts:\n",
            "    - {severity: page, burnRate: 0, longWindow: 5m, shortWindow: 1h}\n",
            "    - {severity: ticket, burnRate: 2000, longWindow: 2h, shortWindow: 1m}\n",
        ));
        let err = crate::load_str(Path::new("s.yaml"), &text).expect_err("invalid");
        let found = |field: &str, line: usize, words: &str| {
            assert!(
                err.diagnostics
                    .iter()
                    .any(|d| d.field.as_deref() == Some(field)
                        && d.line == line
                        && d.message.contains(words)),
                "no `{words}` at {field} line {line}: {:#?}",
                err.diagnostics
            );
        };
        found("spec.availability", 5, "between 0 and 1");
        assert!(
            err.diagnostics
                .iter()
                .any(|d| d.help.as_deref() == Some("for 99.9 percent write 99.9%")),
            "{:#?}",
            err.diagnostics
        );
        found("spec.latency.target", 6, "between 0 and 1");
        found("spec.latency.threshold", 6, "threshold of 0");
        found("spec.period", 7, "shorter than 1h");
        found("spec.minSamples", 8, "at least 1");
        found("spec.alerts[0].burnRate", 10, "greater than 0");
        found("spec.alerts[0].shortWindow", 10, "shorter than longWindow");
        found("spec.alerts[1].longWindow", 11, "longer than the period");
    }

    #[test]
    fn a_burn_rate_above_what_total_failure_gives_is_an_error() {
        let text = doc(
            "  availability: 90%\n  alerts:\n    - {severity: page, burnRate: 14.4, longWindow: 1h, shortWindow: 5m}\n",
        );
        let err = crate::load_str(Path::new("s.yaml"), &text).expect_err("invalid");
        assert_eq!(err.diagnostics.len(), 1, "{:#?}", err.diagnostics);
        let d = &err.diagnostics[0];
        assert_eq!(d.field.as_deref(), Some("spec.alerts[0].burnRate"));
        assert!(d.message.contains("can never be reached"), "{}", d.message);
        assert!(d.message.contains("10.0×"), "{}", d.message);
    }

    #[test]
    fn a_percentage_that_is_not_a_number_is_an_error() {
        let err = crate::load_str(Path::new("s.yaml"), &doc("  availability: lots%\n"))
            .expect_err("invalid");
        assert!(
            err.diagnostics[0]
                .message
                .contains("not a fraction or a percentage"),
            "{:#?}",
            err.diagnostics
        );
    }
}
