//! Writing services, checks and stop settings into a machine config, and the round trip
//! manifest → config written by an update → config observed back → `diff`: it must be empty
//! (case BUG-25: a config opsctl wrote itself is never drift).

use opsctl_controllers::diff::diff;
use opsctl_controllers::observed::ObservedApp;
use opsctl_crds::{FlyApp, FlyAppSpec, Metadata};
use serde_json::json;

use super::*;
use crate::fly::observe;

fn release() -> ReleaseRef {
    ReleaseRef {
        id: "rel".into(),
        version: 7,
    }
}

fn app_from(spec: Value) -> FlyApp {
    let spec: FlyAppSpec = serde_json::from_value(spec).expect("spec");
    FlyApp {
        metadata: Metadata {
            name: "web".into(),
            labels: Default::default(),
            annotations: Default::default(),
        },
        spec,
        file: "web.yaml".into(),
    }
}

/// The shipped manifest, with one machine in iad (the tests observe one).
fn shipped() -> FlyApp {
    let text = include_str!("../../../../manifests/lowendinsight.yaml");
    let mut app = opsctl_crds::load_str("manifests/lowendinsight.yaml".as_ref(), text)
        .expect("shipped manifest")
        .apps
        .remove(0);
    let group = app.spec.process_groups.get_mut("app").expect("group app");
    group.regions.insert("iad".into(), 1);
    app
}

/// LowEndInsight's machine config as the simulator has it (examples/sim/lowendinsight.yaml),
/// with keys Fly adds that the manifest cannot express.
fn lei_config() -> MachineConfig {
    serde_json::from_value(json!({
        "image": "registry.fly.io/lowendinsight:deployment-OLD",
        "init": {},
        "env": {"ERL_AFLAGS": "-proto_dist inet6_tcp", "PORT": "8080", "FLY_PROCESS_GROUP": "app", "PRIMARY_REGION": "iad"},
        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024},
        "metadata": {"fly_platform_version": "v2", "fly_process_group": "app", "fly_release_version": "109"},
        "services": [{
            "protocol": "tcp", "internal_port": 8080, "autostart": true, "autostop": false,
            "min_machines_running": 0,
            "ports": [{"port": 80, "handlers": ["http"], "force_https": true},
                      {"port": 443, "handlers": ["tls", "http"], "tls_options": {"alpn": ["h2", "http/1.1"]}}],
            "concurrency": {"type": "connections", "soft_limit": 20, "hard_limit": 25},
            "checks": [{"type": "tcp", "interval": "15s", "timeout": "10s", "grace_period": "1s"}]
        }],
        "stop_config": {"signal": "SIGINT", "timeout": "5s"},
        "restart": {"policy": "on-failure"}
    }))
    .expect("config")
}

fn observe_config(app: &FlyApp, cfg: &MachineConfig) -> ObservedApp {
    let machine: wire::Machine = serde_json::from_value(json!({
        "id": "m1", "state": "started", "region": "iad", "instance_id": "01A",
        "config": cfg,
    }))
    .expect("machine");
    ObservedApp {
        name: app.app_name().to_owned(),
        machines: vec![observe::machine(&machine)],
        releases: vec![],
    }
}

#[test]
fn the_shipped_manifest_rewrites_nothing_of_lowendinsights_config() {
    let app = shipped();
    let before = lei_config();
    let cfg = Desired::new(&app, "app", app.spec.image.clone(), &release()).apply(&before);
    assert_eq!(cfg.services, before.services, "same services, keys kept");
    assert_eq!(cfg.checks, before.checks);
    assert_eq!(cfg.extra["stop_config"], before.extra["stop_config"]);
    assert_eq!(cfg.extra["restart"], before.extra["restart"]);
    // And the simulator's config as it is shows only the image as drift.
    let d = diff(&app, &observe_config(&app, &before));
    assert!(
        d.changes
            .iter()
            .all(|c| matches!(c, opsctl_controllers::diff::Change::Image { .. })),
        "{d:#?}"
    );
    assert!(!d.is_empty());
}

#[test]
fn changes_are_written_and_unmanaged_keys_kept() {
    let mut app = shipped();
    app.spec.services[0].internal_port = 9090;
    app.spec.services[0]
        .concurrency
        .as_mut()
        .unwrap()
        .soft_limit = 15;
    app.spec.services[0].ports[0].force_https = false;
    app.spec.checks.insert(
        "readyz".into(),
        serde_json::from_value(json!({"type": "http", "port": 4000, "path": "/readyz", "interval": "15s", "timeout": "5s"}))
            .unwrap(),
    );
    app.spec.stop.as_mut().unwrap().signal = Some("SIGTERM".into());
    let cfg = Desired::new(&app, "app", app.spec.image.clone(), &release()).apply(&lei_config());
    let svc = &cfg.services[0];
    assert_eq!(svc["internal_port"], 9090);
    assert_eq!(
        svc["autostart"], true,
        "matched by position: unmanaged keys kept"
    );
    assert_eq!(svc["min_machines_running"], 0);
    assert_eq!(svc["concurrency"]["soft_limit"], 15);
    assert_eq!(svc["ports"][0].get("force_https"), None);
    assert_eq!(svc["ports"][1]["tls_options"]["alpn"][0], "h2");
    assert_eq!(svc["ports"][1]["handlers"], json!(["tls", "http"]));
    assert_eq!(svc["checks"][0]["timeout"], "10s");
    assert_eq!(
        cfg.checks["readyz"],
        json!({"type": "http", "port": 4000, "path": "/readyz", "interval": "15s", "timeout": "5s"})
    );
    assert_eq!(
        cfg.extra["stop_config"],
        json!({"signal": "SIGTERM", "timeout": "5s"})
    );
    assert!(diff(&app, &observe_config(&app, &cfg)).is_empty());
}

#[test]
fn what_the_manifest_leaves_out_is_removed() {
    let mut app = shipped();
    app.spec.services.clear();
    app.spec.stop = None;
    let cfg = Desired::new(&app, "app", app.spec.image.clone(), &release()).apply(&lei_config());
    assert!(cfg.services.is_empty());
    assert!(cfg.extra.get("stop_config").is_none());
    let text = serde_json::to_value(&cfg).unwrap();
    assert!(text.get("services").is_none(), "{text}");
    assert!(diff(&app, &observe_config(&app, &cfg)).is_empty());
}

#[test]
fn a_check_kind_and_headers_survive_on_the_same_name() {
    let mut before = lei_config();
    before.checks.insert(
        "readyz".into(),
        json!({"type": "http", "port": 4000, "path": "/old", "kind": "readiness",
               "headers": [{"name": "Host", "values": ["x"]}]}),
    );
    let mut app = shipped();
    app.spec.checks.insert(
        "readyz".into(),
        serde_json::from_value(json!({"type": "http", "port": 4000, "path": "/readyz"})).unwrap(),
    );
    let cfg = Desired::new(&app, "app", app.spec.image.clone(), &release()).apply(&before);
    assert_eq!(cfg.checks["readyz"]["path"], "/readyz");
    assert_eq!(cfg.checks["readyz"]["kind"], "readiness");
    assert_eq!(cfg.checks["readyz"]["headers"][0]["name"], "Host");
}

/// A small deterministic generator (no extra dependency): SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self) -> bool {
        self.next().is_multiple_of(2)
    }
}

fn random_check(rng: &mut Rng, top_level: bool) -> Value {
    let durations = ["500ms", "1s", "15s", "1m", "1h30m", "90s"];
    let mut c = json!({"type": rng.pick(&["tcp", "http"])});
    if top_level || rng.chance() {
        c["port"] = json!(rng.pick(&[4000, 8080, 9090]));
    }
    if c["type"] == "http" {
        if rng.chance() {
            c["path"] = json!(rng.pick(&["/", "/readyz", "/healthz"]));
        }
        if rng.chance() {
            c["method"] = json!(rng.pick(&["GET", "get", "POST", "head"]));
        }
    }
    for key in ["interval", "timeout", "gracePeriod"] {
        if rng.chance() {
            c[key] = json!(rng.pick(&durations));
        }
    }
    c
}

fn random_spec(rng: &mut Rng) -> Value {
    let mut services = Vec::new();
    for _ in 0..rng.below(3) {
        let mut ports = Vec::new();
        let mut numbers = vec![80, 443, 8443, 5000];
        for _ in 0..rng.below(4) {
            let port = numbers.remove(rng.below(numbers.len()));
            let mut handlers: Vec<&str> = ["http", "tls", "proxy_proto"]
                .into_iter()
                .filter(|_| rng.chance())
                .collect();
            if rng.chance() {
                handlers.reverse();
            }
            ports.push(json!({"port": port, "handlers": handlers, "forceHttps": rng.chance()}));
        }
        let mut svc = json!({
            "protocol": rng.pick(&["tcp", "udp"]),
            "internalPort": rng.pick(&[8080, 9090, 4000, 3000]),
            "ports": ports,
            "checks": (0..rng.below(3)).map(|_| random_check(rng, false)).collect::<Vec<_>>(),
            "processes": *rng.pick(&[&[][..], &["app"][..], &["worker"][..], &["app", "worker"][..]]),
        });
        if rng.chance() {
            let soft = 1 + rng.below(50) as u32;
            svc["concurrency"] = json!({"type": rng.pick(&["connections", "requests"]),
                                         "softLimit": soft, "hardLimit": soft + rng.below(50) as u32});
        }
        services.push(svc);
    }
    let checks: serde_json::Map<String, Value> = (0..rng.below(3))
        .map(|i| (format!("check{i}"), random_check(rng, true)))
        .collect();
    let mut spec = json!({
        "image": "registry.fly.io/web:v2",
        "env": {"PORT": "8080"},
        "processGroups": {"app": {"regions": {"iad": 1}, "vm": {"size": "shared-cpu-1x"}},
                          "worker": {"regions": {"iad": 0}}},
        "services": services,
        "checks": checks,
    });
    match rng.below(4) {
        0 => {}
        1 => spec["stop"] = json!({}),
        2 => spec["stop"] = json!({"signal": rng.pick(&["SIGTERM", "SIGINT", "SIGUSR1"])}),
        _ => spec["stop"] = json!({"signal": "SIGTERM", "timeout": rng.pick(&["30s", "5s", "1m"])}),
    }
    spec
}

/// The property: whatever the manifest says and whatever the machine had before, the config
/// an update writes reads back as in sync. 500 generated manifests × 3 starting configs.
#[test]
fn round_trip_is_in_sync_for_generated_manifests() {
    let bases = [
        MachineConfig {
            image: "registry.fly.io/web:v1".into(),
            ..MachineConfig::default()
        },
        lei_config(),
        serde_json::from_value(json!({
            "image": "registry.fly.io/web:v1",
            "services": [{"protocol": "udp", "internal_port": 53, "ports": null, "checks": [{"type": "weird"}]},
                         {"internal_port": 9090, "autostop": "suspend", "concurrency": null}],
            "checks": {"check0": {"type": "tcp", "port": 1, "kind": "readiness"}, "stale": {"type": "tcp", "port": 2}},
            "stop_config": {"signal": 15, "timeout": 30_000_000_000_u64}
        }))
        .expect("odd base"),
    ];
    let mut rng = Rng(0x09c7_1e57);
    for case in 0..500 {
        let spec = random_spec(&mut rng);
        let app = app_from(spec.clone());
        for (b, base) in bases.iter().enumerate() {
            let cfg = Desired::new(&app, "app", app.spec.image.clone(), &release()).apply(base);
            // Through JSON, as the simulator or Fly would store and return it.
            let cfg: MachineConfig =
                serde_json::from_value(serde_json::to_value(&cfg).unwrap()).unwrap();
            let d = diff(&app, &observe_config(&app, &cfg));
            assert!(d.is_empty(), "case {case}, base {b}: {spec:#}\n{d:#?}");
        }
    }
}
