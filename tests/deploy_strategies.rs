//! Fly's four strategies against the simulator (issue #4): immediate, canary and bluegreen,
//! with a good and a failing image. Rolling is covered in deploy_rolling.rs.

mod common;

use common::{BAD, M1, M2, NEW, OLD, Sim, Workspace, text};

fn apply(ws: &Workspace, sim: &Sim) -> (i32, String, serde_json::Value) {
    let out = ws
        .opsctl(sim)
        .args(["apply", "-o", "json"])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap(), text(&out), json)
}

fn record(json: &serde_json::Value) -> &serde_json::Value {
    &json["apps"][0]["record"]
}

#[test]
fn immediate_updates_everything_at_once() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    ws.set_strategy("immediate");
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(record(&json)["strategy"], "immediate");
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
    let steps = record(&json)["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["intent"].as_str().unwrap().contains("batch 1/1")),
        "{steps:?}"
    );
}

#[test]
fn a_healthy_canary_is_destroyed_then_the_rollout_goes_on() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    ws.set_strategy("canary");
    let (code, shown, _) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines"),
        1,
        "one canary created"
    );
    assert_eq!(
        sim.count("DELETE /v1/apps/{app}/machines/{id}"),
        1,
        "and destroyed"
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())],
        "no machine left behind"
    );
}

#[test]
fn a_failing_canary_touches_no_existing_machine() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    ws.set_strategy("canary");
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 1, "{shown}");
    assert_eq!(record(&json)["status"], "failed");
    assert!(
        record(&json)["reason"].as_str().unwrap().contains("canary"),
        "{json}"
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        0,
        "no update of an existing machine"
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())],
        "canary destroyed"
    );
}

#[test]
fn bluegreen_replaces_every_machine_when_green_is_healthy() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    ws.set_strategy("bluegreen");
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(record(&json)["status"], "succeeded");
    let images = sim.images();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(
        images
            .iter()
            .all(|(id, image)| image == NEW && id != M1 && id != M2),
        "{images:?}"
    );
    let out = ws.opsctl(&sim).arg("diff").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn bluegreen_with_a_failing_green_keeps_blue_serving() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    ws.set_strategy("bluegreen");
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 1, "{shown}");
    assert!(
        record(&json)["reason"]
            .as_str()
            .unwrap()
            .contains("blue untouched"),
        "{json}"
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())],
        "green destroyed, blue intact"
    );
    let blue = sim.get(&format!("/v1/apps/lowendinsight/machines/{M1}"));
    assert_eq!(blue["state"], "started");
    assert_eq!(blue["cordoned"], false);
}

/// A user test found `immediate` with a failing image recorded as "all machines healthy".
/// Immediate does not wait (flyctl), so its machines are recorded as unverified, never healthy.
#[test]
fn immediate_never_claims_health_it_did_not_check() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    ws.set_strategy("immediate");
    let (_, shown, json) = apply(&ws, &sim);
    let machines = record(&json)["machines"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(machines.len(), 2, "{shown}");
    assert!(
        machines.iter().all(|m| m["result"] == "unverified"),
        "{machines:?}"
    );
    assert!(
        record(&json)["health"]
            .as_str()
            .unwrap()
            .contains("without a health verdict")
    );
}
