//! One-shot machines (release commands, NOTES.md §6.2 step 3), `auto_destroy`, and the two
//! faults of case BUG-15: a create refused with "failed to launch VM: EOF" (an `errorRate`
//! recipe) and a new machine that answers 404 for a moment (`notFoundAfterCreate`).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{APP, M1, NEW, Sim};
use crate::fly::wire::Machine;
use crate::sim::Scenario;
use crate::sim::logs::{LogLevel, LogsResponse};

const MIGRATE_FAIL: &str = "registry.fly.io/lowendinsight:deployment-MIGRATEFAIL";
const DUPLICATE_TABLE: &str =
    "** (Postgrex.Error) ERROR 42P07 (duplicate_table) relation \"accounts\" already exists";

/// The config flyctl gives a release-command machine (`ToReleaseMachineConfig`).
fn release_command(image: &str) -> Value {
    json!({
        "config": {
            "image": image,
            "init": {"cmd": ["/app/bin/migrate"]},
            "restart": {"policy": "no"},
            "auto_destroy": true,
            "dns": {"skip_registration": true},
            "env": {"RELEASE_COMMAND": "1", "FLY_PROCESS_GROUP": "fly_app_release_command"},
            "metadata": {"fly_platform_version": "v2", "fly_process_group": "fly_app_release_command"}
        },
        "region": "iad"
    })
}

async fn create(sim: &Sim, body: Value) -> Machine {
    let (status, body) = sim.post(&format!("/v1/apps/{APP}/machines"), body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_value(body).unwrap()
}

async fn listed(sim: &Sim, query: &str) -> Vec<String> {
    let (status, body) = sim.get(&format!("/v1/apps/{APP}/machines{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let machines: Vec<Machine> = serde_json::from_value(body).unwrap();
    machines.into_iter().map(|m| m.id).collect()
}

/// `(code, requested_stop, restarting)` of the newest `exit` event.
fn last_exit(m: &Machine) -> Option<(i32, bool, bool)> {
    let e = m.events.iter().find(|e| e.kind == "exit")?;
    let x = e.request.as_ref()?.exit_event.as_ref()?;
    Some((x.exit_code, x.requested_stop, x.restarting))
}

#[tokio::test]
async fn a_release_command_machine_runs_once_exits_0_and_is_destroyed() {
    let sim = Sim::new();
    let m = create(&sim, release_command(NEW)).await;
    assert_eq!(
        m.state, "created",
        "Fly's create answer (machines_create_resp.json)"
    );
    assert_eq!(sim.machine(&m.id).await.state, "starting");
    sim.advance_ms(300);
    assert_eq!(sim.machine(&m.id).await.state, "started");
    sim.advance_ms(999);
    assert_eq!(
        sim.machine(&m.id).await.state,
        "started",
        "runs for exitAfter"
    );
    sim.advance_ms(1);
    let exited = sim.machine(&m.id).await;
    assert_eq!(exited.state, "stopped");
    assert_eq!(last_exit(&exited), Some((0, false, false)));
    assert!(exited.checks.is_empty(), "no services, no checks");

    sim.advance_ms(200);
    let gone = sim.machine(&m.id).await;
    assert_eq!(gone.state, "destroyed", "auto_destroy after it stopped");
    let kinds: Vec<(&str, &str)> = gone
        .events
        .iter()
        .map(|e| (e.kind.as_str(), e.source.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("destroy", "flyd"),
            ("exit", "flyd"),
            ("start", "flyd"),
            ("launch", "user")
        ]
    );
    assert!(!listed(&sim, "").await.contains(&m.id));
    assert!(listed(&sim, "?include_deleted=true").await.contains(&m.id));

    // Long after, it has not been started again.
    sim.advance_ms(60_000);
    assert_eq!(sim.machine(&m.id).await.events.len(), 4);
}

#[tokio::test]
async fn a_scripted_failure_exits_with_its_code_and_prints_its_lines() {
    let mut scenario = Scenario::lowendinsight_default();
    scenario.time_scale = 1e-6;
    let scripted = Scenario::from_yaml(&format!(
        "releaseCommands:\n  {MIGRATE_FAIL}:\n    exitCode: 1\n    runFor: 3s\n    logs: ['{DUPLICATE_TABLE}']\n"
    ))
    .unwrap();
    scenario.release_commands = scripted.release_commands;
    let sim = Sim::with(scenario);
    let m = create(&sim, release_command(MIGRATE_FAIL)).await;
    sim.advance_ms(300 + 2_999);
    assert_eq!(sim.machine(&m.id).await.state, "started", "runFor 3s");
    sim.advance_ms(1);
    let exited = sim.machine(&m.id).await;
    assert_eq!(last_exit(&exited), Some((1, false, false)));
    sim.advance_ms(200);
    assert_eq!(sim.machine(&m.id).await.state, "destroyed");

    let (status, body) = sim.get(&format!("/v1/apps/{APP}/logs?limit=1000")).await;
    assert_eq!(status, StatusCode::OK);
    let logs = serde_json::from_value::<LogsResponse>(body).unwrap().logs;
    let own: Vec<(&str, LogLevel)> = logs
        .iter()
        .filter(|l| l.machine_id == m.id)
        .map(|l| (l.message.as_str(), l.level))
        .collect();
    assert_eq!(
        own,
        [
            ("INFO Starting init (commit: simulated)...", LogLevel::Info),
            ("Machine started", LogLevel::Info),
            (
                "INFO Preparing to run: `/app/bin/migrate` as root",
                LogLevel::Info
            ),
            (DUPLICATE_TABLE, LogLevel::Error),
            (
                "INFO Main child exited normally with code: 1",
                LogLevel::Info
            ),
        ]
    );
}

#[tokio::test]
async fn the_control_api_scripts_a_release_command_and_image_behaviours_apply_too() {
    let sim = Sim::new();
    let (status, body) = sim
        .post(
            "/__sim/release-commands",
            json!({"image": MIGRATE_FAIL, "exitCode": 2, "logs": ["boom"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = sim.get("/__sim/release-commands").await;
    assert_eq!(
        body["releaseCommands"][MIGRATE_FAIL],
        json!({"exitCode": 2, "logs": ["boom"]})
    );
    let (status, body) = sim
        .post(
            "/__sim/release-commands",
            json!({"image": MIGRATE_FAIL, "exitCode": 300}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = sim
        .post("/__sim/release-commands", json!({"image": "x", "code": 1}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "unknown field");

    let scripted = create(&sim, release_command(MIGRATE_FAIL)).await;
    // An unscripted image: its behaviour decides (`{exits: 3}` → 3).
    sim.post(
        "/__sim/images",
        json!({"image": "registry.fly.io/x:exit3", "behavior": {"exits": 3}}),
    )
    .await;
    let by_behaviour = create(&sim, release_command("registry.fly.io/x:exit3")).await;
    sim.advance_ms(1_300);
    assert_eq!(
        last_exit(&sim.machine(&scripted.id).await),
        Some((2, false, false))
    );
    assert_eq!(
        last_exit(&sim.machine(&by_behaviour.id).await),
        Some((3, false, false))
    );
}

#[tokio::test]
async fn restart_no_with_auto_destroy_is_one_shot_but_restart_no_alone_keeps_serving() {
    let sim = Sim::new();
    let one_off = create(
        &sim,
        json!({"config": {"image": NEW, "restart": {"policy": "no"}, "auto_destroy": true}}),
    )
    .await;
    let server = create(
        &sim,
        json!({"config": {"image": NEW, "restart": {"policy": "no"}}}),
    )
    .await;
    sim.advance_ms(1_300);
    assert_eq!(
        last_exit(&sim.machine(&one_off.id).await),
        Some((0, false, false))
    );
    let server = sim.machine(&server.id).await;
    assert_eq!(server.state, "started");
    assert_eq!(last_exit(&server), None);
}

#[tokio::test]
async fn an_auto_destroy_machine_stopped_on_request_is_destroyed() {
    let sim = Sim::new();
    let m = create(
        &sim,
        json!({"config": {"image": NEW, "auto_destroy": true}}),
    )
    .await;
    sim.advance_ms(300);
    let (status, _) = sim
        .post(&format!("/v1/apps/{APP}/machines/{}/stop", m.id), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    sim.advance_ms(200);
    assert_eq!(sim.machine(&m.id).await.state, "stopped");
    // A second stop does not cancel flyd's destroy.
    sim.post(&format!("/v1/apps/{APP}/machines/{}/stop", m.id), json!({}))
        .await;
    sim.advance_ms(200);
    assert_eq!(sim.machine(&m.id).await.state, "destroyed");
}

#[tokio::test]
async fn failed_to_launch_vm_is_an_error_rate_recipe_and_nothing_is_created() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "errorRate", "rate": 1.0, "status": 500, "times": 1,
                     "route": "POST /v1/apps/{app}/machines", "message": "failed to launch VM: EOF"}))
        .await;
    let (status, body) = sim
        .post(&format!("/v1/apps/{APP}/machines"), release_command(NEW))
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error"], "failed to launch VM: EOF");
    assert_eq!(listed(&sim, "?include_deleted=true").await.len(), 2);
    create(&sim, release_command(NEW)).await;
    assert_eq!(listed(&sim, "").await.len(), 3, "the second try launches");
}

#[tokio::test(start_paused = true)]
async fn a_new_machine_answers_404_for_its_propagation_delay() {
    let sim = Sim::new();
    sim.fault(json!({"kind": "notFoundAfterCreate", "propagation": "1s"}))
        .await;
    let (status, body) = sim
        .post(
            "/__sim/faults",
            json!({"kind": "notFoundAfterCreate", "machine": M1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no `machine`: {body}");

    let m = create(&sim, release_command(NEW)).await;
    let base = format!("/v1/apps/{APP}/machines/{}", m.id);
    for uri in [
        base.clone(),
        format!("{base}/wait?state=stopped&timeout=1"),
        format!("{base}/events"),
    ] {
        let (status, body) = sim.get(&uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(body["error"], "machine not found");
    }
    let (status, _) = sim.get(&format!("/v1/apps/{APP}/machines/{M1}")).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "machines older than the fault are seen"
    );
    assert!(listed(&sim, "").await.contains(&m.id), "the list has it");

    sim.advance_ms(999);
    assert_eq!(sim.get(&base).await.0, StatusCode::NOT_FOUND);
    sim.advance_ms(1);
    assert_eq!(sim.get(&base).await.0, StatusCode::OK, "propagated");
    let counts = sim.state.request_counts();
    assert_eq!(counts.fault("notFoundAfterCreate"), 4);
    let (_, faults) = sim.get("/__sim/faults").await;
    assert_eq!(faults["faults"][0]["injected"], 4);
    assert_eq!(faults["faults"][0]["propagation"], "1s");

    let (status, _) = sim
        .call(Method::DELETE, &format!("{base}?force=true"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn scenario_release_commands_are_checked() {
    let e = Scenario::from_yaml("releaseCommands:\n  img: {exitCode: 256}\n").unwrap_err();
    assert!(e.to_string().contains("exitCode from 0 to 255"), "{e}");
    let e = Scenario::from_yaml("releaseCommands:\n  img: {code: 1}\n").unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
    let s = Scenario::from_yaml("releaseCommands:\n  img: {logs: [a, b]}\n").unwrap();
    assert_eq!(s.release_commands["img"].exit_code, 0);
    assert_eq!(s.release_commands["img"].logs, ["a", "b"]);
}
