//! The `CertWindow` kind: hostnames whose TLS certificates must stay valid (DESIGN.md §3).
//!
//! ```yaml
//! apiVersion: opsctl.dev/v1alpha1
//! kind: CertWindow
//! metadata: {name: lowendinsight}
//! spec:
//!   app: lowendinsight            # Fly app holding the certificates (default: metadata.name)
//!   hostnames: [lowendinsight.fly.dev, api.example.com]
//!   minDaysRemaining: 14          # fewer than 14 full days left → alert (default 14)
//!   interval: 24h                 # how often to check (default 24h)
//!   onShort: alert                # alert (default) | report
//! ```
//!
//! The 14-day default follows the issue's maintenance table (ADR §2: "fewer than 14 days left →
//! alert"); Let's Encrypt certificates live 90 days and Fly renews them about 30 days before
//! expiry, so a certificate inside 14 days is one whose renewal has failed for two weeks.
//! What the window means at the boundary (BUG-23: exactly 14 days is not short) is decided in
//! `opsctl-controllers` (`certs`), not here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::duration::DurationStr;
use crate::load::{Checker, field_path};

/// Default `minDaysRemaining`.
pub const DEFAULT_MIN_DAYS_REMAINING: u32 = 14;
/// Default `interval`: daily.
pub const DEFAULT_INTERVAL: DurationStr = DurationStr::from_secs(86_400);
/// The shortest `interval` accepted: checks hit Fly's API and the hostname itself.
pub const MIN_INTERVAL: DurationStr = DurationStr::from_secs(60);
/// The longest `minDaysRemaining` accepted: 397 days is the longest validity a public CA may
/// issue (CA/Browser Forum Baseline Requirements §6.3.2), so a longer window is always short.
pub const MAX_MIN_DAYS_REMAINING: u32 = 397;

/// `spec` of a `CertWindow` manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertWindowSpec {
    /// Fly app whose certificates API lists these hostnames; `None` means `metadata.name`
    /// (see [`CertWindowSpec::app_name`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Hostnames to check, as added to the app with `fly certs add` (a wildcard such as
    /// `*.example.com` is checked through Fly's API only: there is no single host to
    /// handshake with). Empty: the window checks nothing (a warning).
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Whole days a certificate must have left; fewer is short. Default
    /// [`DEFAULT_MIN_DAYS_REMAINING`] (14). 1 ..= [`MAX_MIN_DAYS_REMAINING`].
    #[serde(default = "default_min_days")]
    pub min_days_remaining: u32,
    /// How often each hostname is checked. Default [`DEFAULT_INTERVAL`] (24h); at least
    /// [`MIN_INTERVAL`]. A certificate stuck on a CA rate limit is checked at most hourly
    /// whatever this says (BUG-21).
    #[serde(default = "default_interval")]
    pub interval: DurationStr,
    /// What a short, expired or not-ready certificate leads to. Default [`OnShort::Alert`].
    #[serde(default)]
    pub on_short: OnShort,
}

/// What to do when a certificate is short, expired or not ready.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnShort {
    /// Raise a signal (`cert_expiring` / `cert_not_ready`) for the incident pipeline, which
    /// alerts through the `AlertRoute`s. The default.
    #[default]
    Alert,
    /// Only show it in `opsctl status` (and the metrics): for certificates someone else renews
    /// and watches.
    Report,
}

impl Default for CertWindowSpec {
    fn default() -> Self {
        Self {
            app: None,
            hostnames: Vec::new(),
            min_days_remaining: DEFAULT_MIN_DAYS_REMAINING,
            interval: DEFAULT_INTERVAL,
            on_short: OnShort::Alert,
        }
    }
}

impl CertWindowSpec {
    /// The Fly app name (`spec.app`, else `metadata.name`).
    pub fn app_name<'a>(&'a self, metadata_name: &'a str) -> &'a str {
        self.app.as_deref().unwrap_or(metadata_name)
    }
}

fn default_min_days() -> u32 {
    DEFAULT_MIN_DAYS_REMAINING
}

fn default_interval() -> DurationStr {
    DEFAULT_INTERVAL
}

/// `example.com`, `*.example.com`: dot-separated labels of letters, digits and `-` (RFC 1123
/// §2.1), at most 253 characters, labels at most 63, a wildcard only as the whole first label.
pub fn is_hostname(host: &str) -> bool {
    let rest = host.strip_prefix("*.").unwrap_or(host);
    host.len() <= 253
        && rest.contains('.')
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Rules beyond types on one `CertWindow` spec.
pub(crate) fn rules(c: &mut Checker<'_>, spec: &CertWindowSpec) {
    let hosts = field_path(&["spec", "hostnames"]);
    if spec.hostnames.is_empty() {
        c.warn(
            &field_path(&["spec"]),
            "no hostnames: this CertWindow checks nothing".to_owned(),
            Some("list them, e.g. hostnames: [app.example.com]".to_owned()),
        );
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, host) in spec.hostnames.iter().enumerate() {
        let at = hosts.index(i);
        if !is_hostname(host) {
            c.error(
                &at,
                format!("`{host}` is not a hostname"),
                Some(
                    "write the name as added with `fly certs add`, without scheme, port or path, e.g. app.example.com"
                        .to_owned(),
                ),
            );
        } else if host.bytes().any(|b| b.is_ascii_uppercase()) {
            c.error(
                &at,
                format!("`{host}` has capital letters"),
                Some(format!(
                    "write it in lowercase: {}",
                    host.to_ascii_lowercase()
                )),
            );
        }
        if let Some(first) = seen.insert(host.clone(), i) {
            c.error(
                &at,
                format!("`{host}` is listed twice (first at hostnames[{first}])"),
                None,
            );
        }
    }
    let days = spec.min_days_remaining;
    if days == 0 || days > MAX_MIN_DAYS_REMAINING {
        c.error(
            &field_path(&["spec", "minDaysRemaining"]),
            format!("minDaysRemaining must be between 1 and {MAX_MIN_DAYS_REMAINING}, got {days}"),
            Some(if days == 0 {
                "an expired certificate is always reported; 14 gives two weeks to fix a failed renewal".to_owned()
            } else {
                "no public certificate lives longer than 397 days, so every one would be short".to_owned()
            }),
        );
    }
    if spec.interval < MIN_INTERVAL {
        c.error(
            &field_path(&["spec", "interval"]),
            format!("interval {} is shorter than 1m", spec.interval),
            Some("certificates change over days: 24h (the default) or 1h is plenty".to_owned()),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn doc(spec: &str) -> String {
        format!(
            "apiVersion: opsctl.dev/v1alpha1\nkind: CertWindow\nmetadata: {{name: lei}}\nspec:\n{spec}"
        )
    }

    #[test]
    fn defaults_are_fourteen_days_daily_alert_and_the_app_is_the_name() {
        let set = crate::load_str(
            Path::new("c.yaml"),
            &doc("  hostnames: [app.example.com]\n"),
        )
        .expect("valid");
        let w = &set.cert_windows[0];
        assert_eq!(w.spec.min_days_remaining, 14);
        assert_eq!(w.spec.interval.get().as_secs(), 86_400);
        assert_eq!(w.spec.on_short, OnShort::Alert);
        assert_eq!(w.spec.app_name(w.name()), "lei");
        assert_eq!(w.spec.hostnames, ["app.example.com"]);
    }

    #[test]
    fn every_field_is_read() {
        let text = doc(
            "  app: example-app\n  hostnames: [app.example.com, '*.example.com']\n  minDaysRemaining: 21\n  interval: 6h\n  onShort: report\n",
        );
        let set = crate::load_str(Path::new("c.yaml"), &text).expect("valid");
        let s = &set.cert_windows[0].spec;
        assert_eq!(s.app_name("lei"), "example-app");
        assert_eq!(s.min_days_remaining, 21);
        assert_eq!(s.interval.get().as_secs(), 6 * 3600);
        assert_eq!(s.on_short, OnShort::Report);
        assert_eq!(s.hostnames[1], "*.example.com");
    }

    #[test]
    fn bad_values_are_located_errors() {
        let text = doc(
            "  hostnames:\n    - app.example.com\n    - https://api.example.com/\n    - app.example.com\n  minDaysRemaining: 0\n  interval: 10s\n",
        );
        let err = crate::load_str(Path::new("c.yaml"), &text).expect_err("invalid");
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
        found("spec.hostnames[1]", 7, "is not a hostname");
        found("spec.hostnames[2]", 8, "listed twice");
        found("spec.minDaysRemaining", 9, "between 1 and 397");
        found("spec.interval", 10, "shorter than 1m");
        assert_eq!(err.diagnostics.len(), 4, "{:#?}", err.diagnostics);
    }

    #[test]
    fn an_unknown_field_and_an_unknown_action_are_errors() {
        let err = crate::load_str(
            Path::new("c.yaml"),
            &doc("  hostnames: [app.example.com]\n  alertDays: 14\n  onShort: page\n"),
        )
        .expect_err("invalid");
        assert_eq!(err.diagnostics.len(), 2, "{:#?}", err.diagnostics);
    }

    #[test]
    fn no_hostnames_is_a_warning_not_an_error() {
        let set =
            crate::load_str(Path::new("c.yaml"), &doc("  minDaysRemaining: 14\n")).expect("valid");
        assert!(
            set.warnings
                .iter()
                .any(|w| w.message.contains("checks nothing")),
            "{:?}",
            set.warnings
        );
    }

    #[test]
    fn hostname_rule() {
        for ok in ["app.example.com", "*.example.com", "a-b.example.co.uk"] {
            assert!(is_hostname(ok), "{ok}");
        }
        for bad in [
            "localhost",
            "app.example.com:443",
            "-a.example.com",
            "a..example.com",
            "a.*.example.com",
            "",
        ] {
            assert!(!is_hostname(bad), "{bad}");
        }
    }
}
