//! The PreCheck stage inside a deploy (issue #4): a commit whose CI failed, or that is not on
//! the release branch, deploys nothing; the record says which check failed; a green commit on
//! the release branch deploys.

mod common;

use axum::Json;
use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use common::{M1, M2, NEW, OLD, Sim, Workspace, git, text};
use serde_json::{Value, json};

/// A fake GitHub answering every commit with `state` for one status context `ci/test`.
fn fake_github(state: &'static str) -> (String, tokio::runtime::Runtime) {
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
                    |State(state): State<&'static str>,
                     UrlPath((_, _, sha)): UrlPath<(String, String, String)>| async move {
                        Json(json!({"state": state, "sha": sha, "total_count": 1,
                                "statuses": [{"context": "ci/test", "state": state}]}))
                    },
                ),
            )
            .route(
                "/repos/{owner}/{repo}/commits/{sha}/check-runs",
                get(|| async { Json(json!({"total_count": 0, "check_runs": []})) as Json<Value> }),
            )
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    });
    (url, rt)
}

fn workspace_with_precheck(github: &str) -> Workspace {
    let ws = Workspace::new(NEW);
    let path = ws.manifests().join("lowendinsight.yaml");
    let manifest = std::fs::read_to_string(&path).unwrap();
    let gate = format!(
        "    preCheck:\n      releaseBranch: main\n      ci: {{repo: kitplummer/lowendinsight, apiUrl: \"{github}\", timeout: 0s}}\n"
    );
    let manifest = manifest.replacen("  deploy:\n", &format!("  deploy:\n{gate}"), 1);
    std::fs::write(&path, manifest).unwrap();
    git(&ws.manifests(), &["init", "-q", "-b", "main"]);
    git(&ws.manifests(), &["add", "."]);
    git(&ws.manifests(), &["commit", "-q", "-m", "deploy NEW"]);
    ws
}

#[test]
fn red_ci_deploys_nothing_and_says_which_check_failed() {
    let (github, _rt) = fake_github("failure");
    let sim = Sim::start();
    let ws = workspace_with_precheck(&github);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("pre-check blocked")
            && shown.contains("ci_status")
            && shown.contains("ci/test"),
        "{shown}"
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        0,
        "nothing touched"
    );
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );

    // The failure is recorded once; a second pass on the same commit says it again without a
    // new record.
    let again = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(again.status.code(), Some(1));
    let out = ws
        .opsctl(&sim)
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let history: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deploys = history["deploys"].as_array().unwrap();
    assert_eq!(deploys.len(), 1, "{history}");
    assert_eq!(deploys[0]["status"], "failed");
    assert!(deploys[0]["release"].is_null(), "no release created");
}

#[test]
fn green_ci_on_the_release_branch_deploys() {
    let (github, _rt) = fake_github("success");
    let sim = Sim::start();
    let ws = workspace_with_precheck(&github);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
}

#[test]
fn a_commit_off_the_release_branch_deploys_nothing() {
    let (github, _rt) = fake_github("success");
    let sim = Sim::start();
    let ws = workspace_with_precheck(&github);
    git(&ws.manifests(), &["checkout", "-q", "-b", "feature"]);
    std::fs::write(ws.manifests().join("note.txt"), "x").unwrap();
    git(&ws.manifests(), &["add", "."]);
    git(&ws.manifests(), &["commit", "-q", "-m", "feature work"]);
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("release_branch"), "{shown}");
    assert_eq!(sim.count("POST /v1/apps/{app}/machines/{id}"), 0);
}
