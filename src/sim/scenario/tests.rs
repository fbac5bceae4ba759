//! Scenario parsing and validation: every error located.

use super::*;

fn problems(text: &str) -> Vec<Problem> {
    match Scenario::from_yaml(text) {
        Err(ScenarioError::Invalid { problems, .. }) => problems,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn bundled_lowendinsight_scenario_loads() {
    let s = Scenario::lowendinsight_default();
    let app = &s.apps[0];
    assert_eq!(app.name.value, "lowendinsight");
    assert_eq!(app.machines.len(), 2);
    let versions: Vec<i64> = app.releases.iter().map(|r| r.version.value).collect();
    assert_eq!(versions, vec![107, 108, 109]);
    assert_eq!(
        s.images["registry.fly.io/lowendinsight:deployment-BAD"],
        ImageBehavior::FailsChecks
    );
}

#[test]
fn behaviours_parse_in_every_spelling() {
    let s = Scenario::from_yaml(
        "images:\n  a: healthy\n  b: fails-checks\n  c: crash-loop\n  d: {exits: 3}\n  e: {slow-start: 40s}\n",
    )
    .unwrap();
    assert_eq!(s.images["d"], ImageBehavior::Exits(3));
    assert_eq!(
        s.images["e"],
        ImageBehavior::SlowStart(DurationStr(std::time::Duration::from_secs(40)))
    );
}

#[test]
fn unknown_field_is_located() {
    let p = problems("timeScale: 1\napps:\n  - name: a\n    colour: red\n");
    assert_eq!((p[0].line, p[0].column), (4, 5));
    assert!(
        p[0].message.contains("unknown field `colour`"),
        "{}",
        p[0].message
    );
}

#[test]
fn bad_duration_and_unquoted_number_are_located() {
    let p = problems("timing:\n  startDelay: 40\n");
    assert_eq!(p[0].line, 2);
    assert!(
        p[0].message.contains("need a unit") || p[0].message.contains("quoted"),
        "{}",
        p[0].message
    );
    let p = problems(
        "apps:\n  - name: a\n    machines:\n      - id: 148ed193b95d89\n        image: x\n        metadata: {fly_release_version: 109}\n",
    );
    assert_eq!(p[0].line, 6);
    assert!(p[0].message.contains("quoted"), "{}", p[0].message);
}

#[test]
fn semantic_rules_report_every_problem_with_location() {
    let text = "\
apps:
  - name: a
    releases:
      - {version: 1, image: img}
    machines:
      - id: 148ed193b95d89
        release: 2
      - id: 148ed193b95d89
        image: img
";
    let p = problems(text);
    assert_eq!(p.len(), 3, "{p:?}");
    assert!(
        p.iter()
            .any(|p| p.line == 7 && p.message.contains("does not have"))
    );
    assert!(
        p.iter()
            .any(|p| p.line == 8 && p.message.contains("duplicate machine id"))
    );
    assert!(
        p.iter()
            .any(|p| p.line == 6 && p.message.contains("has no image"))
    );
    let rendered = Scenario::from_yaml(text).unwrap_err().to_string();
    assert!(rendered.starts_with("scenario:"), "{rendered}");
}

#[test]
fn bad_machine_id_is_located() {
    let p = problems("apps:\n  - name: a\n    machines:\n      - {id: NOT-HEX, image: x}\n");
    assert_eq!(p[0].line, 4);
    assert!(p[0].message.contains("lowercase hex"), "{}", p[0].message);
}

#[test]
fn missing_file_names_the_path() {
    let e = Scenario::from_file("/nonexistent/scenario.yaml").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/scenario.yaml"));
}

#[test]
fn the_documented_complete_example_loads() {
    let doc = include_str!("../../../docs/simulator.md");
    let start = doc.find("### Complete example").unwrap();
    let block = &doc[start..];
    let body = &block[block.find("```yaml\n").unwrap() + 8..];
    let yaml = &body[..body.find("```").unwrap()];
    let s = Scenario::from_yaml(yaml).unwrap_or_else(|e| panic!("docs/simulator.md example: {e}"));
    assert_eq!(s.apps.len(), 2);
    assert_eq!(s.apps[0].machines.len(), 5);
    assert!(!s.apps[0].machines[4].managed);
}

/// The scale benchmark's 10,000 apps × 3 machines (about 300,000 YAML nodes) are over the YAML
/// library's default budget of 250,000; a scenario that large loads.
#[test]
fn a_scenario_of_ten_thousand_apps_loads() {
    let mut text = String::from("apps:\n");
    for i in 0..10_000 {
        text.push_str(&format!("  - name: app-{i:05}\n    machines:\n"));
        for m in 0..3 {
            text.push_str(&format!(
                "      - {{id: \"{:014x}\", region: iad, state: started, image: \"registry.fly.io/a:v1\"}}\n",
                i * 3 + m
            ));
        }
    }
    let scenario = Scenario::from_yaml(&text).unwrap_or_else(|e| {
        let e = e.to_string();
        panic!("10,000 apps do not load: {}", &e[..e.len().min(500)])
    });
    assert_eq!(scenario.apps.len(), 10_000);
    assert_eq!(scenario.apps[9_999].machines.len(), 3);
}
