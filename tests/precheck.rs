//! The deploy pipeline's `PreCheck` stage (issue #4, DESIGN.md §5): the `ci_status` gate
//! against a local fake GitHub that serves scripted answers and records every request, the
//! `release_branch` gate against temporary git repositories, and the `spec.deploy.preCheck`
//! manifest block (defaults, and located errors for bad values).
//!
//! Timing: waits use real time with polls of a few milliseconds and timeouts well under a
//! second; the fake counts looks, so the tests assert how often GitHub was asked, not how long
//! anything took.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use opsctl::precheck::{self, CheckName, Outcome, Polling, PreCheck, PreCheckReport};
use opsctl::runtime::clock::SystemClock;
use opsctl::secret::Secret;
use opsctl_crds::flyapp::PreCheckSpec;
use serde_json::{Value, json};
use tokio::sync::watch;

const SHA: &str = "6dcb09b5b57875f334f61aebed695e2e4193db5e";
const TOKEN: &str = "ghp_TestToken0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// A fake GitHub: `GET /repos/{owner}/{repo}/commits/{sha}/{status,check-runs}`.

/// What the fake answers on one look (one combined-status read and its check-runs read).
#[derive(Clone, Default)]
struct Scene {
    /// Commit statuses (`{context, state}`), served 100 a page as GitHub does.
    statuses: Vec<Value>,
    /// Check runs (`{name, status, conclusion}`), served 100 a page.
    runs: Vec<Value>,
    /// Answer the status read with this instead.
    error: Option<Refusal>,
}

/// An error answer: HTTP status, JSON body, extra headers.
#[derive(Clone)]
struct Refusal(u16, Value, Vec<(&'static str, String)>);

fn green() -> Scene {
    Scene {
        statuses: vec![status("ci/jenkins", "success")],
        runs: vec![run("test", "completed", Some("success"))],
        error: None,
    }
}

fn status(context: &str, state: &str) -> Value {
    json!({"context": context, "state": state, "description": null, "target_url": null, "id": 1})
}

fn run(name: &str, status: &str, conclusion: Option<&str>) -> Value {
    json!({"id": 4, "name": name, "status": status, "conclusion": conclusion,
           "html_url": format!("https://github.com/octo/app/runs/{name}")})
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    query: String,
    headers: HeaderMap,
}

#[derive(Default)]
struct FakeState {
    /// Scene `n` answers look `n` at each endpoint; the last one repeats.
    scenes: Vec<Scene>,
    /// First-page reads of the combined status so far.
    looks: usize,
    /// First-page reads of the check runs so far.
    run_looks: usize,
    requests: Vec<Seen>,
}

struct FakeGitHub {
    url: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeGitHub {
    async fn start(scenes: Vec<Scene>) -> Self {
        let state = Arc::new(Mutex::new(FakeState {
            scenes,
            ..FakeState::default()
        }));
        let app = Router::new().fallback(answer).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn requests(&self) -> Vec<Seen> {
        self.state.lock().unwrap().requests.clone()
    }

    fn looks(&self) -> usize {
        self.state.lock().unwrap().looks
    }
}

/// A numeric query parameter.
fn param(query: &str, name: &str) -> Option<usize> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

fn page_of(items: &[Value], query: &str) -> Vec<Value> {
    let per_page = param(query, "per_page").unwrap_or(30);
    let page = param(query, "page").unwrap_or(1);
    items
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect()
}

async fn answer(
    State(state): State<Arc<Mutex<FakeState>>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let mut s = state.lock().unwrap();
    let path = uri.path().to_owned();
    let query = uri.query().unwrap_or_default().to_owned();
    s.requests.push(Seen {
        path: path.clone(),
        query: query.clone(),
        headers,
    });
    // The two reads of one look may arrive in either order: each endpoint counts its own.
    let first_page = param(&query, "page").unwrap_or(1) == 1;
    let look = if path.ends_with("/status") {
        s.looks += usize::from(first_page);
        s.looks
    } else {
        s.run_looks += usize::from(first_page && path.ends_with("/check-runs"));
        s.run_looks
    };
    let scene = s.scenes[look.saturating_sub(1).min(s.scenes.len() - 1)].clone();
    if !path.starts_with("/repos/octo/app/commits/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Not Found"})),
        )
            .into_response();
    }
    if path.ends_with("/status") {
        if let Some(Refusal(code, body, extra)) = scene.error {
            let mut response =
                (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response();
            for (name, value) in extra {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            return response;
        }
        let page = page_of(&scene.statuses, &query);
        let state = if scene.statuses.is_empty() {
            "pending"
        } else {
            "success"
        };
        return axum::Json(json!({"state": state, "sha": SHA, "statuses": page,
                                 "total_count": scene.statuses.len()}))
        .into_response();
    }
    if path.ends_with("/check-runs") {
        let page = page_of(&scene.runs, &query);
        return axum::Json(json!({"total_count": scene.runs.len(), "check_runs": page}))
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"message": "Not Found"})),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// Running the pre-check.

fn ci_spec(api_url: &str, extra: Value) -> PreCheckSpec {
    let mut ci = json!({"repo": "octo/app", "apiUrl": api_url, "timeout": "5s"});
    for (k, v) in extra.as_object().unwrap() {
        ci[k] = v.clone();
    }
    serde_json::from_value(json!({ "ci": ci })).unwrap()
}

fn fast() -> Polling {
    Polling {
        first: Duration::from_millis(5),
        max: Duration::from_millis(20),
        attempts: 3,
        request_timeout: Duration::from_secs(5),
        git_timeout: Duration::from_secs(10),
    }
}

fn runner(stop: watch::Receiver<bool>) -> PreCheck {
    let mut p = PreCheck::new(reqwest::Client::new(), Arc::new(SystemClock), stop);
    p.polling = fast();
    p
}

async fn check(spec: &PreCheckSpec, token: Option<&str>) -> PreCheckReport {
    let (_tx, stop) = watch::channel(false);
    runner(stop)
        .run(spec, SHA, Path::new("."), token.map(Secret::new))
        .await
}

fn ci(report: &PreCheckReport) -> &Outcome {
    &report.get(CheckName::CiStatus).unwrap().outcome
}

// ---------------------------------------------------------------------------------------------
// ci_status

#[tokio::test]
async fn all_green_passes_and_sends_githubs_headers() {
    let gh = FakeGitHub::start(vec![green()]).await;
    let report = check(&ci_spec(&gh.url, json!({})), Some(TOKEN)).await;

    assert_eq!(
        ci(&report),
        &Outcome::Passed("1 check run and 1 commit status passed".into())
    );
    assert!(report.passed(), "{report}");
    assert_eq!(
        report.get(CheckName::ReleaseBranch).unwrap().outcome,
        Outcome::Skipped("no releaseBranch in spec.deploy.preCheck".into())
    );
    assert!(matches!(
        report.get(CheckName::ConfigValid).unwrap().outcome,
        Outcome::Passed(_)
    ));

    let requests = gh.requests();
    let mut paths: Vec<_> = requests.iter().map(|r| r.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            format!("/repos/octo/app/commits/{SHA}/check-runs"),
            format!("/repos/octo/app/commits/{SHA}/status"),
        ]
    );
    for r in &requests {
        assert_eq!(r.query, "per_page=100&page=1");
        let h = |name: &str| r.headers.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(h("authorization"), Some(&*format!("Bearer {TOKEN}")));
        assert_eq!(h("accept"), Some("application/vnd.github+json"));
        assert_eq!(h("x-github-api-version"), Some("2022-11-28"));
        assert!(h("user-agent").is_some_and(|ua| ua.starts_with("opsctl/")));
    }
}

#[tokio::test]
async fn one_failed_check_run_fails_naming_it() {
    let mut scene = green();
    scene.runs.push(run("e2e", "completed", Some("timed_out")));
    let gh = FakeGitHub::start(vec![scene]).await;
    let report = check(&ci_spec(&gh.url, json!({})), Some(TOKEN)).await;

    let Outcome::Failed(why) = ci(&report) else {
        panic!("expected failed: {report}");
    };
    assert!(why.contains("check run `e2e` concluded timed_out"), "{why}");
    assert!(!report.passed());
    assert!(
        report
            .to_string()
            .starts_with("pre-check blocked 6dcb09b: ci_status failed: check run `e2e`"),
        "{report}"
    );
    assert_eq!(gh.looks(), 1, "a failure is final: no second look");
}

#[tokio::test]
async fn pending_then_success_passes_after_waiting() {
    let pending = Scene {
        statuses: vec![status("ci/jenkins", "pending")],
        runs: vec![run("test", "in_progress", None)],
        error: None,
    };
    let gh = FakeGitHub::start(vec![pending.clone(), pending, green()]).await;
    let report = check(&ci_spec(&gh.url, json!({})), None).await;

    assert!(matches!(ci(&report), Outcome::Passed(_)), "{report}");
    assert_eq!(gh.looks(), 3);
}

#[tokio::test]
async fn no_ci_result_yet_is_waited_for() {
    let nothing = Scene::default();
    let gh = FakeGitHub::start(vec![nothing, green()]).await;
    let report = check(&ci_spec(&gh.url, json!({})), None).await;
    assert!(matches!(ci(&report), Outcome::Passed(_)), "{report}");
    assert_eq!(gh.looks(), 2);
}

#[tokio::test]
async fn pending_forever_fails_after_the_timeout() {
    let pending = Scene {
        runs: vec![run("test", "queued", None)],
        ..Scene::default()
    };
    let gh = FakeGitHub::start(vec![pending]).await;
    let started = Instant::now();
    let report = check(&ci_spec(&gh.url, json!({"timeout": "300ms"})), None).await;

    assert_eq!(
        ci(&report),
        &Outcome::Failed("CI still pending after 300ms: check run `test` is queued".into())
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        gh.looks() >= 3,
        "polled while waiting: {} looks",
        gh.looks()
    );
}

#[tokio::test]
async fn a_stop_request_ends_the_wait_as_pending() {
    let pending = Scene {
        runs: vec![run("test", "queued", None)],
        ..Scene::default()
    };
    let gh = FakeGitHub::start(vec![pending]).await;
    let (tx, stop) = watch::channel(false);
    let spec = ci_spec(&gh.url, json!({"timeout": "1h"}));
    let task =
        tokio::spawn(async move { runner(stop).run(&spec, SHA, Path::new("."), None).await });
    tokio::time::timeout(Duration::from_secs(10), async {
        while gh.looks() < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the runner keeps looking while CI is pending");
    tx.send(true).unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the wait ends on stop")
        .unwrap();
    let Outcome::Pending(why) = ci(&report) else {
        panic!("expected pending: {report}");
    };
    assert!(why.contains("asked to stop"), "{why}");
    assert!(!report.passed());
}

#[tokio::test]
async fn server_errors_are_retried_then_unknown() {
    let broken = Scene {
        error: Some(Refusal(502, json!({"message": "Server Error"}), vec![])),
        ..Scene::default()
    };
    let gh = FakeGitHub::start(vec![broken]).await;
    let report = check(&ci_spec(&gh.url, json!({})), Some(TOKEN)).await;

    let Outcome::Unknown(why) = ci(&report) else {
        panic!("expected unknown: {report}");
    };
    assert!(why.contains("GitHub answered 502"), "{why}");
    assert!(why.contains("gave up after 3 attempts"), "{why}");
    assert_eq!(gh.looks(), 3);
    assert!(!report.passed(), "an unknown blocks the deploy");
}

#[tokio::test]
async fn a_5xx_that_clears_is_not_reported() {
    let broken = Scene {
        error: Some(Refusal(500, json!({"message": "Server Error"}), vec![])),
        ..Scene::default()
    };
    let gh = FakeGitHub::start(vec![broken, green()]).await;
    let report = check(&ci_spec(&gh.url, json!({})), None).await;
    assert!(matches!(ci(&report), Outcome::Passed(_)), "{report}");
}

#[tokio::test]
async fn unreachable_github_is_unknown() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let report = check(&ci_spec(&url, json!({})), Some(TOKEN)).await;

    let Outcome::Unknown(why) = ci(&report) else {
        panic!("expected unknown: {report}");
    };
    assert!(
        why.starts_with("GitHub could not be reached: GET /repos/octo/app/commits/"),
        "{why}"
    );
    assert!(
        !why.contains("127.0.0.1"),
        "errors name the path, not the host: {why}"
    );
}

#[tokio::test]
async fn rate_limited_is_unknown_at_once() {
    let limited = Scene {
        error: Some(Refusal(
            403,
            json!({"message": "API rate limit exceeded for 203.0.113.42."}),
            vec![
                ("x-ratelimit-remaining", "0".into()),
                ("x-ratelimit-reset", "1714150800".into()),
            ],
        )),
        ..Scene::default()
    };
    let gh = FakeGitHub::start(vec![limited]).await;
    let report = check(&ci_spec(&gh.url, json!({})), Some(TOKEN)).await;

    let Outcome::Unknown(why) = ci(&report) else {
        panic!("expected unknown: {report}");
    };
    assert!(why.contains("rate-limited"), "{why}");
    assert!(why.contains("resets at 2024-04-26T17:00:00Z"), "{why}");
    assert_eq!(gh.looks(), 1, "a rate limit is not hammered");
}

#[tokio::test]
async fn a_refusal_says_what_to_fix() {
    let gh = FakeGitHub::start(vec![green()]).await;
    let mut spec = ci_spec(&gh.url, json!({}));
    spec.ci.as_mut().unwrap().repo = "octo/other".parse().unwrap();
    let report = check(&spec, None).await;

    let Outcome::Unknown(why) = ci(&report) else {
        panic!("expected unknown: {report}");
    };
    assert!(
        why.contains("refused GET /repos/octo/other/commits/"),
        "{why}"
    );
    assert!(why.contains("404: Not Found"), "{why}");
    assert!(
        why.contains("no token was sent: GITHUB_TOKEN is unset"),
        "{why}"
    );
}

#[tokio::test]
async fn required_contexts_subset_is_honoured() {
    let mut scene = green();
    scene.runs.push(run("lint", "completed", Some("failure")));
    scene.statuses.push(status("deploy-gate", "success"));
    let gh = FakeGitHub::start(vec![scene]).await;
    let spec = ci_spec(&gh.url, json!({"required": ["test", "deploy-gate"]}));
    let report = check(&spec, None).await;
    let Outcome::Passed(why) = ci(&report) else {
        panic!("a failing check that is not required is ignored: {report}");
    };
    assert!(why.contains("required: deploy-gate, test"), "{why}");
    assert!(
        why.contains("ignored: check run `lint` concluded failure"),
        "{why}"
    );

    // The same commit with `lint` required fails, naming it.
    let spec = ci_spec(&gh.url, json!({"required": ["lint"]}));
    let report = check(&spec, None).await;
    assert!(
        matches!(ci(&report), Outcome::Failed(why) if why.starts_with("check run `lint` concluded failure")),
        "{report}"
    );

    // A required name that never reports keeps CI pending until the timeout.
    let spec = ci_spec(&gh.url, json!({"required": ["e2e"], "timeout": "50ms"}));
    let report = check(&spec, None).await;
    assert_eq!(
        ci(&report),
        &Outcome::Failed(
            "CI still pending after 50ms: required check `e2e` has not been reported".into()
        )
    );
}

#[tokio::test]
async fn every_page_is_read() {
    let mut scene = green();
    scene.runs = (0..150)
        .map(|i| run(&format!("job-{i}"), "completed", Some("success")))
        .collect();
    scene
        .runs
        .push(run("job-last", "completed", Some("failure")));
    let gh = FakeGitHub::start(vec![scene]).await;
    let report = check(&ci_spec(&gh.url, json!({})), None).await;
    assert!(
        matches!(ci(&report), Outcome::Failed(why) if why.contains("`job-last`")),
        "the failure is on page 2: {report}"
    );
    let pages: Vec<_> = gh
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/check-runs"))
        .map(|r| r.query)
        .collect();
    assert_eq!(pages, ["per_page=100&page=1", "per_page=100&page=2"]);
}

#[tokio::test]
async fn the_token_is_sent_but_never_reported() {
    // GitHub echoing the token back in an error is the worst case; the report redacts it.
    let echo = Scene {
        error: Some(Refusal(
            401,
            json!({"message": format!("Bad credentials: {TOKEN}")}),
            vec![],
        )),
        ..Scene::default()
    };
    let gh = FakeGitHub::start(vec![echo]).await;
    let report = check(&ci_spec(&gh.url, json!({})), Some(TOKEN)).await;

    assert!(
        matches!(ci(&report), Outcome::Unknown(why) if why.contains("Bad credentials: [redacted]"))
    );
    let everything = format!(
        "{report}\n{report:?}\n{}",
        serde_json::to_string(&report).unwrap()
    );
    assert!(!everything.contains(TOKEN), "{everything}");
    let sent = gh.requests()[0].headers.get("authorization").cloned();
    assert_eq!(sent.unwrap(), format!("Bearer {TOKEN}").as_str());
}

#[tokio::test]
async fn without_a_token_no_authorization_header_is_sent() {
    let gh = FakeGitHub::start(vec![green()]).await;
    let report = check(&ci_spec(&gh.url, json!({})), None).await;
    assert!(report.passed(), "{report}");
    assert!(
        gh.requests()
            .iter()
            .all(|r| !r.headers.contains_key("authorization"))
    );
}

#[tokio::test]
async fn a_malformed_commit_id_reaches_neither_github_nor_git() {
    let gh = FakeGitHub::start(vec![green()]).await;
    let mut spec = ci_spec(&gh.url, json!({}));
    spec.release_branch = Some("main".parse().unwrap());
    let (_tx, stop) = watch::channel(false);
    let report = runner(stop)
        .run(&spec, "--upload-pack=evil", Path::new("."), None)
        .await;
    assert!(matches!(ci(&report), Outcome::Unknown(why) if why.contains("not a commit id")));
    assert!(matches!(
        &report.get(CheckName::ReleaseBranch).unwrap().outcome,
        Outcome::Unknown(why) if why.contains("not a commit id")
    ));
    assert!(gh.requests().is_empty());
}

#[tokio::test]
async fn nothing_configured_skips_both_gates_and_passes() {
    let (_tx, stop) = watch::channel(false);
    let report = precheck::run(
        &PreCheckSpec::default(),
        SHA,
        Path::new("."),
        &reqwest::Client::new(),
        None,
        Arc::new(SystemClock),
        stop,
    )
    .await;
    assert!(report.passed());
    let kinds: Vec<_> = report
        .checks
        .iter()
        .map(|c| (c.check, c.outcome.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            (CheckName::CiStatus, "skipped"),
            (CheckName::ReleaseBranch, "skipped"),
            (CheckName::ConfigValid, "passed"),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// release_branch

fn git(dir: &Path, args: &[&str]) -> String {
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

fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["commit", "-q", "--allow-empty", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// An upstream repository with `main` (two commits), cloned as the manifests checkout; then in
/// the checkout a local commit on `main` (not pushed) and one on a side branch.
struct Repos {
    _tmp: tempfile::TempDir,
    checkout: PathBuf,
    pushed: String,
    local_only: String,
    side: String,
}

fn repos() -> Repos {
    let tmp = tempfile::tempdir().unwrap();
    let upstream = tmp.path().join("upstream");
    std::fs::create_dir(&upstream).unwrap();
    git(&upstream, &["init", "-q", "-b", "main"]);
    commit(&upstream, "first");
    let pushed = commit(&upstream, "second");
    let checkout = tmp.path().join("checkout");
    git(
        tmp.path(),
        &["clone", "-q", upstream.to_str().unwrap(), "checkout"],
    );
    let local_only = commit(&checkout, "local, not pushed");
    git(&checkout, &["checkout", "-q", "-b", "experiment", &pushed]);
    let side = commit(&checkout, "on a side branch");
    Repos {
        _tmp: tmp,
        checkout,
        pushed,
        local_only,
        side,
    }
}

async fn on_branch(dir: &Path, commit: &str, branch: &str) -> Outcome {
    let spec: PreCheckSpec = serde_json::from_value(json!({"releaseBranch": branch})).unwrap();
    let (_tx, stop) = watch::channel(false);
    let report = runner(stop).run(&spec, commit, dir, None).await;
    report
        .get(CheckName::ReleaseBranch)
        .unwrap()
        .outcome
        .clone()
}

#[tokio::test]
async fn a_commit_on_the_release_branch_passes() {
    let r = repos();
    let short = &r.pushed[..7];
    assert_eq!(
        on_branch(&r.checkout, &r.pushed, "main").await,
        Outcome::Passed(format!("commit {short} is on origin/main"))
    );
    let short = &r.local_only[..7];
    assert_eq!(
        on_branch(&r.checkout, &r.local_only, "main").await,
        Outcome::Passed(format!("commit {short} is on main"))
    );
}

#[tokio::test]
async fn a_commit_on_a_side_branch_fails() {
    let r = repos();
    let short = &r.side[..7];
    assert_eq!(
        on_branch(&r.checkout, &r.side, "main").await,
        Outcome::Failed(format!(
            "commit {short} is not on the release branch main (not reachable from origin/main or main)"
        ))
    );
}

#[tokio::test]
async fn a_missing_branch_or_commit_cannot_be_evaluated() {
    let r = repos();
    assert!(matches!(
        on_branch(&r.checkout, &r.pushed, "release").await,
        Outcome::Unknown(why) if why.starts_with("neither origin/release nor release exists")
    ));
    let stranger = "0123456789abcdef0123456789abcdef01234567";
    assert!(matches!(
        on_branch(&r.checkout, stranger, "main").await,
        Outcome::Unknown(why) if why.starts_with("commit 0123456 is not in the checkout")
    ));
    let not_a_repo = tempfile::tempdir().unwrap();
    assert!(matches!(
        on_branch(not_a_repo.path(), &r.pushed, "main").await,
        Outcome::Unknown(_)
    ));
}

#[tokio::test]
async fn when_the_branch_blocks_ci_is_looked_at_once_without_waiting() {
    let r = repos();
    let pending = Scene {
        runs: vec![run("test", "in_progress", None)],
        ..Scene::default()
    };
    let gh = FakeGitHub::start(vec![pending]).await;
    let mut spec = ci_spec(&gh.url, json!({"timeout": "1h"}));
    spec.release_branch = Some("main".parse().unwrap());
    let (_tx, stop) = watch::channel(false);
    let report = runner(stop).run(&spec, &r.side, &r.checkout, None).await;

    assert_eq!(
        ci(&report),
        &Outcome::Pending(
            "check run `test` is in_progress; not waited for: release_branch is failed".into()
        )
    );
    assert_eq!(gh.looks(), 1);
    let blocking: Vec<_> = report.blocking().map(|c| c.check).collect();
    assert_eq!(blocking, [CheckName::CiStatus, CheckName::ReleaseBranch]);
}

// ---------------------------------------------------------------------------------------------
// spec.deploy.preCheck in manifests

const APP: &str = "\
apiVersion: opsctl.dev/v1alpha1
kind: FlyApp
metadata: {name: web}
spec:
  image: registry.fly.io/web:deployment-1
  processGroups: {app: {regions: {iad: 1}}}
  checks: {alive: {type: tcp, port: 8080}}
  deploy:
    preCheck:
";

fn load(pre_check: &str) -> Result<opsctl_crds::ManifestSet, opsctl_crds::LoadError> {
    opsctl_crds::load_str(Path::new("m.yaml"), &format!("{APP}{pre_check}"))
}

/// The single error of a manifest whose preCheck block is `pre_check`.
fn error_of(pre_check: &str) -> opsctl_crds::Diagnostic {
    let err = load(pre_check).expect_err("must be refused");
    assert_eq!(err.diagnostics.len(), 1, "{:#?}", err.diagnostics);
    err.diagnostics.into_iter().next().unwrap()
}

#[test]
fn manifest_precheck_defaults() {
    let set = load("      ci: {repo: octo/app}\n      releaseBranch: main\n").unwrap();
    let pc = &set.apps[0].spec.deploy.pre_check;
    let ci = pc.ci.as_ref().unwrap();
    assert_eq!((ci.repo.owner(), ci.repo.name()), ("octo", "app"));
    assert_eq!(ci.api_url.as_str(), "https://api.github.com");
    assert_eq!(ci.token_env.as_str(), "GITHUB_TOKEN");
    assert_eq!(ci.timeout.get(), Duration::from_secs(600));
    assert!(ci.required.is_empty());
    assert_eq!(pc.release_branch.as_ref().unwrap().as_str(), "main");
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
}

#[test]
fn manifest_precheck_every_field() {
    let set = load(
        "      ci:\n        provider: github\n        repo: octo/app.web\n        \
         apiUrl: https://ghe.example.com/api/v3/\n        tokenEnv: LEI_GITHUB_TOKEN\n        \
         required: [test, ci/lint]\n        timeout: 90s\n      releaseBranch: release/1.x\n",
    )
    .unwrap();
    let ci = set.apps[0].spec.deploy.pre_check.ci.clone().unwrap();
    assert_eq!(ci.token_env.as_str(), "LEI_GITHUB_TOKEN");
    let required: Vec<_> = ci.required.iter().map(|r| r.as_str()).collect();
    assert_eq!(required, ["test", "ci/lint"]);
    assert_eq!(ci.timeout.get(), Duration::from_secs(90));
}

#[test]
fn manifest_without_precheck_is_unchanged() {
    let text = APP
        .trim_end_matches("    preCheck:\n")
        .trim_end_matches("  deploy:\n");
    let set = opsctl_crds::load_str(Path::new("m.yaml"), text).unwrap();
    let deploy = &set.apps[0].spec.deploy;
    assert!(deploy.pre_check.is_empty());
    let v = serde_json::to_value(deploy).unwrap();
    assert!(
        v.get("preCheck").is_none(),
        "an empty block is not written out: {v}"
    );
}

#[test]
fn manifest_precheck_errors_are_located() {
    let cases: &[(&str, usize, usize, &str, &str)] = &[
        (
            "      ci: {repo: octoapp}\n",
            10,
            18,
            "spec.deploy.preCheck.ci.repo",
            "`octoapp` is not a GitHub repository: expected `owner/name`",
        ),
        (
            "      releaseBranch: origin/main\n",
            10,
            22,
            "spec.deploy.preCheck.releaseBranch",
            "write `main`; opsctl checks origin/main and main itself",
        ),
        (
            "      releaseBranch: feature..x\n",
            10,
            22,
            "spec.deploy.preCheck.releaseBranch",
            "not a valid git branch name",
        ),
        (
            "      ci: {repo: o/a, tokenEnv: 1TOKEN}\n",
            10,
            33,
            "spec.deploy.preCheck.ci.tokenEnv",
            "not an environment variable name",
        ),
        (
            "      ci: {repo: o/a, apiUrl: \"https://me:pw@api.github.com\"}\n",
            10,
            31,
            "spec.deploy.preCheck.ci.apiUrl",
            "carries credentials",
        ),
        (
            "      ci: {repo: o/a, apiUrl: api.github.com}\n",
            10,
            31,
            "spec.deploy.preCheck.ci.apiUrl",
            "not an absolute http(s) URL",
        ),
        (
            "      ci: {repo: o/a, required: [test, \" \"]}\n",
            10,
            40,
            "spec.deploy.preCheck.ci.required[1]",
            "empty check name",
        ),
        (
            "      ci: {repo: o/a, timeout: 10}\n",
            10,
            32,
            "spec.deploy.preCheck.ci.timeout",
            "write `10s` for seconds",
        ),
        (
            "      ci: {repo: o/a, provider: gitlab}\n",
            10,
            33,
            "spec.deploy.preCheck.ci.provider",
            "gitlab",
        ),
        (
            "      ci: {repo: o/a, token: abc}\n",
            10,
            23,
            "spec.deploy.preCheck.ci.token",
            "unknown field `token`",
        ),
        (
            "      ci: {apiUrl: \"https://api.github.com\"}\n",
            10,
            11,
            "spec.deploy.preCheck.ci.repo",
            "missing field `repo`",
        ),
    ];
    for (block, line, column, field, words) in cases {
        let e = error_of(block);
        assert_eq!(
            (e.line, e.column, e.field.as_deref()),
            (*line, *column, Some(*field)),
            "{block}: {e}"
        );
        assert!(e.message.contains(words), "{block}: {e}");
    }
}
