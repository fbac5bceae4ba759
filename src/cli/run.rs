//! `opsctl run`: the long-running reconciler; stops cleanly on SIGINT/SIGTERM (a second one
//! exits at once, see `signal`). It also serves the HTTP listener (`--listen`): the approval
//! endpoint when a token is configured (`OPSCTL_APPROVAL_TOKEN` or `--approval-token-file`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use opsctl_crds::DurationStr;

use super::output::coded;
use super::{Global, target};
use crate::http::{self, HttpState, approvals::ApprovalState};
use crate::runtime::reconciler::Reconciler;
use crate::secret::Secret;

/// Default `--listen`: loopback only, port 9464.
const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 9464);

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Full reconcile pass at least this often, besides commits (e.g. `30s`, `5m`).
    #[arg(long, default_value = "5m")]
    pub resync: DurationStr,
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

pub async fn exec(args: RunArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let token = approval_token(&args)?;
    let target = target::connect(&global.fly).await?;
    let (mut deployer, stop) = target::deployer(&target, global)?;
    deployer.poll = args.poll.get().max(Duration::from_millis(50));
    let approvals = match token {
        Some(token) => Some(ApprovalState {
            store: deployer.store.clone(),
            token,
            clock: deployer.clock.clone(),
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
        Ok(l) => Some(l),
        Err(e) if args.listen.is_none() => {
            tracing::error!(error = %e, %addr, "HTTP listener disabled: the default address cannot be bound; pass --listen ADDR");
            None
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("binding --listen {addr}")));
        }
    };
    if let Some(listener) = listener {
        tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "HTTP listener started");
        let router = http::router(HttpState { approvals });
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = http::serve(listener, router, stop).await {
                tracing::error!(error = %e, "HTTP listener failed");
            }
        });
    }
    let mut reconciler = Reconciler::new(global.manifests.clone(), deployer, args.resync.get());
    reconciler.approval_poll = args.approval_poll.get().max(Duration::from_millis(100));
    reconciler.run(stop).await?;
    drop(target);
    Ok(ExitCode::SUCCESS)
}
