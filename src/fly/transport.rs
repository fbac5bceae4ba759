//! Sending one Fly call: authentication, client-side rate limiting, retries, and turning
//! responses into values or [`FlyError`]s.
//!
//! Rate limits (NOTES.md §2.9, Fly docs "Machines API rate limits"): Fly allows 1 request/s per
//! action per machine with a burst of 3, and 5/s with a burst of 10 for getting a machine. The
//! client keeps under them itself with a GCRA limiter keyed by (action, scope), where the scope
//! is the machine a call is about, else its app ("per machine, or per app, depending on
//! request"): a large app never provokes a 429 storm, and one app's calls never wait for
//! another's. A 429 that still comes is retried after `Retry-After`.
//!
//! Retries (flyctl `flapsutil/retry.go`, fly-go `http.go`): idempotent calls (reads, lease
//! release, wait) on 429, 5xx and transport errors; any call on 429 (Fly did not perform it)
//! and on the "clears by itself" conflicts of case BUG-04 (`concurrent update`, `is
//! replacing`). A create or update that failed with 5xx or a timeout is never re-sent here:
//! whether it happened is unknown, and the caller re-reads before acting again.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::fly::error::{FlyError, FlyErrorKind};
use crate::fly::wire::ErrorResponse;
use crate::secret::Secret;

/// What may be retried after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryPolicy {
    /// Reads and other idempotent calls: 429, 5xx, transport errors, and BUG-04 conflicts.
    Idempotent,
    /// Calls with effects: only when Fly certainly did not perform them (429, BUG-04 conflicts).
    NotPerformed,
}

/// One call.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub url: String,
    /// Path for errors and logs (no host, no query).
    pub path: String,
    /// Rate-limit action name (`get`, `update`, `lease`, `wait`, …).
    pub action: &'static str,
    /// What Fly scopes the call's rate limit by: the machine id for calls about one machine,
    /// else the app name (NOTES.md §2.9).
    pub scope: String,
    /// Whether the call only reads (the 5 req/s bucket) or may change something (1 req/s).
    pub read: bool,
    pub body: Option<Value>,
    pub nonce: Option<&'a str>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

/// Shared HTTP machinery of a client.
#[derive(Clone)]
pub(crate) struct Transport {
    http: reqwest::Client,
    token: Secret,
    reads: Arc<DefaultKeyedRateLimiter<(&'static str, String)>>,
    writes: Arc<DefaultKeyedRateLimiter<(&'static str, String)>>,
    retries: usize,
}

fn quota(per_second: u32, burst: u32) -> Quota {
    let per = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(per).allow_burst(burst)
}

impl Transport {
    pub fn new(token: Secret) -> Result<Self, FlyError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("opsctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                FlyError::local(
                    FlyErrorKind::Protocol,
                    "",
                    "",
                    format!("building the HTTP client: {e}"),
                )
            })?;
        Ok(Self {
            http,
            token,
            reads: Arc::new(RateLimiter::keyed(quota(5, 10))),
            writes: Arc::new(RateLimiter::keyed(quota(1, 3))),
            retries: 5,
        })
    }

    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// Fly's scheme rule: macaroons (`fm1r_`, `fm2_`) go as `FlyV1`, others as `Bearer`
    /// (fly-go `tokens.go`, NOTES.md §1).
    pub fn auth_header(&self) -> String {
        let t = self.token.expose();
        if t.starts_with("FlyV1 ") {
            t.to_owned()
        } else if t.starts_with("fm1r_") || t.starts_with("fm2_") {
            format!("FlyV1 {t}")
        } else {
            format!("Bearer {t}")
        }
    }

    /// Send `call`, rate-limited, with the retries its policy allows.
    pub async fn send<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, FlyError> {
        let once = || async {
            self.throttle(call).await;
            self.send_once::<T>(call).await
        };
        let policy = call.retry;
        let attempts = self.retries + 1;
        let failed = std::sync::atomic::AtomicUsize::new(0);
        once.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(20))
                .with_max_times(self.retries)
                .with_jitter(),
        )
        .when(move |e: &FlyError| retryable(policy, e))
        .adjust(
            |e: &FlyError, d: Option<Duration>| match (e.retry_after, d) {
                (Some(after), Some(d)) => Some(after.max(d)),
                (_, d) => d,
            },
        )
        .notify(|e: &FlyError, d: Duration| {
            let retry_in_ms = d.as_millis() as u64;
            if e.status == Some(429) || e.kind != FlyErrorKind::Unavailable {
                // Rate limits and conflicts that clear by themselves: expected, quiet.
                tracing::debug!(error = %e, retry_in_ms, "retrying Fly call");
            } else {
                // Fly not answering is worth a line: a command would otherwise sit silent for
                // minutes (6 attempts of up to 30 s each) before its error.
                let n = failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                tracing::warn!(error = %e, retry_in_ms, "Fly did not answer (attempt {n} of {attempts}); retrying");
            }
        })
        .await
    }

    async fn throttle(&self, call: &Call<'_>) {
        let key = (call.action, call.scope.clone());
        let limiter = if call.read { &self.reads } else { &self.writes };
        limiter.until_key_ready(&key).await;
    }

    async fn send_once<T: DeserializeOwned>(&self, call: &Call<'_>) -> Result<T, FlyError> {
        let method = call.method.as_str();
        let local = |kind, message: String| FlyError::local(kind, method, &call.path, message);
        let mut req = self
            .http
            .request(call.method.clone(), &call.url)
            .header(reqwest::header::AUTHORIZATION, self.auth_header())
            .timeout(call.timeout);
        if let Some(nonce) = call.nonce {
            req = req.header("fly-machine-lease-nonce", nonce);
        }
        if let Some(body) = &call.body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| {
            crate::metrics::global().fly_request(call.action, None);
            local(
                FlyErrorKind::Unavailable,
                format!("could not reach Fly at {}", without_url(&e)),
            )
        })?;
        let status = resp.status();
        crate::metrics::global().fly_request(call.action, Some(status.as_u16()));
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = header("fly-request-id");
        let retry_after = header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(|e| {
            local(
                FlyErrorKind::Unavailable,
                format!("reading the response from {}", without_url(&e)),
            )
        })?;
        if status.is_success() {
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(text).map_err(|e| FlyError {
                status: Some(status.as_u16()),
                request_id: request_id.clone(),
                ..local(
                    FlyErrorKind::Protocol,
                    format!("unexpected response body: {e}"),
                )
            });
        }
        let message = serde_json::from_slice::<ErrorResponse>(&bytes)
            .ok()
            .map(|e| {
                if e.error.is_empty() {
                    e.message.unwrap_or_default()
                } else {
                    e.error
                }
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        let kind = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => FlyErrorKind::Unauthorized,
            StatusCode::NOT_FOUND => FlyErrorKind::NotFound,
            StatusCode::CONFLICT => FlyErrorKind::Conflict,
            StatusCode::PRECONDITION_FAILED => FlyErrorKind::Precondition,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                FlyErrorKind::Unavailable
            }
            s if s.is_server_error() => FlyErrorKind::Unavailable,
            _ => FlyErrorKind::Rejected,
        };
        Err(FlyError {
            kind,
            method: method.to_owned(),
            path: call.path.clone(),
            status: Some(status.as_u16()),
            message,
            request_id,
            retry_after,
        })
    }
}

/// The retry rule of the module doc.
fn retryable(policy: RetryPolicy, e: &FlyError) -> bool {
    if e.is_transient_conflict() || e.status == Some(429) {
        return true;
    }
    match policy {
        // 408 is how `wait` says "not yet": the caller loops, not the transport.
        RetryPolicy::Idempotent => e.kind == FlyErrorKind::Unavailable && e.status != Some(408),
        RetryPolicy::NotPerformed => false,
    }
}

/// A transport error as one line for people: where (`host:port`; never the path or the query,
/// which could carry secrets) and the root cause, taken from the error's `source()` chain
/// (`tcp connect error: Connection refused (os error 111)`, `dns error: failed to lookup
/// address information: …`, `invalid peer certificate: …`). reqwest's own top line
/// (`error sending request for url (…)`) says nothing the caller does not already say, so it
/// is used only when there is no source.
fn without_url(e: &reqwest::Error) -> String {
    let url = e.url();
    let scrub = |text: String| match url {
        Some(url) => text.replace(url.as_str(), "<url>"),
        None => text,
    };
    let mut causes: Vec<String> = Vec::new();
    let mut next = std::error::Error::source(e);
    while let Some(cause) = next {
        let text = scrub(cause.to_string());
        // hyper-util's wrappers (`client error (Connect)`) name the stage, not the cause.
        let wrapper = text.starts_with("client error (") && cause.source().is_some();
        let repeated = causes.last().is_some_and(|last| last.contains(&text));
        if !wrapper && !repeated && !text.is_empty() {
            causes.push(text);
        }
        next = cause.source();
    }
    if e.is_timeout() && !causes.iter().any(|c| c.contains("timed out")) {
        causes.push("timed out".into());
    }
    let mut what = if causes.is_empty() {
        scrub(e.to_string())
    } else {
        causes.join(": ")
    };
    // rustls's words for "the server answered in plain HTTP".
    if url.is_some_and(|u| u.scheme() == "https") && what.contains("InvalidContentType") {
        what.push_str(" (the server does not speak TLS: is it an http:// URL?)");
    }
    match url.and_then(|u| Some((u.host_str()?.to_owned(), u.port_or_known_default()?))) {
        // `host_str` keeps an IPv6 address's brackets: `[::1]:4280`.
        Some((host, port)) => format!("{host}:{port}: {what}"),
        None => what,
    }
}

/// Percent-encode one path or query component.
pub(crate) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: FlyErrorKind, status: u16, message: &str) -> FlyError {
        FlyError {
            status: Some(status),
            ..FlyError::local(kind, "POST", "/x", message.into())
        }
    }

    #[test]
    fn macaroons_use_flyv1_others_bearer() {
        let t = |tok: &str| Transport::new(Secret::new(tok)).unwrap().auth_header();
        assert_eq!(t("fm2_abc"), "FlyV1 fm2_abc");
        assert_eq!(t("plain"), "Bearer plain");
        assert_eq!(t("FlyV1 fm2_x"), "FlyV1 fm2_x");
    }

    #[test]
    fn what_is_retried() {
        use FlyErrorKind::*;
        use RetryPolicy::*;
        let cases = [
            (Idempotent, err(Unavailable, 503, "boom"), true),
            (Idempotent, err(Unavailable, 408, "deadline"), false),
            (NotPerformed, err(Unavailable, 503, "boom"), false),
            (
                NotPerformed,
                err(Unavailable, 429, "rate limit exceeded"),
                true,
            ),
            (
                NotPerformed,
                err(
                    Conflict,
                    409,
                    "aborted: machine is replacing: concurrent update in progress",
                ),
                true,
            ),
            (
                NotPerformed,
                err(
                    Conflict,
                    409,
                    "aborted: machine ID m1 lease currently held by x",
                ),
                false,
            ),
            (
                NotPerformed,
                err(Rejected, 400, "invalid machine config: unknown guest size"),
                false,
            ),
            (Idempotent, err(Rejected, 422, "invalid"), false),
        ];
        for (policy, e, expected) in cases {
            assert_eq!(retryable(policy, &e), expected, "{policy:?} {e}");
        }
    }

    #[test]
    fn path_components_are_encoded() {
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
        assert_eq!(enc("lowendinsight"), "lowendinsight");
    }
}
