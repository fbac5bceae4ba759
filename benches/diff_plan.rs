//! Cost of opsctl's pure decisions as the number of apps grows (issue #8, "Benchmarks"):
//! `diff` (desired vs observed), the rollout `plan` and the governance decision (`decide` plus
//! the `plan_hash` an approval is bound to), on 1, 100 and 10,000 apps of 3 machines each,
//! built in memory (no simulator, no network).
//!
//! Run: `cargo bench --bench diff_plan` (criterion; about 2 minutes). Each benchmark is one
//! call per app over all N apps, so the time per app is the reported time / N; a flat time
//! per app means cost linear in the number of apps. Numbers go to docs/performance.md.
//!
//! - `diff/in_sync/N`: every app in sync (the steady state of a reconcile pass).
//! - `diff/drifted/N`: every machine runs the previous image (a new image was committed).
//! - `plan/rolling/N`: the rolling plan of that drift (spearhead, then batches).
//! - `governance/N`: `decide` for the deploy action and its `plan_hash`.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opsctl_controllers::diff::{AppDiff, diff};
use opsctl_controllers::governance::{
    Action, ActionKind, BurnIn, Context, Role, decide, plan_hash,
};
use opsctl_controllers::machine_config;
use opsctl_controllers::observed::{
    CheckResult, CheckState, GuestSize, MachineState, ObservedApp, ObservedMachine,
};
use opsctl_controllers::rollout::plan;
use opsctl_crds::FlyApp;
use opsctl_crds::kinds::governance::GovernancePolicySpec;

const SIZES: [usize; 3] = [1, 100, 10_000];
const MACHINES: usize = 3;
const OLD: &str = "registry.fly.io/bench:v1";
const NEW: &str = "registry.fly.io/bench:v2";

fn app_name(i: usize) -> String {
    format!("app-{i:05}")
}

/// `n` FlyApp manifests on NEW: one process group of 3 machines in iad, env, a service with a
/// TCP check, rolling deploy with `maxUnavailable: 1` (LowEndInsight's shape).
fn apps(n: usize) -> Vec<FlyApp> {
    let files: Vec<(std::path::PathBuf, String)> = (0..n)
        .map(|i| {
            let name = app_name(i);
            (
                format!("{name}.yaml").into(),
                format!(
                    "apiVersion: opsctl.dev/v1alpha1\nkind: FlyApp\nmetadata: {{name: {name}}}\nspec:\n  image: {NEW}\n  primaryRegion: iad\n  env: {{PORT: \"8080\", ERL_AFLAGS: \"-proto_dist inet6_tcp\"}}\n  processGroups:\n    app:\n      regions: {{iad: {MACHINES}}}\n      vm: {{size: shared-cpu-1x, memoryMb: 1024}}\n  services:\n    - protocol: tcp\n      internalPort: 8080\n      ports:\n        - {{port: 80, handlers: [http], forceHttps: true}}\n        - {{port: 443, handlers: [tls, http]}}\n      checks:\n        - {{type: tcp, interval: 15s, timeout: 2s}}\n  deploy: {{strategy: rolling, maxUnavailable: 1}}\n"
                ),
            )
        })
        .collect();
    opsctl_crds::load_files(&files)
        .expect("bench manifests")
        .apps
}

/// What Fly would report for `app`: 3 started machines with the manifest's env, size and
/// service config (so only the image can differ), running `image`, checks passing.
fn observed(i: usize, app: &FlyApp, image: &str) -> ObservedApp {
    let name = app.app_name().to_owned();
    let started = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();
    let machines = (0..MACHINES)
        .map(|m| {
            let mut env = opsctl_controllers::diff::desired_env(app).clone();
            env.insert("FLY_PROCESS_GROUP".into(), "app".into());
            env.insert("PRIMARY_REGION".into(), "iad".into());
            ObservedMachine {
                id: format!("{i:010x}{m:04x}"),
                region: "iad".into(),
                group: "app".into(),
                state: MachineState::Started,
                image: image.into(),
                version: format!("01JBENCH{m:018}"),
                release_version: Some(7),
                managed: true,
                env,
                guest: GuestSize::from_preset("shared-cpu-1x", Some(1024)),
                checks: vec![CheckResult {
                    name: "servicecheck-00-tcp-8080".into(),
                    state: CheckState::Passing,
                    output: String::new(),
                }],
                configured_checks: 1,
                service_config: machine_config::desired(app, "app"),
                last_exit: None,
                last_start: Some(started),
                cordoned: false,
            }
        })
        .collect();
    ObservedApp {
        name,
        machines,
        releases: vec![],
    }
}

fn bench(c: &mut Criterion) {
    let largest = *SIZES.last().expect("sizes");
    let all = apps(largest);
    let in_sync: Vec<ObservedApp> = all
        .iter()
        .enumerate()
        .map(|(i, a)| observed(i, a, NEW))
        .collect();
    let drifted: Vec<ObservedApp> = all
        .iter()
        .enumerate()
        .map(|(i, a)| observed(i, a, OLD))
        .collect();
    let diffs: Vec<AppDiff> = all.iter().zip(&drifted).map(|(a, o)| diff(a, o)).collect();
    // The fixtures must be what the names say, or the numbers mean nothing.
    assert!(all.iter().zip(&in_sync).all(|(a, o)| diff(a, o).is_empty()));
    assert!(
        diffs
            .iter()
            .all(|d| d.machines_to_update().len() == MACHINES)
    );
    let policy = GovernancePolicySpec::default();
    let burn_in = BurnIn::of(&[], &Default::default(), &policy.burn_in);
    let now = Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap();

    let mut g = c.benchmark_group("diff");
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("in_sync", n), &n, |b, &n| {
            b.iter(|| {
                for (a, o) in all[..n].iter().zip(&in_sync[..n]) {
                    black_box(diff(black_box(a), black_box(o)));
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("drifted", n), &n, |b, &n| {
            b.iter(|| {
                for (a, o) in all[..n].iter().zip(&drifted[..n]) {
                    black_box(diff(black_box(a), black_box(o)));
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("plan");
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("rolling", n), &n, |b, &n| {
            b.iter(|| {
                for ((a, o), d) in all[..n].iter().zip(&drifted[..n]).zip(&diffs[..n]) {
                    black_box(plan(black_box(a), black_box(o), black_box(d)).expect("plan"));
                }
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("governance");
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, &n| {
            b.iter(|| {
                for (a, o) in all[..n].iter().zip(&drifted[..n]) {
                    let action = Action::new(
                        ActionKind::Deploy,
                        a.app_name(),
                        format!("image {OLD} → {NEW} on {MACHINES} machines"),
                        0.0,
                    );
                    let decision = decide(
                        &action,
                        Role::Deployer,
                        &policy,
                        burn_in,
                        Context::default(),
                        now,
                    );
                    black_box((decision, plan_hash("rev", o, std::slice::from_ref(&action))));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
