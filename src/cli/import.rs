//! `opsctl import fly-toml FILE`: a `fly.toml` (current or legacy layout) → a `FlyApp`
//! manifest on stdout; every key that cannot be carried is a warning on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::Global;
use super::output::{Format, print_json, print_text};

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Convert a fly.toml into a FlyApp manifest.
    FlyToml {
        /// The fly.toml file.
        file: PathBuf,
        /// Image to deploy (fly.toml usually has none: flyctl builds it).
        #[arg(long)]
        image: Option<String>,
    },
}

pub fn exec(command: ImportCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let ImportCommand::FlyToml { file, image } = command;
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let imported = opsctl_crds::import::import_fly_toml(&file, &text, image.as_deref())?;
    if global.output == Format::Json {
        print_json(
            &json!({"kind": "import", "file": file, "manifest": imported.yaml, "warnings": imported.warnings}),
        )?;
    } else {
        for w in &imported.warnings {
            tracing::warn!("{}: {w}", file.display());
        }
        print_text(&imported.yaml)?;
    }
    Ok(ExitCode::SUCCESS)
}
