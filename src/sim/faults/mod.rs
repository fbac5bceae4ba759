//! Scripted faults: what a scenario's `faults:` list and `POST /__sim/faults` ask the
//! simulated Fly to get wrong, and the book that decides, request by request, which fault
//! fires.
//!
//! A fault is written as one flat object ([`FaultSpec`]): a `kind`, an optional scope
//! (`route`, `machine`), an optional window on the **virtual** clock (`after`, `for`, counted
//! from when the fault is installed: the clock start for scenario faults, the moment of the
//! `POST` for run-time ones), an optional cap (`times`), and the fields of its kind:
//!
//! | kind | does | fields |
//! |---|---|---|
//! | `errorRate` | answers a fraction of matching requests 5xx with Fly's error body; the request is not performed | `rate` (0–1, required), `status` (500–599, default 503), `message`, `seed` |
//! | `latency` | delays matching requests (real time) | `delay` (required) |
//! | `storm429` | answers every matching request 429 `rate limit exceeded` | — |
//! | `apiDown` | closes the connection without an answer | — |
//! | `leaseHeldBy` | puts a lease held by `owner` on `machine` for the window | `machine`, `owner` (required); `for` (default 1h) |
//! | `createTimesOutButSucceeds` | performs a machine create, then holds the answer for `delay` (default 60s, real time) or, with `drop: true`, closes the connection | `delay`, `drop` |
//! | `listEmptyOnce` | answers the machine list `[]` | — |
//! | `concurrentUpdate` | rejects machine updates with `aborted: machine is replacing: concurrent update in progress` | `status` (409 or 412, default 409) |
//! | `notFoundAfterCreate` | a machine created while the fault is installed answers 404 `machine not found` on its own routes (`GET`, `wait`, …) for `propagation` after its create (case BUG-15 C) | `propagation` (default 1s, virtual time) |
//!
//! `times` defaults to 1 for `listEmptyOnce`, `concurrentUpdate` and
//! `createTimesOutButSucceeds`, and is unlimited for the others. Randomness (`errorRate`) comes
//! from a per-fault xorshift generator seeded with `seed` (default 1), so the same requests in
//! the same order meet the same errors on every run.
//!
//! This module decides; [`layer`] turns decisions into HTTP answers,
//! [`super::state::World::apply_faults`] places the leases of `leaseHeldBy`, and
//! [`super::state::SimState`] asks [`FaultBook::unseen`] about `notFoundAfterCreate` (it needs
//! the machine's creation time from the world).

pub mod layer;
mod spec;

#[cfg(test)]
mod tests;

pub use spec::{FaultKind, FaultSpec};

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::clock::to_chrono;

/// The text of a `concurrentUpdate` rejection (cases BUG-04).
pub const CONCURRENT_UPDATE: &str = "aborted: machine is replacing: concurrent update in progress";

/// The stage of a request at which a fault acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Before authentication: outages, delays, 429 storms, 5xx.
    Transport,
    /// Just before the handler (after auth and rate limits): faults tied to one Fly call.
    Handler,
}

/// What happens after the handler ran, for a fault that needs a successful answer first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Hold the answer this long (real time).
    Delay(Duration),
    /// Close the connection instead of answering.
    Drop,
}

/// An answer a fault gives instead of the handler's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Close the connection.
    Drop,
    /// 429 with this `Retry-After`.
    TooMany(Duration),
    /// An error status with Fly's body.
    Error {
        /// HTTP status.
        status: u16,
        /// The `error` text.
        message: String,
    },
    /// `200 []`.
    EmptyList,
}

/// The book's decision for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Delay before anything else (sum of matching `latency` faults).
    pub delay: Duration,
    /// The answer to give instead of the handler's.
    pub answer: Option<Answer>,
    /// A fault to apply after a successful answer, by id; confirm it with
    /// [`FaultBook::confirm`].
    pub after: Option<(u64, After)>,
    /// Kinds that fired (each is counted).
    pub fired: Vec<FaultKind>,
}

/// One request as the book sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `"METHOD /route/{template}"`.
    pub key: &'a str,
    /// The route template.
    pub template: &'a str,
    /// The `{id}` path parameter, if any.
    pub machine: Option<&'a str>,
}

/// A lease a `leaseHeldBy` fault has to place or has placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultLease {
    /// Fault id.
    pub fault: u64,
    /// Machine id.
    pub machine: String,
    /// Holder.
    pub owner: String,
    /// Expiry (the window's end), virtual time.
    pub until: DateTime<Utc>,
}

/// An installed fault.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Id, unique in this simulator (`DELETE /__sim/faults/{id}`).
    pub id: u64,
    /// As written.
    pub spec: FaultSpec,
    /// Window start, virtual time.
    pub from: DateTime<Utc>,
    /// Window end (exclusive), virtual time; `None` = open.
    pub until: Option<DateTime<Utc>>,
    /// How often it fired.
    pub injected: u64,
    /// `leaseHeldBy`: the nonce of the lease it placed.
    pub placed_nonce: Option<String>,
    rng: XorShift,
}

impl Fault {
    fn in_window(&self, now: DateTime<Utc>) -> bool {
        self.from <= now && self.until.is_none_or(|u| now < u)
    }

    fn spent(&self) -> bool {
        let times = self.spec.times.or(self.spec.kind().default_times());
        times.is_some_and(|t| self.injected >= t)
    }

    /// In its window and not used up.
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        self.in_window(now) && !self.spent()
    }

    fn matches(&self, call: &Call<'_>, now: DateTime<Utc>) -> bool {
        let kind = self.spec.kind();
        let route_ok = match (kind.fixed_route(), self.spec.route.as_deref()) {
            (Some(fixed), _) => fixed == call.key,
            (None, None) => true,
            (None, Some(r)) if r.contains(' ') => r == call.key,
            (None, Some(r)) => r == call.template,
        };
        let machine_ok = match self.spec.machine.as_deref() {
            None => true,
            Some(m) => call.machine == Some(m),
        };
        route_ok && machine_ok && self.active(now)
    }

    /// The JSON view: the spec plus id, count and window.
    pub fn view(&self, now: DateTime<Utc>) -> FaultView {
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
        FaultView {
            id: self.id,
            spec: self.spec.clone(),
            injected: self.injected,
            active: self.active(now),
            from: ts(self.from),
            until: self.until.map(ts),
        }
    }
}

/// An installed fault as `GET /__sim/faults` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultView {
    /// Id.
    pub id: u64,
    /// As written.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// How often it fired.
    pub injected: u64,
    /// In its window now and not used up.
    pub active: bool,
    /// Window start, RFC 3339 virtual time.
    #[serde(rename = "windowStart")]
    pub from: String,
    /// Window end, RFC 3339 virtual time; absent = open.
    #[serde(rename = "windowEnd", default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The installed faults, in installation order.
#[derive(Debug, Default)]
pub struct FaultBook {
    faults: Vec<Fault>,
    next_id: u64,
}

impl FaultBook {
    /// Installs `spec` at virtual time `now` (its window counts from there) and returns it.
    /// The spec must be free of [`FaultSpec::problems`].
    pub fn install(&mut self, spec: FaultSpec, now: DateTime<Utc>) -> &Fault {
        self.next_id += 1;
        let from = now + to_chrono(spec.after.map_or(Duration::ZERO, |d| d.0));
        let lasts = match (spec.lasts, spec.kind()) {
            (Some(d), _) => Some(d.0),
            (None, FaultKind::LeaseHeldBy) => Some(Duration::from_secs(3600)),
            (None, _) => None,
        };
        let fault = Fault {
            id: self.next_id,
            from,
            until: lasts.map(|d| from + to_chrono(d)),
            injected: 0,
            placed_nonce: None,
            rng: XorShift::seeded(spec.seed.unwrap_or(1)),
            spec,
        };
        self.faults.push(fault);
        &self.faults[self.faults.len() - 1]
    }

    /// Every installed fault.
    pub fn all(&self) -> &[Fault] {
        &self.faults
    }

    /// Removes every fault and returns them (the caller lifts the leases they placed).
    pub fn clear(&mut self) -> Vec<Fault> {
        std::mem::take(&mut self.faults)
    }

    /// Removes fault `id`.
    pub fn remove(&mut self, id: u64) -> Option<Fault> {
        let i = self.faults.iter().position(|f| f.id == id)?;
        Some(self.faults.remove(i))
    }

    /// `leaseHeldBy` leases whose window has begun and that are not placed yet; each is
    /// counted as fired once. Record the nonce with [`FaultBook::placed`].
    pub fn due_leases(&mut self, now: DateTime<Utc>) -> Vec<FaultLease> {
        let mut out = Vec::new();
        for f in &mut self.faults {
            if f.spec.kind() == FaultKind::LeaseHeldBy
                && f.placed_nonce.is_none()
                && f.injected == 0
                && f.in_window(now)
            {
                f.injected = 1;
                out.push(FaultLease {
                    fault: f.id,
                    machine: f.spec.machine.clone().unwrap_or_default(),
                    owner: f.spec.owner.clone().unwrap_or_default(),
                    until: f.until.unwrap_or(now),
                });
            }
        }
        out
    }

    /// Records the nonce of the lease fault `id` placed.
    pub fn placed(&mut self, id: u64, nonce: String) {
        if let Some(f) = self.faults.iter_mut().find(|f| f.id == id) {
            f.placed_nonce = Some(nonce);
        }
    }

    /// Decides what happens to `call` at `stage`, at virtual time `now`; `time_scale`
    /// converts a storm's remaining window into a real-time `Retry-After`. Counts what fires.
    pub fn plan(
        &mut self,
        stage: Stage,
        call: &Call<'_>,
        now: DateTime<Utc>,
        time_scale: f64,
    ) -> Plan {
        let mut plan = Plan::default();
        for f in &mut self.faults {
            let kind = f.spec.kind();
            if stage_of(kind) != Some(stage) || !f.matches(call, now) {
                continue;
            }
            let answer = match kind {
                FaultKind::Latency => {
                    plan.delay += f.spec.delay.map_or(Duration::ZERO, |d| d.0);
                    f.injected += 1;
                    plan.fired.push(kind);
                    continue;
                }
                _ if plan.answer.is_some() || plan.after.is_some() => continue,
                FaultKind::ErrorRate => {
                    if f.rng.next_f64() >= f.spec.rate.unwrap_or(0.0) {
                        continue;
                    }
                    let status = f.spec.status.unwrap_or(503);
                    let message = f
                        .spec
                        .message
                        .clone()
                        .unwrap_or_else(|| reason(status).to_string());
                    Answer::Error { status, message }
                }
                FaultKind::Storm429 => {
                    let left = f.until.map_or(Duration::from_secs(1), |u| {
                        let virtual_s = (u - now).num_milliseconds().max(0) as f64 / 1000.0;
                        Duration::from_secs_f64((virtual_s / time_scale).clamp(1.0, 60.0))
                    });
                    Answer::TooMany(left)
                }
                FaultKind::ApiDown => Answer::Drop,
                FaultKind::ListEmptyOnce => Answer::EmptyList,
                FaultKind::ConcurrentUpdate => Answer::Error {
                    status: f.spec.status.unwrap_or(409),
                    message: CONCURRENT_UPDATE.to_string(),
                },
                FaultKind::CreateTimesOutButSucceeds => {
                    let after = if f.spec.drop == Some(true) {
                        After::Drop
                    } else {
                        After::Delay(f.spec.delay.map_or(Duration::from_secs(60), |d| d.0))
                    };
                    plan.after = Some((f.id, after));
                    continue;
                }
                FaultKind::LeaseHeldBy | FaultKind::NotFoundAfterCreate => continue,
            };
            f.injected += 1;
            plan.fired.push(kind);
            plan.answer = Some(answer);
        }
        plan
    }

    /// The 404 a `notFoundAfterCreate` fault gives `call` about a machine created at
    /// `created` (virtual time), if one applies at `now`: the machine was created inside the
    /// fault's window and is younger than the fault's `propagation` (default 1s). Counts it.
    pub fn unseen(
        &mut self,
        call: &Call<'_>,
        created: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Answer> {
        let f = self.faults.iter_mut().find(|f| {
            let hidden_for = f.spec.propagation.map_or(Duration::from_secs(1), |d| d.0);
            f.spec.kind() == FaultKind::NotFoundAfterCreate
                && f.matches(call, now)
                && created >= f.from
                && f.until.is_none_or(|u| created < u)
                && now < created + to_chrono(hidden_for)
        })?;
        f.injected += 1;
        Some(Answer::Error {
            status: 404,
            message: "machine not found".to_string(),
        })
    }

    /// Counts fault `id` as fired after the handler succeeded; `false` if it is gone or used
    /// up meanwhile (then nothing happens).
    pub fn confirm(&mut self, id: u64, now: DateTime<Utc>) -> bool {
        match self.faults.iter_mut().find(|f| f.id == id) {
            Some(f) if f.active(now) => {
                f.injected += 1;
                true
            }
            _ => false,
        }
    }
}

fn stage_of(kind: FaultKind) -> Option<Stage> {
    match kind {
        FaultKind::ErrorRate | FaultKind::Latency | FaultKind::Storm429 | FaultKind::ApiDown => {
            Some(Stage::Transport)
        }
        FaultKind::CreateTimesOutButSucceeds
        | FaultKind::ListEmptyOnce
        | FaultKind::ConcurrentUpdate => Some(Stage::Handler),
        FaultKind::LeaseHeldBy | FaultKind::NotFoundAfterCreate => None,
    }
}

/// The lower-case reason phrase Fly-style error bodies use for a 5xx.
fn reason(status: u16) -> &'static str {
    match status {
        500 => "internal server error",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "server error",
    }
}

/// xorshift64* (Vigna), seeded through splitmix64 so small seeds still spread. Not for
/// anything but reproducible fault injection.
#[derive(Debug, Clone)]
struct XorShift(u64);

impl XorShift {
    fn seeded(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}
