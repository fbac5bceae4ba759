//! `opsctl apply --plan FILE` end to end against the simulator: a plan written by `opsctl plan
//! --out` is carried out as planned, and refused with nothing done when the manifests or Fly
//! changed since (like `terraform apply plan.tfplan`).

mod common;

use common::{NEW, OLD, Sim, Workspace, text};
use serde_json::Value;

const NEWER: &str = "registry.fly.io/lowendinsight:deployment-NEWER";
const UPDATE: &str = "POST /v1/apps/{app}/machines/{id}";

fn run(ws: &Workspace, sim: &Sim, args: &[&str]) -> (i32, String, Value) {
    let out = ws.opsctl(sim).args(args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), text(&out), json)
}

fn plan_out(ws: &Workspace, sim: &Sim) -> String {
    let file = ws.dir.path().join("plan.json");
    let (code, shown, _) = run(ws, sim, &["plan", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 2, "a deploy is planned: {shown}");
    file.to_str().unwrap().to_owned()
}

#[test]
fn a_saved_plan_is_carried_out() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    let file = plan_out(&ws, &sim);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(saved["apps"][0]["revision"].is_string(), "{saved}");
    let (code, shown, out) = run(&ws, &sim, &["apply", "--plan", &file, "-o", "json"]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(out["apps"][0]["outcome"], "deployed", "{out}");
    assert_eq!(out["apps"][0]["record"]["status"], "succeeded", "{out}");
    assert!(
        sim.images().iter().all(|(_, i)| i == NEW),
        "{:?}",
        sim.images()
    );
    // Carried out: the same file now describes a past state, and is refused.
    let (code, shown, _) = run(&ws, &sim, &["apply", "--plan", &file]);
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("plan.stale") || shown.contains("nothing was done"),
        "{shown}"
    );
}

#[test]
fn a_plan_whose_manifests_changed_is_refused_and_nothing_is_done() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    let file = plan_out(&ws, &sim);
    ws.write_manifest(NEWER);
    let updates = sim.count(UPDATE);
    let (code, shown, _) = run(&ws, &sim, &["apply", "--plan", &file]);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("nothing was done"), "{shown}");
    assert!(shown.contains("the manifests changed"), "{shown}");
    assert!(
        shown.contains(NEWER) && shown.contains("the actions changed"),
        "{shown}"
    );
    assert_eq!(sim.count(UPDATE), updates, "no machine was updated");
    assert!(
        sim.images().iter().all(|(_, i)| i == OLD),
        "{:?}",
        sim.images()
    );
}

#[test]
fn a_plan_whose_fly_state_changed_is_refused_and_nothing_is_done() {
    let sim = Sim::start();
    let ws = Workspace::new(NEWER);
    let file = plan_out(&ws, &sim);
    // Someone else deploys NEW meanwhile: Fly's machines are not what the plan saw.
    let other = Workspace::new(NEW);
    let (code, shown, _) = run(&other, &sim, &["apply"]);
    assert_eq!(code, 0, "{shown}");
    let updates = sim.count(UPDATE);
    let (code, shown, json) = run(&ws, &sim, &["apply", "--plan", &file, "-o", "json"]);
    assert_eq!(code, 1, "{shown}");
    assert_eq!(json["code"], "plan.stale", "{json}");
    let message = json["message"].as_str().unwrap_or_default();
    assert!(!message.contains("the manifests changed"), "{message}");
    assert!(message.contains("the actions changed"), "{message}");
    assert!(
        message.contains(&format!("image {NEW} → {NEWER}")),
        "{message}"
    );
    assert_eq!(sim.count(UPDATE), updates, "no machine was updated");
    assert!(
        sim.images().iter().all(|(_, i)| i == NEW),
        "{:?}",
        sim.images()
    );
}

#[test]
fn a_file_that_is_not_a_plan_is_refused() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    let file = ws.dir.path().join("not-a-plan.json");
    std::fs::write(&file, r#"{"kind":"diff","apps":[]}"#).unwrap();
    let (code, shown, _) = run(&ws, &sim, &["apply", "--plan", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{shown}");
    assert!(
        shown.contains("is not a plan written by `opsctl plan --out`"),
        "{shown}"
    );
    assert!(
        sim.images().iter().all(|(_, i)| i == OLD),
        "{:?}",
        sim.images()
    );
}

#[test]
fn a_saved_gated_plan_still_waits_for_approval() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    ws.adr_governance();
    let file = plan_out(&ws, &sim);
    let (code, shown, out) = run(&ws, &sim, &["apply", "--plan", &file, "-o", "json"]);
    assert_eq!(code, 3, "{shown}");
    assert_eq!(out["apps"][0]["outcome"], "waiting", "{out}");
    assert_eq!(sim.count(UPDATE), 0, "nothing ran without approval");
}
