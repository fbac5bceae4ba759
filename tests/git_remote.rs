//! `opsctl run --git-url` (issue #8): a remote manifests repository — here a local bare
//! repository reached through a `file://` URL, no network — fetched on an interval or at once
//! on a signed GitHub webhook, deployed against the simulator; a bad signature fetches nothing;
//! a remote that goes away leaves the last fetched commit in force; credentials in the URL are
//! never printed.
//!
//! The webhook → first mutating Fly call latency for docs/performance.md:
//! `cargo test --test git_remote -- --ignored --nocapture webhook_latency`.

mod common;

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{
    AUTO_DEPLOYS, Lines, NEW, OLD, Sim, deploys, eventually, free_port, git, manifest, opsctl,
};
use opsctl::http::webhook::sign;
use opsctl::secret::Secret;

const SECRET: &str = "test webhook secret";

/// A bare "remote" and a working copy pushing to it; manifests under `deploy/`.
struct Remote {
    dir: tempfile::TempDir,
}

impl Remote {
    fn new(image: &str) -> Self {
        let remote = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        git(remote.dir.path(), &["init", "-q", "--bare", "remote.git"]);
        git(remote.dir.path(), &["init", "-q", "-b", "main", "work"]);
        std::fs::create_dir_all(remote.work().join("deploy")).unwrap();
        std::fs::write(remote.work().join("deploy/governance.yaml"), AUTO_DEPLOYS).unwrap();
        std::fs::write(remote.work().join("README.md"), "not a manifest\n").unwrap();
        remote.push(image);
        remote
    }

    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    fn bare(&self) -> PathBuf {
        self.dir.path().join("remote.git")
    }

    fn url(&self) -> String {
        format!("file://{}", self.bare().display())
    }

    /// Commit `image` in `deploy/lowendinsight.yaml` and push it; the commit's SHA.
    fn push(&self, image: &str) -> String {
        let work = self.work();
        std::fs::write(work.join("deploy/lowendinsight.yaml"), manifest(image)).unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "--allow-empty", "-m", image]);
        git(
            &work,
            &["push", "-q", self.bare().to_str().unwrap(), "main"],
        );
        git(&work, &["rev-parse", "HEAD"])
    }
}

/// A running `opsctl run --git-url`; killed on drop.
struct Run {
    child: Child,
    lines: Lines,
    state: tempfile::TempDir,
    port: u16,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Run {
    fn start(sim: &Sim, remote: &Remote, interval: &str, extra: &[&str]) -> Self {
        let state = tempfile::tempdir().unwrap();
        let secret_file = state.path().join("webhook-secret");
        std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
        let port = free_port();
        let mut child = opsctl()
            .current_dir(state.path())
            .env_remove("OPSCTL_WEBHOOK_SECRET")
            .env_remove("OPSCTL_GIT_URL")
            .env("FLY_API_TOKEN", "test-token")
            .arg("--state")
            .arg(state.path().join("state"))
            .args([
                "--fly", &sim.url, "run", "--resync", "1h", "--poll", "100ms",
            ])
            .args(["--git-url", &remote.url(), "--git-path", "deploy"])
            .args(["--git-fetch-interval", interval])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--webhook-secret-file")
            .arg(&secret_file)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Lines::collect(&mut child);
        let run = Self {
            child,
            lines,
            state,
            port,
        };
        assert!(
            run.lines
                .wait_for("reconciler started", Duration::from_secs(20)),
            "{}",
            run.lines.all()
        );
        assert!(
            run.lines
                .wait_for("HTTP listener started", Duration::from_secs(5)),
            "{}",
            run.lines.all()
        );
        run
    }

    fn clone_dir(&self) -> PathBuf {
        self.state.path().join("state/checkout")
    }

    /// The commit opsctl's clone has checked out.
    fn checked_out(&self) -> String {
        git(&self.clone_dir(), &["rev-parse", "HEAD"])
    }

    fn deploys(&self) -> Vec<serde_json::Value> {
        deploys(&self.state.path().join("state"))
    }

    /// The deploy record of `sha` once finished.
    fn finished(&self, sha: &str, timeout: Duration) -> Option<serde_json::Value> {
        eventually(timeout, || {
            self.deploys()
                .into_iter()
                .find(|d| d["commit"] == sha && d["status"] != "in_progress")
        })
    }

    fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/webhooks/github", self.port)
    }
}

/// A GitHub push delivery for `refs/heads/main` at `after`.
fn push_body(after: &str) -> String {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": after,
        "deleted": false,
        "repository": {"full_name": "org/manifests"},
    })
    .to_string()
}

/// Sum of the simulator's counts of Fly calls that change something: any POST, PUT, PATCH or
/// DELETE of the Machines API (GraphQL reads are POSTs too, so `/graphql` is left out).
fn mutating(counts: &serde_json::Value) -> u64 {
    counts["endpoints"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(route, _)| {
                    let method = route.split(' ').next().unwrap_or("");
                    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
                        && !route.contains("/graphql")
                })
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// Sends webhook deliveries and watches the simulator's counters on one runtime and client,
/// so the time measured is opsctl's, not the harness's set-up.
struct Probe {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Probe {
    fn new() -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// POST a push delivery, signed with `secret`; the status.
    fn deliver(&self, url: &str, body: &str, secret: &str) -> u16 {
        let signature = sign(&Secret::new(secret), body.as_bytes());
        self.rt.block_on(async {
            self.http
                .post(url)
                .header("content-type", "application/json")
                .header("x-github-event", "push")
                .header("x-github-delivery", "test-delivery")
                .header("x-hub-signature-256", signature)
                .body(body.to_owned())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        })
    }

    fn mutating_calls(&self, sim: &Sim) -> u64 {
        self.rt.block_on(async {
            let counts: serde_json::Value = self
                .http
                .get(format!("{}/__sim/requests", sim.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            mutating(&counts)
        })
    }

    /// Deliver a signed push for `sha` and time it until the simulator saw a mutating call.
    fn webhook_to_first_mutation(&self, sim: &Sim, run: &Run, sha: &str) -> Duration {
        let before = self.mutating_calls(sim);
        let sent = Instant::now();
        assert_eq!(
            self.deliver(&run.webhook_url(), &push_body(sha), SECRET),
            202
        );
        loop {
            if self.mutating_calls(sim) > before {
                return sent.elapsed();
            }
            assert!(
                sent.elapsed() < Duration::from_secs(20),
                "no mutating Fly call after the webhook: {}",
                run.lines.all()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn a_commit_pushed_to_the_remote_is_fetched_on_the_interval_and_deployed() {
    let sim = Sim::start();
    let remote = Remote::new(OLD);
    let run = Run::start(&sim, &remote, "1s", &[]);
    assert!(
        run.lines.all().contains("git clone ready"),
        "{}",
        run.lines.all()
    );
    assert!(
        run.deploys().is_empty(),
        "OLD is what Fly runs: nothing to do"
    );

    let sha = remote.push(NEW);
    let done = run
        .finished(&sha, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no deploy of {sha}: {}", run.lines.all()));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(run.checked_out(), sha);
    assert!(
        run.lines
            .wait_for("git fetch: new commit", Duration::from_secs(1))
    );
    assert!(sim.images().iter().all(|(_, image)| image == NEW));
}

#[test]
fn only_a_correctly_signed_webhook_fetches_and_the_deploy_follows() {
    let sim = Sim::start();
    let remote = Remote::new(OLD);
    // An hour between fetches: only the webhook can bring the new commit in time.
    let run = Run::start(&sim, &remote, "1h", &[]);
    let first = run.checked_out();
    let sha = remote.push(NEW);
    let probe = Probe::new();
    let mutations = probe.mutating_calls(&sim);

    // Signed with another secret: 401, and nothing is fetched.
    let status = probe.deliver(&run.webhook_url(), &push_body(&sha), "wrong secret");
    assert_eq!(status, 401);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(run.checked_out(), first, "a refused webhook fetched");
    assert_eq!(probe.mutating_calls(&sim), mutations);
    assert!(
        run.lines.all().contains("webhook refused"),
        "{}",
        run.lines.all()
    );

    // Signed with the secret: fetched at once, deployed.
    let latency = probe.webhook_to_first_mutation(&sim, &run, &sha);
    eprintln!("webhook → first mutating Fly call: {latency:?}");
    assert_eq!(run.checked_out(), sha);
    let done = run
        .finished(&sha, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no deploy of {sha}: {}", run.lines.all()));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert!(
        !run.lines.all().contains(SECRET),
        "the webhook secret was logged"
    );
}

#[test]
fn with_the_remote_gone_the_last_fetched_commit_is_still_reconciled() {
    let sim = Sim::start();
    let remote = Remote::new(OLD);
    let run = Run::start(&sim, &remote, "1s", &[]);

    // NEW is fetched while Fly is down: the pass fails and will be retried.
    sim.control("/__sim/faults", serde_json::json!({"kind": "apiDown"}));
    let sha = remote.push(NEW);
    assert!(
        run.lines.wait_for("retrying soon", Duration::from_secs(30)),
        "{}",
        run.lines.all()
    );
    assert_eq!(run.checked_out(), sha);

    // The remote goes away; fetches fail, saying which commit stays in force.
    std::fs::rename(remote.bare(), remote.dir.path().join("moved.git")).unwrap();
    let says = format!("git fetch failed; still reconciling the last fetched commit {sha}");
    assert!(
        run.lines.wait_for(&says, Duration::from_secs(15)),
        "{}",
        run.lines.all()
    );

    // Fly is back: the retry deploys the last fetched commit, with no remote at all.
    sim.control_delete("/__sim/faults");
    let done = run
        .finished(&sha, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("no deploy of {sha}: {}", run.lines.all()));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(run.checked_out(), sha);
}

#[test]
fn credentials_in_the_url_are_never_printed() {
    let state = tempfile::tempdir().unwrap();
    // Nothing listens on port 9: the first fetch fails and there is no earlier clone.
    let out = opsctl()
        .current_dir(state.path())
        .env("FLY_API_TOKEN", "test-token")
        .env(
            "OPSCTL_GIT_URL",
            "https://deploy:s3cr3t-T0ken@127.0.0.1:9/org/m.git",
        )
        .arg("--state")
        .arg(state.path().join("state"))
        .args([
            "--fly",
            "embedded",
            "-o",
            "json",
            "run",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    let text = common::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("s3cr3t-T0ken"), "token printed: {text}");
    assert!(!text.contains("deploy:"), "user printed: {text}");
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["code"], "git.fetch", "{text}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("https://[redacted]@127.0.0.1:9/org/m.git"),
        "{message}"
    );
    // A bad branch name is refused before anything is fetched.
    let out = opsctl()
        .current_dir(state.path())
        .env("FLY_API_TOKEN", "test-token")
        .arg("--state")
        .arg(state.path().join("state"))
        .args(["--fly", "embedded", "run", "--git-url", "file:///nowhere"])
        .args(["--git-branch", "no..dots", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        common::text(&out).contains("--git-branch"),
        "{}",
        common::text(&out)
    );
}

/// Every signed push webhook leads to a fetch, a mutating Fly call and a finished deploy, round
/// after round in one `opsctl run` (alternating images). The time from webhook to the first
/// mutating call is printed, never asserted (it depends on the machine): 2 rounds by default;
/// for docs/performance.md, `OPSCTL_LATENCY_ROUNDS=7 cargo test --test git_remote --
/// --nocapture webhook_latency` and take the median.
#[test]
fn webhook_latency() {
    let rounds: usize = std::env::var("OPSCTL_LATENCY_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(2);
    let sim = Sim::start();
    let remote = Remote::new(OLD);
    let run = Run::start(&sim, &remote, "1h", &[]);
    let probe = Probe::new();
    let mut samples = Vec::new();
    for round in 0..rounds {
        let image = if round % 2 == 0 { NEW } else { OLD };
        let sha = remote.push(image);
        let latency = probe.webhook_to_first_mutation(&sim, &run, &sha);
        eprintln!("round {round}: webhook → first mutating Fly call {latency:?}");
        samples.push(latency);
        let done = run
            .finished(&sha, Duration::from_secs(60))
            .expect("deployed");
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    samples.sort();
    eprintln!(
        "webhook → first mutating Fly call over {rounds} rounds: median {:?}, min {:?}, max {:?}",
        samples[rounds / 2],
        samples[0],
        samples[rounds - 1]
    );
}

/// A git server that accepts the connection and never answers: SIGTERM during the first
/// fetch stops `opsctl run` cleanly (exit 0, at once), and takes git's helpers with it (no
/// `git-remote-http` left behind).
#[test]
fn sigterm_during_a_hung_first_fetch_exits_0_and_leaves_no_git_behind() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Hold every connection open without a byte of answer.
        let mut held = Vec::new();
        for conn in silent.incoming().flatten() {
            held.push(conn);
            let _ = tx.send(());
        }
    });
    let url = format!("http://tok:hung-SECRET@127.0.0.1:{port}/m.git");
    let state = tempfile::tempdir().unwrap();
    let mut child = opsctl()
        .current_dir(state.path())
        .env_remove("OPSCTL_WEBHOOK_SECRET")
        .env("OPSCTL_GIT_URL", &url)
        .env("FLY_API_TOKEN", "test-token")
        .arg("--state")
        .arg(state.path().join("state"))
        .args(["--fly", "embedded", "run", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    rx.recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("git never connected: {}", lines.all()));
    let git_helpers = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &format!("127.0.0.1:{port}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    common::send_signal(&child, "TERM");
    let status = eventually(Duration::from_secs(5), || child.try_wait().unwrap())
        .unwrap_or_else(|| panic!("no exit within 5 s of SIGTERM: {}", lines.all()));
    assert!(status.success(), "{status:?}: {}", lines.all());
    assert!(
        eventually(Duration::from_secs(2), || git_helpers()
            .is_empty()
            .then_some(()))
        .is_some(),
        "git processes left: {}",
        git_helpers()
    );
    assert!(!lines.all().contains("hung-SECRET"), "{}", lines.all());
}
