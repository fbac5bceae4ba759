//! The incident pipeline end to end against the simulator (in-process): the cases of issue #7
//! (../shared/cases/ BUG-02, BUG-14, BUG-20, BUG-30) and the two built from LowEndInsight's real
//! beads (the `:enoent` health alert; the investigation chain), plus a restart that leaves the
//! machine stopped.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use opsctl::fly::{Endpoints, FlyClient};
use opsctl::incident::{
    BoxFuture, Escalator, Handled, IncidentConfig, IncidentPipeline, Notifier, NotifyEvent,
    after_deploy,
};
use opsctl::records::{
    DeployStatus, LinkKind, Record, RecordKind, RecordStatus, RecordStore, Trigger,
};
use opsctl::runtime::clock::SystemClock;
use opsctl::runtime::deploy::{Deployer, Outcome};
use opsctl::secret::Secret;
use opsctl::sim::{self, Scenario, SimHandle};
use opsctl_controllers::incident::Classification;
use opsctl_controllers::incident::book::Held;
use opsctl_controllers::maintenance::Judgement;
use opsctl_controllers::signal::{Blind, Signal, SignalKind};
use opsctl_crds::FlyApp;

use common::{BAD, M1, M2, NEW, OLD};

const APP: &str = "lowendinsight";

/// Records every hand-off.
#[derive(Default)]
struct Seen {
    escalations: Mutex<Vec<Record>>,
    notifications: Mutex<Vec<(NotifyEvent, String)>>,
}

struct Esc(Arc<Seen>);
impl Escalator for Esc {
    fn escalate<'a>(&'a self, e: &'a Record, _i: &'a Record) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0.escalations.lock().unwrap().push(e.clone());
            Ok(())
        })
    }
}
struct Note(Arc<Seen>);
impl Notifier for Note {
    fn notify<'a>(&'a self, ev: NotifyEvent, i: &'a Record) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.0
                .notifications
                .lock()
                .unwrap()
                .push((ev, i.id.clone()));
        })
    }
}

struct Env {
    sim: SimHandle,
    _dir: tempfile::TempDir,
    store: Arc<RecordStore>,
    client: FlyClient,
    pipeline: IncidentPipeline,
    seen: Arc<Seen>,
}

fn app(image: &str, strategy: &str) -> FlyApp {
    let text =
        common::manifest(image).replace("strategy: rolling", &format!("strategy: {strategy}"));
    opsctl_crds::load_str("lowendinsight.yaml".as_ref(), &text)
        .unwrap()
        .apps
        .remove(0)
}

fn deployer(client: &FlyClient, store: &Arc<RecordStore>) -> Deployer {
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let mut d = Deployer::new(client.clone(), store.clone(), Arc::new(SystemClock), stop);
    d.poll = Duration::from_millis(100);
    d
}

async fn env(scenario: Scenario, image: &str, strategy: &str) -> Env {
    let sim = sim::serve(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = FlyClient::new(
        Endpoints::origin(&sim.base_url()),
        Secret::new("test-token"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordStore::open_write(dir.path()).unwrap());
    let mut pipeline = IncidentPipeline::new(
        deployer(&client, &store),
        IncidentConfig {
            verify_stable: Duration::from_millis(1500),
            verify_timeout: Duration::from_secs(15),
            poll: Duration::from_millis(100),
            ..IncidentConfig::default()
        },
    );
    let seen = Arc::new(Seen::default());
    pipeline.escalator = Arc::new(Esc(seen.clone()));
    pipeline.notifier = Arc::new(Note(seen.clone()));
    let text =
        common::manifest(image).replace("strategy: rolling", &format!("strategy: {strategy}"));
    pipeline.set = opsctl_crds::load_str("lowendinsight.yaml".as_ref(), &text).unwrap();
    Env {
        sim,
        _dir: dir,
        store,
        client,
        pipeline,
        seen,
    }
}

fn signal(kind: SignalKind, class: &str, machine: Option<&str>, detail: &str) -> Signal {
    Signal {
        app: Some(APP.into()),
        kind,
        release: Some(109),
        class: class.into(),
        source: "maintenance/machines".into(),
        at: Utc::now(),
        machine: machine.map(str::to_owned),
        detail: detail.into(),
        deploy: None,
        blind: None,
    }
}

fn records(store: &RecordStore, kind: RecordKind) -> Vec<Record> {
    store.records(|r| r.kind == kind).unwrap()
}

fn count(sim: &SimHandle, route: &str) -> u64 {
    sim.state().request_counts().get(route)
}

/// Machine-changing calls Fly received (update, restart, start, stop).
fn mutations(sim: &SimHandle) -> u64 {
    [
        "POST /v1/apps/{app}/machines/{id}",
        "POST /v1/apps/{app}/machines/{id}/restart",
        "POST /v1/apps/{app}/machines/{id}/start",
        "POST /v1/apps/{app}/machines/{id}/stop",
    ]
    .iter()
    .map(|r| count(sim, r))
    .sum()
}

async fn releases(client: &FlyClient) -> usize {
    opsctl::fly::observe::observe_releases(client, APP)
        .await
        .unwrap()
        .len()
}

async fn images(client: &FlyClient) -> Vec<String> {
    let mut v: Vec<String> = client
        .list_machines(APP)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.config.unwrap().image)
        .collect();
    v.sort();
    v
}

/// Wait until the deploy hand-off sees what it should (checks need their grace period).
async fn handoff(
    client: &FlyClient,
    rec: &opsctl::records::DeployRecord,
    kind: SignalKind,
) -> Vec<Signal> {
    for _ in 0..100 {
        let s = after_deploy(client, rec, Utc::now()).await;
        if s.iter().any(|s| s.kind == kind) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the hand-off never reported {kind:?}");
}

/// BUG-02: a deploy (immediate: nothing judged) leaves zero healthy machines → one `outage`
/// incident `deploy_left_zero_healthy`, rolled back once through the deploy pipeline, judged
/// by the machines afterwards, closed with a postmortem linked to the deploy and its commit,
/// and escalated. A later report of the same outage escalates; never a second rollback
/// (BUG-14).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_02_deploy_left_zero_healthy_is_rolled_back_once() {
    let mut e = env(Scenario::lowendinsight_default(), BAD, "immediate").await;
    let bad = app(BAD, "immediate");
    let Outcome::Deployed(rec) = e
        .pipeline
        .deployer
        .deploy(&bad, Trigger::Apply, Some("c0ffee42".into()))
        .await
        .unwrap()
    else {
        panic!("expected a deploy");
    };
    assert_ne!(
        rec.status,
        DeployStatus::RolledBack,
        "immediate does not judge"
    );
    assert_eq!(images(&e.client).await, [BAD, BAD]);
    let signals = handoff(&e.client, &rec, SignalKind::DeployOutage).await;
    assert_eq!(signals.len(), 1, "one signal for one deploy: {signals:?}");
    let before = releases(&e.client).await;
    let Handled::Answered {
        incident,
        class,
        actions,
        resolved,
    } = e.pipeline.handle(signals[0].clone()).await.unwrap()
    else {
        panic!("not answered");
    };
    assert_eq!(class, Classification::Outage);
    let kinds: Vec<&str> = actions.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(kinds, ["rollback"], "{actions:?}");
    assert!(actions[0].ok, "{actions:?}");
    assert!(resolved);
    assert_eq!(images(&e.client).await, [OLD, OLD]);
    assert_eq!(
        releases(&e.client).await,
        before + 1,
        "one rollback release"
    );
    let deploy = e
        .store
        .deploys(Some(APP))
        .unwrap()
        .into_iter()
        .find(|d| d.id == rec.id)
        .unwrap();
    assert_eq!(deploy.status, DeployStatus::RolledBack);

    let inc = &records(&e.store, RecordKind::Incident)[0];
    assert_eq!(inc.id, incident);
    assert_eq!(inc.status, RecordStatus::Closed);
    assert_eq!(inc.data["classification"], "outage");
    assert_eq!(inc.data["reason"], "deploy_left_zero_healthy");
    assert!(
        inc.links
            .iter()
            .any(|l| l.kind == LinkKind::CausedBy && l.to == rec.id)
    );
    let pm = &records(&e.store, RecordKind::Postmortem)[0];
    assert!(
        pm.links
            .iter()
            .any(|l| l.kind == LinkKind::ParentChild && l.to == incident)
    );
    assert!(
        pm.links
            .iter()
            .any(|l| l.kind == LinkKind::CausedBy && l.to == rec.id)
    );
    assert!(pm.labels.contains(&"commit:c0ffee42".to_owned()));
    assert_eq!(pm.data["commit"], "c0ffee42");
    assert!(pm.data["timeline"].as_array().unwrap().len() >= 3, "{pm:?}");
    assert_eq!(e.seen.escalations.lock().unwrap().len(), 1);
    let esc = &records(&e.store, RecordKind::Escalation)[0];
    assert!(
        esc.links
            .iter()
            .any(|l| l.kind == LinkKind::CausedBy && l.to == incident)
    );
    assert!(esc.labels.contains(&"eng".to_owned()));

    // The reconciler does not deploy the rolled-back image again on its own.
    let again = e
        .pipeline
        .deployer
        .deploy(&bad, Trigger::Reconcile, None)
        .await
        .unwrap();
    assert!(matches!(again, Outcome::Blocked { .. }), "{again:?}");

    // The same outage reported again: a new incident (the first is closed), escalated, and no
    // second automatic rollback of this release.
    let again = e.pipeline.handle(signals[0].clone()).await.unwrap();
    let Handled::Answered {
        actions, resolved, ..
    } = again
    else {
        panic!("{again:?}")
    };
    assert_eq!(
        actions
            .iter()
            .map(|a| a.action.as_str())
            .collect::<Vec<_>>(),
        ["escalate"]
    );
    assert_eq!(actions[0].reason, "outage_persisting_after_remediation");
    assert!(!resolved);
    assert_eq!(releases(&e.client).await, before + 1, "still one rollback");
    assert_eq!(e.seen.escalations.lock().unwrap().len(), 2);
}

/// BUG-14 (the kind): the deploy pipeline already rolled a bad release back; then the
/// restored release fails too. The incident pipeline escalates (`outage_persisting…`) and
/// never rolls back a second time, and repeated reports fold into the same incident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_14_no_second_automatic_rollback() {
    let mut e = env(Scenario::lowendinsight_default(), BAD, "rolling").await;
    let bad = app(BAD, "rolling");
    let Outcome::Deployed(rec) = e
        .pipeline
        .deployer
        .deploy(&bad, Trigger::Apply, None)
        .await
        .unwrap()
    else {
        panic!("expected a deploy");
    };
    assert_eq!(rec.status, DeployStatus::RolledBack, "{:?}", rec.reason);
    let signals = handoff(&e.client, &rec, SignalKind::DeployFailed).await;
    let first = e.pipeline.handle(signals[0].clone()).await.unwrap();
    let Handled::Answered { class, actions, .. } = &first else {
        panic!("{first:?}")
    };
    assert_eq!(
        *class,
        Classification::Degradation,
        "rolled back, machines fine"
    );
    assert!(
        actions.iter().all(|a| a.action != "rollback"),
        "{actions:?}"
    );
    let after_first = releases(&e.client).await;

    // v-previous now fails its checks too (cause outside the code).
    e.sim.state().set_image_behavior(
        OLD,
        serde_json::from_value(serde_json::json!("fails-checks")).unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut s = signal(
        SignalKind::CheckFailing,
        "critical:tcp",
        None,
        "checks critical on every machine",
    );
    s.deploy = Some(rec.id.clone());
    let mutations_before = mutations(&e.sim);
    let answered = e.pipeline.handle(s.clone()).await.unwrap();
    let Handled::Answered {
        class,
        actions,
        resolved,
        ..
    } = &answered
    else {
        panic!("{answered:?}")
    };
    assert_eq!(*class, Classification::Outage);
    assert_eq!(
        actions
            .iter()
            .map(|a| a.action.as_str())
            .collect::<Vec<_>>(),
        ["escalate"]
    );
    assert_eq!(actions[0].reason, "outage_persisting_after_remediation");
    assert!(!resolved);
    for _ in 0..5 {
        assert!(matches!(
            e.pipeline.handle(s.clone()).await.unwrap(),
            Handled::Repeat(_)
        ));
    }
    assert_eq!(
        releases(&e.client).await,
        after_first,
        "no second rollback release"
    );
    assert_eq!(mutations(&e.sim), mutations_before, "nothing touched");
    let incidents = records(&e.store, RecordKind::Incident);
    let outage = incidents
        .iter()
        .find(|r| r.data["classification"] == "outage")
        .unwrap();
    assert_eq!(outage.data["occurrences"], 6);
    assert_eq!(outage.status, RecordStatus::Blocked, "waits for a human");
}

/// BUG-20 C: a restarted child process (`** (EXIT) heartbeat_timeout`, health passing) is
/// noise: recorded, closed, nothing done, nobody paged. D: an unknown line is escalated, never
/// acted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_20_restarted_child_is_noise_and_unknown_escalates() {
    let mut e = env(Scenario::lowendinsight_default(), OLD, "rolling").await;
    tokio::time::sleep(Duration::from_millis(700)).await; // checks pass after their grace
    let http = reqwest::Client::new();
    for line in [
        "[error] GenServer MyApp.BrokerConn terminating",
        "** (EXIT) heartbeat_timeout",
        "[info] MyApp.BrokerConn connected to broker",
    ] {
        http.post(format!("{}/__sim/logs", e.sim.base_url()))
            .json(
                &serde_json::json!({"app": APP, "machine": M1, "level": "error", "message": line}),
            )
            .send()
            .await
            .unwrap();
    }
    let before = mutations(&e.sim);
    let s = signal(
        SignalKind::LogPattern,
        "beam:exit",
        Some(M1),
        "** (EXIT) heartbeat_timeout",
    );
    let h = e.pipeline.handle(s).await.unwrap();
    let Handled::Answered {
        class,
        actions,
        resolved,
        ..
    } = &h
    else {
        panic!("{h:?}")
    };
    assert_eq!(*class, Classification::Noise);
    assert!(actions.is_empty());
    assert!(*resolved);
    assert_eq!(mutations(&e.sim), before);
    assert!(e.seen.escalations.lock().unwrap().is_empty());
    assert!(
        e.seen.notifications.lock().unwrap().is_empty(),
        "nobody paged for noise"
    );
    let inc = &records(&e.store, RecordKind::Incident)[0];
    assert_eq!(inc.status, RecordStatus::Closed);
    assert!(
        records(&e.store, RecordKind::Postmortem).is_empty(),
        "noise has no postmortem"
    );

    let d = signal(
        SignalKind::LogPattern,
        "unrecognised",
        Some(M2),
        "[error] unexpected reply from upstream",
    );
    let h = e.pipeline.handle(d).await.unwrap();
    let Handled::Answered { class, actions, .. } = &h else {
        panic!("{h:?}")
    };
    assert_eq!(*class, Classification::Unknown);
    assert!(actions.iter().any(|a| a.action == "escalate"));
    assert!(
        actions
            .iter()
            .all(|a| a.action != "rollback" && a.action != "restart_machine")
    );
    assert_eq!(mutations(&e.sim), before);
    assert_eq!(e.seen.escalations.lock().unwrap().len(), 1);
}

/// BUG-30: Fly's API is down for opsctl; every app's checks fail at once → exactly one
/// "monitoring path down" incident, one escalation, one notification; no per-app incident and
/// no action on Fly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_30_blind_observer_one_incident_no_action() {
    let mut e = env(Scenario::lowendinsight_default(), OLD, "rolling").await;
    e.sim
        .state()
        .add_fault(serde_json::from_value(serde_json::json!({"kind": "apiDown"})).unwrap())
        .unwrap();
    let blind = Signal {
        app: None,
        kind: SignalKind::ObserverBlind,
        release: None,
        class: "fly_api:unreachable".into(),
        source: "maintenance/fly".into(),
        at: Utc::now(),
        machine: None,
        detail: "every Fly API call failed".into(),
        deploy: None,
        blind: Some(Blind::FlyApi),
    };
    assert_eq!(
        e.pipeline.handle(blind.clone()).await.unwrap(),
        Handled::Monitoring(true)
    );
    for n in 0..40 {
        let mut s = signal(SignalKind::ProbeFailed, "timeout", None, "probe timed out");
        s.app = Some(format!("app-{n}"));
        assert_eq!(
            e.pipeline.handle(s).await.unwrap(),
            Handled::Held(Held::ObserverBlind)
        );
    }
    assert_eq!(
        e.pipeline.handle(blind).await.unwrap(),
        Handled::Monitoring(false)
    );
    let incidents = records(&e.store, RecordKind::Incident);
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(
        incidents[0].data["held_back_apps"]
            .as_array()
            .unwrap()
            .len(),
        40
    );
    assert!(incidents[0].labels.contains(&"monitoring".to_owned()));
    assert_eq!(e.seen.escalations.lock().unwrap().len(), 1);
    assert_eq!(e.seen.notifications.lock().unwrap().len(), 1);
    assert_eq!(mutations(&e.sim), 0);
}

/// The LEI `:enoent` bead: the monitor's own `fly status` could not run (tool missing) while the
/// app's HTTP check was fine. That is opsctl blind, never an app health incident, and three
/// reports make one monitoring incident with three occurrences, not three alerts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lei_enoent_is_an_observer_signal_never_an_app_incident() {
    let mut e = env(Scenario::lowendinsight_default(), OLD, "rolling").await;
    let s = Signal {
        app: Some(APP.into()),
        kind: SignalKind::ObserverBlind,
        release: None,
        class: "tool_missing:flyctl".into(),
        source: "maintenance/fly-status".into(),
        at: Utc::now(),
        machine: None,
        detail: "fly status error: Erlang error: :enoent".into(),
        deploy: None,
        blind: Some(Blind::Tool),
    };
    let mut handled = vec![];
    for _ in 0..3 {
        handled.push(e.pipeline.handle(s.clone()).await.unwrap());
    }
    assert_eq!(
        handled,
        [
            Handled::Monitoring(true),
            Handled::Monitoring(false),
            Handled::Monitoring(false)
        ]
    );
    let incidents = records(&e.store, RecordKind::Incident);
    assert_eq!(incidents.len(), 1);
    assert!(incidents[0].app.is_none(), "not an incident of the app");
    assert_eq!(incidents[0].data["occurrences"], 3);
    assert!(records(&e.store, RecordKind::Postmortem).is_empty());
    assert_eq!(e.seen.escalations.lock().unwrap().len(), 1);
    assert_eq!(mutations(&e.sim), 0, "no restart for a missing tool");
}

/// A dependency check that cannot run is that check's `unknown`, never the monitoring path,
/// even when its name starts with "fly" (a check `maintenance/flyproxy`): no incident, no
/// escalation, and the app's next signal is answered, not held back. What went blind comes
/// from the producer ([`Judgement::unknown`]), not from the class.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_check_that_cannot_run_holds_nothing_back() {
    let mut e = env(Scenario::lowendinsight_default(), OLD, "rolling").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    for source in ["maintenance/flyproxy", "maintenance/redis"] {
        let j = Judgement::unknown(APP, source, "FLYPROXY_URL is not set", Utc::now());
        let [s] = j.signals.as_slice() else {
            panic!("{j:?}")
        };
        assert_eq!(s.blind, Some(Blind::Dependency));
        assert_eq!(
            e.pipeline.handle(s.clone()).await.unwrap(),
            Handled::Held(Held::ObserverBlind),
            "{source}"
        );
    }
    assert!(records(&e.store, RecordKind::Incident).is_empty());
    assert!(e.seen.escalations.lock().unwrap().is_empty());
    let s = signal(
        SignalKind::RedisDown,
        "ping:closed",
        None,
        "%Redix.ConnectionError{reason: :closed}",
    );
    let h = e.pipeline.handle(s).await.unwrap();
    assert!(matches!(h, Handled::Answered { .. }), "{h:?}");
    assert_eq!(records(&e.store, RecordKind::Incident).len(), 1);
}

/// A scenario where machine m1 runs an image whose process exits with code 0 after a second
/// and stays stopped (the LEI bead: "restart attempt resulted in machine shutdown (exit code
/// 0)").
fn exits_scenario() -> Scenario {
    let text = std::fs::read_to_string(common::repo_root().join("examples/sim/lowendinsight.yaml"))
        .unwrap();
    let m1 = format!(
        "      - id: {M1}\n        region: iad\n        state: started\n        release: 109\n        image: {OLD}"
    );
    assert!(text.contains(&m1));
    let exit0 = "registry.fly.io/lowendinsight:deployment-EXIT0";
    let text = text.replace(&m1, &m1.replace(OLD, exit0)).replace(
        &format!("  {NEW}: healthy\n"),
        &format!("  {NEW}: healthy\n  {exit0}: {{exits: 0}}\n"),
    );
    Scenario::from_yaml(&text).unwrap()
}

/// A policy under which the responder may restart machines, without asking (the ADR's default
/// allows no restart: case BUG-20, "restart if restart is allowlisted").
const RESTART_POLICY: &str = "apiVersion: opsctl.dev/v1alpha1
kind: GovernancePolicy
metadata: {name: restarts}
spec:
  gates:
    restart: {phase1: auto, phase2: auto, phase3: auto}
  roles:
    responder: {allow: [status, logs, releases, rollback, scale-show, scale-count, scale-vm, certs, postgres-read-only, volumes-list, health-get, machine-restart]}
";

fn allow_restarts(e: &mut Env) {
    let text = common::manifest(OLD) + "---\n" + RESTART_POLICY;
    e.pipeline.set = opsctl_crds::load_str("lowendinsight.yaml".as_ref(), &text).unwrap();
}

/// Under the ADR's default policy a restart is not the responder's to make: governance refuses
/// it before any Fly call, the incident is escalated with the rule, and nothing is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_outside_the_policy_is_escalated_not_made() {
    let mut e = env(exits_scenario(), OLD, "rolling").await;
    e.client
        .machine_action(APP, M1, opsctl::fly::MachineAction::Restart, None)
        .await
        .unwrap();
    wait_stopped(&e.client, M1).await;
    e.sim.state().reset_request_counts();
    let s = signal(
        SignalKind::MachineDown,
        "exit:0",
        Some(M1),
        "m1 stopped (exit code 0)",
    );
    let h = e.pipeline.handle(s).await.unwrap();
    let Handled::Answered {
        actions, resolved, ..
    } = &h
    else {
        panic!("{h:?}")
    };
    let restart = actions
        .iter()
        .find(|a| a.action == "restart_machine")
        .unwrap();
    assert!(!restart.ok, "{restart:?}");
    assert!(
        restart
            .detail
            .contains("by governance (role.responder.not-allowed)"),
        "{}",
        restart.detail
    );
    assert!(!resolved);
    assert_eq!(mutations(&e.sim), 0, "nothing restarted");
    assert_eq!(e.seen.escalations.lock().unwrap().len(), 1);
}

async fn wait_stopped(client: &FlyClient, m: &str) {
    for _ in 0..100 {
        if client.get_machine(APP, m).await.unwrap().state == "stopped" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{m} never stopped");
}

/// A restart that ends with the machine stopped is a failed response: recorded on the incident
/// (which stays open, blocked on a human), escalated, with a postmortem; no incident about the
/// failed restart itself, and no second restart when the machine is reported down again (the
/// LEI investigation chain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_left_stopped_is_a_failed_response_and_never_investigated_recursively() {
    let mut e = env(exits_scenario(), OLD, "rolling").await;
    allow_restarts(&mut e);
    // Kick m1 once so its process runs the exiting image, then let it stop by itself.
    e.client
        .machine_action(APP, M1, opsctl::fly::MachineAction::Restart, None)
        .await
        .unwrap();
    wait_stopped(&e.client, M1).await;
    e.sim.state().reset_request_counts();
    let s = signal(
        SignalKind::MachineDown,
        "exit:0",
        Some(M1),
        "m1 stopped (exit code 0)",
    );
    let h = e.pipeline.handle(s.clone()).await.unwrap();
    let Handled::Answered {
        class,
        actions,
        resolved,
        incident,
    } = &h
    else {
        panic!("{h:?}")
    };
    assert_eq!(*class, Classification::Degradation, "1 of 2 machines down");
    let restart = actions
        .iter()
        .find(|a| a.action == "restart_machine")
        .unwrap();
    assert!(!restart.ok, "{restart:?}");
    assert!(
        restart.detail.contains("left the machine stopped"),
        "{}",
        restart.detail
    );
    assert!(!resolved);
    let inc = records(&e.store, RecordKind::Incident)
        .into_iter()
        .find(|r| &r.id == incident)
        .unwrap();
    assert_eq!(inc.status, RecordStatus::Blocked);
    let esc = e.seen.escalations.lock().unwrap().clone();
    assert_eq!(esc.len(), 1);
    assert!(
        esc[0].data["reasons"]
            .to_string()
            .contains("restart_machine_failed"),
        "{:?}",
        esc[0].data
    );
    assert_eq!(records(&e.store, RecordKind::Postmortem).len(), 1);
    let starts = count(&e.sim, "POST /v1/apps/{app}/machines/{id}/start")
        + count(&e.sim, "POST /v1/apps/{app}/machines/{id}/restart");
    assert_eq!(starts, 1);

    // What a naive pipeline would do next: report its own failure as a signal, and keep
    // seeing the machine down. Neither opens a new incident, restarts again or escalates again.
    let mut own = signal(
        SignalKind::MachineDown,
        "restart_failed",
        Some(M1),
        "restart of m1 failed",
    );
    own.source = "incident/restart".into();
    assert_eq!(
        e.pipeline.handle(own).await.unwrap(),
        Handled::Held(Held::OwnResponse)
    );
    for _ in 0..3 {
        assert!(matches!(
            e.pipeline.handle(s.clone()).await.unwrap(),
            Handled::Repeat(_)
        ));
    }
    assert_eq!(records(&e.store, RecordKind::Incident).len(), 1);
    assert_eq!(e.seen.escalations.lock().unwrap().len(), 1);
    let starts_after = count(&e.sim, "POST /v1/apps/{app}/machines/{id}/start")
        + count(&e.sim, "POST /v1/apps/{app}/machines/{id}/restart");
    assert_eq!(starts_after, 1, "never restarted twice");

    // Restarted opsctl: the open incident is read back, and still dedupes.
    let mut fresh = IncidentPipeline::new(deployer(&e.client, &e.store), IncidentConfig::default());
    fresh.set = e.pipeline.set.clone();
    assert!(matches!(fresh.handle(s).await.unwrap(), Handled::Repeat(_)));
    assert_eq!(records(&e.store, RecordKind::Incident).len(), 1);
}

/// Redis down while HTTP is fine → degradation (ADR §7): diagnosed and escalated, nothing
/// restarted or rolled back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_with_http_fine_is_a_degradation() {
    let mut e = env(Scenario::lowendinsight_default(), OLD, "rolling").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = signal(
        SignalKind::RedisDown,
        "ping:closed",
        None,
        "%Redix.ConnectionError{reason: :closed}",
    );
    let h = e.pipeline.handle(s).await.unwrap();
    let Handled::Answered { class, actions, .. } = &h else {
        panic!("{h:?}")
    };
    assert_eq!(*class, Classification::Degradation);
    assert_eq!(
        actions
            .iter()
            .map(|a| a.action.as_str())
            .collect::<Vec<_>>(),
        ["diagnose", "escalate"]
    );
    assert_eq!(mutations(&e.sim), 0);
    assert_eq!(records(&e.store, RecordKind::Postmortem).len(), 1);
}

/// `opsctl run` wiring: a committed bad image deployed with the `immediate` strategy leaves
/// every machine failing; the reconciler hands the finished deploy to the incident pipeline,
/// which rolls it back once and records the incident and its postmortem, shown by
/// `opsctl history -o json`.
#[test]
fn run_hands_a_bad_deploy_to_the_incident_pipeline() {
    use common::{Lines, Sim, Workspace, eventually, git};
    use std::process::Stdio;
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    ws.set_strategy("immediate");
    let repo = ws.manifests();
    // Escalations go to an engineering repository's beads through an AlertRoute.
    let eng = tempfile::tempdir().unwrap();
    std::fs::create_dir(eng.path().join(".beads")).unwrap();
    let eng_file = eng.path().join(".beads/issues.jsonl");
    std::fs::write(
        repo.join("routes.yaml"),
        format!(
            "apiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {{name: eng}}\nspec:\n  targets:\n    - beads: {{path: {}, prefix: eng}}\n",
            eng_file.display()
        ),
    )
    .unwrap();
    ws.commit_all("on OLD");
    let mut child = ws
        .opsctl(&sim)
        .args([
            "run",
            "--resync",
            "1h",
            "--poll",
            "100ms",
            "--incident-settle",
            "1500ms",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    assert!(
        lines.wait_for("reconciler started", Duration::from_secs(20)),
        "{}",
        lines.all()
    );
    ws.write_manifest(BAD);
    ws.set_strategy("immediate");
    git(&repo, &["commit", "-q", "-am", "BAD"]);
    let history = || {
        let out = ws
            .opsctl(&sim)
            .args(["history", "-o", "json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap_or_default()
    };
    let pm = eventually(Duration::from_secs(40), || {
        let h = history();
        h["records"]
            .as_array()?
            .iter()
            .find(|r| r["kind"] == "postmortem")
            .cloned()
    });
    common::send_signal(&child, "TERM");
    let _ = child.wait();
    let pm = pm.unwrap_or_else(|| panic!("no postmortem; log:\n{}", lines.all()));
    let h = history();
    let deploy = h["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["image"] == BAD)
        .unwrap()
        .clone();
    assert_eq!(deploy["status"], "rolled_back", "{deploy}");
    assert!(
        pm["links"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "caused-by" && l["to"] == deploy["id"])
    );
    assert_eq!(pm["data"]["classification"], "outage");
    assert_eq!(pm["data"]["commit"], deploy["commit"]);
    // The escalation reached the engineering backlog, depending on the ops record.
    let eng_issues = std::fs::read_to_string(&eng_file).unwrap_or_default();
    let escalation = eng_issues
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|i| i["id"].as_str().is_some_and(|id| id.starts_with("eng-")))
        .unwrap_or_else(|| panic!("no engineering escalation in {eng_issues:?}"));
    assert!(
        escalation["dependencies"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["type"] == "caused-by"
                && d["depends_on_id"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("ops-")))),
        "{escalation}"
    );
    assert_eq!(
        sim.images(),
        [
            (M1.to_owned(), OLD.to_owned()),
            (M2.to_owned(), OLD.to_owned())
        ]
    );
}

/// A local stand-in for an OpenAI-compatible chat endpoint: answers with `content` (and a
/// `usage` of 1000 prompt + 50 completion tokens), or waits `delay` first; keeps every request.
struct FakeLlm {
    url: String,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
}

async fn fake_llm(content: &'static str, delay: Duration) -> FakeLlm {
    use axum::routing::post;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(body);
                tokio::time::sleep(delay).await;
                axum::Json(serde_json::json!({
                    "id": "chatcmpl-1", "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    FakeLlm { url, requests }
}

fn llm(url: &str, timeout: Duration, usd_per_mtok: f64) -> Arc<opsctl::incident::LlmClassifier> {
    Arc::new(
        opsctl::incident::LlmClassifier::new(opsctl::incident::LlmConfig {
            base_url: url.to_owned(),
            model: "test-model".into(),
            api_key: Some(Secret::new("sk-test-secret")),
            timeout,
            usd_per_mtok_prompt: usd_per_mtok,
            usd_per_mtok_completion: usd_per_mtok * 4.0,
            max_tokens: 200,
        })
        .unwrap(),
    )
}

fn unknown_line() -> Signal {
    signal(
        SignalKind::LogPattern,
        "unrecognised",
        Some(M2),
        "[error] upstream redis://default:hunter2@cache.internal:6379 replied garbage",
    )
}

/// The judgment step: a valid answer classifies (charged from token usage, no secret in the
/// prompt); an invalid answer or a timeout falls back to the rules and escalates; a model that
/// says "outage" where the rules do not never causes a rollback or restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_classifier_validated_charged_and_falls_back() {
    // A valid answer.
    let fake = fake_llm(
        r#"{"classification":"degradation","confidence":0.7,"reason":"upstream_errors"}"#,
        Duration::ZERO,
    )
    .await;
    let mut e = env(Scenario::lowendinsight_default(), OLD, "rolling").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    e.pipeline.classifier = llm(&fake.url, Duration::from_secs(5), 2.0);
    let h = e.pipeline.handle(unknown_line()).await.unwrap();
    let Handled::Answered {
        class, incident, ..
    } = &h
    else {
        panic!("{h:?}")
    };
    assert_eq!(*class, Classification::Degradation);
    let inc = records(&e.store, RecordKind::Incident)
        .into_iter()
        .find(|r| &r.id == incident)
        .unwrap();
    assert_eq!(inc.data["rule"], "llm");
    // 1000 × $2/Mtok + 50 × $8/Mtok = $0.0024
    let cost = inc.data["llm_cost_usd"].as_f64().unwrap();
    assert!((cost - 0.0024).abs() < 1e-9, "{cost}");
    let reqs = fake.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 1);
    let prompt = reqs[0].to_string();
    assert!(
        prompt.contains("replied garbage") && prompt.contains("cache.internal"),
        "{prompt}"
    );
    assert!(
        !prompt.contains("hunter2") && !prompt.contains("sk-test-secret"),
        "{prompt}"
    );
    assert_eq!(reqs[0]["response_format"]["type"], "json_object");

    // The model says outage; the rules see nothing down: no rollback, no restart.
    let fake = fake_llm(
        r#"{"classification":"outage","confidence":0.99,"reason":"site_down"}"#,
        Duration::ZERO,
    )
    .await;
    e.pipeline.classifier = llm(&fake.url, Duration::from_secs(5), 2.0);
    let mut s = unknown_line();
    s.class = "other".into();
    let before = mutations(&e.sim);
    let h = e.pipeline.handle(s).await.unwrap();
    let Handled::Answered { class, actions, .. } = &h else {
        panic!("{h:?}")
    };
    assert_eq!(*class, Classification::Outage);
    assert!(
        actions.iter().any(|a| a.action == "escalate"),
        "{actions:?}"
    );
    assert!(
        actions
            .iter()
            .all(|a| a.action != "rollback" && a.action != "restart_machine"),
        "{actions:?}"
    );
    assert_eq!(mutations(&e.sim), before);

    // Every way the judgment step can fail falls back to the rules (unknown) and escalates,
    // naming the failure: (what the fake model answers, its delay, our timeout, our per-call
    // budget, the reason expected, whether the call is made at all).
    let failures = [
        // Not the schema.
        (
            "Looks like an outage, roll back!",
            Duration::ZERO,
            Duration::from_secs(5),
            2.0,
            "llm_invalid_answer",
            true,
        ),
        // Too slow.
        (
            r#"{"classification":"noise","confidence":0.99,"reason":"fine"}"#,
            Duration::from_secs(3),
            Duration::from_millis(300),
            2.0,
            "llm_unavailable: timeout",
            true,
        ),
        // A call that could cost more than the $2.00 incident budget is not made.
        (
            r#"{"classification":"noise","confidence":0.99,"reason":"fine"}"#,
            Duration::ZERO,
            Duration::from_secs(5),
            1000.0,
            "llm_budget_exhausted",
            false,
        ),
    ];
    for (i, (answer, delay, timeout, usd_per_mtok, reason, called)) in
        failures.into_iter().enumerate()
    {
        let fake = fake_llm(answer, delay).await;
        e.pipeline.classifier = llm(&fake.url, timeout, usd_per_mtok);
        let mut s = unknown_line();
        s.class = format!("failure-{i}");
        let h = e.pipeline.handle(s).await.unwrap();
        assert!(
            matches!(
                h,
                Handled::Answered {
                    class: Classification::Unknown,
                    ..
                }
            ),
            "{reason}: {h:?}"
        );
        assert_eq!(
            !fake.requests.lock().unwrap().is_empty(),
            called,
            "{reason}"
        );
        let esc = e.seen.escalations.lock().unwrap().last().cloned().unwrap();
        assert!(
            esc.data["reasons"].to_string().contains(reason),
            "{reason}: {:?}",
            esc.data
        );
    }
}

/// BUG-30 variant: the observer sees Fly fine, but 30 apps fail their probes within two
/// minutes → one correlated `multi_app_outage` incident listing them (after the first few
/// apps' own incidents), one escalation and one notification for it, nothing done on Fly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bug_30_variant_many_apps_failing_are_one_correlated_incident() {
    let mut e = env(Scenario::lowendinsight_default(), OLD, "rolling").await;
    let mut correlated = vec![];
    for n in 0..30 {
        let mut s = signal(
            SignalKind::ProbeFailed,
            "status:503",
            None,
            "probe answered 503",
        );
        s.app = Some(format!("app-{n}"));
        s.release = None;
        if let Handled::Correlated(fresh) = e.pipeline.handle(s).await.unwrap() {
            correlated.push(fresh);
        }
    }
    assert_eq!(correlated.len(), 26);
    assert_eq!(correlated.iter().filter(|f| **f).count(), 1);
    let recs: Vec<Record> = records(&e.store, RecordKind::Incident)
        .into_iter()
        .filter(|r| r.labels.contains(&"correlated".to_owned()))
        .collect();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].data["held_back_apps"].as_array().unwrap().len(), 30);
    let esc = e.seen.escalations.lock().unwrap().clone();
    assert_eq!(
        esc.iter()
            .filter(|r| r.data["reasons"].to_string().contains("multi_app_outage"))
            .count(),
        1
    );
    let opened_for_it = e
        .seen
        .notifications
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, id)| *id == recs[0].id)
        .count();
    assert_eq!(opened_for_it, 1);
    assert_eq!(mutations(&e.sim), 0);
}
