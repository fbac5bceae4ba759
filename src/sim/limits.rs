//! Fly's documented Machines API rate limits, as token buckets (NOTES.md §2.9).
//!
//! Fly limits requests per action and per machine: **1 req/s with a burst of 3** for each
//! mutating action (create, update, start, stop, restart, suspend, signal, cordon, lease,
//! metadata writes, delete, …) and **5 req/s with a burst of 10** for `GET` of one machine.
//! A request over the limit is answered 429 `{"error":"rate limit exceeded"}` with a
//! `Retry-After` header in whole seconds (at least 1). Fly documents neither the 429 body nor
//! whether it sends `Retry-After` (NOTES.md §9); the body follows the one log line quoted
//! there, and the header is our choice so clients can be tested against one.
//!
//! Which requests count, keyed by (action, subject):
//!
//! | request | bucket | subject |
//! |---|---|---|
//! | `GET /v1/apps/{app}/machines/{id}` | `getMachine` | the machine |
//! | any other method on `/v1/apps/{app}/machines/{id}…` | `action`, one per `METHOD route` | the machine |
//! | `POST /v1/apps/{app}/machines` (create) | `action` | the app |
//! | everything else (list, `wait`, other `GET`s, releases, certificates, logs) | not limited | |
//!
//! Buckets run on **real** time (tokio's clock, so tests can pause it), not on the virtual
//! clock: a client paces itself in real seconds, and the virtual clock may run 3600× faster
//! (every bucket would always be full) or be frozen (a bucket would never refill).
//! Buckets start full. Changing the limits through `/__sim/rate-limits` empties the table,
//! so every bucket starts full again.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::state::SimState;
use crate::fly::wire::ErrorResponse;

/// The 429 text (NOTES.md §2.9 quotes `machines API returned an error: "rate limit exceeded"`).
pub const RATE_LIMITED: &str = "rate limit exceeded";

/// The rate limits, as written under `rateLimits:` in a scenario and answered by
/// `GET /__sim/rate-limits`. Every field has Fly's documented default.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimits {
    /// Answer 429 over the limits (default `true`).
    pub enabled: bool,
    /// Each mutating action on one machine, and create per app (default 1/s, burst 3).
    pub action: Bucket,
    /// `GET` of one machine (default 5/s, burst 10).
    pub get_machine: Bucket,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            enabled: true,
            action: Bucket {
                per_second: 1.0,
                burst: 3,
            },
            get_machine: Bucket {
                per_second: 5.0,
                burst: 10,
            },
        }
    }
}

/// One token bucket's shape: refilled at `perSecond` tokens per real second, holding at most
/// `burst` tokens; a request takes one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Bucket {
    /// Refill rate, tokens per real second; must be positive.
    pub per_second: f64,
    /// Capacity (and the starting fill); at least 1.
    pub burst: u32,
}

/// Body of `POST /__sim/rate-limits`: only the fields given change.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RateLimitsPatch {
    /// New `enabled`.
    pub enabled: Option<bool>,
    /// New `action` bucket.
    pub action: Option<Bucket>,
    /// New `getMachine` bucket.
    pub get_machine: Option<Bucket>,
}

impl RateLimits {
    /// What is wrong with these limits: rates must be positive and finite, bursts ≥ 1.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, b) in [("action", self.action), ("getMachine", self.get_machine)] {
            if !(b.per_second.is_finite() && b.per_second > 0.0) {
                out.push(format!(
                    "rateLimits.{name}.perSecond must be a positive number, got {}",
                    b.per_second
                ));
            }
            if b.burst == 0 {
                out.push(format!("rateLimits.{name}.burst must be at least 1"));
            }
        }
        out
    }

    /// These limits with `patch` applied.
    pub fn patched(self, patch: RateLimitsPatch) -> Self {
        Self {
            enabled: patch.enabled.unwrap_or(self.enabled),
            action: patch.action.unwrap_or(self.action),
            get_machine: patch.get_machine.unwrap_or(self.get_machine),
        }
    }
}

/// Which bucket a request draws from, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// `GET` of one machine.
    GetMachine,
    /// A mutating action (on a machine, or create on an app).
    Action,
}

/// The bucket class for `method` on the route `template`, and which path parameter names
/// the subject; `None` when the request is not limited.
pub fn classify(method: &Method, template: &str) -> Option<(Class, &'static str)> {
    const MACHINE: &str = "/v1/apps/{app}/machines/{id}";
    if template == "/v1/apps/{app}/machines" {
        return (method == Method::POST).then_some((Class::Action, "app"));
    }
    if template != MACHINE && !template.starts_with("/v1/apps/{app}/machines/{id}/") {
        return None;
    }
    match (method, template) {
        (&Method::GET | &Method::HEAD, MACHINE) => Some((Class::GetMachine, "id")),
        (&Method::GET | &Method::HEAD, _) => None,
        _ => Some((Class::Action, "id")),
    }
}

#[derive(Debug, Clone, Copy)]
struct Fill {
    tokens: f64,
    at: Instant,
}

/// The buckets in use, keyed by (`"METHOD route"`, subject).
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: RateLimits,
    buckets: HashMap<(String, String), Fill>,
}

impl RateLimiter {
    /// A limiter enforcing `limits`, every bucket full.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> RateLimits {
        self.limits
    }

    /// Replaces the limits; every bucket starts full again.
    pub fn set_limits(&mut self, limits: RateLimits) {
        self.limits = limits;
        self.buckets.clear();
    }

    /// Takes a token for (`action`, `subject`) at real time `now`. `Err` carries how long
    /// until one is available.
    ///
    /// # Errors
    /// The wait until the next token when the bucket is empty.
    pub fn take(
        &mut self,
        class: Class,
        action: &str,
        subject: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        if !self.limits.enabled {
            return Ok(());
        }
        let shape = match class {
            Class::GetMachine => self.limits.get_machine,
            Class::Action => self.limits.action,
        };
        let burst = f64::from(shape.burst.max(1));
        let fill = self
            .buckets
            .entry((action.to_string(), subject.to_string()))
            .or_insert(Fill {
                tokens: burst,
                at: now,
            });
        let refill = now.saturating_duration_since(fill.at).as_secs_f64() * shape.per_second;
        fill.tokens = (fill.tokens + refill).min(burst);
        fill.at = now;
        if fill.tokens >= 1.0 {
            fill.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - fill.tokens) / shape.per_second;
            Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(1)))
        }
    }
}

/// Fly-style 429: `{"error":"rate limit exceeded"}` and `Retry-After` = `wait` rounded up to
/// whole seconds, at least 1.
pub fn too_many_requests(wait: Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let body = ErrorResponse {
        error: RATE_LIMITED.to_string(),
        status: None,
        message: None,
    };
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

/// Middleware: draws a token for limited requests (see the module docs), else answers 429
/// and counts it under `faults["rateLimit"]` in the request counts.
pub async fn limit(
    State((state, template)): State<(SimState, &'static str)>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    if let Some((class, param)) = classify(req.method(), template) {
        let subject = params
            .iter()
            .flat_map(RawPathParams::iter)
            .find(|(k, _)| *k == param)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let action = format!("{} {template}", req.method());
        if let Err(wait) = state.take_rate_token(class, &action, &subject) {
            state.count_fault("rateLimit");
            return too_many_requests(wait);
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_docs() {
        let m = "/v1/apps/{app}/machines/{id}";
        assert_eq!(classify(&Method::GET, m), Some((Class::GetMachine, "id")));
        assert_eq!(classify(&Method::POST, m), Some((Class::Action, "id")));
        assert_eq!(classify(&Method::DELETE, m), Some((Class::Action, "id")));
        let stop = "/v1/apps/{app}/machines/{id}/stop";
        assert_eq!(classify(&Method::POST, stop), Some((Class::Action, "id")));
        assert_eq!(
            classify(&Method::GET, "/v1/apps/{app}/machines/{id}/wait"),
            None
        );
        let list = "/v1/apps/{app}/machines";
        assert_eq!(classify(&Method::GET, list), None);
        assert_eq!(classify(&Method::POST, list), Some((Class::Action, "app")));
        assert_eq!(classify(&Method::GET, "/v1/apps/{app}"), None);
    }

    #[test]
    fn bucket_bursts_then_refills() {
        let mut l = RateLimiter::new(RateLimits::default());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take(Class::Action, "POST x", "m", t0).is_ok());
        }
        let wait = l.take(Class::Action, "POST x", "m", t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert!(
            l.take(Class::Action, "POST y", "m", t0).is_ok(),
            "per action"
        );
        assert!(
            l.take(Class::Action, "POST x", "n", t0).is_ok(),
            "per machine"
        );
        let later = t0 + Duration::from_millis(1000);
        assert!(l.take(Class::Action, "POST x", "m", later).is_ok());
        assert!(l.take(Class::Action, "POST x", "m", later).is_err());

        l.set_limits(RateLimits {
            enabled: false,
            ..RateLimits::default()
        });
        for _ in 0..100 {
            assert!(l.take(Class::Action, "POST x", "m", later).is_ok());
        }
    }

    #[test]
    fn polling_every_200ms_never_runs_dry() {
        let mut l = RateLimiter::new(RateLimits::default());
        let t0 = Instant::now();
        for i in 0..600u64 {
            let at = t0 + Duration::from_millis(200 * i);
            assert!(
                l.take(Class::GetMachine, "GET m", "m", at).is_ok(),
                "poll {i}"
            );
        }
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        let r = too_many_requests(Duration::from_millis(200));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        let r = too_many_requests(Duration::from_millis(2100));
        assert_eq!(r.headers()[RETRY_AFTER], "3");
    }

    #[test]
    fn limits_are_checked_and_patched() {
        let bad = RateLimits {
            action: Bucket {
                per_second: 0.0,
                burst: 0,
            },
            ..RateLimits::default()
        };
        assert_eq!(bad.problems().len(), 2);
        let off = RateLimits::default().patched(RateLimitsPatch {
            enabled: Some(false),
            ..RateLimitsPatch::default()
        });
        assert!(!off.enabled);
        assert_eq!(off.action, RateLimits::default().action);
    }
}
