//! Services, checks and stop settings are deployed, not only validated (the user-found defect:
//! changing `internalPort`, adding `spec.checks.readyz` or changing `stop.signal` left
//! `opsctl diff` in sync and `opsctl apply` changed nothing). The real binary against
//! `opsctl sim serve` running LowEndInsight; regression for case BUG-25 too (the shipped
//! manifest against the simulator's config differs only in the image).

mod common;

use common::{M1, M2, NEW, OLD, Sim, Workspace, text};
use serde_json::Value;

/// The shipped manifest with `image`, without its probe of the real lowendinsight.fly.dev (a
/// test must not depend on the internet), then `edit` applied to its text.
fn workspace(image: &str, edit: impl Fn(String) -> String) -> Workspace {
    let ws = Workspace::new(image);
    let path = ws.manifests().join("lowendinsight.yaml");
    // `Workspace::new` already left out the shipped probe of the real site.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains("lowendinsight.fly.dev/"),
        "no probe of the real site in tests"
    );
    let edited = edit(text.clone());
    std::fs::write(&path, edited).unwrap();
    ws
}

fn replace_once(text: String, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "exactly one `{from}`");
    text.replace(from, to)
}

fn diff_json(ws: &Workspace, sim: &Sim) -> (Option<i32>, Value) {
    let out = ws
        .opsctl(sim)
        .args(["diff", "-o", "json"])
        .output()
        .unwrap();
    let json =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    (out.status.code(), json)
}

fn changes(json: &Value) -> Vec<Value> {
    json["apps"][0]["changes"].as_array().unwrap().clone()
}

fn machine_configs(sim: &Sim) -> Vec<(String, Value)> {
    let machines = sim.get("/v1/apps/lowendinsight/machines");
    let mut v: Vec<(String, Value)> = machines
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m["config"].clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// BUG-25: the shipped manifest and the config flyctl built from LowEndInsight's fly.toml
/// agree; the only drift is the image.
#[test]
fn shipped_manifest_against_the_simulator_shows_only_the_image() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    let (code, json) = diff_json(&ws, &sim);
    assert_eq!(code, Some(2));
    let kinds: Vec<&str> = changes(&json)
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_owned())
        .map(|k| if k == "image" { "image" } else { "other" })
        .collect();
    assert_eq!(kinds, ["image", "image"], "{json:#}");
}

#[test]
fn port_check_and_stop_changes_are_shown_then_rolled_out() {
    let sim = Sim::start();
    let ws = workspace(OLD, |t| {
        let t = replace_once(t, "internalPort: 8080", "internalPort: 9090");
        let t = replace_once(
            t,
            "  stop: {signal: SIGINT, timeout: 5s}\n",
            "  stop: {signal: SIGTERM, timeout: 5s}\n  checks:\n    alive: {type: tcp, port: 9090, interval: 10s, timeout: 2s}\n",
        );
        replace_once(t, "PORT: \"8080\"", "PORT: \"9090\"")
    });

    // Before: in sync on the image (OLD), drift on the config of both machines.
    let (code, json) = diff_json(&ws, &sim);
    assert_eq!(code, Some(2), "{json:#}");
    let cs = changes(&json);
    for m in [M1, M2] {
        let of = |kind: &str| {
            cs.iter()
                .find(|c| c["machine"] == m && c["kind"] == kind)
                .unwrap_or_else(|| panic!("{kind} change on {m}: {json:#}"))
                .clone()
        };
        let services = of("services");
        assert_eq!(services["from"][0]["internal_port"], 8080);
        assert_eq!(services["to"][0]["internal_port"], 9090);
        assert!(
            services["summary"]
                .as_str()
                .unwrap()
                .contains("internal port 8080 → 9090"),
            "{services}"
        );
        let check = of("check");
        assert_eq!(check["name"], "alive");
        assert!(check["from"].is_null());
        assert_eq!(check["to"]["timeout"], "2s");
        let stop = of("stop");
        assert_eq!(
            (
                stop["from"]["signal"].as_str(),
                stop["to"]["signal"].as_str()
            ),
            (Some("SIGINT"), Some("SIGTERM"))
        );
    }
    assert!(
        cs.iter().all(|c| c["kind"] != "image"),
        "the image is in sync: {json:#}"
    );
    let out = ws.opsctl(&sim).arg("diff").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("internal port 8080 → 9090"),
        "{}",
        text(&out)
    );

    // Apply rolls the config out through the normal rollout and health check.
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("succeeded"), "{}", text(&out));
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        2,
        "one update per machine: {}",
        sim.requests()
    );
    for (id, config) in machine_configs(&sim) {
        assert_eq!(config["image"], OLD, "{id}");
        let svc = &config["services"][0];
        assert_eq!(svc["internal_port"], 9090, "{id}: {config:#}");
        assert_eq!(svc["ports"][0]["port"], 80, "{id}");
        assert_eq!(svc["concurrency"]["soft_limit"], 20, "{id}");
        assert_eq!(
            config["checks"]["alive"],
            serde_json::json!({"type": "tcp", "port": 9090, "interval": "10s", "timeout": "2s"}),
            "{id}"
        );
        assert_eq!(config["stop_config"]["signal"], "SIGTERM", "{id}");
        assert_eq!(config["stop_config"]["timeout"], "5s", "{id}");
        assert_eq!(config["env"]["PORT"], "9090", "{id}");
        assert_eq!(config["restart"]["policy"], "on-failure", "{id}: kept");
    }
    // Fly ran the new checks: the service check on the new port and `alive`.
    let machine = sim.get(&format!("/v1/apps/lowendinsight/machines/{M1}"));
    let names: Vec<&str> = machine["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"servicecheck-00-tcp-9090") && names.contains(&"alive"),
        "{names:?}"
    );

    let out = ws.opsctl(&sim).arg("diff").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("lowendinsight: in sync"));

    let out = ws
        .opsctl(&sim)
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rec = &history["deploys"][0];
    assert_eq!(rec["status"], "succeeded", "{rec:#}");
    assert_eq!(rec["machines"].as_array().unwrap().len(), 2);
}

/// `health.machineChecks: ignore`: a release whose checks go critical still deploys (the
/// smoke check decides), where `all-passing` rolls it back.
#[test]
fn machine_checks_ignore_deploys_despite_critical_checks() {
    let sim = Sim::start();
    let ws = workspace(common::BAD, |t| {
        replace_once(t, "machineChecks: all-passing", "machineChecks: ignore")
    });
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        sim.images(),
        vec![
            (M1.into(), common::BAD.into()),
            (M2.into(), common::BAD.into())
        ]
    );
}
