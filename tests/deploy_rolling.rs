//! The walking skeleton, end to end (issue #2, steps 2–6 and 8): the real binary against
//! `opsctl sim serve` running LowEndInsight on release v109.

mod common;

use common::{BAD, M1, M2, NEW, OLD, Sim, Workspace, opsctl, text};

#[test]
fn simulator_rejects_a_missing_token_like_fly() {
    let sim = Sim::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::get(format!("{}/v1/apps/lowendinsight/machines", sim.url))
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 401);
    let ws = Workspace::new(NEW);
    let out = ws
        .opsctl(&sim)
        .arg("diff")
        .env_remove("FLY_API_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("FLY_API_TOKEN"), "{}", text(&out));
}

#[test]
fn diff_shows_old_to_new_on_two_machines_then_apply_converges() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);

    let out = ws.opsctl(&sim).arg("diff").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains(&format!("image {OLD} → {NEW} on 2 machine(s)")),
        "{shown}"
    );

    let out = ws
        .opsctl(&sim)
        .args(["diff", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["kind"], "diff");
    let changes = json["apps"][0]["changes"].as_array().unwrap();
    let machines: Vec<&str> = changes
        .iter()
        .filter(|c| c["kind"] == "image")
        .map(|c| c["machine"].as_str().unwrap())
        .collect();
    assert_eq!(machines, [M1, M2]);
    assert!(changes.iter().all(|c| c["from"] == OLD && c["to"] == NEW));

    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("succeeded (release v110"),
        "{}",
        text(&out)
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );

    let requests = sim.requests();
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        2,
        "one update per machine: {requests}"
    );
    assert!(
        sim.count("POST /v1/apps/{app}/machines/{id}/lease") >= 2,
        "leased: {requests}"
    );
    assert!(
        sim.count("DELETE /v1/apps/{app}/machines/{id}/lease") >= 2,
        "leases released: {requests}"
    );
    assert!(
        sim.count("GET /v1/apps/{app}/machines/{id}/wait") >= 1,
        "waited for started: {requests}"
    );

    let out = ws.opsctl(&sim).arg("diff").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("lowendinsight: in sync"));

    let releases = sim.get("/api/v1/apps/lowendinsight/releases?limit=5");
    let newest = &releases["releases"][0];
    assert_eq!(
        (newest["version"].as_i64(), newest["status"].as_str()),
        (Some(110), Some("complete")),
        "{releases}"
    );

    let out = ws
        .opsctl(&sim)
        .args(["history", "lowendinsight", "-o", "json"])
        .output()
        .unwrap();
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rec = &history["deploys"][0];
    assert_eq!(rec["status"], "succeeded");
    assert_eq!(rec["image"], NEW);
    assert_eq!(rec["previous_image"], OLD);
    assert_eq!(rec["release"]["version"], 110);
    assert_eq!(rec["strategy"], "rolling");
    assert_eq!(rec["machines"].as_array().unwrap().len(), 2);
    assert!(
        rec["machines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["result"] == "healthy")
    );
    assert!(
        rec["started_at"].as_str().unwrap().ends_with('Z'),
        "UTC timestamps"
    );
    assert!(rec["finished_at"].is_string());
    // Every step was recorded with its intent and result.
    assert!(
        rec["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["intent"].is_string() && s["result"].is_string())
    );
}

#[test]
fn failing_image_stops_at_the_first_machine_and_is_rolled_back() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("rolled_back"), "{shown}");

    // Both machines run the old image: the first was rolled back, the second never touched.
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
    let updates = sim.count("POST /v1/apps/{app}/machines/{id}");
    assert_eq!(
        updates,
        2,
        "one bad update, one rollback update: {}",
        sim.requests()
    );

    let out = ws
        .opsctl(&sim)
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rec = &history["deploys"][0];
    assert_eq!(rec["status"], "rolled_back");
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.contains(M1) && reason.contains("release v110") && reason.contains("critical"),
        "{reason}"
    );
    assert_eq!(rec["rollback"]["image"], OLD);
    assert_eq!(
        rec["rollback"]["release"]["version"], 111,
        "a rollback is a new release"
    );
    assert_eq!(rec["rollback"]["outcome"], "succeeded");
    let results: Vec<&str> = rec["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["rolled_back", "skipped"]);

    let releases = sim.get("/api/v1/apps/lowendinsight/releases?limit=5");
    let statuses: Vec<(i64, &str)> = releases["releases"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|r| {
            (
                r["version"].as_i64().unwrap(),
                r["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, [(111, "complete"), (110, "failed")]);

    // At most one automatic rollback per bad release: the same image is not retried.
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("blocked"), "{}", text(&out));
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
}

#[test]
fn history_on_an_empty_state_dir_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = opsctl()
        .arg("--state")
        .arg(dir.path())
        .arg("history")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).contains("no deploy records"));
}
