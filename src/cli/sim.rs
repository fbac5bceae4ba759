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
        /// Virtual seconds per real second, overriding the scenario's `timeScale` (e.g. 3600:
        /// an hour passes every second; 0.000001: time stands still except for
        /// `POST /__sim/advance`).
        #[arg(long, value_name = "N", value_parser = parse_time_scale)]
        time_scale: Option<f64>,
    },
}

/// A positive, finite number.
fn parse_time_scale(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a time scale: give a positive number, like 1, 60 or 3600"
        )),
    }
}

/// The scenario to serve: the file, or the bundled LowEndInsight one, with `--time-scale`
/// replacing its `timeScale`.
fn load(path: Option<&std::path::Path>, time_scale: Option<f64>) -> anyhow::Result<sim::Scenario> {
    let mut scenario = match path {
        Some(path) => sim::Scenario::from_file(path)
            .with_context(|| format!("loading scenario {}", path.display()))?,
        None => sim::Scenario::lowendinsight_default(),
    };
    if let Some(scale) = time_scale {
        scenario.time_scale = scale;
    }
    Ok(scenario)
}

pub async fn exec(command: SimCommand, global: &Global) -> anyhow::Result<ExitCode> {
    let SimCommand::Serve {
        scenario,
        addr,
        time_scale,
    } = command;
    let scenario = load(scenario.as_deref(), time_scale)?;
    let handle = sim::serve(scenario, addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    if global.output == Format::Json {
        print_json(&json!({
            "kind": "sim",
            "url": handle.base_url(),
            "timeScale": handle.state().time_scale(),
        }))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        sim: SimCommand,
    }

    #[test]
    fn time_scale_is_a_positive_number() {
        let cli = Cli::try_parse_from(["x", "serve", "--time-scale", "3600"]).unwrap();
        let SimCommand::Serve { time_scale, .. } = cli.sim;
        assert_eq!(time_scale, Some(3600.0));
        let cli = Cli::try_parse_from(["x", "serve"]).unwrap();
        let SimCommand::Serve { time_scale, .. } = cli.sim;
        assert_eq!(time_scale, None);
        for bad in ["0", "-1", "fast", "inf", "NaN"] {
            let arg = format!("--time-scale={bad}");
            let e = Cli::try_parse_from(["x", "serve", arg.as_str()]).unwrap_err();
            assert!(e.to_string().contains("not a time scale"), "{bad}: {e}");
        }
    }

    #[test]
    fn time_scale_overrides_the_scenario() {
        assert_eq!(load(None, None).unwrap().time_scale, 1.0);
        assert_eq!(load(None, Some(60.0)).unwrap().time_scale, 60.0);
        let faults = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sim/faults.yaml");
        let s = load(Some(std::path::Path::new(faults)), Some(0.5)).unwrap();
        assert_eq!(s.time_scale, 0.5);
    }
}
