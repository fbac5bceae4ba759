//! The `Runbook` kind: incident responses: which signal pattern, which classification, which
//! allowed steps (DESIGN.md §3; ADR risk table: responses come from runbooks only, never
//! freeform actions).
//!
//! A runbook holds ordered rules. The incident pipeline takes the first rule (of the runbooks
//! that apply to the app, in name order) whose `match` fits a signal; its `classification`,
//! `confidence` and `steps` then replace the built-in classification of that signal. Signals no
//! rule matches are classified by the built-in rules (`opsctl_controllers::incident`, documented
//! in docs/incidents.md). Steps come from a closed set ([`Step`]); the pipeline still decides
//! *whether* a step may run (a rollback needs a recent deploy and is done at most once per bad
//! release; scaling is always gated; `unknown` always escalates).
//!
//! ```yaml
//! apiVersion: opsctl.dev/v1alpha1
//! kind: Runbook
//! metadata: {name: lowendinsight}
//! spec:
//!   apps: [lowendinsight]
//!   recentDeployWindow: 1h
//!   rules:
//!     - name: redis-cache-down
//!       match: {signals: [redis_down]}
//!       classification: degradation
//!       confidence: 0.9
//!       steps: [diagnose, escalate]
//! ```

use serde::{Deserialize, Serialize};

use crate::DurationStr;
use crate::load::{Checker, field_path};

/// Signal kinds a rule may name: the snake-case names of `opsctl_controllers::signal::SignalKind`
/// (a test in the controllers crate keeps the two lists equal). `observer_blind` is absent on
/// purpose: opsctl's own blindness never opens an app incident, so no rule can answer it.
pub const SIGNAL_KINDS: &[&str] = &[
    "check_failing",
    "probe_failed",
    "machine_down",
    "crash_loop",
    "deploy_failed",
    "deploy_outage",
    "cert_expiring",
    "cert_not_ready",
    "postgres_connections",
    "postgres_down",
    "redis_down",
    "queue_growth",
    "cost_anomaly",
    "slo_burn",
    "log_pattern",
    "mixed_images",
];

/// `spec` of a `Runbook` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunbookSpec {
    /// Fly apps it applies to; empty (the default) means every app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
    /// A deploy that started at most this long before an outage's first signal counts as
    /// "recent": the outage is answered with a rollback of it (default `1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_deploy_window: Option<DurationStr>,
    /// Rules, first match wins.
    #[serde(default)]
    pub rules: Vec<RunbookRule>,
}

/// Default of `recentDeployWindow`.
pub const DEFAULT_RECENT_DEPLOY_WINDOW: DurationStr = DurationStr::from_secs(3600);

/// One rule: a signal pattern and the answer to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunbookRule {
    /// A name for records and logs (unique within the runbook).
    pub name: String,
    /// Which signals it answers. Every list given must match (an empty list matches anything);
    /// at least one list must be given.
    #[serde(rename = "match")]
    pub matcher: RuleMatch,
    /// The class given to matching signals.
    pub classification: Classification,
    /// How sure the rule is, 0.0 to 1.0 (default 0.9). `noise` below 0.8 is escalated, not
    /// dropped.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Steps allowed, in order. `unknown` may only `diagnose` and `escalate`, and must
    /// `escalate`; `noise` may only `escalate`.
    #[serde(default)]
    pub steps: Vec<Step>,
}

fn default_confidence() -> f64 {
    0.9
}

/// The signal pattern of a rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleMatch {
    /// Signal kinds ([`SIGNAL_KINDS`]), any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<String>,
    /// Signal classes (`exit:1`, `status:503`, `timeout`), exact, any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Substrings of the signal's log lines or detail (case-sensitive), any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_patterns: Vec<String>,
}

/// Incident classes (ADR §2; cases README "Incident classes").
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Not a fault worth acting on (a child process restarted, health passing).
    Noise,
    /// Part of the service is impaired (one node of several, a cache down).
    Degradation,
    /// The service is down (every instance of a group).
    Outage,
    /// Not recognised: a human decides.
    Unknown,
}

impl Classification {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Noise => "noise",
            Self::Degradation => "degradation",
            Self::Outage => "outage",
            Self::Unknown => "unknown",
        }
    }
}

/// The closed set of response steps (ADR risk table: no freeform actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    /// Gather evidence: recent deploys, logs around the first signal, machine events.
    Diagnose,
    /// Roll back the recent deploy through the deploy pipeline (at most once per bad release).
    Rollback,
    /// Restart the affected machine, then verify it is `started` with checks passing.
    RestartMachine,
    /// Scale the app: always gated (DESIGN.md §6), so it becomes a request for approval.
    Scale,
    /// Hand it to a human (engineering escalation and notification).
    Escalate,
}

impl Step {
    /// camelCase name, as written in manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Diagnose => "diagnose",
            Self::Rollback => "rollback",
            Self::RestartMachine => "restartMachine",
            Self::Scale => "scale",
            Self::Escalate => "escalate",
        }
    }
}

/// Rules beyond types on one `Runbook` spec.
pub(crate) fn rules(c: &mut Checker<'_>, spec: &RunbookSpec) {
    if let Some(w) = spec.recent_deploy_window
        && w.get().is_zero()
    {
        c.error(
            &field_path(&["spec", "recentDeployWindow"]),
            "recentDeployWindow must be longer than 0s".into(),
            Some("write how long after a deploy an outage is blamed on it, e.g. `1h`".into()),
        );
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = field_path(&["spec", "rules"]).index(i);
        if !names.insert(rule.name.as_str()) {
            c.error(
                &at.key("name"),
                format!("rule name `{}` is used twice in this runbook", rule.name),
                Some("give every rule its own name".into()),
            );
        }
        let m = &rule.matcher;
        if m.signals.is_empty() && m.classes.is_empty() && m.log_patterns.is_empty() {
            c.error(
                &at.key("match"),
                "`match` is empty: this rule would answer every signal".into(),
                Some("name `signals`, `classes` or `logPatterns`".into()),
            );
        }
        for (j, s) in m.signals.iter().enumerate() {
            if s == "observer_blind" {
                c.error(
                    &at.key("match").key("signals").index(j),
                    "`observer_blind` cannot be matched: opsctl's own blindness never opens an app incident".into(),
                    Some("remove it; a blind observer is reported once as `monitoring path down`".into()),
                );
            } else if !SIGNAL_KINDS.contains(&s.as_str()) {
                c.error(
                    &at.key("match").key("signals").index(j),
                    format!("unknown signal kind `{s}`"),
                    Some(format!("expected one of: {}", SIGNAL_KINDS.join(", "))),
                );
            }
        }
        for (j, p) in m.log_patterns.iter().enumerate() {
            if p.trim().is_empty() {
                c.error(
                    &at.key("match").key("logPatterns").index(j),
                    "an empty log pattern matches every line".into(),
                    Some("write a substring of the log line, e.g. `Kernel pid terminated`".into()),
                );
            }
        }
        if !(0.0..=1.0).contains(&rule.confidence) || rule.confidence.is_nan() {
            c.error(
                &at.key("confidence"),
                format!("confidence {} is outside 0.0 to 1.0", rule.confidence),
                Some("write a fraction, e.g. 0.9".into()),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (j, s) in rule.steps.iter().enumerate() {
            let sp = at.key("steps").index(j);
            if !seen.insert(*s) {
                c.error(&sp, format!("step `{}` is listed twice", s.as_str()), None);
            }
            let allowed = match rule.classification {
                Classification::Unknown => matches!(s, Step::Diagnose | Step::Escalate),
                Classification::Noise => matches!(s, Step::Escalate),
                Classification::Degradation | Classification::Outage => true,
            };
            if !allowed {
                c.error(
                    &sp,
                    format!(
                        "step `{}` is not allowed for `{}`",
                        s.as_str(),
                        rule.classification.as_str()
                    ),
                    Some(match rule.classification {
                        Classification::Unknown => {
                            "an unknown incident is only diagnosed and escalated: a human decides"
                                .into()
                        }
                        _ => "noise is recorded, or escalated when unsure; it never acts".into(),
                    }),
                );
            }
        }
        if rule.classification == Classification::Unknown && !rule.steps.contains(&Step::Escalate) {
            c.error(
                &at.key("steps"),
                "an `unknown` rule must escalate".into(),
                Some("add `escalate` to steps".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load_str;

    fn load(spec: &str) -> Result<crate::ManifestSet, crate::LoadError> {
        let yaml = format!(
            "apiVersion: opsctl.dev/v1alpha1\nkind: Runbook\nmetadata: {{name: lei}}\nspec:\n{spec}"
        );
        load_str("runbook.yaml".as_ref(), &yaml)
    }

    #[test]
    fn a_runbook_loads_with_its_rules() {
        let set = load(
            "  apps: [lowendinsight]\n  recentDeployWindow: 30m\n  rules:\n    - name: redis\n      match: {signals: [redis_down]}\n      classification: degradation\n      steps: [diagnose, escalate]\n",
        )
        .unwrap();
        let rb = &set.runbooks[0].spec;
        assert_eq!(rb.apps, ["lowendinsight"]);
        assert_eq!(rb.recent_deploy_window.unwrap().get().as_secs(), 1800);
        assert_eq!(rb.rules[0].confidence, 0.9);
        assert_eq!(
            rb.rules[0].steps,
            [super::Step::Diagnose, super::Step::Escalate]
        );
    }

    #[test]
    fn bad_rules_are_located() {
        let e = load(
            "  rules:\n    - name: a\n      match: {signals: [redis_dwn, observer_blind]}\n      classification: unknown\n      confidence: 1.5\n      steps: [rollback]\n    - name: a\n      match: {}\n      classification: noise\n      steps: [restartMachine, escalate, escalate]\n",
        )
        .unwrap_err();
        let msgs: Vec<String> = e
            .diagnostics
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {} {}",
                    d.line,
                    d.field.clone().unwrap_or_default(),
                    d.message,
                    d.help.clone().unwrap_or_default()
                )
            })
            .collect();
        let all = msgs.join("\n");
        for want in [
            "7:spec.rules[0].match.signals[0] unknown signal kind `redis_dwn`",
            "spec.rules[0].match.signals[1] `observer_blind` cannot be matched",
            "9:spec.rules[0].confidence confidence 1.5 is outside",
            "spec.rules[0].steps[0] step `rollback` is not allowed for `unknown`",
            "spec.rules[0].steps an `unknown` rule must escalate",
            "spec.rules[1].name rule name `a` is used twice",
            "spec.rules[1].match `match` is empty",
            "spec.rules[1].steps[0] step `restartMachine` is not allowed for `noise`",
            "spec.rules[1].steps[2] step `escalate` is listed twice",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
    }

    #[test]
    fn unknown_steps_and_classes_are_type_errors() {
        let e = load(
            "  rules:\n    - name: a\n      match: {signals: [redis_down]}\n      classification: meh\n      steps: [reboot]\n",
        )
        .unwrap_err();
        assert!(!e.diagnostics.is_empty());
        assert!(e.diagnostics.iter().all(|d| d.line > 0), "{e:?}");
    }
}
