//! The command line: clap argument structs (what the user typed), one module per subcommand
//! (each turns its arguments into work and prints the result), and the one error renderer.
//!
//! Exit codes (DESIGN.md §8): 0 ok / in sync; 1 error or invalid input; 2 drift (`diff`);
//! 3 waiting for approval (`apply`). Nothing outside this module prints.

mod apply;
mod approve;
mod demo;
mod diff;
mod history;
mod import;
mod maintenance;
mod output;
mod pending;
mod plan;
mod records;
mod rollback;
mod run;
mod schema;
mod signal;
mod sim;
mod status;
mod target;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

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
#[derive(Debug, Clone, Args)]
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
    /// Where records live: the embedded journal under --state (the default, one replica), or
    /// a PostgreSQL URL (`postgres://USER@HOST/DB`) shared by several `opsctl run` replicas,
    /// which then elect a leader (docs/scaling.md). A secret: never printed.
    #[arg(long, global = true, env = "OPSCTL_STORE", hide_env_values = true)]
    pub store: Option<String>,
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
    /// What a pass would do now: each action with its governance decision (auto, gated,
    /// denied) and the rule, and the plan hash. Exit 0 nothing to do, 2 actions, 1 error.
    Plan(plan::PlanArgs),
    /// One reconcile pass: roll out what governance allows (auto or approved), check health,
    /// roll back on failure; queue gated plans for approval. Exit 3 when something waits.
    /// With `--plan FILE`: exactly the plan `opsctl plan --out FILE` saved, or refused.
    Apply(apply::ApplyArgs),
    /// The long-running reconciler: reacts to commits in the manifests checkout.
    ///
    /// Prints log lines on stderr and nothing on stdout: `-o json` does not apply, use
    /// `--log-format json` for one JSON object per log line. Ctrl-C or SIGTERM stops after the
    /// current step; a second one exits at once (130 after Ctrl-C).
    Run(Box<run::RunArgs>),
    /// Gated plans waiting for `opsctl approve` / `opsctl deny`, with their age.
    Pending(pending::PendingArgs),
    /// Approve a waiting plan (refused as stale when what Fly reports changed since).
    Approve(approve::DecideArgs),
    /// Deny a waiting plan: it is not carried out.
    Deny(approve::DecideArgs),
    /// Per app: governance phase and burn-in count, approvals waiting, last deploy.
    Status(status::StatusArgs),
    /// Deploy records of an app (or all apps), newest first.
    History(history::HistoryArgs),
    /// The periodic read-only checks: run them once, or show what `opsctl run` last found.
    #[command(subcommand)]
    Maintenance(maintenance::MaintenanceCommand),
    /// Export records as a beads issues.jsonl, or import one.
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// Roll an app back to an earlier Fly release (a new release with the older image),
    /// through governance: by default to the last release whose deploy succeeded before the
    /// current one, or `--to VERSION`. Exit 3 when it waits for approval, 1 when refused.
    Rollback(rollback::RollbackArgs),
    /// Print the JSON Schema (Draft 2020-12) of a resource kind, or of every kind as one
    /// object keyed by kind; `--write DIR` writes `DIR/<Kind>.json` instead.
    Schema(schema::SchemaArgs),
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
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(e) => return output::usage_error(&e, json_requested(&args)),
    };
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

/// Parse the command line (`args[0]` is the program). A usage error is returned, not printed
/// and exited on as `Cli::parse` would: the caller renders it (exit 1, JSON with `-o json`).
///
/// # Errors
/// Unknown flags, bad values, a missing subcommand; also `--help` and `--version`, which clap
/// reports as errors of their own kinds.
pub fn parse(args: &[std::ffi::OsString]) -> Result<Cli, clap::Error> {
    let mut command = command();
    if args.iter().any(|a| a == "--no-color") {
        command = command.color(clap::ColorChoice::Never);
    }
    let matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut command))
}

/// The clap command, with each global flag hidden from the help of the subcommands that do
/// not use it (`sim serve --help` does not list `--manifests`, `--state` or `--fly`), and `-o`
/// explained where it does not apply (`run`). The flags stay global, so `opsctl --manifests X
/// diff` keeps working; a hidden flag is accepted and ignored.
pub fn command() -> clap::Command {
    let mut command = Cli::command();
    command.build();
    command.mut_subcommands(|sub| {
        let uses: &[&str] = match sub.get_name() {
            "validate" => &["manifests", "output"],
            "diff" => &["manifests", "fly", "output"],
            "apply" | "run" | "plan" | "approve" | "maintenance" | "rollback" => {
                &["manifests", "state", "store", "fly", "output"]
            }
            "status" => &["manifests", "state", "store", "output"],
            "pending" | "deny" | "history" | "records" => &["state", "store", "output"],
            "demo" => &["state", "output"],
            "import" | "sim" => &["output"],
            "schema" => &[],
            _ => return sub,
        };
        let mut sub = hide_unused(sub, uses);
        if sub.get_name() == "run" {
            // `mut_args`, not `mut_arg`: on a built command, moving an arg would scramble
            // clap's index of flags (`--help` would print the version).
            sub = sub.mut_args(|a| {
                if a.get_id() == "output" {
                    a.help(
                        "Not used by `run`, which prints only log lines on stderr: for JSON \
                         logs use --log-format json",
                    )
                } else {
                    a
                }
            });
        }
        sub
    })
}

/// Hide the global flags `--manifests`, `--state`, `--fly` and `-o` that `uses` does not name,
/// in `sub` and every subcommand below it.
fn hide_unused(sub: clap::Command, uses: &[&str]) -> clap::Command {
    let sub = sub.mut_args(|a| {
        let id = a.get_id().as_str();
        if ["manifests", "state", "store", "fly", "output"].contains(&id) && !uses.contains(&id) {
            a.hide(true)
        } else {
            a
        }
    });
    sub.mut_subcommands(|s| hide_unused(s, uses))
}

/// True when the command line asks for JSON output (`-o json`, `-ojson`, `-o=json`,
/// `--output json`, `--output=json`), so that even a usage error comes as JSON.
fn json_requested(args: &[std::ffi::OsString]) -> bool {
    let args: Vec<&str> = args.iter().filter_map(|a| a.to_str()).collect();
    args.iter().enumerate().any(|(i, a)| {
        matches!(*a, "-ojson" | "-o=json" | "--output=json")
            || (matches!(*a, "-o" | "--output") && args.get(i + 1) == Some(&"json"))
    })
}

async fn dispatch(command: Command, global: &Global) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate(a) => validate::exec(a, global),
        Command::Diff(a) => diff::exec(a, global).await,
        Command::Plan(a) => plan::exec(a, global).await,
        Command::Apply(a) => apply::exec(a, global).await,
        Command::Pending(a) => pending::exec(a, global),
        Command::Approve(a) => approve::approve(a, global).await,
        Command::Deny(a) => approve::deny(a, global),
        Command::Status(a) => status::exec(a, global).await,
        Command::Run(a) => {
            // Before the reconciler's file watch, which would only say "No path was found."
            // With --git-url the manifests are opsctl's clone, checked after the first fetch.
            if a.git_url.is_none() {
                validate::check_dir(&global.manifests)?;
            }
            run::exec(*a, global).await
        }
        Command::History(a) => history::exec(a, global),
        Command::Maintenance(c) => maintenance::exec(c, global).await,
        Command::Records(c) => records::exec(c, global),
        Command::Rollback(a) => rollback::exec(a, global).await,
        Command::Schema(a) => schema::exec(a, global),
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
        super::command().debug_assert();
    }

    #[test]
    fn json_is_asked_for_in_every_spelling() {
        let args = |s: &str| -> Vec<std::ffi::OsString> { s.split(' ').map(Into::into).collect() };
        for yes in [
            "opsctl -o json diff",
            "opsctl diff -ojson",
            "opsctl diff --output=json --bogus",
            "opsctl diff -o=json",
        ] {
            assert!(super::json_requested(&args(yes)), "{yes}");
        }
        for no in [
            "opsctl diff",
            "opsctl -o yaml diff",
            "opsctl diff --app json",
        ] {
            assert!(!super::json_requested(&args(no)), "{no}");
        }
    }
}
