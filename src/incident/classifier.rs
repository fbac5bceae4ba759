//! Classifiers behind one interface: the rule classifier (runbook rules, then the built-in
//! rules; the default) and the optional LLM classifier (the ADR's judgment step), off unless
//! configured.
//!
//! The LLM classifier speaks the OpenAI-compatible chat API (`POST {base}/v1/chat/completions`
//! with `response_format: {"type": "json_object"}`). Its prompt holds the runbook rules, the
//! signal and the evidence, with URLs' credentials and `password=`/`token=`/`secret=`/`key=`
//! values removed. Its answer must be one JSON object `{"classification":
//! "noise|degradation|outage|unknown", "confidence": 0..1, "reason": "snake_case"}`; anything
//! else, a timeout or an HTTP error falls back to the rules **and escalates**. The cost of each
//! call is computed from the answer's `usage` (prompt/completion tokens × the configured prices)
//! and charged against the incident's budget (ADR §4: $2.00 per incident); with less than one
//! call's worth left, the rules decide. Safety: the LLM can make a verdict more cautious, never
//! more destructive — an `outage` the rules do not also see gets only `diagnose` and `escalate`
//! (no automatic rollback or restart on a model's word). A runbook rule that matches decides
//! without asking the model.

use std::time::Duration;

use opsctl_controllers::incident::Classification;
use opsctl_controllers::incident::Step;
use opsctl_controllers::incident::classify::{
    Evidence, Verdict, builtin, classify, default_steps, rule_matches, rules_for,
};
use opsctl_controllers::signal::Signal;
use opsctl_crds::kinds::RunbookSpec;
use serde::Deserialize;
use serde_json::json;

use super::BoxFuture;
use crate::secret::Secret;

/// Budget cap per incident for judgment calls, in US dollars (ADR §4 / DESIGN.md §6).
pub const INCIDENT_BUDGET_USD: f64 = 2.00;

/// A classification and what it cost.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The verdict.
    pub verdict: Verdict,
    /// Dollars spent on this classification (0 for rules).
    pub cost_usd: f64,
    /// Set when the judgment step failed and the rules decided: the incident must be escalated
    /// with this reason.
    pub escalate: Option<String>,
}

/// Turns a signal and its evidence into a verdict.
pub trait Classifier: Send + Sync {
    /// Classify; `budget_left_usd` is what the incident may still spend.
    fn classify<'a>(
        &'a self,
        signal: &'a Signal,
        evidence: &'a Evidence,
        runbooks: &'a [(String, RunbookSpec)],
        budget_left_usd: f64,
    ) -> BoxFuture<'a, Classified>;
}

/// Runbook rules, then the built-in rules (`opsctl_controllers::incident::classify`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RuleClassifier;

impl Classifier for RuleClassifier {
    fn classify<'a>(
        &'a self,
        signal: &'a Signal,
        evidence: &'a Evidence,
        runbooks: &'a [(String, RunbookSpec)],
        _budget: f64,
    ) -> BoxFuture<'a, Classified> {
        Box::pin(async move {
            Classified {
                verdict: classify(signal, evidence, runbooks),
                cost_usd: 0.0,
                escalate: None,
            }
        })
    }
}

/// Settings of the LLM classifier.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// Base URL of an OpenAI-compatible API (`https://api.openai.com`, a local server…);
    /// `/v1/chat/completions` is appended.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Bearer token, if the endpoint needs one (never logged).
    pub api_key: Option<Secret>,
    /// Longest wait for an answer.
    pub timeout: Duration,
    /// US dollars per million prompt tokens.
    pub usd_per_mtok_prompt: f64,
    /// US dollars per million completion tokens.
    pub usd_per_mtok_completion: f64,
    /// Most completion tokens asked for (bounds the cost of one call).
    pub max_tokens: u32,
}

/// The LLM classifier.
pub struct LlmClassifier {
    config: LlmConfig,
    http: reqwest::Client,
}

impl LlmClassifier {
    /// A classifier for `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built (TLS backend).
    pub fn new(config: LlmConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Self { config, http })
    }

    /// The most one call can cost (a full prompt budget is not known ahead, so this assumes
    /// the completion limit plus 8k prompt tokens).
    fn worst_call_usd(&self) -> f64 {
        (8000.0 * self.config.usd_per_mtok_prompt
            + f64::from(self.config.max_tokens) * self.config.usd_per_mtok_completion)
            / 1_000_000.0
    }

    async fn ask(
        &self,
        signal: &Signal,
        evidence: &Evidence,
        runbooks: &[(String, RunbookSpec)],
    ) -> Result<(Answer, f64), (String, f64)> {
        let body = json!({
            "model": self.config.model,
            "temperature": 0.0,
            "max_tokens": self.config.max_tokens,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt(signal, evidence, runbooks)},
            ],
        });
        let url = format!(
            "{}/v1/chat/completions",
            self.config.base_url.trim_end_matches('/')
        );
        let mut req = self.http.post(url).json(&body);
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| (format!("llm_unavailable: {}", kind_of(&e)), 0.0))?;
        let status = resp.status();
        if !status.is_success() {
            return Err((format!("llm_unavailable: HTTP {}", status.as_u16()), 0.0));
        }
        let chat: ChatResponse = resp
            .json()
            .await
            .map_err(|_| ("llm_invalid_answer: not a chat completion".to_owned(), 0.0))?;
        let cost = chat.usage.as_ref().map_or(self.worst_call_usd(), |u| {
            (u.prompt_tokens as f64 * self.config.usd_per_mtok_prompt
                + u.completion_tokens as f64 * self.config.usd_per_mtok_completion)
                / 1_000_000.0
        });
        let content = chat
            .choices
            .first()
            .map(|c| c.message.content.as_str())
            .unwrap_or_default();
        parse_answer(content)
            .map(|a| (a, cost))
            .map_err(|why| (format!("llm_invalid_answer: {why}"), cost))
    }
}

impl Classifier for LlmClassifier {
    fn classify<'a>(
        &'a self,
        signal: &'a Signal,
        evidence: &'a Evidence,
        runbooks: &'a [(String, RunbookSpec)],
        budget_left_usd: f64,
    ) -> BoxFuture<'a, Classified> {
        Box::pin(async move {
            let rules = classify(signal, evidence, runbooks);
            if rules_for(runbooks, signal.app.as_deref())
                .iter()
                .any(|(_, r)| rule_matches(r, signal, &evidence.logs))
            {
                return Classified {
                    verdict: rules,
                    cost_usd: 0.0,
                    escalate: None,
                };
            }
            if budget_left_usd < self.worst_call_usd() {
                return Classified {
                    verdict: rules,
                    cost_usd: 0.0,
                    escalate: Some("llm_budget_exhausted".into()),
                };
            }
            match self.ask(signal, evidence, runbooks).await {
                Ok((answer, cost)) => {
                    let base = builtin(signal, evidence);
                    let steps = if answer.classification == Classification::Outage
                        && base.class != Classification::Outage
                    {
                        vec![Step::Diagnose, Step::Escalate]
                    } else {
                        default_steps(answer.classification, &answer.reason)
                    };
                    Classified {
                        verdict: Verdict {
                            class: answer.classification,
                            confidence: answer.confidence,
                            reason: answer.reason,
                            rule: Some("llm".into()),
                            steps,
                        },
                        cost_usd: cost,
                        escalate: None,
                    }
                }
                Err((why, cost)) => {
                    tracing::warn!(reason = %why, "judgment step failed; the rules decide and the incident is escalated");
                    Classified {
                        verdict: rules,
                        cost_usd: cost,
                        escalate: Some(why),
                    }
                }
            }
        })
    }
}

fn kind_of(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "transport"
    }
}

const SYSTEM_PROMPT: &str = "You classify production incidents of apps on Fly.io. Answer with one JSON object and nothing else: {\"classification\": \"noise\"|\"degradation\"|\"outage\"|\"unknown\", \"confidence\": number between 0 and 1, \"reason\": short snake_case code}. outage = the service is down for users (every instance of a group down); degradation = partly impaired (one node of several, a cache or dependency down while HTTP works); noise = nothing for a human (a child process restarted, health passing); unknown = you cannot tell. Never guess: when the evidence is thin, say unknown.";

/// The user prompt: runbook rules, the signal, the evidence; secrets removed.
fn prompt(signal: &Signal, evidence: &Evidence, runbooks: &[(String, RunbookSpec)]) -> String {
    let rules: Vec<String> = rules_for(runbooks, signal.app.as_deref())
        .iter()
        .map(|(b, r)| {
            format!(
                "- {b}/{}: signals {:?} classes {:?} logPatterns {:?} -> {} ({})",
                r.name,
                r.matcher.signals,
                r.matcher.classes,
                r.matcher.log_patterns,
                r.classification.as_str(),
                r.confidence
            )
        })
        .collect();
    let logs: Vec<String> = evidence
        .logs
        .iter()
        .rev()
        .take(50)
        .rev()
        .map(|l| scrub(l))
        .collect();
    format!(
        "Runbook rules (none matched):\n{}\n\nSignal: app {}, kind {}, class {}, release {}, machine {}, source {}, detail: {}\n\nEvidence: {} machines expected, {} down; external probes {}; {} occurrences in the last hour.\nLog lines of the machine around the signal (oldest first):\n{}",
        if rules.is_empty() {
            "- none".to_owned()
        } else {
            rules.join("\n")
        },
        signal.app.as_deref().unwrap_or("-"),
        signal.kind.as_str(),
        scrub(&signal.class),
        signal.release.map_or("-".to_owned(), |r| r.to_string()),
        signal.machine.as_deref().unwrap_or("-"),
        signal.source,
        scrub(&signal.detail),
        evidence.machines_expected,
        evidence
            .machines_down
            .map_or("unknown".to_owned(), |d| d.to_string()),
        match evidence.probes_passing {
            Some(true) => "passing",
            Some(false) => "failing",
            None => "unknown",
        },
        evidence.occurrences_last_hour,
        if logs.is_empty() {
            "(none)".to_owned()
        } else {
            logs.join("\n")
        },
    )
}

/// `text` with URL credentials and `password=`/`token=`/`secret=`/`key=` values removed.
pub fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if let Some(i) = word.find("://")
                && let Some(at) = word[i + 3..].find('@')
            {
                return format!("{}://[redacted]@{}", &word[..i], &word[i + 3 + at + 1..]);
            }
            let lower = word.to_ascii_lowercase();
            for k in ["password=", "token=", "secret=", "key=", "authorization:"] {
                if let Some(p) = lower.find(k) {
                    return format!("{}[redacted]", &word[..p + k.len()]);
                }
            }
            word.to_owned()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: String,
}

#[derive(Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The answer schema.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    classification: Classification,
    confidence: f64,
    reason: String,
}

/// Validate the model's text against the answer schema.
fn parse_answer(content: &str) -> Result<Answer, String> {
    let a: Answer = serde_json::from_str(content.trim())
        .map_err(|e| format!("does not match the answer schema ({e})"))?;
    if !(0.0..=1.0).contains(&a.confidence) {
        return Err(format!("confidence {} outside 0..1", a.confidence));
    }
    let code_ok = !a.reason.is_empty()
        && a.reason.len() <= 64
        && a.reason
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !code_ok {
        return Err("reason is not a snake_case code of at most 64 characters".into());
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_validated() {
        assert!(
            parse_answer(r#"{"classification":"outage","confidence":0.9,"reason":"all_down"}"#)
                .is_ok()
        );
        for bad in [
            "outage",
            r#"{"classification":"catastrophe","confidence":0.9,"reason":"x"}"#,
            r#"{"classification":"outage","confidence":1.5,"reason":"x"}"#,
            r#"{"classification":"outage","confidence":0.5,"reason":"Rollback now!"}"#,
            r#"{"classification":"outage","confidence":0.5,"reason":"x","action":"rm -rf"}"#,
        ] {
            assert!(parse_answer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prompts_carry_no_credentials() {
        let s = scrub("connect redis://default:hunter2@cache.internal:6379 failed token=abc123 ok");
        assert!(!s.contains("hunter2") && !s.contains("abc123"), "{s}");
        assert!(s.contains("cache.internal:6379"), "{s}");
    }
}
