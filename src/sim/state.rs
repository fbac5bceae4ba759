//! [`SimState`], the shared handle every handler receives (the world itself is in
//! [`super::world`], re-exported here).
//!
//! [`SimState`] is a cheap `Clone` around an `Arc`: the virtual clock, the world behind one
//! mutex (held only for short, non-async sections; no handler awaits while holding it), the
//! rate limiter and the request counters. [`World::from_scenario`] builds the starting world
//! from a [`Scenario`]; after that only the HTTP handlers and the `/__sim/` control API change
//! it, plus the faults, whose leases are placed when their window begins (checked on every
//! access to the world).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::clock::VirtualClock;
use super::error::SimError;
use super::faults::{Call, Fault, FaultKind, FaultSpec, Plan, Stage};
use super::limits::{Class, RateLimiter, RateLimits};
use super::scenario::{ImageBehavior, ReleaseCommandSpec, Scenario};
pub use super::world::{GqlReleaseNode, GqlUser, SimApp, SimRelease, World};

/// The simulator's shared state: clock, world and request counters. Clone it freely.
#[derive(Debug, Clone)]
pub struct SimState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    clock: VirtualClock,
    world: Mutex<World>,
    counts: Mutex<RequestCounts>,
    log: Mutex<VecDeque<LoggedRequest>>,
    limiter: Mutex<RateLimiter>,
}

/// How many requests [`SimState::request_log`] keeps: the newest ones, the oldest dropped
/// first. Enough for a latency measurement after a reset; bounded so that a long run or a
/// 10,000-app benchmark does not grow the simulator without end.
pub const REQUEST_LOG_CAPACITY: usize = 10_000;

/// One Fly API request as the simulator received it (the `/__sim/` control API is not logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// When it arrived: **real** wall-clock UTC (`SystemTime`), not the virtual clock, so that
    /// a benchmark can compare it with timestamps of other processes on the same machine.
    pub at: DateTime<Utc>,
    /// `"METHOD /route/{template}"`, as in [`RequestCounts::endpoints`] (or `"unmatched"`).
    pub key: String,
}

/// Requests the Fly API routes received (the `/__sim/` control API is not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// All requests, including rejected ones (401, 404 …) and unknown paths.
    pub total: u64,
    /// Per `"METHOD /route/{template}"`, e.g. `"POST /v1/apps/{app}/machines/{id}"`;
    /// unknown paths count under `"unmatched"`.
    pub endpoints: BTreeMap<String, u64>,
    /// Answers the simulator made up, by kind: each fault kind that fired (`errorRate`,
    /// `latency`, `storm429`, `apiDown`, `leaseHeldBy`, `createTimesOutButSucceeds`,
    /// `listEmptyOnce`, `concurrentUpdate`, `notFoundAfterCreate`) and `rateLimit` for 429s
    /// over Fly's limits.
    #[serde(default)]
    pub faults: BTreeMap<String, u64>,
}

impl RequestCounts {
    /// Count for one endpoint key (0 when never called).
    pub fn get(&self, key: &str) -> u64 {
        self.endpoints.get(key).copied().unwrap_or(0)
    }

    /// How often faults of `kind` (or `rateLimit`) fired (0 when never).
    pub fn fault(&self, kind: &str) -> u64 {
        self.faults.get(kind).copied().unwrap_or(0)
    }
}

impl SimState {
    /// A simulator loaded with `scenario`; the virtual clock starts now (or at the scenario's
    /// `clockStart`).
    pub fn new(scenario: Scenario) -> Self {
        let start = scenario.clock_start.unwrap_or_else(Utc::now);
        let clock = VirtualClock::new(start, scenario.time_scale);
        let mut world = World::from_scenario(&scenario, start);
        for spec in &scenario.faults {
            world.faults.install(spec.clone(), start);
        }
        Self {
            inner: Arc::new(Inner {
                clock,
                world: Mutex::new(world),
                counts: Mutex::new(RequestCounts::default()),
                log: Mutex::new(VecDeque::new()),
                limiter: Mutex::new(RateLimiter::new(scenario.rate_limits)),
            }),
        }
    }

    /// Current virtual time.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Moves the virtual clock forward; returns the new virtual now.
    pub fn advance(&self, by: Duration) -> DateTime<Utc> {
        self.inner.clock.advance(by)
    }

    /// Virtual seconds per real second.
    pub fn time_scale(&self) -> f64 {
        self.inner.clock.time_scale()
    }

    /// Sets how `image` behaves from now on (next starts; check results at once).
    pub fn set_image_behavior(&self, image: &str, behavior: ImageBehavior) {
        self.with_world(|w, _| {
            w.behaviors.images.insert(image.to_string(), behavior);
        });
    }

    /// Scripts how a one-shot machine (a release command) running `image` ends, from its
    /// next start on.
    pub fn set_release_command(&self, image: &str, spec: ReleaseCommandSpec) {
        self.with_world(|w, _| {
            w.behaviors.release_commands.insert(image.to_string(), spec);
        });
    }

    /// A snapshot of the request counters.
    pub fn request_counts(&self) -> RequestCounts {
        self.inner
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Zeroes the request counters and empties the request log.
    pub fn reset_request_counts(&self) {
        *self.inner.counts.lock().unwrap_or_else(|e| e.into_inner()) = RequestCounts::default();
        self.inner
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The newest Fly API requests (at most [`REQUEST_LOG_CAPACITY`]) since the last reset,
    /// oldest first, each with its real arrival time.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        let log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter().cloned().collect()
    }

    pub(crate) fn count_request(&self, key: String) {
        {
            let mut log = self.inner.log.lock().unwrap_or_else(|e| e.into_inner());
            if log.len() == REQUEST_LOG_CAPACITY {
                log.pop_front();
            }
            log.push_back(LoggedRequest {
                at: Utc::now(),
                key: key.clone(),
            });
        }
        let mut counts = self.inner.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.total += 1;
        *counts.endpoints.entry(key).or_default() += 1;
    }

    /// Counts one made-up answer of `kind` (see [`RequestCounts::faults`]).
    pub(crate) fn count_fault(&self, kind: &str) {
        let mut counts = self.inner.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.faults.entry(kind.to_string()).or_default() += 1;
    }

    /// The rate limits in force.
    pub fn rate_limits(&self) -> RateLimits {
        self.limiter().limits()
    }

    /// Replaces the rate limits; every bucket starts full again.
    pub fn set_rate_limits(&self, limits: RateLimits) {
        self.limiter().set_limits(limits);
    }

    /// Takes a rate-limit token on tokio's clock (real time; paused in tests).
    pub(crate) fn take_rate_token(
        &self,
        class: Class,
        action: &str,
        subject: &str,
    ) -> Result<(), Duration> {
        let now = tokio::time::Instant::now();
        self.limiter().take(class, action, subject, now)
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, RateLimiter> {
        self.inner.limiter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs a fault now (its window counts from the current virtual time). Its
    /// [`FaultSpec::problems`] and unknown machines are refused.
    ///
    /// # Errors
    /// [`SimError::BadRequest`] listing every problem.
    pub fn add_fault(&self, spec: FaultSpec) -> Result<Fault, SimError> {
        let mut problems = spec.problems();
        self.with_world(|w, now| {
            if let Some(m) = spec.machine.as_deref()
                && !w.apps.values().any(|a| a.machines.contains_key(m))
            {
                problems.push(format!("fault {}: no machine {m}", spec.kind().as_str()));
            }
            if !problems.is_empty() {
                return Err(SimError::BadRequest(problems.join("; ")));
            }
            // A lease it holds is placed on the next access to the world, and counted there.
            Ok(w.faults.install(spec, now).clone())
        })
    }

    /// Removes every fault, or only fault `id`, and lifts the leases they placed. Returns
    /// how many were removed.
    pub fn remove_faults(&self, id: Option<u64>) -> usize {
        self.with_world(|w, _| {
            let removed = match id {
                None => w.faults.clear(),
                Some(id) => w.faults.remove(id).into_iter().collect(),
            };
            for f in &removed {
                let (Some(machine), Some(nonce)) = (&f.spec.machine, &f.placed_nonce) else {
                    continue;
                };
                for a in w.apps.values_mut() {
                    if let Some(m) = a.machines.get_mut(machine)
                        && m.lease.as_ref().is_some_and(|l| &l.nonce == nonce)
                    {
                        m.lease = None;
                    }
                }
            }
            removed.len()
        })
    }

    /// The installed faults.
    pub fn faults(&self) -> Vec<Fault> {
        self.with_world(|w, _| w.faults.all().to_vec())
    }

    pub(crate) fn plan_faults(&self, stage: Stage, call: &Call<'_>) -> Plan {
        let scale = self.time_scale();
        self.with_world(|w, now| {
            let mut plan = w.faults.plan(stage, call, now, scale);
            if stage == Stage::Handler
                && plan.answer.is_none()
                && let Some(id) = call.machine
                && let Some(created) = w
                    .apps
                    .values()
                    .find_map(|a| a.machines.get(id))
                    .map(|m| m.created_at)
                && let Some(answer) = w.faults.unseen(call, created, now)
            {
                plan.answer = Some(answer);
                plan.fired.push(FaultKind::NotFoundAfterCreate);
            }
            plan
        })
    }

    pub(crate) fn confirm_fault(&self, id: u64) -> bool {
        self.with_world(|w, now| w.faults.confirm(id, now))
    }

    /// Runs `f` on the world with the current virtual time, after placing the leases of
    /// faults whose window has begun. Do not await inside.
    pub(crate) fn with_world<R>(&self, f: impl FnOnce(&mut World, DateTime<Utc>) -> R) -> R {
        let mut world = self.inner.world.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.inner.clock.now();
        let placed = world.apply_faults(now);
        if placed > 0 {
            let mut counts = self.inner.counts.lock().unwrap_or_else(|e| e.into_inner());
            *counts.faults.entry("leaseHeldBy".to_string()).or_default() += placed;
        }
        f(&mut world, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fly::wire::{META_PROCESS_GROUP, META_RELEASE_ID, META_RELEASE_VERSION};

    #[test]
    fn lowendinsight_world_matches_the_brief() {
        let state = SimState::new(Scenario::lowendinsight_default());
        state.with_world(|w, now| {
            let app = w.app("lowendinsight").unwrap();
            assert_eq!(app.current_release().unwrap().version, 109);
            let r109_id = app.current_release().unwrap().id.clone();
            let (m, b) = w.machine("lowendinsight", "148ed193b95d89", now).unwrap();
            assert_eq!(m.state(), "started");
            let wire = m.to_wire(now, b);
            let cfg = wire.config.unwrap();
            assert_eq!(cfg.metadata[META_RELEASE_VERSION], "109");
            assert_eq!(cfg.metadata[META_RELEASE_ID], r109_id);
            assert_eq!(cfg.metadata[META_PROCESS_GROUP], "app");
            assert_eq!(cfg.env["PRIMARY_REGION"], "iad");
            assert_eq!(cfg.extra["stop_config"]["signal"], "SIGINT");
            assert_eq!(wire.checks.len(), 1);
            assert_eq!(wire.checks[0].name, "servicecheck-00-tcp-8080");
            assert_eq!(wire.checks[0].status, "passing");
        });
    }

    #[test]
    fn new_machine_ids_are_fly_shaped() {
        let w = World::from_scenario(&Scenario::empty(), Utc::now());
        let id = w.new_machine_id();
        assert_eq!(id.len(), 14);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}
