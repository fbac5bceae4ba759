//! `opsctl validate [DIR]`: load and check manifests; every problem as `file:line:column`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use opsctl_crds::{Diagnostic, ManifestSet, load_dir};
use serde_json::json;

use super::Global;
use super::output::{Format, print_json, print_text};

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
        Ok(set) => (vec![], set.warnings.clone(), Some(set)),
        Err(e) => (e.diagnostics, e.warnings, None),
    };
    let valid = errors.is_empty() && (warnings.is_empty() || !args.deny_warnings);
    if global.output == Format::Json {
        let apps: Vec<&str> = set
            .iter()
            .flat_map(|s| s.apps.iter().map(|a| a.app_name()))
            .collect();
        print_json(
            &json!({"kind": "validation", "dir": dir, "valid": valid, "apps": apps, "errors": errors, "warnings": warnings}),
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

fn summary(set: &ManifestSet) -> String {
    let apps: Vec<&str> = set.apps.iter().map(|a| a.app_name()).collect();
    format!(
        "ok: {} FlyApp manifest(s): {}\n",
        apps.len(),
        apps.join(", ")
    )
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

/// Load `--manifests`, or fail with every problem listed.
///
/// # Errors
/// The set is invalid; the message lists every error.
pub fn load(global: &Global) -> anyhow::Result<ManifestSet> {
    match load_dir(&global.manifests) {
        Ok(set) => {
            for w in &set.warnings {
                tracing::warn!("{}", render(w, "warning"));
            }
            Ok(set)
        }
        Err(e) => {
            let lines: Vec<String> = e.diagnostics.iter().map(|d| render(d, "error")).collect();
            anyhow::bail!(
                "manifests in {} are invalid ({} error(s)); nothing was done:\n{}",
                global.manifests.display(),
                e.diagnostics.len(),
                lines.join("\n")
            )
        }
    }
}
