//! `opsctl sim serve`: run the Fly simulator until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::Global;
use super::output::{Format, print_json, print_text};
use crate::sim;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve a simulated Fly (Machines REST, GraphQL, releases REST, /__sim/ control API).
    Serve {
        /// Scenario file (YAML; see docs/simulator.md). Default: LowEndInsight on v109.
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:4280")]
        addr: SocketAddr,
    },
}

pub async fn exec(command: SimCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let SimCommand::Serve { scenario, addr } = command;
    let scenario = match &scenario {
        Some(path) => sim::scenario::Scenario::from_file(path)
            .with_context(|| format!("loading scenario {}", path.display()))?,
        None => sim::scenario::Scenario::lowendinsight_default(),
    };
    let handle = sim::serve(scenario, addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    if global.output == Format::Json {
        print_json(&json!({"kind": "sim", "url": handle.base_url()}))?;
    } else {
        print_text(&format!(
            "Fly simulator listening on {}\n",
            handle.base_url()
        ))?;
    }
    let _ = tokio::signal::ctrl_c().await;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
