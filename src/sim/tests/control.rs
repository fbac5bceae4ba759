//! The `/__sim/` control API, request counts, and one test over a real socket.

use axum::http::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{APP, M1, NEW, Sim};
use crate::sim::control::{ClockDump, StateDump};
use crate::sim::{LoggedRequest, REQUEST_LOG_CAPACITY, RequestCounts, Scenario, serve};

#[tokio::test]
async fn request_counts_use_route_templates_and_include_rejections() {
    let sim = Sim::new();
    sim.get(&format!("/v1/apps/{APP}/machines")).await;
    sim.get(&format!("/v1/apps/{APP}/machines")).await;
    sim.update_image(M1, NEW, None).await; // one GET inside, then the POST
    sim.call_with(Method::GET, &format!("/v1/apps/{APP}"), None, &[])
        .await; // 401, still counted
    sim.get("/v2/whatever").await;
    sim.get("/__sim/state").await; // not counted

    let (status, body) = sim.get("/__sim/requests").await;
    assert_eq!(status, StatusCode::OK);
    let counts: RequestCounts = serde_json::from_value(body).unwrap();
    assert_eq!(counts.get("GET /v1/apps/{app}/machines"), 2);
    assert_eq!(counts.get("GET /v1/apps/{app}/machines/{id}"), 1);
    assert_eq!(counts.get("POST /v1/apps/{app}/machines/{id}"), 1);
    assert_eq!(counts.get("GET /v1/apps/{app}"), 1);
    assert_eq!(counts.get("unmatched"), 1);
    assert_eq!(counts.total, 6);

    assert_eq!(
        sim.call(Method::DELETE, "/__sim/requests", None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sim.state.request_counts().total, 0);
}

/// The request log (for latency benchmarks): the requests in arrival order with their real
/// arrival time, the control API left out, emptied with the counts, bounded in size.
#[tokio::test]
async fn request_log_keeps_arrival_order_and_real_time() {
    let sim = Sim::new();
    let before = chrono::Utc::now();
    sim.get(&format!("/v1/apps/{APP}/machines")).await;
    sim.update_image(M1, NEW, None).await; // GET, then POST
    sim.get("/__sim/state").await; // not logged
    let after = chrono::Utc::now();

    let (status, body) = sim.get("/__sim/requests/log").await;
    assert_eq!(status, StatusCode::OK);
    let log: Vec<LoggedRequest> = serde_json::from_value(body["requests"].clone()).unwrap();
    let keys: Vec<&str> = log.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "GET /v1/apps/{app}/machines",
            "GET /v1/apps/{app}/machines/{id}",
            "POST /v1/apps/{app}/machines/{id}"
        ]
    );
    assert!(log.windows(2).all(|w| w[0].at <= w[1].at), "{log:?}");
    assert!(
        log.iter().all(|r| before <= r.at && r.at <= after),
        "real time, not the virtual clock: {log:?}"
    );

    sim.call(Method::DELETE, "/__sim/requests", None).await;
    assert!(sim.state.request_log().is_empty());

    for _ in 0..REQUEST_LOG_CAPACITY + 5 {
        sim.state.count_request("GET /v1/apps/{app}".into());
    }
    sim.get(&format!("/v1/apps/{APP}/machines")).await;
    let log = sim.state.request_log();
    assert_eq!(log.len(), REQUEST_LOG_CAPACITY, "bounded");
    assert_eq!(
        log.last().unwrap().key,
        "GET /v1/apps/{app}/machines",
        "the oldest are dropped, the newest kept"
    );
}

#[tokio::test]
async fn image_behaviour_changes_at_run_time() {
    let sim = Sim::new();
    let (status, body) = sim
        .post(
            "/__sim/images",
            json!({"image": NEW, "behavior": "fails-checks"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    sim.update_image(M1, NEW, None).await;
    sim.advance_ms(1000);
    assert!(
        sim.machine(M1)
            .await
            .checks
            .iter()
            .all(|c| c.status == "critical")
    );

    let (status, _) = sim
        .post(
            "/__sim/images",
            json!({"image": NEW, "behavior": {"slow-start": "40s"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sim.update_image(M1, NEW, None).await;
    sim.advance_ms(39_000);
    assert_eq!(sim.machine(M1).await.state, "replacing");
    sim.advance_ms(1_000);
    assert_eq!(sim.machine(M1).await.state, "started");

    sim.post(
        "/__sim/images",
        json!({"image": NEW, "behavior": {"exits": 2}}),
    )
    .await;
    sim.update_image(M1, NEW, None).await;
    sim.advance_ms(2_000);
    let m = sim.machine(M1).await;
    assert_eq!(m.state, "stopped");
    let exit = m.events[0]
        .request
        .as_ref()
        .unwrap()
        .exit_event
        .clone()
        .unwrap();
    assert_eq!(
        (exit.exit_code, exit.restarting, exit.requested_stop),
        (2, false, false)
    );

    let (status, body) = sim
        .post("/__sim/images", json!({"image": NEW, "behavior": "purple"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("unknown variant"));
}

#[tokio::test]
async fn advance_and_state_dump() {
    let sim = Sim::new();
    let (_, before) = sim.get("/__sim/clock").await;
    let before: ClockDump = serde_json::from_value(before).unwrap();
    let (status, after) = sim.post("/__sim/advance", json!({"by": "30s"})).await;
    assert_eq!(status, StatusCode::OK);
    let after: ClockDump = serde_json::from_value(after).unwrap();
    let parse = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    let moved = parse(&after.now) - parse(&before.now);
    assert!(moved >= chrono::Duration::seconds(30) && moved < chrono::Duration::seconds(31));
    assert_eq!(
        sim.post("/__sim/advance", json!({"by": "30"})).await.0,
        StatusCode::BAD_REQUEST
    );

    let (status, body) = sim.get("/__sim/state").await;
    assert_eq!(status, StatusCode::OK);
    let dump: StateDump = serde_json::from_value(body).unwrap();
    let app = &dump.apps[0];
    assert_eq!((app.name.as_str(), app.current_release), (APP, Some(109)));
    assert_eq!(app.machines.len(), 2);
    assert_eq!(app.releases[0].version, 109);
}

/// Sends one HTTP/1.1 request over a real TCP connection; answers (status line, body).
async fn raw_http(addr: std::net::SocketAddr, request: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[tokio::test]
async fn serves_over_a_real_socket() {
    let sim = serve(
        Scenario::lowendinsight_default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    assert!(sim.base_url().starts_with("http://127.0.0.1:"));
    assert_ne!(sim.addr.port(), 0);
    let request = format!(
        "GET /v1/apps/{APP}/machines HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer t\r\nConnection: close\r\n\r\n",
        sim.addr
    );
    let (status, body) = raw_http(sim.addr, &request).await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let machines: Vec<crate::fly::wire::Machine> = serde_json::from_str(&body).unwrap();
    assert_eq!(machines.len(), 2);
    assert_eq!(sim.state().request_counts().total, 1);
    let addr = sim.addr;
    sim.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "stopped after shutdown"
    );
}
