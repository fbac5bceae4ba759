//! Leases (acquire, conflict, refresh, release, guarded mutations, expiry) and `wait`.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{APP, M1, M2, NEW, Sim};
use crate::fly::wire::{LeaseEnvelope, WaitResponse};

const AUTH: (&str, &str) = ("authorization", "Bearer test-token");

#[tokio::test]
async fn lease_acquire_conflict_refresh_guard_and_release() {
    let sim = Sim::new();
    let lease = format!("/v1/apps/{APP}/machines/{M1}/lease");
    assert_eq!(sim.get(&lease).await.0, StatusCode::NOT_FOUND);

    // fly-go style: ?ttl=N and no body.
    let (status, body) = sim
        .call(Method::POST, &format!("{lease}?ttl=13"), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let env: LeaseEnvelope = serde_json::from_value(body).unwrap();
    assert_eq!(env.status, "success");
    let data = env.data.unwrap();
    assert_eq!(data.version, sim.machine(M1).await.instance_id);
    let nonce = data.nonce.clone();

    let (status, body) = sim.post(&lease, json!({"ttl": 13})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let text = body["error"].as_str().unwrap();
    assert!(
        text.starts_with(&format!(
            "aborted: machine ID {M1} lease currently held by "
        )),
        "{text}"
    );
    assert!(text.contains(", expires at "), "{text}");

    sim.advance_ms(5000);
    let with_nonce = [AUTH, ("fly-machine-lease-nonce", nonce.as_str())];
    let (status, body) = sim
        .call_with(Method::POST, &lease, Some(json!({"ttl": 13})), &with_nonce)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let refreshed = serde_json::from_value::<LeaseEnvelope>(body)
        .unwrap()
        .data
        .unwrap();
    assert_eq!(refreshed.nonce, nonce, "a refresh keeps the nonce");
    assert!(refreshed.expires_at >= data.expires_at + 4);

    let (status, body) = sim.update_image(M1, NEW, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("lease currently held by")
    );
    let (status, _) = sim.update_image(M1, NEW, Some("wrong")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let stop = format!("/v1/apps/{APP}/machines/{M1}/stop");
    assert_eq!(
        sim.call(Method::POST, &stop, None).await.0,
        StatusCode::CONFLICT
    );
    let (status, _) = sim.update_image(M1, NEW, Some(&nonce)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        sim.update_image(M2, NEW, None).await.0,
        StatusCode::OK,
        "other machines are free"
    );

    assert_eq!(
        sim.call(Method::DELETE, &lease, None).await.0,
        StatusCode::CONFLICT
    );
    let (status, body) = sim
        .call_with(Method::DELETE, &lease, None, &with_nonce)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "success", "data": {"ok": true}})
        )
    );
    assert_eq!(sim.get(&lease).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn expired_leases_are_free() {
    let sim = Sim::new();
    let lease = format!("/v1/apps/{APP}/machines/{M1}/lease");
    let (_, first) = sim.post(&lease, json!({"ttl": 1})).await;
    sim.advance_ms(1500);
    assert_eq!(sim.get(&lease).await.0, StatusCode::NOT_FOUND);
    let (status, second) = sim.post(&lease, json!({"ttl": 1})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(first["data"]["nonce"], second["data"]["nonce"]);
}

#[tokio::test]
async fn a_lease_held_in_the_scenario_blocks_mutations() {
    let text = include_str!("../../../examples/sim/lowendinsight.yaml").replace(
        "      - id: 3d8d413b29d089\n",
        "      - id: 3d8d413b29d089\n        lease: {owner: someone-else@tokens.fly.io, ttl: 10m}\n",
    );
    let mut scenario = crate::sim::Scenario::from_yaml(&text).unwrap();
    scenario.time_scale = 1e-6;
    let sim = Sim::with(scenario);
    let (status, body) = sim.update_image(M2, NEW, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("held by someone-else@tokens.fly.io")
    );
    sim.advance_ms(11 * 60 * 1000);
    assert_eq!(sim.update_image(M2, NEW, None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn wait_answers_200_when_reached_and_408_on_timeout() {
    let sim = Sim::new();
    let wait = format!("/v1/apps/{APP}/machines/{M1}/wait");
    let (status, body) = sim.get(&format!("{wait}?state=started&timeout=1")).await;
    assert_eq!(status, StatusCode::OK);
    let w: WaitResponse = serde_json::from_value(body).unwrap();
    assert_eq!((w.ok, w.state.as_deref()), (true, Some("started")));

    let (status, body) = sim
        .get(&format!("{wait}?state=stopped&state=destroyed&timeout=1"))
        .await;
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("deadline exceeded")
    );

    let (status, _) = sim.get(&format!("{wait}?state=sideways")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn wait_sees_a_transition_that_happens_while_it_blocks() {
    let sim = Sim::new();
    let (_, updated) = sim.update_image(M1, NEW, None).await;
    let version = updated["instance_id"].as_str().unwrap().to_string();
    let state = sim.state.clone();
    let advancer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        state.advance(Duration::from_millis(300));
    });
    let uri = format!(
        "/v1/apps/{APP}/machines/{M1}/wait?state=started,stopped&timeout=5&version={version}"
    );
    let (status, body) = sim.get(&uri).await;
    advancer.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["ok"], &body["state"], &body["version"]),
        (&json!(true), &json!("started"), &json!(version)),
        "{body}"
    );
    let m = sim.machine(M1).await;
    let start = m.events.iter().find(|e| e.kind == "start").unwrap();
    assert_eq!(
        body["event_id"],
        json!(start.id),
        "the event that started it"
    );

    let stale = format!(
        "/v1/apps/{APP}/machines/{M1}/wait?state=started&instance_id=01HEPA330HZ37A78TK080NAK1M"
    );
    assert_eq!(sim.get(&stale).await.0, StatusCode::PRECONDITION_FAILED);
}
