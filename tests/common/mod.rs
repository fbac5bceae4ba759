//! Shared harness for the integration tests: the real `opsctl` binary, a simulator started
//! with `opsctl sim serve`, a temporary state and manifests directory.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const OLD: &str = "registry.fly.io/lowendinsight:deployment-OLD";
pub const NEW: &str = "registry.fly.io/lowendinsight:deployment-NEW";
pub const BAD: &str = "registry.fly.io/lowendinsight:deployment-BAD";
pub const M1: &str = "148ed193b95d89";
pub const M2: &str = "3d8d413b29d089";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command for the real binary, with no inherited Fly settings.
pub fn opsctl() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsctl"));
    c.env_remove("OPSCTL_FLY")
        .env_remove("OPSCTL_MANIFESTS")
        .env_remove("OPSCTL_STATE")
        .env("NO_COLOR", "1");
    c
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A running `opsctl sim serve`; killed on drop.
pub struct Sim {
    child: Child,
    pub url: String,
}

impl Sim {
    pub fn start() -> Self {
        Self::start_with(&repo_root().join("examples/sim/lowendinsight.yaml"))
    }

    pub fn start_with(scenario: &Path) -> Self {
        let mut child = opsctl()
            .args(["sim", "serve", "--addr", "127.0.0.1:0", "--scenario"])
            .arg(scenario)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn opsctl sim serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read sim banner");
        let url = line
            .split_whitespace()
            .last()
            .expect("url in banner")
            .to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "banner: {line}");
        Self { child, url }
    }

    pub fn get(&self, path: &str) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("{}{path}", self.url))
                .bearer_auth("test-token")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        })
    }

    /// POST a JSON body to the simulator's control API (`/__sim/...`).
    pub fn control(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let resp = reqwest::Client::new()
                .post(format!("{}{path}", self.url))
                .json(&body)
                .send()
                .await
                .unwrap();
            resp.json().await.unwrap_or_default()
        })
    }

    /// DELETE on the simulator's control API.
    pub fn control_delete(&self, path: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::new()
                .delete(format!("{}{path}", self.url))
                .send()
                .await
                .unwrap();
        });
    }

    /// Images of the app's live machines (not destroying/destroyed), by id.
    pub fn images(&self) -> Vec<(String, String)> {
        let machines = self.get("/v1/apps/lowendinsight/machines");
        let mut v: Vec<(String, String)> = machines
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !matches!(m["state"].as_str(), Some("destroying" | "destroyed")))
            .map(|m| {
                (
                    m["id"].as_str().unwrap().to_owned(),
                    m["config"]["image"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// Request counts by route template.
    pub fn requests(&self) -> serde_json::Value {
        self.get("/__sim/requests")
    }

    /// How often one route (e.g. `POST /v1/apps/{app}/machines/{id}`) was called.
    pub fn count(&self, route: &str) -> u64 {
        self.requests()["endpoints"][route].as_u64().unwrap_or(0)
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A workspace: a manifests dir holding the shipped LowEndInsight manifest with `image`
/// (and a short `failAfter`), and a state dir.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new(image: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        let ws = Self { dir };
        ws.write_manifest(image);
        std::fs::write(ws.manifests().join("governance.yaml"), AUTO_DEPLOYS).unwrap();
        ws
    }

    /// Remove the tests' auto-deploy policy: the ADR's default governance applies.
    pub fn adr_governance(&self) {
        std::fs::remove_file(self.manifests().join("governance.yaml")).unwrap();
    }

    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Make the manifests directory a git checkout on `main` (once) and commit everything in
    /// it with `message`; the checkout's path.
    pub fn commit_all(&self, message: &str) -> PathBuf {
        let repo = self.manifests();
        if !repo.join(".git").exists() {
            git(&repo, &["init", "-q", "-b", "main"]);
        }
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", message]);
        repo
    }

    /// Switch the manifest's deploy strategy.
    pub fn set_strategy(&self, strategy: &str) {
        let path = self.manifests().join("lowendinsight.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(
            &path,
            text.replace("strategy: rolling", &format!("strategy: {strategy}")),
        )
        .unwrap();
    }

    pub fn write_manifest(&self, image: &str) {
        std::fs::write(self.manifests().join("lowendinsight.yaml"), manifest(image)).unwrap();
    }

    /// `opsctl` with --manifests, --state and --fly set, and a token.
    pub fn opsctl(&self, sim: &Sim) -> Command {
        let mut c = opsctl();
        c.arg("--manifests")
            .arg(self.manifests())
            .arg("--state")
            .arg(self.state())
            .args(["--fly", &sim.url]);
        c.env("FLY_API_TOKEN", "test-token");
        c
    }
}

/// The shipped manifest with another image and `failAfter: 2s` (tests stay quick).
/// The tests' policy: deploys are automatic in every burn-in phase, so tests that deploy again
/// and again are not gated by the ADR's first-10-deploys rule (issue #5). Migrations stay
/// human whatever a policy says.
pub const AUTO_DEPLOYS: &str = "\
apiVersion: opsctl.dev/v1alpha1
kind: GovernancePolicy
metadata: {name: tests-auto-deploys}
spec:
  gates:
    deploy: {phase1: auto, phase2: auto, phase3: auto}
";

pub fn manifest(image: &str) -> String {
    let shipped =
        std::fs::read_to_string(repo_root().join("manifests/lowendinsight.yaml")).unwrap();
    let mut out = String::new();
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("probes:") || trimmed.starts_with("- http:") {
            // The shipped manifest probes the real site; tests never reach the internet.
            continue;
        } else if trimmed.starts_with("image:") {
            out.push_str(&format!("{indent}image: {image}\n"));
        } else if trimmed.starts_with("failAfter:") {
            continue;
        } else if trimmed.starts_with("strategy:") {
            out.push_str(line);
            out.push('\n');
            out.push_str(&format!("{indent}failAfter: 2s\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(
        out.contains("failAfter: 2s"),
        "manifest has a deploy.strategy line"
    );
    out
}

/// Lines a child writes to stderr, collected in the background.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    pub fn collect(child: &mut Child) -> Self {
        let lines = Self::default();
        let stderr = child.stderr.take().expect("stderr piped");
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.0.lock().unwrap().push(line);
            }
        });
        lines
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.0.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn all(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// Poll `f` every 20 ms until it returns `Some`, or `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Workspace {
    /// Add a manifest `APP.yaml` for the Fly app `app`: the shipped LowEndInsight manifest
    /// under another name (for an app the simulator does not have, say).
    pub fn add_app(&self, app: &str, image: &str) {
        let text = manifest(image)
            .replace("name: lowendinsight", &format!("name: {app}"))
            .replace("app: lowendinsight", &format!("app: {app}"));
        std::fs::write(self.manifests().join(format!("{app}.yaml")), text).unwrap();
    }
}

/// A scenario file: the shipped LowEndInsight scenario plus `faults` (YAML list items, each
/// starting with `  - kind:`). Keep the returned directory alive while the file is used.
pub fn scenario_with_faults(faults: &str) -> (tempfile::TempDir, PathBuf) {
    let shipped =
        std::fs::read_to_string(repo_root().join("examples/sim/lowendinsight.yaml")).unwrap();
    assert!(
        !shipped.contains("\nfaults:"),
        "the shipped scenario has no faults"
    );
    let text = shipped.replacen("\napps:", &format!("\nfaults:\n{faults}\napps:"), 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// Send a signal (`"INT"`, `"TERM"`) to a child process with kill(1).
pub fn send_signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} failed");
}

/// Run `git` in `dir` with a fixed test identity; the trimmed stdout.
///
/// # Panics
/// When git fails (the message has git's stderr).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A TCP port free on 127.0.0.1 right now (for `opsctl run --listen`).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET url` from a test thread: `(status, body)`, or `None` when nothing answers.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::get(url).await.ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.text().await.ok()?))
    })
}

/// The deploy records under `state`, newest first, as `opsctl history -o json` lists them.
pub fn deploys(state: &Path) -> Vec<serde_json::Value> {
    let out = opsctl()
        .arg("--state")
        .arg(state)
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["deploys"].as_array().cloned().unwrap_or_default()
}
