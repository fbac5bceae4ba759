//! Fly's rate limits: burst, then 429 with `Retry-After`, then allowed after the refill. The
//! buckets run on tokio's clock, paused here, so a refill is an `advance`, not a sleep.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::{APP, M1, M2, Sim};
use crate::sim::Scenario;
use crate::sim::limits::RateLimits;

async fn status(sim: &Sim, method: Method, uri: &str) -> StatusCode {
    sim.call(method, uri, None).await.0
}

#[tokio::test(start_paused = true)]
async fn get_machine_allows_10_then_5_per_second() {
    let sim = Sim::new();
    let uri = format!("/v1/apps/{APP}/machines/{M1}");
    for i in 0..10 {
        assert_eq!(
            status(&sim, Method::GET, &uri).await,
            StatusCode::OK,
            "get {i}"
        );
    }
    let (code, headers, body) = sim.send(Method::GET, &uri, None).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");
    let body: serde_json::Value = serde_json::from_slice(&body.unwrap()).unwrap();
    assert_eq!(body, json!({"error": "rate limit exceeded"}));
    assert_eq!(
        status(&sim, Method::GET, &format!("/v1/apps/{APP}/machines/{M2}")).await,
        StatusCode::OK,
        "another machine has its own bucket"
    );

    tokio::time::advance(Duration::from_millis(200)).await;
    assert_eq!(status(&sim, Method::GET, &uri).await, StatusCode::OK);
    assert_eq!(
        status(&sim, Method::GET, &uri).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    for _ in 0..10 {
        assert_eq!(status(&sim, Method::GET, &uri).await, StatusCode::OK);
    }

    let counts = sim.state.request_counts();
    assert_eq!(counts.fault("rateLimit"), 2);
    assert_eq!(
        counts.get("GET /v1/apps/{app}/machines/{id}"),
        24,
        "429s are counted as received"
    );
}

#[tokio::test(start_paused = true)]
async fn each_action_on_each_machine_allows_3_then_1_per_second() {
    let sim = Sim::new();
    let cordon = format!("/v1/apps/{APP}/machines/{M1}/cordon");
    for _ in 0..3 {
        assert_eq!(status(&sim, Method::POST, &cordon).await, StatusCode::OK);
    }
    let (code, headers, _) = sim.send(Method::POST, &cordon, None).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "1");
    let uncordon = format!("/v1/apps/{APP}/machines/{M1}/uncordon");
    assert_eq!(
        status(&sim, Method::POST, &uncordon).await,
        StatusCode::OK,
        "another action has its own bucket"
    );
    let other = format!("/v1/apps/{APP}/machines/{M2}/cordon");
    assert_eq!(status(&sim, Method::POST, &other).await, StatusCode::OK);

    tokio::time::advance(Duration::from_millis(999)).await;
    assert_eq!(
        status(&sim, Method::POST, &cordon).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(status(&sim, Method::POST, &cordon).await, StatusCode::OK);

    // Create is limited per app; the list and `wait` are not limited.
    let config = sim.machine(M1).await.config.unwrap();
    let create = json!({"config": config});
    for _ in 0..3 {
        let (s, _) = sim
            .post(&format!("/v1/apps/{APP}/machines"), create.clone())
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, _) = sim
        .post(&format!("/v1/apps/{APP}/machines"), create.clone())
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    for _ in 0..30 {
        assert_eq!(
            status(&sim, Method::GET, &format!("/v1/apps/{APP}/machines")).await,
            StatusCode::OK
        );
    }
}

#[tokio::test(start_paused = true)]
async fn health_polls_every_200ms_never_hit_the_limit() {
    let sim = Sim::new();
    let uri = format!("/v1/apps/{APP}/machines/{M1}");
    for _ in 0..300 {
        assert_eq!(status(&sim, Method::GET, &uri).await, StatusCode::OK);
        tokio::time::advance(Duration::from_millis(200)).await;
    }
    assert_eq!(sim.state.request_counts().fault("rateLimit"), 0);
}

#[tokio::test(start_paused = true)]
async fn limits_switch_off_and_change_at_run_time() {
    let sim = Sim::new();
    let (code, body) = sim.get("/__sim/rate-limits").await;
    assert_eq!(code, StatusCode::OK);
    let limits: RateLimits = serde_json::from_value(body).unwrap();
    assert_eq!(limits, RateLimits::default());

    let (code, body) = sim
        .post("/__sim/rate-limits", json!({"enabled": false}))
        .await;
    assert_eq!((code, &body["enabled"]), (StatusCode::OK, &json!(false)));
    let cordon = format!("/v1/apps/{APP}/machines/{M1}/cordon");
    for _ in 0..20 {
        assert_eq!(status(&sim, Method::POST, &cordon).await, StatusCode::OK);
    }

    let (code, _) = sim
        .post(
            "/__sim/rate-limits",
            json!({"enabled": true, "action": {"perSecond": 2, "burst": 1}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status(&sim, Method::POST, &cordon).await, StatusCode::OK);
    assert_eq!(
        status(&sim, Method::POST, &cordon).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::advance(Duration::from_millis(500)).await;
    assert_eq!(status(&sim, Method::POST, &cordon).await, StatusCode::OK);

    let (code, body) = sim
        .post(
            "/__sim/rate-limits",
            json!({"action": {"perSecond": 0, "burst": 1}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("perSecond"));
}

#[test]
fn scenario_configures_the_limits() {
    let s = Scenario::from_yaml(
        "rateLimits:\n  enabled: false\n  getMachine: {perSecond: 50, burst: 100}\n",
    )
    .unwrap();
    assert!(!s.rate_limits.enabled);
    assert_eq!(s.rate_limits.get_machine.burst, 100);
    assert_eq!(s.rate_limits.action, RateLimits::default().action);
    let e = Scenario::from_yaml("rateLimits: {getMachine: {perSecond: 5}}\n").unwrap_err();
    assert!(e.to_string().contains("burst"), "{e}");
}
