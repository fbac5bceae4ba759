//! The GitHub webhook receiver (issue #8): a push to the followed branch makes `opsctl run
//! --git-url` fetch at once instead of at the next interval.
//!
//! | request | answer |
//! |---|---|
//! | no or malformed `X-Hub-Signature-256`, or an HMAC that does not match | 401, nothing fetched |
//! | body over [`BODY_LIMIT`] | 413, nothing fetched |
//! | signed, not `application/json` | 415 (set the webhook's content type to `application/json`) |
//! | signed `X-GitHub-Event: ping` | 200 `{"kind":"webhook","event":"ping","result":"pong"}` |
//! | signed `push` with `ref` = `refs/heads/<branch>` | 202 `{"kind":"webhook","event":"push","result":"fetch"}`; a fetch starts now |
//! | signed `push` to another ref, a branch deletion, another event | 202 with `"result":"ignored"` and a `reason` |
//! | any request while opsctl manages no clone (no `--git-url`) | 404 saying so |
//!
//! The signature is GitHub's: `sha256=` and the lowercase hex HMAC-SHA256 of the raw body
//! under the webhook secret ("Validating webhook deliveries", docs.github.com), checked in
//! constant time (`aws_lc_rs::hmac::verify`). The secret is never logged; a refused delivery is
//! logged at WARN with its delivery id only.

use aws_lc_rs::hmac;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;

use crate::runtime::remote::FetchTrigger;
use crate::secret::Secret;

/// Largest body accepted, in bytes (2 MiB). GitHub caps deliveries at 25 MB, but a push event
/// is a few kB per commit and lists at most 20 commits; the limit bounds what an unsigned
/// request can make opsctl buffer before the signature is checked. A larger push is answered
/// 413 and picked up by the next interval fetch.
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// State of the webhook route.
#[derive(Clone)]
pub struct WebhookState {
    /// The webhook secret configured on GitHub (`--webhook-secret-file`, `OPSCTL_WEBHOOK_SECRET`).
    pub secret: Secret,
    /// The branch followed: pushes to `refs/heads/<branch>` trigger a fetch.
    pub branch: String,
    /// The fetch loop of `--git-url`; `None`: opsctl manages no clone, the route answers 404.
    pub fetch: Option<FetchTrigger>,
}

/// The route `POST /webhooks/github`.
pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/github", post(github))
        .with_state(state)
}

/// `sha256=<hex>` of `body` under `secret`: the `X-Hub-Signature-256` GitHub sends.
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// True when `header` (the `X-Hub-Signature-256` value) is the HMAC-SHA256 of `body` under
/// `secret`; constant time in the tag. An empty secret verifies nothing.
pub fn verify(secret: &Secret, body: &[u8], header: &str) -> bool {
    let Some(tag) = header.strip_prefix("sha256=").and_then(decode_hex) else {
        return false;
    };
    if secret.is_empty() || tag.len() != 32 {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    hmac::verify(&key, body, &tag).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    answer(status, json!({"kind": "error", "message": message}))
}

/// The fields of a push event used here.
#[derive(Debug, Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    deleted: bool,
}

async fn github(State(s): State<WebhookState>, headers: HeaderMap, body: Body) -> Response {
    let Some(fetch) = &s.fetch else {
        return error(
            StatusCode::NOT_FOUND,
            "webhook disabled: opsctl manages no clone here; start `opsctl run --git-url URL` (docs/git.md)",
        );
    };
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let delivery = text("x-github-delivery").unwrap_or("-").to_owned();
    let Some(signature) = text("x-hub-signature-256").map(str::to_owned) else {
        tracing::warn!(%delivery, "webhook refused: no X-Hub-Signature-256 header");
        return error(
            StatusCode::UNAUTHORIZED,
            "X-Hub-Signature-256 required: set a secret on the GitHub webhook",
        );
    };
    let declared = text(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return too_large(&delivery);
    }
    let Ok(body) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return too_large(&delivery);
    };
    if !verify(&s.secret, &body, &signature) {
        tracing::warn!(%delivery, "webhook refused: signature does not match the configured secret");
        return error(
            StatusCode::UNAUTHORIZED,
            "signature does not match: check the webhook secret",
        );
    }
    let json_body = text(header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.split(';').next().unwrap_or("").trim() == "application/json");
    if !json_body {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "set the webhook's content type to application/json",
        );
    }
    let event = text("x-github-event").unwrap_or("").to_owned();
    match event.as_str() {
        "ping" => {
            tracing::info!(%delivery, "webhook: ping from GitHub");
            answer(
                StatusCode::OK,
                json!({"kind": "webhook", "event": "ping", "result": "pong"}),
            )
        }
        "push" => {
            let Ok(push) = serde_json::from_slice::<Push>(&body) else {
                return error(StatusCode::BAD_REQUEST, "push event without a `ref`");
            };
            let wanted = format!("refs/heads/{}", s.branch);
            let ignored = |reason: String| {
                tracing::debug!(%delivery, git_ref = %push.git_ref, "webhook: push ignored: {reason}");
                answer(
                    StatusCode::ACCEPTED,
                    json!({"kind": "webhook", "event": "push", "result": "ignored", "reason": reason}),
                )
            };
            if push.git_ref != wanted {
                return ignored(format!("push to {}, not {wanted}", push.git_ref));
            }
            if push.deleted {
                tracing::warn!(%delivery, branch = %s.branch, "webhook: the followed branch was deleted on the remote; the last fetched commit stays in force");
                return ignored(format!("{wanted} was deleted"));
            }
            fetch.fetch_now();
            tracing::info!(%delivery, branch = %s.branch, after = push.after.as_deref().unwrap_or("-"), "webhook: push; fetching now");
            answer(
                StatusCode::ACCEPTED,
                json!({"kind": "webhook", "event": "push", "result": "fetch"}),
            )
        }
        other => answer(
            StatusCode::ACCEPTED,
            json!({"kind": "webhook", "event": other, "result": "ignored",
                "reason": "only push (and ping) events are used"}),
        ),
    }
}

fn too_large(delivery: &str) -> Response {
    tracing::warn!(%delivery, limit = BODY_LIMIT, "webhook refused: body too large");
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body over the 2 MiB limit; the next interval fetch picks the push up",
    )
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    const SECRET: &str = "It's a Secret to Everybody";

    /// GitHub's documented test vector ("Validating webhook deliveries", docs.github.com).
    #[test]
    fn githubs_documented_test_vector() {
        let secret = Secret::new(SECRET);
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(&secret, b"Hello, World!"), expected);
        assert!(verify(&secret, b"Hello, World!", expected));
        assert!(!verify(&secret, b"Hello, World?", expected));
        assert!(!verify(&Secret::new("another"), b"Hello, World!", expected));
        for bad in [
            "",
            "sha256=",
            "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1z",
            "sha256=757107ea",
        ] {
            assert!(!verify(&secret, b"Hello, World!", bad), "{bad:?}");
        }
        assert!(!verify(&Secret::new(""), b"", &sign(&Secret::new(""), b"")));
    }

    fn state() -> (WebhookState, FetchTrigger) {
        let fetch = FetchTrigger::default();
        let state = WebhookState {
            secret: Secret::new(SECRET),
            branch: "main".into(),
            fetch: Some(fetch.clone()),
        };
        (state, fetch)
    }

    fn delivery(event: &str, body: &[u8], signature: Option<String>) -> Request<Body> {
        let mut b = Request::post("/webhooks/github")
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", "d-1");
        if let Some(sig) = signature {
            b = b.header("x-hub-signature-256", sig);
        }
        b.body(Body::from(body.to_vec())).unwrap()
    }

    fn signed(event: &str, body: &str) -> Request<Body> {
        delivery(
            event,
            body.as_bytes(),
            Some(sign(&Secret::new(SECRET), body.as_bytes())),
        )
    }

    async fn send(state: &WebhookState, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let resp = router(state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    /// True when a fetch was requested (the permit `fetch_now` leaves), consuming it.
    async fn fetch_requested(fetch: &FetchTrigger) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), fetch.requested())
            .await
            .is_ok()
    }

    const PUSH_MAIN: &str = r#"{"ref":"refs/heads/main","after":"abc123","deleted":false}"#;

    #[tokio::test]
    async fn a_signed_push_to_the_branch_fetches_now() {
        let (state, fetch) = state();
        let (status, body) = send(&state, signed("push", PUSH_MAIN)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["result"], "fetch");
        assert!(fetch_requested(&fetch).await);

        let other = r#"{"ref":"refs/heads/feature","after":"abc123"}"#;
        let (status, body) = send(&state, signed("push", other)).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(body["result"], "ignored");
        assert!(
            !fetch_requested(&fetch).await,
            "another branch fetches nothing"
        );

        let deleted = r#"{"ref":"refs/heads/main","after":"0000","deleted":true}"#;
        assert_eq!(
            send(&state, signed("push", deleted)).await.1["result"],
            "ignored"
        );
        let (status, body) = send(&state, signed("ping", r#"{"zen":"x"}"#)).await;
        assert_eq!(
            (status, body["result"].as_str()),
            (StatusCode::OK, Some("pong"))
        );
        assert_eq!(
            send(&state, signed("issues", "{}")).await.0,
            StatusCode::ACCEPTED
        );
        assert_eq!(
            send(&state, signed("push", "{}")).await.0,
            StatusCode::BAD_REQUEST
        );
        assert!(!fetch_requested(&fetch).await);
    }

    #[tokio::test]
    async fn unsigned_or_missigned_or_oversized_deliveries_fetch_nothing() {
        let (state, fetch) = state();
        let wrong = sign(&Secret::new("not the secret"), PUSH_MAIN.as_bytes());
        let other_body = sign(&Secret::new(SECRET), b"{}");
        for sig in [
            None,
            Some(wrong),
            Some(other_body),
            Some("sha256=zz".to_owned()),
        ] {
            let (status, _) =
                send(&state, delivery("push", PUSH_MAIN.as_bytes(), sig.clone())).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{sig:?}");
        }
        let big = format!(
            r#"{{"ref":"refs/heads/main","pad":"{}"}}"#,
            "x".repeat(BODY_LIMIT)
        );
        assert_eq!(
            send(&state, signed("push", &big)).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        // `oneshot` sends no Content-Length: that was the limit while reading. A declared
        // length over the limit is refused before reading.
        let mut declared = signed("push", PUSH_MAIN);
        declared.headers_mut().insert(
            "content-length",
            (BODY_LIMIT + 1).to_string().parse().unwrap(),
        );
        assert_eq!(
            send(&state, declared).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        let mut form = signed("push", PUSH_MAIN);
        form.headers_mut().insert(
            "content-type",
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        assert_eq!(
            send(&state, form).await.0,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert!(!fetch_requested(&fetch).await);
    }

    #[tokio::test]
    async fn without_a_managed_clone_the_webhook_says_it_is_disabled() {
        let state = WebhookState {
            secret: Secret::new(SECRET),
            branch: "main".into(),
            fetch: None,
        };
        let (status, body) = send(&state, signed("push", PUSH_MAIN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body["message"].as_str().unwrap().contains("--git-url"),
            "{body}"
        );
    }
}
