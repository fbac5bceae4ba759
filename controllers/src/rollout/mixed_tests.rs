use chrono::Duration as Span;
use serde_json::json;

use super::*;
use crate::diff::diff;
use crate::history::PastOutcome;
use crate::observed::{CheckResult, ObservedRelease};
use crate::testkit::{NEW, OLD, app, machine, observed, t0};

const OLDER: &str = "registry.fly.io/lowendinsight:deployment-OLDER";

fn on_new(id: &str) -> ObservedMachine {
    ObservedMachine {
        image: NEW.into(),
        ..machine(id)
    }
}

fn failing(mut m: ObservedMachine) -> ObservedMachine {
    m.checks = vec![CheckResult {
        name: "servicecheck-00-tcp-8080".into(),
        state: CheckState::Critical,
        output: "connection refused".into(),
    }];
    m
}

/// The case's input: m1 on v41 (OLD), m2 and m3 on v42 (NEW, the manifest's image).
fn case(m2: ObservedMachine, m3: ObservedMachine) -> (ObservedApp, AppDiff) {
    let mut obs = observed(vec![machine("m1"), m2, m3]);
    obs.releases = vec![
        release(110, "complete", NEW),
        release(109, "complete", OLD),
        release(108, "complete", OLDER),
    ];
    let d = diff(&app(3, json!({})), &obs);
    (obs, d)
}

fn release(version: i64, status: &str, image: &str) -> ObservedRelease {
    ObservedRelease {
        id: format!("r{version}"),
        version,
        status: status.into(),
        image: Some(image.into()),
    }
}

fn past(image: &str, outcome: PastOutcome, failed_health: bool) -> PastDeploy {
    PastDeploy {
        id: "deploy-1".into(),
        image: image.into(),
        outcome,
        at: t0(),
        failed_health,
        image_changed: true,
        revision: "r".into(),
        rolled_back_from: None,
    }
}

/// BUG-08: v42 healthy on m2/m3 → converge m1 forward; nothing rolled back.
#[test]
fn healthy_image_converges_forward() {
    let (obs, d) = case(on_new("m2"), on_new("m3"));
    assert_eq!(
        decide(NEW, &obs, &d, &[]),
        vec![MixedPlan::Forward {
            group: "app".into()
        }]
    );
}

/// BUG-08: "Had v42 been failing on m2/m3, the plan would instead be Rollback of m2 and m3 to
/// v41" — every machine on the failing image, even one whose checks still pass.
#[test]
fn failing_image_rolls_back_every_machine_running_it_to_the_healthy_image() {
    let (obs, d) = case(failing(on_new("m2")), on_new("m3"));
    let plans = decide(NEW, &obs, &d, &[]);
    let [MixedPlan::Rollback(rb)] = plans.as_slice() else {
        panic!("{plans:?}");
    };
    assert_eq!(rb.to_image, OLD);
    assert_eq!(rb.failing_image, NEW);
    let ids: Vec<&str> = rb.machines.iter().map(|s| s.machine.as_str()).collect();
    assert_eq!(ids, ["m2", "m3"]);
    assert!(
        rb.machines
            .iter()
            .all(|s| s.from_image == OLD && s.wait_healthy)
    );
    assert_eq!(rb.failing.len(), 1);
    assert!(
        rb.failing[0].1.contains("checks critical"),
        "{:?}",
        rb.failing
    );
}

/// The healthy machines' image is known bad (BUG-12): the newest complete release whose image
/// is not bad instead, never the bad one.
#[test]
fn a_known_bad_healthy_image_is_never_the_target() {
    let (obs, d) = case(failing(on_new("m2")), failing(on_new("m3")));
    let history = [past(OLD, PastOutcome::RolledBack, true)];
    let plans = decide(NEW, &obs, &d, &history);
    let [MixedPlan::Rollback(rb)] = plans.as_slice() else {
        panic!("{plans:?}");
    };
    assert_eq!(rb.to_image, OLDER);
}

/// BUG-14: the failing image was rolled back automatically once already → escalate.
#[test]
fn a_second_automatic_rollback_of_the_same_image_escalates() {
    let (obs, d) = case(failing(on_new("m2")), on_new("m3"));
    let history = [past(NEW, PastOutcome::RolledBack, true)];
    let plans = decide(NEW, &obs, &d, &history);
    assert!(
        matches!(plans.as_slice(), [MixedPlan::Escalate { reason, .. }] if reason.starts_with("rollback_already_done")),
        "{plans:?}"
    );
}

/// No healthy machine on another image and no good release: escalate, no rollback.
#[test]
fn no_known_good_image_escalates() {
    let (mut obs, _) = case(failing(on_new("m2")), on_new("m3"));
    obs.machines[0] = failing(machine("m1"));
    obs.releases = vec![release(110, "complete", NEW)];
    let d = diff(&app(3, json!({})), &obs);
    let plans = decide(NEW, &obs, &d, &[]);
    assert!(
        matches!(plans.as_slice(), [MixedPlan::Escalate { reason, .. }] if reason.starts_with("no_known_good_release")),
        "{plans:?}"
    );
}

/// An autostopped machine, or one whose checks have not run yet, is not failing; an exit that
/// was not requested is.
#[test]
fn failing_health_counts_only_what_was_seen() {
    let mut stopped = on_new("m2");
    stopped.state = MachineState::Stopped;
    stopped.checks.clear();
    assert_eq!(failing_health(&stopped), None);
    let mut fresh = on_new("m2");
    fresh.checks.clear();
    assert_eq!(failing_health(&fresh), None);
    let mut exited = stopped.clone();
    exited.last_exit = Some(crate::observed::ExitInfo {
        exit_code: 1,
        oom_killed: false,
        requested_stop: false,
        restarting: false,
        restart_count: 0,
        at: t0(),
    });
    assert_eq!(
        failing_health(&exited).as_deref(),
        Some("exited with code 1")
    );
}

/// Groups not mixed, or mixed without the manifest's image, are left to the ordinary plan.
#[test]
fn only_mixed_groups_running_the_manifest_image_are_decided() {
    let obs = observed(vec![machine("m1"), machine("m2")]);
    let d = diff(&app(2, json!({})), &obs);
    assert!(decide(NEW, &obs, &d, &[]).is_empty());
}

/// The converge of m1 leaves m2/m3 alone but names them as peers to roll back with it.
#[test]
fn peers_are_the_machines_already_on_the_image() {
    let (obs, d) = case(on_new("m2"), on_new("m3"));
    let updated: BTreeSet<&str> = d.machines_to_update();
    let p = peers(NEW, &obs, &d, &updated);
    let ids: Vec<&str> = p.iter().map(|s| s.machine.as_str()).collect();
    assert_eq!(ids, ["m2", "m3"]);
    assert!(p.iter().all(|s| s.from_image == NEW));
    // Not mixed: no peers.
    let obs = observed(vec![machine("m1"), machine("m2")]);
    let d = diff(&app(2, json!({})), &obs);
    assert!(peers(NEW, &obs, &d, &d.machines_to_update()).is_empty());
}

/// `single_image_per_group`: more than 10 minutes mixed with no deploy in flight.
#[test]
fn mixed_for_more_than_ten_minutes_without_a_deploy_is_a_violation() {
    let first = t0();
    let ten = first + Span::minutes(10);
    assert!(!mixed_too_long(first, first, false));
    assert!(
        !mixed_too_long(first, ten, false),
        "exactly 10 min is not more"
    );
    assert!(mixed_too_long(first, ten + Span::seconds(1), false));
    assert!(
        !mixed_too_long(first, ten + Span::hours(1), true),
        "a deploy is converging it"
    );
    assert!(
        !mixed_too_long(first, first - Span::minutes(1), false),
        "clock went back"
    );
}

fn groups(pairs: &[(&str, &str, &str)]) -> MixedGroups {
    let mut g = MixedGroups::new();
    for (group, image, id) in pairs {
        g.entry((*group).to_owned())
            .or_default()
            .entry((*image).to_owned())
            .or_default()
            .push((*id).to_owned());
    }
    g
}

/// BUG-08 with the injected clock: mixed at T, still mixed at T+10m (no signal), T+10m01s
/// (one degradation signal), T+30m (not again); a deploy in flight restarts the clock; once
/// on one image the group is forgotten and a new episode is reported again.
#[test]
fn the_watch_signals_once_after_ten_minutes_without_a_deploy() {
    let mixed = groups(&[("app", OLD, "m1"), ("app", NEW, "m2")]);
    let none = MixedGroups::new();
    let t = t0();
    let mut w = MixedWatch::default();
    assert!(w.observe("lei", &mixed, false, t).is_empty());
    assert!(
        w.observe("lei", &mixed, false, t + Span::minutes(10))
            .is_empty()
    );
    let s = w.observe(
        "lei",
        &mixed,
        false,
        t + Span::minutes(10) + Span::seconds(1),
    );
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].kind, crate::signal::SignalKind::MixedImages);
    assert_eq!(s[0].class, "mixed_images:app");
    assert!(
        s[0].detail.contains(&format!("{OLD}: m1")),
        "{}",
        s[0].detail
    );
    assert!(
        w.observe("lei", &mixed, false, t + Span::minutes(30))
            .is_empty()
    );
    // Another app's group is its own episode.
    assert!(
        w.observe("other", &mixed, false, t + Span::minutes(30))
            .is_empty()
    );
    // A deploy in flight: no signal, and the clock restarts after it.
    let mut w = MixedWatch::default();
    w.observe("lei", &mixed, false, t);
    assert!(
        w.observe("lei", &mixed, true, t + Span::minutes(11))
            .is_empty()
    );
    assert!(
        w.observe("lei", &mixed, false, t + Span::minutes(12))
            .is_empty()
    );
    assert_eq!(
        w.observe("lei", &mixed, false, t + Span::minutes(23)).len(),
        1
    );
    // Converged, then mixed again: a new episode.
    assert!(
        w.observe("lei", &none, false, t + Span::minutes(24))
            .is_empty()
    );
    assert!(
        w.observe("lei", &mixed, false, t + Span::minutes(25))
            .is_empty()
    );
    assert_eq!(
        w.observe("lei", &mixed, false, t + Span::minutes(36)).len(),
        1
    );
}
