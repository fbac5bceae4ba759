//! Case BUG-08 end to end against `opsctl sim serve`: a group left on two images (M1 on OLD,
//! M2 already on NEW, the manifest's image). Converged forward when NEW is healthy; when NEW
//! fails — where it already runs, or on the machine the converge updates — every machine of
//! the group on NEW goes back to OLD, not only the machines the deploy touched. And one
//! deploy in flight per app: a newer commit waits for the running deploy to finish.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{
    Lines, M1, M2, NEW, OLD, Sim, Workspace, deploys, eventually, git, manifest, send_signal, text,
};

const NEWER: &str = "registry.fly.io/lowendinsight:deployment-NEWER";

/// The shipped scenario with M2 already on NEW (release 110) and NEW behaving as `new`.
fn mixed_scenario(new: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let shipped =
        std::fs::read_to_string(common::repo_root().join("examples/sim/lowendinsight.yaml"))
            .unwrap();
    let m2 = format!(
        "- id: {M2}\n        region: iad\n        state: started\n        release: 109\n        image: {OLD}"
    );
    assert!(shipped.contains(&m2), "the shipped scenario has M2 on OLD");
    let text = shipped
        .replace(
            &m2,
            &format!(
                "- id: {M2}\n        region: iad\n        state: started\n        release: 110\n        image: {NEW}"
            ),
        )
        .replace(&format!("{NEW}: healthy"), &format!("{NEW}: {new}"))
        .replacen(
            "        createdAt: \"2026-02-16T10:00:00Z\"\n",
            &format!(
                "        createdAt: \"2026-02-16T10:00:00Z\"\n      - version: 110\n        image: {NEW}\n        createdAt: \"2026-02-17T10:00:00Z\"\n"
            ),
            1,
        );
    assert!(text.contains(&format!("{NEW}: {new}")), "{text}");
    assert!(text.contains("version: 110"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn history(ws: &Workspace, sim: &Sim) -> Vec<serde_json::Value> {
    let out = ws
        .opsctl(sim)
        .args(["history", "lowendinsight", "-o", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["deploys"].as_array().cloned().unwrap_or_default()
}

fn machine_result<'a>(rec: &'a serde_json::Value, id: &str) -> &'a str {
    rec["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["machine"] == id)
        .and_then(|m| m["result"].as_str())
        .unwrap_or("absent")
}

/// Critical checks seen on `id` (the simulator reports them after `checkGrace`).
fn wait_until_failing(sim: &Sim, id: &str) {
    let seen = eventually(Duration::from_secs(10), || {
        let m = sim.get(&format!("/v1/apps/lowendinsight/machines/{id}"));
        m["checks"]
            .as_array()
            .filter(|c| !c.is_empty() && c.iter().all(|c| c["status"] == "critical"))
            .map(|_| ())
    });
    assert!(seen.is_some(), "{id} never reported critical checks");
}

/// NEW is healthy where it runs: the lagging machine is converged forward, nothing rolled back.
#[test]
fn a_healthy_mixed_group_converges_forward() {
    let (_dir, scenario) = mixed_scenario("healthy");
    let sim = Sim::start_with(&scenario);
    let ws = Workspace::new(NEW);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        1,
        "only M1 updated"
    );
    let rec = &history(&ws, &sim)[0];
    assert_eq!(rec["status"], "succeeded", "{rec}");
}

/// "Had v42 been failing on m2/m3, the plan would instead be Rollback of m2 and m3 to v41":
/// NEW fails on M2 before the deploy → M2 goes back to OLD; M1 is never moved to NEW.
#[test]
fn an_image_already_failing_where_it_runs_is_rolled_back_not_spread() {
    let (_dir, scenario) = mixed_scenario("fails-checks");
    let sim = Sim::start_with(&scenario);
    wait_until_failing(&sim, M2);
    let ws = Workspace::new(NEW);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())],
        "{shown}"
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        1,
        "one update: M2's rollback; M1 untouched: {shown}"
    );
    let deploys = history(&ws, &sim);
    assert_eq!(deploys.len(), 1, "{deploys:?}");
    let rec = &deploys[0];
    assert_eq!(rec["status"], "rolled_back", "{rec}");
    assert_eq!(rec["image"], NEW);
    assert_eq!(rec["rollback"]["image"], OLD, "{rec}");
    assert_eq!(
        rec["rollback"]["machines"],
        serde_json::json!([M2]),
        "{rec}"
    );
    assert_eq!(machine_result(rec, M2), "rolled_back", "{rec}");
    assert_eq!(machine_result(rec, M1), "absent", "{rec}");
    // Intents were recorded before the actions: lease, registry check, rollback.
    let intents: Vec<&str> = rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["intent"].as_str().unwrap())
        .collect();
    let pos = |needle: &str| intents.iter().position(|i| i.contains(needle));
    assert!(
        pos("lease machines").unwrap() < pos("registry").unwrap()
            && pos("registry").unwrap() < pos("roll back").unwrap(),
        "{intents:?}"
    );
    let newest = &sim.get("/api/v1/apps/lowendinsight/releases?limit=3")["releases"][0];
    assert_eq!(
        newest["image_ref"], OLD,
        "the rollback is a new release: {newest}"
    );
}

/// The converge of the lagging machine fails health: the rollback restores M1 (touched) and
/// M2 (already on NEW before the deploy) to OLD.
#[test]
fn a_converge_that_fails_rolls_back_the_whole_group() {
    // M2 started healthy on NEW; from now on NEW exits 1 s after a start (a behaviour change
    // applies from a machine's next start): M2 keeps running and passing, M1 will fail.
    // Checks report 1.5 s after a start, after NEW's exit (1 s): the exit decides.
    let (_dir, scenario) = mixed_scenario("healthy");
    let slow_checks = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("checkGrace: 500ms", "checkGrace: 1500ms");
    assert!(slow_checks.contains("checkGrace: 1500ms"));
    std::fs::write(&scenario, slow_checks).unwrap();
    let sim = Sim::start_with(&scenario);
    sim.control(
        "/__sim/images",
        serde_json::json!({"image": NEW, "behavior": {"exits": 1}}),
    );
    let passing = eventually(Duration::from_secs(10), || {
        let m2 = sim.get(&format!("/v1/apps/lowendinsight/machines/{M2}"));
        (m2["state"] == "started"
            && m2["checks"]
                .as_array()
                .is_some_and(|c| !c.is_empty() && c.iter().all(|c| c["status"] == "passing")))
        .then_some(())
    });
    assert!(passing.is_some(), "M2 runs NEW and passes its checks");
    let ws = Workspace::new(NEW);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())],
        "{shown}"
    );
    let rec = &history(&ws, &sim)[0];
    assert_eq!(rec["status"], "rolled_back", "{rec}");
    assert_eq!(
        rec["rollback"]["machines"],
        serde_json::json!([M1, M2]),
        "{rec}"
    );
    assert_eq!(machine_result(rec, M1), "rolled_back", "{rec}");
    assert_eq!(machine_result(rec, M2), "rolled_back", "{rec}");
    assert!(
        sim.count("POST /v1/apps/{app}/machines/{id}/lease") >= 2,
        "M2 was leased with the rollout"
    );
}

/// One deploy in flight per app: NEWER is committed while the converge to NEW runs under
/// `opsctl run`; the NEWER rollout starts only after the NEW record is finished, and both
/// records exist, in order.
#[test]
fn a_newer_commit_waits_for_the_deploy_in_flight() {
    // NEW takes 3 s to start: the converge of M1 is in flight long enough to commit meanwhile.
    let (_dir, scenario) = mixed_scenario("{slow-start: 3s}");
    let sim = Sim::start_with(&scenario);
    let ws = Workspace::new(OLD);
    let repo = ws.commit_all("LowEndInsight on OLD");
    std::fs::write(repo.join("lowendinsight.yaml"), manifest(NEW)).unwrap();
    git(&repo, &["commit", "-q", "-am", "v42: NEW"]);
    let mut child = ws
        .opsctl(&sim)
        .args(["run", "--resync", "1h", "--poll", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    // The converge of M1 to NEW is running (its update is recorded in progress).
    let running = eventually(Duration::from_secs(20), || {
        deploys(&ws.state())
            .first()
            .filter(|d| d["status"] == "in_progress" && d["image"] == NEW)
            .filter(|d| {
                d["steps"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["intent"].as_str().unwrap_or("").starts_with("update "))
                })
            })
            .cloned()
    });
    assert!(running.is_some(), "{}", lines.all());
    std::fs::write(repo.join("lowendinsight.yaml"), manifest(NEWER)).unwrap();
    git(&repo, &["commit", "-q", "-am", "v43: NEWER"]);
    let both = eventually(Duration::from_secs(60), || {
        let d = deploys(&ws.state());
        (d.len() >= 2 && d[0]["image"] == NEWER && d[0]["status"] == "succeeded").then_some(d)
    });
    send_signal(&child, "TERM");
    let _ = child.wait();
    let d = both.unwrap_or_else(|| panic!("{:?}\n{}", deploys(&ws.state()), lines.all()));
    // Newest first: NEWER, then NEW.
    assert_eq!(d.len(), 2, "{d:?}");
    let (newer, new) = (&d[0], &d[1]);
    assert_eq!(new["image"], NEW);
    assert_eq!(new["status"], "succeeded", "{new}");
    let time =
        |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(
        time(&newer["started_at"]) >= time(&new["finished_at"]),
        "NEWER started {} before NEW finished {}",
        newer["started_at"],
        new["finished_at"]
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEWER.into()), (M2.into(), NEWER.into())]
    );
}
