//! Crash safety of a rollout (issue #4, "Resume"): `opsctl apply` is killed with SIGKILL at
//! many points of a rollout; the next `opsctl apply` finishes (or rolls back) the half-done
//! rollout. Never a second update of the same machine to the same image, never a lease left
//! held, never a lost or corrupt record.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{BAD, M1, M2, NEW, OLD, Sim, Workspace, text};

fn kill_then_apply(image: &str, after: Duration) -> (Sim, Workspace, String) {
    let sim = Sim::start();
    let ws = Workspace::new(image);
    let mut child = ws
        .opsctl(&sim)
        .arg("apply")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{shown}");
    (sim, ws, shown)
}

fn records(ws: &Workspace) -> Vec<serde_json::Value> {
    let journal = std::fs::read_to_string(ws.state().join("records.jsonl")).unwrap_or_default();
    for line in journal.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("corrupt journal line {line:?}: {e}"));
    }
    let out = common::opsctl()
        .arg("--state")
        .arg(ws.state())
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["deploys"].as_array().cloned().unwrap_or_default()
}

fn no_lease_held(sim: &Sim) {
    for m in [M1, M2] {
        let lease = sim.get(&format!("/v1/apps/lowendinsight/machines/{m}/lease"));
        let held = lease["data"]["nonce"].is_string() && lease["status"] == "success";
        assert!(!held, "lease left on {m}: {lease}");
    }
}

#[test]
fn a_killed_good_rollout_is_finished_once() {
    for ms in [0u64, 30, 80, 150, 300, 500, 800, 1200, 1800] {
        let (sim, ws, shown) = kill_then_apply(NEW, Duration::from_millis(ms));
        assert_eq!(
            sim.images(),
            vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())],
            "killed after {ms} ms: {shown}"
        );
        let updates = sim.count("POST /v1/apps/{app}/machines/{id}");
        assert_eq!(
            updates,
            2,
            "killed after {ms} ms: each machine updated exactly once: {}",
            sim.requests()
        );
        let recs = records(&ws);
        assert!(
            recs.iter().all(|r| r["status"] != "in_progress"),
            "killed after {ms} ms: {recs:?}"
        );
        assert!(
            recs.iter().any(|r| r["status"] == "succeeded"),
            "killed after {ms} ms: {recs:?}"
        );
        no_lease_held(&sim);
    }
}

#[test]
fn a_killed_bad_rollout_is_rolled_back_not_redeployed() {
    for ms in [100u64, 400, 900, 1500, 2500] {
        let (sim, ws, shown) = kill_then_apply(BAD, Duration::from_millis(ms));
        assert_eq!(
            sim.images(),
            vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())],
            "killed after {ms} ms: {shown}"
        );
        let updates = sim.count("POST /v1/apps/{app}/machines/{id}");
        assert!(
            updates <= 2,
            "killed after {ms} ms: at most one bad update and one rollback: {}",
            sim.requests()
        );
        let recs = records(&ws);
        assert!(
            recs.iter().all(|r| r["status"] != "in_progress"),
            "killed after {ms} ms: {recs:?}"
        );
        no_lease_held(&sim);
    }
}

/// A user test: Ctrl-C halted a bad rollout with the first machine on the bad image; the next
/// `apply` never judged it, updated the healthy machine to the bad image too, and rolled back
/// only that one. A halted rollout is now recovered like a crashed one.
#[test]
fn an_interrupted_bad_rollout_is_rolled_back_by_the_next_apply() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    let mut child = ws
        .opsctl(&sim)
        .arg("apply")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first machine was updated to BAD, then interrupt.
    let updated = common::eventually(Duration::from_secs(20), || {
        (sim.count("POST /v1/apps/{app}/machines/{id}") >= 1).then_some(())
    });
    assert!(updated.is_some(), "the first machine was updated");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())],
        "{shown}"
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        2,
        "one bad update and its rollback; the healthy machine never touched: {shown}"
    );
    let recs = records(&ws);
    assert!(
        recs.iter()
            .all(|r| r["status"] != "in_progress" && r["needs_recovery"] != true),
        "{recs:?}"
    );
    no_lease_held(&sim);
}

/// A user test: a killed canary or bluegreen rollout leaked its canary/green machines and
/// wedged the app ("several images"). The next `apply` removes what the dead process created.
#[test]
fn a_killed_canary_or_bluegreen_rollout_leaves_no_machine_behind() {
    for strategy in ["canary", "bluegreen"] {
        let sim = Sim::start();
        let ws = Workspace::new(NEW);
        ws.set_strategy(strategy);
        let mut child = ws
            .opsctl(&sim)
            .arg("apply")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let created = common::eventually(Duration::from_secs(20), || {
            (sim.count("POST /v1/apps/{app}/machines") >= 1).then_some(())
        });
        assert!(created.is_some(), "{strategy}: a machine was created");
        std::thread::sleep(Duration::from_millis(100));
        let _ = child.kill();
        let _ = child.wait();
        let out = ws.opsctl(&sim).arg("apply").output().unwrap();
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(0), "{strategy}: {shown}");
        let images = sim.images();
        assert_eq!(
            images.len(),
            2,
            "{strategy}: no leaked machine: {images:?}\n{shown}"
        );
        assert!(
            images.iter().all(|(_, i)| i == NEW),
            "{strategy}: {images:?}"
        );
        let recs = records(&ws);
        assert!(
            recs.iter().all(|r| r["status"] != "in_progress"),
            "{strategy}: {recs:?}"
        );
        no_lease_held(&sim);
    }
}
