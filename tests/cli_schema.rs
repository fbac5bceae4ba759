//! `opsctl schema [KIND]`: the JSON Schema of each kind, as users run it; the shipped copies in
//! crds-like/schemas/ are what `--write` produces.

mod common;

use common::{opsctl, repo_root, text};
use serde_json::Value;

const KINDS: [&str; 7] = [
    "FlyApp",
    "HealthSLO",
    "CertWindow",
    "GovernancePolicy",
    "MaintenanceSchedule",
    "Runbook",
    "AlertRoute",
];

#[test]
fn without_a_kind_every_kind_comes_as_one_object() {
    let out = opsctl().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let keys: Vec<&str> = all
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = KINDS.to_vec();
    want.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, want);
    for k in KINDS {
        assert_eq!(
            all[k]["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(all[k]["properties"]["kind"]["const"], k);
    }
}

#[test]
fn one_kind_in_any_case_and_its_camel_case_fields() {
    let out = opsctl().args(["schema", "flyapp"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["title"], "FlyApp");
    let spec = &s["$defs"]["FlyAppSpec"]["properties"];
    for field in [
        "primaryRegion",
        "processGroups",
        "image",
        "deploy",
        "health",
    ] {
        assert!(spec.get(field).is_some(), "{field} in {spec}");
    }
    assert_eq!(s["$defs"]["Duration"]["type"], "string");
}

#[test]
fn an_unknown_kind_lists_the_kinds_and_exits_1() {
    let out = opsctl().args(["schema", "Deployment"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out);
    assert!(shown.contains("unknown kind \"Deployment\""), "{shown}");
    for k in KINDS {
        assert!(shown.contains(k), "{k} listed: {shown}");
    }
}

#[test]
fn write_produces_the_shipped_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = opsctl()
        .args(["schema", "--write"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for k in KINDS {
        let written = std::fs::read_to_string(dir.path().join(format!("{k}.json"))).unwrap();
        let shipped =
            std::fs::read_to_string(repo_root().join(format!("crds-like/schemas/{k}.json")))
                .unwrap();
        assert_eq!(
            written, shipped,
            "{k}: refresh with `opsctl schema --write crds-like/schemas`"
        );
    }
}
