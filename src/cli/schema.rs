//! `opsctl schema [KIND]`: the JSON Schema (Draft 2020-12) of each resource kind, generated
//! from the types the loader reads (`opsctl_crds::schema`); the same documents are shipped in
//! `crds-like/schemas/<Kind>.json` and a test fails when those are stale.
//!
//! Output is always JSON (`-o` does not change it): with KIND, that kind's schema document;
//! without, one JSON object `{"FlyApp": {schema}, "HealthSLO": {…}, …}` keyed by kind in the
//! order of `KNOWN_KINDS`. `--write DIR` writes `DIR/<Kind>.json` for the kinds asked for
//! instead of printing (how `crds-like/schemas/` is refreshed). An unknown KIND is an error
//! (exit 1, code `schema.unknown_kind`) that lists the kinds.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use opsctl_crds::KNOWN_KINDS;
use opsctl_crds::schema;
use serde_json::{Map, Value};

use super::Global;
use super::output::{coded, print_json, print_text};

/// Arguments of `schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Only this kind (FlyApp, HealthSLO, CertWindow, GovernancePolicy, MaintenanceSchedule,
    /// Runbook, AlertRoute; case does not matter). Without it: every kind, as one JSON object
    /// keyed by kind.
    pub kind: Option<String>,
    /// Write one file per kind, DIR/<Kind>.json, instead of printing (e.g. `--write
    /// crds-like/schemas` refreshes the shipped copies).
    #[arg(long, value_name = "DIR")]
    pub write: Option<PathBuf>,
}

/// The kind as spelled in `KNOWN_KINDS`, whatever the case the user typed.
fn known(kind: &str) -> anyhow::Result<&'static str> {
    KNOWN_KINDS
        .iter()
        .find(|k| k.eq_ignore_ascii_case(kind))
        .copied()
        .ok_or_else(|| {
            coded(
                "schema.unknown_kind",
                format!(
                    "unknown kind {kind:?}: the kinds are {}",
                    KNOWN_KINDS.join(", ")
                ),
            )
        })
}

pub fn exec(args: SchemaArgs, _global: &Global) -> anyhow::Result<ExitCode> {
    let schemas: Vec<(&str, Value)> = match &args.kind {
        Some(k) => {
            let k = known(k)?;
            let s = schema::for_kind(k).with_context(|| format!("no schema for {k}"))?;
            vec![(k, s)]
        }
        None => schema::all(),
    };
    if let Some(dir) = &args.write {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut text = String::new();
        for (kind, s) in &schemas {
            let path = dir.join(format!("{kind}.json"));
            std::fs::write(&path, schema::file_text(s))
                .with_context(|| format!("writing {}", path.display()))?;
            text.push_str(&format!("wrote {}\n", path.display()));
        }
        print_text(&text)?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.kind.is_some()
        && let Some((_, s)) = schemas.first()
    {
        print_json(s)?;
    } else {
        let all: Map<String, Value> = schemas
            .into_iter()
            .map(|(k, s)| (k.to_owned(), s))
            .collect();
        print_json(&Value::Object(all))?;
    }
    Ok(ExitCode::SUCCESS)
}
