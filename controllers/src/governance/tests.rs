use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use opsctl_crds::kinds::governance::{
    BurnInSpec, FreezeWindow, GovernancePolicySpec, Operation, WindowKind,
};
use proptest::prelude::*;

use super::burn_in::{count, phase, reverted};
use super::*;
use crate::history::{PastDeploy, PastOutcome};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap()
}

fn past(id: &str, image: &str, outcome: PastOutcome, minute: i64) -> PastDeploy {
    PastDeploy {
        id: id.into(),
        image: image.into(),
        outcome,
        at: now() + chrono::Duration::minutes(minute),
        failed_health: matches!(
            outcome,
            PastOutcome::RolledBack | PastOutcome::RollbackFailed
        ),
        image_changed: true,
        revision: format!("r-{id}"),
        rolled_back_from: None,
    }
}

/// `n` successful deploys.
fn successes(n: u32) -> Vec<PastDeploy> {
    (0..n)
        .map(|i| {
            past(
                &format!("d{i}"),
                &format!("img:{i}"),
                PastOutcome::Succeeded,
                i.into(),
            )
        })
        .collect()
}

fn burn(n: u32) -> BurnIn {
    BurnIn::of(&successes(n), &BTreeSet::new(), &BurnInSpec::default())
}

fn ctx(ci_green: bool, config_unchanged: bool) -> Context {
    Context {
        ci_green,
        config_unchanged,
        ..Context::default()
    }
}

fn act(kind: ActionKind) -> Action {
    Action::new(kind, "lowendinsight", "test", 0.0)
}

fn verdict_of(kind: ActionKind, counted: u32, c: Context) -> (Verdict, String) {
    let d = decide(
        &act(kind),
        kind.role(),
        &GovernancePolicySpec::default(),
        burn(counted),
        c,
        now(),
    );
    (d.verdict, d.rule)
}

/// The ADR's deploy table (§5), row by row: deploy number (counted + 1), CI green, config
/// unchanged → verdict and rule.
#[test]
fn adr_deploy_table() {
    use Verdict::*;
    let rows: &[(u32, bool, bool, Verdict, &str)] = &[
        (1, true, true, Gated, "gate.deploy.phase1.gated"),
        (5, true, true, Gated, "gate.deploy.phase1.gated"),
        (10, true, true, Gated, "gate.deploy.phase1.gated"),
        (10, false, false, Gated, "gate.deploy.phase1.gated"),
        (11, true, true, Auto, "gate.deploy.phase2.auto-when-safe"),
        (11, false, true, Gated, "gate.deploy.phase2.ci-not-green"),
        (11, true, false, Gated, "gate.deploy.phase2.config-changed"),
        (30, true, true, Auto, "gate.deploy.phase2.auto-when-safe"),
        (50, true, false, Gated, "gate.deploy.phase2.config-changed"),
        (50, true, true, Auto, "gate.deploy.phase2.auto-when-safe"),
        (51, false, false, Auto, "gate.deploy.phase3.auto"),
        (200, true, false, Auto, "gate.deploy.phase3.auto"),
    ];
    for &(number, ci, unchanged, want, rule) in rows {
        let got = verdict_of(ActionKind::Deploy, number - 1, ctx(ci, unchanged));
        assert_eq!(
            got,
            (want, rule.to_owned()),
            "deploy #{number} ci={ci} unchanged={unchanged}"
        );
    }
}

/// The ADR's other rows: incidents, scaling, migrations, rollbacks, maintenance.
#[test]
fn adr_other_rows() {
    use ActionKind::*;
    use Verdict::*;
    let runbook = Context {
        known_runbook: true,
        ..Context::default()
    };
    let outage = Context {
        outage: true,
        ..Context::default()
    };
    let health = Context {
        health_failure: true,
        ..Context::default()
    };
    let rows: &[(ActionKind, u32, Context, Verdict, &str)] = &[
        (
            IncidentClassification,
            0,
            Context::default(),
            Auto,
            "gate.incident_classification.phase1.auto",
        ),
        (
            IncidentClassification,
            60,
            Context::default(),
            Auto,
            "gate.incident_classification.phase3.auto",
        ),
        (
            IncidentResponse,
            0,
            runbook,
            Gated,
            "gate.incident_response.phase1.gated",
        ),
        (
            IncidentResponse,
            20,
            runbook,
            Gated,
            "gate.incident_response.phase2.gated",
        ),
        (
            IncidentResponse,
            60,
            runbook,
            Auto,
            "gate.incident_response.phase3.known-runbook",
        ),
        (
            IncidentResponse,
            60,
            Context::default(),
            Gated,
            "gate.incident_response.phase3.no-runbook",
        ),
        (
            Scale,
            0,
            Context::default(),
            Gated,
            "gate.scale.phase1.gated",
        ),
        (Scale, 20, ctx(true, true), Gated, "gate.scale.phase2.gated"),
        (
            Scale,
            100,
            ctx(true, true),
            Gated,
            "gate.scale.phase3.gated",
        ),
        (
            Migration,
            0,
            Context::default(),
            Gated,
            "migration.always-human",
        ),
        (
            Migration,
            100,
            ctx(true, true),
            Gated,
            "migration.always-human",
        ),
        (Rollback, 0, health, Auto, "rollback.auto.health-failure"),
        (Rollback, 0, outage, Auto, "rollback.auto.outage"),
        (
            Rollback,
            100,
            Context::default(),
            Gated,
            "gate.rollback.phase3.gated",
        ),
        (
            MaintenanceCheck,
            0,
            Context::default(),
            Auto,
            "gate.maintenance_check.phase1.auto",
        ),
        (
            DestroyMachine,
            100,
            Context::default(),
            Denied,
            "role.always-denied",
        ),
    ];
    for &(kind, counted, c, want, rule) in rows {
        let got = verdict_of(kind, counted, c);
        assert_eq!(
            got,
            (want, rule.to_owned()),
            "{kind:?} after {counted} deploys, {c:?}"
        );
    }
}

/// Budget caps (ADR §4): $0.50 deploy, $2.00 incident, $0.10 maintenance, per action.
#[test]
fn adr_budget_caps() {
    let policy = GovernancePolicySpec::default();
    let rows: &[(ActionKind, f64, Verdict)] = &[
        (ActionKind::Deploy, 0.50, Verdict::Auto),
        (ActionKind::Deploy, 0.51, Verdict::Denied),
        (ActionKind::IncidentClassification, 2.00, Verdict::Auto),
        (ActionKind::IncidentClassification, 2.01, Verdict::Denied),
        (ActionKind::MaintenanceCheck, 0.10, Verdict::Auto),
        (ActionKind::MaintenanceCheck, 0.11, Verdict::Denied),
        (ActionKind::Deploy, f64::NAN, Verdict::Denied),
        (ActionKind::Deploy, -1.0, Verdict::Denied),
    ];
    for &(kind, cost, want) in rows {
        let a = Action::new(kind, "a", "x", cost);
        let d = decide(&a, kind.role(), &policy, burn(100), ctx(true, true), now());
        assert_eq!(d.verdict, want, "{kind:?} ${cost}: {d:?}");
        if want == Verdict::Denied {
            assert!(d.rule.starts_with("budget."), "{d:?}");
        }
    }
    // An outage rollback runs whatever it costs: auto-rollback is unconditional.
    let a = Action::new(ActionKind::Rollback, "a", "x", 9.0);
    let outage = Context {
        outage: true,
        ..Context::default()
    };
    let d = decide(&a, Role::Deployer, &policy, burn(0), outage, now());
    assert_eq!(d.verdict, Verdict::Auto);
}

/// The allowlist of ADR §4, per role.
#[test]
fn adr_role_allowlists() {
    use Operation::*;
    let roles = GovernancePolicySpec::default().roles;
    let rows: &[(Role, Operation, bool)] = &[
        (Role::Deployer, Deploy, true),
        (Role::Deployer, Rollback, true),
        (Role::Deployer, Releases, true),
        (Role::Deployer, PostgresReadOnly, false),
        (Role::Monitor, Status, true),
        (Role::Monitor, Logs, true),
        (Role::Monitor, Certs, true),
        (Role::Monitor, PostgresReadOnly, true),
        (Role::Monitor, VolumesList, true),
        (Role::Monitor, HealthGet, true),
        (Role::Monitor, Deploy, false),
        (Role::Monitor, Rollback, false),
        (Role::Monitor, ScaleCount, false),
        (Role::Responder, Rollback, true),
        (Role::Responder, ScaleVm, true),
        (Role::Responder, Deploy, false),
        (Role::Responder, MachineRestart, false),
    ];
    for &(role, op, allowed) in rows {
        assert_eq!(role.allows(&roles, op), allowed, "{role:?} {op:?}");
    }
    for role in Role::ALL {
        for op in Operation::ALWAYS_DENIED {
            assert!(!role.allows(&roles, op), "{role:?} {op:?}");
        }
    }
}

#[test]
fn a_role_outside_its_allowlist_is_denied_with_the_role_in_the_rule() {
    let d = decide(
        &act(ActionKind::Deploy),
        Role::Monitor,
        &GovernancePolicySpec::default(),
        burn(100),
        ctx(true, true),
        now(),
    );
    assert_eq!(d.verdict, Verdict::Denied);
    assert_eq!(d.rule, "role.monitor.not-allowed");
}

#[test]
fn burn_in_counts_only_clean_successes() {
    let mut h = successes(3);
    h.push(past("bad", "img:bad", PastOutcome::RolledBack, 10));
    h.push(past("halted", "img:h", PastOutcome::Halted, 11));
    h.push(past("failed", "img:f", PastOutcome::Failed, 12));
    assert_eq!(count(&h, &BTreeSet::new()), 3);
    let caused: BTreeSet<String> = ["d1".to_owned()].into();
    assert_eq!(count(&h, &caused), 2);
}

#[test]
fn phases_follow_the_adr_thresholds() {
    let spec = BurnInSpec::default();
    for (counted, want) in [(0, 1), (9, 1), (10, 2), (49, 2), (50, 3), (1000, 3)] {
        assert_eq!(phase(counted, &spec), want, "after {counted} deploys");
    }
}

#[test]
fn a_deploy_undone_by_the_next_one_does_not_count() {
    let h = vec![
        past("a", "img:1", PastOutcome::Succeeded, 0),
        past("b", "img:2", PastOutcome::Succeeded, 1),
        past("c", "img:1", PastOutcome::Succeeded, 2),
    ];
    let prev = |id: &str| match id {
        "b" => Some("img:1".to_owned()),
        "c" => Some("img:2".to_owned()),
        _ => None,
    };
    let undone = reverted(&h, prev);
    assert_eq!(undone, ["b".to_owned()].into());
    assert_eq!(count(&h, &undone), 2);
}

fn window(kind: WindowKind, schedule: &str, hours: u64, tz: &str) -> FreezeWindow {
    FreezeWindow {
        kind,
        schedule: schedule.into(),
        duration: opsctl_crds::DurationStr::from_secs(hours * 3600),
        time_zone: tz.into(),
    }
}

#[test]
fn freeze_windows_hold_deploys_but_not_outage_rollbacks() {
    // Friday 18:00 Berlin for 64h: Friday 2026-03-20 17:00 UTC (CET) to Monday 09:00 UTC.
    let policy = GovernancePolicySpec {
        freeze_windows: vec![window(WindowKind::Deny, "0 18 * * 5", 64, "Europe/Berlin")],
        ..GovernancePolicySpec::default()
    };
    let at = |d, h, m| Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap();
    let deploy = |t| {
        decide(
            &act(ActionKind::Deploy),
            Role::Deployer,
            &policy,
            burn(60),
            ctx(true, true),
            t,
        )
    };
    assert_eq!(deploy(at(20, 16, 59)).verdict, Verdict::Auto);
    assert_eq!(deploy(at(20, 17, 0)).rule, "freeze.deny-window");
    assert_eq!(deploy(at(22, 12, 0)).verdict, Verdict::Gated);
    assert_eq!(deploy(at(23, 8, 59)).rule, "freeze.deny-window");
    assert_eq!(deploy(at(23, 9, 0)).verdict, Verdict::Auto);
    let outage = Context {
        outage: true,
        ..Context::default()
    };
    let rollback = decide(
        &act(ActionKind::Rollback),
        Role::Deployer,
        &policy,
        burn(0),
        outage,
        at(21, 3, 0),
    );
    assert_eq!(rollback.verdict, Verdict::Auto);
}

#[test]
fn allow_windows_admit_deploys_only_inside() {
    // Weekdays 09:00–17:00 New York.
    let policy = GovernancePolicySpec {
        freeze_windows: vec![window(
            WindowKind::Allow,
            "0 9 * * 1-5",
            8,
            "America/New_York",
        )],
        ..GovernancePolicySpec::default()
    };
    let at = |d, h| Utc.with_ymd_and_hms(2026, 3, d, h, 0, 0).unwrap();
    let deploy = |t| {
        decide(
            &act(ActionKind::Deploy),
            Role::Deployer,
            &policy,
            burn(60),
            ctx(true, true),
            t,
        )
    };
    // 2026-03-18 is a Wednesday; New York is UTC-4 (EDT) then.
    assert_eq!(deploy(at(18, 14)).verdict, Verdict::Auto);
    assert_eq!(deploy(at(18, 22)).rule, "freeze.outside-allow-windows");
    assert_eq!(deploy(at(21, 14)).rule, "freeze.outside-allow-windows");
}

#[test]
fn the_plan_hash_ignores_check_results_and_sees_machine_updates() {
    use crate::observed::{CheckResult, CheckState};
    let mut obs = crate::testkit::observed(vec![
        crate::testkit::machine("m1"),
        crate::testkit::machine("m2"),
    ]);
    let actions = vec![act(ActionKind::Deploy)];
    let h = plan_hash("rev-1", &obs, &actions);
    assert_eq!(h, plan_hash("rev-1", &obs, &actions), "stable");
    obs.machines[0].checks.push(CheckResult {
        name: "x".into(),
        state: CheckState::Critical,
        output: "down".into(),
    });
    obs.machines.reverse();
    assert_eq!(
        h,
        plan_hash("rev-1", &obs, &actions),
        "check results and order do not count"
    );
    obs.machines[0].version = "01NEWINSTANCE".into();
    assert_ne!(
        h,
        plan_hash("rev-1", &obs, &actions),
        "a machine update makes it stale"
    );
    let other = vec![Action::new(
        ActionKind::Deploy,
        "lowendinsight",
        "other image",
        0.0,
    )];
    assert_ne!(
        plan_hash(
            "rev-1",
            &crate::testkit::observed(vec![
                crate::testkit::machine("m1"),
                crate::testkit::machine("m2")
            ]),
            &other
        ),
        h
    );
    assert_ne!(
        plan_hash("rev-2", &obs, &actions),
        plan_hash("rev-1", &obs, &actions),
        "another desired state (an env value, a check) makes it stale"
    );
}

fn arb_outcome() -> impl Strategy<Value = PastOutcome> {
    prop_oneof![
        Just(PastOutcome::InProgress),
        Just(PastOutcome::Succeeded),
        Just(PastOutcome::Failed),
        Just(PastOutcome::RolledBack),
        Just(PastOutcome::RollbackFailed),
        Just(PastOutcome::Halted),
    ]
}

fn arb_history() -> impl Strategy<Value = Vec<PastDeploy>> {
    prop::collection::vec((arb_outcome(), any::<bool>(), 0u8..4), 0..80).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (outcome, failed, img))| PastDeploy {
                failed_health: failed,
                ..past(&format!("d{i}"), &format!("img:{img}"), outcome, i as i64)
            })
            .collect()
    })
}

fn arb_ctx() -> impl Strategy<Value = Context> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(ci_green, config_unchanged, known_runbook, outage, health_failure)| Context {
                ci_green,
                config_unchanged,
                known_runbook,
                outage,
                health_failure,
            },
        )
}

fn arb_kind() -> impl Strategy<Value = ActionKind> {
    prop_oneof![
        Just(ActionKind::Deploy),
        Just(ActionKind::Rollback),
        Just(ActionKind::Restart),
        Just(ActionKind::Scale),
        Just(ActionKind::Migration),
        Just(ActionKind::DestroyMachine),
        Just(ActionKind::IncidentClassification),
        Just(ActionKind::IncidentResponse),
        Just(ActionKind::MaintenanceCheck),
    ]
}

proptest! {
    /// No sequence of records moves a migration to auto, in any context, role or phase.
    #[test]
    fn no_history_makes_a_migration_automatic(h in arb_history(), c in arb_ctx(), minutes in 0i64..100_000) {
        let b = BurnIn::of(&h, &BTreeSet::new(), &BurnInSpec::default());
        for role in Role::ALL {
            let d = decide(&act(ActionKind::Migration), role, &GovernancePolicySpec::default(), b, c, now() + chrono::Duration::minutes(minutes));
            prop_assert_ne!(d.verdict, Verdict::Auto);
        }
    }

    /// A denied tool is denied in every phase, for every role and action kind.
    #[test]
    fn a_denied_tool_is_denied_in_every_phase(
        h in arb_history(), c in arb_ctx(), kind in arb_kind(),
        op in prop::sample::select(Operation::ALWAYS_DENIED.to_vec()),
    ) {
        let b = BurnIn::of(&h, &BTreeSet::new(), &BurnInSpec::default());
        let mut a = act(kind);
        a.operation = op;
        for role in Role::ALL {
            let d = decide(&a, role, &GovernancePolicySpec::default(), b, c, now());
            prop_assert_eq!(d.verdict, Verdict::Denied);
            prop_assert_eq!(d.rule.as_str(), "role.always-denied");
        }
    }

    /// The phase never goes up on rolled-back deploys, nor on deploys an incident was caused by.
    #[test]
    fn rolled_back_deploys_never_raise_the_phase(h in arb_history(), extra in 1usize..20, implicate in any::<prop::sample::Index>()) {
        let spec = BurnInSpec { phase2_from: 3, phase3_from: 6 };
        let before = BurnIn::of(&h, &BTreeSet::new(), &spec);
        let mut more = h.clone();
        for i in 0..extra {
            more.push(past(&format!("rb{i}"), "img:bad", PastOutcome::RolledBack, 1000 + i as i64));
        }
        let after = BurnIn::of(&more, &BTreeSet::new(), &spec);
        prop_assert!(after.phase <= before.phase && after.count == before.count);
        if !h.is_empty() {
            let blamed: BTreeSet<String> = [h[implicate.index(h.len())].id.clone()].into();
            let blamed_after = BurnIn::of(&h, &blamed, &spec);
            prop_assert!(blamed_after.phase <= before.phase);
        }
    }
}
