//! Loader tests: each bad input gives a precise error (file, line, column, field, words), a set
//! with any error is rejected whole, and good sets load.

use std::path::{Path, PathBuf};

use super::*;
use crate::flyapp::{MaxUnavailable, Strategy};

const GOOD: &str = "\
apiVersion: opsctl.dev/v1alpha1
kind: FlyApp
metadata:
  name: web
spec:
  image: registry.fly.io/web:deployment-1
  processGroups:
    app:
      regions: {iad: 2}
  env:
    DEBUG: \"no\"
  checks:
    alive: {type: tcp, port: 8080}
";

fn errors_of(text: &str) -> Vec<Diagnostic> {
    match load_str(Path::new("m.yaml"), text) {
        Ok(set) => panic!("expected errors, loaded {set:?}"),
        Err(e) => e.diagnostics,
    }
}

/// The single error of `text`, checked for position and field.
fn single_error(text: &str, line: usize, column: usize, field: Option<&str>) -> Diagnostic {
    let errors = errors_of(text);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        render(&errors)
    );
    let e = errors.into_iter().next().unwrap();
    assert_eq!(e.file, PathBuf::from("m.yaml"));
    assert_eq!((e.line, e.column), (line, column), "{e}");
    assert_eq!(e.field.as_deref(), field, "{e}");
    e
}

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A scratch directory under the system temp dir, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("opsctl-crds-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn good_manifest_loads_with_defaults() {
    let set = load_str(Path::new("m.yaml"), GOOD).unwrap();
    assert_eq!(set.apps.len(), 1);
    let app = &set.apps[0];
    assert_eq!(app.app_name(), "web");
    assert_eq!(app.spec.env["DEBUG"], "no");
    assert_eq!(app.spec.deploy.strategy, Strategy::Rolling);
    assert_eq!(
        app.spec.deploy.max_unavailable,
        MaxUnavailable::Fraction(0.33)
    );
    assert!(set.warnings.is_empty(), "{:?}", set.warnings);
}

#[test]
fn unquoted_no_in_env_says_quote_it() {
    let text = GOOD.replace("DEBUG: \"no\"", "DEBUG: no");
    let e = single_error(&text, 11, 12, Some("spec.env.DEBUG"));
    assert!(e.message.contains("unquoted `no`"), "{e}");
    assert!(e.message.contains("boolean false"), "{e}");
    assert!(e.message.contains("quote it"), "{e}");
    assert_eq!(e.help.as_deref(), Some("write \"no\" in quotes"));
    assert_eq!(
        e.to_string(),
        "m.yaml:11:12: spec.env.DEBUG: unquoted `no` is the boolean false in YAML 1.1, \
         but this field is a string: quote it\n  help: write \"no\" in quotes"
    );
}

#[test]
fn every_implicit_typing_surprise_in_a_string_field_is_reported() {
    let text = GOOD.replace(
        "DEBUG: \"no\"",
        "A: on\n    B: 0777\n    C: 1e3\n    D: 12:30\n    E: 8080\n    F: Yes\n    G: \"8080\"",
    );
    let errors = errors_of(&text);
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_deref().unwrap()).collect();
    assert_eq!(
        fields,
        [
            "spec.env.A",
            "spec.env.B",
            "spec.env.C",
            "spec.env.D",
            "spec.env.E",
            "spec.env.F"
        ]
    );
    assert!(
        errors.iter().all(|e| e.message.contains("quote it")),
        "{}",
        render(&errors)
    );
    assert!(errors[1].message.contains("octal number 511"));
    assert!(errors[3].message.contains("base-60 number 750"));
}

#[test]
fn unquoted_number_as_image_says_quote_it() {
    let text = GOOD.replace("image: registry.fly.io/web:deployment-1", "image: 12:30");
    let errors = errors_of(&text);
    assert!(
        errors[0].message.contains("quote it"),
        "{}",
        render(&errors)
    );
    assert_eq!((errors[0].line, errors[0].column), (6, 10));
}

#[test]
fn duplicate_key_names_both_lines() {
    let text = GOOD.replace(
        "  env:\n",
        "  image: registry.fly.io/web:deployment-2\n  env:\n",
    );
    let e = single_error(&text, 10, 3, Some("spec.image"));
    assert!(e.message.contains("duplicate key `image`"), "{e}");
    assert!(e.message.contains("line 6"), "{e}");
}

#[test]
fn tab_in_indentation_says_tab() {
    let text = GOOD.replace("    DEBUG", "\tDEBUG");
    let errors = errors_of(&text);
    assert!(!errors.is_empty());
    let e = &errors[0];
    assert_eq!((e.line, e.column), (11, 1), "{}", render(&errors));
    assert!(e.message.contains("tab"), "{e}");
    assert!(
        errors.iter().all(|e| e.line == 11),
        "no cascade beyond the tab line: {}",
        render(&errors)
    );
}

#[test]
fn unknown_field_lists_expected_ones_and_suggests() {
    let text = GOOD.replace("  env:\n", "  deploy: {max_unavailable: 1}\n  env:\n");
    let e = single_error(&text, 10, 12, Some("spec.deploy.max_unavailable"));
    assert!(e.message.contains("unknown field `max_unavailable`"), "{e}");
    assert!(
        e.message.contains("`maxUnavailable`") && e.message.contains("`waitTimeout`"),
        "{e}"
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `maxUnavailable`?"));
}

#[test]
fn wrong_type_for_region_count() {
    let text = GOOD.replace("{iad: 2}", "{iad: two}");
    let e = single_error(&text, 9, 22, Some("spec.processGroups.app.regions.iad"));
    assert!(e.message.contains("expected a whole number"), "{e}");
    assert!(e.message.contains("`two`"), "{e}");
}

#[test]
fn wrong_type_for_max_unavailable() {
    let text = GOOD.replace("  env:\n", "  deploy:\n    maxUnavailable: half\n  env:\n");
    let e = single_error(&text, 11, 21, Some("spec.deploy.maxUnavailable"));
    assert!(
        e.message.contains("a count like 1 or a fraction like 0.33"),
        "{e}"
    );
    assert!(e.message.contains("`half`"), "{e}");
}

#[test]
fn bare_number_duration_suggests_a_unit() {
    let text = GOOD.replace(
        "{type: tcp, port: 8080}",
        "{type: tcp, port: 8080, interval: 15}",
    );
    let e = single_error(&text, 13, 46, Some("spec.checks.alive.interval"));
    assert!(
        e.message.contains("need a unit") && e.message.contains("15s"),
        "{e}"
    );
}

#[test]
fn quoted_number_in_a_number_field() {
    let text = GOOD.replace("port: 8080", "port: \"8080\"");
    let e = single_error(&text, 13, 30, Some("spec.checks.alive.port"));
    assert!(e.message.contains("quoted string"), "{e}");
    assert_eq!(e.help.as_deref(), Some("remove the quotes: 8080"));
    // A quoted word is not a number without its quotes either: no such advice.
    let text = GOOD.replace("port: 8080", "port: \"eighty\"");
    let e = single_error(&text, 13, 30, Some("spec.checks.alive.port"));
    assert_eq!(e.help, None, "{e}");
}

#[test]
fn unknown_enum_value() {
    let text = GOOD.replace("  env:\n", "  deploy: {strategy: rollin}\n  env:\n");
    let e = single_error(&text, 10, 22, Some("spec.deploy.strategy"));
    assert!(e.message.contains("unknown value `rollin`"), "{e}");
    assert_eq!(e.help.as_deref(), Some("did you mean `rolling`?"));
}

#[test]
fn missing_required_field() {
    let text = GOOD.replace("  image: registry.fly.io/web:deployment-1\n", "");
    let e = single_error(&text, 6, 3, Some("spec.image"));
    assert_eq!(e.message, "missing field `image`");
}

#[test]
fn several_errors_in_one_document_are_all_reported() {
    let text = GOOD
        .replace("{iad: 2}", "{iad: two}")
        .replace("DEBUG: \"no\"", "DEBUG: no\n    FLY_X: \"1\"")
        .replace("  env:\n", "  colour: red\n  env:\n");
    let errors = errors_of(&text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [9, 10, 12], "{}", render(&errors));
}

#[test]
fn semantic_errors_are_located() {
    let text = GOOD
        .replace(
            "{iad: 2}",
            "{iad: 2}\n      vm: {size: shared-cpu-3x, memoryMb: 1000}",
        )
        .replace("DEBUG: \"no\"", "FLY_REGION: \"iad\"")
        .replace("registry.fly.io/web:deployment-1", "registry.fly.io/web")
        .replace("  env:\n", "  deploy: {maxUnavailable: 0}\n  env:\n");
    let errors = errors_of(&text);
    let got: Vec<(usize, Option<&str>)> = errors
        .iter()
        .map(|e| (e.line, e.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (6, Some("spec.image")),
            (10, Some("spec.processGroups.app.vm.size")),
            (10, Some("spec.processGroups.app.vm.memoryMb")),
            (11, Some("spec.deploy.maxUnavailable")),
            (13, Some("spec.env.FLY_REGION")),
        ],
        "{}",
        render(&errors)
    );
    assert!(errors[0].message.contains("no tag or digest"));
    assert!(errors[1].message.contains("shared-cpu-1x"));
    assert_eq!(errors[2].help.as_deref(), Some("write 1024"));
    assert!(errors[4].message.contains("Fly reserves"));
}

#[test]
fn fraction_out_of_range_and_empty_groups() {
    let text = GOOD
        .replace(
            "    app:\n      regions: {iad: 2}\n",
            "    app:\n      regions: {}\n",
        )
        .replace("  env:\n", "  deploy: {maxUnavailable: 1.5}\n  env:\n");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 2, "{}", render(&errors));
    assert!(errors[0].message.contains("no regions"));
    assert!(errors[1].message.contains("strictly between 0 and 1"));
    let text = GOOD.replace(
        "  processGroups:\n    app:\n      regions: {iad: 2}\n",
        "  processGroups: {}\n",
    );
    let errors = errors_of(&text);
    assert!(
        errors[0].message.contains("no process groups"),
        "{}",
        render(&errors)
    );
}

#[test]
fn all_passing_without_checks_can_never_be_healthy() {
    let text = GOOD.replace("  checks:\n    alive: {type: tcp, port: 8080}\n", "");
    // `spec.health` is not written, so the error points at `spec`.
    let e = single_error(&text, 6, 3, Some("spec.health.machineChecks"));
    assert!(e.message.contains("no checks"), "{e}");
    assert!(e.help.as_deref().unwrap().contains("ignore"));
    let text = text + "  health: {machineChecks: ignore}\n";
    let set = load_str(Path::new("m.yaml"), &text).unwrap();
    assert_eq!(set.warnings.len(), 1);
    assert!(set.warnings[0].message.contains("nothing tells"));
}

#[test]
fn envelope_errors() {
    let e = single_error(
        &GOOD.replace("opsctl.dev/v1alpha1", "opsctl.dev/v1"),
        1,
        13,
        Some("apiVersion"),
    );
    assert!(e.message.contains("expected `opsctl.dev/v1alpha1`"), "{e}");
    let e = single_error(
        &GOOD.replace("kind: FlyApp", "kind: FlyAp"),
        2,
        7,
        Some("kind"),
    );
    assert!(
        e.message.contains("unknown kind `FlyAp`") && e.message.contains("GovernancePolicy"),
        "{e}"
    );
    assert_eq!(e.help.as_deref(), Some("did you mean `FlyApp`?"));
    let e = single_error(
        &GOOD.replace("kind: FlyApp\n", "kind: FlyApp\nstatus: {}\n"),
        3,
        1,
        Some("status"),
    );
    assert!(e.message.contains("unknown field `status`"), "{e}");
    let e = single_error(
        &GOOD.replace("  name: web", "  name: Web_1"),
        4,
        9,
        Some("metadata.name"),
    );
    assert!(e.message.contains("not a valid name"), "{e}");
    let errors = errors_of("just a string\n");
    assert!(errors[0].message.contains("must be a mapping"));
}

#[test]
fn good_multi_document_file_loads() {
    let second = GOOD
        .replace("name: web", "name: api")
        .replace("web:deployment-1", "api:v2");
    let text = format!("# two apps\n---\n{GOOD}---\n{second}...\n");
    let set = load_str(Path::new("m.yaml"), &text).unwrap();
    let names: Vec<_> = set.apps.iter().map(FlyApp::app_name).collect();
    assert_eq!(names, ["api", "web"]);
}

#[test]
fn duplicate_names_across_documents() {
    let other = GOOD.replace(
        "metadata:\n  name: web\nspec:\n",
        "metadata:\n  name: web2\nspec:\n  app: web\n",
    );
    let text = format!("{GOOD}---\n{GOOD}---\n{other}");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 2, "{}", render(&errors));
    assert_eq!(
        (errors[0].line, errors[0].field.as_deref()),
        (18, Some("metadata.name"))
    );
    assert!(
        errors[0]
            .message
            .contains("duplicate FlyApp `web`: already defined at m.yaml:4:9")
    );
    assert_eq!(
        (errors[1].line, errors[1].field.as_deref()),
        (34, Some("spec.app"))
    );
    assert!(
        errors[1]
            .message
            .contains("Fly app `web` is also managed by FlyApp `web`")
    );
}

#[test]
fn two_bad_files_in_one_directory_are_both_reported_and_the_set_is_rejected() {
    let dir = Scratch::new("two-bad");
    dir.write("a-good.yaml", GOOD);
    let bad1 = dir.write(
        "b/bad.yml",
        &GOOD
            .replace("name: web", "name: one")
            .replace("DEBUG: \"no\"", "DEBUG: no"),
    );
    let bad2 = dir.write(
        "c.yaml",
        &GOOD
            .replace("name: web", "name: two")
            .replace("{iad: 2}", "{iad: two}"),
    );
    dir.write("notes.txt", "not a manifest");
    dir.write(".hidden/x.yaml", "not: [valid");
    let err = load_dir(&dir.0).unwrap_err();
    let got: Vec<(&Path, usize, usize)> = err
        .diagnostics
        .iter()
        .map(|d| (d.file.as_path(), d.line, d.column))
        .collect();
    assert_eq!(
        got,
        [(bad1.as_path(), 11, 12), (bad2.as_path(), 9, 22)],
        "{}",
        render(&err.diagnostics)
    );
    assert_eq!(err.to_string(), "2 error(s) in manifests");
}

#[test]
fn a_directory_of_good_files_loads_in_order() {
    let dir = Scratch::new("good");
    dir.write("z.yaml", GOOD);
    dir.write(
        "nested/a.yml",
        &GOOD
            .replace("name: web", "name: api")
            .replace("web:deployment-1", "api:v2"),
    );
    let set = load_dir(&dir.0).unwrap();
    assert_eq!(
        set.apps.iter().map(FlyApp::app_name).collect::<Vec<_>>(),
        ["api", "web"]
    );
    assert_eq!(set.apps[0].file, dir.0.join("nested/a.yml"));
}

#[test]
fn empty_and_missing_directories() {
    let dir = Scratch::new("empty");
    let set = load_dir(&dir.0).unwrap();
    assert!(set.apps.is_empty());
    assert!(set.warnings[0].message.contains("no manifests"));
    let err = load_dir(&dir.0.join("nope")).unwrap_err();
    assert!(
        err.diagnostics[0]
            .message
            .contains("cannot read the directory")
    );
}

#[test]
fn not_utf8_is_reported() {
    let dir = Scratch::new("utf8");
    fs::write(dir.0.join("x.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    let err = load_dir(&dir.0).unwrap_err();
    assert!(err.diagnostics[0].message.contains("not UTF-8"));
}

#[test]
fn the_repository_manifests_load() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests"));
    let set = load_dir(dir).unwrap_or_else(|e| panic!("{}", render(&e.diagnostics)));
    assert!(set.warnings.is_empty(), "{}", render(&set.warnings));
    let lei = set
        .apps
        .iter()
        .find(|a| a.app_name() == "lowendinsight")
        .expect("lowendinsight manifest");
    assert_eq!(
        lei.spec.image,
        "registry.fly.io/lowendinsight:deployment-NEW"
    );
    assert_eq!(lei.spec.process_groups["app"].regions["iad"], 2);
    assert_eq!(lei.spec.deploy.max_unavailable, MaxUnavailable::Count(1));
}

#[test]
fn in_memory_files_load_like_a_directory() {
    let good = "apiVersion: opsctl.dev/v1alpha1\nkind: FlyApp\nmetadata: {name: web}\nspec:\n  image: registry.fly.io/web:v1\n  processGroups: {app: {regions: {iad: 1}}}\n  checks: {alive: {type: tcp, port: 8080}}\n";
    let files = vec![
        (
            std::path::PathBuf::from("manifests/web.yaml"),
            good.to_owned(),
        ),
        (
            std::path::PathBuf::from("manifests/README.md"),
            "# not yaml: {".to_owned(),
        ),
    ];
    let set = crate::load_files(&files).unwrap();
    assert_eq!(set.apps.len(), 1);
    let bad = vec![(
        std::path::PathBuf::from("manifests/web.yaml"),
        good.replace("image:", "imagee:"),
    )];
    let err = crate::load_files(&bad).unwrap_err();
    assert_eq!(
        err.diagnostics[0].file,
        std::path::PathBuf::from("manifests/web.yaml")
    );
}

mod dirs;
mod rules;

#[test]
fn an_unknown_stop_signal_is_an_error() {
    let text = "apiVersion: opsctl.dev/v1alpha1\nkind: FlyApp\nmetadata: {name: web}\nspec:\n  image: registry.fly.io/web:v1\n  processGroups: {app: {regions: {iad: 1}}}\n  checks: {alive: {type: tcp, port: 8080}}\n  stop: {signal: SIGFOO}\n";
    let err = crate::load_str("web.yaml".as_ref(), text).unwrap_err();
    assert!(
        err.diagnostics
            .iter()
            .any(|d| d.message.contains("unknown stop signal `SIGFOO`") && d.line == 8),
        "{:?}",
        err.diagnostics
    );
    let ok = text.replace("SIGFOO", "SIGTERM");
    assert!(crate::load_str("web.yaml".as_ref(), &ok).is_ok());
}

#[test]
fn every_kind_is_read_into_its_own_list_and_names_are_unique_per_kind() {
    let text = KINDS_DOC.to_owned() + "---\n" + GOOD;
    let set = load_str(Path::new("m.yaml"), &text).expect("valid");
    assert_eq!(set.apps.len(), 1);
    assert_eq!(set.policies[0].name(), "default");
    assert_eq!(set.slos.len(), 1);
    assert_eq!(set.cert_windows.len(), 1);
    assert_eq!(set.schedules.len(), 1);
    assert_eq!(set.runbooks.len(), 1);
    assert_eq!(set.alert_routes.len(), 1);

    // The same name in two kinds is fine; twice in one kind is an error at the second.
    let twice = format!(
        "{KINDS_DOC}---\napiVersion: opsctl.dev/v1alpha1\nkind: Runbook\nmetadata: {{name: default}}\nspec: {{}}\n"
    );
    let err = load_str(Path::new("m.yaml"), &twice).expect_err("duplicate");
    assert_eq!(err.diagnostics.len(), 1, "{:?}", err.diagnostics);
    assert!(
        err.diagnostics[0]
            .message
            .starts_with("duplicate Runbook `default`: already defined at m.yaml:"),
        "{}",
        err.diagnostics[0]
    );
}

/// One manifest of each kind other than FlyApp, all named `default`, with empty specs.
const KINDS_DOC: &str = "\
apiVersion: opsctl.dev/v1alpha1
kind: GovernancePolicy
metadata: {name: default}
spec: {}
---
apiVersion: opsctl.dev/v1alpha1
kind: HealthSLO
metadata: {name: default}
spec: {}
---
apiVersion: opsctl.dev/v1alpha1
kind: CertWindow
metadata: {name: default}
spec: {}
---
apiVersion: opsctl.dev/v1alpha1
kind: MaintenanceSchedule
metadata: {name: default}
spec: {}
---
apiVersion: opsctl.dev/v1alpha1
kind: Runbook
metadata: {name: default}
spec: {}
---
apiVersion: opsctl.dev/v1alpha1
kind: AlertRoute
metadata: {name: default}
spec: {}
";
