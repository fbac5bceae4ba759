//! Messages a user reads when something is wrong, from a new user's test (defects 3 and 5):
//! connection errors name the host:port and the root cause; a bad `--fly` URL or token gets
//! a clear message (never the token); a missing manifests directory says so; the default
//! `manifests` reads as a path; a cause is not printed twice.

mod common;

use std::process::Output;

use common::{NEW, Sim, Workspace, opsctl, repo_root, text};

/// `opsctl diff` of the shipped manifests against `fly`, with `token`.
fn diff_against(fly: &str, token: &str) -> Output {
    opsctl()
        .arg("--manifests")
        .arg(repo_root().join("manifests"))
        .args(["diff", "--fly", fly])
        .env("FLY_API_TOKEN", token)
        .output()
        .unwrap()
}

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn connection_refused_names_the_address_and_the_cause() {
    let port = closed_port();
    let out = diff_against(&format!("http://127.0.0.1:{port}"), "test-token");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains(&format!("could not reach Fly at 127.0.0.1:{port}")),
        "{shown}"
    );
    assert!(shown.contains("Connection refused"), "{shown}");
    assert!(!shown.contains("error sending request"), "{shown}");
}

#[test]
fn dns_failure_says_dns() {
    let out = diff_against("http://opsctl-test.invalid:4280", "test-token");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("could not reach Fly at opsctl-test.invalid:4280: dns error"),
        "{shown}"
    );
}

#[test]
fn tls_to_a_plain_http_server_says_so() {
    let sim = Sim::start();
    let https = sim.url.replacen("http://", "https://", 1);
    let out = diff_against(&https, "test-token");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let addr = sim.url.trim_start_matches("http://");
    assert!(
        shown.contains(&format!("could not reach Fly at {addr}: ")),
        "{shown}"
    );
    assert!(shown.contains("does not speak TLS"), "{shown}");
}

#[test]
fn bad_fly_urls_are_refused_up_front() {
    for (url, says) in [
        ("http://256.0.0.1", "invalid IPv4 address"),
        ("http://[::1", "invalid IPv6 address"),
        ("http://127.0.0.1:4280/?token=abc", "remove the `?…`"),
    ] {
        let out = diff_against(url, "test-token");
        let shown = text(&out);
        assert_eq!(out.status.code(), Some(1), "{url}: {shown}");
        assert!(shown.contains(says), "{url}: {shown}");
        assert!(!shown.contains("builder error"), "{url}: {shown}");
        assert!(!shown.contains("token=abc"), "{url}: {shown}");
    }
}

#[test]
fn a_token_with_a_line_break_is_refused_without_echoing_it() {
    let out = diff_against("http://127.0.0.1:4280", "fm2_TOPSECRET\nVALUE");
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("FLY_API_TOKEN contains a line break"),
        "{shown}"
    );
    assert!(
        !shown.contains("TOPSECRET") && !shown.contains("VALUE"),
        "{shown}"
    );
    assert!(!shown.contains("builder error"), "{shown}");

    let out = opsctl()
        .arg("--manifests")
        .arg(repo_root().join("manifests"))
        .args(["-o", "json", "diff", "--fly", "http://127.0.0.1:4280"])
        .env("FLY_API_TOKEN", "fm2_TOPSECRET VALUE")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "config", "{v}");
    assert!(!v.to_string().contains("TOPSECRET"), "{v}");
}

#[test]
fn trailing_whitespace_around_the_token_is_trimmed() {
    let sim = Sim::start();
    let out = diff_against(&sim.url, "test-token\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn run_on_a_missing_manifests_directory_says_so() {
    let state = tempfile::tempdir().unwrap();
    let out = opsctl()
        .args([
            "run",
            "--manifests",
            "/nonexistent-opsctl-manifests",
            "--fly",
            "embedded",
        ])
        .arg("--state")
        .arg(state.path())
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("manifests directory /nonexistent-opsctl-manifests does not exist"),
        "{shown}"
    );
    assert!(!shown.contains("No path was found"), "{shown}");
    assert!(!shown.contains("not a git checkout"), "{shown}");
}

#[test]
fn the_default_manifests_directory_reads_as_a_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("manifests")).unwrap();
    std::fs::write(dir.path().join("manifests/app.yaml"), "kind: Nope\n").unwrap();
    let out = opsctl()
        .current_dir(dir.path())
        .args(["diff", "--fly", "embedded"])
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("the manifests in ./manifests are invalid"),
        "{shown}"
    );
    assert!(!shown.contains("manifests in manifests"), "{shown}");

    let out = opsctl()
        .current_dir(dir.path())
        .args(["-o", "json", "diff", "--fly", "embedded"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["code"], "manifests.invalid", "{v}");
}

#[test]
fn a_cause_is_not_printed_twice() {
    let sim = Sim::start();
    let ws = Workspace::new(NEW);
    std::fs::write(ws.state(), "a file where the state directory should be").unwrap();
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("File exists"), "{shown}");
    assert_eq!(shown.matches("File exists").count(), 1, "{shown}");
}
