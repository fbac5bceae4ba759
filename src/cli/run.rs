//! `opsctl run`: the long-running reconciler; stops cleanly on SIGINT/SIGTERM (a second one
//! exits at once, see `signal`).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use opsctl_crds::DurationStr;

use super::{Global, target};
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
    let (mut deployer, stop) = target::deployer(&target, global)?;
    deployer.poll = args.poll.get().max(Duration::from_millis(50));
    let maintenance = crate::maintenance::start(
        target.client.clone(),
        deployer.store.clone(),
        deployer.clock.clone(),
        global.manifests.clone(),
        global.state.clone(),
        None,
        stop.clone(),
    );
    let reconciled = Reconciler::new(global.manifests.clone(), deployer, args.resync.get())
        .run(stop)
        .await;
    // The scheduler ends on the same stop signal; if the reconciler failed instead, stop it.
    maintenance.abort();
    let _ = maintenance.await;
    reconciled?;
    drop(target);
    Ok(ExitCode::SUCCESS)
}
