//! The rollout as a recorded state machine (issue #4): every phase is in the journal before
//! the deploy enters it, in the order the controllers' `rollout::phase::transition` allows.

mod common;

use common::{BAD, NEW, Sim, Workspace, text};

/// The distinct phases a deploy's snapshots recorded, in journal order.
fn phases(ws: &Workspace) -> Vec<serde_json::Value> {
    let journal = std::fs::read_to_string(ws.state().join("records.jsonl")).unwrap();
    let mut seen: Vec<serde_json::Value> = Vec::new();
    for line in journal.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let phase = &v["record"]["phase"];
        if !phase.is_null() && seen.last() != Some(phase) {
            seen.push(phase.clone());
        }
    }
    seen
}

#[test]
fn a_good_rolling_deploy_records_each_phase_before_entering_it() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        phases(&ws),
        vec![
            // The test manifest drains an Oban queue (its database URL is absent: a warning).
            serde_json::json!({"phase": "drain"}),
            serde_json::json!({"phase": "lease"}),
            serde_json::json!({"phase": "deploy", "batch": 1, "of": 2}),
            serde_json::json!({"phase": "deploy", "batch": 2, "of": 2}),
            serde_json::json!({"phase": "health_check"}),
            serde_json::json!({"phase": "done", "outcome": "succeeded"}),
        ]
    );
    // The first update happened after the deploy phase was durable: the snapshot that
    // entered it has no update step yet.
    let journal = std::fs::read_to_string(ws.state().join("records.jsonl")).unwrap();
    let entering = journal
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["record"]["phase"]["phase"] == "deploy")
        .unwrap();
    let steps = entering["record"]["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .all(|s| !s["intent"].as_str().unwrap().starts_with("update ")),
        "{steps:?}"
    );
}

#[test]
fn a_failed_deploy_records_the_rollback_phase_then_done() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let seen = phases(&ws);
    assert_eq!(
        seen[seen.len() - 2..],
        [
            serde_json::json!({"phase": "rollback"}),
            serde_json::json!({"phase": "done", "outcome": "rolled_back"}),
        ],
        "{seen:?}"
    );
    assert_eq!(
        seen[..3],
        [
            serde_json::json!({"phase": "drain"}),
            serde_json::json!({"phase": "lease"}),
            serde_json::json!({"phase": "deploy", "batch": 1, "of": 2}),
        ]
    );
}
