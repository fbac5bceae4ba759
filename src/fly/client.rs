//! The Fly API client: Machines REST (`/v1/apps/{app}/machines…`), GraphQL (`/graphql`, for
//! releases) over reqwest. The same code talks to Fly and to the simulator; only the
//! [`Endpoints`] differ (DESIGN.md §4.1).
//!
//! What it does not do: decide anything, or retry a non-idempotent call. Idempotent calls
//! (GET, lease release, wait) are retried on 408, 429, 5xx and transport errors with
//! exponential backoff and jitter, honouring `Retry-After` (NOTES.md §1, flyctl
//! `flapsutil/retry.go`). Every error carries method, path, status, Fly's `error` text and the
//! `fly-request-id`; the token is never part of any of it.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::fly::wire::{
    self, ErrorResponse, GqlRelease, GraphqlRequest, GraphqlResponse, Lease, LeaseEnvelope,
    Machine, MachineRequest,
};
use crate::secret::Secret;

/// Where the three Fly APIs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Machines REST base, without the `/v1` suffix (`https://api.machines.dev`).
    pub machines: String,
    /// GraphQL URL (`https://api.fly.io/graphql`).
    pub graphql: String,
}

impl Endpoints {
    /// Fly's production hosts (NOTES.md §1).
    pub fn fly() -> Self {
        Self {
            machines: "https://api.machines.dev".into(),
            graphql: "https://api.fly.io/graphql".into(),
        }
    }

    /// One origin serving all APIs (the simulator, or a proxy): `http://127.0.0.1:4280`.
    pub fn origin(url: &str) -> Self {
        let base = url.trim_end_matches('/');
        Self {
            machines: base.to_owned(),
            graphql: format!("{base}/graphql"),
        }
    }
}

/// Whose move it is after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlyErrorKind {
    /// 401/403: the token is missing, wrong or lacks access. The user fixes it.
    Unauthorized,
    /// 404.
    NotFound,
    /// 409: a lease is held by someone else, or a version conflict.
    Conflict,
    /// Another 4xx, or a GraphQL error: Fly refused the request.
    Rejected,
    /// Fly could not be reached, or answered 408/429/5xx after retries: observation is
    /// unknown, never unhealthy.
    Unavailable,
    /// Fly answered something we could not read.
    Protocol,
}

/// A failed Fly call.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {path}: {}{message}{}", status.map(|s| format!("{s} ")).unwrap_or_default(), request_id.as_ref().map(|r| format!(" (fly-request-id {r})")).unwrap_or_default())]
pub struct FlyError {
    /// Whose move it is.
    pub kind: FlyErrorKind,
    /// HTTP method.
    pub method: String,
    /// Path, without host or query.
    pub path: String,
    /// HTTP status, if one came back.
    pub status: Option<u16>,
    /// Fly's `error` text, or the transport error.
    pub message: String,
    /// `fly-request-id` response header.
    pub request_id: Option<String>,
}

impl FlyError {
    /// True when the caller should treat the observation as unknown.
    pub fn is_unavailable(&self) -> bool {
        self.kind == FlyErrorKind::Unavailable
    }
}

/// A Fly API client. Cheap to clone.
#[derive(Clone)]
pub struct FlyClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    token: Secret,
    retries: usize,
}

impl std::fmt::Debug for FlyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyClient")
            .field("endpoints", &self.endpoints)
            .field("token", &self.token)
            .finish()
    }
}

/// Per-request timeout; `wait` calls add their own `timeout` to it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl FlyClient {
    /// A client for `endpoints` authenticating with `token`.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(endpoints: Endpoints, token: Secret) -> Result<Self, FlyError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("opsctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| FlyError {
                kind: FlyErrorKind::Protocol,
                method: String::new(),
                path: String::new(),
                status: None,
                message: format!("building the HTTP client: {e}"),
                request_id: None,
            })?;
        Ok(Self {
            http,
            endpoints,
            token,
            retries: 4,
        })
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Fly's scheme rule: macaroons (`fm1r_`, `fm2_`) go as `FlyV1`, others as `Bearer`
    /// (fly-go `tokens.go`, NOTES.md §1).
    fn auth_header(&self) -> String {
        let t = self.token.expose();
        if t.starts_with("FlyV1 ") {
            t.to_owned()
        } else if t.starts_with("fm1r_") || t.starts_with("fm2_") {
            format!("FlyV1 {t}")
        } else {
            format!("Bearer {t}")
        }
    }

    async fn send_once<T: DeserializeOwned>(
        &self,
        method: &Method,
        url: &str,
        path: &str,
        body: Option<&Value>,
        nonce: Option<&str>,
        timeout: Duration,
    ) -> Result<T, FlyError> {
        let err =
            |kind, status: Option<u16>, message: String, request_id: Option<String>| FlyError {
                kind,
                method: method.to_string(),
                path: path.to_owned(),
                status,
                message,
                request_id,
            };
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(reqwest::header::AUTHORIZATION, self.auth_header())
            .timeout(timeout);
        if let Some(nonce) = nonce {
            req = req.header("fly-machine-lease-nonce", nonce);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| {
            err(
                FlyErrorKind::Unavailable,
                None,
                format!("could not reach Fly: {}", without_url(&e)),
                None,
            )
        })?;
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("fly-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let bytes = resp.bytes().await.map_err(|e| {
            err(
                FlyErrorKind::Unavailable,
                Some(status.as_u16()),
                format!("reading the response: {}", without_url(&e)),
                request_id.clone(),
            )
        })?;
        if status.is_success() {
            let text: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
            return serde_json::from_slice(text).map_err(|e| {
                err(
                    FlyErrorKind::Protocol,
                    Some(status.as_u16()),
                    format!("unexpected response body: {e}"),
                    request_id,
                )
            });
        }
        let parsed: Option<ErrorResponse> = serde_json::from_slice(&bytes).ok();
        let mut message = parsed
            .map(|e| {
                if e.error.is_empty() {
                    e.message.unwrap_or_default()
                } else {
                    e.error
                }
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).chars().take(200).collect());
        if let Some(secs) = retry_after {
            message.push_str(&format!(" (retry after {secs}s)"));
        }
        let kind = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => FlyErrorKind::Unauthorized,
            StatusCode::NOT_FOUND => FlyErrorKind::NotFound,
            StatusCode::CONFLICT => FlyErrorKind::Conflict,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => {
                FlyErrorKind::Unavailable
            }
            s if s.is_server_error() => FlyErrorKind::Unavailable,
            _ => FlyErrorKind::Rejected,
        };
        Err(err(kind, Some(status.as_u16()), message, request_id))
    }

    /// Send; GET and DELETE (idempotent) are retried when the failure is transient.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Value>,
        nonce: Option<&str>,
        extra_timeout: Duration,
    ) -> Result<T, FlyError> {
        let url = format!("{}{path}{query}", self.endpoints.machines);
        let timeout = REQUEST_TIMEOUT + extra_timeout;
        let once = || self.send_once::<T>(&method, &url, path, body.as_ref(), nonce, timeout);
        if method != Method::GET && method != Method::DELETE {
            return once().await;
        }
        once.retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(200))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(self.retries)
                .with_jitter(),
        )
        .when(|e: &FlyError| e.kind == FlyErrorKind::Unavailable && e.status != Some(408))
        .notify(|e: &FlyError, d: Duration| {
            tracing::debug!(error = %e, retry_in_ms = d.as_millis() as u64, "retrying Fly call");
        })
        .await
    }

    /// `GET /v1/apps/{app}/machines`: every machine of the app except destroyed ones.
    ///
    /// # Errors
    /// [`FlyError`]; `Unavailable` after retries when Fly cannot be reached.
    pub async fn list_machines(&self, app: &str) -> Result<Vec<Machine>, FlyError> {
        let path = format!("/v1/apps/{}/machines", enc(app));
        self.call(Method::GET, &path, "", None, None, Duration::ZERO)
            .await
    }

    /// `GET /v1/apps/{app}/machines/{id}`.
    ///
    /// # Errors
    /// [`FlyError`]; `NotFound` for an unknown machine.
    pub async fn get_machine(&self, app: &str, id: &str) -> Result<Machine, FlyError> {
        let path = format!("/v1/apps/{}/machines/{}", enc(app), enc(id));
        self.call(Method::GET, &path, "", None, None, Duration::ZERO)
            .await
    }

    /// `POST /v1/apps/{app}/machines/{id}`: replace the machine's whole config. Returns the
    /// machine with its new `instance_id`. Not retried (not idempotent).
    ///
    /// # Errors
    /// [`FlyError`]; `Conflict` when a lease is held by someone else.
    pub async fn update_machine(
        &self,
        app: &str,
        id: &str,
        request: &MachineRequest,
        nonce: Option<&str>,
    ) -> Result<Machine, FlyError> {
        let path = format!("/v1/apps/{}/machines/{}", enc(app), enc(id));
        let body = to_value(request);
        self.call(Method::POST, &path, "", Some(body), nonce, Duration::ZERO)
            .await
    }

    /// `POST …/{id}/lease` with body `{"ttl": ttl_secs}`: acquire a lease, or refresh the
    /// one held when `nonce` is given (Fly returns the same nonce).
    ///
    /// # Errors
    /// [`FlyError`]; `Conflict` when someone else holds it.
    pub async fn acquire_lease(
        &self,
        app: &str,
        id: &str,
        ttl_secs: u64,
        description: &str,
        nonce: Option<&str>,
    ) -> Result<Lease, FlyError> {
        let path = format!("/v1/apps/{}/machines/{}/lease", enc(app), enc(id));
        let body = json!({"ttl": ttl_secs, "description": description});
        let env: LeaseEnvelope = self
            .call(Method::POST, &path, "", Some(body), nonce, Duration::ZERO)
            .await?;
        env.data.ok_or_else(|| FlyError {
            kind: FlyErrorKind::Protocol,
            method: "POST".into(),
            path,
            status: None,
            message: format!("lease response without data (status {})", env.status),
            request_id: None,
        })
    }

    /// `DELETE …/{id}/lease` with the nonce: release a lease. Idempotent.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn release_lease(&self, app: &str, id: &str, nonce: &str) -> Result<(), FlyError> {
        let path = format!("/v1/apps/{}/machines/{}/lease", enc(app), enc(id));
        let _: Value = self
            .call(Method::DELETE, &path, "", None, Some(nonce), Duration::ZERO)
            .await?;
        Ok(())
    }

    /// `GET …/{id}/wait?state=S&timeout=T&instance_id=V`: block until the machine version
    /// reaches `state`. `timeout` is clamped to 1–60 s as Fly requires. `Ok(false)` on Fly's
    /// 408 (not there yet; call again).
    ///
    /// # Errors
    /// [`FlyError`] other than 408.
    pub async fn wait(
        &self,
        app: &str,
        id: &str,
        instance_id: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<bool, FlyError> {
        let secs = timeout.as_secs().clamp(1, 60);
        let path = format!("/v1/apps/{}/machines/{}/wait", enc(app), enc(id));
        let query = format!(
            "?state={}&timeout={secs}&instance_id={}",
            enc(state),
            enc(instance_id)
        );
        match self
            .call::<Value>(
                Method::GET,
                &path,
                &query,
                None,
                None,
                Duration::from_secs(secs),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.status == Some(408) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn graphql(
        &self,
        query: &str,
        variables: Value,
        idempotent: bool,
    ) -> Result<Value, FlyError> {
        let request = GraphqlRequest {
            query: query.to_owned(),
            variables: variables.as_object().cloned().unwrap_or_default(),
            operation_name: None,
        };
        let url = self.endpoints.graphql.clone();
        let body = to_value(&request);
        let once = || {
            self.send_once::<GraphqlResponse>(
                &Method::POST,
                &url,
                "/graphql",
                Some(&body),
                None,
                REQUEST_TIMEOUT,
            )
        };
        let resp = if idempotent {
            once.retry(
                ExponentialBuilder::default()
                    .with_max_times(self.retries)
                    .with_jitter(),
            )
            .when(|e: &FlyError| e.kind == FlyErrorKind::Unavailable)
            .await?
        } else {
            once().await?
        };
        if let Some(first) = resp.errors.first() {
            let code = first
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = match code {
                "UNAUTHORIZED" => FlyErrorKind::Unauthorized,
                "NOT_FOUND" => FlyErrorKind::NotFound,
                "SERVICE_UNAVAILABLE"
                | "MAINTENANCE"
                | "SERVER_ERROR"
                | "INTERNAL_SERVER_ERROR" => FlyErrorKind::Unavailable,
                _ => FlyErrorKind::Rejected,
            };
            return Err(FlyError {
                kind,
                method: "POST".into(),
                path: "/graphql".into(),
                status: Some(200),
                message: first.message.clone(),
                request_id: None,
            });
        }
        Ok(resp.data.unwrap_or(Value::Null))
    }

    /// Releases of `app`, newest first (GraphQL `releasesUnprocessed`, as `fly releases`
    /// asks for them; NOTES.md §3.2).
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn list_releases(&self, app: &str, limit: u32) -> Result<Vec<GqlRelease>, FlyError> {
        const QUERY: &str = "query($appName: String!, $limit: Int!) { app(name: $appName) { releases: releasesUnprocessed(first: $limit) { nodes { id version description reason status imageRef stable createdAt } } } }";
        let data = self
            .graphql(QUERY, json!({"appName": app, "limit": limit}), true)
            .await?;
        let nodes = data
            .pointer("/app/releases/nodes")
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        let mut releases: Vec<GqlRelease> = decode(nodes, "/graphql")?;
        releases.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(releases)
    }

    /// Create a release (GraphQL `createRelease`); returns `(id, version)`.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn create_release(
        &self,
        app: &str,
        image: &str,
        strategy: &str,
    ) -> Result<(String, i64), FlyError> {
        const QUERY: &str = "mutation($input: CreateReleaseInput!) { createRelease(input: $input) { release { id version } } }";
        let input = json!({"input": {"appId": app, "image": image, "platformVersion": "machines", "strategy": strategy, "definition": {}}});
        let data = self.graphql(QUERY, input, false).await?;
        let release = data
            .pointer("/createRelease/release")
            .cloned()
            .unwrap_or(Value::Null);
        let id = release
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let version = release.get("version").and_then(Value::as_i64);
        match version {
            Some(v) if !id.is_empty() => Ok((id, v)),
            _ => Err(FlyError {
                kind: FlyErrorKind::Protocol,
                method: "POST".into(),
                path: "/graphql".into(),
                status: Some(200),
                message: "createRelease returned no release id/version".into(),
                request_id: None,
            }),
        }
    }

    /// Set a release's status (`running`, `complete`, `failed`, `interrupted`) with GraphQL
    /// `updateRelease`. Idempotent.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn update_release(&self, release_id: &str, status: &str) -> Result<(), FlyError> {
        const QUERY: &str = "mutation($input: UpdateReleaseInput!) { updateRelease(input: $input) { release { id } } }";
        self.graphql(
            QUERY,
            json!({"input": {"releaseId": release_id, "status": status}}),
            true,
        )
        .await
        .map(|_| ())
    }

    /// `GET /v1/apps/{app}`.
    ///
    /// # Errors
    /// [`FlyError`]; `NotFound` for an unknown app.
    pub async fn get_app(&self, app: &str) -> Result<wire::App, FlyError> {
        let path = format!("/v1/apps/{}", enc(app));
        self.call(Method::GET, &path, "", None, None, Duration::ZERO)
            .await
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Serialising our own wire structs to JSON cannot fail: no non-string map keys, no I/O.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn decode<T: DeserializeOwned>(v: Value, path: &str) -> Result<T, FlyError> {
    serde_json::from_value(v).map_err(|e| FlyError {
        kind: FlyErrorKind::Protocol,
        method: "POST".into(),
        path: path.into(),
        status: Some(200),
        message: format!("unexpected response: {e}"),
        request_id: None,
    })
}

/// A reqwest error's text without the URL (which could carry a query secret in other APIs).
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}

/// Percent-encode one path or query component.
fn enc(s: &str) -> String {
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

    #[test]
    fn macaroons_use_flyv1_others_bearer() {
        let c = |t: &str| FlyClient::new(Endpoints::origin("http://x"), Secret::new(t)).unwrap();
        assert_eq!(c("fm2_abc").auth_header(), "FlyV1 fm2_abc");
        assert_eq!(c("plain").auth_header(), "Bearer plain");
        assert_eq!(c("FlyV1 fm2_x").auth_header(), "FlyV1 fm2_x");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = FlyClient::new(Endpoints::fly(), Secret::new("fm2_secret_value")).unwrap();
        assert!(!format!("{c:?}").contains("secret_value"));
    }

    #[test]
    fn path_components_are_encoded() {
        assert_eq!(enc("a b/c"), "a%20b%2Fc");
        assert_eq!(enc("lowendinsight"), "lowendinsight");
    }
}
