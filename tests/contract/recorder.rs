//! The simulator over a real socket, with every exchange recorded: method, path, query,
//! headers of interest, request body, status and response body, exactly as they crossed the
//! wire.
//!
//! It serves `opsctl::sim::router` wrapped in one axum middleware that buffers both bodies,
//! so the recording sees what the client sent and what the simulator answered, and nothing
//! in between can reshape them. `/__sim/` control calls are not recorded.

use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use opsctl::sim::{Scenario, SimState, router};
use serde_json::Value;

/// Largest body the recorder buffers.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// One request and its answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path without query.
    pub path: String,
    /// Decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// `user-agent` request header: tells the opsctl client (`opsctl/…`) from the test's own
    /// calls.
    pub user_agent: String,
    /// Request header names, lower case.
    pub headers: Vec<String>,
    /// Request body as JSON; `None` when empty. A body that is not JSON is kept as a string.
    pub request: Option<Value>,
    /// Response status.
    pub status: u16,
    /// Response body as JSON; `None` when empty.
    pub response: Option<Value>,
    /// Response header names, lower case.
    pub response_headers: Vec<String>,
}

impl Exchange {
    /// True for requests sent by `opsctl::fly::FlyClient`.
    pub fn is_from_client(&self) -> bool {
        self.user_agent.starts_with("opsctl/")
    }
}

/// A running, recording simulator; the server stops when this is dropped.
pub struct Recorder {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The simulator's state (clock, images).
    pub state: SimState,
    log: Arc<Mutex<Vec<Exchange>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_or_text(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
    )
}

async fn record(log: Arc<Mutex<Vec<Exchange>>>, req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/__sim/") {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let query: Vec<(String, String)> = parts.uri.query().map(url_decode_pairs).unwrap_or_default();
    let mut exchange = Exchange {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query,
        user_agent: parts
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        headers: parts
            .headers
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect(),
        request: json_or_text(&bytes),
        status: 0,
        response: None,
        response_headers: Vec::new(),
    };
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = to_bytes(rbody, MAX_BODY).await.unwrap_or_default();
    exchange.status = rparts.status.as_u16();
    exchange.response = json_or_text(&rbytes);
    exchange.response_headers = rparts
        .headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .collect();
    if let Ok(mut l) = log.lock() {
        l.push(exchange);
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

/// `a=1&b=x%20y` → pairs, percent- and `+`-decoded.
fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Recorder {
    /// Starts the simulator for `scenario` on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(scenario: Scenario) -> Self {
        let state = SimState::new(scenario);
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let app = router(state.clone()).layer(middleware::from_fn(move |req, next| {
            record(l.clone(), req, next)
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            state,
            log,
            task,
        }
    }

    /// Everything recorded so far.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}
