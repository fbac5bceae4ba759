//! Governance at run time against the in-process simulator with a manual clock: a gated plan
//! waits, then expires into an escalation after the policy's timeout, never into an action; a
//! Fly call refused by the role allowlist leaves an escalation record.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use opsctl_crds::load_str;

use super::{Governed, governed_deploy};
use crate::fly::{Endpoints, FlyClient};
use crate::records::{RecordKind, RecordStore, Trigger};
use crate::runtime::clock::Clock;
use crate::runtime::deploy::Deployer;
use crate::secret::Secret;
use crate::sim;

struct ManualClock(Mutex<DateTime<Utc>>);

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

const POLICY: &str = "
---
apiVersion: opsctl.dev/v1alpha1
kind: GovernancePolicy
metadata: {name: p}
spec: {approvalTimeout: 1h}
";

#[tokio::test]
async fn a_pending_approval_expires_into_an_escalation_never_an_action() {
    let handle = sim::serve(
        sim::scenario::Scenario::lowendinsight_default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let client = FlyClient::new(Endpoints::origin(&handle.base_url()), Secret::new("t")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordStore::open_write(dir.path()).unwrap());
    let t0 = Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(t0)));
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let deployer = Deployer::new(client, store.clone(), clock.clone(), stop);
    let manifest = include_str!("../../manifests/lowendinsight.yaml").replace(
        "image: registry.fly.io/lowendinsight:deployment-",
        "image: registry.fly.io/lowendinsight:deployment-GOVTEST-",
    );
    let set = load_str("m.yaml".as_ref(), &format!("{manifest}{POLICY}")).unwrap();
    let app = &set.apps[0];
    let updates = || {
        handle
            .state()
            .request_counts()
            .endpoints
            .get("POST /v1/apps/{app}/machines/{id}")
            .copied()
            .unwrap_or(0)
    };

    let first = governed_deploy(&deployer, &set, app, Trigger::Reconcile, None)
        .await
        .unwrap();
    let Governed::Waiting {
        approval,
        created: true,
        rule,
        ..
    } = first
    else {
        panic!("{first:?}");
    };
    assert_eq!(rule, "gate.deploy.phase1.gated");
    *clock.0.lock().unwrap() = t0 + chrono::Duration::minutes(59);
    let again = governed_deploy(&deployer, &set, app, Trigger::Reconcile, None)
        .await
        .unwrap();
    assert!(
        matches!(again, Governed::Waiting { created: false, .. }),
        "{again:?}"
    );

    *clock.0.lock().unwrap() = t0 + chrono::Duration::minutes(61);
    let expired = governed_deploy(&deployer, &set, app, Trigger::Reconcile, None)
        .await
        .unwrap();
    let Governed::Expired {
        approval: a,
        escalation: Some(esc),
    } = expired
    else {
        panic!("{expired:?}");
    };
    assert_eq!(a, approval);
    let escalations = store.records(|r| r.kind == RecordKind::Escalation).unwrap();
    assert_eq!(escalations.len(), 1);
    assert_eq!(escalations[0].id, esc);
    // Later passes neither act nor ask again for the same plan.
    *clock.0.lock().unwrap() = t0 + chrono::Duration::hours(30);
    let later = governed_deploy(&deployer, &set, app, Trigger::Reconcile, None)
        .await
        .unwrap();
    assert!(
        matches!(
            later,
            Governed::Expired {
                escalation: None,
                ..
            }
        ),
        "{later:?}"
    );
    assert_eq!(updates(), 0, "no machine was touched");
    assert!(store.deploys(None).unwrap().is_empty(), "no deploy record");
}

/// A Fly call refused by the role allowlist leaves an escalation record naming the role,
/// operation and path (issue #5: "a denied call is an error and a record").
#[tokio::test]
async fn a_refused_fly_call_leaves_an_escalation_record() {
    use crate::fly::RoleGuard;
    use opsctl_controllers::governance::Role;
    use opsctl_crds::kinds::governance::RolesSpec;

    let handle = sim::serve(
        sim::scenario::Scenario::lowendinsight_default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordStore::open_write(dir.path()).unwrap());
    let clock = Arc::new(ManualClock(Mutex::new(
        Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap(),
    )));
    let client = FlyClient::new(Endpoints::origin(&handle.base_url()), Secret::new("t"))
        .unwrap()
        .with_role(
            RoleGuard::new(Role::Monitor, RolesSpec::default())
                .with_hook(super::approvals::denial_recorder(store.clone(), clock)),
        );
    let e = client
        .create_release("lowendinsight", "img", "rolling")
        .await
        .unwrap_err();
    assert_eq!(e.kind, crate::fly::FlyErrorKind::Denied);
    let recs = store.records(|r| r.kind == RecordKind::Escalation).unwrap();
    assert_eq!(recs.len(), 1);
    assert!(
        recs[0].labels.contains(&"denied-call".to_owned()),
        "{:?}",
        recs[0]
    );
    assert_eq!(recs[0].data["role"], "monitor");
    assert_eq!(recs[0].data["operation"], "deploy");
    assert_eq!(recs[0].data["path"], "/graphql");
}

/// The shipped manifest with a new image, `extra` manifests appended, against a fresh
/// simulator; the first pass's result and the number of machine updates Fly received.
async fn first_pass(strategy: &str, extra: &str) -> (Governed, u64) {
    let handle = sim::serve(
        sim::scenario::Scenario::lowendinsight_default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .unwrap();
    let client = FlyClient::new(Endpoints::origin(&handle.base_url()), Secret::new("t")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordStore::open_write(dir.path()).unwrap());
    let clock = Arc::new(ManualClock(Mutex::new(
        Utc.with_ymd_and_hms(2026, 3, 20, 18, 30, 0).unwrap(),
    )));
    let (_tx, stop) = tokio::sync::watch::channel(false);
    let deployer = Deployer::new(client, store, clock, stop);
    let manifest = include_str!("../../manifests/lowendinsight.yaml")
        .replace(
            "image: registry.fly.io/lowendinsight:deployment-",
            "image: registry.fly.io/lowendinsight:deployment-GOVTEST-",
        )
        .replace("strategy: rolling", &format!("strategy: {strategy}"));
    let set = load_str("m.yaml".as_ref(), &format!("{manifest}{extra}")).unwrap();
    let governed = governed_deploy(&deployer, &set, &set.apps[0], Trigger::Reconcile, None)
        .await
        .unwrap();
    let updates = handle
        .state()
        .request_counts()
        .endpoints
        .get("POST /v1/apps/{app}/machines/{id}")
        .copied()
        .unwrap_or(0);
    (governed, updates)
}

/// Inside a deny window a deploy waits, even one the gates make automatic.
#[tokio::test]
async fn a_freeze_window_holds_an_automatic_deploy() {
    let policy = "
---
apiVersion: opsctl.dev/v1alpha1
kind: GovernancePolicy
metadata: {name: p}
spec:
  gates: {deploy: {phase1: auto, phase2: auto, phase3: auto}}
  freezeWindows: [{kind: deny, schedule: \"0 18 * * 5\", duration: 64h, timeZone: UTC}]
";
    let (governed, updates) = first_pass("rolling", policy).await;
    let Governed::Waiting { rule, .. } = &governed else {
        panic!("{governed:?}");
    };
    assert_eq!(rule, "freeze.deny-window");
    assert_eq!(updates, 0);
}

/// An action over its budget cap is denied: a canary's temporary machine costs more than a
/// $0 deploy budget.
#[tokio::test]
async fn an_action_over_its_budget_is_denied() {
    let policy = "
---
apiVersion: opsctl.dev/v1alpha1
kind: GovernancePolicy
metadata: {name: p}
spec:
  gates: {deploy: {phase1: auto, phase2: auto, phase3: auto}}
  budgets: {deployUsd: 0}
";
    let (governed, updates) = first_pass("canary", policy).await;
    let Governed::Denied { rule, .. } = &governed else {
        panic!("{governed:?}");
    };
    assert_eq!(rule, "budget.deploy.over-cap");
    assert_eq!(updates, 0);
}
