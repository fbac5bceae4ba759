//! What every Fly API request passes through before its handler, in this order: the request
//! counter, the transport faults ([`super::faults::layer::transport`]), the token check, Fly's
//! rate limits ([`super::limits`]) and the faults tied to one call
//! ([`super::faults::layer::handler`]).
//!
//! Fly accepts `Authorization: Bearer <token>` and, for macaroons, `FlyV1 <token>` (NOTES.md
//! §1). The simulator accepts any non-empty token in either scheme: it checks that a client
//! *sends* credentials, not which ones. A request without them gets Fly's 401 body
//! `{"error":"Authenticate: token validation error"}`. The token is never logged or stored.
//!
//! Counting happens first, so rejected requests count too: tests assert on the calls Fly
//! *received*. The `/__sim/` control API is neither counted nor authenticated.
//!
//! Around all of that, [`fly_response`] finishes every Fly API answer (not `/__sim/`): a fresh
//! `fly-request-id` header (NOTES.md §1), and Fly's `{"error": …}` body on a 405 (a method the
//! route does not serve), which axum otherwise sends empty.

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use super::error::SimError;
use super::ids::new_request_id;
use super::state::SimState;
use super::{faults, limits};

/// Registering a Fly API route once: the path template is both the route and the name it is
/// counted, limited and faulted under, so it is written once.
pub trait FlyRoutes {
    /// `router.route(template, fly_api(state, template, handlers))`.
    fn fly_route(
        self,
        state: &SimState,
        template: &'static str,
        handlers: MethodRouter<SimState>,
    ) -> Self;
}

impl FlyRoutes for axum::Router<SimState> {
    fn fly_route(
        self,
        state: &SimState,
        template: &'static str,
        handlers: MethodRouter<SimState>,
    ) -> Self {
        self.route(template, fly_api(state, template, handlers))
    }
}

/// Wraps one route's handlers: counted under `"METHOD template"`, transport faults,
/// authenticated, rate limited, call faults (the last layer added runs first).
pub fn fly_api(
    state: &SimState,
    template: &'static str,
    handlers: MethodRouter<SimState>,
) -> MethodRouter<SimState> {
    let route = (state.clone(), template);
    handlers
        .layer(middleware::from_fn_with_state(
            route.clone(),
            faults::layer::handler,
        ))
        .layer(middleware::from_fn_with_state(route.clone(), limits::limit))
        .layer(middleware::from_fn(require_token))
        .layer(middleware::from_fn_with_state(
            route.clone(),
            faults::layer::transport,
        ))
        .layer(middleware::from_fn_with_state(route, count))
}

async fn count(
    State((state, template)): State<(SimState, &'static str)>,
    req: Request,
    next: Next,
) -> Response {
    state.count_request(format!("{} {template}", req.method()));
    tracing::debug!(method = %req.method(), route = template, "fly simulator request");
    next.run(req).await
}

async fn require_token(req: Request, next: Next) -> Response {
    let authorized = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(has_token);
    if authorized {
        next.run(req).await
    } else {
        SimError::Unauthorized.into_response()
    }
}

/// `Bearer <token>` (scheme case-insensitive) or `FlyV1 <token>`, token non-empty.
fn has_token(header: &str) -> bool {
    match header.trim().split_once(' ') {
        Some((scheme, token)) => {
            (scheme.eq_ignore_ascii_case("bearer") || scheme == "FlyV1") && !token.trim().is_empty()
        }
        None => false,
    }
}

/// Response header Fly puts on every API answer; the client copies it into its errors.
pub const REQUEST_ID_HEADER: &str = "fly-request-id";

/// Outermost layer of the whole router: every answer outside `/__sim/` gets a fresh
/// `fly-request-id`, and axum's empty 405 becomes Fly's `{"error":"method not allowed"}`
/// (keeping its `Allow` header).
pub async fn fly_response(req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/__sim/") {
        return next.run(req).await;
    }
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED && !resp.headers().contains_key(CONTENT_TYPE)
    {
        let body = crate::fly::wire::ErrorResponse {
            error: "method not allowed".to_string(),
            status: None,
            message: None,
        };
        let mut json = (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
        for (name, value) in resp.headers() {
            if name != CONTENT_LENGTH && !json.headers().contains_key(name) {
                json.headers_mut().insert(name.clone(), value.clone());
            }
        }
        resp = json;
    }
    if let Ok(id) = HeaderValue::from_str(&new_request_id()) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    resp
}

/// Answers paths no route matches: 404 `{"error":"not found"}`, counted as `unmatched`
/// unless under `/__sim/`.
pub async fn unmatched(State(state): State<SimState>, req: Request) -> Response {
    if !req.uri().path().starts_with("/__sim/") {
        state.count_request("unmatched".to_string());
    }
    let body = crate::fly::wire::ErrorResponse {
        error: "not found".to_string(),
        status: None,
        message: None,
    };
    (axum::http::StatusCode::NOT_FOUND, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::has_token;

    #[test]
    fn schemes_and_empty_tokens() {
        assert!(has_token("Bearer abc"));
        assert!(has_token("bearer abc"));
        assert!(has_token("FlyV1 fm2_abc,fm2_def"));
        assert!(!has_token("Bearer "));
        assert!(!has_token("Bearer"));
        assert!(!has_token("Basic abc"));
        assert!(!has_token(""));
    }
}
