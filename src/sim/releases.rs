//! Releases, both ways Fly serves them: GraphQL at `POST /graphql` and the newer REST API at
//! `/api/v1/releases…` (NOTES.md §3).
//!
//! GraphQL is recognised, not parsed: the handler looks for the field names flyctl and fly-go
//! send (`releasesUnprocessed`, `currentReleaseUnprocessed`, `createRelease`,
//! `updateRelease`), reads the app from `app(name: $var)` or `app(name: "literal")`, honours
//! aliases on `app` and on the release fields (`releases: releasesUnprocessed(first: $limit)`),
//! and takes mutation inputs from the `input` variable. Selection sets are ignored: every
//! field of a release is returned. Anything else gets a GraphQL error with code `INVALID`.
//! GraphQL errors arrive with HTTP 200, as Fly sends them.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Map, Value, json};

use super::auth::fly_api;
use super::error::{SimError, parse_required};
use super::scenario::ReleaseStatus;
use super::state::{SimState, World};
use crate::fly::wire::{
    CreateReleaseRequest, GraphqlError, GraphqlRequest, GraphqlResponse, ReleaseEnvelope,
    ReleasesEnvelope, UpdateReleaseRequest,
};

/// Releases returned by the REST list when `limit` is absent (flyctl asks for 25).
const DEFAULT_LIMIT: usize = 25;

/// GraphQL and REST release routes.
pub fn routes(state: &SimState) -> Router<SimState> {
    Router::new()
        .route("/graphql", fly_api(state, "/graphql", post(graphql)))
        .route(
            "/api/v1/releases",
            fly_api(state, "/api/v1/releases", post(create_rest)),
        )
        .route(
            "/api/v1/releases/{id}",
            fly_api(state, "/api/v1/releases/{id}", patch(update_rest)),
        )
        .route(
            "/api/v1/apps/{app}/releases",
            fly_api(state, "/api/v1/apps/{app}/releases", get(list_rest)),
        )
        .route(
            "/api/v1/apps/{app}/releases/current",
            fly_api(
                state,
                "/api/v1/apps/{app}/releases/current",
                get(current_rest),
            ),
        )
}

fn gql_error(message: String, code: &str) -> GraphqlError {
    GraphqlError {
        message,
        extensions: Some(json!({"code": code})),
    }
}

fn gql_fail(message: String, code: &str) -> GraphqlResponse {
    GraphqlResponse {
        data: None,
        errors: vec![gql_error(message, code)],
    }
}

fn app_not_found(app: &str) -> GraphqlResponse {
    gql_fail(format!("Could not find App \"{app}\""), "NOT_FOUND")
}

async fn graphql(State(s): State<SimState>, body: Bytes) -> Response {
    let req: GraphqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let resp = gql_fail(format!("invalid request body: {e}"), "INVALID");
            return (StatusCode::BAD_REQUEST, Json(resp)).into_response();
        }
    };
    let resp = s.with_world(|w, now| answer(w, now, &req));
    Json(resp).into_response()
}

fn answer(
    w: &mut World,
    now: chrono::DateTime<chrono::Utc>,
    req: &GraphqlRequest,
) -> GraphqlResponse {
    let q = req.query.as_str();
    let input = req
        .variables
        .get("input")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if find_field(q, "createRelease").is_some() {
        return create_release_gql(w, now, &input);
    }
    if find_field(q, "updateRelease").is_some() {
        return update_release_gql(w, now, &input);
    }
    let list = find_field(q, "releasesUnprocessed");
    let current = find_field(q, "currentReleaseUnprocessed");
    if list.is_none() && current.is_none() {
        return gql_fail(
            "query not supported by the simulator: it answers releasesUnprocessed, \
             currentReleaseUnprocessed, createRelease and updateRelease"
                .to_string(),
            "INVALID",
        );
    }
    let Some(app_at) = find_field(q, "app") else {
        return gql_fail("expected app(name: …)".to_string(), "INVALID");
    };
    let Some(name) = argument(q, app_at, "app", "name", &req.variables)
        .and_then(|v| v.as_str().map(str::to_string))
    else {
        return gql_fail("app(name:) needs a string".to_string(), "INVALID");
    };
    let Ok(app) = w.app(&name) else {
        return app_not_found(&name);
    };
    let mut fields = Map::new();
    if let Some(at) = list {
        let limit = argument(q, at, "releasesUnprocessed", "first", &req.variables)
            .and_then(|v| v.as_u64())
            .and_then(|n| usize::try_from(n).ok());
        let nodes: Vec<Value> = app
            .releases_newest_first(limit)
            .into_iter()
            .map(|r| serde_json::to_value(r.to_gql()).unwrap_or(Value::Null))
            .collect();
        fields.insert(alias(q, at, "releasesUnprocessed"), json!({"nodes": nodes}));
    }
    if let Some(at) = current {
        let node = app
            .current_release()
            .map(|r| serde_json::to_value(r.to_gql()).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        fields.insert(alias(q, at, "currentReleaseUnprocessed"), node);
    }
    let mut data = Map::new();
    data.insert(alias(q, app_at, "app"), Value::Object(fields));
    GraphqlResponse {
        data: Some(Value::Object(data)),
        errors: Vec::new(),
    }
}

fn create_release_gql(
    w: &mut World,
    now: chrono::DateTime<chrono::Utc>,
    input: &Map<String, Value>,
) -> GraphqlResponse {
    let text = |k: &str| {
        input
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (app_id, image) = (text("appId"), text("image"));
    if app_id.is_empty() || image.is_empty() {
        return gql_fail(
            "createRelease needs input.appId and input.image".to_string(),
            "INVALID",
        );
    }
    let user = w.lease_owner.clone();
    let Ok(app) = w.app_mut(&app_id) else {
        return app_not_found(&app_id);
    };
    let definition = input.get("definition").cloned().unwrap_or(Value::Null);
    let r = app.create_release(&image, &text("strategy"), definition, &user, now);
    GraphqlResponse {
        data: Some(json!({"createRelease": {"release": {"id": r.id, "version": r.version}}})),
        errors: Vec::new(),
    }
}

fn update_release_gql(
    w: &mut World,
    now: chrono::DateTime<chrono::Utc>,
    input: &Map<String, Value>,
) -> GraphqlResponse {
    let id = input
        .get("releaseId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let status = input
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(status) = ReleaseStatus::parse(&status.to_lowercase()) else {
        return gql_fail(format!("invalid status {status:?}"), "INVALID");
    };
    let Some(r) = w.release_mut(id) else {
        return gql_fail(format!("Could not find Release \"{id}\""), "NOT_FOUND");
    };
    r.status = status;
    r.updated_at = now;
    if let Some(m) = input.get("metadata") {
        r.metadata = Some(m.clone());
    }
    GraphqlResponse {
        data: Some(json!({"updateRelease": {"release": {"id": r.id}}})),
        errors: Vec::new(),
    }
}

/// Byte offset of `field` used as a field name in `query` (not as part of a longer name).
fn find_field(query: &str, field: &str) -> Option<usize> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = query[from..].find(field).map(|i| i + from) {
        let before = query[..i].chars().next_back();
        let after = query[i + field.len()..].chars().next();
        if !before.is_some_and(|c| ident(c) || c == '$') && !after.is_some_and(ident) {
            return Some(i);
        }
        from = i + field.len();
    }
    None
}

/// The alias in front of the field at `at` (`alias: field`), else the field name.
fn alias(query: &str, at: usize, field: &str) -> String {
    let before = query[..at].trim_end();
    if let Some(rest) = before.strip_suffix(':') {
        let rest = rest.trim_end();
        let start = rest
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        if start < rest.len() {
            return rest[start..].to_string();
        }
    }
    field.to_string()
}

/// The value of argument `arg` of the field at `at`: a `$variable` (looked up), a quoted
/// string or a number.
fn argument(
    query: &str,
    at: usize,
    field: &str,
    arg: &str,
    vars: &Map<String, Value>,
) -> Option<Value> {
    let rest = query[at + field.len()..].trim_start();
    let args = rest.strip_prefix('(')?;
    let args = &args[..args.find(')')?];
    let i = find_field(args, arg)?;
    let value = args[i + arg.len()..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    if let Some(var) = value.strip_prefix('$') {
        let end = var
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(var.len());
        return vars.get(&var[..end]).cloned();
    }
    if let Some(s) = value.strip_prefix('"') {
        return Some(Value::String(s[..s.find('"')?].to_string()));
    }
    let end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    value[..end].parse::<u64>().ok().map(Value::from)
}

async fn create_rest(State(s): State<SimState>, body: Bytes) -> Result<Response, SimError> {
    let req: CreateReleaseRequest = parse_required(&body)?;
    if req.image.is_empty() {
        return Err(SimError::BadRequest("image is required".to_string()));
    }
    s.with_world(|w, now| {
        let user = w.lease_owner.clone();
        let app = w.app_mut(&req.app_name)?;
        let r = app.create_release(&req.image, &req.strategy, req.definition, &user, now);
        let body = ReleaseEnvelope {
            release: r.to_rest(),
        };
        Ok((StatusCode::CREATED, Json(body)).into_response())
    })
}

async fn update_rest(
    State(s): State<SimState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ReleaseEnvelope>, SimError> {
    let req: UpdateReleaseRequest = parse_required(&body)?;
    let status = ReleaseStatus::parse(&req.status).ok_or_else(|| {
        SimError::BadRequest(format!(
            "invalid status {:?}; expected pending, running, complete, failed or interrupted",
            req.status
        ))
    })?;
    s.with_world(|w, now| {
        let r = w.release_mut(&id).ok_or(SimError::ReleaseNotFound)?;
        r.status = status;
        r.updated_at = now;
        if req.metadata.is_some() {
            r.metadata = req.metadata;
        }
        Ok(Json(ReleaseEnvelope {
            release: r.to_rest(),
        }))
    })
}

async fn list_rest(
    State(s): State<SimState>,
    Path(app): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Result<Json<ReleasesEnvelope>, SimError> {
    let limit = match q.iter().find(|(k, _)| k == "limit") {
        None => DEFAULT_LIMIT,
        Some((_, v)) => v
            .parse()
            .map_err(|_| SimError::BadRequest(format!("invalid limit {v:?}")))?,
    };
    s.with_world(|w, _| {
        let app = w.app(&app)?;
        let releases = app
            .releases_newest_first(Some(limit))
            .into_iter()
            .map(|r| r.to_rest())
            .collect();
        Ok(Json(ReleasesEnvelope { releases }))
    })
}

async fn current_rest(
    State(s): State<SimState>,
    Path(app): Path<String>,
) -> Result<Json<ReleaseEnvelope>, SimError> {
    s.with_world(|w, _| {
        let app = w.app(&app)?;
        let r = app.current_release().ok_or(SimError::NoCurrentRelease)?;
        Ok(Json(ReleaseEnvelope {
            release: r.to_rest(),
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLY_GO_LIST: &str = "query($appName: String!, $limit: Int!) {\n  app(name: $appName) {\n    releases: releasesUnprocessed(first: $limit) {\n      nodes { id version }\n    }\n  }\n}";

    #[test]
    fn finds_fields_aliases_and_arguments() {
        let vars: Map<String, Value> =
            serde_json::from_value(json!({"appName": "lei", "limit": 3})).unwrap();
        let at = find_field(FLY_GO_LIST, "releasesUnprocessed").unwrap();
        assert_eq!(alias(FLY_GO_LIST, at, "releasesUnprocessed"), "releases");
        assert_eq!(
            argument(FLY_GO_LIST, at, "releasesUnprocessed", "first", &vars),
            Some(json!(3))
        );
        let app_at = find_field(FLY_GO_LIST, "app").unwrap();
        assert_eq!(alias(FLY_GO_LIST, app_at, "app"), "app");
        assert_eq!(
            argument(FLY_GO_LIST, app_at, "app", "name", &vars),
            Some(json!("lei"))
        );
        let literal = "{ x: app(name: \"demo\") { currentReleaseUnprocessed { version } } }";
        let app_at = find_field(literal, "app").unwrap();
        assert_eq!(alias(literal, app_at, "app"), "x");
        assert_eq!(
            argument(literal, app_at, "app", "name", &vars),
            Some(json!("demo"))
        );
        assert!(find_field("query { currentReleaseUnprocessed }", "releasesUnprocessed").is_none());
        assert!(find_field("query($app: String) { x }", "app").is_none());
    }
}
