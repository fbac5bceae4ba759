//! Ctrl-C and SIGTERM for the commands that change Fly (`apply`, `run`).
//!
//! The first request stops the work after its current step (the deployer checks the `stop`
//! flag between steps and batches) and says so on stderr. A second one exits at once, with
//! 130 after Ctrl-C (128 + SIGINT) or 143 after SIGTERM: nothing is left corrupt, since the
//! leases a rollout holds expire on Fly within 13 s and records are append-only (an
//! interrupted rollout is finished or rolled back by the next `apply` or `run`).

use tokio::sync::watch;

use super::LogFormat;
use super::output::notice;

/// Which signal arrived.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(unix), allow(dead_code))]
enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    fn exit_code(self) -> i32 {
        match self {
            Self::Interrupt => 130,
            Self::Terminate => 143,
        }
    }
}

/// Watch for SIGINT/SIGTERM in the background: the first sets `stop` to `true`, the second
/// ends the process (module doc).
pub fn handle_stop_requests(stop: watch::Sender<bool>, log_format: LogFormat) {
    tokio::spawn(async move {
        let Some(mut signals) = Signals::listen() else {
            return;
        };
        if signals.next().await.is_none() {
            return;
        }
        notice(
            log_format,
            "stopping after the current step (press Ctrl-C again to exit now)",
        );
        let _ = stop.send(true);
        let Some(second) = signals.next().await else {
            return;
        };
        notice(
            log_format,
            "exiting now: leases on Fly expire within 13 s and records are append-only, so \
             nothing is corrupted; the next `opsctl apply` or `opsctl run` finishes or rolls \
             back an interrupted rollout",
        );
        std::process::exit(second.exit_code());
    });
}

/// The first SIGINT or SIGTERM from now on, for a step before the stop handler
/// ([`handle_stop_requests`]) is installed; never returns when signals cannot be listened to.
pub async fn stop_requested() {
    match Signals::listen() {
        Some(mut signals) => {
            let _ = signals.next().await;
        }
        None => std::future::pending().await,
    }
}

/// Listeners for SIGINT and SIGTERM, set up once so that no signal is missed between two.
struct Signals {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// `None` when signals cannot be listened to (then the default action applies).
    fn listen() -> Option<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Some(Self {
                int: signal(SignalKind::interrupt()).ok()?,
                term: signal(SignalKind::terminate()).ok(),
            })
        }
        #[cfg(not(unix))]
        {
            Some(Self {})
        }
    }

    /// The next signal; `None` when listening ended.
    async fn next(&mut self) -> Option<Signal> {
        #[cfg(unix)]
        {
            match &mut self.term {
                Some(term) => tokio::select! {
                    s = self.int.recv() => s.map(|()| Signal::Interrupt),
                    s = term.recv() => s.map(|()| Signal::Terminate),
                },
                None => self.int.recv().await.map(|()| Signal::Interrupt),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c()
                .await
                .ok()
                .map(|()| Signal::Interrupt)
        }
    }
}
