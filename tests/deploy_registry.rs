//! The registry check before a rollback (issue #4: "check first that the old image still
//! exists in the registry (Fly prunes), and escalate when it does not"). The simulator serves
//! `HEAD /v2/<name>/manifests/<ref>` and can prune images (`POST /__sim/registry`).

mod common;

use common::{BAD, M1, M2, OLD, Sim, Workspace, text};

const HEAD_MANIFEST: &str = "HEAD /v2/{name}/manifests/{reference}";

/// Records of another kind than deploys (`item` lines), newest snapshot per id.
fn items(ws: &Workspace) -> Vec<serde_json::Value> {
    let journal = std::fs::read_to_string(ws.state().join("records.jsonl")).unwrap();
    let mut latest: Vec<serde_json::Value> = Vec::new();
    for line in journal.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let item = &v["item"];
        if item.is_null() {
            continue;
        }
        latest.retain(|i| i["id"] != item["id"]);
        latest.push(item.clone());
    }
    latest
}

fn last_deploy(ws: &Workspace, sim: &Sim) -> serde_json::Value {
    let out = ws
        .opsctl(sim)
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    history["deploys"][0].clone()
}

/// Escalated, not rolled back: the rollback touched no machine, the app is paused, and an
/// escalation caused by the deploy says why.
fn assert_escalated(sim: &Sim, ws: &Workspace, shown: &str, class: &str, why: &str) {
    // The bad update of the first machine happened; no rollback update followed.
    assert_eq!(
        sim.images(),
        vec![(M1.into(), BAD.into()), (M2.into(), OLD.into())],
        "{shown}"
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        1,
        "only the bad update, no rollback update: {}",
        sim.requests()
    );
    assert_eq!(sim.count(HEAD_MANIFEST), 1, "{}", sim.requests());
    let rec = last_deploy(ws, sim);
    assert_eq!(rec["status"], "rollback_failed", "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains("not rolled back") && reason.contains(why),
        "{reason}"
    );
    assert!(
        rec["rollback"]["release"].is_null(),
        "no rollback release: {rec}"
    );
    assert!(
        rec["rollback"]["outcome"]
            .as_str()
            .unwrap()
            .starts_with("not started"),
        "{rec}"
    );
    let esc_id = rec["escalation"]
        .as_str()
        .expect("escalation id on the deploy");
    let escalations: Vec<serde_json::Value> = items(ws)
        .into_iter()
        .filter(|i| i["kind"] == "escalation")
        .collect();
    assert_eq!(escalations.len(), 1, "{escalations:?}");
    let esc = &escalations[0];
    assert_eq!(esc["id"], esc_id);
    assert_eq!(esc["app"], "lowendinsight");
    assert_eq!(esc["data"]["class"], class);
    assert_eq!(
        esc["links"][0],
        serde_json::json!({"kind": "caused-by", "to": rec["id"]})
    );
    assert!(esc["description"].as_str().unwrap().contains(OLD), "{esc}");
    // Paused like after a failed rollback: the next automatic pass deploys nothing.
    let releases = sim.get("/api/v1/apps/lowendinsight/releases?limit=1");
    assert_eq!(
        releases["releases"][0]["version"], 110,
        "no rollback release"
    );
}

#[test]
fn a_rollback_to_a_pruned_image_escalates_and_touches_no_machine() {
    let sim = Sim::start();
    let dump = sim.control("/__sim/registry", serde_json::json!({"prune": [OLD]}));
    assert_eq!(dump["pruned"], serde_json::json!([OLD]));
    let ws = Workspace::new(BAD);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("pruned"), "{shown}");
    assert_escalated(&sim, &ws, &shown, "rollback_image_pruned", "pruned");
}

#[test]
fn an_unreachable_registry_is_unknown_and_escalates_rather_than_rolling_back_blind() {
    let sim = Sim::start();
    sim.control("/__sim/registry", serde_json::json!({"unavailable": true}));
    let ws = Workspace::new(BAD);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert_escalated(
        &sim,
        &ws,
        &shown,
        "rollback_image_unknown",
        "could not ask the registry",
    );
    let rec = last_deploy(&ws, &sim);
    assert!(
        rec["reason"].as_str().unwrap().contains("503"),
        "the record says the registry could not be asked: {rec}"
    );
}

#[test]
fn a_present_image_is_checked_once_then_rolled_back() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(sim.count(HEAD_MANIFEST), 1, "{}", sim.requests());
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
    assert_eq!(last_deploy(&ws, &sim)["status"], "rolled_back");
}
