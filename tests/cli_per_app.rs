//! Each app is handled on its own: an app Fly does not know (404) is reported as an error
//! beside the other apps' results, and does not hide them or stop them from being deployed.
//! From a new user's test (defect 2): `diff` and `apply` printed only the error and exited 1,
//! while `apply` had in fact deployed the other app.

mod common;

use common::{M1, M2, NEW, OLD, Sim, Workspace, text};

fn workspace() -> Workspace {
    let ws = Workspace::new(NEW);
    ws.add_app("ghost-app", NEW);
    ws
}

#[test]
fn diff_reports_every_app_and_exits_1() {
    let sim = Sim::start();
    let ws = workspace();
    let out = ws.opsctl(&sim).arg("diff").output().unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("lowendinsight: 2 change(s)"), "{shown}");
    assert!(
        stdout.contains("ghost-app: error: observing ghost-app on Fly"),
        "{shown}"
    );
    assert!(stdout.contains("404"), "{shown}");

    let out = ws
        .opsctl(&sim)
        .args(["diff", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kind"], "diff");
    assert_eq!(v["in_sync"], false);
    assert_eq!(v["errors"], 1);
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2, "{v}");
    let lei = apps.iter().find(|a| a["app"] == "lowendinsight").unwrap();
    assert_eq!(lei["outcome"], "drift");
    assert_eq!(lei["changes"].as_array().unwrap().len(), 2);
    let ghost = apps.iter().find(|a| a["app"] == "ghost-app").unwrap();
    assert_eq!(ghost["outcome"], "error");
    assert_eq!(ghost["error"]["kind"], "error");
    assert_eq!(ghost["error"]["code"], "fly.not_found");
}

#[test]
fn apply_deploys_the_others_and_reports_the_error() {
    let sim = Sim::start();
    let ws = workspace();
    assert_eq!(
        sim.images(),
        vec![(M1.into(), OLD.into()), (M2.into(), OLD.into())]
    );
    let out = ws
        .opsctl(&sim)
        .args(["apply", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
    assert_eq!(v["kind"], "apply");
    assert_eq!(v["ok"], false);
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2, "{v}");
    let lei = apps.iter().find(|a| a["app"] == "lowendinsight").unwrap();
    assert_eq!(lei["outcome"], "deployed", "{lei}");
    assert_eq!(lei["record"]["status"], "succeeded", "{lei}");
    let ghost = apps.iter().find(|a| a["app"] == "ghost-app").unwrap();
    assert_eq!(ghost["outcome"], "error", "{ghost}");
    assert_eq!(ghost["error"]["code"], "fly.not_found", "{ghost}");
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );

    // Text: one line per app, and a summary error on stderr.
    let out = ws.opsctl(&sim).arg("apply").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("lowendinsight: in sync"), "{stdout}");
    assert!(stdout.contains("ghost-app: error:"), "{stdout}");
    assert!(
        stderr.contains("error: 1 of 2 app(s) could not be applied: ghost-app"),
        "{stderr}"
    );
}
