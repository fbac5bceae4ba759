//! Unit tests of one machine's life on virtual time (no HTTP).

use super::*;
use std::time::Duration;

fn behaviors() -> Behaviors {
    let mut images = BTreeMap::new();
    images.insert("bad".to_string(), ImageBehavior::FailsChecks);
    images.insert("crash".to_string(), ImageBehavior::CrashLoop);
    images.insert("exit3".to_string(), ImageBehavior::Exits(3));
    Behaviors {
        timing: Timing::default(),
        images,
        default: ImageBehavior::Healthy,
        release_commands: BTreeMap::new(),
    }
}

fn config(image: &str) -> MachineConfig {
    let mut c = MachineConfig {
        image: image.to_string(),
        ..Default::default()
    };
    c.services = vec![serde_json::json!({
        "protocol": "tcp", "internal_port": 8080,
        "checks": [{"type": "tcp"}, {"type": "http", "path": "/healthz"}]
    })];
    c.checks.insert(
        "readyz".to_string(),
        serde_json::json!({"type": "http", "port": 4000}),
    );
    c
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn ms(n: i64) -> chrono::Duration {
    chrono::Duration::milliseconds(n)
}

#[test]
fn launch_starts_after_the_delay_and_checks_pass_after_grace() {
    let b = behaviors();
    let mut m = SimMachine::launch(
        "a".into(),
        "n".into(),
        "iad".into(),
        config("ok"),
        t0(),
        false,
        &b,
    );
    assert_eq!(m.state(), "created", "Fly's create answer");
    m.settle(t0(), &b);
    assert_eq!(m.state(), "starting");
    m.settle(t0() + ms(300), &b);
    assert_eq!(m.state(), "started");
    assert!(m.checks(t0() + ms(700), &b).is_empty());
    let checks = m.checks(t0() + ms(800), &b);
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "servicecheck-00-tcp-8080",
            "servicecheck-01-http-8080",
            "readyz"
        ]
    );
    assert!(checks.iter().all(|c| c.status == "passing"));
    let kinds: Vec<&str> = m.events().iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["start", "launch"]);
}

#[test]
fn crash_loop_restarts_with_increasing_count_and_skips_long_gaps() {
    let b = behaviors();
    let mut m = SimMachine::launch(
        "a".into(),
        "n".into(),
        "iad".into(),
        config("crash"),
        t0(),
        false,
        &b,
    );
    m.settle(t0() + ms(300 + 1000 + 300 + 1000 + 10), &b);
    let exit = m.events().iter().find(|e| e.kind == "exit").unwrap();
    let req = exit.request.as_ref().unwrap();
    assert_eq!(req.restart_count, 2);
    let ee = req.exit_event.as_ref().unwrap();
    assert!(ee.restarting && !ee.requested_stop && ee.exit_code == 1);
    assert!(
        m.checks(t0() + ms(2610), &b)
            .iter()
            .all(|c| c.status == "critical")
    );
    m.settle(t0() + chrono::Duration::days(30), &b);
    assert!(m.events().len() <= MAX_EVENTS);
    let last = m.events().iter().find(|e| e.kind == "exit").unwrap();
    assert!(last.request.as_ref().unwrap().restart_count > 1_000_000);
}

#[test]
fn exits_once_and_stays_stopped() {
    let b = behaviors();
    let mut m = SimMachine::launch(
        "a".into(),
        "n".into(),
        "iad".into(),
        config("exit3"),
        t0(),
        false,
        &b,
    );
    m.settle(t0() + chrono::Duration::minutes(5), &b);
    assert_eq!(m.state(), "stopped");
    let ee = m.events()[0]
        .request
        .as_ref()
        .unwrap()
        .exit_event
        .clone()
        .unwrap();
    assert_eq!(
        (ee.exit_code, ee.restarting, ee.requested_stop),
        (3, false, false)
    );
}

#[test]
fn stop_start_and_update_skip_launch() {
    let b = behaviors();
    let mut m = SimMachine::launch(
        "a".into(),
        "n".into(),
        "iad".into(),
        config("ok"),
        t0(),
        false,
        &b,
    );
    m.stop(t0() + ms(1000), &b);
    assert_eq!(m.state(), "stopping");
    assert!(
        m.start(t0() + ms(1100), &b).is_err(),
        "start while stopping is a 412"
    );
    m.settle(t0() + ms(1200), &b);
    assert_eq!(m.state(), "stopped");
    assert!(
        m.checks(t0() + ms(1200), &b).is_empty(),
        "stopped on request is not unhealthy"
    );
    let before = m.instance_id.clone();
    m.update(config("bad"), true, t0() + ms(2000), &b);
    assert_eq!(m.state(), "stopped");
    assert_ne!(m.instance_id, before);
    m.start(t0() + ms(3000), &b).unwrap();
    m.settle(t0() + ms(3000) + to_chrono(Duration::from_secs(1)), &b);
    assert!(
        m.checks(t0() + ms(4000), &b)
            .iter()
            .all(|c| c.status == "critical")
    );
}

#[test]
fn destroy_needs_force_while_running() {
    let b = behaviors();
    let mut m = SimMachine::launch(
        "a".into(),
        "n".into(),
        "iad".into(),
        config("ok"),
        t0(),
        false,
        &b,
    );
    assert!(m.destroy(false, t0(), &b).is_err());
    m.destroy(true, t0(), &b).unwrap();
    m.settle(t0() + ms(200), &b);
    assert_eq!(m.state(), "destroyed");
}
