//! The app log endpoint: scenario lines (once and repeating), posted lines, machine life,
//! BEAM crash lines from a crash loop, and `since`/`limit` paging.

use axum::http::StatusCode;
use serde_json::json;

use super::{APP, CRASH, M1, Sim};
use crate::sim::Scenario;
use crate::sim::logs::{LogLevel, LogLine, LogsResponse};

async fn logs(sim: &Sim, query: &str) -> Vec<LogLine> {
    let (status, body) = sim.get(&format!("/v1/apps/{APP}/logs{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value::<LogsResponse>(body).unwrap().logs
}

fn scenario() -> Scenario {
    let mut s = Scenario::lowendinsight_default();
    s.time_scale = 1e-6;
    s.clock_start = Some("2026-03-01T12:00:00Z".parse().unwrap());
    s
}

const T0: i64 = 1_772_366_400_000; // 2026-03-01T12:00:00Z in unix ms

#[tokio::test]
async fn scenario_lines_appear_on_the_virtual_clock() {
    let mut s = scenario();
    let extra = Scenario::from_yaml(
        "\
apps:
  - name: lowendinsight
    machines: [{id: 148ed193b95d89, image: x}]
    logs:
      - {at: 10s, machine: 148ed193b95d89, level: warn, message: \"Postgrex.Protocol failed to connect\"}
      - {at: 0s, every: 15s, until: 1m, message: \"GET /healthz 200\"}
",
    )
    .unwrap();
    s.apps[0].logs = extra.apps[0].logs.clone();
    let sim = Sim::with(s);
    let since = format!("?since={}", T0 - 1);
    let texts = |lines: &[LogLine]| -> Vec<String> {
        lines
            .iter()
            .filter(|l| l.timestamp_ms >= T0)
            .map(|l| l.message.clone())
            .collect()
    };
    assert_eq!(texts(&logs(&sim, &since).await), ["GET /healthz 200"]);
    sim.advance_ms(30_000);
    let lines = logs(&sim, &since).await;
    assert_eq!(
        texts(&lines),
        [
            "GET /healthz 200",
            "Postgrex.Protocol failed to connect",
            "GET /healthz 200",
            "GET /healthz 200"
        ]
    );
    let warn = lines.iter().find(|l| l.level == LogLevel::Warn).unwrap();
    assert_eq!(
        (
            warn.timestamp_ms,
            warn.machine_id.as_str(),
            warn.region.as_str()
        ),
        (T0 + 10_000, M1, "iad")
    );
    sim.advance_ms(600_000);
    let repeats = logs(&sim, &since).await;
    assert_eq!(
        repeats
            .iter()
            .filter(|l| l.message == "GET /healthz 200")
            .count(),
        4,
        "until 1m: at 0, 15, 30 and 45 s"
    );
    let after = logs(&sim, &format!("?since={}", T0 + 15_000)).await;
    assert_eq!(texts(&after), ["GET /healthz 200", "GET /healthz 200"]);
    assert_eq!(
        logs(&sim, &format!("?since={}&limit=1", T0 - 1))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_crash_loop_prints_beam_crash_lines() {
    let sim = Sim::with(scenario());
    let since = format!("?since={T0}&limit=1000");
    assert_eq!(sim.update_image(M1, CRASH, None).await.0, StatusCode::OK);
    sim.advance_ms(6_000);
    let lines = logs(&sim, &since).await;
    let all: String = lines
        .iter()
        .map(|l| l.message.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for needle in [
        "** (EXIT)",
        "Kernel pid terminated (application_controller)",
        "erl_crash.dump",
        "heart-beat time-out",
        "Main child exited normally with code: 1",
        "Starting init",
    ] {
        assert!(all.contains(needle), "no {needle:?} in:\n{all}");
    }
    assert!(
        lines
            .iter()
            .all(|l| l.machine_id == M1 && l.region == "iad")
    );
    assert!(
        lines
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms)
    );
    assert!(lines.iter().any(|l| l.level == LogLevel::Error));
}

#[tokio::test]
async fn posted_lines_and_stops_show_up() {
    let sim = Sim::with(scenario());
    let (status, _) = sim
        .post(
            "/__sim/logs",
            json!({"app": APP, "machine": M1, "level": "error", "message": "boom"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    sim.post(&format!("/v1/apps/{APP}/machines/{M1}/stop"), json!({}))
        .await;
    sim.advance_ms(1_000);
    let lines = logs(&sim, &format!("?since={}", T0 - 1)).await;
    let texts: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
    assert!(texts.contains(&"boom"), "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("Sending signal SIGINT to main child")),
        "{texts:?}"
    );
    let (status, _) = sim
        .post("/__sim/logs", json!({"app": "nope", "message": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = sim
        .get(&format!("/v1/apps/{APP}/logs?since=yesterday"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
