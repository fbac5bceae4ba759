//! What a pre-check found: one [`CheckResult`] per gate, in a [`PreCheckReport`] that the
//! deploy pipeline records and shows. Pure values: nothing here talks to GitHub or git.
//!
//! Every outcome carries a sentence for people ("check run `test` concluded failure"), so a
//! blocked deploy says which gate blocked it and why. A reason never contains a token: the
//! runner redacts the token from every reason before returning the report.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The gates of the `PreCheck` stage (DESIGN.md §5), in the order they are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckName {
    /// The commit's CI is green on GitHub (combined commit status and check runs).
    CiStatus,
    /// The commit is reachable from the release branch in the manifests checkout.
    ReleaseBranch,
    /// The manifest set (and the fly.toml it was imported from) loaded and validated. The
    /// caller loaded the set before asking, so this one is passed by construction; it is in
    /// the report for the record.
    ConfigValid,
}

impl CheckName {
    /// The snake_case name used in records and messages (`ci_status`).
    pub fn as_str(self) -> &'static str {
        match self {
            CheckName::CiStatus => "ci_status",
            CheckName::ReleaseBranch => "release_branch",
            CheckName::ConfigValid => "config_valid",
        }
    }
}

impl fmt::Display for CheckName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one gate came out. Only [`Outcome::Passed`] and [`Outcome::Skipped`] let a deploy
/// proceed; everything else blocks it ([`Outcome::blocks`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "snake_case")]
pub enum Outcome {
    /// The gate holds; the text says what was seen ("3 check runs and 1 status passed").
    Passed(String),
    /// The gate is not configured in `spec.deploy.preCheck`, so it did not run. Not a pass:
    /// recorded as such so that nobody reads "CI was green" into a deploy that never asked.
    Skipped(String),
    /// The gate does not hold: a check failed, the commit is not on the branch, or CI was
    /// still pending when the timeout ran out.
    Failed(String),
    /// CI was still running when the runner stopped looking (opsctl was asked to stop, or
    /// another gate had already failed so waiting would change nothing).
    Pending(String),
    /// The gate could not be evaluated: GitHub unreachable, 5xx, rate-limited, refused the
    /// token, or git could not answer. Blocks the deploy: an unknown is never a pass.
    Unknown(String),
}

impl Outcome {
    /// True when this outcome stops the deploy.
    pub fn blocks(&self) -> bool {
        !matches!(self, Outcome::Passed(_) | Outcome::Skipped(_))
    }

    /// The sentence carried by the outcome.
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Passed(r)
            | Outcome::Skipped(r)
            | Outcome::Failed(r)
            | Outcome::Pending(r)
            | Outcome::Unknown(r) => r,
        }
    }

    /// `passed`, `skipped`, `failed`, `pending` or `unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Passed(_) => "passed",
            Outcome::Skipped(_) => "skipped",
            Outcome::Failed(_) => "failed",
            Outcome::Pending(_) => "pending",
            Outcome::Unknown(_) => "unknown",
        }
    }

    fn reason_mut(&mut self) -> &mut String {
        match self {
            Outcome::Passed(r)
            | Outcome::Skipped(r)
            | Outcome::Failed(r)
            | Outcome::Pending(r)
            | Outcome::Unknown(r) => r,
        }
    }
}

/// One gate and how it came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Which gate.
    pub check: CheckName,
    /// How it came out, with the reason.
    #[serde(flatten)]
    pub outcome: Outcome,
}

impl fmt::Display for CheckResult {
    /// `ci_status failed: check run `test` concluded failure`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.check,
            self.outcome.kind(),
            self.outcome.reason()
        )
    }
}

/// The result of the `PreCheck` stage for one commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreCheckReport {
    /// The commit that was checked (full SHA, as given).
    pub commit: String,
    /// When the pre-check started, UTC, from the injected clock.
    pub started_at: DateTime<Utc>,
    /// When it finished, UTC, from the injected clock.
    pub finished_at: DateTime<Utc>,
    /// Every gate, in [`CheckName`] order: `ci_status`, `release_branch`, `config_valid`.
    pub checks: Vec<CheckResult>,
}

impl PreCheckReport {
    /// True when no gate blocks: the deploy may go on to `Drain`.
    pub fn passed(&self) -> bool {
        !self.checks.iter().any(|c| c.outcome.blocks())
    }

    /// The gates that block the deploy, in report order. Empty when [`Self::passed`].
    pub fn blocking(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.outcome.blocks())
    }

    /// The result of one gate.
    pub fn get(&self, check: CheckName) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == check)
    }

    /// Replace every occurrence of `secret`'s value in the reasons by `[redacted]`. The runner
    /// calls this with the GitHub token before handing the report out; nothing it builds
    /// should contain the token, and this makes sure of it.
    pub(crate) fn redact(&mut self, secret: &Secret) {
        if secret.is_empty() {
            return;
        }
        for check in &mut self.checks {
            let reason = check.outcome.reason_mut();
            if reason.contains(secret.expose()) {
                *reason = reason.replace(secret.expose(), "[redacted]");
            }
        }
    }
}

impl fmt::Display for PreCheckReport {
    /// One line: `pre-check passed for abc1234` or `pre-check blocked abc1234: ci_status
    /// failed: …; release_branch unknown: …`, naming every blocking gate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.commit.get(..7).unwrap_or(&self.commit);
        if self.passed() {
            return write!(f, "pre-check passed for {short}");
        }
        write!(f, "pre-check blocked {short}: ")?;
        for (i, check) in self.blocking().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{check}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcomes: [Outcome; 3]) -> PreCheckReport {
        let [ci, branch, config] = outcomes;
        let at = DateTime::from_timestamp(0, 0).unwrap_or_default();
        PreCheckReport {
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            started_at: at,
            finished_at: at,
            checks: vec![
                CheckResult {
                    check: CheckName::CiStatus,
                    outcome: ci,
                },
                CheckResult {
                    check: CheckName::ReleaseBranch,
                    outcome: branch,
                },
                CheckResult {
                    check: CheckName::ConfigValid,
                    outcome: config,
                },
            ],
        }
    }

    #[test]
    fn skipped_and_passed_let_the_deploy_go_on() {
        let r = report([
            Outcome::Skipped("no ci".into()),
            Outcome::Passed("on main".into()),
            Outcome::Passed("loaded".into()),
        ]);
        assert!(r.passed());
        assert_eq!(r.to_string(), "pre-check passed for 0123456");
    }

    #[test]
    fn display_names_every_blocking_gate() {
        let r = report([
            Outcome::Unknown("GitHub answered 503".into()),
            Outcome::Failed("not on main".into()),
            Outcome::Passed("loaded".into()),
        ]);
        assert!(!r.passed());
        assert_eq!(
            r.to_string(),
            "pre-check blocked 0123456: ci_status unknown: GitHub answered 503; \
             release_branch failed: not on main"
        );
    }

    #[test]
    fn serialises_with_outcome_and_reason_beside_the_check() {
        let r = report([
            Outcome::Pending("running".into()),
            Outcome::Skipped("none".into()),
            Outcome::Passed("loaded".into()),
        ]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["checks"][0],
            serde_json::json!({"check": "ci_status", "outcome": "pending", "reason": "running"})
        );
        let back: PreCheckReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn redact_removes_the_secret_from_reasons() {
        let mut r = report([
            Outcome::Unknown("GitHub said: bad token ghp_s3cret".into()),
            Outcome::Skipped("none".into()),
            Outcome::Passed("loaded".into()),
        ]);
        r.redact(&Secret::new("ghp_s3cret"));
        assert_eq!(
            r.checks[0].outcome.reason(),
            "GitHub said: bad token [redacted]"
        );
    }
}
