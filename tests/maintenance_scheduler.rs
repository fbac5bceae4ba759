//! The maintenance scheduler on tokio's paused clock (issue #6): 30 virtual days of the ADR's
//! default intervals plus a daily cron in milliseconds, no pile-up when a check is slower than
//! its interval (skipped runs counted), the status file `opsctl maintenance status` reads, and
//! the scheduler ending with the stop signal.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use opsctl::fly::{Endpoints, FlyClient};
use opsctl::maintenance::{
    EnvLookup, Maintenance, MaintenanceStatus, Manifests, ReadOnlyFly, Scheduler, TokioClock,
};
use opsctl::records::RecordStore;
use opsctl::secret::Secret;
use opsctl_controllers::maintenance::Status;
use opsctl_crds::kinds::maintenance::CheckName;
use opsctl_crds::load_str;
use tokio::sync::{mpsc, watch};

fn maintenance(
    fly: &str,
    store: &Path,
) -> (
    Arc<Maintenance>,
    mpsc::Receiver<opsctl_controllers::signal::Signal>,
) {
    let client = FlyClient::new(Endpoints::origin(fly), Secret::new("t")).expect("client");
    let (tx, rx) = mpsc::channel(100_000);
    let no_env: EnvLookup = Arc::new(|_| None);
    let clock = Arc::new(TokioClock::new(
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
    ));
    let m = Maintenance::new(
        ReadOnlyFly::new(client),
        Arc::new(RecordStore::open_write(store).expect("store")),
        true,
        tx,
        clock,
        no_env,
    );
    (Arc::new(m), rx)
}

fn runs(status: &MaintenanceStatus, check: CheckName) -> (u64, u64) {
    let c = status
        .checks
        .iter()
        .find(|c| c.check == check)
        .expect("check in status");
    (c.runs, c.skipped)
}

/// 30 days on the paused clock: every default interval fires on its fixed rate, the cron
/// check once a day at 06:00 UTC, nothing is skipped.
#[tokio::test(start_paused = true)]
async fn thirty_virtual_days_follow_the_schedule() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, _signals) = maintenance("http://127.0.0.1:9", dir.path());
    let set = load_str(
        Path::new("m.yaml"),
        "apiVersion: opsctl.dev/v1alpha1\nkind: MaintenanceSchedule\nmetadata: {name: ops}\nspec:\n  checks:\n    costSnapshot: {cron: \"0 6 * * *\"}\n",
    )
    .expect("valid");
    let clock = Arc::new(TokioClock::new(
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
    ));
    let scheduler = Scheduler::new(m, Manifests::Fixed(Box::new(set)), clock, None, 7);
    let status = scheduler.status();
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop));
    tokio::time::sleep(Duration::from_secs(30 * 86_400)).await;
    stop_tx.send(true).expect("stop");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the scheduler stops with the stop signal")
        .expect("no panic");

    let status = status.lock().unwrap().clone();
    // Due at start + k × interval for k = 0 ..= 30 days / interval; the last one's jitter may
    // put it after the end.
    for (check, per_day) in [
        (CheckName::AppHealth, 288),
        (CheckName::Redis, 288),
        (CheckName::MachineStatus, 96),
        (CheckName::PostgresConnections, 96),
        (CheckName::ObanQueueDepth, 96),
        // Daily by default, but ticked hourly: each hostname is read when its CertWindow
        // says it is due (BUG-21's hourly pace for rate-limited certificates).
        (CheckName::CertExpiry, 24),
    ] {
        let (ran, skipped) = runs(&status, check);
        let due = 30 * per_day;
        assert!(
            (due..=due + 1).contains(&ran),
            "{check:?}: {ran} runs, expected {due} or {}",
            due + 1
        );
        assert_eq!(skipped, 0, "{check:?}");
    }
    assert_eq!(
        runs(&status, CheckName::CostSnapshot),
        (30, 0),
        "06:00 UTC on each of 30 days"
    );
    let cost = status
        .checks
        .iter()
        .find(|c| c.check == CheckName::CostSnapshot)
        .unwrap();
    assert_eq!(cost.schedule, "cron 0 6 * * * (UTC)");
    assert_eq!(
        cost.next_run,
        Some(Utc.with_ymd_and_hms(2026, 12, 30, 6, 0, 0).unwrap())
    );
    let certs = status
        .checks
        .iter()
        .find(|c| c.check == CheckName::CertExpiry)
        .unwrap();
    assert_eq!(certs.schedule, "every 1h, jitter up to 5m");
}

/// Accepts connections and never answers: a Fly API and probe target that only times out.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    url
}

/// App health takes 5 s (Fly's list times out) + 2 × 8 s (two probes time out) = 21 s, every
/// 10 s: runs never overlap, the ones that come due meanwhile are skipped and counted, and
/// the status file says so.
#[tokio::test(start_paused = true)]
async fn a_check_slower_than_its_interval_does_not_pile_up() {
    let hole = black_hole().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (m, _signals) = maintenance(&hole, dir.path());
    let manifests = format!(
        "apiVersion: opsctl.dev/v1alpha1
kind: FlyApp
metadata: {{name: example-app}}
spec:
  image: registry.fly.io/example-app:v42
  processGroups: {{app: {{regions: {{iad: 1}}}}}}
  checks: {{alive: {{type: tcp, port: 8080}}}}
  health:
    probes:
      - http: {{url: \"{hole}/a\", timeout: 8s}}
      - http: {{url: \"{hole}/b\", timeout: 8s}}
---
apiVersion: opsctl.dev/v1alpha1
kind: MaintenanceSchedule
metadata: {{name: ops}}
spec:
  checks:
    appHealth: {{interval: 10s, jitter: 0s, timeout: 5s}}
    machineStatus: {{enabled: false}}
    postgresConnections: {{enabled: false}}
    redis: {{enabled: false}}
    costSnapshot: {{enabled: false}}
    obanQueueDepth: {{enabled: false}}
"
    );
    let set = load_str(Path::new("m.yaml"), &manifests).expect("valid");
    let clock = Arc::new(TokioClock::new(
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
    ));
    let state = dir.path().join("state");
    let scheduler = Scheduler::new(
        m,
        Manifests::Fixed(Box::new(set)),
        clock,
        Some(state.clone()),
        1,
    );
    let status = scheduler.status();
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(scheduler.run(stop));
    // Due at 0, 10, …, 100 s: 11 due times.
    tokio::time::sleep(Duration::from_secs(105)).await;
    stop_tx.send(true).expect("stop");
    task.await.expect("no panic");

    let live = status.lock().unwrap().clone();
    let (ran, skipped) = runs(&live, CheckName::AppHealth);
    assert_eq!(
        ran + skipped,
        11,
        "every due time either ran or was skipped: {ran} + {skipped}"
    );
    assert!(
        (4..=5).contains(&ran),
        "a 21 s run every 10 s starts at most every 30 s: {ran}"
    );
    let written = MaintenanceStatus::load(&state)
        .expect("readable")
        .expect("written");
    let health = written
        .checks
        .iter()
        .find(|c| c.check == CheckName::AppHealth)
        .unwrap();
    assert!(
        health.skipped >= 5 && health.last_skipped_at.is_some(),
        "{health:?}"
    );
    assert_eq!(
        health.results[0].status,
        Status::Unknown,
        "a black hole is unknown, never unhealthy"
    );

    // The CLI reads the same file.
    let out = common::opsctl()
        .args([
            "--state",
            state.to_str().unwrap(),
            "maintenance",
            "status",
            "-o",
            "json",
        ])
        .output()
        .expect("run opsctl");
    assert!(out.status.success(), "{}", common::text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["kind"], "maintenance_status");
    assert_eq!(json["checks"][0]["check"], "appHealth");
    let out = common::opsctl()
        .args(["--state", state.to_str().unwrap(), "maintenance", "status"])
        .output()
        .expect("run opsctl");
    let text = common::text(&out);
    assert!(
        text.contains("appHealth") && text.contains("every 10s, jitter up to 0ms"),
        "{text}"
    );
}
