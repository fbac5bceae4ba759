//! The fault book: specs checked, windows, scopes, caps, and reproducible randomness.

use super::*;

fn spec(json: serde_json::Value) -> FaultSpec {
    serde_json::from_value(json).unwrap()
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

const UPDATE: Call<'static> = Call {
    key: "POST /v1/apps/{app}/machines/{id}",
    template: "/v1/apps/{app}/machines/{id}",
    machine: Some("148ed193b95d89"),
};

#[test]
fn specs_are_checked_field_by_field() {
    assert!(
        spec(serde_json::json!({"kind": "errorRate", "rate": 0.2}))
            .problems()
            .is_empty()
    );
    let p = spec(serde_json::json!({"kind": "errorRate"})).problems();
    assert_eq!(p, ["fault errorRate needs `rate`"]);
    let p = spec(serde_json::json!({"kind": "latency", "rate": 2.0})).problems();
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(p[0].contains("does not take `rate`"));
    let p = spec(serde_json::json!({"kind": "concurrentUpdate", "status": 500})).problems();
    assert!(p[0].contains("409 or 412"), "{p:?}");
    let p = spec(serde_json::json!({"kind": "leaseHeldBy", "machine": "m"})).problems();
    assert_eq!(p, ["fault leaseHeldBy needs `owner`"]);
    let p = spec(serde_json::json!({"kind": "storm429", "route": "machines"})).problems();
    assert!(p[0].contains("route template"), "{p:?}");
    let e = serde_json::from_value::<FaultSpec>(serde_json::json!({"kind": "nope"}));
    assert!(e.is_err());
    let e = serde_json::from_value::<FaultSpec>(serde_json::json!({"kind": "apiDown", "x": 1}));
    assert!(e.unwrap_err().to_string().contains("unknown field `x`"));
}

#[test]
fn windows_count_from_installation_on_the_virtual_clock() {
    let mut book = FaultBook::default();
    book.install(
        spec(serde_json::json!({"kind": "storm429", "after": "10s", "for": "20s"})),
        t0(),
    );
    let at = |s: i64| t0() + chrono::Duration::seconds(s);
    assert!(
        book.plan(Stage::Transport, &UPDATE, at(9), 1.0)
            .answer
            .is_none()
    );
    let plan = book.plan(Stage::Transport, &UPDATE, at(10), 1.0);
    assert_eq!(plan.answer, Some(Answer::TooMany(Duration::from_secs(20))));
    assert_eq!(plan.fired, [FaultKind::Storm429]);
    let plan = book.plan(Stage::Transport, &UPDATE, at(25), 10.0);
    assert_eq!(
        plan.answer,
        Some(Answer::TooMany(Duration::from_secs(1))),
        "Retry-After is the rest of the window in real seconds, at least 1"
    );
    assert!(
        book.plan(Stage::Transport, &UPDATE, at(30), 1.0)
            .answer
            .is_none()
    );
    assert_eq!(book.all()[0].injected, 2);
}

#[test]
fn scopes_stages_and_caps() {
    let mut book = FaultBook::default();
    book.install(
        spec(serde_json::json!({"kind": "concurrentUpdate", "machine": "148ed193b95d89", "times": 2})),
        t0(),
    );
    book.install(
        spec(serde_json::json!({"kind": "latency", "delay": "300ms", "route": "GET /v1/apps/{app}/machines"})),
        t0(),
    );
    assert!(
        book.plan(Stage::Transport, &UPDATE, t0(), 1.0) == Plan::default(),
        "a call fault does not act at the transport stage, and latency is scoped"
    );
    let other = Call {
        machine: Some("3d8d413b29d089"),
        ..UPDATE
    };
    assert!(
        book.plan(Stage::Handler, &other, t0(), 1.0)
            .answer
            .is_none()
    );
    for _ in 0..2 {
        let plan = book.plan(Stage::Handler, &UPDATE, t0(), 1.0);
        assert_eq!(
            plan.answer,
            Some(Answer::Error {
                status: 409,
                message: CONCURRENT_UPDATE.to_string()
            })
        );
    }
    assert!(
        book.plan(Stage::Handler, &UPDATE, t0(), 1.0)
            .answer
            .is_none(),
        "spent after `times`"
    );
    let list = Call {
        key: "GET /v1/apps/{app}/machines",
        template: "/v1/apps/{app}/machines",
        machine: None,
    };
    let plan = book.plan(Stage::Transport, &list, t0(), 1.0);
    assert_eq!(plan.delay, Duration::from_millis(300));
}

#[test]
fn error_rate_is_reproducible_and_near_its_rate() {
    let run = |seed: u64| {
        let mut book = FaultBook::default();
        book.install(
            spec(serde_json::json!({"kind": "errorRate", "rate": 0.2, "seed": seed})),
            t0(),
        );
        (0..1000)
            .map(|_| {
                book.plan(Stage::Transport, &UPDATE, t0(), 1.0)
                    .answer
                    .is_some()
            })
            .collect::<Vec<bool>>()
    };
    let a = run(7);
    assert_eq!(a, run(7), "same seed, same errors");
    assert_ne!(a, run(8));
    let hits = a.iter().filter(|h| **h).count();
    assert!((150..250).contains(&hits), "{hits} errors in 1000 at 20%");
}

#[test]
fn create_timeouts_wait_for_confirmation() {
    let mut book = FaultBook::default();
    book.install(
        spec(serde_json::json!({"kind": "createTimesOutButSucceeds", "drop": true})),
        t0(),
    );
    let create = Call {
        key: "POST /v1/apps/{app}/machines",
        template: "/v1/apps/{app}/machines",
        machine: None,
    };
    let plan = book.plan(Stage::Handler, &create, t0(), 1.0);
    let (id, after) = plan.after.unwrap();
    assert_eq!(after, After::Drop);
    assert_eq!(
        book.all()[0].injected,
        0,
        "not counted before the create succeeded"
    );
    assert!(book.confirm(id, t0()));
    assert!(!book.confirm(id, t0()), "once by default");
}

#[test]
fn leases_fall_due_once() {
    let mut book = FaultBook::default();
    book.install(
        spec(serde_json::json!({"kind": "leaseHeldBy", "machine": "m1", "owner": "other-actor", "after": "5s"})),
        t0(),
    );
    assert!(book.due_leases(t0()).is_empty());
    let later = t0() + chrono::Duration::seconds(5);
    let due = book.due_leases(later);
    assert_eq!(due.len(), 1);
    assert_eq!(
        due[0].until,
        later + chrono::Duration::hours(1),
        "default 1h"
    );
    assert!(book.due_leases(later).is_empty());
}
