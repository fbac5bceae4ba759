//! Releases over GraphQL and REST.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{APP, NEW, Sim};
use crate::fly::wire::{GqlRelease, GraphqlResponse, ReleaseEnvelope, ReleasesEnvelope};

const LIST: &str = "query($appName: String!, $limit: Int!) { app(name: $appName) { releases: releasesUnprocessed(first: $limit) { nodes { id version description reason status imageRef stable user { id email name } createdAt } } } }";
const CURRENT: &str = "query($appName: String!) { app(name: $appName) { currentReleaseUnprocessed { id version status imageRef } } }";
const CREATE: &str = "mutation($input: CreateReleaseInput!) { createRelease(input: $input) { release { id version } } }";
const UPDATE: &str =
    "mutation($input: UpdateReleaseInput!) { updateRelease(input: $input) { release { id } } }";

async fn gql(sim: &Sim, query: &str, variables: Value) -> GraphqlResponse {
    let (status, body) = sim
        .post("/graphql", json!({"query": query, "variables": variables}))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "GraphQL errors come with 200: {body}"
    );
    serde_json::from_value(body).unwrap()
}

fn versions(nodes: &Value) -> Vec<i64> {
    nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_i64().expect("version selected"))
        .collect()
}

#[tokio::test]
async fn graphql_create_list_current_update() {
    let sim = Sim::new();
    let input = json!({"input": {"appId": APP, "image": NEW, "strategy": "ROLLING", "definition": {"app": APP}, "platformVersion": "machines"}});
    let created = gql(&sim, CREATE, input).await;
    assert!(created.errors.is_empty());
    let release = &created.data.unwrap()["createRelease"]["release"];
    assert_eq!(release["version"], 110);
    let id = release["id"].as_str().unwrap().to_string();

    let listed = gql(&sim, LIST, json!({"appName": APP, "limit": 3})).await;
    let data = listed.data.unwrap();
    let nodes = &data["app"]["releases"]["nodes"];
    assert_eq!(
        versions(nodes),
        [110, 109, 108],
        "newest first, under the alias used"
    );
    assert_eq!(nodes[0]["status"], "pending");
    assert_eq!(nodes[0]["imageRef"], NEW);
    assert_eq!(nodes[1]["stable"], true);
    assert!(nodes[0]["user"]["email"].is_string());
    let full: GqlRelease = serde_json::from_value(nodes[0].clone()).unwrap();
    assert_eq!(
        full.version, 110,
        "every field selected: a whole GqlRelease"
    );

    let unaliased = "query($appName: String!) { app(name: $appName) { releasesUnprocessed(first: 1) { nodes { version } } } }";
    let data = gql(&sim, unaliased, json!({"appName": APP}))
        .await
        .data
        .unwrap();
    assert_eq!(
        data["app"]["releasesUnprocessed"]["nodes"],
        json!([{"version": 110}]),
        "exactly the selection"
    );

    let current = gql(&sim, CURRENT, json!({"appName": APP}))
        .await
        .data
        .unwrap();
    assert_eq!(
        current["app"]["currentReleaseUnprocessed"]["version"], 109,
        "a pending release is not current"
    );
    let keys: Vec<&String> = current["app"]["currentReleaseUnprocessed"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(
        keys,
        ["id", "imageRef", "status", "version"],
        "no unselected fields"
    );

    let updated = gql(
        &sim,
        UPDATE,
        json!({"input": {"releaseId": id, "status": "complete"}}),
    )
    .await;
    assert_eq!(
        updated.data.unwrap()["updateRelease"]["release"]["id"],
        id.as_str()
    );
    let current = gql(&sim, CURRENT, json!({"appName": APP}))
        .await
        .data
        .unwrap();
    assert_eq!(current["app"]["currentReleaseUnprocessed"]["version"], 110);
}

#[tokio::test]
async fn graphql_errors_for_unknown_apps_and_queries() {
    let sim = Sim::new();
    let resp = gql(&sim, CURRENT, json!({"appName": "ghost"})).await;
    assert_eq!(resp.errors[0].message, "Could not find App \"ghost\"");
    assert_eq!(
        resp.errors[0].extensions.as_ref().unwrap()["code"],
        "NOT_FOUND"
    );
    let resp = gql(
        &sim,
        CREATE,
        json!({"input": {"appId": "ghost", "image": NEW}}),
    )
    .await;
    assert_eq!(
        resp.errors[0].extensions.as_ref().unwrap()["code"],
        "NOT_FOUND"
    );
    let resp = gql(&sim, "query { viewer { email } }", json!({})).await;
    assert_eq!(
        resp.errors[0].extensions.as_ref().unwrap()["code"],
        "INVALID"
    );
    let resp = gql(
        &sim,
        UPDATE,
        json!({"input": {"releaseId": "nope", "status": "complete"}}),
    )
    .await;
    assert_eq!(
        resp.errors[0].extensions.as_ref().unwrap()["code"],
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn rest_create_update_list_current() {
    let sim = Sim::new();
    let body = json!({"app_name": APP, "image": NEW, "strategy": "ROLLING", "definition": {}, "build_id": ""});
    let (status, resp) = sim.post("/api/v1/releases", body).await;
    assert_eq!(status, StatusCode::CREATED, "{resp}");
    let created: ReleaseEnvelope = serde_json::from_value(resp).unwrap();
    assert_eq!(
        (created.release.version, created.release.status.as_str()),
        (110, "pending")
    );
    assert!(created.release.in_progress);

    let (status, resp) = sim
        .get(&format!("/api/v1/apps/{APP}/releases/current"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_value::<ReleaseEnvelope>(resp)
            .unwrap()
            .release
            .version,
        109
    );

    let patch = format!("/api/v1/releases/{}", created.release.id);
    let (status, resp) = sim
        .call(Method::PATCH, &patch, Some(json!({"status": "complete"})))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_value::<ReleaseEnvelope>(resp)
            .unwrap()
            .release
            .status,
        "complete"
    );
    let (status, _) = sim
        .call(Method::PATCH, &patch, Some(json!({"status": "done"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = sim
        .call(
            Method::PATCH,
            "/api/v1/releases/nope",
            Some(json!({"status": "failed"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, resp) = sim
        .get(&format!("/api/v1/apps/{APP}/releases?limit=2"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let list: ReleasesEnvelope = serde_json::from_value(resp).unwrap();
    let v: Vec<i64> = list.releases.iter().map(|r| r.version).collect();
    assert_eq!(v, [110, 109]);
    let (_, resp) = sim
        .get(&format!("/api/v1/apps/{APP}/releases/current"))
        .await;
    assert_eq!(resp["release"]["version"], 110);

    let (status, _) = sim
        .post(
            "/api/v1/releases",
            json!({"app_name": "ghost", "image": NEW, "strategy": "ROLLING"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_app_without_releases_has_no_current_and_starts_at_v1() {
    let sim = Sim::with(crate::sim::Scenario::from_yaml("apps: [{name: fresh}]\n").unwrap());
    let (status, body) = sim.get("/api/v1/apps/fresh/releases/current").await;
    assert_eq!(
        (status, &body["error"]),
        (StatusCode::NOT_FOUND, &json!("no current release"))
    );
    let (_, resp) = sim
        .post(
            "/api/v1/releases",
            json!({"app_name": "fresh", "image": "img:1", "strategy": "IMMEDIATE"}),
        )
        .await;
    assert_eq!(resp["release"]["version"], 1);
}
