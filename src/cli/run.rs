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
    /// How long after a deploy finishes its health is judged for the incident pipeline (the
    /// checks need their grace period; a deploy that leaves no healthy machine is an outage).
    #[arg(long, default_value = "30s")]
    pub incident_settle: DurationStr,
}

pub async fn exec(args: RunArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let target = target::connect(&global.fly).await?;
    let (mut deployer, stop) = target::deployer(&target, global)?;
    deployer.poll = args.poll.get().max(Duration::from_millis(50));
    // The incident pipeline runs beside the reconciler with its own deployer (same client,
    // store and clock) for rollbacks; `signals` is the channel other parts send into.
    let (signals, incoming) = crate::incident::channel();
    let mut incident_deployer = crate::runtime::deploy::Deployer::new(
        deployer.client.clone(),
        deployer.store.clone(),
        deployer.clock.clone(),
        stop.clone(),
    );
    incident_deployer.poll = deployer.poll;
    let mut pipeline = crate::incident::IncidentPipeline::new(
        incident_deployer,
        crate::incident::IncidentConfig::default(),
    );
    pipeline.manifests = Some(global.manifests.clone());
    let incidents = tokio::spawn(pipeline.run(incoming, stop.clone()));
    let mut reconciler = Reconciler::new(global.manifests.clone(), deployer, args.resync.get());
    reconciler.incidents = Some(signals);
    reconciler.incident_settle = args.incident_settle.get();
    reconciler.run(stop).await?;
    let _ = incidents.await;
    drop(target);
    Ok(ExitCode::SUCCESS)
}
