//! The command line: clap argument structs (what the user typed), one module per subcommand
//! (each turns its arguments into work and prints the result), and the one error renderer.
//!
//! Exit codes (DESIGN.md §8): 0 ok / in sync; 1 error or invalid input; 2 drift (`diff`);
//! 3 waiting for approval (`apply`, once governance lands). Nothing outside this module prints.

mod apply;
mod demo;
mod diff;
mod history;
mod import;
mod output;
mod run;
mod sim;
mod target;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use output::Format;

/// opsctl: a GitOps operator for apps on Fly.io.
///
/// Desired state lives in YAML manifests in git; opsctl diffs it against what Fly reports
/// and rolls out, checks health, and rolls back, leaving a record of every deploy.
#[derive(Debug, Parser)]
#[command(name = "opsctl", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Directory of manifests (loaded recursively).
    #[arg(
        long,
        global = true,
        env = "OPSCTL_MANIFESTS",
        default_value = "manifests"
    )]
    pub manifests: PathBuf,
    /// State directory (deploy records).
    #[arg(long, global = true, env = "OPSCTL_STATE", default_value = ".opsctl")]
    pub state: PathBuf,
    /// Where Fly is: `fly` (the real API), `embedded` (an in-process simulator) or a URL
    /// serving all Fly APIs (e.g. a running `opsctl sim serve`). Token from FLY_API_TOKEN.
    #[arg(long, global = true, env = "OPSCTL_FLY", default_value = "fly")]
    pub fly: String,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,
    /// Never colour the output.
    #[arg(long, global = true)]
    pub no_color: bool,
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and check manifests; print every problem as file:line:column.
    Validate(validate::ValidateArgs),
    /// Show drift between the manifests (desired) and Fly (observed). Exit 0 in sync, 2 drift.
    Diff(diff::DiffArgs),
    /// One reconcile pass: roll out what drifted, check health, roll back on failure.
    Apply(apply::ApplyArgs),
    /// The long-running reconciler: reacts to commits in the manifests checkout.
    Run(run::RunArgs),
    /// Deploy records of an app (or all apps), newest first.
    History(history::HistoryArgs),
    /// Turn other formats into manifests.
    #[command(subcommand)]
    Import(import::ImportCommand),
    /// The local Fly simulator.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// A scripted end-to-end run on the embedded simulator: rollout, a bad image caught and
    /// rolled back, diff clean at the end.
    Demo(demo::DemoArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    output::init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            return output::report(
                &cli.global,
                &anyhow::Error::new(e).context("starting the async runtime"),
            );
        }
    };
    let result = runtime.block_on(dispatch(cli.command, &cli.global));
    match result {
        Ok(code) => code,
        Err(e) => output::report(&cli.global, &e),
    }
}

async fn dispatch(command: Command, global: &Global) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate(a) => validate::exec(a, global),
        Command::Diff(a) => diff::exec(a, global).await,
        Command::Apply(a) => apply::exec(a, global).await,
        Command::Run(a) => run::exec(a, global).await,
        Command::History(a) => history::exec(a, global),
        Command::Import(c) => import::exec(c, global),
        Command::Sim(c) => sim::exec(c, global).await,
        Command::Demo(a) => demo::exec(a, global).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
