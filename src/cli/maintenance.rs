//! `opsctl maintenance run-once` and `opsctl maintenance status`: the maintenance pipeline by
//! hand, and what `opsctl run`'s scheduler last found (docs/maintenance.md).
//!
//! `run-once` runs the checks once against `--fly` and prints each result; it reads the record
//! store (for the cost average) but writes nothing, so it can run beside `opsctl run`. Exit 0
//! when nothing is wrong (unknown results included: they are printed, not failures), 2 when a
//! check raised an alert, 1 on error. Fly is read through a client acting as the `monitor`
//! role. The certificate check (`--check cert-expiry`) checks every `CertWindow` hostname
//! (nothing is remembered between runs); `--connect-to HOSTNAME=IP:PORT` sends a hostname's
//! handshake elsewhere, as `curl --connect-to`.
//!
//! JSON (`-o json`): `run-once` prints `{"kind":"maintenance_run","results":[{"kind":
//! "check_result","check","app","status","summary","signals","at"}],"signals":[Signal…]}`;
//! `status` prints the status file as written (`{"kind":"maintenance_status",…}`, see
//! `opsctl::maintenance::status`).

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};
use opsctl_controllers::maintenance::Status;
use opsctl_crds::kinds::maintenance::CheckName;
use serde_json::json;

use super::output::{Format, print_json, print_text};
use super::{Global, target, validate};
use crate::maintenance::certs::{CertChecker, TlsProbe};
use crate::maintenance::scheduler::SCHEDULED;
use crate::maintenance::{
    Maintenance, MaintenanceStatus, ReadOnlyFly, monitor_client, process_env,
};
use crate::records::RecordStore;
use crate::runtime::clock::SystemClock;

/// `opsctl maintenance …`.
#[derive(Debug, Subcommand)]
pub enum MaintenanceCommand {
    /// Run the maintenance checks once and print what they found (read-only; records nothing).
    ///
    /// Exit 0: no alert (unknown results are printed, not failures); 2: an alert; 1: error.
    RunOnce(RunOnceArgs),
    /// What `opsctl run`'s maintenance scheduler last found: per check its schedule, next
    /// run, skipped runs and the last result per app (from the state directory).
    Status,
}

/// Arguments of `maintenance run-once`.
#[derive(Debug, Args)]
pub struct RunOnceArgs {
    /// Only these checks (repeatable); default every scheduled check.
    #[arg(long = "check", value_enum)]
    pub checks: Vec<CheckArg>,
    /// For the certificate check: handshake with HOSTNAME at IP:PORT instead of resolving it
    /// on port 443 (SNI and verification still use HOSTNAME, as `curl --connect-to`).
    /// Repeatable; e.g. `--connect-to www.example.com=10.0.0.5:8443`.
    #[arg(long = "connect-to", value_name = "HOSTNAME=IP:PORT", value_parser = parse_connect_to)]
    pub connect_to: Vec<(String, std::net::SocketAddr)>,
}

fn parse_connect_to(s: &str) -> Result<(String, std::net::SocketAddr), String> {
    let (host, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}`: expected HOSTNAME=IP:PORT"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("`{addr}` is not an IP:PORT address: {e}"))?;
    Ok((host.to_owned(), addr))
}

/// A check, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckArg {
    /// Machine checks and external probes.
    AppHealth,
    /// TLS certificates of the `CertWindow` hostnames (Fly's view and a handshake).
    CertExpiry,
    /// Stopped/failed machines that should run.
    MachineStatus,
    /// PostgreSQL connections in use.
    PostgresConnections,
    /// Redis PING.
    Redis,
    /// Cost estimate and anomaly.
    CostSnapshot,
    /// Oban `available` growth.
    ObanQueueDepth,
}

impl From<CheckArg> for CheckName {
    fn from(c: CheckArg) -> Self {
        match c {
            CheckArg::AppHealth => CheckName::AppHealth,
            CheckArg::CertExpiry => CheckName::CertExpiry,
            CheckArg::MachineStatus => CheckName::MachineStatus,
            CheckArg::PostgresConnections => CheckName::PostgresConnections,
            CheckArg::Redis => CheckName::Redis,
            CheckArg::CostSnapshot => CheckName::CostSnapshot,
            CheckArg::ObanQueueDepth => CheckName::ObanQueueDepth,
        }
    }
}

pub async fn exec(command: MaintenanceCommand, global: &Global) -> anyhow::Result<ExitCode> {
    match command {
        MaintenanceCommand::RunOnce(args) => run_once(args, global).await,
        MaintenanceCommand::Status => status(global),
    }
}

async fn run_once(args: RunOnceArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let set = validate::load(global)?;
    let target = target::connect(&global.fly).await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let client = monitor_client(&target.client);
    let mut tls = TlsProbe::new();
    for (host, addr) in &args.connect_to {
        tls = tls.connect_to(host, *addr);
    }
    // In memory only: run-once writes nothing, so every hostname is due.
    let certs = CertChecker::new(client.clone(), tls);
    let maintenance = Maintenance::new(
        ReadOnlyFly::new(client),
        Arc::new(RecordStore::open_read_at(
            global.store.as_deref(),
            &global.state,
        )?),
        false,
        tx,
        Arc::new(SystemClock),
        process_env(),
    )
    .with_certs(certs);
    let checks: Vec<CheckName> = if args.checks.is_empty() {
        SCHEDULED.to_vec()
    } else {
        args.checks.iter().map(|c| (*c).into()).collect()
    };
    let mut rows = Vec::new();
    for check in checks {
        for r in maintenance.run(check, &set).await {
            rows.push((check, r));
        }
    }
    drop(maintenance);
    let mut signals = Vec::new();
    while let Ok(s) = rx.try_recv() {
        signals.push(s);
    }
    let alert = rows.iter().any(|(_, r)| r.status == Status::Alert);
    if global.output == Format::Json {
        let results: Vec<_> = rows
            .iter()
            .map(|(check, r)| {
                json!({"kind": "check_result", "check": check, "app": r.app, "status": r.status,
                       "summary": r.summary, "signals": r.signals, "at": r.at})
            })
            .collect();
        print_json(&json!({"kind": "maintenance_run", "results": results, "signals": signals}))?;
    } else if rows.is_empty() {
        print_text("no check had anything to look at (no FlyApp, or no dependency declared)\n")?;
    } else {
        let mut text = format!(
            "{:<20} {:<16} {:<8} {}\n",
            "CHECK", "APP", "STATUS", "SUMMARY"
        );
        for (check, r) in &rows {
            text.push_str(&format!(
                "{:<20} {:<16} {:<8} {}\n",
                check.as_str(),
                r.app,
                r.status.as_str(),
                r.summary
            ));
        }
        print_text(&text)?;
    }
    drop(target);
    Ok(if alert {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn status(global: &Global) -> anyhow::Result<ExitCode> {
    let Some(status) = MaintenanceStatus::load(&global.state)? else {
        if global.output == Format::Json {
            print_json(&MaintenanceStatus::default())?;
        } else {
            print_text(&format!(
                "no maintenance status in {} yet: `opsctl run` writes it after its first checks\n",
                global.state.display()
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    if global.output == Format::Json {
        print_json(&status)?;
        return Ok(ExitCode::SUCCESS);
    }
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    let mut text = format!(
        "maintenance (as of {} UTC)\n{:<20} {:<36} {:<20} {:>5} {:>7}\n",
        status.updated_at.format("%Y-%m-%d %H:%M:%S"),
        "CHECK",
        "SCHEDULE",
        "NEXT RUN (UTC)",
        "RUNS",
        "SKIPPED"
    );
    for c in &status.checks {
        let schedule = if c.enabled {
            c.schedule.clone()
        } else {
            "disabled".to_owned()
        };
        text.push_str(&format!(
            "{:<20} {:<36} {:<20} {:>5} {:>7}\n",
            c.check.as_str(),
            schedule,
            time(c.next_run),
            c.runs,
            c.skipped
        ));
        for r in &c.results {
            text.push_str(&format!(
                "    {:<16} {:<8} {}\n",
                r.app,
                r.status.as_str(),
                r.summary
            ));
        }
    }
    print_text(&text)?;
    Ok(ExitCode::SUCCESS)
}
