//! Import tests: every real fly.toml in `shared/real-inputs` imports (and loads back) or fails
//! with the exact expected problems; no key of any of them is dropped without a word; bad
//! input gives located errors, never a panic.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::*;
use crate::flyapp::{CheckKind, MaxUnavailable, Strategy};
use crate::load::load_dir;

const FLY_TOML_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/real-inputs/fly-toml"
);
const LEI_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/real-inputs/lowendinsight"
);

/// Every real input: the fly-toml corpus and LowEndInsight's `*fly.toml` files.
fn real_inputs() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for (dir, suffix) in [(FLY_TOML_DIR, ".toml"), (LEI_DIR, "fly.toml")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().ends_with(suffix) {
                files.push(path);
            }
        }
    }
    files.sort();
    assert_eq!(
        files.len(),
        10,
        "expected 8 corpus files and 2 LowEndInsight files: {files:?}"
    );
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

fn name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

/// What each real input must do: import, or fail with exactly these (line, field, words).
fn expected_failure(file: &str) -> Option<Vec<(usize, &'static str, &'static str)>> {
    match file {
        // flyctl's parser fixture: deliberately invalid enum values, and a service for a
        // process group the file does not define.
        "superfly__flyctl.toml" => Some(vec![
            (40, "deploy.strategy", "unknown strategy `rolling-eyes`"),
            (
                88,
                "http_service.concurrency.type",
                "unknown concurrency type `donuts`",
            ),
            (
                180,
                "services[0].processes",
                "process group `app` is not defined",
            ),
        ]),
        // The app name comes from `fly -a`, so the file has none.
        "superfly__tokenizer.toml" => Some(vec![(1, "app", "has no `app`")]),
        _ => None,
    }
}

#[test]
fn every_real_input_imports_or_fails_precisely_and_loads_back() {
    for path in real_inputs() {
        let file = name(&path);
        let result = import_fly_toml(Path::new(file), &read(&path), None);
        match (expected_failure(file), result) {
            (None, Ok(imported)) => {
                let set = load_str(Path::new(file), &imported.yaml).unwrap_or_else(|e| {
                    panic!(
                        "{file}: the imported YAML does not load:\n{e}\n{}",
                        imported.yaml
                    )
                });
                assert_eq!(set.apps.len(), 1, "{file}");
                assert_eq!(
                    set.apps[0].spec, imported.manifest.spec,
                    "{file}: YAML and value differ"
                );
                assert!(
                    !imported.warnings.is_empty(),
                    "{file}: every real input needs at least the image warning"
                );
                assert!(
                    imported.yaml.starts_with("# FlyApp imported from"),
                    "{file}"
                );
            }
            (Some(expected), Err(e)) => {
                let got: Vec<(usize, &str)> = e
                    .diagnostics
                    .iter()
                    .map(|d| (d.line, d.field.as_deref().unwrap_or("")))
                    .collect();
                let want: Vec<(usize, &str)> = expected.iter().map(|(l, f, _)| (*l, *f)).collect();
                assert_eq!(got, want, "{file}: {e}");
                for (d, (_, _, words)) in e.diagnostics.iter().zip(&expected) {
                    assert!(
                        d.message.contains(words),
                        "{file}: {d} should say {words:?}"
                    );
                    assert!(d.column > 0, "{file}: {d} has no column");
                }
            }
            (None, Err(e)) => panic!("{file} should import: {e}"),
            (Some(_), Ok(_)) => panic!("{file} should fail"),
        }
    }
}

/// Every leaf key of a TOML value: scalars, arrays of scalars, and empty tables/arrays.
fn leaves(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        toml::Value::Table(t) if t.is_empty() => out.push(prefix.to_owned()),
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| leaves(&join(k), v, out)),
        toml::Value::Array(a) if !a.is_empty() && a.iter().all(toml::Value::is_table) => {
            a.iter()
                .enumerate()
                .for_each(|(i, v)| leaves(&format!("{prefix}[{i}]"), v, out));
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// The flyctl fixture with its deliberate mistakes fixed, so that it imports in full.
fn full_reference_fixed() -> String {
    read(&Path::new(FLY_TOML_DIR).join("superfly__flyctl.toml"))
        .replace("\"rolling-eyes\"", "\"rolling\"")
        .replace("\"donuts\"", "\"requests\"")
        .replace(
            "  processes = [\"app\"]\n  auto_start_machines = false",
            "  processes = [\"web\"]\n  auto_start_machines = false",
        )
}

#[test]
fn no_key_is_dropped_silently() {
    let mut inputs: Vec<(String, String)> = real_inputs()
        .iter()
        .map(|p| (name(p).to_owned(), read(p)))
        .collect();
    inputs.push(("full-reference, fixed".to_owned(), full_reference_fixed()));
    for (file, text) in inputs {
        let Conversion { cx, .. } = convert(Path::new(&file), &text, None);
        let carried: BTreeSet<&str> = cx.carried.iter().map(|(_, p)| p.as_str()).collect();
        let dropped: BTreeSet<&str> = cx.dropped.iter().map(|(_, p, _)| p.as_str()).collect();
        let refused: BTreeSet<&str> = cx
            .errors
            .iter()
            .filter_map(|d| d.field.as_deref())
            .collect();
        let both: Vec<_> = carried.intersection(&dropped).collect();
        assert!(
            both.is_empty(),
            "{file}: both carried and dropped: {both:?}"
        );
        let accounted = |leaf: &str| {
            carried.iter().chain(&dropped).chain(&refused).any(|p| {
                leaf == *p
                    || leaf.starts_with(&format!("{p}."))
                    || leaf.starts_with(&format!("{p}["))
            })
        };
        let mut all = Vec::new();
        leaves("", &toml::from_str::<toml::Value>(&text).unwrap(), &mut all);
        let silent: Vec<&String> = all.iter().filter(|leaf| !accounted(leaf)).collect();
        assert!(
            silent.is_empty(),
            "{file}: keys neither carried nor reported: {silent:?}"
        );
        for path in &dropped {
            assert!(
                warnings(&cx)
                    .iter()
                    .any(|w| w.starts_with(&format!("{path}: "))),
                "{file}: {path} dropped without a warning"
            );
        }
    }
}

#[test]
fn full_reference_imports_everything_it_can() {
    let imported = import_fly_toml(
        Path::new("full-reference.toml"),
        &full_reference_fixed(),
        Some("registry.fly.io/foo:v1"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let spec = &imported.manifest.spec;
    assert_eq!(spec.image, "registry.fly.io/foo:v1");
    assert_eq!(spec.primary_region.as_deref(), Some("sea"));
    assert_eq!(
        spec.process_groups.keys().collect::<Vec<_>>(),
        ["task", "web"]
    );
    assert_eq!(
        spec.process_groups["web"].command.as_deref(),
        Some("run web")
    );
    // The [[vm]] naming `app` applies to no group; the one naming none applies to both.
    let vm = spec.process_groups["web"].vm.as_ref().unwrap();
    assert_eq!(
        (vm.size.as_str(), vm.memory_mb),
        ("shared-cpu-1x", Some(4096))
    );
    assert_eq!(spec.deploy.max_unavailable, MaxUnavailable::Fraction(0.2));
    assert_eq!(
        spec.deploy.release_command.as_deref(),
        Some("release command")
    );
    assert_eq!(spec.checks["status"].port, Some(2020));
    assert_eq!(spec.checks["status"].interval.unwrap().to_string(), "10s");
    let http = &spec.services[0];
    assert_eq!((http.internal_port, http.ports.len()), (8080, 2));
    assert!(http.ports[0].force_https);
    assert_eq!(http.checks[0].interval.unwrap().to_string(), "81s");
    let svc = &spec.services[1];
    assert_eq!(
        svc.checks.iter().map(|c| c.kind).collect::<Vec<_>>(),
        [CheckKind::Tcp, CheckKind::Http, CheckKind::Http]
    );
    assert_eq!(svc.checks[2].method.as_deref(), Some("POST"));
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("build.image: an image was given"))
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("experimental.auto_rollback: a Nomad-era setting"))
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("build.dockerfile: build settings are not part of a FlyApp"))
    );
}

#[test]
fn legacy_layout_details() {
    let path = Path::new(FLY_TOML_DIR).join("superfly__flyctl__old-format.toml");
    let imported = import_fly_toml(Path::new("old.toml"), &read(&path), None).unwrap();
    let svc = &imported.manifest.spec.services[0];
    assert_eq!(svc.internal_port, 8080);
    assert_eq!(svc.ports[0].port, 80);
    let conc = svc.concurrency.as_ref().unwrap();
    assert_eq!(
        (conc.kind.as_str(), conc.soft_limit, conc.hard_limit),
        ("requests", 12, 23)
    );
    assert_eq!(svc.checks[0].interval.unwrap().to_string(), "10s");
    assert_eq!(imported.manifest.spec.env["BAR"], "123");
    let w = &imported.warnings;
    assert!(
        w.iter()
            .any(|w| w == "services[0].http_checks[1].grace_period: empty duration; ignored"),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.starts_with("env.BAR: an integer 123 written as the string \"123\"")),
        "{w:?}"
    );
}

#[test]
fn lowendinsight_import_matches_the_repository_manifest() {
    let path = Path::new(LEI_DIR).join("kitplummer__lowendinsight__fly.toml");
    let imported = import_fly_toml(
        &path,
        &read(&path),
        Some("registry.fly.io/lowendinsight:deployment-NEW"),
    )
    .unwrap();
    let set = load_dir(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests"
    )))
    .unwrap();
    let manifest = set
        .apps
        .iter()
        .find(|a| a.app_name() == "lowendinsight")
        .unwrap();
    let (got, want) = (&imported.manifest.spec, &manifest.spec);
    assert_eq!(got.services, want.services);
    assert_eq!(got.env, want.env);
    assert_eq!(got.stop, want.stop);
    assert_eq!(got.checks, want.checks);
    assert_eq!(got.image, want.image);
    let stop = got.stop.as_ref().unwrap();
    assert_eq!(
        (
            stop.signal.as_deref(),
            stop.timeout.unwrap().to_string().as_str()
        ),
        (Some("SIGINT"), "5s")
    );
    let check = &got.services[0].checks[0];
    assert_eq!(check.kind, CheckKind::Tcp);
    assert_eq!(
        [check.grace_period, check.interval, check.timeout].map(|d| d.unwrap().to_string()),
        ["1s", "15s", "10s"]
    );
    // What the manifest adds on purpose (DESIGN.md §3).
    assert_eq!(want.deploy.strategy, Strategy::Rolling);
    assert_eq!(want.deploy.max_unavailable, MaxUnavailable::Count(1));
    assert!(want.health.dependencies.is_some());
}

fn import_err(text: &str) -> ImportError {
    match import_fly_toml(Path::new("fly.toml"), text, Some("registry.fly.io/x:v1")) {
        Ok(i) => panic!("expected an error, imported:\n{}", i.yaml),
        Err(e) => e,
    }
}

#[test]
fn invalid_toml_is_located() {
    let e = import_err("app = \"x\"\n[services\ninternal_port = 1\n");
    let d = &e.diagnostics[0];
    assert_eq!(d.line, 2, "{e}");
    assert!(d.column > 0 && d.message.starts_with("invalid TOML"), "{e}");
    let e = import_err("app = \"x\"\napp = \"y\"\n");
    assert_eq!(e.diagnostics[0].line, 2, "{e}");
}

#[test]
fn wrong_types_are_located() {
    let text = "app = \"x\"\nkill_timeout = true\n[env]\nA = [1]\n[[services]]\ninternal_port = \"http\"\n[[vm]]\nmemory = \"1000mb\"\n[deploy]\nmax_unavailable = 0\n";
    let e = import_err(text);
    let got: Vec<(usize, usize, &str)> = e
        .diagnostics
        .iter()
        .map(|d| (d.line, d.column, d.field.as_deref().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (2, 16, "kill_timeout"),
            (4, 5, "env.A"),
            (6, 17, "services[0].internal_port"),
            (8, 10, "vm[0].memory"),
            (10, 19, "deploy.max_unavailable"),
        ],
        "{e}"
    );
    assert!(
        e.diagnostics[0].message.contains("expected a duration"),
        "{e}"
    );
    assert!(
        e.diagnostics[2].message.contains("found a string \"http\""),
        "{e}"
    );
    assert!(e.diagnostics[3].message.contains("multiple of 256"), "{e}");
    assert!(
        e.diagnostics[4]
            .message
            .contains("a count like 1 or a fraction like 0.33"),
        "{e}"
    );
    assert_eq!(
        e.diagnostics[0].to_string(),
        "fly.toml:2:16: kill_timeout: expected a duration like \"15s\", found a boolean true"
    );
}

#[test]
fn sizes_and_checks_are_checked() {
    let e = import_err(
        "app = \"x\"\n[[vm]]\nsize = \"huge\"\n[checks.alive]\ntype = \"tcp\"\n[checks.other]\nport = 1\n",
    );
    let messages: Vec<&str> = e.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(messages.len(), 3, "{e}");
    assert!(messages[0].contains("`huge` is not a Fly machine size"));
    assert!(messages[1].contains("no port, and no [http_service]"));
    assert!(messages[2].contains("missing `type`"));
}

#[test]
fn current_layout_with_http_service_and_defaults() {
    let text = "app = \"web\"\nprimary_region = \"ord\"\nkill_timeout = \"30s\"\n[build]\nimage = \"ghcr.io/me/web:1.2\"\n\
                [http_service]\ninternal_port = 3000\nforce_https = true\nauto_stop_machines = \"stop\"\n\
                [checks.ready]\ntype = \"http\"\npath = \"/ready\"\n\
                [[vm]]\nmemory = \"1gb\"\ncpu_kind = \"performance\"\ncpus = 2\n";
    let imported = import_fly_toml(Path::new("fly.toml"), text, None).unwrap();
    let spec = &imported.manifest.spec;
    assert_eq!(spec.image, "ghcr.io/me/web:1.2");
    assert_eq!(spec.process_groups["app"].regions["ord"], 2);
    let vm = spec.process_groups["app"].vm.as_ref().unwrap();
    assert_eq!(
        (vm.size.as_str(), vm.memory_mb),
        ("performance-2x", Some(1024))
    );
    assert_eq!(spec.checks["ready"].port, Some(3000));
    assert_eq!(spec.services[0].ports[1].handlers, ["http", "tls"]);
    assert_eq!(
        spec.stop.as_ref().unwrap().timeout.unwrap().to_string(),
        "30s"
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("http_service.auto_stop_machines:"))
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("checks.ready: no port; [http_service]'s internal_port 3000"))
    );
}

#[test]
fn no_checks_means_machine_checks_are_ignored() {
    let imported = import_fly_toml(Path::new("fly.toml"), "app = \"quiet\"\n", None).unwrap();
    assert_eq!(
        imported.manifest.spec.health.machine_checks,
        MachineChecksRule::Ignore
    );
    assert_eq!(imported.manifest.spec.image, "registry.fly.io/quiet:latest");
    assert_eq!(
        imported.manifest.spec.process_groups["app"].regions["iad"],
        1
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.starts_with("no checks in fly.toml"))
    );
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "",
        "=",
        "app = 1",
        "[[services]]\n",
        "services = 3",
        "[services]\nports = 7",
        "processes = [1]",
        "[env]\nFLY_X = \"1\"\n",
        "app = \"\"",
        "[[vm]]\nmemory = -1",
        "[deploy]\nwait_timeout = -5",
        "[[services]]\ninternal_port = 99999\n",
        "[[services]]\ninternal_port = 1\nconcurrency = \"a,b\"\n",
        "app = \"x\"\n[http_service.concurrency]\nsoft_limit = 30\nhard_limit = 20\n",
        "\u{feff}app = \"x\"",
    ];
    for text in inputs {
        let _ = import_fly_toml(Path::new("fly.toml"), text, None);
    }
}
