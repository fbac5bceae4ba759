//! Apps, machines, transitions, checks, stop/start, destroy, metadata, events.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{APP, BAD, CRASH, M1, M2, NEW, Sim};
use crate::fly::wire::{App, ErrorResponse, Machine, MachineEvent};

#[tokio::test]
async fn requests_without_a_token_get_401() {
    let sim = Sim::new();
    for headers in [
        vec![],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "Basic abc")],
    ] {
        let (status, body) = sim
            .call_with(Method::GET, &format!("/v1/apps/{APP}"), None, &headers)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "Authenticate: token validation error");
    }
    let (status, _) = sim
        .call_with(
            Method::GET,
            "/v1/apps/x",
            None,
            &[("authorization", "FlyV1 fm2_abc")],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "FlyV1 tokens are accepted");
    let (status, _) = sim.call_with(Method::GET, "/__sim/state", None, &[]).await;
    assert_eq!(status, StatusCode::OK, "the control API needs no token");
}

#[tokio::test]
async fn app_and_machine_shapes_deserialize_into_wire_types() {
    let sim = Sim::new();
    let (status, body) = sim.get(&format!("/v1/apps/{APP}")).await;
    assert_eq!(status, StatusCode::OK);
    let app: App = serde_json::from_value(body).unwrap();
    assert_eq!((app.name.as_str(), app.machine_count), (APP, 2));
    assert_eq!(app.organization["slug"], "personal");

    let (status, body) = sim.get("/v1/apps/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_value::<ErrorResponse>(body).unwrap().error,
        "app not found"
    );

    let (status, body) = sim.get(&format!("/v1/apps/{APP}/machines")).await;
    assert_eq!(status, StatusCode::OK);
    let machines: Vec<Machine> = serde_json::from_value(body).unwrap();
    assert_eq!(machines.len(), 2);
    let m = &machines[0];
    assert_eq!(
        (m.id.as_str(), m.state.as_str(), m.region.as_str()),
        (M1, "started", "iad")
    );
    assert_eq!(m.instance_id.len(), 26);
    assert_eq!(m.image_ref.tag, "deployment-OLD");
    let cfg = m.config.as_ref().unwrap();
    assert_eq!(cfg.metadata["fly_platform_version"], "v2");
    assert_eq!(cfg.metadata["fly_release_version"], "109");
    assert_eq!(cfg.guest.as_ref().unwrap().memory_mb, 1024);
    assert_eq!(
        cfg.services[0]["ports"][1]["handlers"],
        json!(["tls", "http"])
    );
    assert_eq!(m.checks.len(), 1);
    assert_eq!(
        (m.checks[0].name.as_str(), m.checks[0].status.as_str()),
        ("servicecheck-00-tcp-8080", "passing")
    );
    assert_eq!(m.events[0].kind, "start", "events are newest first");

    let (status, body) = sim
        .get(&format!("/v1/apps/{APP}/machines/ffffffffffffff"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "machine not found");
}

#[tokio::test]
async fn list_filters_by_region_and_metadata() {
    let sim = Sim::new();
    let count = |body: serde_json::Value| body.as_array().map_or(0, Vec::len);
    let base = format!("/v1/apps/{APP}/machines");
    assert_eq!(count(sim.get(&format!("{base}?region=ord")).await.1), 0);
    assert_eq!(
        count(
            sim.get(&format!("{base}?region=iad&metadata.fly_process_group=app"))
                .await
                .1
        ),
        2
    );
    assert_eq!(
        count(
            sim.get(&format!("{base}?metadata.fly_release_version=108"))
                .await
                .1
        ),
        0
    );
}

#[tokio::test]
async fn update_makes_a_new_version_replacing_then_started_and_checks_then_pass() {
    let sim = Sim::new();
    let before = sim.machine(M1).await;
    let (status, body) = sim.update_image(M1, NEW, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let m: Machine = serde_json::from_value(body).unwrap();
    assert_ne!(m.instance_id, before.instance_id);
    assert_eq!(m.state, "replacing");
    assert_eq!(
        (m.events[0].kind.as_str(), m.events[0].status.as_str()),
        ("update", "replacing")
    );
    assert!(m.checks.is_empty());
    assert_eq!(m.config.unwrap().image, NEW);

    sim.advance_ms(300);
    let m = sim.machine(M1).await;
    assert_eq!(m.state, "started");
    assert!(m.checks.is_empty(), "no results before the grace period");
    assert_eq!(m.events[0].kind, "start");
    assert!(m.events[0].timestamp > m.events[1].timestamp);

    sim.advance_ms(500);
    let m = sim.machine(M1).await;
    assert_eq!(m.checks.len(), 1);
    assert_eq!(m.checks[0].status, "passing");
}

#[tokio::test]
async fn fails_checks_image_goes_critical() {
    let sim = Sim::new();
    assert_eq!(sim.update_image(M2, BAD, None).await.0, StatusCode::OK);
    sim.advance_ms(1000);
    let m = sim.machine(M2).await;
    assert_eq!(m.state, "started");
    assert!(!m.checks.is_empty() && m.checks.iter().all(|c| c.status == "critical"));
}

#[tokio::test]
async fn crash_loop_flips_and_records_restarting_exits() {
    let sim = Sim::new();
    assert_eq!(sim.update_image(M1, CRASH, None).await.0, StatusCode::OK);
    sim.advance_ms(5000);
    let m = sim.machine(M1).await;
    let exit = m.events.iter().find(|e| e.kind == "exit").unwrap();
    let request = exit.request.as_ref().unwrap();
    let ee = request.exit_event.as_ref().unwrap();
    assert!(ee.restarting && !ee.requested_stop && ee.exit_code == 1);
    assert!(request.restart_count > 1);
    let exits = m.events.iter().filter(|e| e.kind == "exit").count();
    assert!(exits >= 3, "{exits} exits");
}

#[tokio::test]
async fn stop_start_restart_and_skip_launch() {
    let sim = Sim::new();
    let uri = |op: &str| format!("/v1/apps/{APP}/machines/{M1}/{op}");
    let (status, body) = sim
        .post(
            &uri("stop"),
            json!({"id": M1, "signal": "SIGINT", "timeout": "0s"}),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    assert_eq!(sim.machine(M1).await.state, "stopping");
    let (status, body) = sim.post(&uri("stop"), json!([])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "json: cannot unmarshal array into Go value of type main.stopRequest"
    );
    let (status, body) = sim.call(Method::POST, &uri("start"), None).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("machine still active")
    );
    sim.advance_ms(200);
    let m = sim.machine(M1).await;
    assert_eq!(m.state, "stopped");
    assert!(m.checks.is_empty(), "a stopped machine is not unhealthy");
    assert_eq!(
        (m.events[0].kind.as_str(), m.events[0].status.as_str()),
        ("stop", "stopped")
    );

    let mut config = m.config.unwrap();
    config.image = NEW.to_string();
    let (status, body) = sim
        .post(
            &format!("/v1/apps/{APP}/machines/{M1}"),
            json!({"config": config, "skip_launch": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sim.advance_ms(1000);
    assert_eq!(
        sim.machine(M1).await.state,
        "stopped",
        "skip_launch keeps it stopped"
    );

    let (status, body) = sim.call(Method::POST, &uri("start"), None).await;
    assert_eq!(
        (status, &body["previous_state"]),
        (StatusCode::OK, &json!("stopped"))
    );
    assert_eq!(sim.machine(M1).await.state, "starting");
    sim.advance_ms(300);
    assert_eq!(sim.machine(M1).await.state, "started");

    assert_eq!(
        sim.call(Method::POST, &uri("restart"), None).await.0,
        StatusCode::OK
    );
    assert_eq!(sim.machine(M1).await.state, "restarting");
    sim.advance_ms(500);
    assert_eq!(sim.machine(M1).await.state, "started");
}

#[tokio::test]
async fn create_cordon_and_destroy() {
    let sim = Sim::new();
    let config = sim.machine(M1).await.config.unwrap();
    let (status, body) = sim
        .post(&format!("/v1/apps/{APP}/machines"), json!({"config": config, "region": "ord", "lease_ttl": 300, "skip_service_registration": true, "skip_secrets": false}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let m: Machine = serde_json::from_value(body).unwrap();
    assert_eq!(m.id.len(), 14);
    assert!(
        m.nonce.as_deref().is_some_and(|n| !n.is_empty()),
        "lease_ttl returns a nonce"
    );
    assert!(m.cordoned);
    assert_eq!(
        (m.state.as_str(), m.events[0].kind.as_str()),
        ("created", "launch"),
        "Fly's create answer (machines_create_resp.json)"
    );
    assert_eq!(m.events.len(), 1, "only the launch event");
    assert_eq!(sim.machine(&m.id).await.state, "starting");
    sim.advance_ms(300);
    assert_eq!(sim.machine(&m.id).await.state, "started");

    let nonce = m.nonce.unwrap();
    let auth = ("authorization", "Bearer t");
    let uncordon = format!("/v1/apps/{APP}/machines/{}/uncordon", m.id);
    assert_eq!(
        sim.call_with(Method::POST, &uncordon, None, &[auth])
            .await
            .0,
        StatusCode::CONFLICT
    );
    let with_nonce = [auth, ("fly-machine-lease-nonce", nonce.as_str())];
    assert_eq!(
        sim.call_with(Method::POST, &uncordon, None, &with_nonce)
            .await
            .0,
        StatusCode::OK
    );
    assert!(!sim.machine(&m.id).await.cordoned);

    let path = format!("/v1/apps/{APP}/machines/{}", m.id);
    let (status, _) = sim
        .call_with(Method::DELETE, &path, None, &with_nonce)
        .await;
    assert_eq!(
        status,
        StatusCode::PRECONDITION_FAILED,
        "a running machine needs force"
    );
    let (status, body) = sim
        .call_with(
            Method::DELETE,
            &format!("{path}?kill=true"),
            None,
            &with_nonce,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"ok": true})));
    sim.advance_ms(200);
    assert_eq!(sim.machine(&m.id).await.state, "destroyed");
    let list = |q: &'static str| {
        let sim = &sim;
        async move {
            sim.get(&format!("/v1/apps/{APP}/machines{q}"))
                .await
                .1
                .as_array()
                .map_or(0, Vec::len)
        }
    };
    assert_eq!(list("").await, 2);
    assert_eq!(list("?include_deleted=true").await, 3);
}

#[tokio::test]
async fn metadata_and_events() {
    let sim = Sim::new();
    let base = format!("/v1/apps/{APP}/machines/{M1}/metadata");
    let (status, _) = sim
        .post(
            &format!("{base}/fly_bluegreen_deployment_tag"),
            json!({"value": "safe_to_destroy"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = sim.get(&base).await;
    assert_eq!(body["fly_bluegreen_deployment_tag"], "safe_to_destroy");
    assert_eq!(body["fly_process_group"], "app");
    let (status, body) = sim
        .get(&format!("{base}/fly_bluegreen_deployment_tag"))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"value": "safe_to_destroy"}))
    );
    let (status, _) = sim
        .call(
            Method::DELETE,
            &format!("{base}/fly_bluegreen_deployment_tag"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        sim.get(&format!("{base}/fly_bluegreen_deployment_tag"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (status, body) = sim.post(&format!("{base}/k"), json!({"nope": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().starts_with("json: "));

    sim.update_image(M1, NEW, None).await;
    sim.advance_ms(300);
    let (status, body) = sim
        .get(&format!("/v1/apps/{APP}/machines/{M1}/events"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let events: Vec<MachineEvent> = serde_json::from_value(body).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["start", "update", "start", "launch"]);
    assert!(events.windows(2).all(|w| w[0].timestamp >= w[1].timestamp));
}
