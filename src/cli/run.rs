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
    /// Optional judgment step for new incidents: base URL of an OpenAI-compatible chat API
    /// (`/v1/chat/completions` is appended). Off when absent; the key comes from
    /// `OPSCTL_LLM_API_KEY`. Failures fall back to the rules and escalate (docs/incidents.md).
    #[arg(long, env = "OPSCTL_LLM_URL")]
    pub llm_url: Option<String>,
    /// Model name for `--llm-url`.
    #[arg(long, env = "OPSCTL_LLM_MODEL", default_value = "gpt-4o-mini")]
    pub llm_model: String,
    /// US dollars per million prompt tokens, for the $2.00 per-incident budget.
    #[arg(long, default_value_t = 0.15)]
    pub llm_usd_per_mtok_prompt: f64,
    /// US dollars per million completion tokens.
    #[arg(long, default_value_t = 0.60)]
    pub llm_usd_per_mtok_completion: f64,
}

pub async fn exec(args: RunArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let target = target::connect(&global.fly).await?;
    match global.store.as_deref() {
        None => {
            let (deployer, stop) = target::deployer(&target, global)?;
            serve(&args, global, &target, deployer, stop).await?;
        }
        Some(url) => replicated(&args, global, &target, url).await?,
    }
    drop(target);
    Ok(ExitCode::SUCCESS)
}

/// With `--store postgres://…`: elect a leader among the replicas sharing the store; only the
/// leader runs the reconciler, the maintenance scheduler and the incident pipeline (the parts
/// that mutate Fly), each with a stop signal that fires on SIGTERM or when leadership is lost
/// (the current step parks, recorded; leases released). Record writes are fenced by the lease
/// epoch, so a replica that lost the lease cannot take another step. The lease is released
/// only after the tasks stopped, so their last records are still accepted.
async fn replicated(
    args: &RunArgs,
    global: &Global,
    target: &target::Target,
    url: &str,
) -> anyhow::Result<()> {
    use crate::records::{RecordStore, pg::Fence};
    use crate::runtime::leader::{Elector, LeaseConfig, holder_id};
    use tokio::sync::watch;
    let fence = std::sync::Arc::new(Fence::new("opsctl-run", holder_id()));
    let store = std::sync::Arc::new(
        RecordStore::open_postgres(url, &global.state, Some(fence.clone()))
            .map_err(|e| super::output::coded("config", e.to_string()))?,
    );
    let (stop_tx, mut stop) = watch::channel(false);
    super::signal::handle_stop_requests(stop_tx, global.log_format);
    let elector = Elector::connect(url, fence, LeaseConfig::default())
        .await
        .map_err(|e| super::output::coded("config", e.to_string()))?;
    let (elect_stop_tx, elect_stop) = watch::channel(false);
    let (mut leading, election) = elector.spawn(elect_stop);
    let mut result = Ok(());
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            led = leading.wait_for(Option::is_some) => if led.is_err() { break },
        }
        let (term_tx, term) = watch::channel(false);
        let (mut stop2, mut leading2) = (stop.clone(), leading.clone());
        let forward = tokio::spawn(async move {
            tokio::select! {
                _ = stop2.wait_for(|s| *s) => {}
                _ = leading2.wait_for(Option::is_none) => {}
            }
            let _ = term_tx.send(true);
        });
        let mut deployer = crate::runtime::deploy::Deployer::new(
            target.client.clone(),
            store.clone(),
            std::sync::Arc::new(crate::runtime::clock::SystemClock),
            term.clone(),
        );
        deployer.manifests = Some(global.manifests.clone());
        let served = serve(args, global, target, deployer, term).await;
        // The forwarder finished: SIGTERM or loss of leadership stopped the tasks. Otherwise
        // they ended on their own (the reconciler failed): exit with that, as one replica does.
        let stopped_for_us = forward.is_finished();
        forward.abort();
        if *stop.borrow() || !stopped_for_us {
            result = served;
            break;
        }
        match served {
            Ok(()) => tracing::warn!("leadership lost: reconciler parked; standing by"),
            Err(e) => {
                tracing::warn!(error = %e, "leadership lost: reconciler stopped; standing by")
            }
        }
        // Stand by until the elector says it leads again (a fresh epoch).
        let _ = leading.wait_for(Option::is_none).await;
    }
    let _ = elect_stop_tx.send(true);
    let _ = election.await;
    result
}

/// Run the reconciler, the maintenance scheduler and the incident pipeline until `stop`.
async fn serve(
    args: &RunArgs,
    global: &Global,
    target: &target::Target,
    mut deployer: crate::runtime::deploy::Deployer,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
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
    if let Some(url) = &args.llm_url {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            super::output::coded(
                "config",
                format!("--llm-url {url:?} is not a valid URL: {e} (expected e.g. http://127.0.0.1:8080)"),
            )
        })?;
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(super::output::coded(
                "config",
                "--llm-url has credentials in it; remove them (the key comes from OPSCTL_LLM_API_KEY)",
            ));
        }
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(super::output::coded(
                "config",
                format!("--llm-url {url:?}: expected an http(s) URL"),
            ));
        }
        let url = url.trim_end_matches('/').to_owned();
        let api_key = std::env::var("OPSCTL_LLM_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(|k| crate::secret::Secret::new(k.trim()));
        pipeline.classifier = std::sync::Arc::new(crate::incident::LlmClassifier::new(
            crate::incident::LlmConfig {
                base_url: url,
                model: args.llm_model.clone(),
                api_key,
                timeout: Duration::from_secs(30),
                usd_per_mtok_prompt: args.llm_usd_per_mtok_prompt,
                usd_per_mtok_completion: args.llm_usd_per_mtok_completion,
                max_tokens: 200,
            },
        )?);
        tracing::info!(model = %args.llm_model, "incident judgment step enabled");
    }
    let incidents = tokio::spawn(pipeline.run(incoming, stop.clone()));
    let maintenance = crate::maintenance::start(
        target.client.clone(),
        deployer.store.clone(),
        deployer.clock.clone(),
        global.manifests.clone(),
        global.state.clone(),
        Some(signals.clone()),
        stop.clone(),
    );
    let mut reconciler = Reconciler::new(global.manifests.clone(), deployer, args.resync.get());
    reconciler.incidents = Some(signals);
    reconciler.incident_settle = args.incident_settle.get();
    let reconciled = reconciler.run(stop).await;
    // The scheduler and the pipeline end on the same stop signal; if the reconciler failed
    // instead, stop the scheduler (the pipeline ends when its senders are gone).
    maintenance.abort();
    let _ = maintenance.await;
    reconciled?;
    let _ = incidents.await;
    Ok(())
}
