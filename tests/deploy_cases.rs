//! Failure cases of `../shared/cases/README.md` as end-to-end tests of the deploy pipeline:
//! the real binary against `opsctl sim serve`.
//!
//! - BUG-01 (superfly/flyctl#2653): a machine that exits during the health wait fails its step
//!   at once, naming machine, release, exit code and OOM flag; nothing else is touched.
//! - BUG-02 (TheRestartProject/restarters.net#905): a deploy that leaves a process group with
//!   no healthy machine is an outage, whatever the deploy's own status: the record says how
//!   many machines of each group were healthy at the end, and `rollout::report::signals`
//!   turns that into a `deploy_outage` signal for the incident pipeline.

mod common;

use common::{BAD, M1, M2, OLD, Sim, Workspace, repo_root, text};
use opsctl::records::RecordStore;
use opsctl_controllers::rollout::report::signals;
use opsctl_controllers::signal::SignalKind;

const EXIT: &str = "registry.fly.io/lowendinsight:deployment-EXIT";

/// The shipped LowEndInsight scenario with `edit` applied, in `dir`.
fn scenario(dir: &tempfile::TempDir, edit: impl FnOnce(String) -> String) -> std::path::PathBuf {
    let shipped =
        std::fs::read_to_string(repo_root().join("examples/sim/lowendinsight.yaml")).unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, edit(shipped)).unwrap();
    path
}

/// BUG-01: the new machine exits with code 3 while its checks have not reported yet (it
/// runs 200 ms; checks report 500 ms after the start), as in the case's observations.
#[test]
fn bug_01_an_exiting_machine_fails_its_step_at_once_with_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_with(&scenario(&dir, |s| {
        s.replace("exitAfter: 1s", "exitAfter: 200ms")
    }));
    sim.control(
        "/__sim/images",
        serde_json::json!({"image": EXIT, "behavior": {"exits": 3}}),
    );
    let ws = Workspace::new(EXIT);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    // The exiting machine was rolled back; the other one was never touched.
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        2,
        "one update, one rollback: {}",
        sim.requests()
    );
    let rec = &RecordStore::open_read(&ws.state()).deploys(None).unwrap()[0];
    let reason = rec.reason.as_deref().unwrap();
    for part in [
        M1,
        "release v110",
        "exited with code 3",
        "oom_killed: false",
    ] {
        assert!(reason.contains(part), "{part:?} missing from {reason}");
    }
    assert!(!reason.contains("timed out"), "{reason}");
    assert!(rec.failed_health);
}

/// BUG-02: one machine; the new image never passes its check and the rollback cannot start
/// (its image was pruned). 0 of 1 machines healthy → a `deploy_outage` signal.
#[test]
fn bug_02_a_deploy_that_leaves_zero_healthy_machines_raises_an_outage_signal() {
    let dir = tempfile::tempdir().unwrap();
    let shipped =
        std::fs::read_to_string(repo_root().join("examples/sim/lowendinsight.yaml")).unwrap();
    let second = format!("      - id: {M2}\n");
    let start = shipped
        .find(&second)
        .expect("second machine in the scenario");
    let end = shipped[start..]
        .find("    certificates:")
        .map(|i| start + i)
        .unwrap();
    let single = format!(
        "prunedImages: ['{OLD}']\n{}{}",
        &shipped[..start],
        &shipped[end..]
    );
    let scenario = dir.path().join("one-machine.yaml");
    std::fs::write(&scenario, single).unwrap();
    let sim = Sim::start_with(&scenario);
    let ws = Workspace::new(BAD);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let rec = &RecordStore::open_read(&ws.state()).deploys(None).unwrap()[0];
    assert_eq!(rec.status.as_str(), "rollback_failed");
    let health = rec.end_health.as_ref().expect("observed at the end");
    assert_eq!(
        (health[0].expected, health[0].healthy),
        (1, 0),
        "{health:?}"
    );
    let sigs = signals(&rec.end().expect("finished"));
    let outage = sigs
        .iter()
        .find(|s| s.kind == SignalKind::DeployOutage)
        .expect("an outage signal");
    assert_eq!(
        outage.fingerprint(),
        "lowendinsight/deploy_outage/110/zero_healthy:app"
    );
    assert_eq!(outage.deploy.as_deref(), Some(rec.id.as_str()));
    assert!(
        sigs.iter()
            .any(|s| s.kind == SignalKind::DeployFailed && s.class == "rollback_failed")
    );
}

/// The other side of BUG-02: a rolled-back deploy leaves every machine healthy, so no outage.
#[test]
fn bug_02_a_rollback_that_restores_service_raises_no_outage() {
    let sim = Sim::start();
    let ws = Workspace::new(BAD);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The failed verdict is logged before the rollback (benches/latency.rs times from it).
    let log = text(&out);
    let verdict = log
        .find("health judgement: failed")
        .unwrap_or_else(|| panic!("no failed verdict logged: {log}"));
    let rollback = log.find("rolling back").expect("rollback logged");
    assert!(verdict < rollback, "{log}");
    let rec = &RecordStore::open_read(&ws.state()).deploys(None).unwrap()[0];
    let health = rec.end_health.as_ref().expect("observed at the end");
    assert_eq!(
        (health[0].expected, health[0].healthy),
        (2, 2),
        "{health:?}"
    );
    let kinds: Vec<SignalKind> = signals(&rec.end().unwrap())
        .iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds, [SignalKind::DeployFailed]);
}
