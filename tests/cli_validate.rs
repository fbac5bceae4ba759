//! `opsctl validate` on the shipped manifests and on broken input (issue #2 step 3).

mod common;

use common::{opsctl, repo_root, text};

#[test]
fn shipped_manifests_are_valid() {
    let out = opsctl()
        .arg("validate")
        .arg(repo_root().join("manifests"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("lowendinsight"));
}

fn validate_one(yaml: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.yaml"), yaml).unwrap();
    let out = opsctl().arg("validate").arg(dir.path()).output().unwrap();
    (out.status.code().unwrap(), text(&out))
}

const GOOD: &str = "apiVersion: opsctl.dev/v1alpha1
kind: FlyApp
metadata:
  name: web
spec:
  image: registry.fly.io/web:v1
  processGroups:
    app:
      regions: {iad: 1}
  checks:
    alive: {type: tcp, port: 8080}
";

#[test]
fn a_broken_file_gives_file_line_column_and_exit_1() {
    let cases = [
        (
            "unknown field",
            GOOD.replace("  image:", "  imagee: x\n  image:"),
            "6:",
        ),
        ("wrong type", GOOD.replace("{iad: 1}", "{iad: two}"), "9:"),
        (
            "unquoted no",
            GOOD.replace(
                "  processGroups:",
                "  env:\n    DEBUG: no\n  processGroups:",
            ),
            "8:12:",
        ),
        (
            "duplicate key",
            GOOD.replace(
                "  processGroups:",
                "  image: registry.fly.io/web:v2\n  processGroups:",
            ),
            "7:3:",
        ),
        ("tab", GOOD.replace("  name: web", "\tname: web"), "4:1:"),
    ];
    for (what, yaml, line) in cases {
        let (code, shown) = validate_one(&yaml);
        assert_eq!(code, 1, "{what}: {shown}");
        assert!(
            shown.contains(&format!("app.yaml:{line}")),
            "{what}: expected app.yaml:{line}… in\n{shown}"
        );
    }
    let (code, shown) = validate_one(GOOD);
    assert_eq!(code, 0, "{shown}");
}

#[test]
fn json_output_lists_errors_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.yaml"),
        GOOD.replace("{iad: 1}", "{iad: two}"),
    )
    .unwrap();
    let out = opsctl()
        .arg("validate")
        .arg(dir.path())
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "validation");
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 9);
}

/// Every kind in the set is counted, not only FlyApps, in text and in JSON.
#[test]
fn validate_counts_every_kind() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.yaml"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("slo.yaml"),
        "apiVersion: opsctl.dev/v1alpha1\nkind: HealthSLO\nmetadata: {name: web}\nspec:\n  availability: 99.9%\n",
    )
    .unwrap();
    let out = opsctl().arg("validate").arg(dir.path()).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("1 FlyApp manifest(s): web"), "{t}");
    assert!(t.contains("1 HealthSLO"), "{t}");
    assert!(
        !t.contains("CertWindow"),
        "kinds with none are left out: {t}"
    );

    let out = opsctl()
        .args(["-o", "json", "validate"])
        .arg(dir.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kinds"]["FlyApp"], 1);
    assert_eq!(v["kinds"]["HealthSLO"], 1);
    assert_eq!(v["kinds"]["CertWindow"], 0);
}

/// An AlertRoute whose beads target points at a repository that is not on this machine is a
/// warning naming the file and field (the set stays valid; `--deny-warnings` fails it); with
/// the repository checked out there, no warning.
#[test]
fn a_beads_target_outside_any_directory_is_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("manifests");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("app.yaml"), GOOD).unwrap();
    std::fs::write(
        dir.join("routes.yaml"),
        "apiVersion: opsctl.dev/v1alpha1\nkind: AlertRoute\nmetadata: {name: eng}\nspec:\n  match: {kinds: [escalation]}\n  targets: [{beads: {path: ../eng-repo/.beads/issues.jsonl, prefix: web}}]\n",
    )
    .unwrap();
    let validate = |deny: bool| {
        let mut c = opsctl();
        c.arg("validate");
        if deny {
            c.arg("--deny-warnings");
        }
        c.arg(&dir).output().unwrap()
    };
    let out = validate(false);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("routes.yaml"), "{t}");
    assert!(t.contains("spec.targets[].beads.path"), "{t}");
    assert!(t.contains("eng-repo"), "{t}");
    assert_eq!(validate(true).status.code(), Some(1));

    std::fs::create_dir_all(root.path().join("eng-repo/.beads")).unwrap();
    let out = validate(true);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("eng-repo"), "{}", text(&out));
}

/// A policy naming an app no FlyApp manages (a typo) is a warning: its rules (a freeze window,
/// say) would silently never apply.
#[test]
fn a_policy_for_an_unknown_app_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.yaml"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("policy.yaml"),
        "apiVersion: opsctl.dev/v1alpha1\nkind: GovernancePolicy\nmetadata: {name: strict}\nspec:\n  apps: [web, wbe]\n",
    )
    .unwrap();
    let out = opsctl().arg("validate").arg(dir.path()).output().unwrap();
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("policy.yaml"), "{t}");
    assert!(t.contains("spec.apps"), "{t}");
    assert!(t.contains("\"wbe\""), "{t}");
    assert!(
        !t.contains("\"web\", which"),
        "the real app is not warned about: {t}"
    );
}
