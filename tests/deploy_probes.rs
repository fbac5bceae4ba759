//! External HTTP probes (`spec.health.probes`) in the deploy's HealthCheck stage: the real
//! binary against `opsctl sim serve`, with a local HTTP server as the probe target. They run
//! after every machine is healthy; a wrong answer rolls the release back like a failed machine;
//! no answer (a hang, a refused connection) is a recorded warning, never a rollback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::{M1, M2, NEW, OLD, Sim, Workspace, text};
use serde_json::Value;

/// A probe target on 127.0.0.1: `/` answers 200 with the app's name, `/broken` 500, `/hang`
/// never within a probe's timeout. Runs on its own thread until the test process ends.
fn target() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/", get(|| async { "<h1>LowEndInsight</h1>" }))
                .route(
                    "/broken",
                    get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
                )
                .route(
                    "/hang",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        "too late"
                    }),
                );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// The shipped manifest deploying NEW, with one probe pointed at `url` with `timeout` (in
/// place of the shipped probe of the real site, which `Workspace::new` leaves out).
fn workspace(url: &str, timeout: &str) -> Workspace {
    let ws = Workspace::new(NEW);
    let path = ws.manifests().join("lowendinsight.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let probe = format!(
        "    probes:\n      - http: {{url: \"{url}\", expectStatus: 200, bodyContains: LowEndInsight, timeout: {timeout}}}\n"
    );
    assert!(
        text.contains("  health:\n"),
        "the manifest has a health block"
    );
    std::fs::write(
        &path,
        text.replacen("  health:\n", &format!("  health:\n{probe}"), 1),
    )
    .unwrap();
    ws
}

/// Apply, then the newest deploy record.
fn apply(ws: &Workspace, sim: &Sim) -> (Option<i32>, String, Value) {
    let out = ws.opsctl(sim).arg("apply").output().unwrap();
    let shown = text(&out);
    let history = ws
        .opsctl(sim)
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    (out.status.code(), shown, history["deploys"][0].clone())
}

/// The result of the recorded probe step.
fn probe_step(rec: &Value) -> String {
    rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["intent"].as_str().unwrap().starts_with("probe GET"))
        .unwrap_or_else(|| panic!("a probe step: {rec:#}"))["result"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_passing_probe_completes_the_deploy() {
    let addr = target();
    let sim = Sim::start();
    let ws = workspace(&format!("http://{addr}/"), "2s");
    let (code, shown, rec) = apply(&ws, &sim);
    assert_eq!(code, Some(0), "{shown}");
    assert_eq!(rec["status"], "succeeded", "{rec:#}");
    assert!(probe_step(&rec).starts_with("passed"), "{rec:#}");
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
}

#[test]
fn a_failing_probe_rolls_the_release_back() {
    let addr = target();
    let sim = Sim::start();
    let ws = workspace(&format!("http://{addr}/broken"), "2s");
    let (code, shown, rec) = apply(&ws, &sim);
    assert_eq!(code, Some(1), "{shown}");
    assert_eq!(rec["status"], "rolled_back", "{rec:#}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains("probe failed") && reason.contains("status 500"),
        "{reason}"
    );
    assert!(probe_step(&rec).starts_with("failed"), "{rec:#}");
    assert_eq!(rec["rollback"]["outcome"], "succeeded", "{rec:#}");
    // Every machine had been updated and healthy; all are back on the old image.
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
    let results: Vec<&str> = rec["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["rolled_back", "rolled_back"]);
}

#[test]
fn a_probe_that_cannot_see_is_a_warning_not_a_rollback() {
    let addr = target();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    for (url, why) in [
        (format!("http://{addr}/hang"), "no answer within 1s"),
        (format!("http://{closed}/"), "could not connect"),
    ] {
        let sim = Sim::start();
        let ws = workspace(&url, "1s");
        let (code, shown, rec) = apply(&ws, &sim);
        assert_eq!(code, Some(0), "{url}: {shown}");
        assert_eq!(rec["status"], "succeeded", "{url}: {rec:#}");
        assert!(rec["rollback"].is_null(), "{url}: no rollback");
        let step = probe_step(&rec);
        assert!(
            step.starts_with(&format!("unknown: {why}")) && step.contains("no rollback"),
            "{url}: {step}"
        );
        assert_eq!(
            sim.images(),
            vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())],
            "{url}"
        );
    }
}

/// Bluegreen probes with green routed and blue cordoned but alive: a failing probe routes blue
/// again and removes green, so nothing needs rolling back.
#[test]
fn a_failing_probe_in_bluegreen_puts_blue_back() {
    let addr = target();
    let sim = Sim::start();
    let ws = workspace(&format!("http://{addr}/broken"), "2s");
    ws.set_strategy("bluegreen");
    let (code, shown, rec) = apply(&ws, &sim);
    assert_eq!(code, Some(1), "{shown}");
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert!(
        rec["reason"]
            .as_str()
            .unwrap()
            .contains("blue serving again"),
        "{rec:#}"
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
    for m in [M1, M2] {
        let blue = sim.get(&format!("/v1/apps/lowendinsight/machines/{m}"));
        assert_eq!(
            (blue["state"].as_str(), blue["cordoned"].as_bool()),
            (Some("started"), Some(false)),
            "{blue}"
        );
    }
}
