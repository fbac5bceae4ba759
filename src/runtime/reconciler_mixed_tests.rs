//! The reconciler's `single_image_per_group` check (case BUG-08) against the in-process
//! simulator with a manual clock: a group on two images is reported to the incident channel
//! once it has stayed so for more than 10 minutes with no deploy in flight, never before.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use opsctl_controllers::signal::SignalKind;

use super::Reconciler;
use crate::fly::{Endpoints, FlyClient};
use crate::records::RecordStore;
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

const OLD: &str = "registry.fly.io/lowendinsight:deployment-OLD";
const NEW: &str = "registry.fly.io/lowendinsight:deployment-NEW";

#[tokio::test]
async fn a_group_mixed_for_more_than_ten_minutes_becomes_a_mixed_images_signal() {
    let shipped = include_str!("../../examples/sim/lowendinsight.yaml");
    let m2 = format!(
        "- id: 3d8d413b29d089\n        region: iad\n        state: started\n        release: 109\n        image: {OLD}"
    );
    assert!(shipped.contains(&m2));
    let scenario = sim::scenario::Scenario::from_yaml(&shipped.replace(
        &m2,
        &format!("- id: 3d8d413b29d089\n        region: iad\n        state: started\n        release: 109\n        image: {NEW}"),
    ))
    .unwrap();
    let handle = sim::serve(scenario, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let client = FlyClient::new(Endpoints::origin(&handle.base_url()), Secret::new("t")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RecordStore::open_write(dir.path()).unwrap());
    let t0 = Utc.with_ymd_and_hms(2026, 3, 18, 12, 0, 0).unwrap();
    let clock = Arc::new(ManualClock(Mutex::new(t0)));
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let deployer = Deployer::new(client, store, clock.clone(), stop);
    let set = opsctl_crds::load_str(
        "m.yaml".as_ref(),
        include_str!("../../manifests/lowendinsight.yaml"),
    )
    .unwrap();
    let app = &set.apps[0];
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let mut r = Reconciler::new(dir.path().to_owned(), deployer, Duration::from_secs(3600));
    r.incidents = Some(tx);
    let set_now = |minutes: i64, seconds: i64| {
        *clock.0.lock().unwrap() =
            t0 + chrono::Duration::minutes(minutes) + chrono::Duration::seconds(seconds);
    };

    r.check_single_image(app, None).await;
    set_now(10, 0);
    r.check_single_image(app, None).await;
    assert!(rx.try_recv().is_err(), "not before 10 minutes");
    set_now(10, 1);
    r.check_single_image(app, None).await;
    let signal = rx
        .try_recv()
        .expect("a mixed_images signal after 10 minutes");
    assert_eq!(signal.kind, SignalKind::MixedImages);
    assert_eq!(signal.class, "mixed_images:app");
    assert_eq!(signal.app.as_deref(), Some("lowendinsight"));
    assert!(
        signal.detail.contains(NEW) && signal.detail.contains(OLD),
        "{}",
        signal.detail
    );
    set_now(30, 0);
    r.check_single_image(app, None).await;
    assert!(rx.try_recv().is_err(), "reported once per episode");
    handle.shutdown().await;
}
