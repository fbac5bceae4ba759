//! Every fault kind through the router (and `apiDown` over a real socket), installed through
//! `POST /__sim/faults` or a scenario, counted where tests can see it.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{APP, M1, M2, NEW, Sim};
use crate::fly::wire::Machine;
use crate::sim::control::FaultsDump;
use crate::sim::{Scenario, serve};

const LIST: &str = "/v1/apps/lowendinsight/machines";

#[tokio::test]
async fn error_rate_is_seeded_and_counted() {
    let statuses = |seed: u64| async move {
        let sim = Sim::new();
        sim.fault(json!({"kind": "errorRate", "rate": 0.5, "seed": seed, "route": "GET /v1/apps/{app}/machines"}))
            .await;
        let mut out = Vec::new();
        for _ in 0..40 {
            let (status, body) = sim.get(LIST).await;
            if status != StatusCode::OK {
                assert_eq!(
                    (status, body),
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        json!({"error": "service unavailable"})
                    )
                );
            }
            out.push(status.as_u16());
        }
        assert_eq!(
            sim.get(&format!("/v1/apps/{APP}")).await.0,
            StatusCode::OK,
            "other routes are out of scope"
        );
        let failed = out.iter().filter(|s| **s != 200).count() as u64;
        assert_eq!(sim.state.request_counts().fault("errorRate"), failed);
        let (_, dump) = sim.get("/__sim/faults").await;
        let dump: FaultsDump = serde_json::from_value(dump).unwrap();
        assert_eq!(dump.faults[0].injected, failed);
        out
    };
    let a = statuses(42).await;
    assert_eq!(a, statuses(42).await, "reproducible");
    let failed = a.iter().filter(|s| **s != 200).count();
    assert!((8..=32).contains(&failed), "{failed} of 40 at 50%");
}

#[tokio::test(start_paused = true)]
async fn latency_delays_matching_requests() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "latency", "delay": "2s", "machine": M1}))
        .await;
    let t = tokio::time::Instant::now();
    assert_eq!(
        sim.get(&format!("/v1/apps/{APP}/machines/{M2}")).await.0,
        StatusCode::OK
    );
    assert!(
        t.elapsed() < Duration::from_millis(10),
        "other machine: no delay"
    );
    let t = tokio::time::Instant::now();
    assert_eq!(
        sim.get(&format!("/v1/apps/{APP}/machines/{M1}")).await.0,
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_secs(2));
    assert_eq!(sim.state.request_counts().fault("latency"), 1);
}

#[tokio::test]
async fn storm429_lasts_its_virtual_window() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "storm429", "for": "30s"})).await;
    for uri in [LIST.to_string(), format!("/v1/apps/{APP}")] {
        let (status, headers, body) = sim.send(Method::GET, &uri, None).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(headers.contains_key("retry-after"));
        let body: Value = serde_json::from_slice(&body.unwrap()).unwrap();
        assert_eq!(body["error"], "rate limit exceeded");
    }
    sim.advance_ms(30_000);
    assert_eq!(sim.get(LIST).await.0, StatusCode::OK);
    assert_eq!(sim.state.request_counts().fault("storm429"), 2);
}

#[tokio::test]
async fn api_down_drops_the_answer_until_cleared() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "apiDown"})).await;
    let (_, _, body) = sim.send(Method::GET, LIST, None).await;
    assert!(body.is_err(), "the answer never arrives");
    assert_eq!(sim.state.request_counts().fault("apiDown"), 1);
    assert_eq!(
        sim.call(Method::DELETE, "/__sim/faults", None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.get(LIST).await.0, StatusCode::OK);
}

#[tokio::test]
async fn api_down_is_a_transport_error_for_reqwest() {
    let mut scenario = Scenario::lowendinsight_default();
    scenario.time_scale = 1e-6;
    let sim = serve(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = format!("{}{LIST}", sim.base_url());
    let client = reqwest::Client::new();
    let get = || client.get(&url).bearer_auth("t").send();
    assert_eq!(get().await.unwrap().status(), 200);
    client
        .post(format!("{}/__sim/faults", sim.base_url()))
        .json(&json!({"kind": "apiDown", "for": "1h"}))
        .send()
        .await
        .unwrap();
    let err = get().await.unwrap_err();
    assert!(err.status().is_none(), "no HTTP status: {err:?}");
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    client
        .delete(format!("{}/__sim/faults", sim.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(get().await.unwrap().status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn lease_held_by_another_owner_for_a_window() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "leaseHeldBy", "machine": M1, "owner": "other-actor", "for": "8s"}))
        .await;
    let (status, body) = sim.update_image(M1, NEW, None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("lease currently held by other-actor"),
        "{body}"
    );
    let (_, lease) = sim
        .get(&format!("/v1/apps/{APP}/machines/{M1}/lease"))
        .await;
    assert_eq!(lease["data"]["owner"], "other-actor");
    assert_eq!(sim.state.request_counts().fault("leaseHeldBy"), 1);
    sim.advance_ms(8_000);
    assert_eq!(sim.update_image(M1, NEW, None).await.0, StatusCode::OK);

    sim.fault(json!({"kind": "leaseHeldBy", "machine": M2, "owner": "other-actor"}))
        .await;
    assert_eq!(
        sim.update_image(M2, NEW, None).await.0,
        StatusCode::CONFLICT
    );
    sim.call(Method::DELETE, "/__sim/faults", None).await;
    assert_eq!(
        sim.update_image(M2, NEW, None).await.0,
        StatusCode::OK,
        "clearing faults lifts their leases"
    );
}

#[tokio::test(start_paused = true)]
async fn create_times_out_but_the_machine_exists() {
    let sim = Sim::new();
    let config = sim.machine(M1).await.config.unwrap();
    let create = json!({"config": config, "region": "iad"});
    sim.fault(json!({"kind": "createTimesOutButSucceeds"}))
        .await;
    let slow = sim.send(Method::POST, LIST, Some(create.clone()));
    assert!(
        tokio::time::timeout(Duration::from_secs(30), slow)
            .await
            .is_err(),
        "the answer takes longer than a 30 s client timeout"
    );
    let machines: Vec<Machine> = serde_json::from_value(sim.get(LIST).await.1).unwrap();
    assert_eq!(machines.len(), 3, "but the machine was created");

    sim.fault(json!({"kind": "createTimesOutButSucceeds", "drop": true}))
        .await;
    let (_, _, body) = sim.send(Method::POST, LIST, Some(create.clone())).await;
    assert!(body.is_err(), "dropped");
    let (status, _) = sim.post(LIST, create).await;
    assert_eq!(status, StatusCode::OK, "once by default");
    assert_eq!(sim.get(LIST).await.1.as_array().unwrap().len(), 5);
    assert_eq!(
        sim.state
            .request_counts()
            .fault("createTimesOutButSucceeds"),
        2
    );
}

#[tokio::test]
async fn list_comes_back_empty_once() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "listEmptyOnce"})).await;
    assert_eq!(sim.get(LIST).await, (StatusCode::OK, json!([])));
    assert_eq!(sim.get(LIST).await.1.as_array().unwrap().len(), 2);
    assert_eq!(sim.state.request_counts().fault("listEmptyOnce"), 1);
}

#[tokio::test]
async fn concurrent_updates_are_rejected_n_times() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "concurrentUpdate", "machine": M1, "times": 2, "status": 412}))
        .await;
    let before = sim.machine(M1).await.instance_id;
    for _ in 0..2 {
        let (status, body) = sim.update_image(M1, NEW, None).await;
        assert_eq!(
            (status, body),
            (
                StatusCode::PRECONDITION_FAILED,
                json!({"error": "aborted: machine is replacing: concurrent update in progress"})
            )
        );
    }
    assert_eq!(sim.machine(M1).await.instance_id, before, "not performed");
    assert_eq!(sim.update_image(M1, NEW, None).await.0, StatusCode::OK);
    assert_eq!(sim.state.request_counts().fault("concurrentUpdate"), 2);
}

#[tokio::test]
async fn bad_faults_are_refused_with_every_problem() {
    let sim = Sim::new();
    let (status, body) = sim
        .post(
            "/__sim/faults",
            json!([{"kind": "errorRate"}, {"kind": "latency", "delay": "1s", "owner": "x"}]),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("needs `rate`") && error.contains("does not take `owner`"),
        "{error}"
    );
    let (status, body) = sim
        .post(
            "/__sim/faults",
            json!({"kind": "leaseHeldBy", "machine": "ffffffffffffff", "owner": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("no machine"));
    let (status, _) = sim.post("/__sim/faults", json!({"kind": "volcano"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, dump) = sim.get("/__sim/faults").await;
    assert_eq!(dump, json!({"faults": []}));
}

#[tokio::test]
async fn faults_can_be_listed_and_removed_one_by_one() {
    let sim = Sim::new();
    let (status, body) = sim
        .post(
            "/__sim/faults",
            json!([{"kind": "storm429", "after": "1m", "for": "1m"}, {"kind": "listEmptyOnce"}]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let added: FaultsDump = serde_json::from_value(body).unwrap();
    assert_eq!(added.faults.len(), 2);
    assert!(!added.faults[0].active, "its window has not begun");
    assert!(added.faults[0].until.is_some());
    let id = added.faults[1].id;
    assert_eq!(
        sim.call(Method::DELETE, &format!("/__sim/faults/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.get(LIST).await.1.as_array().unwrap().len(), 2);
    assert_eq!(
        sim.call(Method::DELETE, &format!("/__sim/faults/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, dump) = sim.get("/__sim/faults").await;
    assert_eq!(dump["faults"].as_array().unwrap().len(), 1);
    assert_eq!(dump["faults"][0]["kind"], "storm429");
    assert_eq!(dump["faults"][0]["for"], "1m");
}

#[tokio::test]
async fn the_example_fault_scenario_loads_and_fires() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim/faults.yaml");
    let mut scenario = Scenario::from_file(path).unwrap_or_else(|e| panic!("{e}"));
    scenario.time_scale = 1e-6;
    assert!(scenario.faults.len() >= 4);
    let sim = Sim::with(scenario);
    let (_, dump) = sim.get("/__sim/faults").await;
    let dump: FaultsDump = serde_json::from_value(dump).unwrap();
    assert_eq!(dump.faults.len(), sim.state.faults().len());
    assert_eq!(
        sim.get(LIST).await,
        (StatusCode::OK, json!([])),
        "listEmptyOnce"
    );
}

#[test]
fn scenario_faults_are_checked_and_located() {
    let text = "\
apps:
  - name: a
    machines:
      - {id: 148ed193b95d89, image: x}
faults:
  - {kind: errorRate, rate: 1.5}
  - {kind: leaseHeldBy, machine: 3d8d413b29d089, owner: someone}
";
    let e = Scenario::from_yaml(text).unwrap_err().to_string();
    assert!(
        e.contains("scenario:6:") && e.contains("between 0 and 1"),
        "{e}"
    );
    assert!(
        e.contains("scenario:7:") && e.contains("does not have"),
        "{e}"
    );
}
