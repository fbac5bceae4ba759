//! `opsctl validate [DIR]`: load and check manifests; every problem as `file:line:column`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use opsctl_crds::{Diagnostic, ManifestSet, load_dir};
use serde_json::json;

use super::Global;
use super::output::{Format, coded, print_json, print_text};

/// Arguments of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Directory to check (default: --manifests).
    pub dir: Option<PathBuf>,
    /// Treat warnings as errors.
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn exec(args: ValidateArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| global.manifests.clone());
    let (errors, warnings, set) = match load_dir(&dir) {
        Ok(set) => {
            let mut warnings = set.warnings.clone();
            warnings.extend(machine_warnings(&set));
            warnings.extend(unknown_app_warnings(&set));
            (vec![], warnings, Some(set))
        }
        Err(e) => (e.diagnostics, e.warnings, None),
    };
    let valid = errors.is_empty() && (warnings.is_empty() || !args.deny_warnings);
    if global.output == Format::Json {
        let apps: Vec<&str> = set
            .iter()
            .flat_map(|s| s.apps.iter().map(|a| a.app_name()))
            .collect();
        let kinds: serde_json::Map<String, serde_json::Value> = set
            .iter()
            .flat_map(|s| {
                std::iter::once(("FlyApp", s.apps.len()))
                    .chain(other_kinds(s))
                    .map(|(k, n)| (k.to_owned(), json!(n)))
            })
            .collect();
        print_json(
            &json!({"kind": "validation", "dir": dir, "valid": valid, "apps": apps, "kinds": kinds, "errors": errors, "warnings": warnings}),
        )?;
    } else {
        let mut text = String::new();
        for d in &errors {
            text.push_str(&format!("{}\n", render(d, "error")));
        }
        for d in &warnings {
            text.push_str(&format!("{}\n", render(d, "warning")));
        }
        match &set {
            Some(set) if valid => text.push_str(&summary(set)),
            _ => text.push_str(&format!(
                "{}: invalid: {} error(s), {} warning(s); the set is rejected whole\n",
                dir.display(),
                errors.len(),
                warnings.len()
            )),
        }
        print_text(&text)?;
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What a valid set refers to on this machine that is not there: an `AlertRoute` beads target
/// whose repository's `.beads/` directory does not exist (escalations to it would fail).
fn machine_warnings(set: &ManifestSet) -> Vec<Diagnostic> {
    crate::notify::AlertRoutes::from_manifests(&set.alert_routes)
        .missing_beads_dirs()
        .into_iter()
        .map(|(route, path)| Diagnostic {
            file: set
                .alert_routes
                .iter()
                .find(|m| m.name() == route)
                .map(|m| m.file.clone())
                .unwrap_or_default(),
            line: 0,
            column: 0,
            field: Some("spec.targets[].beads.path".into()),
            message: format!(
                "AlertRoute {route}: {} is not in an existing directory; escalations to it will fail",
                path.display()
            ),
            help: Some(
                "check out the engineering repository there (with its .beads/ directory), or fix the path (relative to this manifest's directory)".into(),
            ),
        })
        .collect()
}

/// Apps named by other kinds that no `FlyApp` of the set manages (a typo in a policy's `apps`
/// would silently leave its rules, e.g. a freeze window, unenforced). Only when the set has
/// FlyApps: a directory of policies alone is not judged.
fn unknown_app_warnings(set: &ManifestSet) -> Vec<Diagnostic> {
    if set.apps.is_empty() {
        return Vec::new();
    }
    let known: std::collections::BTreeSet<&str> = set.apps.iter().map(|a| a.app_name()).collect();
    let mut out = Vec::new();
    let mut check = |kind: &str, name: &str, file: &Path, field: &str, apps: &[&str]| {
        for app in apps.iter().filter(|a| !known.contains(**a)) {
            out.push(Diagnostic {
                file: file.to_path_buf(),
                line: 0,
                column: 0,
                field: Some(field.to_owned()),
                message: format!(
                    "{kind} {name} names app {app:?}, which no FlyApp in this set manages; it never applies to it"
                ),
                help: Some(format!(
                    "the FlyApps here: {}",
                    known.iter().copied().collect::<Vec<_>>().join(", ")
                )),
            });
        }
    };
    for m in &set.policies {
        let apps: Vec<&str> = m.spec.apps.iter().map(String::as_str).collect();
        check("GovernancePolicy", m.name(), &m.file, "spec.apps", &apps);
    }
    for m in &set.runbooks {
        let apps: Vec<&str> = m.spec.apps.iter().map(String::as_str).collect();
        check("Runbook", m.name(), &m.file, "spec.apps", &apps);
    }
    for m in &set.alert_routes {
        let apps: Vec<&str> = m.spec.matches.apps.iter().map(String::as_str).collect();
        check("AlertRoute", m.name(), &m.file, "spec.match.apps", &apps);
    }
    for m in &set.slos {
        check(
            "HealthSLO",
            m.name(),
            &m.file,
            "spec.app",
            &[m.spec.app_name(m.name())],
        );
    }
    out
}

fn summary(set: &ManifestSet) -> String {
    if set.found_no_files() {
        return "ok, but empty: no manifests (*.yaml, *.yml) found\n".to_owned();
    }
    let apps: Vec<&str> = set.apps.iter().map(|a| a.app_name()).collect();
    let mut out = if apps.is_empty() {
        "ok: no FlyApp manifests\n".to_owned()
    } else {
        format!(
            "ok: {} FlyApp manifest(s): {}\n",
            apps.len(),
            apps.join(", ")
        )
    };
    for (kind, n) in other_kinds(set) {
        if n > 0 {
            out.push_str(&format!("    {n} {kind}\n"));
        }
    }
    out
}

/// How many manifests of each kind besides `FlyApp` the set holds, in DESIGN order.
fn other_kinds(set: &ManifestSet) -> [(&'static str, usize); 6] {
    [
        ("GovernancePolicy", set.policies.len()),
        ("HealthSLO", set.slos.len()),
        ("CertWindow", set.cert_windows.len()),
        ("MaintenanceSchedule", set.schedules.len()),
        ("Runbook", set.runbooks.len()),
        ("AlertRoute", set.alert_routes.len()),
    ]
}

/// `file:line:column: error: message` plus an indented help line.
pub fn render(d: &Diagnostic, severity: &str) -> String {
    let mut s = format!(
        "{}:{}:{}: {severity}: {}",
        d.file.display(),
        d.line,
        d.column,
        d.message
    );
    if let Some(field) = &d.field {
        s.push_str(&format!(" (at {field})"));
    }
    if let Some(help) = &d.help {
        s.push_str(&format!("\n    help: {help}"));
    }
    s
}

/// `dir` as the user should read it: a relative path that does not start with `.` gets
/// `./`, so the default `manifests` reads as a directory, not a word.
pub fn shown(dir: &Path) -> String {
    if dir.is_relative() && !dir.starts_with(".") && !dir.starts_with("..") {
        format!("./{}", dir.display())
    } else {
        dir.display().to_string()
    }
}

/// Fail early when the manifests directory (or file) is missing, with a message that says so
/// rather than what the loader or the file watcher would say about it.
///
/// # Errors
/// `dir` does not exist or cannot be read (code `manifests.missing`).
pub fn check_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(coded(
            "manifests.missing",
            format!(
                "manifests directory {} does not exist (set it with --manifests DIR)",
                shown(dir)
            ),
        )),
        Err(e) => Err(coded(
            "manifests.missing",
            format!("cannot read the manifests directory {}: {e}", shown(dir)),
        )),
    }
}

/// Load `--manifests`, or fail with every problem listed.
///
/// # Errors
/// The directory is missing, or the set is invalid; the message lists every error.
pub fn load(global: &Global) -> anyhow::Result<ManifestSet> {
    check_dir(&global.manifests)?;
    match load_dir(&global.manifests) {
        Ok(set) => {
            for w in &set.warnings {
                tracing::warn!("{}", render(w, "warning"));
            }
            Ok(set)
        }
        Err(e) => {
            let lines: Vec<String> = e.diagnostics.iter().map(|d| render(d, "error")).collect();
            Err(coded(
                "manifests.invalid",
                format!(
                    "the manifests in {} are invalid ({} error(s)); nothing was done:\n{}",
                    shown(&global.manifests),
                    e.diagnostics.len(),
                    lines.join("\n")
                ),
            ))
        }
    }
}
