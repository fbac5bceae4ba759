//! `opsctl run`'s operability endpoints (issue #8): `/healthz`, `/readyz` (ready once the
//! manifests are loaded and Fly was reached) and `/metrics` in Prometheus/OpenMetrics text,
//! scraped from a real process reconciling against the simulator.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Lines, NEW, OLD, Sim, Workspace, eventually, free_port, git, http_get as get};

#[test]
fn run_serves_health_readiness_and_metrics() {
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    let repo = ws.commit_all("on OLD");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = ws
        .opsctl(&sim)
        .args(["run", "--resync", "1h", "--poll", "100ms"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    let healthz = eventually(Duration::from_secs(30), || get(&format!("{base}/healthz")));
    assert_eq!(healthz.as_ref().map(|h| h.0), Some(200), "{}", lines.all());
    let ready = eventually(Duration::from_secs(30), || {
        get(&format!("{base}/readyz")).filter(|r| r.0 == 200)
    });
    assert!(ready.is_some(), "never ready; log:\n{}", lines.all());

    // A commit rolls NEW out; the deploy shows in the counters.
    ws.write_manifest(NEW);
    git(&repo, &["commit", "-q", "-am", "NEW"]);
    let metrics = eventually(Duration::from_secs(40), || {
        get(&format!("{base}/metrics")).filter(|m| {
            m.1.contains("opsctl_deploys_total{app=\"lowendinsight\",result=\"succeeded\"} 1")
        })
    });
    common::send_signal(&child, "TERM");
    let _ = child.wait();
    let (status, text) = metrics.unwrap_or_else(|| {
        panic!(
            "no deploy counted; last scrape:\n{:?}\nlog:\n{}",
            get(&format!("{base}/metrics")),
            lines.all()
        )
    });
    assert_eq!(status, 200);
    for needle in [
        "opsctl_reconcile_total{controller=\"deploy\",result=\"ok\"}",
        "opsctl_reconcile_duration_seconds_bucket{le=\"+Inf\",controller=\"deploy\"}",
        "opsctl_fly_api_requests_total{op=\"",
        "opsctl_drift{app=\"lowendinsight\"} 0",
        "opsctl_incidents_open 0",
        "# EOF",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    assert!(!text.contains("test-token"), "a token in the metrics");
}
