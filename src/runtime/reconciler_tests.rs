//! The reconciler on its work queue, against the in-process simulator: what an idle app costs
//! on Fly per reconcile (counted by the simulator), the pace of the next reconcile, failures
//! and their backoff, and apps leaving the manifest set.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::fly::{Endpoints, FlyClient};
use crate::records::{Record, RecordStore};
use crate::runtime::clock::SystemClock;
use crate::secret::Secret;
use crate::sim;

const OLD: &str = "registry.fly.io/lowendinsight:deployment-OLD";
const NEW: &str = "registry.fly.io/lowendinsight:deployment-NEW";
const APP: &str = "lowendinsight";
const RESYNC: Duration = Duration::from_secs(300);

/// The shipped manifest on the image the shipped scenario runs (in sync), or another image.
fn manifest(image: &str) -> String {
    include_str!("../../manifests/lowendinsight.yaml").replace(NEW, image)
}

struct Fixture {
    sim: sim::SimHandle,
    r: Arc<Reconciler>,
    stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
    _incidents: tokio::sync::mpsc::Receiver<opsctl_controllers::signal::Signal>,
}

async fn fixture(image: &str) -> Fixture {
    let scenario =
        sim::scenario::Scenario::from_yaml(include_str!("../../examples/sim/lowendinsight.yaml"))
            .unwrap();
    let sim = sim::serve(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let client = FlyClient::new(Endpoints::origin(&sim.base_url()), Secret::new("t")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(manifests.join("lowendinsight.yaml"), manifest(image)).unwrap();
    let store = Arc::new(RecordStore::open_write(&dir.path().join("state")).unwrap());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let deployer = Deployer::new(client, store, Arc::new(SystemClock), stop);
    let mut r = Reconciler::new(manifests, deployer, RESYNC);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    r.incidents = Some(tx);
    Fixture {
        sim,
        r: Arc::new(r),
        stop: stop_tx,
        _dir: dir,
        _incidents: rx,
    }
}

/// Take the next key and reconcile it, as a worker does.
async fn one(r: &Reconciler) -> AppStatus {
    let key = r.queue.next().await.expect("a key");
    assert_eq!(key, Key::app(APP));
    r.reconcile(&key).await;
    r.queue.done(&key);
    r.board.apps().into_iter().find(|a| a.app == APP).unwrap()
}

#[tokio::test]
async fn an_app_in_sync_costs_one_list_call_per_reconcile_and_comes_back_after_the_idle_interval() {
    let f = fixture(OLD).await;
    f.r.reload("startup").await;
    assert_eq!(f.r.queue.depth(), 1, "every app enqueued at start");
    let first = one(&f.r).await;
    assert_eq!(first.result.as_deref(), Some("ok"));

    // The idle pass: a commit (or the resync timer) brings the app back.
    f.sim.state().reset_request_counts();
    f.r.queue.add(Key::app(APP));
    let st = one(&f.r).await;
    let counts = f.sim.state().request_counts();
    assert_eq!(
        counts.total, 1,
        "an in-sync app costs one Fly call per reconcile: {:?}",
        counts.endpoints
    );
    assert_eq!(counts.get("GET /v1/apps/{app}/machines"), 1);

    assert_eq!(st.result.as_deref(), Some("ok"));
    assert_eq!(st.pace, Pace::Idle);
    assert_eq!(st.consecutive_failures, 0);
    let wait = (st.next_reconcile.unwrap() - st.last_reconcile.unwrap())
        .to_std()
        .unwrap();
    assert!(
        wait >= RESYNC.mul_f64(0.9) - Duration::from_millis(1) && wait <= RESYNC,
        "idle: next after 0.9–1 × resync, got {wait:?}"
    );
    let board = f.r.board.snapshot();
    assert_eq!(board["apps"][0]["app"], APP);
    assert_eq!(board["apps"][0]["pace"], "idle");
    f.sim.shutdown().await;
}

#[tokio::test]
async fn an_open_incident_brings_the_next_reconcile_to_15_to_30_seconds() {
    let f = fixture(OLD).await;
    f.r.reload("startup").await;
    let mut incident = Record::new(RecordKind::Incident, "app down", Utc::now());
    incident.app = Some(APP.into());
    f.r.deployer.store.append_record(&incident).unwrap();
    let st = one(&f.r).await;
    assert_eq!(st.result.as_deref(), Some("ok"));
    assert_eq!(st.pace, Pace::Active);
    let wait = (st.next_reconcile.unwrap() - st.last_reconcile.unwrap())
        .to_std()
        .unwrap();
    assert!(
        (Duration::from_secs(15)..=Duration::from_secs(30)).contains(&wait),
        "active: 15–30 s, got {wait:?}"
    );
    f.sim.shutdown().await;
}

/// A drifted app whose plan waits for approval (the ADR's default gate): the machines listed
/// by the quick look are the ones planned from — one list call per reconcile, no release
/// query, no second list.
#[tokio::test]
async fn a_drifted_app_is_planned_from_the_quick_looks_list() {
    let f = fixture(NEW).await;
    f.r.reload("startup").await;
    let first = one(&f.r).await;
    assert_eq!(first.result.as_deref(), Some("waiting"), "{first:?}");
    f.sim.state().reset_request_counts();
    f.r.queue.add(Key::app(APP));
    let st = one(&f.r).await;
    assert_eq!(st.result.as_deref(), Some("waiting"), "{st:?}");
    let counts = f.sim.state().request_counts();
    assert_eq!(
        counts.get("GET /v1/apps/{app}/machines"),
        1,
        "{:?}",
        counts.endpoints
    );
    assert_eq!(counts.total, 1, "{:?}", counts.endpoints);
    f.sim.shutdown().await;
}

#[tokio::test]
async fn a_deploy_is_followed_at_the_active_pace() {
    let f = fixture(NEW).await;
    // The tests' auto-deploy policy: deploys are automatic in every burn-in phase.
    std::fs::write(
        f.r.manifests.join("governance.yaml"),
        "apiVersion: opsctl.dev/v1alpha1\nkind: GovernancePolicy\nmetadata: {name: auto}\nspec:\n  gates:\n    deploy: {phase1: auto, phase2: auto, phase3: auto}\n",
    )
    .unwrap();
    // Probes of the shipped manifest reach the real site: not from tests.
    let text = std::fs::read_to_string(f.r.manifests.join("lowendinsight.yaml")).unwrap();
    let cut = text.find("    probes:").map_or(text.len(), |i| i);
    std::fs::write(f.r.manifests.join("lowendinsight.yaml"), &text[..cut]).unwrap();
    f.r.reload("startup").await;
    let st = one(&f.r).await;
    assert_eq!(st.result.as_deref(), Some("ok"), "{st:?}");
    let deploys = f.r.deployer.store.deploys(Some(APP)).unwrap();
    assert_eq!(deploys.len(), 1, "deployed NEW");
    assert_eq!(st.pace, Pace::Active);
    f.sim.shutdown().await;
}

#[tokio::test]
async fn a_failing_reconcile_backs_off_per_key_and_other_apps_are_unaffected() {
    let f = fixture(OLD).await;
    f.r.reload("startup").await;
    // An app Fly does not know: every reconcile fails to observe it.
    std::fs::write(
        f.r.manifests.join("ghost.yaml"),
        manifest(OLD)
            .replace("name: lowendinsight", "name: ghost")
            .replace("app: lowendinsight", "app: ghost"),
    )
    .unwrap();
    f.r.reload("change").await;
    let ghost = Key::app("ghost");
    let mut failures = Vec::new();
    for _ in 0..2 {
        f.r.reconcile(&ghost).await;
        let st =
            f.r.board
                .apps()
                .into_iter()
                .find(|a| a.app == "ghost")
                .unwrap();
        assert_eq!(st.result.as_deref(), Some("error"));
        assert_eq!(st.pace, Pace::Backoff);
        assert!(
            st.error.as_deref().is_some_and(|e| e.contains("ghost")),
            "{st:?}"
        );
        failures.push(st.consecutive_failures);
    }
    assert_eq!(failures, [1, 2]);
    assert!(
        f.r.board.any_failing(),
        "an app failing: Fly not reachable for it"
    );
    // The other app is unaffected by ghost's backoff.
    let lei = Key::app(APP);
    f.r.reconcile(&lei).await;
    let st = f.r.board.apps().into_iter().find(|a| a.app == APP).unwrap();
    assert_eq!(
        (st.result.as_deref(), st.consecutive_failures),
        (Some("ok"), 0)
    );
    f.sim.shutdown().await;
}

#[tokio::test]
async fn apps_that_leave_the_set_are_dropped_from_the_queue_and_the_board() {
    let f = fixture(OLD).await;
    std::fs::write(
        f.r.manifests.join("other.yaml"),
        manifest(OLD)
            .replace("name: lowendinsight", "name: other")
            .replace("app: lowendinsight", "app: other"),
    )
    .unwrap();
    f.r.reload("startup").await;
    let mut keys = f.r.queue.keys();
    keys.sort();
    assert_eq!(keys, [Key::app(APP), Key::app("other")]);
    f.r.queue.add_rate_limited(Key::app("other"));
    std::fs::remove_file(f.r.manifests.join("other.yaml")).unwrap();
    f.r.reload("change").await;
    assert_eq!(f.r.queue.keys(), [Key::app(APP)]);
    assert_eq!(f.r.queue.failures(&Key::app("other")), 0);

    // An invalid set is rejected whole: the last valid one stays.
    std::fs::write(f.r.manifests.join("broken.yaml"), "kind: FlyApp\nspec: [").unwrap();
    f.r.reload("change").await;
    assert_eq!(f.r.queue.keys(), [Key::app(APP)]);
    f.sim.shutdown().await;
}

#[test]
fn requeue_intervals_by_pace() {
    let pacing = Pacing {
        idle: Duration::from_secs(300),
        active: (Duration::from_secs(15), Duration::from_secs(30)),
        approval: Duration::from_secs(5),
    };
    let top: Jitter = Box::new(|c| c);
    let bottom: Jitter = Box::new(|_| Duration::ZERO);
    let secs = |p, j: &Jitter| requeue_after(p, &pacing, j).as_secs();
    assert_eq!(
        (secs(Pace::Idle, &bottom), secs(Pace::Idle, &top)),
        (270, 300)
    );
    assert_eq!(
        (secs(Pace::Active, &bottom), secs(Pace::Active, &top)),
        (15, 30)
    );
    assert_eq!(secs(Pace::Approval, &top), 5);
    // A resync shorter than the active interval caps everything.
    let short = Pacing {
        idle: Duration::from_secs(10),
        ..pacing
    };
    assert_eq!(requeue_after(Pace::Active, &short, &top).as_secs(), 10);
    assert_eq!(requeue_after(Pace::Idle, &short, &top).as_secs(), 10);
    // Real jitter spreads active apps over the range.
    let j = full_jitter();
    let picks: std::collections::HashSet<u128> = (0..40)
        .map(|_| requeue_after(Pace::Active, &pacing, &j).as_millis())
        .collect();
    assert!(picks.iter().all(|ms| (15_000..=30_000).contains(ms)));
    assert!(picks.len() > 10, "{picks:?}");
}

#[tokio::test]
async fn run_reconciles_every_app_with_its_workers_and_stops_on_request() {
    let f = fixture(OLD).await;
    let mut r = Reconciler::new(
        f.r.manifests.clone(),
        Deployer::new(
            f.r.deployer.client.clone(),
            f.r.deployer.store.clone(),
            Arc::new(SystemClock),
            f.stop.subscribe(),
        ),
        RESYNC,
    );
    for name in ["second", "third"] {
        std::fs::write(
            r.manifests.join(format!("{name}.yaml")),
            manifest(OLD)
                .replace("name: lowendinsight", &format!("name: {name}"))
                .replace("app: lowendinsight", &format!("app: {name}")),
        )
        .unwrap();
    }
    r.workers = 2;
    let board = r.board.clone();
    let running = tokio::spawn(r.run(f.stop.subscribe()));
    let start = std::time::Instant::now();
    while board.apps().len() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not every app reconciled: {}",
            board.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let snap = board.snapshot();
    assert_eq!(
        (snap["running"].as_bool(), snap["workers"].as_u64()),
        (Some(true), Some(2))
    );
    let results: Vec<_> = board
        .apps()
        .into_iter()
        .map(|a| (a.app, a.result))
        .collect();
    // The two apps Fly does not know fail; the one it knows is in sync.
    assert!(
        results.contains(&(APP.to_owned(), Some("ok".to_owned()))),
        "{results:?}"
    );
    f.stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("run returns once stopped")
        .unwrap()
        .unwrap();
    let snap = board.snapshot();
    assert_eq!(snap["running"], false);
    assert_eq!(snap["queue_depth"], 0);
    f.sim.shutdown().await;
}
