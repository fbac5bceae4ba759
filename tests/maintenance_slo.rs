//! `HealthSLO`s fed by the app-health check (issue #6): every external probe result of a run
//! is kept in the sample store, the app's SLOs are evaluated after the run, and a burning
//! objective raises a `slo_burn` signal with the app-health result. Virtual time: the clock is
//! moved 60 s per run by hand, the probe answers from a local HTTP server. (Few runs: each
//! lists machines through the client's Fly rate limiter, about one call a second.)

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use opsctl::fly::{Endpoints, FlyClient};
use opsctl::maintenance::slo::{SampleStore, SloTracker};
use opsctl::maintenance::{EnvLookup, Maintenance, ReadOnlyFly};
use opsctl::records::RecordStore;
use opsctl::runtime::clock::Clock;
use opsctl::secret::Secret;
use opsctl::sim::{Scenario, serve};
use opsctl_controllers::maintenance::Status;
use opsctl_controllers::signal::{Signal, SignalKind};
use opsctl_crds::kinds::maintenance::CheckName;
use opsctl_crds::load_str;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A clock the test moves.
struct Manual(Mutex<DateTime<Utc>>);

impl Clock for Manual {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

/// An HTTP server answering 200, or 503 while `failing` is set.
async fn site(failing: Arc<AtomicBool>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let failing = failing.clone();
            tokio::spawn(async move {
                let mut buf = [0_u8; 4096];
                let _ = tcp.read(&mut buf).await;
                let status = if failing.load(Ordering::SeqCst) {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let _ = tcp
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    format!("http://{addr}/")
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_results_feed_the_slo_and_an_outage_pages() {
    let failing = Arc::new(AtomicBool::new(false));
    let url = site(failing.clone()).await;
    let sim = serve(
        Scenario::lowendinsight_default(),
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let app = common::manifest(common::OLD).replacen(
        "  health:\n",
        &format!("  health:\n    probes:\n      - http: {{url: \"{url}\", expectStatus: 200}}\n"),
        1,
    );
    let slo = "apiVersion: opsctl.dev/v1alpha1
kind: HealthSLO
metadata: {name: lowendinsight}
spec:
  availability: 99%
  minSamples: 5
";
    let set = load_str(Path::new("m.yaml"), &format!("{app}\n---\n{slo}")).expect("valid set");
    assert_eq!(set.apps[0].spec.health.probes.len(), 1);

    let dir = tempfile::tempdir().unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let clock = Arc::new(Manual(Mutex::new(start)));
    let (tx, mut rx) = mpsc::channel::<Signal>(100_000);
    let no_env: EnvLookup = Arc::new(|_| None);
    let client = FlyClient::new(Endpoints::origin(&sim.base_url()), Secret::new("t")).unwrap();
    let m = Maintenance::new(
        ReadOnlyFly::new(client),
        Arc::new(RecordStore::open_write(&dir.path().join("records")).unwrap()),
        true,
        tx,
        clock.clone(),
        no_env,
    )
    .with_slo(SloTracker::new(SampleStore::new(dir.path())));

    let step = |c: &Manual| {
        let mut t = c.0.lock().unwrap();
        *t += TimeDelta::seconds(60);
    };
    let burns = |rx: &mut mpsc::Receiver<Signal>| {
        let mut out = Vec::new();
        while let Ok(s) = rx.try_recv() {
            if s.kind == SignalKind::SloBurn {
                out.push(s);
            }
        }
        out
    };

    // Ten healthy minutes of probes every minute: nothing burns.
    for _ in 0..10 {
        m.run(CheckName::AppHealth, &set).await;
        step(&clock);
    }
    assert!(burns(&mut rx).is_empty(), "a healthy app does not burn");
    let tracker = m.slo().unwrap();
    let report = &tracker.status()[0];
    assert_eq!(report.objectives[0].period_samples, 10);
    assert_eq!(report.objectives[0].budget_remaining, Some(1.0));

    // The site answers 503. With only 11 probes in every long window, one failure is a 9×
    // burn over 6 h and over 30 min: the 6× page fires at once (the 14.4× one needs 2).
    failing.store(true, Ordering::SeqCst);
    let mut paged_after = None;
    let mut last = Vec::new();
    let mut classes = Vec::new();
    for i in 1..=5 {
        last = m.run(CheckName::AppHealth, &set).await;
        step(&clock);
        for b in burns(&mut rx) {
            assert_eq!(b.app.as_deref(), Some("lowendinsight"));
            classes.push(b.class.clone());
            if b.class == "availability:page" {
                paged_after = Some(i);
            }
        }
        if paged_after.is_some() {
            break;
        }
    }
    assert_eq!(
        classes,
        ["availability:page"],
        "one signal, the most severe"
    );
    let paged_after = paged_after.expect("the outage pages");
    assert_eq!(paged_after, 1);
    assert_eq!(last[0].status, Status::Alert);
    assert!(
        last[0].summary.contains("SLO burning"),
        "{}",
        last[0].summary
    );
    assert!(
        last[0]
            .signals
            .iter()
            .any(|f| f.contains("slo_burn") && f.contains("availability:page")),
        "{:?}",
        last[0].signals
    );
    // Every probe result was kept, failures included.
    let kept = tracker
        .store()
        .read("lowendinsight", start - TimeDelta::days(1))
        .unwrap();
    assert_eq!(kept.len(), 10 + paged_after);
    assert_eq!(kept.iter().filter(|s| !s.ok).count(), paged_after);
    let budget = tracker.status()[0].objectives[0].budget_remaining.unwrap();
    assert!(budget < 1.0, "failures spend the budget: {budget}");
}
