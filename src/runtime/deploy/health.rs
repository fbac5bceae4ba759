//! Waiting for one updated machine to be judged healthy or failed.

use std::sync::Arc;
use std::time::Duration;

use opsctl_controllers::observed::MachineState;
use opsctl_controllers::rollout::{Verdict, Watch, judge};
use opsctl_crds::flyapp::DeploySpec;
use tokio::sync::watch;

use crate::fly::FlyClient;
use crate::fly::observe;
use crate::runtime::clock::Clock;

/// Polls one machine until the controllers' [`judge`] decides.
pub(super) struct HealthWait {
    pub client: FlyClient,
    pub app: String,
    pub clock: Arc<dyn Clock>,
    pub poll: Duration,
    pub deploy: DeploySpec,
    pub stop: watch::Receiver<bool>,
}

impl HealthWait {
    /// Poll `machine` (expected at `version`) until a verdict. Uses Fly's `wait` while the
    /// machine is starting, then `GET` for checks. A Fly that cannot be seen is `Waiting`,
    /// then `Blind`, never `Failed`; a stop request ends the wait as `Blind` too (no verdict,
    /// so no rollback).
    pub async fn until_decided(&self, machine: &str, version: &str) -> Verdict {
        let mut watch = Watch::new(self.clock.now());
        loop {
            if *self.stop.borrow() {
                return Verdict::Blind {
                    reason: "opsctl was asked to stop during the health wait".into(),
                };
            }
            let seen = match self.client.get_machine(&self.app, machine).await {
                Ok(m) => Some(observe::machine(&m)),
                Err(e) => {
                    tracing::debug!(app = %self.app, machine, error = %e, "health poll failed");
                    None
                }
            };
            let (next, verdict) = judge(
                watch,
                seen.as_ref(),
                version,
                &self.deploy,
                self.clock.now(),
            );
            watch = next;
            let Verdict::Waiting { reason } = verdict else {
                return verdict;
            };
            tracing::debug!(app = %self.app, machine, "waiting for {reason}");
            let starting = seen.as_ref().is_some_and(|m| {
                matches!(
                    m.state,
                    MachineState::Replacing | MachineState::Starting | MachineState::Created
                )
            });
            if starting {
                // Fly's wait returns as soon as the version is started (or 408 after 1 s).
                let _ = self
                    .client
                    .wait(
                        &self.app,
                        machine,
                        version,
                        "started",
                        self.poll.max(Duration::from_secs(1)),
                    )
                    .await;
            } else {
                let mut stop = self.stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = stop.changed() => {}
                }
            }
        }
    }
}
