//! Suspend, signal, versions, the whole-map metadata calls, and the clock's time scale.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{APP, M1, M2, NEW, Sim};
use crate::sim::{Scenario, SimState};

fn uri(id: &str, op: &str) -> String {
    format!("/v1/apps/{APP}/machines/{id}/{op}")
}

#[tokio::test]
async fn suspend_then_resume_with_start() {
    let sim = Sim::new();
    let (status, body) = sim.call(Method::POST, &uri(M1, "suspend"), None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    assert_eq!(sim.machine(M1).await.state, "suspending");
    let (status, body) = sim.call(Method::POST, &uri(M1, "suspend"), None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
    sim.advance_ms(200);
    let m = sim.machine(M1).await;
    assert_eq!(m.state, "suspended");
    assert!(m.checks.is_empty(), "suspended is not unhealthy");
    assert_eq!(
        (m.events[0].kind.as_str(), m.events[0].status.as_str()),
        ("suspend", "suspended")
    );
    let (status, body) = sim
        .get(&format!("{}?state=suspended&timeout=1", uri(M1, "wait")))
        .await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("suspended"))
    );
    let (status, body) = sim.call(Method::POST, &uri(M1, "start"), None).await;
    assert_eq!(
        (status, &body["previous_state"]),
        (StatusCode::OK, &json!("suspended"))
    );
    sim.advance_ms(300);
    assert_eq!(sim.machine(M1).await.state, "started");
}

#[tokio::test]
async fn signals_by_name_and_number() {
    let sim = Sim::new();
    let (status, body) = sim
        .post(&uri(M1, "signal"), json!({"signal": "SIGKILL"}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    let m = sim.machine(M1).await;
    assert_eq!(m.state, "stopped");
    let exit = m.events[0].request.as_ref().unwrap();
    let ee = exit.exit_event.as_ref().unwrap();
    assert_eq!(
        (ee.exit_code, ee.restarting, ee.requested_stop),
        (137, true, false)
    );
    sim.advance_ms(300);
    assert_eq!(sim.machine(M1).await.state, "started", "flyd restarts it");

    let (status, _) = sim.post(&uri(M2, "signal"), json!({"signal": 9})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.machine(M2).await.events[0].kind, "exit");
    sim.advance_ms(300);

    let before = sim.machine(M1).await.events.len();
    let (status, _) = sim
        .post(&uri(M1, "signal"), json!({"signal": "SIGUSR1"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let m = sim.machine(M1).await;
    assert_eq!(
        (m.state.as_str(), m.events.len()),
        ("started", before),
        "survives USR1"
    );

    // Each machine's signal action allows a burst of 3: spread the calls over both.
    let (status, body) = sim
        .post(&uri(M1, "signal"), json!({"signal": "SIGNOPE"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = sim.post(&uri(M2, "signal"), json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    sim.post(&uri(M2, "stop"), json!({})).await;
    sim.advance_ms(200);
    let (status, body) = sim
        .post(&uri(M2, "signal"), json!({"signal": "SIGTERM"}))
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{body}");
}

#[tokio::test]
async fn versions_list_every_config_newest_first() {
    let sim = Sim::new();
    let first = sim.machine(M1).await.instance_id;
    assert_eq!(sim.update_image(M1, NEW, None).await.0, StatusCode::OK);
    let second = sim.machine(M1).await.instance_id;
    let (status, body) = sim.get(&uri(M1, "versions")).await;
    assert_eq!(status, StatusCode::OK);
    let versions = body.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], json!(second));
    assert_eq!(versions[0]["user_config"]["image"], json!(NEW));
    assert_eq!(versions[1]["version"], json!(first));
    assert!(
        versions[1]["user_config"]["image"]
            .as_str()
            .unwrap()
            .ends_with("deployment-OLD")
    );
}

#[tokio::test]
async fn whole_map_metadata_patch_put_and_412() {
    let sim = Sim::new();
    let version = sim.machine(M1).await.instance_id;
    let base = uri(M1, "metadata");
    let (status, _) = sim
        .call(
            Method::PATCH,
            &base,
            Some(json!({"metadata": {"role": "web"}, "machine_version": version, "updated_at": "2026-03-01T12:00:00Z"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, map) = sim.get(&base).await;
    assert_eq!(
        (map["role"].clone(), map["fly_process_group"].clone()),
        (json!("web"), json!("app"))
    );
    assert_eq!(sim.machine(M1).await.instance_id, version, "no new version");

    let (status, _) = sim
        .call(
            Method::PUT,
            &base,
            Some(json!({"metadata": {"only": "this"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(sim.get(&base).await.1, json!({"only": "this"}));

    sim.update_image(M1, NEW, None).await;
    let (status, body) = sim
        .call(
            Method::PATCH,
            &base,
            Some(json!({"metadata": {"x": "y"}, "machine_version": version})),
        )
        .await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(body["error"].as_str().unwrap().contains("machine_version"));
    assert_eq!(sim.get(&base).await.1, json!({"only": "this"}), "unchanged");
    let (status, _) = sim
        .call(Method::PATCH, &base, Some(json!({"nope": 1})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn time_scale_runs_the_virtual_clock_faster() {
    let mut scenario = Scenario::lowendinsight_default();
    scenario.time_scale = 3600.0;
    let state = SimState::new(scenario);
    let before = state.now();
    std::thread::sleep(Duration::from_millis(20));
    let moved = state.now() - before;
    assert!(
        moved >= chrono::Duration::seconds(72),
        "{moved} for 20 ms at 3600×"
    );
    assert_eq!(state.time_scale(), 3600.0);
    let sim = Sim {
        app: crate::sim::router(state.clone()),
        state,
    };
    let (_, clock): (_, Value) = sim.get("/__sim/clock").await;
    assert_eq!(clock["timeScale"], 3600.0);
}

#[tokio::test]
async fn every_fly_answer_carries_a_fresh_request_id() {
    let sim = Sim::new();
    let id = |h: &axum::http::HeaderMap| {
        h.get("fly-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let machine = format!("/v1/apps/{APP}/machines/{M1}");
    let (s1, h1, _) = sim.send(Method::GET, &machine, None).await;
    let (s2, h2, _) = sim.send(Method::GET, &machine, None).await;
    assert_eq!((s1, s2), (StatusCode::OK, StatusCode::OK));
    let (a, b) = (id(&h1).expect("request id"), id(&h2).expect("request id"));
    assert_ne!(a, b, "fresh per request");
    for path in [
        format!("/v1/apps/{APP}/machines/00000000000000"),
        "/v1/nowhere".to_string(),
        "/graphql".to_string(),
    ] {
        let (_, h, _) = sim.send(Method::GET, &path, None).await;
        assert!(id(&h).is_some(), "{path}");
    }
    let (_, h, _) = sim.send(Method::GET, "/__sim/requests", None).await;
    assert!(id(&h).is_none(), "the control API is not Fly");
}

#[tokio::test]
async fn a_method_a_route_does_not_serve_is_a_json_405() {
    let sim = Sim::new();
    let (status, headers, body) = sim
        .send(Method::DELETE, &format!("/v1/apps/{APP}"), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(body, json!({"error": "method not allowed"}));
    assert_eq!(
        headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET,HEAD"),
        "axum's Allow header is kept"
    );
    assert!(headers.get("fly-request-id").is_some());
}
