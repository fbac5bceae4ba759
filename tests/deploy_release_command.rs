//! The release command (migrations) inside a deploy (issue #4): run as flyctl runs it, in a
//! temporary machine, before any app machine is touched; once per image; only for a human.
//! Regression tests for case BUG-15 (`../shared/cases/README.md`): A, a create Fly could not
//! perform ("failed to launch VM: EOF"); B, a migration that exits 1; C, a new machine that
//! answers 404 right after its create.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{Lines, M1, M2, NEW, OLD, Sim, Workspace, repo_root, scenario_with_faults, text};
use serde_json::{Value, json};

const MIGRATE: &str = "/app/bin/migrate";
const MIGRATE_FAIL: &str = "registry.fly.io/lowendinsight:deployment-MIGRATEFAIL";
const DUPLICATE_TABLE: &str =
    "** (Postgrex.Error) ERROR 42P07 (duplicate_table) relation \"accounts\" already exists";
const UPDATE: &str = "POST /v1/apps/{app}/machines/{id}";
const CREATE: &str = "POST /v1/apps/{app}/machines";

/// A workspace deploying `image` with `releaseCommand: /app/bin/migrate`; without the Oban
/// drain when `drain` is false.
fn workspace(image: &str, drain: bool) -> Workspace {
    let ws = Workspace::new(image);
    let path = ws.manifests().join("lowendinsight.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "deploy:" {
            out.push_str(&format!("{line}\n    releaseCommand: {MIGRATE}\n"));
            continue;
        }
        if !drain && trimmed.starts_with("drain:") {
            let indent = line.len() - trimmed.len();
            while lines
                .next_if(|l| {
                    let t = l.trim_start();
                    !t.is_empty() && l.len() - t.len() > indent
                })
                .is_some()
            {}
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(
        out.contains("releaseCommand:"),
        "manifest has a deploy block"
    );
    std::fs::write(&path, out).unwrap();
    ws
}

/// The shipped scenario plus `releaseCommands:` (YAML map entries, indented two spaces).
fn scenario_with_release_commands(entries: &str) -> (tempfile::TempDir, PathBuf) {
    let shipped =
        std::fs::read_to_string(repo_root().join("examples/sim/lowendinsight.yaml")).unwrap();
    let text = shipped.replacen(
        "\napps:",
        &format!("\nreleaseCommands:\n{entries}\napps:"),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `opsctl apply` by a human: migrations are always gated (issue #5), so a first pass queues
/// the plan for approval (exit 3); the human approves it and applies again.
fn apply(ws: &Workspace, sim: &Sim) -> (i32, String, Value) {
    let (code, shown, json) = apply_once(ws, sim);
    if code != 3 {
        return (code, shown, json);
    }
    let id = json["apps"][0]["approval"].as_str().expect("approval id");
    let out = ws.opsctl(sim).args(["approve", id]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    apply_once(ws, sim)
}

fn apply_once(ws: &Workspace, sim: &Sim) -> (i32, String, Value) {
    let out = ws
        .opsctl(sim)
        .args(["apply", "-o", "json"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap(), text(&out), json)
}

fn record(json: &Value) -> &Value {
    &json["apps"][0]["record"]
}

/// `(intent, result)` of every step.
fn steps(rec: &Value) -> Vec<(String, String)> {
    rec["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["intent"].as_str().unwrap_or_default().to_owned(),
                s["result"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Machines of group `fly_app_release_command`, destroyed ones included.
fn release_machines(sim: &Sim) -> Vec<Value> {
    sim.get("/v1/apps/lowendinsight/machines?include_deleted=true")
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["config"]["metadata"]["fly_process_group"] == "fly_app_release_command")
        .cloned()
        .collect()
}

fn newest_release(sim: &Sim) -> i64 {
    sim.get("/api/v1/apps/lowendinsight/releases?limit=1")["releases"][0]["version"]
        .as_i64()
        .unwrap()
}

#[test]
fn a_release_command_runs_in_a_temporary_machine_before_the_rollout() {
    let sim = Sim::start();
    let ws = workspace(NEW, true);
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    let rec = record(&json);
    assert_eq!(rec["status"], "succeeded", "{rec}");
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );

    let temp = release_machines(&sim);
    assert_eq!(temp.len(), 1, "one temporary machine: {temp:?}");
    let m = &temp[0];
    assert_eq!(m["state"], "destroyed", "auto_destroy removed it");
    let cfg = &m["config"];
    assert_eq!(cfg["image"], NEW);
    assert_eq!(cfg["init"]["cmd"], json!([MIGRATE]));
    assert_eq!(cfg["restart"]["policy"], "no");
    assert_eq!(cfg["auto_destroy"], true);
    assert_eq!(cfg["dns"]["skip_registration"], true);
    assert_eq!(cfg["metadata"]["fly_platform_version"], "v2");
    assert_eq!(cfg["env"]["RELEASE_COMMAND"], "1");
    assert_eq!(cfg["env"]["PORT"], "8080", "the manifest's env");
    assert_eq!(cfg["guest"]["memory_mb"], 1024, "the app machines' size");
    assert!(cfg.get("services").is_none(), "nothing routes to it");
    assert_eq!(m["region"], "iad");
    assert_eq!(sim.count(CREATE), 1);
    assert_eq!(sim.count(UPDATE), 2, "then each app machine once");

    let steps = steps(rec);
    let run = steps
        .iter()
        .position(|(i, _)| i.starts_with("run release command `/app/bin/migrate`"))
        .expect("release command recorded");
    let lease = steps
        .iter()
        .position(|(i, _)| i.starts_with("lease machines"))
        .expect("lease step");
    assert!(run < lease, "before any app machine: {steps:?}");
    let id = m["id"].as_str().unwrap();
    assert_eq!(steps[run].1, format!("machine {id} created"));
    let (intent, result) = &steps[run + 1];
    assert!(intent.starts_with("wait for release command"), "{intent}");
    assert!(result.starts_with("succeeded: exited 0"), "{result}");
    assert!(
        result.contains("destroyed by Fly (auto_destroy)"),
        "{result}"
    );
}

/// BUG-15 B: the migration exits 1. No app machine is touched, nothing is retried or rolled
/// back, and the record carries the exit code and the last log line.
#[test]
fn a_failing_migration_aborts_the_deploy_before_any_machine_is_touched() {
    let (_dir, scenario) = scenario_with_release_commands(&format!(
        "  {MIGRATE_FAIL}: {{exitCode: 1, logs: ['{DUPLICATE_TABLE}']}}"
    ));
    let sim = Sim::start_with(&scenario);
    let ws = workspace(MIGRATE_FAIL, true);
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 1, "{shown}");
    let rec = record(&json);
    assert_eq!(rec["status"], "failed", "{rec}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.starts_with("release_command_failed"), "{reason}");
    assert!(reason.contains("exited with code 1"), "{reason}");
    assert!(reason.contains(DUPLICATE_TABLE), "{reason}");
    assert!(reason.contains("escalate"), "{reason}");
    assert!(rec.get("rollback").is_none(), "never rolled back");
    let (_, result) = steps(rec).last().cloned().unwrap();
    assert!(result.starts_with("failed: exit code 1"), "{result}");
    assert!(result.contains(DUPLICATE_TABLE), "{result}");

    assert_eq!(sim.count(UPDATE), 0, "no app machine updated");
    assert_eq!(sim.count("POST /v1/apps/{app}/machines/{id}/lease"), 0);
    assert_eq!(sim.count(CREATE), 1, "not retried");
    assert_eq!(newest_release(&sim), 109, "no release created");
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
    let temp = release_machines(&sim);
    assert_eq!(temp.len(), 1);
    assert_eq!(temp[0]["state"], "destroyed");
}

/// BUG-15 A: Fly cannot launch the machine twice: one retry after a backoff, then abort.
#[test]
fn a_platform_error_is_retried_once_then_the_deploy_aborts() {
    let (_dir, scenario) = scenario_with_faults(
        "  - {kind: errorRate, rate: 1, status: 500, times: 2, route: \"POST /v1/apps/{app}/machines\", message: \"failed to launch VM: EOF\"}",
    );
    let sim = Sim::start_with(&scenario);
    let ws = workspace(NEW, false);
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 1, "{shown}");
    let rec = record(&json);
    assert_eq!(
        rec["status"], "halted",
        "no verdict on the migration: {rec}"
    );
    let reason = rec["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("release_command_platform_error"),
        "{reason}"
    );
    assert!(reason.contains("failed to launch VM: EOF"), "{reason}");
    assert!(reason.contains("failed 2 time(s)"), "{reason}");
    assert_eq!(sim.count(CREATE), 2, "one retry");
    assert_eq!(sim.count(UPDATE), 0);
    assert_eq!(newest_release(&sim), 109);
    assert!(release_machines(&sim).is_empty());
}

/// BUG-15 A, transient: the retry launches the machine and the deploy goes on.
#[test]
fn a_platform_error_that_clears_is_retried_and_the_deploy_goes_on() {
    let (_dir, scenario) = scenario_with_faults(
        "  - {kind: errorRate, rate: 1, status: 500, times: 1, route: \"POST /v1/apps/{app}/machines\", message: \"failed to launch VM: EOF\"}",
    );
    let sim = Sim::start_with(&scenario);
    let ws = workspace(NEW, false);
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(sim.count(CREATE), 2);
    let steps = steps(record(&json));
    assert!(
        steps
            .iter()
            .any(|(_, r)| r.contains("created after a failed attempt")),
        "{steps:?}"
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
}

/// BUG-15 C: the new machine answers 404 for a second after its create: propagation, retried.
#[test]
fn not_found_right_after_create_is_retried_and_the_deploy_goes_on() {
    let (_dir, scenario) = scenario_with_faults("  - {kind: notFoundAfterCreate, propagation: 1s}");
    let sim = Sim::start_with(&scenario);
    let ws = workspace(NEW, false);
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert!(
        sim.requests()["faults"]["notFoundAfterCreate"]
            .as_u64()
            .unwrap_or(0)
            >= 1,
        "the fault fired: {}",
        sim.requests()
    );
    let steps = steps(record(&json));
    assert!(
        steps
            .iter()
            .any(|(_, r)| r.starts_with("succeeded: exited 0") && r.contains("not found for")),
        "{steps:?}"
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
    assert_eq!(release_machines(&sim)[0]["state"], "destroyed");
}

/// A command still running at `waitTimeout` is not killed: the deploy halts without a verdict
/// and the machine is left to finish (it destroys itself when it exits).
#[test]
fn a_command_still_running_at_the_timeout_is_left_to_finish() {
    let (_dir, scenario) =
        scenario_with_release_commands(&format!("  {MIGRATE_FAIL}: {{exitCode: 0, runFor: 1h}}"));
    let sim = Sim::start_with(&scenario);
    let ws = workspace(MIGRATE_FAIL, false);
    let path = ws.manifests().join("lowendinsight.yaml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    assert!(manifest.contains("waitTimeout: 5m"), "{manifest}");
    std::fs::write(
        &path,
        manifest.replace("waitTimeout: 5m", "waitTimeout: 3s"),
    )
    .unwrap();
    let (code, shown, json) = apply(&ws, &sim);
    assert_eq!(code, 1, "{shown}");
    let rec = record(&json);
    assert_eq!(rec["status"], "halted", "{shown}");
    let reason = rec["reason"].as_str().unwrap();
    assert!(reason.contains("did not report an exit"), "{reason}");
    assert!(reason.contains("still started after 3s"), "{reason}");
    assert!(
        rec["machines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["result"] == "skipped"),
        "{rec}"
    );
    let (_, result) = steps(rec).last().cloned().unwrap();
    assert!(result.contains("left to finish"), "{result}");
    assert_eq!(
        sim.count("DELETE /v1/apps/{app}/machines/{id}"),
        0,
        "not killed"
    );
    assert_eq!(release_machines(&sim)[0]["state"], "started");
    assert_eq!(sim.count(UPDATE), 0);
}

fn start_run(ws: &Workspace, sim: &Sim) -> (std::process::Child, Lines) {
    let mut child = ws
        .opsctl(sim)
        .args(["run", "--resync", "1h", "--poll", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    (child, lines)
}

fn stop_run(mut child: std::process::Child) {
    common::send_signal(&child, "INT");
    let status = child.wait().unwrap();
    assert!(status.success(), "run stops cleanly: {status:?}");
}

fn history(ws: &Workspace) -> Vec<Value> {
    let out = common::opsctl()
        .arg("--state")
        .arg(ws.state())
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["deploys"].as_array().cloned().unwrap_or_default()
}

/// Migrations are always human: `opsctl run` does not run one, records nothing, deploys
/// nothing, but queues the plan for approval; approved, `opsctl apply` then runs it.
#[test]
fn run_is_blocked_until_a_human_applies() {
    let sim = Sim::start();
    let ws = workspace(NEW, false);
    let (child, lines) = start_run(&ws, &sim);
    assert!(
        lines.wait_for("waiting for approval", Duration::from_secs(20)),
        "{}",
        lines.all()
    );
    stop_run(child);
    assert!(
        lines.all().contains("migration.always-human"),
        "{}",
        lines.all()
    );
    assert_eq!(sim.count(CREATE), 0, "no release command machine");
    assert_eq!(sim.count(UPDATE), 0, "nothing deployed");
    assert!(history(&ws).is_empty(), "no record: {:?}", history(&ws));
    let pending = ws
        .opsctl(&sim)
        .args(["pending", "-o", "json"])
        .output()
        .unwrap();
    let pending: Value = serde_json::from_slice(&pending.stdout).unwrap();
    assert_eq!(
        pending["approvals"].as_array().unwrap().len(),
        1,
        "{pending}"
    );
    assert_eq!(
        pending["approvals"][0]["actions"][0]["rule"],
        "migration.always-human"
    );

    let (code, shown, _) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(sim.count(CREATE), 1);
}

/// Once per image: after it succeeded, an automatic pass deploying the same image again is not
/// blocked and does not run the command a second time.
#[test]
fn a_release_command_runs_once_per_image() {
    let sim = Sim::start();
    let ws = workspace(NEW, false);
    let (code, shown, _) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(sim.count(CREATE), 1);

    // Someone puts M1 back on OLD by hand: drift again, same desired image.
    let m1 = sim.get(&format!("/v1/apps/lowendinsight/machines/{M1}"));
    let mut config = m1["config"].clone();
    config["image"] = json!(OLD);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/v1/apps/lowendinsight/machines/{M1}", sim.url))
            .bearer_auth("test-token")
            .json(&json!({"config": config}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");

    let (child, lines) = start_run(&ws, &sim);
    assert!(
        common::eventually(Duration::from_secs(30), || (sim.images()
            == vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())])
        .then_some(()))
        .is_some(),
        "run redeployed M1: {}",
        lines.all()
    );
    stop_run(child);
    assert!(
        !lines.all().contains("waiting for approval"),
        "{}",
        lines.all()
    );
    assert_eq!(sim.count(CREATE), 1, "not run a second time");
    let newest = &history(&ws)[0];
    assert_eq!(newest["trigger"], "reconcile");
    assert!(
        steps(newest)
            .iter()
            .any(|(i, r)| i.contains("already succeeded in deploy-") && r == "skipped"),
        "{newest}"
    );
}
