//! `opsctl run`: the long-running reconciler; stops cleanly on SIGINT/SIGTERM (a second one
//! exits at once, see `signal`). Beside the reconciler it runs the incident pipeline, the
//! maintenance scheduler and the HTTP listener (`--listen`): `/metrics`, `/status` (the
//! reconciler's live state, read by `opsctl status`), the approval endpoint when a token is
//! configured (`OPSCTL_APPROVAL_TOKEN` or `--approval-token-file`), and the GitHub webhook when
//! a webhook secret is (`OPSCTL_WEBHOOK_SECRET` or `--webhook-secret-file`). With `--git-url`
//! the manifests come from opsctl's own clone of a remote (docs/git.md). With `--store
//! postgres://…` the listener runs for the whole process, so a standby replica answers
//! `/status` too (role `standby`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use opsctl_crds::DurationStr;

use super::output::coded;
use super::{Global, target};
use crate::http::{self, HttpState, approvals::ApprovalState, webhook::WebhookState};
use crate::incident::{IncidentConfig, IncidentPipeline, LlmClassifier, LlmConfig};
use crate::notify::{AlertRoutes, Notifier, NotifierConfig, handoff::Routed};
use crate::runtime::deploy::Deployer;
use crate::runtime::reconciler::{DEFAULT_WORKERS, Reconciler, StatusBoard};
use crate::runtime::remote::{self, GitUrl, RemoteConfig};
use crate::secret::Secret;

/// How often a first git fetch that has not finished says so.
const FIRST_FETCH_NOTICE: Duration = Duration::from_secs(10);

/// Default `--listen`: loopback only, port 9464.
const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 9464);

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Idle interval: every app is reconciled at least this often, besides commits (e.g.
    /// `30s`, `5m`; jittered down by up to 10 %). Apps with a rollout in flight or an open
    /// incident are looked at every 15–30 s.
    #[arg(long, default_value = "5m")]
    pub resync: DurationStr,
    /// Apps reconciled at once (one reconcile per app at a time).
    #[arg(long, default_value_t = DEFAULT_WORKERS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=256))]
    pub workers: usize,
    /// Delay between health polls during a rollout.
    #[arg(long, default_value = "500ms")]
    pub poll: DurationStr,
    /// While a plan waits for approval, look for a decision this often.
    #[arg(long, default_value = "5s")]
    pub approval_poll: DurationStr,
    /// Address of the HTTP listener (approval endpoint) [default: 127.0.0.1:9464]. When given
    /// and it cannot be bound, `run` fails; the default address in use only disables the
    /// listener, with an error log line.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// File holding the approval endpoint's bearer token (else env OPSCTL_APPROVAL_TOKEN).
    /// Without a token the approval endpoint is disabled.
    #[arg(long)]
    pub approval_token_file: Option<PathBuf>,
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
    /// Follow a remote repository instead of a local checkout: opsctl keeps its own clone in
    /// `<--state>/checkout`, fetches `--git-branch` every `--git-fetch-interval` (or at once on
    /// the GitHub webhook) and reconciles `<clone>/<--git-path>`, in place of `--manifests`.
    /// Credentials: git's own (credential helper, SSH key) or in the URL; never printed.
    #[arg(long, env = "OPSCTL_GIT_URL", hide_env_values = true)]
    pub git_url: Option<GitUrl>,
    /// Branch followed with `--git-url`.
    #[arg(long, default_value = "main")]
    pub git_branch: String,
    /// Manifests directory inside the `--git-url` repository (relative) [default: its root].
    #[arg(long)]
    pub git_path: Option<PathBuf>,
    /// Time between fetches with `--git-url` (each jittered by ±10 %; failures retry after
    /// 5 s, doubling up to this).
    #[arg(long, default_value = "1m")]
    pub git_fetch_interval: DurationStr,
    /// File holding the GitHub webhook secret (else env OPSCTL_WEBHOOK_SECRET). With it and
    /// `--git-url`, `POST /webhooks/github` on the listener fetches at once on a signed push.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
}

/// The GitHub webhook secret from `--webhook-secret-file` or `OPSCTL_WEBHOOK_SECRET`.
fn webhook_secret(args: &RunArgs) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = &args.webhook_secret_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the webhook secret file {}", path.display()))?;
        let secret = text.trim();
        if secret.is_empty() {
            return Err(coded(
                "config",
                format!("the webhook secret file {} is empty", path.display()),
            ));
        }
        return Ok(Some(Secret::new(secret)));
    }
    Ok(std::env::var("OPSCTL_WEBHOOK_SECRET")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(Secret::new))
}

/// The remote of `--git-url`, checked; `None` without `--git-url`.
async fn remote_config(args: &RunArgs, global: &Global) -> anyhow::Result<Option<RemoteConfig>> {
    let Some(url) = &args.git_url else {
        return Ok(None);
    };
    let config = RemoteConfig {
        url: url.clone(),
        branch: args.git_branch.clone(),
        path: args.git_path.clone().unwrap_or_default(),
        interval: args.git_fetch_interval.get(),
        clone_dir: global.state.join("checkout"),
    };
    config.check().await.map_err(|e| coded("config", e))?;
    Ok(Some(config))
}

/// The first fetch of `--git-url`, before anything reconciles. When it fails and a previous
/// run's clone has a commit, that commit is reconciled meanwhile (returns 1: one failure so
/// far, for the retry backoff); with no commit at all, `run` cannot start.
async fn first_fetch(config: &RemoteConfig) -> anyhow::Result<u32> {
    tracing::info!(url = %config.url.redacted(), branch = %config.branch, "first fetch of the manifests repository");
    // A git server that does not answer must not leave the terminal silent for minutes.
    let started = std::time::Instant::now();
    let sync = remote::sync(config);
    tokio::pin!(sync);
    let mut ticks = tokio::time::interval_at(
        tokio::time::Instant::now() + FIRST_FETCH_NOTICE,
        FIRST_FETCH_NOTICE,
    );
    let result = loop {
        tokio::select! {
            r = &mut sync => break r,
            _ = ticks.tick() => tracing::warn!(
                url = %config.url.redacted(),
                waited_s = started.elapsed().as_secs(),
                "still waiting for the first git fetch (git gives up after {} s; Ctrl-C stops)",
                remote::GIT_TIMEOUT.as_secs()
            ),
        }
    };
    crate::metrics::global().git_fetched("startup", result.is_ok(), chrono::Utc::now());
    let failures = match result {
        Ok(synced) => {
            remote::log_synced(config, &synced, "startup");
            0
        }
        Err(e) => match remote::checked_out(&config.clone_dir).await {
            Some(last) => {
                let retry_in = remote::next_delay(config.interval, 1, 0.5);
                remote::log_failed(config, &e, Some(&last), 1, retry_in);
                1
            }
            None => {
                return Err(coded(
                    "git.fetch",
                    format!(
                        "cannot fetch branch {} of {}: {e}; check the URL, the branch and git's credentials (credential helper or SSH key, docs/git.md)",
                        config.branch, config.url
                    ),
                ));
            }
        },
    };
    let dir = config.manifests_dir();
    if !dir.is_dir() {
        return Err(coded(
            "config",
            format!(
                "branch {} of {} has no directory {:?} (--git-path)",
                config.branch, config.url, config.path
            ),
        ));
    }
    tracing::info!(url = %config.url, branch = %config.branch, manifests = %dir.display(), interval_secs = config.interval.as_secs_f64(), "manifests from opsctl's clone of the remote (--manifests is not used)");
    Ok(failures)
}

fn approval_token(args: &RunArgs) -> anyhow::Result<Option<Secret>> {
    if let Some(path) = &args.approval_token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the approval token file {}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(coded(
                "config",
                format!("the approval token file {} is empty", path.display()),
            ));
        }
        return Ok(Some(Secret::new(token)));
    }
    Ok(std::env::var("OPSCTL_APPROVAL_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .map(Secret::new))
}

/// The optional LLM judgment step from `--llm-url` (checked: http(s), no credentials in it).
fn llm_classifier(args: &RunArgs) -> anyhow::Result<Option<LlmClassifier>> {
    let Some(url) = &args.llm_url else {
        return Ok(None);
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        coded(
            "config",
            format!(
                "--llm-url {url:?} is not a valid URL: {e} (expected e.g. http://127.0.0.1:8080)"
            ),
        )
    })?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(coded(
            "config",
            "--llm-url has credentials in it; remove them (the key comes from OPSCTL_LLM_API_KEY)",
        ));
    }
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(coded(
            "config",
            format!("--llm-url {url:?}: expected an http(s) URL"),
        ));
    }
    let api_key = std::env::var("OPSCTL_LLM_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
        .map(|k| Secret::new(k.trim()));
    let classifier = LlmClassifier::new(LlmConfig {
        base_url: url.trim_end_matches('/').to_owned(),
        model: args.llm_model.clone(),
        api_key,
        timeout: Duration::from_secs(30),
        usd_per_mtok_prompt: args.llm_usd_per_mtok_prompt,
        usd_per_mtok_completion: args.llm_usd_per_mtok_completion,
        max_tokens: 200,
    })?;
    tracing::info!(model = %args.llm_model, "incident judgment step enabled");
    Ok(Some(classifier))
}

/// The incident pipeline, with its own deployer (same client, store and clock) for rollbacks,
/// escalating and notifying through the AlertRoute manifests read at start.
fn incident_pipeline(
    args: &RunArgs,
    global: &Global,
    deployer: &Deployer,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<(IncidentPipeline, Notifier)> {
    let set = match opsctl_crds::load_dir(&global.manifests) {
        Ok(set) => set,
        Err(e) => {
            tracing::warn!(
                errors = e.diagnostics.len(),
                "manifests invalid at start: no alert routes and the default policy's allowlists for incident responses until the next start"
            );
            opsctl_crds::ManifestSet::default()
        }
    };
    // Incident responses act as `responder` (ADR §4): the Fly client refuses anything outside
    // that role's allowlist (e.g. restarts, unless the policy allows them), with a record.
    let (policy, _) = opsctl_controllers::governance::policy_for(&set.policies, "");
    let guard = crate::fly::RoleGuard::new(
        opsctl_controllers::governance::Role::Responder,
        policy.roles,
    )
    .with_hook(crate::governance::approvals::denial_recorder(
        deployer.store.clone(),
        deployer.clock.clone(),
    ));
    let mut incident_deployer = Deployer::new(
        deployer.client.with_role(guard),
        deployer.store.clone(),
        deployer.clock.clone(),
        stop,
    );
    incident_deployer.poll = deployer.poll;
    let mut pipeline = IncidentPipeline::new(incident_deployer, IncidentConfig::default());
    pipeline.manifests = Some(global.manifests.clone());
    let routes = AlertRoutes::from_manifests(&set.alert_routes);
    for (route, path) in routes.missing_beads_dirs() {
        tracing::warn!(route, path = %path.display(), "AlertRoute beads target is not in an existing directory: escalations to it will fail");
    }
    let notifier = Notifier::start(
        routes.clone(),
        NotifierConfig::default(),
        Some(deployer.store.clone()),
        deployer.clock.clone(),
    );
    let routed = Arc::new(Routed {
        routes,
        notifier: notifier.clone(),
        ops_prefix: "ops".to_owned(),
        clock: deployer.clock.clone(),
    });
    pipeline.escalator = routed.clone();
    pipeline.notifier = routed;
    if let Some(classifier) = llm_classifier(args)? {
        pipeline.classifier = Arc::new(classifier);
    }
    Ok((pipeline, notifier))
}

/// Bind and serve the HTTP listener (metrics, `/status`, approval endpoint, GitHub webhook)
/// until `stop`.
async fn start_listener(
    args: &RunArgs,
    manifests: PathBuf,
    store: Arc<crate::records::RecordStore>,
    clock: Arc<dyn crate::runtime::clock::Clock>,
    board: Arc<StatusBoard>,
    webhook: Option<WebhookState>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let approvals = match approval_token(args)? {
        Some(token) => Some(ApprovalState {
            store: store.clone(),
            token,
            clock,
        }),
        None => {
            tracing::info!(
                "approval endpoint disabled: no token (set OPSCTL_APPROVAL_TOKEN or --approval-token-file)"
            );
            None
        }
    };
    let addr = args
        .listen
        .unwrap_or_else(|| SocketAddr::from(DEFAULT_LISTEN));
    let listener = match http::bind(addr).await {
        Ok(l) => l,
        Err(e) if args.listen.is_none() => {
            tracing::error!(error = %e, %addr, "HTTP listener disabled: the default address cannot be bound; pass --listen ADDR");
            return Ok(());
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("binding --listen {addr}")));
        }
    };
    tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "HTTP listener started");
    let mut router = http::router(HttpState {
        approvals,
        state_dir: Some(store.dir().to_path_buf()),
        manifests: Some(manifests),
        reconciler: Some(board),
    });
    if let Some(webhook) = webhook {
        router = router.merge(http::webhook::router(webhook));
    }
    tokio::spawn(async move {
        if let Err(e) = http::serve(listener, router, stop).await {
            tracing::error!(error = %e, "HTTP listener failed");
        }
    });
    Ok(())
}

pub async fn exec(args: RunArgs, global: &Global) -> anyhow::Result<ExitCode> {
    // Configuration errors first, before anything starts.
    approval_token(&args)?;
    let secret = webhook_secret(&args)?;
    let remote = remote_config(&args, global).await?;
    let target = target::connect(&global.fly).await?;
    // With --git-url, every part (reconciler, maintenance, incidents, /metrics) reads the
    // manifests from the clone; the fetch loop moves the clone and the reconciler's watch of
    // its git directory sees the new commit like any local one.
    let mut global = global.clone();
    let (fetch, fetcher) = match remote {
        Some(config) => {
            // A stop request while the first fetch hangs (a git server that never answers)
            // stops cleanly: the fetch is dropped, git and its helpers are killed.
            let failures = tokio::select! {
                r = first_fetch(&config) => r?,
                () = super::signal::stop_requested() => {
                    tracing::info!("stopped during the first git fetch; nothing was reconciled");
                    return Ok(ExitCode::SUCCESS);
                }
            };
            global.manifests = config.manifests_dir();
            let (trigger, task) = remote::spawn(config, failures);
            (Some(trigger), Some(task))
        }
        None => (None, None),
    };
    let webhook = match (secret, &fetch) {
        (Some(secret), fetch) => {
            if fetch.is_none() {
                tracing::info!(
                    "GitHub webhook disabled: opsctl manages no clone without --git-url; POST /webhooks/github answers 404"
                );
            }
            Some(WebhookState {
                secret,
                branch: args.git_branch.clone(),
                fetch: fetch.clone(),
            })
        }
        (None, Some(_)) => {
            tracing::info!(
                "GitHub webhook disabled: no secret (set OPSCTL_WEBHOOK_SECRET or --webhook-secret-file); fetching on the interval only"
            );
            None
        }
        (None, None) => None,
    };
    let result = match global.store.as_deref() {
        None => single(&args, &global, &target, webhook).await,
        Some(url) => replicated(&args, &global, &target, url, webhook).await,
    };
    if let Some(task) = fetcher {
        task.abort();
    }
    result?;
    drop(target);
    Ok(ExitCode::SUCCESS)
}

/// One replica with the embedded store: the listener, then everything else until SIGTERM.
async fn single(
    args: &RunArgs,
    global: &Global,
    target: &target::Target,
    webhook: Option<WebhookState>,
) -> anyhow::Result<()> {
    let (deployer, stop) = target::deployer(target, global)?;
    let board = Arc::new(StatusBoard::new("single"));
    start_listener(
        args,
        global.manifests.clone(),
        deployer.store.clone(),
        deployer.clock.clone(),
        board.clone(),
        webhook,
        stop.clone(),
    )
    .await?;
    serve(args, global, target, deployer, stop, board).await
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
    webhook: Option<WebhookState>,
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
    // One listener for the whole process: a standby answers `/status` (role `standby`).
    let board = Arc::new(StatusBoard::new("standby"));
    start_listener(
        args,
        global.manifests.clone(),
        store.clone(),
        Arc::new(crate::runtime::clock::SystemClock),
        board.clone(),
        webhook,
        stop.clone(),
    )
    .await?;
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
        // The deploy pipeline acts as `deployer`; a refused call leaves an escalation record.
        let clock: std::sync::Arc<dyn crate::runtime::clock::Clock> =
            std::sync::Arc::new(crate::runtime::clock::SystemClock);
        let guard = crate::fly::RoleGuard::default().with_hook(
            crate::governance::approvals::denial_recorder(store.clone(), clock.clone()),
        );
        let mut deployer = crate::runtime::deploy::Deployer::new(
            target.client.with_role(guard),
            store.clone(),
            clock,
            term.clone(),
        );
        deployer.manifests = Some(global.manifests.clone());
        board.set_role("leader");
        let served = serve(args, global, target, deployer, term, board.clone()).await;
        board.set_role("standby");
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

/// Run the reconciler, the maintenance scheduler and the incident pipeline until `stop`; the
/// reconciler's live state goes to `board`.
async fn serve(
    args: &RunArgs,
    global: &Global,
    target: &target::Target,
    mut deployer: crate::runtime::deploy::Deployer,
    stop: tokio::sync::watch::Receiver<bool>,
    board: Arc<StatusBoard>,
) -> anyhow::Result<()> {
    deployer.poll = args.poll.get().max(Duration::from_millis(50));
    let (pipeline, notifier) = incident_pipeline(args, global, &deployer, stop.clone())?;

    let (signals, incoming) = crate::incident::channel();
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
    reconciler.approval_poll = args.approval_poll.get().max(Duration::from_millis(100));
    reconciler.incidents = Some(signals);
    reconciler.incident_settle = args.incident_settle.get();
    reconciler.workers = args.workers;
    reconciler.board = board;
    let reconciled = reconciler.run(stop).await;
    // The scheduler and the pipeline end on the same stop signal; if the reconciler failed
    // instead, stop the scheduler (the pipeline ends when its senders are gone).
    maintenance.abort();
    let _ = maintenance.await;
    reconciled?;
    let _ = incidents.await;
    notifier.shutdown().await;
    Ok(())
}
