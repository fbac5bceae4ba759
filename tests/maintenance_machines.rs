//! The maintenance checks against the Fly simulator: machine status with a started, an
//! autostopped, a user-stopped and a crashed machine (case BUG-07, ../shared/cases/README.md),
//! Fly's API down (unknown, never unhealthy), and proof that a whole maintenance run sends Fly
//! nothing but `GET`s (read-only, issue #6), counted by the simulator's `/__sim/requests`.
//!
//! The simulator cannot put a machine in Fly's `failed` state; that case is covered by the
//! judge's unit tests (`opsctl_controllers::maintenance::machines`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use opsctl::fly::{Endpoints, FlyClient};
use opsctl::maintenance::scheduler::SCHEDULED;
use opsctl::maintenance::{EnvLookup, Maintenance, ReadOnlyFly, TokioClock};
use opsctl::records::{RecordKind, RecordStore};
use opsctl::secret::Secret;
use opsctl::sim::{self, Scenario, SimHandle};
use opsctl_controllers::incident::book::monitoring_path;
use opsctl_controllers::maintenance::Status;
use opsctl_controllers::signal::{Blind, Signal, SignalKind};
use opsctl_crds::kinds::maintenance::CheckName;
use opsctl_crds::{ManifestSet, load_str};
use tokio::sync::mpsc;

const SCENARIO: &str = r#"
timeScale: 0.000001
clockStart: "2026-11-29T12:00:00Z"
images:
  registry.fly.io/example-app:v42-exits: {exits: 1}
apps:
  - name: example-app
    machineConfig:
      guest: {cpu_kind: shared, cpus: 1, memory_mb: 256}
      services:
        - protocol: tcp
          internal_port: 8080
          autostop: stop
          autostart: true
          min_machines_running: 1
          ports: [{port: 443, handlers: [tls, http]}]
          checks: [{type: tcp, interval: 15s, timeout: 2s}]
    releases:
      - {version: 42, image: "registry.fly.io/example-app:v42"}
    machines:
      - {id: 0e286039f42e86, release: 42}
      - {id: 1781973f03a289, release: 42, state: stopped}
      - id: 2865d2eb1d9128
        release: 42
        state: stopped
        config:
          image: registry.fly.io/example-app:v42
          services: [{protocol: tcp, internal_port: 8080, autostart: false, autostop: false}]
      - {id: 3d8d413b29d089, release: 42, image: "registry.fly.io/example-app:v42-exits"}
      - {id: 4d891de2f66e38, managed: false, state: stopped, image: "registry.fly.io/sidecar:v1"}
"#;

const MANIFESTS: &str = r#"
apiVersion: opsctl.dev/v1alpha1
kind: FlyApp
metadata: {name: example-app}
spec:
  image: registry.fly.io/example-app:v42
  processGroups: {app: {regions: {iad: 4}}}
  checks: {alive: {type: tcp, port: 8080}}
---
apiVersion: opsctl.dev/v1alpha1
kind: MaintenanceSchedule
metadata: {name: ops}
spec:
  prices: {shared-cpu-1x: 0.0028}
  checks:
    machineStatus: {timeout: 2s}
    appHealth: {timeout: 2s}
    costSnapshot: {timeout: 2s}
"#;

fn manifests() -> ManifestSet {
    load_str(std::path::Path::new("m.yaml"), MANIFESTS).expect("valid manifests")
}

struct Setup {
    sim: SimHandle,
    maintenance: Maintenance,
    signals: mpsc::Receiver<Signal>,
    store: Arc<RecordStore>,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let sim = sim::serve(
        Scenario::from_yaml(SCENARIO).expect("scenario"),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .expect("simulator");
    // The crashing image exits 1 s (virtual) after its start.
    sim.state().advance(Duration::from_secs(5));
    let client = FlyClient::new(
        Endpoints::origin(&sim.base_url()),
        Secret::new("test-token"),
    )
    .expect("client");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RecordStore::open_write(dir.path()).expect("store"));
    let (tx, rx) = mpsc::channel(256);
    let no_env: EnvLookup = Arc::new(|_| None);
    let clock = Arc::new(TokioClock::new(
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
    ));
    let maintenance = Maintenance::new(
        ReadOnlyFly::new(client),
        store.clone(),
        true,
        tx,
        clock,
        no_env,
    );
    Setup {
        sim,
        maintenance,
        signals: rx,
        store,
        _dir: dir,
    }
}

fn drain(rx: &mut mpsc::Receiver<Signal>) -> Vec<Signal> {
    let mut out = Vec::new();
    while let Ok(s) = rx.try_recv() {
        out.push(s);
    }
    out
}

/// BUG-07: the autostopped machine is idle; the one stopped with autostart off and the one
/// whose process exited 1 are down; the unmanaged one is not judged.
#[tokio::test]
async fn machine_status_tells_idle_from_down() {
    let mut s = setup().await;
    let results = s
        .maintenance
        .run(CheckName::MachineStatus, &manifests())
        .await;
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.status, Status::Alert, "{r:?}");
    assert!(
        r.summary
            .contains("1 running, 1 idle (autostopped), 2 down of 4 managed"),
        "{}",
        r.summary
    );
    let signals = drain(&mut s.signals);
    let mut down: Vec<(String, String)> = signals
        .iter()
        .map(|s| (s.machine.clone().unwrap_or_default(), s.class.clone()))
        .collect();
    down.sort();
    assert_eq!(
        down,
        vec![
            ("2865d2eb1d9128".to_owned(), "stopped".to_owned()),
            ("3d8d413b29d089".to_owned(), "exit:1".to_owned()),
        ],
        "{signals:#?}"
    );
    assert!(
        signals
            .iter()
            .all(|s| s.kind == SignalKind::MachineDown && s.release == Some(42))
    );

    // One finding recorded; the same finding again records nothing new.
    s.maintenance
        .run(CheckName::MachineStatus, &manifests())
        .await;
    let checks = s
        .store
        .records(|r| r.kind == RecordKind::Check)
        .expect("records");
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0].data["status"], "alert");
    s.sim.shutdown().await;
}

/// Read-only, proven by what Fly received: every check of a maintenance run, and only `GET`s.
#[tokio::test]
async fn a_maintenance_run_sends_fly_only_reads() {
    let s = setup().await;
    s.sim.state().reset_request_counts();
    let set = manifests();
    for check in SCHEDULED {
        s.maintenance.run(check, &set).await;
    }
    let counts: serde_json::Value = reqwest::get(format!("{}/__sim/requests", s.sim.base_url()))
        .await
        .expect("control API")
        .json()
        .await
        .expect("json");
    let endpoints: BTreeMap<String, u64> =
        serde_json::from_value(counts["endpoints"].clone()).expect("endpoints");
    let mut by_method: BTreeMap<String, u64> = BTreeMap::new();
    for (key, n) in &endpoints {
        let method = key.split(' ').next().unwrap_or_default().to_owned();
        *by_method.entry(method).or_default() += n;
    }
    assert!(
        by_method.get("GET").copied().unwrap_or(0) >= 3,
        "{endpoints:?}"
    );
    assert_eq!(
        by_method.keys().collect::<Vec<_>>(),
        vec!["GET"],
        "{endpoints:?}"
    );
    // And the cost snapshot was recorded.
    let snapshots = s
        .store
        .records(|r| r.kind == RecordKind::CostSnapshot)
        .expect("records");
    assert_eq!(snapshots.len(), 1);
    assert!(
        snapshots[0].data["machine_hours"].as_f64().unwrap_or(0.0) > 0.0,
        "{:?}",
        snapshots[0].data
    );
    s.sim.shutdown().await;
}

/// Fly's API down (the connection closes without an answer): every Fly-based check is unknown
/// with one app-less `observer_blind` signal; nothing is said against the app (BUG-07's kind,
/// BUG-30). The client retries until the check's 2 s timeout.
#[tokio::test]
async fn fly_down_is_unknown_never_unhealthy() {
    let mut s = setup().await;
    let fault = serde_json::from_value(serde_json::json!({"kind": "apiDown"})).expect("fault");
    s.sim.state().add_fault(fault).expect("fault");
    let set = manifests();
    for check in [
        CheckName::MachineStatus,
        CheckName::AppHealth,
        CheckName::CostSnapshot,
    ] {
        let results = s.maintenance.run(check, &set).await;
        assert_eq!(
            results[0].status,
            Status::Unknown,
            "{check:?}: {:?}",
            results[0]
        );
    }
    let signals = drain(&mut s.signals);
    assert!(!signals.is_empty());
    for sig in &signals {
        assert_eq!(sig.kind, SignalKind::ObserverBlind, "{sig:?}");
        assert_eq!(sig.fingerprint(), "-/observer_blind/-/fly_api");
        assert_eq!(sig.blind, Some(Blind::FlyApi), "{sig:?}");
        assert!(monitoring_path(sig), "{sig:?}");
    }
    s.sim.shutdown().await;
}

/// Read-only enforced a second time, at run time: the client the maintenance pipeline is
/// built with (`opsctl::maintenance::monitor_client`, what `maintenance::start` and
/// `maintenance run-once` use) acts as the `monitor` role, so even code that got hold of it
/// and called a mutating method is refused inside the client: nothing reaches the simulator.
#[tokio::test]
async fn the_maintenance_client_refuses_a_mutating_call_before_sending_it() {
    let sim = sim::serve(
        Scenario::lowendinsight_default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let client = FlyClient::new(Endpoints::origin(&sim.base_url()), Secret::new("t")).unwrap();
    let monitor = opsctl::maintenance::monitor_client(&client);
    assert_eq!(
        monitor.role().role(),
        opsctl_controllers::governance::Role::Monitor
    );
    let machines = monitor.list_machines("lowendinsight").await.unwrap();
    let before = sim.state().request_counts().total;
    let request = opsctl::fly::wire::MachineRequest {
        config: machines[0].config.clone().unwrap_or_default(),
        ..Default::default()
    };
    let e = monitor
        .update_machine("lowendinsight", &machines[0].id, &request, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, opsctl::fly::FlyErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("monitor"), "{e}");
    let e = monitor
        .destroy_machine("lowendinsight", &machines[0].id, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, opsctl::fly::FlyErrorKind::Denied, "{e}");
    assert_eq!(
        sim.state().request_counts().total,
        before,
        "no request reached the simulator"
    );
    // The same underlying client acting as the deployer would have been let through.
    assert_eq!(
        client.role().role(),
        opsctl_controllers::governance::Role::Deployer
    );
}

/// A deploy in flight owns the app's health: the machine-status check still reports the down
/// machines, but raises no signal (no second incident for machines the rollout is replacing
/// or rolling back). Once the deploy is over, the same machines raise signals again.
#[tokio::test]
async fn a_deploy_in_flight_holds_back_machine_signals() {
    use opsctl::records::{DeployRecord, DeployStatus, Trigger};
    let mut s = setup().await;
    let mut deploy = DeployRecord::start(
        "example-app",
        Trigger::Reconcile,
        "registry.fly.io/example-app:v43",
        Utc.with_ymd_and_hms(2026, 11, 29, 11, 59, 0).unwrap(),
    );
    s.store.append(&deploy).unwrap();

    let results = s
        .maintenance
        .run(CheckName::MachineStatus, &manifests())
        .await;
    assert_eq!(results[0].status, Status::Alert, "{results:?}");
    assert!(
        results[0]
            .summary
            .contains(&format!("deploy {} in flight", deploy.id)),
        "{}",
        results[0].summary
    );
    assert!(drain(&mut s.signals).is_empty());

    deploy.status = DeployStatus::Succeeded;
    deploy.finished_at = Some(Utc.with_ymd_and_hms(2026, 11, 29, 12, 1, 0).unwrap());
    s.store.append(&deploy).unwrap();
    s.maintenance
        .run(CheckName::MachineStatus, &manifests())
        .await;
    assert_eq!(drain(&mut s.signals).len(), 2, "both down machines again");
    s.sim.shutdown().await;
}
