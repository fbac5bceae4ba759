//! `opsctl run`: the long-running reconciler; stops cleanly on SIGINT/SIGTERM (a second one
//! exits at once, see `signal`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use opsctl_crds::DurationStr;

use super::{Global, signal, target};
use crate::records::RecordStore;
use crate::runtime::clock::SystemClock;
use crate::runtime::deploy::Deployer;
use crate::runtime::reconciler::Reconciler;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Full reconcile pass at least this often, besides commits (e.g. `30s`, `5m`).
    #[arg(long, default_value = "5m")]
    pub resync: DurationStr,
    /// Delay between health polls during a rollout.
    #[arg(long, default_value = "500ms")]
    pub poll: DurationStr,
}

pub async fn exec(args: RunArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let target = target::connect(&global.fly).await?;
    let store =
        Arc::new(RecordStore::open_write(&global.state).context("opening the state directory")?);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    signal::handle_stop_requests(stop_tx, global.log_format);
    let mut deployer = Deployer::new(
        target.client.clone(),
        store,
        Arc::new(SystemClock),
        stop.clone(),
    );
    deployer.manifests = Some(global.manifests.clone());
    deployer.poll = args.poll.get().max(Duration::from_millis(50));
    Reconciler::new(global.manifests.clone(), deployer, args.resync.get())
        .run(stop)
        .await?;
    drop(target);
    Ok(ExitCode::SUCCESS)
}
