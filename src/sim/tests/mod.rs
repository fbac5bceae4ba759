//! Handler tests: `oneshot` on [`super::router`] with no socket, plus one test over a real
//! socket through [`super::serve`].
//!
//! The simulator under test runs the bundled LowEndInsight scenario with its clock nearly
//! frozen (`timeScale` 1e-6), so nothing moves unless a test advances virtual time; no test
//! sleeps to let a transition happen.

mod certificates;
mod control;
mod endpoints;
mod faults;
mod leases_wait;
mod limits;
mod logs;
mod machines;
mod release_commands;
mod releases;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::{Scenario, SimState, router};

pub(super) const APP: &str = "lowendinsight";
pub(super) const M1: &str = "148ed193b95d89";
pub(super) const M2: &str = "3d8d413b29d089";
pub(super) const NEW: &str = "registry.fly.io/lowendinsight:deployment-NEW";
pub(super) const BAD: &str = "registry.fly.io/lowendinsight:deployment-BAD";
pub(super) const CRASH: &str = "registry.fly.io/lowendinsight:deployment-CRASH";

/// A simulator on the LowEndInsight scenario with virtual time frozen.
pub(super) struct Sim {
    pub state: SimState,
    pub app: Router,
}

impl Sim {
    pub fn new() -> Self {
        let mut scenario = Scenario::lowendinsight_default();
        scenario.time_scale = 1e-6;
        Self::with(scenario)
    }

    pub fn with(scenario: Scenario) -> Self {
        let state = SimState::new(scenario);
        Self {
            app: router(state.clone()),
            state,
        }
    }

    /// Sends a request with a bearer token; answers (status, JSON body or Null).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_with(method, uri, body, &[("authorization", "Bearer test-token")])
            .await
    }

    /// As [`call`](Self::call), with exactly these headers.
    pub async fn call_with(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some(v) => Body::from(v.to_string()),
            None => Body::empty(),
        };
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{uri}: body is not JSON ({e}): {bytes:?}"))
        };
        (status, json)
    }

    /// Sends a request with a bearer token; answers (status, headers, body bytes or the
    /// error reading them — a dropped answer fails there).
    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, HeaderMap, Result<Vec<u8>, String>) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", "Bearer test-token");
        let body = body.map_or_else(Body::empty, |v| Body::from(v.to_string()));
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| e.to_string());
        (parts.status, parts.headers, bytes)
    }

    /// Installs a fault through `POST /__sim/faults`; panics unless it is accepted.
    pub async fn fault(&self, spec: Value) {
        let (status, body) = self.post("/__sim/faults", spec).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    pub async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, uri, Some(body)).await
    }

    /// Advances virtual time by `ms` milliseconds.
    pub fn advance_ms(&self, ms: u64) {
        self.state.advance(std::time::Duration::from_millis(ms));
    }

    /// The machine as `GET …/machines/{id}` returns it.
    pub async fn machine(&self, id: &str) -> crate::fly::wire::Machine {
        let (status, body) = self.get(&format!("/v1/apps/{APP}/machines/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Posts an update of machine `id` to `image` (current config, new image).
    pub async fn update_image(
        &self,
        id: &str,
        image: &str,
        nonce: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut config = self.machine(id).await.config.unwrap();
        config.image = image.to_string();
        let body = serde_json::json!({"config": config, "region": "iad"});
        let mut headers = vec![("authorization", "Bearer test-token")];
        if let Some(n) = nonce {
            headers.push(("fly-machine-lease-nonce", n));
        }
        self.call_with(
            Method::POST,
            &format!("/v1/apps/{APP}/machines/{id}"),
            Some(body),
            &headers,
        )
        .await
    }
}
