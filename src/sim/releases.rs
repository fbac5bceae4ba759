//! Releases, both ways Fly serves them: GraphQL at `POST /graphql` and the newer REST API at
//! `/api/v1/releases…` (NOTES.md §3).
//!
//! GraphQL is recognised, not parsed: the handler looks for the field names flyctl and fly-go
//! send (`releasesUnprocessed`, `currentReleaseUnprocessed`, `createRelease`,
//! `updateRelease`), reads the app from `app(name: $var)` or `app(name: "literal")`, honours
//! aliases on `app` and on the release fields (`releases: releasesUnprocessed(first: $limit)`),
//! and takes mutation inputs from the `input` variable. The answer under each of those fields
//! holds exactly what its selection set asks for (`selection`, `project`: nested sets
//! such as `nodes { … }` and `user { … }`, aliases; no fragments or directives), as a GraphQL
//! server answers. Anything else gets a GraphQL error with code `INVALID`.
//! GraphQL errors arrive with HTTP 200, as Fly sends them.

use crate::sim::auth::FlyRoutes;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use serde_json::{Map, Value, json};

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
        .fly_route(state, "/graphql", post(graphql))
        .fly_route(state, "/api/v1/releases", post(create_rest))
        .fly_route(state, "/api/v1/releases/{id}", patch(update_rest))
        .fly_route(state, "/api/v1/apps/{app}/releases", get(list_rest))
        .fly_route(
            state,
            "/api/v1/apps/{app}/releases/current",
            get(current_rest),
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
    for (field, run) in [
        ("createRelease", create_release_gql as Mutation),
        ("updateRelease", update_release_gql),
    ] {
        if let Some(at) = find_field(q, field) {
            let mut resp = run(w, now, &input);
            if let Some(value) = resp
                .data
                .as_mut()
                .and_then(|d| d.get_mut(field))
                .map(Value::take)
            {
                let mut data = Map::new();
                data.insert(alias(q, at, field), selected(q, at, field, value));
                resp.data = Some(Value::Object(data));
            }
            return resp;
        }
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
        let value = selected(q, at, "releasesUnprocessed", json!({"nodes": nodes}));
        fields.insert(alias(q, at, "releasesUnprocessed"), value);
    }
    if let Some(at) = current {
        let node = app
            .current_release()
            .map(|r| serde_json::to_value(r.to_gql()).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        let value = selected(q, at, "currentReleaseUnprocessed", node);
        fields.insert(alias(q, at, "currentReleaseUnprocessed"), value);
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

type Mutation =
    fn(&mut World, chrono::DateTime<chrono::Utc>, &Map<String, Value>) -> GraphqlResponse;

/// One field of a selection set: its response key (alias or name), name and sub-selection.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selected {
    key: String,
    name: String,
    children: Option<Vec<Selected>>,
}

/// `value` cut down to the selection set of the field at `at`; unchanged when the field has
/// none (a scalar, or a query shape the reader does not know).
fn selected(query: &str, at: usize, field: &str, value: Value) -> Value {
    match selection(query, at + field.len()) {
        Some(set) => project(&value, &set),
        None => value,
    }
}

/// The selection set that follows a field name ending at byte `from`: skips its arguments,
/// then reads `{ … }`. `None` without one.
fn selection(query: &str, from: usize) -> Option<Vec<Selected>> {
    let bytes = query.as_bytes();
    let mut i = skip_ignored(bytes, from);
    if bytes.get(i) == Some(&b'(') {
        i = skip_arguments(bytes, i)?;
        i = skip_ignored(bytes, i);
    }
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    read_set(bytes, &mut (i + 1))
}

fn skip_ignored(bytes: &[u8], mut i: usize) -> usize {
    while let Some(&c) = bytes.get(i) {
        if c == b'#' {
            while bytes.get(i).is_some_and(|c| *c != b'\n') {
                i += 1;
            }
        } else if c.is_ascii_whitespace() || c == b',' {
            i += 1;
        } else {
            break;
        }
    }
    i
}

/// From the `(` at `i` to just after its matching `)`, stepping over strings.
fn skip_arguments(bytes: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    while let Some(&c) = bytes.get(i) {
        i += 1;
        match (in_string, c) {
            (true, b'\\') => i += 1,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'(') => depth += 1,
            (false, b')') => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            (false, _) => {}
        }
    }
    None
}

fn read_name(bytes: &[u8], i: &mut usize) -> Option<String> {
    let start = *i;
    while bytes
        .get(*i)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        *i += 1;
    }
    (*i > start).then(|| String::from_utf8_lossy(&bytes[start..*i]).into_owned())
}

/// Reads fields up to the `}` closing a set whose `{` is just before `*i`.
fn read_set(bytes: &[u8], i: &mut usize) -> Option<Vec<Selected>> {
    let mut set = Vec::new();
    loop {
        *i = skip_ignored(bytes, *i);
        if bytes.get(*i) == Some(&b'}') {
            *i += 1;
            return Some(set);
        }
        let first = read_name(bytes, i)?;
        *i = skip_ignored(bytes, *i);
        let (key, name) = if bytes.get(*i) == Some(&b':') {
            *i = skip_ignored(bytes, *i + 1);
            let name = read_name(bytes, i)?;
            *i = skip_ignored(bytes, *i);
            (first, name)
        } else {
            (first.clone(), first)
        };
        if bytes.get(*i) == Some(&b'(') {
            *i = skip_ignored(bytes, skip_arguments(bytes, *i)?);
        }
        let children = if bytes.get(*i) == Some(&b'{') {
            *i += 1;
            Some(read_set(bytes, i)?)
        } else {
            None
        };
        set.push(Selected {
            key,
            name,
            children,
        });
    }
}

/// The part of `value` a selection set asks for, under the response keys: objects keep the
/// selected fields (a selected field the value lacks is `null`), lists are projected item by
/// item, `null` stays `null`.
fn project(value: &Value, set: &[Selected]) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(|v| project(v, set)).collect()),
        Value::Object(fields) => {
            let mut out = Map::new();
            for sel in set {
                let v = fields.get(&sel.name).cloned().unwrap_or(Value::Null);
                let v = match &sel.children {
                    Some(children) => project(&v, children),
                    None => v,
                };
                out.insert(sel.key.clone(), v);
            }
            Value::Object(out)
        }
        other => other.clone(),
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

    #[test]
    fn answers_only_the_selection() {
        let q = "query($a: String!) { app(name: $a) { rs: releasesUnprocessed(first: 2) { nodes { id v: version user { email } } } } }";
        let at = find_field(q, "releasesUnprocessed").unwrap();
        let value = json!({"nodes": [
            {"id": "r1", "version": 3, "reason": "x", "user": {"id": "u", "email": "e"}},
            {"id": "r2", "version": 2, "user": null}
        ]});
        assert_eq!(
            selected(q, at, "releasesUnprocessed", value),
            json!({"nodes": [
                {"id": "r1", "v": 3, "user": {"email": "e"}},
                {"id": "r2", "v": 2, "user": null}
            ]})
        );
        let m = "mutation($input: CreateReleaseInput!) {\n  createRelease(input: $input) {\n    release { id }\n  }\n}";
        let at = find_field(m, "createRelease").unwrap();
        assert_eq!(
            selected(
                m,
                at,
                "createRelease",
                json!({"release": {"id": "r", "version": 1}})
            ),
            json!({"release": {"id": "r"}})
        );
        let scalar = "{ app(name: \"x\") { name } }";
        let at = find_field(scalar, "name").unwrap();
        assert_eq!(selected(scalar, at, "name", json!("x")), json!("x"));
    }
}
