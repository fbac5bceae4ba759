//! Steady-state cost of one reconcile pass at scale (issue #8, "Benchmarks"): the simulator
//! with N apps × 3 machines, every app in sync; one full observe + diff pass over all apps, as
//! the reconciler's idle reconcile does it (`observe_machines`: one machine list per app, then
//! the diff; releases are read only once something differs).
//!
//! Measured in this process only (the simulator runs as a child process, `opsctl sim serve`,
//! so its own work is not counted): wall time, CPU time (user + system, from /proc/self/stat),
//! peak RSS (VmHWM from /proc/self/status), and Fly API calls per app per pass (from the
//! simulator's request counts). Manifest loading is reported apart: it happens once per
//! commit, not once per pass.
//!
//! Run: `cargo bench --bench scale` (1,000 apps; `OPSCTL_SCALE_APPS=10000` for 10,000).
//! Targets (issue #8): 1,000 apps ≤ 1 s CPU per pass, ≤ 150 MB RSS, ≤ 2 calls per idle app;
//! 10,000 apps ≤ 10 s CPU, ≤ 1 GB RSS. Prints one JSON line; numbers go to
//! docs/performance.md. Exits 1 when a target is missed. Linux only (reads /proc).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use opsctl::fly::observe::observe_machines;
use opsctl::fly::{Endpoints, FlyClient};
use opsctl::secret::Secret;
use opsctl_controllers::diff::diff;

/// Machines per app.
const MACHINES: usize = 3;
/// Apps observed at once. The reconciler loop on main observes one app at a time (its work
/// queue is being written); 64 is the concurrency this pass assumes for it (docs/scaling.md).
const CONCURRENCY: usize = 64;

fn app_name(i: usize) -> String {
    format!("app-{i:05}")
}

fn scenario(apps: usize) -> String {
    let mut s = String::from(
        "timing: {startDelay: 0s, checkGrace: 0s, stopDelay: 0s}\nimages:\n  registry.fly.io/scale:v1: healthy\napps:\n",
    );
    for i in 0..apps {
        let name = app_name(i);
        s.push_str(&format!(
            "  - name: {name}\n    machineConfig:\n      env: {{PORT: \"8080\"}}\n      guest: {{cpu_kind: shared, cpus: 1, memory_mb: 256}}\n      checks:\n        alive: {{type: tcp, port: 8080}}\n    releases:\n      - {{version: 1, image: \"registry.fly.io/scale:v1\"}}\n    machines:\n"
        ));
        for m in 0..MACHINES {
            s.push_str(&format!(
                "      - {{id: \"{:014x}\", region: iad, state: started, release: 1, image: \"registry.fly.io/scale:v1\"}}\n",
                i * MACHINES + m
            ));
        }
    }
    s
}

fn manifests(apps: usize) -> Vec<(PathBuf, String)> {
    (0..apps)
        .map(|i| {
            let name = app_name(i);
            (
                PathBuf::from(format!("{name}.yaml")),
                format!(
                    "apiVersion: opsctl.dev/v1alpha1\nkind: FlyApp\nmetadata: {{name: {name}}}\nspec:\n  image: registry.fly.io/scale:v1\n  env: {{PORT: \"8080\"}}\n  processGroups:\n    app:\n      regions: {{iad: {MACHINES}}}\n      vm: {{size: shared-cpu-1x, memoryMb: 256}}\n  checks:\n    alive: {{type: tcp, port: 8080}}\n"
                ),
            )
        })
        .collect()
}

/// User + system CPU seconds of this process so far (/proc/self/stat fields 14 and 15, in
/// clock ticks of 1/100 s: USER_HZ is 100 on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // The command name (field 2) may hold spaces; count from the closing parenthesis.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("ticks");
    (ticks(11) + ticks(12)) / 100.0
}

/// Peak resident set size in MB (VmHWM).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .expect("VmHWM");
    kb / 1024.0
}

/// One pass: observe every app (at most [`CONCURRENCY`] at once) and diff it. Returns the
/// number of apps with drift (0 expected) and of apps that could not be observed.
async fn pass(client: &Arc<FlyClient>, set: &Arc<opsctl_crds::ManifestSet>) -> (usize, usize) {
    let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..set.apps.len() {
        let (client, set, sem) = (client.clone(), set.clone(), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore");
            let app = &set.apps[i];
            match observe_machines(&client, app.app_name()).await {
                Ok(observed) => (usize::from(!diff(app, &observed).is_empty()), 0),
                Err(_) => (0, 1),
            }
        });
    }
    let (mut drift, mut blind) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (d, b) = r.expect("task");
        drift += d;
        blind += b;
    }
    (drift, blind)
}

fn main() {
    let apps: usize = std::env::var("OPSCTL_SCALE_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario_file = dir.path().join("scale.yaml");
    std::fs::write(&scenario_file, scenario(apps)).expect("scenario");

    let mut sim = Command::new(env!("CARGO_BIN_EXE_opsctl"))
        .args([
            "-o",
            "json",
            "sim",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--scenario",
        ])
        .arg(&scenario_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the simulator");
    // `-o json` prints one (pretty-printed) JSON object with the simulator's URL.
    let first = serde_json::Deserializer::from_reader(sim.stdout.take().expect("stdout"))
        .into_iter::<serde_json::Value>()
        .next()
        .expect("simulator address")
        .expect("sim json");
    let url = first["url"].as_str().expect("url").to_owned();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = rt.block_on(async {
        let files = manifests(apps);
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let set = Arc::new(opsctl_crds::load_files(&files).expect("manifests"));
        let load_cpu = cpu_seconds() - cpu0;
        let load_wall = t0.elapsed().as_secs_f64();
        drop(files);
        let client = Arc::new(
            FlyClient::new(Endpoints::origin(&url), Secret::new("bench")).expect("client"),
        );
        let http = reqwest::Client::new();
        let counts = |http: reqwest::Client, url: String| async move {
            http.get(format!("{url}/__sim/requests"))
                .send()
                .await
                .expect("counts")
                .json::<serde_json::Value>()
                .await
                .expect("counts json")["total"]
                .as_u64()
                .expect("total")
        };
        // Warm-up pass (connection pool, allocator), then the measured one.
        let _ = pass(&client, &set).await;
        let before = counts(http.clone(), url.clone()).await;
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let (drift, blind) = pass(&client, &set).await;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        // The counts request itself is one of `after - before`.
        let calls = counts(http, url.clone()).await - before - 1;
        (load_cpu, load_wall, wall, cpu, calls, drift, blind)
    });
    let _ = sim.kill();
    let _ = sim.wait();
    let (load_cpu, load_wall, wall, cpu, calls, drift, blind) = result;
    let rss = peak_rss_mb();
    let per_app = calls as f64 / apps as f64;
    println!(
        "{{\"bench\":\"steady_state_pass\",\"apps\":{apps},\"machines_per_app\":{MACHINES},\"pass_wall_s\":{wall:.3},\"pass_cpu_s\":{cpu:.3},\"peak_rss_mb\":{rss:.1},\"calls_per_app\":{per_app:.2},\"drifted_apps\":{drift},\"unobserved_apps\":{blind},\"manifest_load_cpu_s\":{load_cpu:.3},\"manifest_load_wall_s\":{load_wall:.3}}}"
    );
    let (cpu_target, rss_target) = if apps > 1000 {
        (10.0 * apps as f64 / 10_000.0, 1024.0)
    } else {
        (1.0, 150.0)
    };
    let mut missed = Vec::new();
    if cpu > cpu_target {
        missed.push(format!("CPU {cpu:.2}s > {cpu_target}s"));
    }
    if rss > rss_target {
        missed.push(format!("RSS {rss:.0} MB > {rss_target} MB"));
    }
    if per_app > 2.0 {
        missed.push(format!("{per_app:.2} calls per app > 2"));
    }
    if drift > 0 || blind > 0 {
        missed.push(format!(
            "{drift} apps drifted, {blind} not observed (expected 0)"
        ));
    }
    if !missed.is_empty() {
        eprintln!("TARGET MISSED: {}", missed.join("; "));
        std::process::exit(1);
    }
}
