//! `opsctl run` reacts to commits in the manifests checkout (issue #2 step 7): it rolls out a
//! changed image soon after the commit, records the commit SHA, keeps acting on the last valid
//! manifest set when a broken one is committed, and stops cleanly on SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Lines, NEW, OLD, Sim, Workspace, deploys, eventually, git, manifest};

/// A git checkout of the manifests on OLD (what Fly runs), and `opsctl run` started on it.
fn start_run(sim: &Sim) -> (Workspace, std::path::PathBuf, std::process::Child, Lines) {
    let ws = Workspace::new(OLD);
    let repo = ws.commit_all("LowEndInsight on OLD");
    let mut child = ws
        .opsctl(sim)
        .args(["run", "--resync", "1h", "--poll", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    assert!(
        lines.wait_for("reconciler started", Duration::from_secs(20)),
        "{}",
        lines.all()
    );
    (ws, repo, child, lines)
}

#[test]
fn a_commit_triggers_a_rollout_recorded_with_its_sha() {
    let sim = Sim::start();
    // The checkout starts on the image Fly already runs: nothing to do at start-up.
    let (ws, repo, mut child, lines) = start_run(&sim);

    // A broken commit is rejected whole; nothing is deployed.
    std::fs::write(
        repo.join("lowendinsight.yaml"),
        manifest(NEW).replace("processGroups:", "processGroupz:"),
    )
    .unwrap();
    git(&repo, &["commit", "-q", "-am", "typo"]);
    assert!(
        lines.wait_for("lowendinsight.yaml:", Duration::from_secs(10)),
        "error names the file: {}",
        lines.all()
    );
    assert!(
        lines.wait_for("acting on the last valid set", Duration::from_secs(5)),
        "{}",
        lines.all()
    );
    assert!(
        deploys(&ws.state()).is_empty(),
        "the last valid set is in sync: no deploy"
    );

    // A good commit that changes the image is rolled out.
    std::fs::write(repo.join("lowendinsight.yaml"), manifest(NEW)).unwrap();
    git(&repo, &["commit", "-q", "-am", "deploy NEW"]);
    let committed = Instant::now();
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    let started = eventually(Duration::from_secs(10), || {
        deploys(&ws.state())
            .into_iter()
            .find(|d| d["commit"] == sha.as_str())
            .map(|_| committed.elapsed())
    })
    .unwrap_or_else(|| panic!("no deploy recorded for {sha}: {}", lines.all()));
    eprintln!("commit → deploy record: {started:?}");
    assert!(started < Duration::from_secs(5), "reacted in {started:?}");

    let done = eventually(Duration::from_secs(30), || {
        deploys(&ws.state())
            .into_iter()
            .find(|d| d["commit"] == sha.as_str() && d["status"] != "in_progress")
    })
    .expect("deploy finished");
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["trigger"], "reconcile");
    assert!(sim.images().iter().all(|(_, image)| image == NEW));

    // SIGTERM stops it cleanly.
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = eventually(Duration::from_secs(10), || child.try_wait().unwrap())
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}: {}", lines.all());
    assert!(lines.wait_for("reconciler stopped", Duration::from_secs(1)));
}

/// A user test found `run` re-triggering itself on its own reads of `.git` (50 git processes a
/// second, and a resync timer that never fired), and deploying uncommitted edits.
#[test]
fn run_is_quiet_when_idle_deploys_only_commits_and_retries_after_an_outage() {
    let sim = Sim::start();
    let (ws, repo, mut child, lines) = start_run(&sim);
    std::thread::sleep(Duration::from_millis(500));

    // Idle: no Fly traffic at all for 2 s (the start-up pass is over).
    let before = sim.requests()["total"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let idle = sim.requests()["total"].as_u64().unwrap() - before;
    assert!(idle <= 2, "an idle run made {idle} Fly requests in 2 s");

    // An uncommitted edit is not deployed, even when an unrelated commit follows.
    std::fs::write(repo.join("lowendinsight.yaml"), manifest(NEW)).unwrap();
    std::fs::write(repo.join("NOTES.txt"), "unrelated").unwrap();
    git(&repo, &["add", "NOTES.txt"]);
    git(&repo, &["commit", "-q", "-m", "unrelated"]);
    assert!(
        lines.wait_for("new commit", Duration::from_secs(5)),
        "{}",
        lines.all()
    );
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        deploys(&ws.state()).is_empty(),
        "uncommitted image deployed"
    );
    assert!(sim.images().iter().all(|(_, image)| image == OLD));

    // Commit it while Fly is unreachable: the pass fails, and is retried without a new commit.
    sim.control("/__sim/faults", serde_json::json!({"kind": "apiDown"}));
    git(&repo, &["commit", "-q", "-am", "deploy NEW"]);
    let sha = git(&repo, &["rev-parse", "HEAD"]);
    assert!(
        lines.wait_for("retrying soon", Duration::from_secs(60)),
        "{}",
        lines.all()
    );
    sim.control_delete("/__sim/faults");
    let done = eventually(Duration::from_secs(60), || {
        deploys(&ws.state())
            .into_iter()
            .find(|d| d["commit"] == sha.as_str() && d["status"] == "succeeded")
    });
    assert!(
        done.is_some(),
        "the commit was deployed after Fly came back: {}",
        lines.all()
    );

    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = eventually(Duration::from_secs(10), || child.try_wait().unwrap()).expect("exits");
    assert!(status.success());
}
