//! Watching the release-command machine: polling it until its exit is read, reading its
//! last log lines when it failed, and making sure it is destroyed afterwards.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;

use super::ReleaseCommandOutcome;
use crate::fly::FlyErrorKind;
use crate::fly::client::REQUEST_TIMEOUT;
use crate::fly::transport::{Call, RetryPolicy, enc};
use crate::fly::wire::{Machine, MachineEvent};
use crate::runtime::deploy::Deployer;

/// How long a new machine may answer 404 before it counts as never created: Fly's
/// propagation delay right after a create (BUG-15 C; flyctl PR #4618).
const PROPAGATION_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
/// After the exit, how long Fly gets to destroy an `auto_destroy` machine before opsctl does.
const AUTO_DESTROY_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);
/// Log lines kept in the record of a failed command (flyctl prints the last 100).
const LAST_LOG_LINES: usize = 10;

impl Deployer {
    /// Poll the release-command machine until its exit is read (then its logs, if it failed),
    /// Fly says it cannot run, or `timeout` passes. Returns the outcome and notes for the
    /// record (`; not visible for 1 s after its create`).
    pub(super) async fn watch_release_machine(
        &self,
        app: &str,
        created: &Machine,
        timeout: Duration,
    ) -> (ReleaseCommandOutcome, String) {
        let id = created.id.clone();
        let start = self.clock.now();
        let deadline =
            start + chrono::TimeDelta::from_std(timeout).unwrap_or(chrono::TimeDelta::MAX);
        let mut seen = false;
        let mut unseen_for: Option<chrono::TimeDelta> = None;
        let mut last = String::from("not yet seen");
        let unknown = |reason: String| ReleaseCommandOutcome::Unknown {
            machine: Some(id.clone()),
            reason,
        };
        let outcome = loop {
            if *self.stop.borrow() {
                break unknown("opsctl was asked to stop while it ran".into());
            }
            let now = self.clock.now();
            match self.client.get_machine(app, &id).await {
                Ok(m) => {
                    seen = true;
                    if let Some(exit) = exit_after_start(&m.events) {
                        break match exit {
                            Some(0) => ReleaseCommandOutcome::Succeeded {
                                machine: id.clone(),
                            },
                            Some(code) => ReleaseCommandOutcome::Failed {
                                machine: id.clone(),
                                exit_code: code,
                                last_logs: self.last_logs(app, created).await,
                            },
                            None => unknown("its exit event carries no exit code".into()),
                        };
                    }
                    match m.state.as_str() {
                        "failed" => {
                            break ReleaseCommandOutcome::PlatformError {
                                reason: format!("machine {id} failed to launch"),
                            };
                        }
                        "destroyed" => {
                            break unknown(format!(
                                "machine {id} was destroyed without an exit event"
                            ));
                        }
                        state => last = format!("still {state}"),
                    }
                }
                Err(e) if e.kind == FlyErrorKind::NotFound && !seen => {
                    let age = now - start;
                    unseen_for = Some(age);
                    if age > PROPAGATION_GRACE {
                        break ReleaseCommandOutcome::PlatformError {
                            reason: format!(
                                "machine {id} was created but still not found {}s later",
                                age.num_seconds()
                            ),
                        };
                    }
                    tracing::debug!(app, machine = %id, "release command machine not found yet (propagation); retrying");
                }
                Err(e) if e.kind == FlyErrorKind::NotFound => {
                    break unknown(format!("machine {id} vanished before its exit was read"));
                }
                Err(e) => {
                    tracing::debug!(app, machine = %id, error = %e, "polling the release command machine failed");
                    last = format!("Fly could not be asked: {e}");
                }
            }
            if now >= deadline {
                break unknown(format!("{last} after {}", humanize(timeout)));
            }
            tokio::time::sleep(self.poll).await;
        };
        let detail = unseen_for
            .filter(|_| seen)
            .map(|d| {
                format!(
                    "; machine not found for {} ms after its create (propagation), retried",
                    d.num_milliseconds()
                )
            })
            .unwrap_or_default();
        (outcome, detail)
    }

    /// Make sure the release-command machine is gone: wait a little for flyd's
    /// `auto_destroy`, then destroy it. Returns what happened, for the record.
    pub(super) async fn cleanup_release_machine(&self, app: &str, id: &str) -> String {
        let until = self.clock.now() + AUTO_DESTROY_GRACE;
        loop {
            match self.client.get_machine(app, id).await {
                Ok(m) if m.state == "destroyed" => return "destroyed by Fly (auto_destroy)".into(),
                Err(e) if e.kind == FlyErrorKind::NotFound => {
                    return "gone (destroyed by Fly)".into();
                }
                _ if self.clock.now() >= until => break,
                _ => tokio::time::sleep(self.poll).await,
            }
        }
        match self.client.destroy_machine(app, id, None).await {
            Ok(()) => "destroyed by opsctl".into(),
            Err(e) => {
                tracing::warn!(app, machine = id, error = %e, "could not destroy the release command machine");
                format!("could not be destroyed ({e}); destroy it by hand")
            }
        }
    }

    /// The last lines `machine` logged, from the simulator's polling endpoint `GET
    /// /v1/apps/{app}/logs` (docs/simulator.md). Fly's Machines API has no such endpoint:
    /// there (any error) the record says no lines were available.
    async fn last_logs(&self, app: &str, machine: &Machine) -> Vec<String> {
        let since = DateTime::parse_from_rfc3339(&machine.created_at)
            .map(|t| t.with_timezone(&Utc).timestamp_millis() - 1)
            .unwrap_or(0);
        let path = format!("/v1/apps/{}/logs", enc(app));
        let call = Call {
            method: Method::GET,
            url: format!(
                "{}{path}?since={since}&limit=1000",
                self.client.endpoints().machines
            ),
            path,
            action: "logs",
            scope: app.to_owned(),
            read: true,
            body: None,
            nonce: None,
            timeout: REQUEST_TIMEOUT,
            retry: RetryPolicy::Idempotent,
        };
        match self.client.transport.send::<LogsPage>(&call).await {
            Ok(page) => {
                let mut lines: Vec<String> = page
                    .logs
                    .into_iter()
                    .filter(|l| l.machine_id == machine.id)
                    .map(|l| l.message)
                    .collect();
                let skip = lines.len().saturating_sub(LAST_LOG_LINES);
                lines.drain(..skip);
                lines
            }
            Err(e) => {
                tracing::debug!(app, error = %e, "no log lines for the release command");
                Vec::new()
            }
        }
    }
}

/// A page of `GET /v1/apps/{app}/logs` (the simulator's, docs/simulator.md "Logs").
#[derive(Debug, Deserialize)]
struct LogsPage {
    #[serde(default)]
    logs: Vec<LogLine>,
}

#[derive(Debug, Deserialize)]
struct LogLine {
    #[serde(default)]
    machine_id: String,
    #[serde(default)]
    message: String,
}

fn humanize(d: Duration) -> String {
    opsctl_crds::DurationStr(d).to_string()
}

/// The exit of the newest run: `Some(code)` for the newest `exit` event newer than the newest
/// `start` (flyctl's `WaitForEventTypeAfterType("exit", "start")`), `Some(None)` when that
/// event has no exit code, `None` while no run has exited. Events are newest first.
fn exit_after_start(events: &[MachineEvent]) -> Option<Option<i32>> {
    for e in events {
        match e.kind.as_str() {
            "exit" => {
                return Some(
                    e.request
                        .as_ref()
                        .and_then(|r| r.exit_event.as_ref())
                        .map(|x| x.exit_code),
                );
            }
            "start" => return None,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fly::wire::{EventRequest, ExitEvent};

    fn event(kind: &str, exit: Option<i32>) -> MachineEvent {
        MachineEvent {
            kind: kind.into(),
            request: exit.map(|code| EventRequest {
                exit_event: Some(ExitEvent {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn the_exit_code_is_the_newest_exit_after_the_newest_start() {
        let running = [
            event("start", None),
            event("exit", Some(3)),
            event("start", None),
        ];
        assert_eq!(exit_after_start(&running), None, "an older run's exit");
        let done = [
            event("destroy", None),
            event("exit", Some(1)),
            event("start", None),
            event("launch", None),
        ];
        assert_eq!(exit_after_start(&done), Some(Some(1)));
        assert_eq!(exit_after_start(&[event("launch", None)]), None);
        assert_eq!(
            exit_after_start(&[event("exit", None), event("start", None)]),
            Some(None)
        );
    }
}
