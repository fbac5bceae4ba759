//! `opsctl records export/import` and `opsctl history` with non-deploy records, through the
//! real binary: the LowEndInsight beads file imports and exports back unchanged, a bad line is
//! named by file and line (text and JSON), history lists incidents beside deploys.

mod common;

use std::path::Path;

use chrono::{TimeZone, Utc};
use common::{opsctl, repo_root, text};
use opsctl::records::{LinkKind, Record, RecordKind, RecordStore};
use serde_json::Value;

fn lei() -> std::path::PathBuf {
    repo_root()
        .join("../shared/real-inputs/lowendinsight/beads/kitplummer__lowendinsight__issues.jsonl")
}

fn run(state: &Path, args: &[&str]) -> std::process::Output {
    opsctl()
        .env_remove("OPSCTL_BEADS_PREFIX")
        .arg("--state")
        .arg(state)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_lowendinsight_beads_import_and_export_back_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let file = lei();
    let out = run(
        &state,
        &["records", "import", file.to_str().unwrap(), "-o", "json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["kind"], "records_import");
    assert_eq!(summary["issues"], 158);
    assert_eq!(summary["created"], 158);

    let out = run(&state, &["records", "export"]);
    assert!(out.status.success(), "{}", text(&out));
    let original = std::fs::read(&file).unwrap();
    assert!(
        out.stdout == original,
        "export differs from the imported file"
    );

    let target = dir.path().join("out.jsonl");
    let out = run(
        &state,
        &[
            "records",
            "export",
            "--out",
            target.to_str().unwrap(),
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["imported"], 158);
    assert_eq!(summary["prefix"], "ops");
    assert_eq!(std::fs::read(&target).unwrap(), original);

    // A second import changes nothing.
    let out = run(&state, &["records", "import", file.to_str().unwrap()]);
    assert!(
        text(&out).contains("158 issues") && text(&out).contains("0 new, 0 updated, 158 unchanged"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_bad_line_is_named_by_file_and_line_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bad = dir.path().join("issues.jsonl");
    std::fs::write(
        &bad,
        "{\"id\":\"x-1\",\"title\":\"ok\"}\n{\"id\":\"x-2\",\"title\":\"bad\",\"priority\":\"high\"}\n",
    )
    .unwrap();
    let out = run(&state, &["records", "import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2: field `priority`", bad.display())),
        "{stderr}"
    );
    let out = run(
        &state,
        &["records", "import", bad.to_str().unwrap(), "-o", "json"],
    );
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], "records.invalid");
    let out = run(&state, &["records", "export"]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );

    let out = run(&state, &["records", "export", "--prefix", "Bad-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a beads issue prefix"));
}

#[test]
fn history_lists_incidents_and_postmortems_of_the_app_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    {
        let store = RecordStore::open_write(&state).unwrap();
        let t = |m| Utc.with_ymd_and_hms(2026, 11, 29, 12, m, 0).unwrap();
        let mut inc = Record::new(RecordKind::Incident, "lowendinsight down", t(1));
        inc.app = Some("lowendinsight".into());
        inc.priority = 0;
        store.append_record(&inc).unwrap();
        let mut pm = Record::new(RecordKind::Postmortem, "postmortem: down", t(2));
        pm.app = Some("lowendinsight".into());
        pm.link(LinkKind::ParentChild, &inc.id);
        store.append_record(&pm).unwrap();
        let mut other = Record::new(RecordKind::Incident, "other app", t(3));
        other.app = Some("other".into());
        store.append_record(&other).unwrap();
    }
    let out = run(&state, &["history", "lowendinsight"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no deploy records"), "{stdout}");
    let pm = stdout.find("postmortem: down").expect("postmortem listed");
    let inc = stdout.find("lowendinsight down").expect("incident listed");
    assert!(pm < inc, "newest first:\n{stdout}");
    assert!(!stdout.contains("other app"), "{stdout}");

    let out = run(&state, &["history", "lowendinsight", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["deploys"].as_array().unwrap().len(), 0);
    let kinds: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["postmortem", "incident"]);
}
