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

mod service_config {
    use super::*;
    use crate::machine_config::{self as mc, CheckKind, ServiceConfig};

    fn dur(s: &str) -> Option<opsctl_crds::DurationStr> {
        Some(s.parse().unwrap())
    }

    /// A manifest with one service, a top-level check and stop settings.
    fn configured_app() -> FlyApp {
        app(
            1,
            json!({
                "services": [{
                    "internalPort": 8080,
                    "ports": [{"port": 80, "handlers": ["http"], "forceHttps": true},
                              {"port": 443, "handlers": ["tls", "http"]}],
                    "concurrency": {"type": "connections", "softLimit": 20, "hardLimit": 25},
                    "checks": [{"type": "tcp", "interval": "15s", "timeout": "10s", "gracePeriod": "1s"}]
                }],
                "checks": {"readyz": {"type": "http", "port": 4000, "path": "/readyz", "interval": "15s", "timeout": "5s"}},
                "stop": {"signal": "SIGINT", "timeout": "5s"}
            }),
        )
    }

    /// The machine as Fly reports it after flyctl wrote the same config, with the spellings
    /// and additions of BUG-25: explicit defaults, other units, other order.
    fn observed_as_fly_has_it() -> ServiceConfig {
        let mut readyz = mc::Check {
            kind: CheckKind::Http,
            port: Some(4000),
            path: Some("/readyz".into()),
            method: Some("GET".into()),
            interval: dur("15000ms"),
            timeout: dur("5s"),
            grace_period: None,
        };
        readyz.method = Some("get".into());
        ServiceConfig {
            services: vec![mc::Service {
                internal_port: 8080,
                protocol: String::new(),
                ports: vec![
                    mc::Port {
                        port: 443,
                        end_port: None,
                        handlers: vec!["http".into(), "tls".into()],
                        force_https: false,
                    },
                    mc::Port {
                        port: 80,
                        end_port: None,
                        handlers: vec!["http".into()],
                        force_https: true,
                    },
                ],
                concurrency: Some(mc::Concurrency {
                    kind: String::new(),
                    soft_limit: Some(20),
                    hard_limit: Some(25),
                }),
                checks: vec![mc::Check {
                    kind: CheckKind::Tcp,
                    port: Some(8080),
                    path: None,
                    method: None,
                    interval: dur("15s"),
                    timeout: dur("10000ms"),
                    grace_period: dur("1s"),
                }],
            }],
            checks: [("readyz".to_owned(), readyz)].into_iter().collect(),
            stop: Some(mc::Stop {
                signal: Some("INT".into()),
                timeout: None,
            }),
        }
    }

    fn with(config: ServiceConfig) -> ObservedMachine {
        ObservedMachine {
            service_config: config,
            ..in_sync("m1")
        }
    }

    /// BUG-25 (shared/cases/README.md): the same config spelled differently is not drift.
    #[test]
    fn explicit_defaults_units_and_order_are_not_drift() {
        let d = diff(
            &configured_app(),
            &observed(vec![with(observed_as_fly_has_it())]),
        );
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn no_services_on_either_side_is_not_drift() {
        let d = diff(
            &app(1, json!({"services": [], "checks": {}})),
            &observed(vec![in_sync("m1")]),
        );
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn internal_port_change_is_one_services_change_and_updates_the_machine() {
        let a = configured_app();
        let mut a2 = a.clone();
        a2.spec.services[0].internal_port = 9090;
        let d = diff(&a2, &observed(vec![with(observed_as_fly_has_it())]));
        let [
            Change::Services {
                machine,
                summary,
                from,
                to,
                ..
            },
        ] = d.changes.as_slice()
        else {
            panic!("{d:#?}");
        };
        assert_eq!(machine, "m1");
        assert!(summary.contains("internal port 8080 → 9090"), "{summary}");
        assert_eq!((from[0].internal_port, to[0].internal_port), (8080, 9090));
        // The service check follows the internal port it defaults to.
        assert_eq!(to[0].checks[0].port, Some(9090));
        assert_eq!(
            d.machines_to_update().into_iter().collect::<Vec<_>>(),
            ["m1"]
        );
    }

    #[test]
    fn added_and_changed_top_level_checks() {
        let mut a = configured_app();
        a.spec.checks.get_mut("readyz").unwrap().timeout = dur("2s");
        a.spec.checks.insert(
            "alive".into(),
            serde_json::from_value(json!({"type": "tcp", "port": 8080})).unwrap(),
        );
        let d = diff(&a, &observed(vec![with(observed_as_fly_has_it())]));
        let summaries: Vec<&str> = d
            .changes
            .iter()
            .map(|c| match c {
                Change::Check { summary, .. } => summary.as_str(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(
            summaries,
            [
                "check alive: (none) → tcp :8080",
                "check readyz: timeout 5s → 2s"
            ]
        );
    }

    #[test]
    fn stop_signal_change() {
        let mut a = configured_app();
        a.spec.stop.as_mut().unwrap().signal = Some("SIGTERM".into());
        let d = diff(&a, &observed(vec![with(observed_as_fly_has_it())]));
        let [Change::Stop { summary, to, .. }] = d.changes.as_slice() else {
            panic!("{d:#?}");
        };
        assert_eq!(summary, "stop SIGINT, 5s → SIGTERM, 5s");
        assert_eq!(to.signal.as_deref(), Some("SIGTERM"));
        let json = serde_json::to_value(&d.changes[0]).unwrap();
        assert_eq!(json["kind"], "stop");
        assert_eq!(json["to"]["signal"], "SIGTERM");
        assert_eq!(json["to"]["timeout"], "5s");
    }

    #[test]
    fn services_of_other_groups_are_not_expected_here() {
        let a = app(
            1,
            json!({"services": [{"internalPort": 9000, "processes": ["worker"]}],
                   "processGroups": {"app": {"regions": {"iad": 1}, "vm": {"size": "shared-cpu-1x", "memoryMb": 1024}},
                                     "worker": {"regions": {}}}}),
        );
        let d = diff(&a, &observed(vec![in_sync("m1")]));
        assert!(d.is_empty(), "{d:#?}");
    }
}
