//! Reaction latency of `opsctl run` (issue #8, "Benchmarks"), end to end with real processes:
//! `opsctl sim serve` (the shipped LowEndInsight scenario: 2 machines, boot 300 ms, check
//! grace 500 ms) and `opsctl run` on a git checkout of the manifests, with its default health
//! poll (500 ms) and `failAfter: 2s`.
//!
//! - **commit → first mutating Fly call**: from just before `git commit` of a new image to the
//!   first non-GET Machines API request the simulator receives (in practice the lease of the
//!   first machine). Target ≤ 2 s. Repeated [`COMMITS`] times, alternating two healthy images.
//! - **health failure observed → rollback started**: a commit of an image that fails its
//!   checks; from the timestamp of opsctl's `health judgement: failed` log line (the judge's
//!   verdict) to the first machine update (`POST /v1/apps/{app}/machines/{id}`) after it,
//!   which is the rollback putting the previous config back. Target ≤ 2 s. Repeated
//!   [`FAILURES`] times with distinct bad images (a failed image is pinned out).
//!
//! Times are wall-clock UTC on one machine: the commit instant and the log line's timestamp
//! (`--log-format json`) against the simulator's request log (`GET /__sim/requests/log`,
//! real arrival times). Run: `cargo bench --bench latency` (about a minute). Prints one JSON
//! line per measure; numbers go to docs/performance.md. Exits 1 when a target is missed.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Lines, NEW, OLD, Sim, Workspace, eventually, git, manifest, opsctl};

const COMMITS: usize = 5;
const FAILURES: usize = 3;
const TARGET_S: f64 = 2.0;
/// The route of a machine update (also the rollback's).
const UPDATE: &str = "POST /v1/apps/{app}/machines/{id}";

/// The simulator's request log: `(arrival, "METHOD /route")`, oldest first.
fn request_log(sim: &Sim) -> Vec<(DateTime<Utc>, String)> {
    sim.get("/__sim/requests/log")["requests"]
        .as_array()
        .expect("request log")
        .iter()
        .map(|r| {
            let at = r["at"].as_str().expect("at").parse().expect("RFC 3339");
            (at, r["key"].as_str().expect("key").to_owned())
        })
        .collect()
}

/// A request that changes something on Fly's Machines API (a lease, an update, a start …).
fn mutating_machines_call(key: &str) -> bool {
    key.contains(" /v1/apps/") && !key.starts_with("GET ")
}

/// Wait until opsctl made no mutating Machines API call for 1 s (a finished deploy still
/// releases its leases after its record says `succeeded`), so the next measurement starts
/// from a quiet Fly.
fn quiet(sim: &Sim) {
    let mutating = || {
        request_log(sim)
            .iter()
            .filter(|(_, key)| mutating_machines_call(key))
            .count()
    };
    let mut last = mutating();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = mutating();
        if now == last {
            return;
        }
        last = now;
    }
}

fn deploys(ws: &Workspace) -> Vec<serde_json::Value> {
    let out = opsctl()
        .arg("--state")
        .arg(ws.state())
        .args(["history", "-o", "json"])
        .output()
        .expect("opsctl history");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["deploys"].as_array().cloned().unwrap_or_default()
}

/// Wait until the deploy of commit `sha` is no longer in progress; its status.
fn finished(ws: &Workspace, sha: &str, lines: &Lines) -> String {
    eventually(Duration::from_secs(60), || {
        deploys(ws)
            .into_iter()
            .find(|d| d["commit"] == sha && d["status"] != "in_progress")
            .map(|d| d["status"].as_str().unwrap_or_default().to_owned())
    })
    .unwrap_or_else(|| panic!("the deploy of {sha} did not finish: {}", lines.all()))
}

/// Commit the manifest with `image`; the instant just before `git commit` ran, and the SHA.
fn commit(ws: &Workspace, image: &str) -> (DateTime<Utc>, String) {
    let repo = ws.manifests();
    std::fs::write(repo.join("lowendinsight.yaml"), manifest(image)).expect("manifest");
    let at = Utc::now();
    git(&repo, &["commit", "-q", "-am", &format!("deploy {image}")]);
    (at, git(&repo, &["rev-parse", "HEAD"]))
}

/// A time span in seconds (microsecond resolution).
fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

fn stats(name: &str, samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    let list: Vec<String> = samples.iter().map(|s| format!("{s:.3}")).collect();
    println!(
        "{{\"bench\":\"{name}\",\"samples_s\":[{}],\"median_s\":{median:.3},\"max_s\":{max:.3},\"target_s\":{TARGET_S}}}",
        list.join(",")
    );
    (median, max)
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if eventually(Duration::from_secs(10), || child.try_wait().ok().flatten()).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn main() {
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    ws.commit_all("LowEndInsight on OLD");
    let mut child = ws
        .opsctl(&sim)
        .args(["--log-format", "json", "run", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start opsctl run");
    let lines = Lines::collect(&mut child);
    assert!(
        lines.wait_for("reconciler started", Duration::from_secs(30)),
        "{}",
        lines.all()
    );

    let mut commit_s = Vec::new();
    for i in 0..COMMITS {
        let image = if i % 2 == 0 { NEW } else { OLD };
        quiet(&sim);
        sim.control_delete("/__sim/requests");
        let (at, sha) = commit(&ws, image);
        let first = eventually(Duration::from_secs(30), || {
            request_log(&sim)
                .into_iter()
                .find(|(_, key)| mutating_machines_call(key))
        })
        .unwrap_or_else(|| panic!("no mutating call after the commit: {}", lines.all()));
        let status = finished(&ws, &sha, &lines);
        assert_eq!(status, "succeeded", "deploy of {image}: {}", lines.all());
        let latency = secs(first.0 - at);
        eprintln!("commit {i}: {image}: {latency:.3} s to `{}`", first.1);
        commit_s.push(latency);
    }

    let mut rollback_s = Vec::new();
    for k in 1..=FAILURES {
        let bad = format!("registry.fly.io/lowendinsight:deployment-BAD{k}");
        sim.control(
            "/__sim/images",
            serde_json::json!({"image": bad, "behavior": "fails-checks"}),
        );
        quiet(&sim);
        sim.control_delete("/__sim/requests");
        let (_, sha) = commit(&ws, &bad);
        let failed_at = eventually(Duration::from_secs(60), || {
            let all = lines.all();
            all.lines()
                .filter(|l| l.contains("health judgement: failed"))
                .nth(k - 1)
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).expect("JSON log line");
                    v["timestamp"]
                        .as_str()
                        .expect("timestamp")
                        .parse::<DateTime<Utc>>()
                        .expect("RFC 3339 timestamp")
                })
        })
        .unwrap_or_else(|| panic!("no failed health judgement for {bad}: {}", lines.all()));
        let status = finished(&ws, &sha, &lines);
        assert_eq!(status, "rolled_back", "deploy of {bad}: {}", lines.all());
        let (at, _) = request_log(&sim)
            .into_iter()
            .find(|(at, key)| *at >= failed_at && key == UPDATE)
            .unwrap_or_else(|| panic!("no machine update after the failure: {}", lines.all()));
        let latency = secs(at - failed_at);
        eprintln!("failure {k}: {bad}: {latency:.3} s from the verdict to the rollback's update");
        rollback_s.push(latency);
    }
    stop(child);

    let (_, commit_max) = stats("commit_to_first_mutating_call", &mut commit_s);
    let (_, rollback_max) = stats("health_failure_to_rollback_started", &mut rollback_s);
    let mut missed = Vec::new();
    if commit_max > TARGET_S {
        missed.push(format!("commit → first mutating call {commit_max:.2}s"));
    }
    if rollback_max > TARGET_S {
        missed.push(format!("failure → rollback {rollback_max:.2}s"));
    }
    if !missed.is_empty() {
        eprintln!("TARGET MISSED (> {TARGET_S} s): {}", missed.join("; "));
        std::process::exit(1);
    }
}
