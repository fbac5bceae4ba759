//! `opsctl rollback APP [--to VERSION]` end to end against the simulator: a manual rollback is
//! a new Fly release with an older image, through governance (gated by default: approve, then
//! run it), recorded with trigger `rollback`; an unknown version, an unknown app and a pruned
//! image are refused with nothing changed.

mod common;

use common::{NEW, OLD, Sim, Workspace, text};
use serde_json::Value;

fn run(ws: &Workspace, sim: &Sim, args: &[&str]) -> (i32, String, Value) {
    let out = ws.opsctl(sim).args(args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), text(&out), json)
}

/// The simulator's app on NEW (release v110, after v107 OLDER, v108/v109 OLD), deployed by
/// `opsctl apply` under the tests' auto-deploy policy.
fn deployed_new() -> (Sim, Workspace) {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    let (code, shown, _) = run(&ws, &sim, &["apply"]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        sim.images().iter().all(|(_, i)| i == NEW),
        "{:?}",
        sim.images()
    );
    (sim, ws)
}

fn releases(sim: &Sim) -> Vec<(i64, String)> {
    let out = sim.get("/api/v1/apps/lowendinsight/releases");
    let list = out["releases"]
        .as_array()
        .or(out.as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|r| {
            (
                r["version"].as_i64().unwrap_or_default(),
                r["image_ref"]
                    .as_str()
                    .or(r["imageRef"].as_str())
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect()
}

#[test]
fn rolls_back_to_the_previous_release_after_approval_and_pins_the_new_image_out() {
    let (sim, ws) = deployed_new();
    let updates_before = sim.count("POST /v1/apps/{app}/machines/{id}");

    // The ADR's gates: a manual rollback waits for a human (exit 3), nothing changes yet.
    let (code, shown, asked) = run(&ws, &sim, &["rollback", "lowendinsight", "-o", "json"]);
    assert_eq!(code, 3, "{shown}");
    assert_eq!(asked["outcome"], "waiting", "{asked}");
    assert_eq!(asked["rule"], "gate.rollback.phase1.gated", "{asked}");
    assert_eq!(asked["from"]["image"], NEW, "{asked}");
    assert_eq!(asked["to"]["image"], OLD, "{asked}");
    assert_eq!(
        asked["to"]["version"], 109,
        "the release before the current one: {asked}"
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        updates_before
    );
    let id = asked["approval"].as_str().unwrap().to_owned();

    // An `apply` pass meanwhile does not supersede the rollback's approval.
    let (code, shown, _) = run(&ws, &sim, &["apply"]);
    assert_eq!(code, 0, "{shown}");
    let (_, shown, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    assert_eq!(pending["approvals"][0]["id"], id.as_str(), "{shown}");

    let (code, shown, _) = run(&ws, &sim, &["approve", &id]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains("opsctl rollback lowendinsight --to 109"),
        "{shown}"
    );

    let (code, shown, done) = run(&ws, &sim, &["rollback", "lowendinsight", "-o", "json"]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(done["outcome"], "rolled_back", "{done}");
    assert_eq!(done["approval"], id.as_str(), "{done}");
    let rec = &done["record"];
    assert_eq!(rec["trigger"], "rollback", "{rec}");
    assert_eq!(rec["status"], "succeeded", "{rec}");
    assert_eq!(rec["image"], OLD, "{rec}");
    assert!(
        shown.contains("rolling back from v110"),
        "progress on stderr: {shown}"
    );
    // Machines on the old image, as a *new* release carrying it.
    assert!(
        sim.images().iter().all(|(_, i)| i == OLD),
        "{:?}",
        sim.images()
    );
    let rel = rec["release"]["version"].as_i64().unwrap();
    assert!(rel > 110, "a new release, not v109 again: {rec}");
    if let Some((_, image)) = releases(&sim).iter().find(|(v, _)| *v == rel) {
        assert_eq!(image, OLD);
    }
    // History shows it; the approval is applied.
    let (_, _, history) = run(&ws, &sim, &["history", "-o", "json"]);
    assert_eq!(history["deploys"][0]["id"], rec["id"], "{history}");
    let (_, _, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    assert_eq!(
        pending["approvals"].as_array().map(Vec::len),
        Some(0),
        "{pending}"
    );

    // The manifests still say NEW: the next pass does not put it back.
    let (code, shown, _) = run(&ws, &sim, &["apply"]);
    assert_eq!(code, 1, "blocked: {shown}");
    assert!(shown.contains("pinned out"), "{shown}");
    assert!(
        sim.images().iter().all(|(_, i)| i == OLD),
        "{:?}",
        sim.images()
    );
}

#[test]
fn an_auto_policy_rolls_back_at_once_to_the_version_asked_for() {
    let (sim, ws) = deployed_new();
    std::fs::write(
        ws.manifests().join("governance.yaml"),
        format!(
            "{}    rollback: {{phase1: auto, phase2: auto, phase3: auto}}\n",
            common::AUTO_DEPLOYS
        ),
    )
    .unwrap();
    let (code, shown, done) = run(
        &ws,
        &sim,
        &["rollback", "lowendinsight", "--to", "v107", "-o", "json"],
    );
    assert_eq!(code, 0, "{shown}");
    assert_eq!(done["rule"], "gate.rollback.phase1.auto", "{done}");
    let older = "registry.fly.io/lowendinsight:deployment-OLDER";
    assert_eq!(done["to"]["image"], older, "{done}");
    assert!(
        sim.images().iter().all(|(_, i)| i == older),
        "{:?}",
        sim.images()
    );
}

#[test]
fn an_unknown_version_is_refused_with_the_releases_listed() {
    let (sim, ws) = deployed_new();
    let updates = sim.count("POST /v1/apps/{app}/machines/{id}");
    let (code, shown, _) = run(&ws, &sim, &["rollback", "lowendinsight", "--to", "999"]);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("no release v999"), "{shown}");
    assert!(
        shown.contains("v109 (registry.fly.io/lowendinsight:deployment-OLD"),
        "{shown}"
    );
    assert_eq!(sim.count("POST /v1/apps/{app}/machines/{id}"), updates);

    let (code, shown, _) = run(&ws, &sim, &["rollback", "lowendinsight", "--to", "110"]);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("nothing to roll back"), "{shown}");

    let (code, shown, _) = run(&ws, &sim, &["rollback", "nope"]);
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("no FlyApp named \"nope\"") && shown.contains("lowendinsight"),
        "{shown}"
    );
}

#[test]
fn a_pruned_image_is_refused_with_the_reason_and_nothing_is_asked_or_changed() {
    let (sim, ws) = deployed_new();
    sim.control("/__sim/registry", serde_json::json!({"prune": [OLD]}));
    let updates = sim.count("POST /v1/apps/{app}/machines/{id}");
    let (code, shown, _) = run(&ws, &sim, &["rollback", "lowendinsight", "-o", "json"]);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("pruned"), "{shown}");
    assert!(shown.contains("rollback.image_unavailable"), "{shown}");
    assert_eq!(sim.count("POST /v1/apps/{app}/machines/{id}"), updates);
    assert!(
        sim.images().iter().all(|(_, i)| i == NEW),
        "{:?}",
        sim.images()
    );
    let (_, _, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    assert_eq!(
        pending["approvals"].as_array().map(Vec::len),
        Some(0),
        "{pending}"
    );
}

#[test]
fn with_no_earlier_release_of_another_image_there_is_nothing_to_roll_back_to() {
    // The shipped scenario without v107 (OLDER): v108 and v109 both run OLD.
    let shipped =
        std::fs::read_to_string(common::repo_root().join("examples/sim/lowendinsight.yaml"))
            .unwrap();
    let trimmed = shipped.replace(
        "      - version: 107\n        image: registry.fly.io/lowendinsight:deployment-OLDER\n        createdAt: \"2026-02-02T10:00:00Z\"\n",
        "",
    );
    assert_ne!(trimmed, shipped, "the scenario lists v107");
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.yaml");
    std::fs::write(&scenario, trimmed).unwrap();
    let sim = Sim::start_with(&scenario);
    let ws = Workspace::new(OLD);
    let (code, shown, json) = run(&ws, &sim, &["rollback", "lowendinsight", "-o", "json"]);
    assert_eq!(code, 1, "{shown}");
    assert_eq!(json["code"], "rollback.no_target", "{json}");
    assert!(shown.contains("nothing to roll back to"), "{shown}");
    assert_eq!(sim.count("POST /v1/apps/{app}/machines/{id}"), 0);
}
