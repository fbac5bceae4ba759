//! `opsctl run` on its work queue (issue #8), as a user sees it: `opsctl status` reads the
//! running process's live state (`GET /status`) and says "not running" when nothing answers;
//! `/metrics` has the work-queue depth; SIGTERM during a rollout parks the step, records it,
//! releases the leases and exits 0 within 10 s.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    Lines, M1, M2, NEW, OLD, Sim, Workspace, deploys, eventually, free_port, http_get as get,
    scenario_with_faults,
};

/// `opsctl run` on a git checkout of `ws`'s manifests, listening on `port`.
fn start_run(ws: &Workspace, sim: &Sim, port: u16) -> (Child, Lines) {
    ws.commit_all("manifests");
    let mut child = ws
        .opsctl(sim)
        .args(["run", "--resync", "1h", "--poll", "100ms", "--workers", "2"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    (child, lines)
}

fn status(ws: &Workspace, server: &str, json: bool) -> (bool, String) {
    let mut c = common::opsctl();
    c.arg("--manifests")
        .arg(ws.manifests())
        .arg("--state")
        .arg(ws.state())
        .args(["status", "--server", server]);
    if json {
        c.args(["-o", "json"]);
    }
    let out = c.output().unwrap();
    (out.status.success(), common::text(&out))
}

fn stop(child: &mut Child, lines: &Lines) -> (std::process::ExitStatus, Duration) {
    let sent = Instant::now();
    common::send_signal(child, "TERM");
    let status = eventually(Duration::from_secs(10), || child.try_wait().unwrap());
    let Some(status) = status else {
        let _ = child.kill();
        panic!("no exit within 10 s of SIGTERM:\n{}", lines.all());
    };
    (status, sent.elapsed())
}

#[test]
fn status_reads_the_running_reconciler_and_says_when_none_runs() {
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");

    // Nothing listens yet: quietly "not running", exit 0, the other sections still there.
    let (ok, text) = status(&ws, &base, false);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!(
            "reconciler: not running (nothing answers at {base})"
        )),
        "{text}"
    );
    assert!(text.contains("governance:"), "{text}");
    let (_, json) = status(&ws, &base, true);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["reconciler"]["running"], false, "{v}");
    assert_eq!(v["apps"][0]["reconciler"], serde_json::Value::Null, "{v}");

    let (mut child, lines) = start_run(&ws, &sim, port);
    let live = eventually(Duration::from_secs(30), || {
        let (code, body) = get(&format!("{base}/status"))?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (code == 200 && v["apps"][0]["result"] == "ok").then_some(v)
    })
    .unwrap_or_else(|| panic!("no reconcile in /status:\n{}", lines.all()));
    assert_eq!(live["role"], "single");
    assert_eq!(live["running"], true);
    assert_eq!(live["workers"], 2);
    assert_eq!(live["apps"][0]["app"], "lowendinsight");
    assert_eq!(live["apps"][0]["pace"], "idle");
    assert_eq!(live["apps"][0]["consecutive_failures"], 0);

    let (ok, json) = status(&ws, &base, true);
    assert!(ok, "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let r = &v["reconciler"];
    assert_eq!(r["running"], true, "{v}");
    assert_eq!(r["role"], "single");
    assert_eq!(r["queue_depth"], 0);
    assert_eq!(r["server"], base.as_str());
    let app = &v["apps"][0]["reconciler"];
    assert_eq!(app["result"], "ok", "{v}");
    let last =
        chrono::DateTime::parse_from_rfc3339(app["last_reconcile"].as_str().unwrap()).unwrap();
    let next =
        chrono::DateTime::parse_from_rfc3339(app["next_reconcile"].as_str().unwrap()).unwrap();
    let wait = (next - last).num_seconds();
    assert!(
        (3240..=3600).contains(&wait),
        "idle: next within --resync 1h, got {wait} s"
    );

    let (_, text) = status(&ws, &base, false);
    assert!(
        text.contains(&format!("reconciler: running at {base} (role single")),
        "{text}"
    );
    assert!(text.contains("last ok "), "{text}");
    assert!(text.contains("(idle)"), "{text}");

    // The queue depth gauge, scraped.
    let (_, metrics) = get(&format!("{base}/metrics")).unwrap();
    assert!(
        metrics.contains("# TYPE opsctl_workqueue_depth gauge")
            && metrics.contains("opsctl_workqueue_depth{controller=\"deploy\"} 0"),
        "{metrics}"
    );

    let (exit, _) = stop(&mut child, &lines);
    assert!(exit.success(), "{exit:?}: {}", lines.all());
}

#[test]
fn sigterm_during_a_rollout_parks_the_step_releases_leases_and_exits_0() {
    // Machine updates take 2 s to answer, so SIGTERM lands inside a step.
    let (_dir, scenario) = scenario_with_faults(
        "  - kind: latency\n    route: \"POST /v1/apps/{app}/machines/{id}\"\n    delay: 2s\n",
    );
    let sim = Sim::start_with(&scenario);
    let ws = Workspace::new(NEW);
    let (mut child, lines) = start_run(&ws, &sim, free_port());
    // The rollout is in flight: its record says so.
    let in_flight = eventually(Duration::from_secs(30), || {
        deploys(&ws.state())
            .into_iter()
            .find(|d| d["status"] == "in_progress")
    });
    assert!(in_flight.is_some(), "no rollout started:\n{}", lines.all());
    std::thread::sleep(Duration::from_millis(300));

    let (exit, took) = stop(&mut child, &lines);
    assert_eq!(exit.code(), Some(0), "{}", lines.all());
    eprintln!("SIGTERM → exit: {took:?}");
    assert!(
        lines.wait_for("reconciler stopped", Duration::from_secs(1)),
        "{}",
        lines.all()
    );

    // The step was finished or parked, and recorded: not left in progress.
    let d = deploys(&ws.state());
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["status"], "halted", "{}", d[0]);
    assert_eq!(
        d[0]["needs_recovery"], true,
        "the next run finishes it: {}",
        d[0]
    );
    assert!(
        serde_json::to_string(&d[0])
            .unwrap()
            .contains("asked to stop"),
        "the record says why it stopped: {}",
        d[0]
    );
    // No lease left on Fly.
    for m in [M1, M2] {
        let lease = sim.get(&format!("/v1/apps/lowendinsight/machines/{m}/lease"));
        let held = lease["data"]["nonce"].is_string() && lease["status"] == "success";
        assert!(!held, "lease left on {m}: {lease}\n{}", lines.all());
    }
}
