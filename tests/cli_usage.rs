//! The command line itself: usage errors exit 1 (never 2, which `diff` uses for drift), with
//! a JSON error under `-o json`; `--help`/`--version` exit 0; each subcommand's help lists
//! only the global flags it uses; `run --help` says where JSON goes. From a new user's test
//! (defects 1, 4 and 7).

mod common;

use common::{opsctl, repo_root, text};

fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = opsctl().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_exit_1_not_the_drift_code() {
    for args in [
        &["diff", "--bogus-flag"][..],
        &["diff", "-o", "yaml"],
        &["diff", "--app"],
        &["frobnicate"],
        &[],
    ] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(1), "{args:?}: {stdout}{stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
    // clap's own words are kept.
    let (_, _, stderr) = run(&["diff", "--bogus-flag"]);
    assert!(
        stderr.contains("error: unexpected argument '--bogus-flag' found"),
        "{stderr}"
    );
    assert!(stderr.contains("Usage: opsctl diff"), "{stderr}");
    let (_, _, stderr) = run(&["diff", "-o", "yaml"]);
    assert!(
        stderr.contains("invalid value 'yaml' for '--output <OUTPUT>'"),
        "{stderr}"
    );
}

#[test]
fn a_usage_error_under_json_is_a_json_error_object() {
    for args in [
        &["-o", "json", "diff", "--bogus-flag"][..],
        &["diff", "--output=json", "--app"],
        &["-ojson", "diff", "extra"],
    ] {
        let (code, stdout, _) = run(args);
        assert_eq!(code, Some(1), "{args:?}");
        let v: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {stdout}"));
        assert_eq!(v["kind"], "error", "{v}");
        assert_eq!(v["code"], "usage", "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    }
    let (_, stdout, _) = run(&["-o", "json", "diff", "--bogus-flag"]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["message"], "unexpected argument '--bogus-flag' found");
    assert_eq!(v["usage"], "opsctl diff [OPTIONS]");
}

#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["diff", "--help"],
        &["help", "diff"],
        &["--version"],
        &["sim", "serve", "-V"],
    ] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn sim_help_lists_only_the_flags_that_apply() {
    let (code, help, _) = run(&["sim", "serve", "--help"]);
    assert_eq!(code, Some(0));
    for absent in ["--manifests", "--state", "--fly"] {
        assert!(
            !help.contains(absent),
            "sim serve --help lists {absent}:\n{help}"
        );
    }
    for present in ["--scenario", "--addr", "--output", "--log-format"] {
        assert!(help.contains(present), "{present} missing:\n{help}");
    }
    let (_, help, _) = run(&["sim", "--help"]);
    assert!(!help.contains("--manifests"), "{help}");
    let (_, help, _) = run(&["history", "--help"]);
    assert!(
        help.contains("--state") && !help.contains("--fly"),
        "{help}"
    );
    let (_, help, _) = run(&["apply", "--help"]);
    for present in ["--manifests", "--state", "--fly"] {
        assert!(help.contains(present), "{present} missing:\n{help}");
    }
}

#[test]
fn global_flags_still_work_before_the_subcommand() {
    let out = opsctl()
        .arg("--manifests")
        .arg(repo_root().join("manifests"))
        .args(["-o", "json", "validate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "validation");
}

#[test]
fn run_help_says_where_json_goes() {
    let (code, help, _) = run(&["run", "--help"]);
    assert_eq!(code, Some(0));
    assert!(help.contains("--log-format json"), "{help}");
    assert!(help.contains("-o json` does not apply"), "{help}");
}
