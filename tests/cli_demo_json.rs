//! `opsctl -o json demo` prints one JSON document (defect 4: it printed text).

mod common;

use common::{opsctl, text};

#[test]
fn demo_json_is_one_document() {
    let state = tempfile::tempdir().unwrap();
    let out = opsctl()
        .arg("--state")
        .arg(state.path())
        .args(["-o", "json", "demo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", text(&out)));
    assert_eq!(v["kind"], "demo");
    assert_eq!(v["failed"], 0);
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(v["passed"], steps.len());
    assert!(steps.len() >= 8, "{v}");
    assert!(
        steps.iter().any(|s| s["name"]
            .as_str()
            .is_some_and(|n| n.contains("incident with a postmortem"))),
        "{v}"
    );
    assert!(
        steps
            .iter()
            .all(|s| s["ok"] == true && s["name"].is_string())
    );
    let records = v["records"].as_array().unwrap();
    let statuses: Vec<&str> = records
        .iter()
        .filter_map(|r| r["status"].as_str())
        .collect();
    assert_eq!(statuses, ["succeeded", "rolled_back"], "{v}");
    assert_eq!(records[0]["release"]["version"], 110);
    // The story went to stderr.
    assert!(String::from_utf8_lossy(&out.stderr).contains("passed, 0 failed"));
}
