//! Notification tests against a local axum receiver: payload shapes of each target, a retry
//! after a 500, giving up recorded (and not retried on a 400), PagerDuty trigger then resolve
//! with the same `dedup_key`, the caller never blocked by a hanging receiver, secrets never in
//! records; engineering escalation through a route.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Json, Path as UrlPath, State};
use axum::http::StatusCode;
use axum::routing::post;
use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::*;
use crate::records::{Record, RecordKind, RecordStore};
use crate::runtime::clock::SystemClock;

/// What the receiver got, per path; answers from a script (default 202); may hang.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(String, Value)>>>,
    script: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
    hang: Arc<AtomicBool>,
}

impl Receiver {
    fn answer(&self, path: &str, codes: &[u16]) {
        self.script
            .lock()
            .unwrap()
            .insert(path.into(), codes.iter().copied().collect());
    }
    fn bodies(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

async fn handle(
    State(rx): State<Receiver>,
    UrlPath(path): UrlPath<String>,
    Json(body): Json<Value>,
) -> StatusCode {
    rx.got.lock().unwrap().push((path.clone(), body));
    if path == "hang" && rx.hang.load(Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    let code = rx
        .script
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or(202);
    StatusCode::from_u16(code).unwrap()
}

async fn receiver() -> (Receiver, SocketAddr) {
    let rx = Receiver::default();
    let app = Router::new()
        .route("/{path}", post(handle))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (rx, addr)
}

/// Routes from an AlertRoute manifest text (through the real loader).
fn routes(spec: &str) -> AlertRoutes {
    let text = format!(
        "apiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {{name: oncall}}\nspec:\n{spec}"
    );
    let set = opsctl_crds::load_str(Path::new("/m/routes.yaml"), &text).unwrap();
    AlertRoutes::from_manifests(&set.alert_routes)
}

const ROUTING_KEY: &str = "R0UT1NGK3Ysecret0000000000000000";
const SLACK_TOKEN_PATH: &str = "slack-T000-B000-XXXXsecret";

fn config(addr: SocketAddr) -> NotifierConfig {
    let env: HashMap<String, String> = [
        ("PD_KEY".to_owned(), ROUTING_KEY.to_owned()),
        (
            "SLACK_URL".to_owned(),
            format!("http://{addr}/{SLACK_TOKEN_PATH}"),
        ),
        ("HOOK_URL".to_owned(), format!("http://{addr}/hook")),
    ]
    .into();
    NotifierConfig {
        queue: 16,
        timeout: Duration::from_millis(500),
        retries: 2,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        env: Arc::new(move |n| env.get(n).cloned()),
        source: "opsctl".into(),
    }
}

fn incident() -> Record {
    let t = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let mut r = Record::new(
        RecordKind::Incident,
        "lowendinsight down: 0/2 machines <started>",
        t,
    );
    r.app = Some("lowendinsight".into());
    r.priority = 0;
    r.description = "all machines stopped after v112 & no rollback target".into();
    r.data = serde_json::json!({"fingerprint": "lowendinsight/deploy_outage/112/-"});
    r
}

#[tokio::test]
async fn each_target_gets_its_payload_and_pagerduty_resolves_with_the_same_dedup_key() {
    let (rx, addr) = receiver().await;
    let routes = routes(&format!(
        "  targets:\n    - webhook: {{urlEnv: HOOK_URL}}\n    - slack: {{webhookUrlEnv: SLACK_URL}}\n    - pagerduty: {{routingKeyEnv: PD_KEY, eventsUrl: \"http://{addr}/pd\"}}\n"
    ));
    let n = Notifier::start(routes, config(addr), None, Arc::new(SystemClock));
    let mut inc = incident();
    assert_eq!(n.notify(&Event::from_record(&inc)), 3);
    inc.close("resolved", inc.created_at + chrono::Duration::minutes(9));
    n.notify(&Event::from_record(&inc));
    n.shutdown().await;

    let hook = rx.bodies("hook");
    assert_eq!(hook.len(), 2);
    assert_eq!(hook[0]["kind"], "opsctl.event");
    assert_eq!(hook[0]["event"]["action"], "trigger");
    assert_eq!(hook[0]["event"]["severity"], "critical");
    assert_eq!(hook[0]["event"]["record"], inc.id.as_str());
    assert_eq!(hook[1]["event"]["action"], "resolve");

    let slack = rx.bodies(SLACK_TOKEN_PATH);
    assert_eq!(slack.len(), 2);
    let text = slack[0]["text"].as_str().unwrap();
    assert_eq!(
        text,
        "[CRITICAL] lowendinsight: lowendinsight down: 0/2 machines &lt;started&gt;"
    );
    assert_eq!(slack[0]["blocks"][0]["type"], "section");
    assert!(
        slack[0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("v112 &amp; no rollback")
    );
    assert!(slack[1]["text"].as_str().unwrap().starts_with("[RESOLVED]"));

    let pd = rx.bodies("pd");
    assert_eq!(pd.len(), 2, "{pd:?}");
    assert_eq!(pd[0]["event_action"], "trigger");
    assert_eq!(pd[0]["routing_key"], ROUTING_KEY);
    assert_eq!(pd[0]["dedup_key"], "lowendinsight/deploy_outage/112/-");
    assert_eq!(pd[0]["payload"]["severity"], "critical");
    assert_eq!(pd[0]["payload"]["source"], "lowendinsight");
    assert_eq!(pd[0]["payload"]["timestamp"], "2026-11-29T12:00:00Z");
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[1]["dedup_key"], pd[0]["dedup_key"]);
    assert!(pd[1].get("payload").is_none());

    let recent = n.recent();
    assert_eq!(recent.len(), 6);
    assert!(recent.iter().all(|d| d.error.is_none() && d.attempts == 1));
}

#[tokio::test]
async fn a_500_is_retried_and_delivered() {
    let (rx, addr) = receiver().await;
    rx.answer("hook", &[500, 503]);
    let n = Notifier::start(
        routes("  targets: [{webhook: {urlEnv: HOOK_URL}}]\n"),
        config(addr),
        None,
        Arc::new(SystemClock),
    );
    n.notify(&Event::from_record(&incident()));
    n.shutdown().await;
    assert_eq!(rx.bodies("hook").len(), 3);
    let d = &n.recent()[0];
    assert_eq!((d.attempts, d.error.as_deref()), (3, None));
}

#[tokio::test]
async fn giving_up_is_recorded_without_secrets_and_a_400_is_not_retried() {
    let (rx, addr) = receiver().await;
    rx.answer(SLACK_TOKEN_PATH, &[503, 503, 503, 503]);
    rx.answer("pd", &[400]);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordStore::open_write(dir.path()).unwrap());
    let n = Notifier::start(
        routes(&format!(
            "  targets:\n    - slack: {{webhookUrlEnv: SLACK_URL}}\n    - pagerduty: {{routingKeyEnv: PD_KEY, eventsUrl: \"http://{addr}/pd\"}}\n    - webhook: {{urlEnv: UNSET_VAR}}\n"
        )),
        config(addr),
        Some(store.clone()),
        Arc::new(SystemClock),
    );
    let inc = incident();
    n.notify(&Event::from_record(&inc));
    n.shutdown().await;

    let recent = n.recent();
    let by = |t: &str| recent.iter().find(|d| d.target == t).unwrap().clone();
    let slack = by("slack");
    assert_eq!(slack.attempts, 3, "1 + 2 retries");
    assert_eq!(slack.error.as_deref(), Some("HTTP 503"));
    let pd = by("pagerduty");
    assert_eq!(pd.attempts, 1, "a 400 is not retried");
    assert!(pd.error.unwrap().starts_with("rejected with HTTP 400"));
    let hook = by("webhook");
    assert_eq!(
        (hook.attempts, hook.error.as_deref()),
        (0, Some("environment variable UNSET_VAR is not set"))
    );
    assert_eq!(rx.bodies(SLACK_TOKEN_PATH).len(), 3);

    let failed = store
        .records(|r| r.labels.iter().any(|l| l == "notification-failed"))
        .unwrap();
    assert_eq!(failed.len(), 3);
    for r in &failed {
        assert_eq!(r.kind, RecordKind::Escalation);
        assert_eq!(r.links[0].to, inc.id);
        let all = serde_json::to_string(r).unwrap();
        assert!(
            !all.contains(ROUTING_KEY) && !all.contains(SLACK_TOKEN_PATH),
            "{all}"
        );
    }
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_recorded_without_the_url() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let n = Notifier::start(
        routes("  targets: [{slack: {webhookUrlEnv: SLACK_URL}}]\n"),
        config(closed),
        None,
        Arc::new(SystemClock),
    );
    n.notify(&Event::from_record(&incident()));
    n.shutdown().await;
    let d = &n.recent()[0];
    assert_eq!(d.attempts, 3);
    let err = d.error.clone().unwrap();
    assert!(
        !err.contains(SLACK_TOKEN_PATH) && !err.contains("127.0.0.1"),
        "{err}"
    );
}

/// `notify` is a plain function: on a single-threaded runtime the workers cannot even start
/// until the test yields, so if `notify` waited for a delivery this test would deadlock. A
/// hanging receiver fills only its own queue; another target is still delivered.
#[tokio::test(flavor = "current_thread")]
async fn the_caller_is_never_blocked_by_a_hanging_receiver() {
    let (rx, addr) = receiver().await;
    rx.hang.store(true, Ordering::SeqCst);
    let mut env: HashMap<String, String> = HashMap::new();
    env.insert("HANG_URL".into(), format!("http://{addr}/hang"));
    env.insert("HOOK_URL".into(), format!("http://{addr}/hook"));
    let cfg = NotifierConfig {
        queue: 4,
        retries: 0,
        timeout: Duration::from_millis(300),
        env: Arc::new(move |n| env.get(n).cloned()),
        ..config(addr)
    };
    let text = "apiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {name: a-hangs}\nspec:\n  targets: [{webhook: {urlEnv: HANG_URL}}]\n---\napiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {name: b-works}\nspec:\n  match: {kinds: [incident]}\n  targets: [{webhook: {urlEnv: HOOK_URL}}]\n";
    let set = opsctl_crds::load_str(Path::new("r.yaml"), text).unwrap();
    let n = Notifier::start(
        AlertRoutes::from_manifests(&set.alert_routes),
        cfg,
        None,
        Arc::new(SystemClock),
    );
    let ev = Event::from_record(&incident());
    for _ in 0..100 {
        n.notify(&ev);
    }
    // 4 queued per target, the rest dropped (counted): 96 for each of the two targets.
    assert_eq!(n.dropped(), 192);
    // The working target delivers while the other hangs.
    for _ in 0..200 {
        if rx.bodies("hook").len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(rx.bodies("hook").len(), 4);
    n.shutdown().await;
    let hang: Vec<_> = n
        .recent()
        .into_iter()
        .filter(|d| d.route == "a-hangs" && d.attempts == 1)
        .collect();
    assert_eq!(hang.len(), 4);
    assert!(hang.iter().all(|d| d.error.as_deref() == Some("timed out")));
    // The drops are recorded by each target's worker, not by the caller.
    let drops: Vec<_> = n
        .recent()
        .into_iter()
        .filter(|d| d.attempts == 0)
        .map(|d| (d.route, d.error.unwrap()))
        .collect();
    let total: usize = drops
        .iter()
        .map(|(_, e)| {
            e.trim_start_matches("queue full: ")
                .split(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 192, "{drops:?}");
    assert!(drops.iter().any(|(r, _)| r == "a-hangs") && drops.iter().any(|(r, _)| r == "b-works"));
}

#[test]
fn events_come_from_records_and_deploys() {
    let mut inc = incident();
    let e = Event::from_record(&inc);
    assert_eq!(e.action, EventAction::Trigger);
    assert_eq!(e.dedup_key, "lowendinsight/deploy_outage/112/-");
    inc.data = Value::Null;
    assert_eq!(
        Event::from_record(&inc).dedup_key,
        inc.id,
        "no fingerprint: the id"
    );
    inc.close("resolved", inc.created_at);
    assert_eq!(Event::from_record(&inc).action, EventAction::Resolve);
}

#[tokio::test]
async fn escalation_goes_to_the_routes_beads_relative_to_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("lei");
    std::fs::create_dir_all(repo.join(".beads")).unwrap();
    let manifests = dir.path().join("ops/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let text = "apiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {name: eng}\nspec:\n  match: {kinds: [escalation, incident]}\n  targets: [{beads: {path: ../../lei/.beads/issues.jsonl, prefix: lowendinsight}}]\n---\napiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {name: deploys-only}\nspec:\n  match: {kinds: [deploy]}\n  targets: [{beads: {path: nowhere/issues.jsonl, prefix: x}}]\n";
    let file = manifests.join("routes.yaml");
    std::fs::write(&file, text).unwrap();
    let set = opsctl_crds::load_dir(&manifests).unwrap();
    let routes = AlertRoutes::from_manifests(&set.alert_routes);
    let inc = incident();
    let results = escalate(&routes, &inc, "ops", inc.created_at).await;
    assert_eq!(results.len(), 1, "only the matching route");
    let w = results.into_iter().next().unwrap().unwrap();
    assert!(w.id.starts_with("lowendinsight-"));
    let written = std::fs::read_to_string(repo.join(".beads/issues.jsonl")).unwrap();
    let issue: Value = serde_json::from_str(written.trim()).unwrap();
    assert_eq!(issue["dependencies"][0]["type"], "caused-by");
    assert_eq!(
        issue["dependencies"][0]["depends_on_id"],
        crate::records::beads::beads_id_for("ops", &inc.id)
    );
}
