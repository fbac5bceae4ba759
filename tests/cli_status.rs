//! `opsctl status` shows what the maintenance pipeline found (issue #6): the last result per
//! check with its age, each certificate's days left and next check, the SLOs' budget and burn
//! rates (computed from the probe samples when `status` runs), and the app's open incidents.
//! The state is laid down here as `opsctl run` writes it, through the library.

mod common;

use std::process::Output;

use chrono::{DateTime, TimeDelta, Utc};
use opsctl::maintenance::certs::{CertHostStatus, state_path};
use opsctl::maintenance::slo::SampleStore;
use opsctl::maintenance::{AppResult, MaintenanceStatus};
use opsctl::records::{Record, RecordKind, RecordStore};
use opsctl_controllers::certs::{FlyCertObservation, HandshakeObservation, TlsVerdict, assess};
use opsctl_controllers::maintenance::Status;
use opsctl_controllers::slo::Sample;
use opsctl_crds::kinds::CertWindowSpec;
use opsctl_crds::kinds::maintenance::CheckName;

const APP: &str = "lowendinsight";
const HOST: &str = "soon.example.com";

fn status(ws: &common::Workspace, json: bool) -> Output {
    let mut c = common::opsctl();
    c.arg("--manifests")
        .arg(ws.manifests())
        .arg("--state")
        .arg(ws.state())
        .arg("status");
    if json {
        c.args(["-o", "json"]);
    }
    c.output().unwrap()
}

fn workspace() -> common::Workspace {
    let ws = common::Workspace::new(common::OLD);
    std::fs::write(
        ws.manifests().join("watch.yaml"),
        format!(
            "apiVersion: opsctl.dev/v1alpha1
kind: CertWindow
metadata: {{name: {APP}}}
spec:
  hostnames: [{HOST}]
---
apiVersion: opsctl.dev/v1alpha1
kind: HealthSLO
metadata: {{name: {APP}-home}}
spec:
  app: {APP}
  availability: 99%
  minSamples: 5
"
        ),
    )
    .unwrap();
    ws
}

/// What `opsctl run` would have written: a Redis alert two minutes ago, a certificate with 13
/// days left, 200 probe samples a minute apart with one failure 100 minutes ago, an open and a
/// closed incident.
fn lay_down_state(ws: &common::Workspace, now: DateTime<Utc>) {
    let state = ws.state();
    let mut m = MaintenanceStatus {
        updated_at: now,
        ..MaintenanceStatus::default()
    };
    m.entry(CheckName::Redis).results = vec![AppResult {
        app: APP.into(),
        status: Status::Alert,
        summary: "Redis refused the connection".into(),
        signals: vec![format!("{APP}/redis_down/-/refused")],
        at: now - TimeDelta::minutes(2),
    }];
    m.entry(CheckName::MachineStatus).results = vec![AppResult {
        app: "another-app".into(),
        status: Status::Ok,
        summary: "not this app".into(),
        signals: vec![],
        at: now,
    }];
    m.save(&state).unwrap();

    let checked = now - TimeDelta::hours(1);
    let last = assess(
        APP,
        HOST,
        &CertWindowSpec::default(),
        FlyCertObservation::Missing,
        HandshakeObservation::Seen {
            not_after: checked + TimeDelta::days(13) + TimeDelta::hours(2),
            verdict: TlsVerdict::Trusted,
        },
        checked,
    );
    let hosts = vec![CertHostStatus {
        last,
        next_check_at: checked + TimeDelta::days(1),
    }];
    let path = state_path(&state);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_vec(&hosts).unwrap()).unwrap();

    let samples = SampleStore::new(&state);
    for i in (0..200).rev() {
        let at = now - TimeDelta::minutes(i);
        let s = Sample {
            at,
            ok: i != 100,
            latency_ms: 40,
        };
        samples.append(APP, s, now).unwrap();
    }

    let store = RecordStore::open_write(&state).unwrap();
    let mut open = Record::new(
        RecordKind::Incident,
        "redis down",
        now - TimeDelta::hours(3),
    );
    open.app = Some(APP.into());
    open.data = serde_json::json!({"classification": "dependency_down", "severity": "major"});
    store.append_record(&open).unwrap();
    let mut closed = Record::new(RecordKind::Incident, "old outage", now - TimeDelta::days(2));
    closed.app = Some(APP.into());
    closed.data = serde_json::json!({"classification": "app_crash", "severity": "critical"});
    closed.close("resolved", now - TimeDelta::days(1));
    store.append_record(&closed).unwrap();
}

#[test]
fn status_shows_maintenance_certificates_slos_and_incidents() {
    let ws = workspace();
    let now = Utc::now();
    lay_down_state(&ws, now);

    let out = status(&ws, true);
    assert!(out.status.success(), "{}", common::text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let app = &v["apps"][0];
    assert_eq!(app["app"], APP);

    let checks = app["maintenance"]["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 1, "only this app's results: {checks:?}");
    assert_eq!(checks[0]["check"], "redis");
    assert_eq!(checks[0]["status"], "alert");
    let age = checks[0]["age_seconds"].as_i64().unwrap();
    assert!((120..180).contains(&age), "two minutes old: {age}");

    let hosts = app["certificates"]["hostnames"].as_array().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0]["hostname"], HOST);
    assert_eq!(hosts[0]["days_left"], 13);
    assert_eq!(hosts[0]["status"], "alert");
    let findings = hosts[0]["findings"].as_array().unwrap();
    assert!(findings.contains(&"expiring".into()), "{findings:?}");
    assert!(findings.contains(&"missing".into()), "{findings:?}");
    assert!(hosts[0]["next_check_at"].is_string());

    let slos = app["slo"]["slos"].as_array().unwrap();
    assert_eq!(slos.len(), 1);
    assert_eq!(slos[0]["slo"], "lowendinsight-home");
    let avail = &slos[0]["objectives"][0];
    assert_eq!(avail["sli"], "availability");
    assert_eq!(avail["period_samples"], 200);
    assert_eq!(avail["period_bad"], 1);
    // 1 bad of 200 against a 1 % budget: half of it is left.
    let budget = avail["budget_remaining"].as_f64().unwrap();
    assert!((budget - 0.5).abs() < 1e-9, "{budget}");
    let rates = avail["burn_rates"].as_array().unwrap();
    let by_window = |secs: u64| {
        rates
            .iter()
            .find(|w| w["window_secs"] == secs)
            .unwrap_or_else(|| panic!("window {secs}: {rates:?}"))["burn_rate"]
            .as_f64()
    };
    assert_eq!(by_window(300), Some(0.0), "the last 5 minutes are clean");
    let day = by_window(86_400).unwrap();
    assert!(
        (day - 0.5).abs() < 1e-9,
        "1 of 200 over a day at 1 %: {day}"
    );
    assert!(slos[0]["firing"].as_array().unwrap().is_empty());

    let open = app["incidents"]["open"].as_array().unwrap();
    assert_eq!(open.len(), 1, "the closed one is left out: {open:?}");
    assert_eq!(open[0]["classification"], "dependency_down");
    assert_eq!(open[0]["severity"], "major");
    let age = open[0]["age_seconds"].as_i64().unwrap();
    assert!((3 * 3600..3 * 3600 + 60).contains(&age), "{age}");

    let out = status(&ws, false);
    assert!(out.status.success(), "{}", common::text(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "  maintenance:",
        "redis",
        "ago  Redis refused the connection",
        "  certificates:",
        HOST,
        "13 days left",
        "next check",
        "  slo:",
        "lowendinsight-home availability 99.00%: 50.0% of budget left, 1 of 200 samples bad",
        "5m 0.0×",
        "  incidents:",
        "dependency_down",
        "major",
        "open for 3h0m",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    assert!(!text.contains("old outage"), "{text}");
}

#[test]
fn status_before_the_first_maintenance_run_says_so() {
    let ws = workspace();
    let out = status(&ws, true);
    assert!(out.status.success(), "{}", common::text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let app = &v["apps"][0];
    assert_eq!(app["maintenance"]["updated_at"], serde_json::Value::Null);
    assert_eq!(app["certificates"]["hostnames"], serde_json::json!([]));
    let avail = &app["slo"]["slos"][0]["objectives"][0];
    assert_eq!(avail["period_samples"], 0);
    assert_eq!(avail["budget_remaining"], serde_json::Value::Null);
    assert_eq!(app["incidents"]["open"], serde_json::json!([]));
    let out = status(&ws, false);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("no maintenance status yet"), "{text}");
    assert!(text.contains("not checked yet"), "{text}");
    assert!(text.contains("no open incident"), "{text}");
}

/// What `opsctl status` shows is also on `/metrics` at scrape time: check results, certificate
/// expiry in seconds, SLO burn rates per window and the budget left, open incidents.
#[test]
fn metrics_scrape_the_same_state_as_status() {
    let ws = workspace();
    let now = Utc::now();
    lay_down_state(&ws, now);
    let text = opsctl::metrics::Metrics::new().render(Some(&ws.state()), Some(&ws.manifests()));
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(value("opsctl_incidents_open "), 1.0);
    assert_eq!(
        value(&format!(
            "opsctl_check_status{{check=\"redis\",app=\"{APP}\"}}"
        )),
        1.0
    );
    // Checked an hour ago with 13 days 2 hours left: 13 days 1 hour from now, give or take
    // the seconds this test takes.
    let expiry = value(&format!(
        "opsctl_cert_expiry_seconds{{app=\"{APP}\",hostname=\"{HOST}\"}}"
    ));
    let expected = (13 * 86_400 + 3_600) as f64;
    assert!((expected - 60.0..=expected).contains(&expiry), "{expiry}");
    let labels = format!("slo=\"{APP}-home\",app=\"{APP}\",sli=\"availability\"");
    assert_eq!(
        value(&format!("opsctl_slo_burn_rate{{{labels},window=\"5m\"}}")),
        0.0
    );
    let day = value(&format!("opsctl_slo_burn_rate{{{labels},window=\"24h\"}}"));
    assert!((day - 0.5).abs() < 1e-9, "{day}");
    let budget = value(&format!("opsctl_slo_error_budget_remaining{{{labels}}}"));
    assert!((budget - 0.5).abs() < 1e-9, "{budget}");
}
