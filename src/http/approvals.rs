//! The approval endpoint, so approvals can come from a chat tool (DESIGN.md §8, issue #5):
//!
//! | route | does | answers |
//! |---|---|---|
//! | `GET /approvals` | pending approvals | 200 `{"kind":"pending","approvals":[{"id","app","plan_hash","title","age_secs"}]}` |
//! | `POST /approvals/{id}/approve` | approve, body `{"plan_hash":"…"}` (the hash the approver was shown) | 200 `{"kind":"approval","id","app","state":"approved","plan_hash"}`; 409 stale hash or not pending; 404 unknown |
//! | `POST /approvals/{id}/deny` | deny | 200 as above with `"state":"denied"`; 409 not pending; 404 unknown |
//!
//! Every route needs `Authorization: Bearer <token>`, compared in constant time; anything else
//! is 401 (and logged at WARN without the presented value). The plan hash binds the approval
//! to what was shown; the reconciler checks it again against what Fly reports when it runs the
//! plan, and a plan that changed in between is superseded, never run.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::governance::approvals::{self, Approval};
use crate::records::RecordStore;
use crate::runtime::clock::Clock;
use crate::secret::Secret;

/// State of the approval routes.
#[derive(Clone)]
pub struct ApprovalState {
    /// Where approvals are.
    pub store: Arc<RecordStore>,
    /// The bearer token required.
    pub token: Secret,
    /// Time source.
    pub clock: Arc<dyn Clock>,
}

/// The approval routes.
pub fn router(state: ApprovalState) -> Router {
    Router::new()
        .route("/approvals", get(list))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/deny", post(deny))
        .with_state(state)
}

/// True when `headers` carry `Authorization: Bearer <token>`; constant time in the token.
fn authorized(headers: &HeaderMap, token: &Secret) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    !token.is_empty() && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"kind": "error", "message": message.into()})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    tracing::warn!("approval endpoint: request without a valid bearer token refused");
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "a valid bearer token is required (Authorization: Bearer <the token opsctl run was given>); none was sent, or it does not match",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    r
}

async fn list(State(s): State<ApprovalState>, headers: HeaderMap) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    match approvals::pending(&s.store, None) {
        Ok(list) => {
            let now = s.clock.now();
            let items: Vec<_> = list
                .iter()
                .map(|a| {
                    json!({"id": a.id(), "app": a.app(), "plan_hash": a.data.plan_hash,
                    "title": a.record.title, "age_secs": a.age(now).num_seconds().max(0)})
                })
                .collect();
            Json(json!({"kind": "pending", "approvals": items})).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the records: {e}"),
        ),
    }
}

/// Body of `approve`.
#[derive(Debug, Deserialize)]
struct ApproveBody {
    plan_hash: String,
}

fn waiting(s: &ApprovalState, id: &str) -> Result<Approval, Box<Response>> {
    match approvals::find(&s.store, id) {
        Ok(Some(a)) if a.data.state == "pending" => Ok(a),
        Ok(Some(a)) => Err(Box::new(error(
            StatusCode::CONFLICT,
            format!("approval {id} is {}, not pending", a.data.state),
        ))),
        Ok(None) => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no approval {id}"),
        ))),
        Err(e) => Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the records: {e}"),
        ))),
    }
}

fn decided(a: &Approval) -> Response {
    Json(json!({"kind": "approval", "id": a.id(), "app": a.app(),
        "state": a.data.state, "plan_hash": a.data.plan_hash}))
    .into_response()
}

async fn approve(
    State(s): State<ApprovalState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<ApproveBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    // A missing, non-JSON or malformed body gets the same JSON error shape as the rest.
    let body = match body {
        Ok(Json(body)) => body,
        Err(rejection) => {
            return error(
                rejection.status(),
                format!(
                    "a JSON body {{\"plan_hash\": \"…\"}} with Content-Type: application/json is required (the plan hash you were shown): {}",
                    rejection.body_text()
                ),
            );
        }
    };
    let mut a = match waiting(&s, &id) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if body.plan_hash != a.data.plan_hash {
        return error(
            StatusCode::CONFLICT,
            format!(
                "stale: approval {id} is for plan {}, not {}; see `opsctl plan`",
                a.data.plan_hash, body.plan_hash
            ),
        );
    }
    if let Err(e) = a.approve(&s.store, "http", s.clock.now()) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("recording: {e}"));
    }
    tracing::info!(approval = %id, app = %a.app(), "approved over HTTP");
    decided(&a)
}

async fn deny(
    State(s): State<ApprovalState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&headers, &s.token) {
        return unauthorized();
    }
    let mut a = match waiting(&s, &id) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if let Err(e) = a.deny(&s.store, "http", s.clock.now()) {
        return error(StatusCode::INTERNAL_SERVER_ERROR, format!("recording: {e}"));
    }
    tracing::info!(approval = %id, app = %a.app(), "denied over HTTP");
    decided(&a)
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::governance::approvals::{ApprovalData, create_pending};
    use crate::runtime::clock::SystemClock;

    fn setup() -> (tempfile::TempDir, ApprovalState, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RecordStore::open_write(dir.path()).unwrap());
        let data = ApprovalData {
            state: "pending".into(),
            plan_hash: "00112233aabbccdd".into(),
            actions: vec![],
            policy: "default".into(),
            timeout_secs: 60,
            decided_by: None,
        };
        let a = create_pending(
            &store,
            "lowendinsight",
            "deploy".into(),
            data,
            SystemClock.now(),
        )
        .unwrap();
        let state = ApprovalState {
            store,
            token: Secret::new("s3cret-token"),
            clock: Arc::new(SystemClock),
        };
        (dir, state, a.id().to_owned())
    }

    fn post(uri: &str, auth: Option<&str>, body: &str) -> Request<Body> {
        let mut b = Request::post(uri).header("content-type", "application/json");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(Body::from(body.to_owned())).unwrap()
    }

    async fn status_of(state: &ApprovalState, req: Request<Body>) -> StatusCode {
        router(state.clone()).oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn unauthenticated_requests_are_rejected_and_change_nothing() {
        let (_dir, state, id) = setup();
        let uri = format!("/approvals/{id}/approve");
        let body = r#"{"plan_hash":"00112233aabbccdd"}"#;
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("s3cret-token"),
            Some("Basic s3cret-token"),
            Some("Bearer s3cret-toke"),
        ] {
            assert_eq!(
                status_of(&state, post(&uri, auth, body)).await,
                StatusCode::UNAUTHORIZED,
                "{auth:?}"
            );
        }
        let get = Request::get("/approvals").body(Body::empty()).unwrap();
        assert_eq!(status_of(&state, get).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            approvals::find(&state.store, &id)
                .unwrap()
                .unwrap()
                .data
                .state,
            "pending"
        );
    }

    /// A body that is not JSON gets the endpoint's JSON error shape with the status axum
    /// chose (415 without `Content-Type: application/json`), and nothing is decided.
    #[tokio::test]
    async fn a_body_that_is_not_json_gets_a_json_error() {
        let (_dir, state, id) = setup();
        let req = Request::post(format!("/approvals/{id}/approve"))
            .header("authorization", "Bearer s3cret-token")
            .body(Body::from("plan_hash=00112233aabbccdd"))
            .unwrap();
        let resp = router(state.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["kind"], "error");
        assert!(v["message"].as_str().unwrap().contains("plan_hash"), "{v}");
        let a = approvals::find(&state.store, &id).unwrap().unwrap();
        assert_eq!(a.data.state, "pending");
    }

    #[tokio::test]
    async fn an_approval_binds_to_the_plan_hash() {
        let (_dir, state, id) = setup();
        let uri = format!("/approvals/{id}/approve");
        let auth = Some("Bearer s3cret-token");
        let stale = post(&uri, auth, r#"{"plan_hash":"ffffffffffffffff"}"#);
        assert_eq!(status_of(&state, stale).await, StatusCode::CONFLICT);
        assert_eq!(
            status_of(&state, post(&uri, auth, "")).await,
            StatusCode::BAD_REQUEST
        );
        let ok = post(&uri, auth, r#"{"plan_hash":"00112233aabbccdd"}"#);
        assert_eq!(status_of(&state, ok).await, StatusCode::OK);
        let a = approvals::find(&state.store, &id).unwrap().unwrap();
        assert_eq!(a.data.state, "approved");
        assert_eq!(a.data.decided_by.as_deref(), Some("http"));
        let again = post(&uri, auth, r#"{"plan_hash":"00112233aabbccdd"}"#);
        assert_eq!(
            status_of(&state, again).await,
            StatusCode::CONFLICT,
            "decided once"
        );
        let unknown = post("/approvals/approval-nope/deny", auth, "");
        assert_eq!(status_of(&state, unknown).await, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn deny_closes_it() {
        let (_dir, state, id) = setup();
        let req = post(
            &format!("/approvals/{id}/deny"),
            Some("Bearer s3cret-token"),
            "",
        );
        assert_eq!(status_of(&state, req).await, StatusCode::OK);
        let a = approvals::find(&state.store, &id).unwrap().unwrap();
        assert_eq!(a.data.state, "denied");
        assert_eq!(a.record.close_reason.as_deref(), Some("denied"));
    }

    #[tokio::test]
    async fn without_a_token_the_endpoint_does_not_exist() {
        let router = crate::http::router(crate::http::HttpState {
            approvals: None,
            state_dir: None,
            manifests: None,
            reconciler: None,
        });
        let req = post("/approvals/x/approve", Some("Bearer x"), "{}");
        assert_eq!(
            router.oneshot(req).await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
}
