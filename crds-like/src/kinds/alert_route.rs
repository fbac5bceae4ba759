//! The `AlertRoute` kind: where notifications and escalations go (DESIGN.md §3): a generic
//! JSON webhook, a Slack incoming webhook, PagerDuty Events v2, an engineering repository's
//! beads. Secrets (webhook URLs with tokens, routing keys) are never written in a manifest: a
//! target names the environment variable that holds them.
//!
//! ```yaml
//! apiVersion: opsctl.dev/v1alpha1
//! kind: AlertRoute
//! metadata: {name: lei-oncall}
//! spec:
//!   match: {minSeverity: high, kinds: [incident, escalation], apps: [lowendinsight]}
//!   targets:
//!     - pagerduty: {routingKeyEnv: LEI_PD_ROUTING_KEY}
//!     - slack: {webhookUrlEnv: LEI_SLACK_WEBHOOK_URL}
//!     - webhook: {url: "https://ops.example.com/hooks/opsctl"}
//!     - beads: {path: ../../lowendinsight/.beads/issues.jsonl, prefix: lowendinsight}
//! ```

use serde::{Deserialize, Serialize};

use crate::load::field_path as path;
use crate::load::{Checker, FieldPath};

/// `spec` of an `AlertRoute` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertRouteSpec {
    /// Which events this route takes; absent: every event.
    #[serde(
        default,
        rename = "match",
        skip_serializing_if = "RouteMatch::is_empty"
    )]
    pub matches: RouteMatch,
    /// Where they go; each target names exactly one of `webhook`, `slack`, `pagerduty`,
    /// `beads`. Empty: the route sends nothing (a warning).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Target>,
}

/// Which events a route takes. Every condition given must hold; an empty list means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// Only events at least this severe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// Only these record kinds: `deploy`, `incident`, `postmortem`, `approval`, `escalation`,
    /// `check`, `cost_snapshot`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Only these Fly apps (events about no app, such as "monitoring path down", match only a
    /// route without `apps`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

impl RouteMatch {
    /// True when no condition is set.
    pub fn is_empty(&self) -> bool {
        self.min_severity.is_none() && self.kinds.is_empty() && self.apps.is_empty()
    }

    /// Whether an event of `kind` about `app` with `severity` matches.
    pub fn matches(&self, kind: &str, app: Option<&str>, severity: Severity) -> bool {
        self.min_severity.is_none_or(|min| severity >= min)
            && (self.kinds.is_empty() || self.kinds.iter().any(|k| k == kind))
            && (self.apps.is_empty() || app.is_some_and(|a| self.apps.iter().any(|x| x == a)))
    }
}

/// Record kinds a route can match (`RouteMatch::kinds`).
pub const RECORD_KINDS: &[&str] = &[
    "deploy",
    "incident",
    "postmortem",
    "approval",
    "escalation",
    "check",
    "cost_snapshot",
];

/// Severity, ordered `info < low < medium < high < critical`; a record's beads priority P0..P4
/// is critical..info ([`Severity::from_priority`]).
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
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// P4.
    Info,
    /// P3.
    Low,
    /// P2.
    Medium,
    /// P1.
    High,
    /// P0.
    Critical,
}

impl Severity {
    /// P0 → critical, P1 → high, P2 → medium, P3 → low, P4 and above → info.
    pub fn from_priority(priority: u8) -> Self {
        match priority {
            0 => Self::Critical,
            1 => Self::High,
            2 => Self::Medium,
            3 => Self::Low,
            _ => Self::Info,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// PagerDuty's `payload.severity`: `critical`, `error` (high), `warning` (medium), `info`.
    pub fn pagerduty(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "error",
            Self::Medium => "warning",
            Self::Low | Self::Info => "info",
        }
    }
}

/// One target; exactly one field is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Target {
    /// A generic JSON webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTarget>,
    /// A Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackTarget>,
    /// PagerDuty Events API v2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerDutyTarget>,
    /// An engineering repository's beads (escalations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beads: Option<BeadsTarget>,
}

impl Target {
    /// `webhook`, `slack`, `pagerduty` or `beads` (the first set), for logs and records.
    pub fn kind(&self) -> &'static str {
        if self.webhook.is_some() {
            "webhook"
        } else if self.slack.is_some() {
            "slack"
        } else if self.pagerduty.is_some() {
            "pagerduty"
        } else if self.beads.is_some() {
            "beads"
        } else {
            "none"
        }
    }
}

/// A generic webhook: opsctl POSTs its event JSON (`docs/notifications.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookTarget {
    /// The URL, written out: only for a URL that holds no secret (no credentials, no token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Name of the environment variable holding the URL (for URLs that carry a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_env: Option<String>,
}

/// A Slack incoming webhook. Its URL is a secret (whoever has it can post), so only the name
/// of the environment variable holding it is written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlackTarget {
    /// Environment variable holding `https://hooks.slack.com/services/…`.
    pub webhook_url_env: String,
}

/// PagerDuty Events API v2 (`POST https://events.pagerduty.com/v2/enqueue`): an incident
/// triggers an alert with `dedup_key` = the incident's fingerprint; its closing resolves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PagerDutyTarget {
    /// Environment variable holding the integration's routing key (a secret).
    pub routing_key_env: String,
    /// The Events API endpoint; default `https://events.pagerduty.com/v2/enqueue` (EU accounts:
    /// `https://events.eu.pagerduty.com/v2/enqueue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_url: Option<String>,
}

/// The default PagerDuty Events v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// An engineering repository's beads: escalations become issues there with a `caused-by`
/// dependency on the ops record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BeadsTarget {
    /// The `issues.jsonl` file; relative to the manifest's directory.
    pub path: String,
    /// The engineering issue prefix (`eng`, `lowendinsight`).
    pub prefix: String,
    /// Create the issue with `bd create` (in the repository holding `.beads/`) instead of
    /// editing the file; for Dolt-era beads where `issues.jsonl` is only an export.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_bd: bool,
}

/// Rules beyond types on one `AlertRoute` spec.
pub(crate) fn rules(c: &mut Checker<'_>, spec: &AlertRouteSpec) {
    let sp = path(&["spec"]);
    for (i, kind) in spec.matches.kinds.iter().enumerate() {
        if !RECORD_KINDS.contains(&kind.as_str()) {
            c.error(
                &sp.key("match").key("kinds").index(i),
                format!(
                    "unknown record kind `{kind}`: expected one of {}",
                    RECORD_KINDS.join(", ")
                ),
                None,
            );
        }
    }
    if spec.targets.is_empty() {
        c.warn(
            &sp,
            "no targets: this route sends nothing".to_owned(),
            Some("add e.g. targets: [{slack: {webhookUrlEnv: SLACK_WEBHOOK_URL}}]".to_owned()),
        );
    }
    for (i, t) in spec.targets.iter().enumerate() {
        let tp = sp.key("targets").index(i);
        let set = [
            t.webhook.is_some(),
            t.slack.is_some(),
            t.pagerduty.is_some(),
            t.beads.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if set != 1 {
            c.error(
                &tp,
                format!("a target names exactly one of webhook, slack, pagerduty, beads (this one names {set})"),
                Some("write one target per list item".to_owned()),
            );
        }
        if let Some(w) = &t.webhook {
            let wp = tp.key("webhook");
            match (&w.url, &w.url_env) {
                (Some(_), Some(_)) => {
                    c.error(&wp, "both url and urlEnv: give one".to_owned(), None)
                }
                (None, None) => c.error(
                    &wp,
                    "no url: give url (a URL without secrets) or urlEnv (the variable holding it)"
                        .to_owned(),
                    None,
                ),
                (Some(url), None) => literal_url(c, &wp.key("url"), url),
                (None, Some(name)) => env_name(c, &wp.key("urlEnv"), name),
            }
        }
        if let Some(s) = &t.slack {
            env_name(c, &tp.key("slack").key("webhookUrlEnv"), &s.webhook_url_env);
        }
        if let Some(p) = &t.pagerduty {
            let pp = tp.key("pagerduty");
            env_name(c, &pp.key("routingKeyEnv"), &p.routing_key_env);
            if let Some(url) = &p.events_url {
                literal_url(c, &pp.key("eventsUrl"), url);
            }
        }
        if let Some(b) = &t.beads {
            let bp = tp.key("beads");
            if b.path.trim().is_empty() {
                c.error(
                    &bp.key("path"),
                    "empty path: give the engineering repository's .beads/issues.jsonl".to_owned(),
                    None,
                );
            } else if !b.path.ends_with(".jsonl") {
                c.warn(
                    &bp.key("path"),
                    format!(
                        "`{}` does not end in .jsonl: beads keeps issues in .beads/issues.jsonl",
                        b.path
                    ),
                    None,
                );
            }
            let ok = !b.prefix.is_empty()
                && b.prefix
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
                && !b.prefix.starts_with('-')
                && !b.prefix.ends_with('-');
            if !ok {
                c.error(
                    &bp.key("prefix"),
                    format!("`{}` is not a beads issue prefix: use lowercase letters, digits and `-` (not at the ends), without the trailing `-` of ids", b.prefix),
                    Some("e.g. prefix: eng".to_owned()),
                );
            }
        }
    }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
fn env_name(c: &mut Checker<'_>, at: &FieldPath, name: &str) {
    let ok = name
        .chars()
        .next()
        .is_some_and(|ch| ch.is_ascii_alphabetic() || ch == '_')
        && name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if !ok {
        let help = if name.starts_with("http") {
            Some("write the URL into an environment variable and give its name here: the URL is a secret".to_owned())
        } else {
            None
        };
        c.error(
            at,
            format!("`{name}` is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)"),
            help,
        );
    }
}

/// A URL written in the manifest: http(s), no credentials, not a Slack webhook (a secret).
fn literal_url(c: &mut Checker<'_>, at: &FieldPath, url: &str) {
    let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    else {
        c.error(at, format!("`{url}` is not an http(s) URL"), None);
        return;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        c.error(at, format!("`{url}` has no host"), None);
    } else if authority.contains('@') {
        c.error(
            at,
            "the URL holds credentials (user:password@): secrets never go in a manifest".to_owned(),
            Some("put the URL in an environment variable and use urlEnv".to_owned()),
        );
    } else if authority.eq_ignore_ascii_case("hooks.slack.com") {
        c.error(
            at,
            "a Slack incoming-webhook URL is a secret (whoever has it can post)".to_owned(),
            Some("use a slack target with webhookUrlEnv".to_owned()),
        );
    } else if rest.contains('?') {
        c.warn(
            at,
            "the URL has a query string: if it carries a token, that token is now in git"
                .to_owned(),
            Some("put the URL in an environment variable and use urlEnv".to_owned()),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn doc(spec: &str) -> String {
        format!(
            "apiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {{name: oncall}}\nspec:\n{spec}"
        )
    }

    /// `(line, message)` of every error.
    fn errors(spec: &str) -> Vec<(usize, String)> {
        match crate::load_str(Path::new("routes.yaml"), &doc(spec)) {
            Ok(_) => vec![],
            Err(e) => e
                .diagnostics
                .iter()
                .map(|d| (d.line, d.message.clone()))
                .collect(),
        }
    }

    #[test]
    fn a_full_route_loads() {
        let set = crate::load_str(
            Path::new("routes.yaml"),
            &doc("  match: {minSeverity: high, kinds: [incident, escalation], apps: [lowendinsight]}\n  targets:\n    - pagerduty: {routingKeyEnv: LEI_PD_KEY}\n    - slack: {webhookUrlEnv: LEI_SLACK_URL}\n    - webhook: {url: \"https://ops.example.com/hooks/opsctl\"}\n    - webhook: {urlEnv: OPS_HOOK}\n    - beads: {path: ../lei/.beads/issues.jsonl, prefix: lowendinsight}\n"),
        )
        .unwrap();
        let r = &set.alert_routes[0].spec;
        assert_eq!(r.targets.len(), 5);
        assert_eq!(r.matches.min_severity, Some(Severity::High));
        assert_eq!(
            r.targets.iter().map(Target::kind).collect::<Vec<_>>(),
            ["pagerduty", "slack", "webhook", "webhook", "beads"]
        );
        assert!(
            r.matches
                .matches("incident", Some("lowendinsight"), Severity::Critical)
        );
        assert!(
            !r.matches
                .matches("incident", Some("lowendinsight"), Severity::Medium)
        );
        assert!(
            !r.matches
                .matches("deploy", Some("lowendinsight"), Severity::Critical)
        );
        assert!(
            !r.matches
                .matches("incident", Some("other"), Severity::Critical)
        );
        assert!(!r.matches.matches("incident", None, Severity::Critical));
        assert!(RouteMatch::default().matches("check", None, Severity::Info));
    }

    #[test]
    fn mistakes_are_errors_at_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "  match: {kinds: [incidnet]}\n  targets: [{webhook: {urlEnv: H}}]\n",
                5,
                "unknown record kind `incidnet`",
            ),
            (
                "  targets:\n    - {}\n",
                6,
                "exactly one of webhook, slack, pagerduty, beads (this one names 0)",
            ),
            (
                "  targets:\n    - {slack: {webhookUrlEnv: A}, pagerduty: {routingKeyEnv: B}}\n",
                6,
                "(this one names 2)",
            ),
            (
                "  targets:\n    - slack: {webhookUrlEnv: \"https://hooks.slack.com/services/T/B/x\"}\n",
                6,
                "is not an environment variable name",
            ),
            (
                "  targets:\n    - webhook: {url: \"https://u:pw@hooks.example.com/x\"}\n",
                6,
                "holds credentials",
            ),
            (
                "  targets:\n    - webhook: {url: \"https://hooks.slack.com/services/T/B/x\"}\n",
                6,
                "Slack incoming-webhook URL is a secret",
            ),
            (
                "  targets:\n    - webhook: {url: \"ftp://x\"}\n",
                6,
                "is not an http(s) URL",
            ),
            ("  targets:\n    - webhook: {}\n", 6, "no url"),
            (
                "  targets:\n    - webhook: {url: \"https://a.example\", urlEnv: A}\n",
                6,
                "both url and urlEnv",
            ),
            (
                "  targets:\n    - beads: {path: x/.beads/issues.jsonl, prefix: Eng-}\n",
                6,
                "not a beads issue prefix",
            ),
            (
                "  targets:\n    - pagerduty: {routingKey: abc}\n",
                6,
                "routingKey",
            ),
            (
                "  match: {minSeverity: urgent}\n  targets: [{webhook: {urlEnv: H}}]\n",
                5,
                "urgent",
            ),
        ];
        for (spec, line, want) in cases {
            let errs = errors(spec);
            assert!(
                errs.iter().any(|(l, m)| l == line && m.contains(want)),
                "{spec}: want line {line} `{want}`, got {errs:?}"
            );
        }
    }

    #[test]
    fn no_targets_is_a_warning_and_a_query_string_too() {
        let set = crate::load_str(Path::new("r.yaml"), &doc("  {}\n")).unwrap();
        assert!(
            set.warnings
                .iter()
                .any(|w| w.message.contains("no targets"))
        );
        let set = crate::load_str(
            Path::new("r.yaml"),
            &doc("  targets: [{webhook: {url: \"https://a.example/h?token=x\"}}]\n"),
        )
        .unwrap();
        assert!(
            set.warnings
                .iter()
                .any(|w| w.message.contains("query string"))
        );
    }

    #[test]
    fn severity_follows_beads_priority() {
        assert_eq!(Severity::from_priority(0), Severity::Critical);
        assert_eq!(Severity::from_priority(4), Severity::Info);
        assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
        assert_eq!(Severity::High.pagerduty(), "error");
    }
}
