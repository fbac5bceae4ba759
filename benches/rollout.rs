//! Rollout speed and Fly API cost (issue #4, "Speed"): a 10-machine rolling deploy with
//! `maxUnavailable: 3` against the simulator with machine boot 2 s and check grace 3 s.
//!
//! Target: wall time within 10 % of the unavoidable waits (boot + grace per batch) plus 1 s,
//! and no more Fly API calls per machine than flyctl's algorithm makes.
//!
//! Run: `cargo bench --bench rollout` (about 25 s). Prints one JSON line and a table; the
//! numbers go to docs/performance.md by hand.

use std::sync::Arc;
use std::time::Instant;

use opsctl::fly::{Endpoints, FlyClient};
use opsctl::records::{DeployStatus, RecordStore, Trigger};
use opsctl::runtime::clock::SystemClock;
use opsctl::runtime::deploy::{Deployer, Outcome};
use opsctl::secret::Secret;
use opsctl::sim::{self, scenario::Scenario};

const MACHINES: usize = 10;
const BOOT_S: f64 = 2.0;
const GRACE_S: f64 = 3.0;

fn scenario() -> String {
    let mut machines = String::new();
    for i in 0..MACHINES {
        machines.push_str(&format!(
            "      - {{id: \"{:014x}\", region: iad, state: started, release: 1, image: \"registry.fly.io/bench:v1\"}}\n",
            0xbe00 + i
        ));
    }
    format!(
        "timing: {{startDelay: 2s, checkGrace: 3s, stopDelay: 200ms}}\n\
         images:\n  registry.fly.io/bench:v1: healthy\n  registry.fly.io/bench:v2: healthy\n\
         apps:\n  - name: bench\n    machineConfig:\n      env: {{PORT: \"8080\"}}\n      guest: {{cpu_kind: shared, cpus: 1, memory_mb: 256}}\n      checks:\n        alive: {{type: tcp, port: 8080}}\n    releases:\n      - {{version: 1, image: \"registry.fly.io/bench:v1\"}}\n    machines:\n{machines}"
    )
}

const MANIFEST: &str = "apiVersion: opsctl.dev/v1alpha1
kind: FlyApp
metadata: {name: bench}
spec:
  image: registry.fly.io/bench:v2
  env: {PORT: \"8080\"}
  processGroups:
    app:
      regions: {iad: 10}
      vm: {size: shared-cpu-1x}
  checks:
    alive: {type: tcp, port: 8080}
  deploy: {strategy: rolling, maxUnavailable: 3}
";

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let scenario = Scenario::from_yaml(&scenario()).expect("bench scenario");
        let handle = sim::serve(scenario, ([127, 0, 0, 1], 0).into()).await.expect("simulator");
        let client = FlyClient::new(Endpoints::origin(&handle.base_url()), Secret::new("bench")).expect("client");
        let state = std::env::temp_dir().join(format!("opsctl-bench-{}", std::process::id()));
        let store = Arc::new(RecordStore::open_write(&state).expect("store"));
        let (_tx, stop) = tokio::sync::watch::channel(false);
        let deployer = Deployer::new(client, store, Arc::new(SystemClock), stop);
        let app = opsctl_crds::load_str("bench.yaml".as_ref(), MANIFEST).expect("manifest").apps.remove(0);

        let started = Instant::now();
        let outcome = deployer.deploy(&app, Trigger::Apply, None).await.expect("deploy");
        let wall = started.elapsed().as_secs_f64();
        let Outcome::Deployed(rec) = outcome else { panic!("nothing deployed") };
        assert_eq!(rec.status, DeployStatus::Succeeded, "{:?}", rec.reason);

        let counts = handle.state().request_counts();
        let batches = 1 + (MACHINES - 1).div_ceil(3);
        let unavoidable = batches as f64 * (BOOT_S + GRACE_S);
        let target = unavoidable * 1.1 + 1.0;
        let per_machine = |route: &str| counts.get(route) as f64 / MACHINES as f64;
        let machine_calls: u64 = counts
            .endpoints
            .iter()
            .filter(|(k, _)| k.contains("/machines"))
            .map(|(_, v)| *v)
            .sum();
        println!(
            "{{\"bench\":\"rolling_10x_max3\",\"wall_s\":{wall:.2},\"unavoidable_s\":{unavoidable:.1},\"target_s\":{target:.1},\"machines_api_calls\":{machine_calls},\"calls_per_machine\":{:.1},\"total_requests\":{}}}",
            machine_calls as f64 / MACHINES as f64,
            counts.total
        );
        println!("{:<52} {:>8}", "route", "per machine");
        for (route, n) in &counts.endpoints {
            println!("{route:<52} {:>8.1}", *n as f64 / MACHINES as f64);
        }
        println!(
            "update {:.1}, lease acquire/refresh {:.1}, lease release {:.1}, wait {:.1}, get {:.1}",
            per_machine("POST /v1/apps/{app}/machines/{id}"),
            per_machine("POST /v1/apps/{app}/machines/{id}/lease"),
            per_machine("DELETE /v1/apps/{app}/machines/{id}/lease"),
            per_machine("GET /v1/apps/{app}/machines/{id}/wait"),
            per_machine("GET /v1/apps/{app}/machines/{id}"),
        );
        let _ = std::fs::remove_dir_all(&state);
        handle.shutdown().await;
        if wall > target {
            eprintln!("SLOWER THAN TARGET: {wall:.2}s > {target:.1}s");
            std::process::exit(1);
        }
    });
}
