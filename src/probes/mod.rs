//! Probes opsctl runs itself, from outside, as a user would (`spec.health.probes`,
//! DESIGN.md §3): today an HTTP GET ([`http`]).
//!
//! A probe answers [`ProbeResult::Passed`], [`ProbeResult::Failed`] (the endpoint answered,
//! and the answer is wrong: status, body) or [`ProbeResult::Unknown`] (no answer: DNS,
//! connect, TLS, timeout). Unknown is never counted as failing: "a timeout is degradation, not
//! health", and an observer that cannot see reports unknown (STYLE.md §3). [`with_retries`]
//! tries a probe a few times and settles on one result ([`settle`]).
//!
//! Used by the deploy's HealthCheck stage (`src/runtime/deploy/health.rs`), which decides what
//! a result means for the rollout. Nothing here records, logs or decides about rollbacks.

pub mod http;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The result of one probe (or of its retries, settled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ProbeResult {
    /// The endpoint answered as expected.
    Passed,
    /// The endpoint answered, wrongly.
    Failed {
        /// What was wrong: `status 500, expected 200`, `body does not contain "X"`.
        reason: String,
    },
    /// No answer to judge: the probe could not see. Never counted as failing.
    Unknown {
        /// Why: `timed out after 5s`, `connection refused`, `dns error: …`.
        reason: String,
    },
}

impl std::fmt::Display for ProbeResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeResult::Passed => f.write_str("passed"),
            ProbeResult::Failed { reason } => write!(f, "failed: {reason}"),
            ProbeResult::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// How often, and within how long, a probe is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts at most (at least 1 is made).
    pub attempts: u32,
    /// Pause between attempts.
    pub delay: Duration,
    /// No attempt starts once this much time has passed since the first one (the deploy's
    /// `waitTimeout`); an attempt in flight is bounded by its own timeout.
    pub budget: Duration,
}

impl Retry {
    /// Three attempts, 1 s apart, within `budget`: enough to ride out a proxy that is still
    /// settling after the last machine was replaced, short enough to keep a deploy quick.
    pub fn within(budget: Duration) -> Self {
        Self {
            attempts: 3,
            delay: Duration::from_secs(1),
            budget,
        }
    }
}

/// One result from several attempts, in order: `Passed` if the last attempt passed (attempts
/// stop at the first pass); else `Failed` if any attempt got a wrong answer (the endpoint was
/// seen to fail; its reason is the last failure's, with the count); else `Unknown` (nothing
/// was seen; the last reason). No attempts is `Unknown`.
pub fn settle(attempts: &[ProbeResult]) -> ProbeResult {
    match attempts.last() {
        None => ProbeResult::Unknown {
            reason: "not probed".into(),
        },
        Some(ProbeResult::Passed) => ProbeResult::Passed,
        Some(last) => {
            let failures: Vec<&String> = attempts
                .iter()
                .filter_map(|a| match a {
                    ProbeResult::Failed { reason } => Some(reason),
                    _ => None,
                })
                .collect();
            match failures.last() {
                Some(reason) => ProbeResult::Failed {
                    reason: format!(
                        "{reason} ({} of {} attempts failed)",
                        failures.len(),
                        attempts.len()
                    ),
                },
                None => last.clone(),
            }
        }
    }
}

/// Run `attempt` until it passes, `retry.attempts` are used, or `retry.budget` is spent;
/// returns the settled result and every attempt's. Sleeps on tokio's clock (tests pause it).
pub async fn with_retries<F, Fut>(retry: Retry, mut attempt: F) -> (ProbeResult, Vec<ProbeResult>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ProbeResult>,
{
    let start = tokio::time::Instant::now();
    let mut results = Vec::new();
    for i in 0..retry.attempts.max(1) {
        if i > 0 {
            if start.elapsed() + retry.delay >= retry.budget {
                break;
            }
            tokio::time::sleep(retry.delay).await;
        }
        let result = attempt().await;
        let passed = result == ProbeResult::Passed;
        results.push(result);
        if passed {
            break;
        }
    }
    (settle(&results), results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(r: &str) -> ProbeResult {
        ProbeResult::Failed { reason: r.into() }
    }

    fn unknown(r: &str) -> ProbeResult {
        ProbeResult::Unknown { reason: r.into() }
    }

    #[test]
    fn settling() {
        use ProbeResult::Passed;
        assert_eq!(settle(&[failed("500"), Passed]), Passed);
        assert_eq!(
            settle(&[failed("500"), failed("502"), failed("500")]),
            failed("500 (3 of 3 attempts failed)")
        );
        assert_eq!(
            settle(&[unknown("timeout"), failed("500"), unknown("timeout")]),
            failed("500 (1 of 3 attempts failed)")
        );
        assert_eq!(
            settle(&[unknown("refused"), unknown("timed out")]),
            unknown("timed out"),
            "an observer that cannot see reports unknown"
        );
        assert!(matches!(settle(&[]), ProbeResult::Unknown { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_a_pass_within_the_budget() {
        let mut calls = 0;
        let (r, all) = with_retries(Retry::within(Duration::from_secs(60)), || {
            calls += 1;
            let r = if calls < 2 {
                failed("503")
            } else {
                ProbeResult::Passed
            };
            async move { r }
        })
        .await;
        assert_eq!(r, ProbeResult::Passed);
        assert_eq!(all.len(), 2);

        let (r, all) = with_retries(Retry::within(Duration::from_secs(60)), || async {
            failed("500")
        })
        .await;
        assert_eq!(all.len(), 3);
        assert!(matches!(r, ProbeResult::Failed { .. }));

        // A budget shorter than the pause between attempts allows one attempt only.
        let (_, all) = with_retries(Retry::within(Duration::from_millis(500)), || async {
            unknown("timed out")
        })
        .await;
        assert_eq!(all.len(), 1);
    }
}
