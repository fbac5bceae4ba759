use serde_json::json;

use super::*;
use crate::observed::MachineState;
use crate::testkit::{NEW, OLD, app, machine, observed};

fn in_sync(id: &str) -> ObservedMachine {
    ObservedMachine {
        image: NEW.into(),
        ..machine(id)
    }
}

#[test]
fn no_drift_when_nothing_changed() {
    let d = diff(
        &app(2, json!({})),
        &observed(vec![in_sync("m1"), in_sync("m2")]),
    );
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn platform_env_and_metadata_are_not_drift() {
    let mut m = in_sync("m1");
    m.env.insert("FLY_PROCESS_GROUP".into(), "app".into());
    m.env.insert("PRIMARY_REGION".into(), "iad".into());
    m.env.insert("FLY_APP_NAME".into(), "lowendinsight".into());
    let d = diff(&app(1, json!({})), &observed(vec![m]));
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn image_drift_on_every_machine() {
    let d = diff(
        &app(2, json!({})),
        &observed(vec![machine("m2"), machine("m1")]),
    );
    let images: Vec<_> = d
        .changes
        .iter()
        .map(|c| match c {
            Change::Image {
                machine, from, to, ..
            } => (machine.as_str(), from.as_str(), to.as_str()),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(images, vec![("m1", OLD, NEW), ("m2", OLD, NEW)]);
    assert_eq!(
        d.machines_to_update().into_iter().collect::<Vec<_>>(),
        vec!["m1", "m2"]
    );
}

#[test]
fn env_changes_both_ways() {
    let mut m = in_sync("m1");
    m.env.insert("OLD_FLAG".into(), "1".into());
    let d = diff(
        &app(1, json!({"env": {"PORT": "9090"}})),
        &observed(vec![m]),
    );
    assert_eq!(
        d.changes,
        vec![
            Change::Env {
                machine: "m1".into(),
                group: "app".into(),
                key: "OLD_FLAG".into(),
                from: Some("1".into()),
                to: None
            },
            Change::Env {
                machine: "m1".into(),
                group: "app".into(),
                key: "PORT".into(),
                from: Some("8080".into()),
                to: Some("9090".into())
            },
        ]
    );
}

#[test]
fn count_and_undeclared_groups_are_reported() {
    let mut worker = in_sync("m9");
    worker.group = "worker".into();
    let d = diff(&app(3, json!({})), &observed(vec![in_sync("m1"), worker]));
    assert!(d.changes.contains(&Change::Count {
        group: "app".into(),
        region: "iad".into(),
        observed: 1,
        desired: 3
    }));
    assert!(d.changes.contains(&Change::UndeclaredGroup {
        group: "worker".into(),
        machines: vec!["m9".into()]
    }));
    assert!(
        d.machines_to_update().is_empty(),
        "count drift updates no machine config"
    );
}

#[test]
fn unmanaged_and_destroyed_machines_are_ignored() {
    let unmanaged = ObservedMachine {
        managed: false,
        ..machine("m8")
    };
    let destroyed = ObservedMachine {
        state: MachineState::Destroyed,
        ..machine("m7")
    };
    let d = diff(
        &app(1, json!({})),
        &observed(vec![in_sync("m1"), unmanaged, destroyed]),
    );
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn size_drift() {
    let mut m = in_sync("m1");
    m.guest = GuestSize::from_preset("shared-cpu-1x", None);
    let d = diff(&app(1, json!({})), &observed(vec![m]));
    assert!(matches!(d.changes.as_slice(), [Change::Size { to, .. }] if to.memory_mb == 1024));
}

#[test]
fn diff_of_identical_state_is_empty_for_any_machine_count() {
    for n in 0..6u32 {
        let machines = (0..n).map(|i| in_sync(&format!("m{i}"))).collect();
        assert!(
            diff(&app(n, json!({})), &observed(machines)).is_empty(),
            "n={n}"
        );
    }
}

/// BUG-08 (shared/cases/README.md): mixed images are reported as such, and only the machine
/// that lags behind the manifest is converged.
#[test]
fn mixed_images_are_reported_and_converged_forward() {
    let d = diff(
        &app(3, json!({})),
        &observed(vec![machine("m1"), in_sync("m2"), in_sync("m3")]),
    );
    let expected: BTreeMap<String, Vec<String>> = [
        (OLD.to_owned(), vec!["m1".to_owned()]),
        (NEW.to_owned(), vec!["m2".to_owned(), "m3".to_owned()]),
    ]
    .into_iter()
    .collect();
    assert!(
        d.changes.contains(&Change::MixedImages {
            group: "app".into(),
            images: expected
        }),
        "{d:?}"
    );
    assert_eq!(
        d.machines_to_update().into_iter().collect::<Vec<_>>(),
        vec!["m1"]
    );
}
