//! Rollouts: which machines to update in which order (the plan), when one updated machine
//! counts as healthy or failed (the verdict), and what a rollback restores.
//!
//! The runtime drives a rollout batch by batch: it records each step before taking it, updates
//! the batch's machines, then observes them and asks [`judge`] until every machine is
//! [`Verdict::Healthy`], one has [`Verdict::Failed`], or Fly cannot be seen
//! ([`Verdict::Blind`], which halts the rollout and never triggers a rollback).
//!
//! Sources: flyctl's rolling strategy and health rules (`../shared/fly-api/NOTES.md` §6.2–§6.4,
//! DESIGN.md §9), and the failure cases in `../shared/cases/README.md` (BUG-01: an exited
//! machine fails the step at once; BUG-14: at most one automatic rollback per bad release).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_crds::FlyApp;
use opsctl_crds::flyapp::{DeploySpec, MachineChecksRule, MaxUnavailable, Strategy};
use serde::{Deserialize, Serialize};

pub mod mixed;
pub mod phase;
pub mod recovery;
pub mod report;

use crate::diff::AppDiff;
use crate::observed::{CheckState, MachineState, ObservedApp, ObservedMachine};

/// An ordered rollout: batches run one after the other; the machines of a batch together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPlan {
    /// Fly app name.
    pub app: String,
    /// Strategy the plan follows.
    pub strategy: Strategy,
    /// Image every step deploys.
    pub image: String,
    /// Batches in order (rolling, immediate, and canary after its canaries).
    pub batches: Vec<Batch>,
    /// Canary only: one extra machine per process group, created from the group's first
    /// machine's config with the new image, judged, then destroyed, before the batches run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canaries: Vec<Canary>,
    /// Bluegreen only: every machine to replace (blue); green machines are created beside them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blue: Vec<MachineStep>,
    /// Machines of a mixed group already on `image` (BUG-08, [`mixed::peers`]): not updated,
    /// but leased with the rollout and rolled back with their group if `image` fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<MachineStep>,
}

/// A canary machine to create (flyctl canary, NOTES.md §6.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    /// Process group.
    pub group: String,
    /// Region: the primary region when the group runs there, else its first machine's.
    pub region: String,
    /// Machine whose config is the template.
    pub template: String,
}

impl RolloutPlan {
    /// Every step, in order.
    pub fn steps(&self) -> impl Iterator<Item = &MachineStep> {
        self.batches.iter().flat_map(|b| b.steps.iter())
    }

    /// Every existing machine the rollout changes (updated, or replaced by bluegreen).
    pub fn touches(&self) -> impl Iterator<Item = &MachineStep> {
        self.steps().chain(self.blue.iter())
    }

    /// True when nothing is to be updated.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty() && self.blue.is_empty()
    }
}

/// Machines updated together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// Steps of this batch.
    pub steps: Vec<MachineStep>,
}

/// Update one machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineStep {
    /// Machine id.
    pub machine: String,
    /// Process group.
    pub group: String,
    /// Region.
    pub region: String,
    /// Image before the update (what a rollback restores).
    pub from_image: String,
    /// Keep the machine stopped (it was not running; flyctl's `skip_launch`).
    pub skip_launch: bool,
    /// Wait for started + checks passing before the next batch.
    pub wait_healthy: bool,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The strategy is declared in the manifest but not implemented yet.
    #[error("strategy `{0:?}` is not implemented yet")]
    StrategyNotImplemented(Strategy),
    /// Bluegreen needs one image among the blue machines (flyctl refuses mixed versions).
    #[error(
        "bluegreen refused: the machines run several images ({0}); converge them first (rolling)"
    )]
    BlueGreenMixedImages(String),
    /// Bluegreen needs checks to know when green is healthy (flyctl requires one).
    #[error(
        "bluegreen refused: machine {0} has no health check; green could never be judged healthy"
    )]
    BlueGreenWithoutChecks(String),
}

/// How many machines of a group of `n` may be updated at once. A count is used as is (at
/// least 1); a fraction is `ceil(n × fraction)`, at least 1 (flyctl, NOTES.md §6.3).
pub fn batch_size(max: MaxUnavailable, n: usize) -> usize {
    let size = match max {
        MaxUnavailable::Count(c) => c as usize,
        MaxUnavailable::Fraction(f) => (n as f64 * f).ceil() as usize,
    };
    size.max(1)
}

/// The rollout for the machines that `diff` says drifted.
///
/// Rolling (flyctl, NOTES.md §6.3): per process group in name order, machines sorted by id;
/// running machines first, the first one alone ("spearhead"), then the rest in batches of
/// [`batch_size`]; machines not running last, updated with `skip_launch` and no wait, so a bad
/// image is caught before they are touched. A group with no running machine (autostopped)
/// gets its first machine started and verified, so every group is verified (BUG-07).
/// Immediate: one batch, no waits. Canary: one canary per group (see [`Canary`]), then as
/// rolling. Bluegreen: every drifted machine is blue; refused when the machines run several
/// images or a machine has no check (flyctl's rules, NOTES.md §6.6).
///
/// # Errors
/// [`PlanError`] when bluegreen's preconditions do not hold.
pub fn plan(
    app: &FlyApp,
    observed: &ObservedApp,
    diff: &AppDiff,
) -> Result<RolloutPlan, PlanError> {
    let strategy = app.spec.deploy.strategy;
    let drifted = diff.machines_to_update();
    let mut groups: BTreeMap<&str, Vec<&ObservedMachine>> = BTreeMap::new();
    for m in observed
        .managed()
        .filter(|m| drifted.contains(m.id.as_str()))
    {
        groups.entry(&m.group).or_default().push(m);
    }
    let mut batches = Vec::new();
    let mut canaries = Vec::new();
    let mut blue = Vec::new();
    match strategy {
        Strategy::Bluegreen => {
            let images: BTreeSet<&str> = observed.managed().map(|m| m.image.as_str()).collect();
            if images.len() > 1 {
                let list: Vec<&str> = images.into_iter().collect();
                return Err(PlanError::BlueGreenMixedImages(list.join(", ")));
            }
            for machines in groups.values_mut() {
                machines.sort_by(|a, b| a.id.cmp(&b.id));
                if let Some(m) = machines.iter().find(|m| m.configured_checks == 0) {
                    return Err(PlanError::BlueGreenWithoutChecks(m.id.clone()));
                }
                blue.extend(machines.iter().map(|m| step(m, m.state.is_running())));
            }
        }
        Strategy::Rolling | Strategy::Canary => {
            if strategy == Strategy::Canary {
                for (group, machines) in &groups {
                    let mut sorted = machines.clone();
                    sorted.sort_by(|a, b| a.id.cmp(&b.id));
                    let primary = app.spec.primary_region.as_deref();
                    let region = sorted
                        .iter()
                        .find(|m| Some(m.region.as_str()) == primary)
                        .or(sorted.first())
                        .map(|m| m.region.clone());
                    if let (Some(region), Some(first)) = (region, sorted.first()) {
                        canaries.push(Canary {
                            group: (*group).to_owned(),
                            region,
                            template: first.id.clone(),
                        });
                    }
                }
            }
            for machines in groups.values_mut() {
                machines.sort_by(|a, b| a.id.cmp(&b.id));
                let (warm, cold): (Vec<&ObservedMachine>, Vec<&ObservedMachine>) =
                    machines.iter().copied().partition(|m| m.state.is_running());
                let size = batch_size(app.spec.deploy.max_unavailable, warm.len());
                if let Some((first, rest)) = warm.split_first() {
                    batches.push(Batch {
                        steps: vec![step(first, true)],
                    });
                    for chunk in rest.chunks(size) {
                        batches.push(Batch {
                            steps: chunk.iter().map(|m| step(m, true)).collect(),
                        });
                    }
                }
                let mut cold = cold.as_slice();
                if warm.is_empty()
                    && let Some((first, rest)) = cold.split_first()
                {
                    // Nothing of this group runs (autostop, case BUG-07): start one machine
                    // on the new version so its checks are observed; a release is verified
                    // only when at least one machine per group passed them.
                    let verify = MachineStep {
                        skip_launch: false,
                        wait_healthy: true,
                        ..step(first, false)
                    };
                    batches.push(Batch {
                        steps: vec![verify],
                    });
                    cold = rest;
                }
                if !cold.is_empty() {
                    batches.push(Batch {
                        steps: cold.iter().map(|m| step(m, false)).collect(),
                    });
                }
            }
        }
        Strategy::Immediate => {
            let steps: Vec<MachineStep> = groups
                .values_mut()
                .flat_map(|ms| {
                    ms.sort_by(|a, b| a.id.cmp(&b.id));
                    ms.iter().map(|m| MachineStep {
                        wait_healthy: false,
                        ..step(m, false)
                    })
                })
                .collect();
            if !steps.is_empty() {
                batches.push(Batch { steps });
            }
        }
    }
    let peers = if strategy == Strategy::Bluegreen || (batches.is_empty() && blue.is_empty()) {
        vec![]
    } else {
        mixed::peers(&app.spec.image, observed, diff, &drifted)
    };
    Ok(RolloutPlan {
        app: diff.app.clone(),
        strategy,
        image: app.spec.image.clone(),
        batches,
        canaries,
        blue,
        peers,
    })
}

fn step(m: &ObservedMachine, warm: bool) -> MachineStep {
    MachineStep {
        machine: m.id.clone(),
        group: m.group.clone(),
        region: m.region.clone(),
        from_image: m.image.clone(),
        skip_launch: !m.state.is_running(),
        wait_healthy: warm,
    }
}

/// What the runtime remembers between observations of one updated machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watch {
    /// When the update was acknowledged by Fly (UTC).
    pub since: DateTime<Utc>,
    /// Since when a check has been critical without a break, if it is.
    pub critical_since: Option<DateTime<Utc>>,
    /// When the machine was last seen (UTC); `None` if never since the update.
    pub last_seen: Option<DateTime<Utc>>,
}

impl Watch {
    /// A watch starting at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            since: now,
            critical_since: None,
            last_seen: None,
        }
    }
}

/// The verdict on one updated machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Started, ≥ 1 check, all passing (or, with machine checks ignored, up for
    /// [`SMOKE_WINDOW`]).
    Healthy,
    /// Not decided yet; poll again.
    Waiting {
        /// What we are waiting for.
        reason: String,
    },
    /// The new version is bad.
    Failed(Failure),
    /// Fly could not be observed for the whole wait: unknown, never unhealthy. Halts the
    /// rollout; never triggers a rollback.
    Blind {
        /// Why.
        reason: String,
    },
}

/// Why an updated machine failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Failure {
    /// The process exited and Fly did not restart it (BUG-01). An unrequested exit with code
    /// 0 counts too: a service is meant to keep running.
    MachineExited {
        /// Exit code.
        exit_code: i32,
        /// OOM-killed.
        oom_killed: bool,
    },
    /// flyctl's crash-loop rule: newest exit not requested, restarting, restart count > 1,
    /// non-zero code.
    CrashLoop {
        /// Exit code.
        exit_code: i32,
        /// Restarts so far.
        restart_count: u32,
    },
    /// Checks stayed critical for `failAfter`.
    ChecksCritical {
        /// Names of the critical checks.
        checks: Vec<String>,
        /// Their last output, joined.
        output: String,
    },
    /// Fly put the machine in `failed`.
    MachineFailed,
    /// Not healthy within `waitTimeout`.
    Timeout {
        /// What we were still waiting for.
        waiting_for: String,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::MachineExited {
                exit_code,
                oom_killed,
            } => {
                write!(
                    f,
                    "machine exited with code {exit_code} (oom_killed: {oom_killed})"
                )
            }
            Failure::CrashLoop {
                exit_code,
                restart_count,
            } => write!(
                f,
                "the app appears to be crashing: exit code {exit_code}, {restart_count} restarts"
            ),
            Failure::ChecksCritical { checks, output } => {
                write!(f, "checks critical: {}", checks.join(", "))?;
                if !output.is_empty() {
                    write!(f, " ({output})")?;
                }
                Ok(())
            }
            Failure::MachineFailed => f.write_str("Fly marked the machine failed"),
            Failure::Timeout { waiting_for } => {
                write!(
                    f,
                    "not healthy within the wait timeout; still waiting for {waiting_for}"
                )
            }
        }
    }
}

/// How long a machine under `health.machineChecks: ignore` must have been up, without a crash
/// or an exit, to count as healthy: flyctl's smoke check (NOTES.md §6.2 d: "OK once uptime
/// since latest start > 10 s and not crash-looping"), measured from the newest `start` event,
/// and never from before the update was acknowledged.
pub const SMOKE_WINDOW: Duration = Duration::from_secs(10);

/// Judge one updated machine from an observation taken at `now` (UTC).
///
/// `seen` is the machine as observed, or `None` when Fly could not be asked (API down, 429).
/// `expected_version` is the version id Fly returned for the update: an older version still
/// being reported is not judged. `checks` is the manifest's `health.machineChecks`:
/// `all-passing` (healthy = started, ≥ 1 check, all passing; a check critical for `failAfter`
/// fails), or `ignore` (healthy = started and up for [`SMOKE_WINDOW`], checks not consulted).
/// Under both, an exit or a crash loop since the update fails at once, and `waitTimeout`
/// bounds the wait. Returns the next [`Watch`] and the verdict.
pub fn judge(
    watch: Watch,
    seen: Option<&ObservedMachine>,
    expected_version: &str,
    deploy: &DeploySpec,
    checks: MachineChecksRule,
    now: DateTime<Utc>,
) -> (Watch, Verdict) {
    let timeout = deploy.wait_timeout.get();
    let timed_out = elapsed(watch.since, now) >= timeout;
    let Some(m) = seen else {
        let verdict = if timed_out && watch.last_seen.is_none() {
            Verdict::Blind {
                reason: "Fly could not be observed during the wait".into(),
            }
        } else if timed_out {
            Verdict::Blind {
                reason: "Fly could not be observed at the end of the wait".into(),
            }
        } else {
            Verdict::Waiting {
                reason: "Fly could not be observed; retrying".into(),
            }
        };
        return (watch, verdict);
    };
    let mut watch = Watch {
        last_seen: Some(now),
        ..watch
    };
    let waiting = |reason: String, watch: Watch| {
        if timed_out {
            (
                watch,
                Verdict::Failed(Failure::Timeout {
                    waiting_for: reason,
                }),
            )
        } else {
            (watch, Verdict::Waiting { reason })
        }
    };
    if m.version != expected_version {
        return waiting(format!("Fly to report version {expected_version}"), watch);
    }
    if let Some(exit) = &m.last_exit
        && exit.at >= watch.since
        && !exit.requested_stop
    {
        if exit.restarting && exit.restart_count > 1 && exit.exit_code != 0 {
            let failure = Failure::CrashLoop {
                exit_code: exit.exit_code,
                restart_count: exit.restart_count,
            };
            return (watch, Verdict::Failed(failure));
        }
        if !exit.restarting && matches!(m.state, MachineState::Stopped | MachineState::Failed) {
            let failure = Failure::MachineExited {
                exit_code: exit.exit_code,
                oom_killed: exit.oom_killed,
            };
            return (watch, Verdict::Failed(failure));
        }
    }
    match &m.state {
        MachineState::Started => {}
        MachineState::Failed => return (watch, Verdict::Failed(Failure::MachineFailed)),
        other => return waiting(format!("state started (is {})", other.as_str()), watch),
    }
    if checks == MachineChecksRule::Ignore {
        // flyctl's smoke check: up long enough without a crash; Fly's checks do not count.
        let Some(started) = m.last_start else {
            return waiting("a start event (machine checks ignored)".into(), watch);
        };
        let up = elapsed(started.max(watch.since), now);
        if up >= SMOKE_WINDOW {
            return (watch, Verdict::Healthy);
        }
        return waiting(
            format!(
                "{}s of uptime (machine checks ignored; up {}s)",
                SMOKE_WINDOW.as_secs(),
                up.as_secs()
            ),
            watch,
        );
    }
    if m.checks.is_empty() {
        return waiting("the first check result".into(), watch);
    }
    let critical: Vec<&str> = m
        .checks
        .iter()
        .filter(|c| c.state == CheckState::Critical)
        .map(|c| c.name.as_str())
        .collect();
    if critical.is_empty() {
        watch.critical_since = None;
        if m.checks.iter().all(|c| c.state == CheckState::Passing) {
            return (watch, Verdict::Healthy);
        }
        return waiting("every check to pass".into(), watch);
    }
    let since = *watch.critical_since.get_or_insert(now);
    if elapsed(since, now) >= deploy.fail_after.get() {
        let output = m
            .checks
            .iter()
            .filter(|c| c.state == CheckState::Critical && !c.output.is_empty())
            .map(|c| c.output.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let checks = critical.into_iter().map(str::to_owned).collect();
        return (
            watch,
            Verdict::Failed(Failure::ChecksCritical { checks, output }),
        );
    }
    waiting(
        format!("critical checks to recover: {}", critical.join(", ")),
        watch,
    )
}

fn elapsed(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or(Duration::ZERO)
}

/// What a rollback restores: each touched machine back to the image it ran before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackPlan {
    /// Image of the new (rollback) release: the image the first touched machine ran before.
    pub image: String,
    /// `(machine, image)` pairs, in the order they were touched.
    pub machines: Vec<(String, String)>,
}

/// The rollback for a failed rollout, or `None` when nothing was touched.
///
/// A rollback is a *new* release whose image is the previous one: Fly has no rollback call
/// (NOTES.md §3.5). `already_rolled_back` is whether this bad release was rolled back
/// automatically before; then the answer is `None` and the caller escalates (BUG-14: at most
/// one automatic rollback per bad release).
pub fn rollback_plan(touched: &[MachineStep], already_rolled_back: bool) -> Option<RollbackPlan> {
    if already_rolled_back {
        return None;
    }
    let first = touched.first()?;
    Some(RollbackPlan {
        image: first.from_image.clone(),
        machines: touched
            .iter()
            .map(|s| (s.machine.clone(), s.from_image.clone()))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
