//! `opsctl run` starts the maintenance scheduler beside the reconciler (issue #6): the checks
//! run, their status lands in the state directory for `opsctl maintenance status`, no machine
//! is changed, and SIGTERM stops both cleanly.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Lines, OLD, Sim, Workspace, eventually};

#[test]
fn run_schedules_the_maintenance_checks_and_stops_with_the_reconciler() {
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    std::fs::write(
        ws.manifests().join("maintenance.yaml"),
        "apiVersion: opsctl.dev/v1alpha1
kind: MaintenanceSchedule
metadata: {name: ops}
spec:
  checks:
    machineStatus: {interval: 10s, jitter: 0s}
    appHealth: {enabled: false}
    costSnapshot: {enabled: false}
",
    )
    .unwrap();
    let mut child = ws
        .opsctl(&sim)
        .args(["run", "--resync", "1h"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    assert!(
        lines.wait_for("maintenance scheduler started", Duration::from_secs(20)),
        "{}",
        lines.all()
    );
    let status = eventually(Duration::from_secs(20), || {
        let out = ws
            .opsctl(&sim)
            .args(["maintenance", "status", "-o", "json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let checks = v["checks"].as_array()?;
        let machines = checks.iter().find(|c| c["check"] == "machineStatus")?;
        (machines["runs"].as_u64()? >= 1 && !machines["results"].as_array()?.is_empty())
            .then(|| v.clone())
    })
    .unwrap_or_else(|| panic!("no machine status result: {}", lines.all()));
    let checks = status["checks"].as_array().unwrap();
    let machines = checks
        .iter()
        .find(|c| c["check"] == "machineStatus")
        .unwrap();
    assert_eq!(machines["results"][0]["app"], "lowendinsight");
    assert_eq!(machines["results"][0]["status"], "ok", "{machines}");
    let health = checks.iter().find(|c| c["check"] == "appHealth").unwrap();
    assert_eq!(health["enabled"], false);

    // The reconciler reads releases through GraphQL (a POST); no machine was changed.
    let requests = sim.requests();
    for key in requests["endpoints"].as_object().unwrap().keys() {
        assert!(
            key.starts_with("GET ") || key == "POST /graphql",
            "a machine call that is not a read: {key} ({requests})"
        );
    }

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let exit = eventually(Duration::from_secs(10), || child.try_wait().unwrap()).expect("exits");
    assert!(exit.success(), "{}", lines.all());
    assert!(
        lines.wait_for("reconciler stopped", Duration::from_secs(1)),
        "{}",
        lines.all()
    );
}
