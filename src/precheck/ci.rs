//! The `ci_status` gate: is the commit's CI green on GitHub? [`judge`] decides from one
//! observation (pure, unit-tested below); [`CiWait`] observes, and while CI is pending polls
//! again with exponential backoff until the manifest's `timeout`.
//!
//! The rules (docs/precheck.md has the table):
//! - a commit status counts as passed when `success`, pending when `pending`, failed when
//!   `failure` or `error` (GitHub's four states);
//! - a check run is pending until `completed`; then `success`, `neutral` and `skipped` pass,
//!   and every other conclusion (`failure`, `cancelled`, `timed_out`, `action_required`,
//!   `stale`, or one GitHub adds later) fails;
//! - with `required` empty, every status and check run counts and at least one must exist
//!   (no CI result at all is pending: CI may not have started); with `required` set, only
//!   those names count, each must be reported, and the others are ignored;
//! - any counted failure fails the gate at once (a red check does not turn green by waiting);
//!   otherwise anything pending waits; otherwise the gate passes.
//!
//! GitHub unreachable or 5xx is retried a few times ([`super::Polling::attempts`]), then the
//! gate is unknown; rate limits and refusals (401/403/404/422) are unknown at once.

use std::collections::BTreeSet;
use std::time::Duration;

use opsctl_crds::DurationStr;
use opsctl_crds::flyapp::CiCheckName;
use tokio::sync::watch;

use super::Polling;
use super::github::{CheckRun, CommitStatus, GitHub, Observation};
use super::report::Outcome;
use crate::runtime::clock::Clock;

/// What one observation says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every counted result passed; what passed.
    Green(String),
    /// A counted result failed; which and how.
    Red(String),
    /// Nothing failed yet, something is pending or missing; what.
    Waiting(String),
}

/// One CI result reduced to what the gate needs.
#[derive(Debug)]
struct Item {
    /// Where it came from.
    source: Source,
    /// `check run `test`` or `status `ci/lint``.
    label: String,
    name: String,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    CheckRun,
    Status,
}

#[derive(Debug)]
enum State {
    Passed,
    Pending(String),
    Failed(String),
}

fn link(url: Option<&String>) -> String {
    url.map(|u| format!(" ({u})")).unwrap_or_default()
}

fn status_item(s: &CommitStatus) -> Item {
    let detail = s
        .description
        .as_deref()
        .filter(|d| !d.is_empty())
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    let url = link(s.target_url.as_ref());
    let state = match s.state.as_str() {
        "success" => State::Passed,
        "pending" => State::Pending(format!("is pending{detail}")),
        "failure" | "error" => State::Failed(format!("is {}{detail}{url}", s.state)),
        other => State::Failed(format!(
            "reported state `{other}`, which opsctl does not count as passing{url}"
        )),
    };
    Item {
        source: Source::Status,
        label: format!("status `{}`", s.context),
        name: s.context.clone(),
        state,
    }
}

fn check_run_item(r: &CheckRun) -> Item {
    let url = link(r.html_url.as_ref());
    let state = match (r.status.as_str(), r.conclusion.as_deref()) {
        ("completed", Some("success" | "neutral" | "skipped")) => State::Passed,
        (
            "completed",
            Some(c @ ("failure" | "cancelled" | "timed_out" | "action_required" | "stale")),
        ) => State::Failed(format!("concluded {c}{url}")),
        ("completed", Some(other)) => State::Failed(format!(
            "concluded `{other}`, which opsctl does not count as passing{url}"
        )),
        ("completed", None) => State::Failed(format!("completed without a conclusion{url}")),
        (status, _) => State::Pending(format!("is {status}")),
    };
    Item {
        source: Source::CheckRun,
        label: format!("check run `{}`", r.name),
        name: r.name.clone(),
        state,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Judge one observation against `required` (empty: everything counts). Pure.
pub(crate) fn judge(obs: &Observation, required: &[CiCheckName]) -> Verdict {
    let items: Vec<Item> = obs
        .check_runs
        .iter()
        .map(check_run_item)
        .chain(obs.statuses.iter().map(status_item))
        .collect();
    let required: BTreeSet<&str> = required.iter().map(CiCheckName::as_str).collect();
    let counts = |item: &Item| required.is_empty() || required.contains(item.name.as_str());

    let mut failed = Vec::new();
    let mut pending = Vec::new();
    let mut ignored = Vec::new();
    let (mut runs, mut statuses) = (0, 0);
    for item in &items {
        if !counts(item) {
            if let State::Failed(how) = &item.state {
                ignored.push(format!("{} {how}", item.label));
            }
            continue;
        }
        match &item.state {
            State::Passed if item.source == Source::CheckRun => runs += 1,
            State::Passed => statuses += 1,
            State::Pending(what) => pending.push(format!("{} {what}", item.label)),
            State::Failed(how) => failed.push(format!("{} {how}", item.label)),
        }
    }
    for name in &required {
        if !items.iter().any(|i| i.name == *name) {
            pending.push(format!("required check `{name}` has not been reported"));
        }
    }

    if !failed.is_empty() {
        return Verdict::Red(failed.join("; "));
    }
    if !pending.is_empty() {
        return Verdict::Waiting(pending.join("; "));
    }
    if items.is_empty() {
        return Verdict::Waiting(
            "no commit status or check run has been reported for the commit".to_owned(),
        );
    }
    let mut summary = format!(
        "{} and {} passed",
        plural(runs, "check run", "check runs"),
        plural(statuses, "commit status", "commit statuses")
    );
    if !required.is_empty() {
        let names: Vec<&str> = required.iter().copied().collect();
        summary.push_str(&format!(" (required: {})", names.join(", ")));
    }
    if !ignored.is_empty() {
        summary.push_str(&format!(
            "; not required, so ignored: {}",
            ignored.join("; ")
        ));
    }
    Verdict::Green(summary)
}

/// How long [`CiWait::run`] may wait for pending CI.
#[derive(Debug, Clone)]
pub(crate) enum Patience {
    /// Poll until this long after the start.
    UpTo(Duration),
    /// Look once; if pending, say so with this reason instead of waiting.
    Once(String),
}

/// Observes a commit's CI until it is decided, the patience runs out, or opsctl stops.
pub(crate) struct CiWait<'a> {
    pub github: GitHub<'a>,
    pub clock: &'a dyn Clock,
    pub stop: watch::Receiver<bool>,
    pub polling: &'a Polling,
}

impl CiWait<'_> {
    /// The gate's outcome for `sha`.
    pub async fn run(mut self, sha: &str, patience: Patience) -> Outcome {
        let started = self.clock.now();
        let timeout = match &patience {
            Patience::UpTo(t) => *t,
            Patience::Once(_) => Duration::ZERO,
        };
        let deadline =
            started + chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
        let mut delay = self.polling.first;
        let mut transient_failures = 0u32;
        let mut pending: Option<String> = None;
        loop {
            if *self.stop.borrow() {
                return stopped(pending);
            }
            let cap = match self.github.observe(sha).await {
                Ok(obs) => {
                    transient_failures = 0;
                    match judge(&obs, &self.github.ci.required) {
                        Verdict::Green(what) => return Outcome::Passed(what),
                        Verdict::Red(what) => return Outcome::Failed(what),
                        Verdict::Waiting(what) => {
                            if let Patience::Once(why) = &patience {
                                return Outcome::Pending(format!("{what}; not waited for: {why}"));
                            }
                            let left = (deadline - self.clock.now()).to_std().unwrap_or_default();
                            if left.is_zero() {
                                return Outcome::Failed(format!(
                                    "CI still pending after {}: {what}",
                                    DurationStr(timeout)
                                ));
                            }
                            tracing::debug!(sha, "CI pending: {what}");
                            pending = Some(what);
                            Some(left)
                        }
                    }
                }
                Err(e) if e.is_transient() => {
                    transient_failures += 1;
                    if transient_failures >= self.polling.attempts.max(1) {
                        return Outcome::Unknown(format!(
                            "{e} (gave up after {})",
                            plural(transient_failures as usize, "attempt", "attempts")
                        ));
                    }
                    tracing::debug!(sha, error = %e, "GitHub CI read failed, retrying");
                    None
                }
                Err(e) => return Outcome::Unknown(e.to_string()),
            };
            let nap = cap.map_or(delay, |left| delay.min(left));
            if self.nap(nap).await {
                return stopped(pending);
            }
            delay = delay
                .saturating_mul(2)
                .min(self.polling.max.max(self.polling.first));
        }
    }

    /// Sleep `d`; true when a stop was requested meanwhile. A dropped stop sender is not a
    /// stop request.
    async fn nap(&mut self, d: Duration) -> bool {
        let stop = &mut self.stop;
        let stopped = async {
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = tokio::time::sleep(d) => false,
            () = stopped => true,
        }
    }
}

fn stopped(pending: Option<String>) -> Outcome {
    match pending {
        Some(what) => Outcome::Pending(format!(
            "opsctl was asked to stop while CI was pending: {what}"
        )),
        None => Outcome::Unknown("opsctl was asked to stop before CI could be read".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, status: &str, conclusion: Option<&str>) -> CheckRun {
        CheckRun {
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(Into::into),
            html_url: None,
        }
    }

    fn status(context: &str, state: &str) -> CommitStatus {
        CommitStatus {
            context: context.into(),
            state: state.into(),
            description: None,
            target_url: None,
        }
    }

    fn obs(check_runs: Vec<CheckRun>, statuses: Vec<CommitStatus>) -> Observation {
        Observation {
            statuses,
            check_runs,
        }
    }

    fn names(v: &[&str]) -> Vec<CiCheckName> {
        v.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn success_neutral_and_skipped_pass() {
        let o = obs(
            vec![
                run("a", "completed", Some("success")),
                run("b", "completed", Some("neutral")),
                run("c", "completed", Some("skipped")),
            ],
            vec![status("ci/x", "success")],
        );
        assert_eq!(
            judge(&o, &[]),
            Verdict::Green("3 check runs and 1 commit status passed".into())
        );
    }

    #[test]
    fn every_failing_conclusion_fails_and_is_named() {
        for c in [
            "failure",
            "cancelled",
            "timed_out",
            "action_required",
            "stale",
            "brand_new",
        ] {
            let o = obs(vec![run("test", "completed", Some(c))], vec![]);
            let Verdict::Red(why) = judge(&o, &[]) else {
                panic!("{c} must fail");
            };
            assert!(why.contains("check run `test`"), "{why}");
            assert!(why.contains(c), "{why}");
        }
    }

    #[test]
    fn status_failure_and_error_fail() {
        for s in ["failure", "error"] {
            let o = obs(vec![], vec![status("ci/lint", s)]);
            assert_eq!(
                judge(&o, &[]),
                Verdict::Red(format!("status `ci/lint` is {s}"))
            );
        }
    }

    #[test]
    fn a_failure_wins_over_pending() {
        let o = obs(
            vec![
                run("slow", "in_progress", None),
                run("test", "completed", Some("failure")),
            ],
            vec![],
        );
        assert!(matches!(judge(&o, &[]), Verdict::Red(_)));
    }

    #[test]
    fn queued_in_progress_and_pending_status_wait() {
        let o = obs(
            vec![run("build", "queued", None)],
            vec![status("ci/x", "pending")],
        );
        assert_eq!(
            judge(&o, &[]),
            Verdict::Waiting("check run `build` is queued; status `ci/x` is pending".into())
        );
    }

    #[test]
    fn nothing_reported_is_pending_not_green() {
        assert!(matches!(
            judge(&obs(vec![], vec![]), &[]),
            Verdict::Waiting(_)
        ));
    }

    #[test]
    fn required_subset_ignores_other_failures_but_says_so() {
        let o = obs(
            vec![
                run("test", "completed", Some("success")),
                run("lint", "completed", Some("failure")),
            ],
            vec![status("deploy-gate", "success")],
        );
        let Verdict::Green(why) = judge(&o, &names(&["test", "deploy-gate"])) else {
            panic!("required checks passed");
        };
        assert!(why.contains("required: deploy-gate, test"), "{why}");
        assert!(
            why.contains("ignored: check run `lint` concluded failure"),
            "{why}"
        );
    }

    #[test]
    fn a_required_check_not_reported_yet_waits() {
        let o = obs(vec![run("test", "completed", Some("success"))], vec![]);
        assert_eq!(
            judge(&o, &names(&["test", "e2e"])),
            Verdict::Waiting("required check `e2e` has not been reported".into())
        );
    }
}
