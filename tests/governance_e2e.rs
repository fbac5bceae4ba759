//! Governance end to end (issue #5), the `opsctl` binary against the simulator, with the ADR's
//! default policy (no GovernancePolicy manifest): the first 10 deploys wait for
//! `opsctl approve`, the 11th (CI green, config unchanged) is automatic, a managed-config
//! change on the 12th is gated again. Plus plan/pending/approve/deny, a stale approval, and
//! the approval endpoint's 401.

mod common;

use std::process::Stdio;
use std::time::Duration;

use axum::Json;
use axum::extract::Path as UrlPath;
use axum::routing::get;
use common::{Lines, Sim, Workspace, free_port, git, text};
use serde_json::{Value, json};

/// A fake GitHub whose CI is green for every commit.
fn green_github() -> (String, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = rt.block_on(async move {
        let app = axum::Router::new()
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/status",
                get(
                    |UrlPath((_, _, sha)): UrlPath<(String, String, String)>| async move {
                        Json(json!({"state": "success", "sha": sha, "total_count": 1,
                            "statuses": [{"context": "ci/test", "state": "success"}]}))
                    },
                ),
            )
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/check-runs",
                get(|| async { Json(json!({"total_count": 0, "check_runs": []})) as Json<Value> }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    });
    (url, rt)
}

fn image(n: u32) -> String {
    format!("registry.fly.io/lowendinsight:deployment-G{n:02}")
}

/// Write the app's manifest deploying `image` with a CI pre-check against `github`, with an
/// extra env var when `extra_env`, and commit it.
fn commit_manifest(ws: &Workspace, image: &str, github: &str, extra_env: bool) {
    ws.write_manifest(image);
    let path = ws.manifests().join("lowendinsight.yaml");
    let mut manifest = std::fs::read_to_string(&path).unwrap();
    let gate = format!(
        "    preCheck:\n      releaseBranch: main\n      ci: {{repo: kitplummer/lowendinsight, apiUrl: \"{github}\", timeout: 0s}}\n"
    );
    manifest = manifest.replacen("  deploy:\n", &format!("  deploy:\n{gate}"), 1);
    if extra_env {
        manifest = manifest.replacen("  env:\n", "  env:\n    FEATURE_X: \"on\"\n", 1);
    }
    std::fs::write(&path, manifest).unwrap();
    git(&ws.manifests(), &["add", "-A"]);
    git(&ws.manifests(), &["commit", "-q", "-m", image]);
}

/// A workspace under the ADR's default governance, in a git checkout on `main`.
fn adr_workspace(github: &str) -> Workspace {
    let ws = Workspace::new(common::OLD);
    ws.adr_governance();
    git(&ws.manifests(), &["init", "-q", "-b", "main"]);
    commit_manifest(&ws, common::OLD, github, false);
    ws
}

fn run(ws: &Workspace, sim: &Sim, args: &[&str]) -> (i32, String, Value) {
    let out = ws.opsctl(sim).args(args).output().unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code().unwrap_or(-1), text(&out), json)
}

/// `apply -o json` → (exit code, the app's result).
fn apply(ws: &Workspace, sim: &Sim) -> (i32, Value, String) {
    let (code, shown, json) = run(ws, sim, &["apply", "-o", "json"]);
    (code, json["apps"][0].clone(), shown)
}

fn plan(ws: &Workspace, sim: &Sim) -> Value {
    let (code, shown, json) = run(ws, sim, &["plan", "-o", "json"]);
    assert!(code == 0 || code == 2, "{shown}");
    json["apps"][0].clone()
}

/// The ADR's default governance, the manifests committed on `image(1)`: `apply` queues the
/// deploy for approval (exit 3). The simulator, the fake GitHub (its runtime must live as long
/// as the test), the workspace and the pending approval's id.
fn pending_deploy() -> (Sim, tokio::runtime::Runtime, String, Workspace, String) {
    let sim = Sim::start();
    let (github, rt) = green_github();
    let ws = adr_workspace(&github);
    commit_manifest(&ws, &image(1), &github, false);
    let (code, app, shown) = apply(&ws, &sim);
    assert_eq!(code, 3, "{shown}");
    let id = app["approval"].as_str().unwrap().to_owned();
    (sim, rt, github, ws, id)
}

#[test]
fn twelve_deploys_ten_approved_the_eleventh_auto_a_config_change_gated_again() {
    let sim = Sim::start();
    let (github, _rt) = green_github();
    let ws = adr_workspace(&github);
    for n in 1..=10 {
        commit_manifest(&ws, &image(n), &github, false);
        let p = plan(&ws, &sim);
        let deploy = &p["actions"][0];
        assert_eq!(deploy["kind"], "deploy", "{p}");
        assert_eq!(deploy["verdict"], "gated", "deploy {n}: {p}");
        assert_eq!(
            deploy["rule"], "gate.deploy.phase1.gated",
            "deploy {n}: {p}"
        );
        assert_eq!(p["burn_in"]["count"], n - 1, "{p}");

        let (code, app, shown) = apply(&ws, &sim);
        assert_eq!(code, 3, "deploy {n} waits: {shown}");
        assert_eq!(app["outcome"], "waiting", "{app}");
        let id = app["approval"].as_str().unwrap().to_owned();
        if n == 1 {
            // `plan --out` writes the plan with the hash the approval is bound to.
            let out = ws.dir.path().join("plan.json");
            let (code, shown, _) = run(&ws, &sim, &["plan", "--out", out.to_str().unwrap()]);
            assert_eq!(code, 2, "{shown}");
            assert!(
                shown.contains(&format!("waiting for approval {id}")),
                "{shown}"
            );
            let saved: Value =
                serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
            assert_eq!(saved["apps"][0]["plan_hash"], p["plan_hash"]);
            assert_eq!(saved["apps"][0]["pending_approval"], id.as_str());
        }
        assert!(
            sim.images().iter().all(|(_, i)| *i != image(n)),
            "nothing deployed before approval"
        );
        // Asking again does not queue a second approval.
        let (code, again, _) = apply(&ws, &sim);
        assert_eq!((code, again["approval"].as_str()), (3, Some(id.as_str())));

        let (_, shown, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
        let list = pending["approvals"].as_array().unwrap();
        assert_eq!(list.len(), 1, "{shown}");
        assert_eq!(list[0]["id"], id.as_str());
        assert!(list[0]["age_secs"].as_i64().unwrap() >= 0);

        let (code, shown, _) = run(&ws, &sim, &["approve", &id]);
        assert_eq!(code, 0, "{shown}");
        let (code, app, shown) = apply(&ws, &sim);
        assert_eq!(code, 0, "deploy {n} runs once approved: {shown}");
        assert_eq!(app["outcome"], "deployed", "{app}");
        assert_eq!(app["record"]["status"], "succeeded", "{app}");
        assert_eq!(app["approval"], id.as_str());
        assert!(sim.images().iter().all(|(_, i)| *i == image(n)));
    }

    let (code, shown, status) = run(&ws, &sim, &["status", "-o", "json"]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(status["apps"][0]["governance"]["counted_deploys"], 10);
    assert_eq!(status["apps"][0]["governance"]["phase"], 2);

    // Deploy 11: phase 2, CI green, config unchanged → automatic.
    commit_manifest(&ws, &image(11), &github, false);
    let p = plan(&ws, &sim);
    assert_eq!(p["actions"][0]["verdict"], "auto", "{p}");
    assert_eq!(p["actions"][0]["rule"], "gate.deploy.phase2.auto-when-safe");
    let (code, app, shown) = apply(&ws, &sim);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(app["outcome"], "deployed");
    assert!(app.get("approval").is_none(), "{app}");
    assert!(sim.images().iter().all(|(_, i)| *i == image(11)));

    // Deploy 12 changes the managed config (an env var, as a fly.toml change would): gated.
    commit_manifest(&ws, &image(12), &github, true);
    let p = plan(&ws, &sim);
    assert_eq!(p["actions"][0]["verdict"], "gated", "{p}");
    assert_eq!(p["actions"][0]["rule"], "gate.deploy.phase2.config-changed");
    let (code, app, shown) = apply(&ws, &sim);
    assert_eq!(code, 3, "{shown}");
    assert_eq!(app["outcome"], "waiting");
    assert!(sim.images().iter().all(|(_, i)| *i == image(11)));

    let (_, shown, _) = run(&ws, &sim, &["status"]);
    assert!(
        shown.contains("burn-in phase 2, 11 counted deploy(s)"),
        "{shown}"
    );
}

/// An approval is bound to the observed state: a machine changed by someone else makes it
/// stale; `approve` refuses, shows the new plan, and the next pass queues a new approval.
#[test]
fn a_stale_approval_is_refused_and_the_new_plan_shown() {
    let (sim, _rt, _github, ws, id) = pending_deploy();

    // Someone updates M1 by hand: a new instance version, so a new observed state.
    let m1 = sim.get(&format!("/v1/apps/lowendinsight/machines/{}", common::M1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(format!(
                "{}/v1/apps/lowendinsight/machines/{}",
                sim.url,
                common::M1
            ))
            .bearer_auth("test-token")
            .json(&json!({"config": m1["config"]}))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert!(status.is_success(), "{status}");

    let (code, shown, _) = run(&ws, &sim, &["approve", &id]);
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("is stale"), "{shown}");
    assert!(
        shown.contains("gate.deploy.phase1.gated"),
        "new plan shown: {shown}"
    );
    let (_, _, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    assert_eq!(pending["approvals"].as_array().unwrap().len(), 0);
    // Nothing was deployed; the next pass asks again with the new plan.
    let (code, app, _) = apply(&ws, &sim);
    assert_eq!(code, 3);
    assert_ne!(app["approval"].as_str(), Some(id.as_str()));
    assert!(sim.images().iter().all(|(_, i)| *i != image(1)));
}

/// An approval covers the whole desired state it was shown: approve a deploy, then change an
/// env value in the manifests (same image) — the approved plan is not run with the change; a
/// new approval is asked for, and the plan names the config change. A denial does not carry
/// over to a changed manifest either.
#[test]
fn an_approval_or_denial_does_not_carry_over_to_a_changed_manifest() {
    let (sim, _rt, github, ws, first) = pending_deploy();
    let (code, shown, _) = run(&ws, &sim, &["approve", &first]);
    assert_eq!(code, 0, "{shown}");

    // Same image, one more env var: the approval was not for this.
    commit_manifest(&ws, &image(1), &github, true);
    let (code, app, shown) = apply(&ws, &sim);
    assert_eq!(code, 3, "a new approval is needed: {shown}");
    let second = app["approval"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert!(
        sim.images().iter().all(|(_, i)| *i != image(1)),
        "nothing deployed"
    );
    let planned = plan(&ws, &sim);
    assert!(
        planned.to_string().contains("env FEATURE_X"),
        "the plan names the config change: {planned}"
    );

    // Denied, then the manifest changes back: the denial was for the other desired state.
    let (code, shown, _) = run(&ws, &sim, &["deny", &second]);
    assert_eq!(code, 0, "{shown}");
    commit_manifest(&ws, &image(1), &github, false);
    let (code, app, shown) = apply(&ws, &sim);
    assert_eq!(code, 3, "asked again, not denied: {shown}");
    assert_ne!(app["outcome"], "denied", "{app}");
}

/// `deny` refuses the plan: `apply` does not deploy it and says so.
#[test]
fn a_denied_plan_is_not_deployed() {
    let (sim, _rt, _github, ws, id) = pending_deploy();
    let (code, shown, _) = run(&ws, &sim, &["deny", &id]);
    assert_eq!(code, 0, "{shown}");
    let (code, shown, _) = run(&ws, &sim, &["approve", &id]);
    assert_eq!(code, 1, "a decided approval cannot be approved: {shown}");
    assert!(shown.contains("is denied, not pending"), "{shown}");
    let (code, app, shown) = apply(&ws, &sim);
    assert_eq!(code, 1, "{shown}");
    assert_eq!(app["outcome"], "denied");
    assert_eq!(app["rule"], "human.denied");
    // `plan` says so too, for the same plan.
    let (_, shown, _) = run(&ws, &sim, &["plan"]);
    assert!(
        shown.contains(&format!("denied by a human ({id})")),
        "{shown}"
    );
    assert_eq!(plan(&ws, &sim)["approval"]["state"], "denied");
    assert!(sim.images().iter().all(|(_, i)| *i != image(1)));
}

/// `opsctl run` waits for approval; the endpoint rejects unauthenticated requests (401) and
/// accepts an approval with the token and the plan hash; the reconciler then deploys.
#[test]
fn run_waits_and_the_endpoint_approves_with_a_token_only() {
    let sim = Sim::start();
    let (github, _rt) = green_github();
    let ws = adr_workspace(&github);
    commit_manifest(&ws, &image(1), &github, false);
    let port = free_port();
    let mut child = ws
        .opsctl(&sim)
        .args([
            "run",
            "--resync",
            "1h",
            "--poll",
            "100ms",
            "--approval-poll",
            "200ms",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("OPSCTL_APPROVAL_TOKEN", "chat-ops-token")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    assert!(
        lines.wait_for("waiting for approval", Duration::from_secs(30)),
        "{}",
        lines.all()
    );
    let (_, _, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    let id = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    let hash = pending["approvals"][0]["plan_hash"]
        .as_str()
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/approvals/{id}/approve");
    let post = |token: Option<&str>| {
        rt.block_on(async {
            let mut req = reqwest::Client::new()
                .post(&url)
                .json(&json!({"plan_hash": hash}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send().await.unwrap().status().as_u16()
        })
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some("wrong")), 401);
    assert!(sim.images().iter().all(|(_, i)| *i != image(1)));
    assert_eq!(post(Some("chat-ops-token")), 200);
    assert!(
        common::eventually(Duration::from_secs(30), || sim
            .images()
            .iter()
            .all(|(_, i)| *i == image(1))
            .then_some(()))
        .is_some(),
        "deployed after approval: {}",
        lines.all()
    );
    common::send_signal(&child, "INT");
    assert!(child.wait().unwrap().success());
    assert!(
        !lines.all().contains("chat-ops-token"),
        "token never logged"
    );
}

/// `opsctl approve` works while `opsctl run` holds the state directory: the decision goes to
/// the inbox and the reconciler deploys on its next pass.
#[test]
fn run_picks_up_an_approval_made_with_the_cli() {
    let sim = Sim::start();
    let (github, _rt) = green_github();
    let ws = adr_workspace(&github);
    commit_manifest(&ws, &image(1), &github, false);
    let mut child = ws
        .opsctl(&sim)
        .args([
            "run",
            "--resync",
            "1h",
            "--poll",
            "100ms",
            "--approval-poll",
            "200ms",
        ])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    assert!(
        lines.wait_for("waiting for approval", Duration::from_secs(30)),
        "{}",
        lines.all()
    );
    let (_, _, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    let id = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    let (code, shown, json) = run(&ws, &sim, &["approve", &id, "-o", "json"]);
    assert_eq!(code, 0, "{shown}");
    assert_eq!(json["state"], "approved", "{json}");
    assert!(
        common::eventually(Duration::from_secs(30), || sim
            .images()
            .iter()
            .all(|(_, i)| *i == image(1))
            .then_some(()))
        .is_some(),
        "deployed after approval: {}",
        lines.all()
    );
    common::send_signal(&child, "INT");
    assert!(child.wait().unwrap().success());
    let (_, _, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    assert_eq!(
        pending["approvals"].as_array().unwrap().len(),
        0,
        "{pending}"
    );
}

/// `approve` against `--fly embedded` cannot see the Fly the plan was made on (a new simulator
/// starts in that process): it says so and how to approve instead, and decides nothing — the
/// approval stays pending, never closed as stale.
#[test]
fn approve_refuses_an_embedded_fly_and_leaves_the_approval_pending() {
    let (sim, _rt, _github, ws, id) = pending_deploy();
    let out = common::opsctl()
        .arg("--manifests")
        .arg(ws.manifests())
        .arg("--state")
        .arg(ws.state())
        .args(["--fly", "embedded", "approve", &id])
        .output()
        .unwrap();
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("--fly embedded"), "{said}");
    assert!(said.contains(&format!("/approvals/{id}/approve")), "{said}");
    let (_, _, pending) = run(&ws, &sim, &["pending", "-o", "json"]);
    assert_eq!(pending["approvals"][0]["id"], id.as_str(), "{pending}");
}
