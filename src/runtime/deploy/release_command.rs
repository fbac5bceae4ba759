//! The release command (`spec.deploy.releaseCommand`, usually database migrations), run as
//! flyctl runs it (NOTES.md §6.2 step 3; flyctl `machines_releasecommand.go`): a temporary
//! machine of the new image in process group `fly_app_release_command`, with `restart.policy:
//! no`, `auto_destroy: true` and `dns.skip_registration`, started once; its exit code is read
//! from the newest `exit` event after its newest `start`, and anything but 0 aborts the deploy.
//!
//! It runs after PreCheck and Drain and before the rollout touches any app machine (issue #4),
//! once per image: a deploy of an image whose release command already succeeded (the records
//! say so) does not run it again. It is never rolled back (database changes are forward-only)
//! and always needs a human: an automatic pass (`opsctl run`) is blocked until someone runs
//! `opsctl apply` (ADR §4, DESIGN.md §6; governance will turn this into an approval).
//!
//! Outcomes follow case BUG-15: the command ran and failed (B: recorded with its exit code and
//! last log lines, no retry, escalate); Fly could not run it (A: one retry after a backoff,
//! then abort); a 404 right after the create is Fly's propagation delay (C: retried). What
//! could not be seen is never a verdict: a command still running at the timeout, or one Fly
//! stopped answering about, is left to finish (`auto_destroy` removes its machine) and the
//! deploy halts without judging it.
//!
//! Not done here: deciding *whether* to deploy (the controllers), the rollout itself
//! ([`super::Deployer::run`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_crds::FlyApp;
use reqwest::Method;
use serde::Deserialize;

mod config;

use self::config::{release_config, release_region, split_command};
use super::{Deployer, Outcome};
use crate::fly::FlyErrorKind;
use crate::fly::client::REQUEST_TIMEOUT;
use crate::fly::transport::{Call, RetryPolicy, enc};
use crate::fly::wire::{Machine, MachineEvent, MachineRequest};
use crate::records::{DeployRecord, DeployStatus, MachineResult, StoreError};

/// The process group flyctl gives release-command machines (NOTES.md §2.3, reserved groups).
pub const RELEASE_COMMAND_GROUP: &str = "fly_app_release_command";

/// Wait before the one retry of a create Fly could not perform (BUG-15 A).
const CREATE_RETRY_BACKOFF: Duration = Duration::from_secs(2);

/// How long a new machine may answer 404 before it counts as never created: Fly's
/// propagation delay right after a create (BUG-15 C; flyctl PR #4618).
const PROPAGATION_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// After the exit, how long Fly gets to destroy an `auto_destroy` machine before opsctl does.
const AUTO_DESTROY_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// Log lines kept in the record of a failed command (flyctl prints the last 100).
const LAST_LOG_LINES: usize = 10;

/// Intent of the step that waits for the command; a result starting with `succeeded` marks
/// the image's release command as done (see [`Deployer::release_command_done`]).
const WAIT_INTENT: &str = "wait for release command";

/// How a release command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseCommandOutcome {
    /// It exited 0.
    Succeeded {
        /// The temporary machine.
        machine: String,
    },
    /// It ran and exited non-zero: the application's fault (BUG-15 B). Not retried.
    Failed {
        /// The temporary machine.
        machine: String,
        /// The exit code of its `exit` event.
        exit_code: i32,
        /// Its last log lines, oldest first (empty when Fly offers no log endpoint).
        last_logs: Vec<String>,
    },
    /// Fly could not run it: the create failed twice (BUG-15 A), Fly refused it, the machine
    /// failed to launch or never became visible. The command did not run.
    PlatformError {
        /// What Fly said.
        reason: String,
    },
    /// Whether it ran, or how it ended, is unknown: still running at the timeout, Fly not
    /// answering, opsctl asked to stop. Never a verdict on the image.
    Unknown {
        /// The temporary machine, if one was created.
        machine: Option<String>,
        /// Why.
        reason: String,
    },
    /// The command cannot be split into words (an unbalanced quote): the manifest is wrong.
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl Deployer {
    /// The release-command stage of a deploy of `rec.image` (the hook in `deploy`). `None`:
    /// go on with the rollout (no release command, or it succeeded now or before for this
    /// image). `Some`: stop here: a blocked automatic pass (finishing `rec` as halted if
    /// earlier stages had already recorded it), or `rec` finished as failed or halted.
    ///
    /// # Errors
    /// The record store failed.
    pub(super) async fn release_command_stage(
        &self,
        app: &FlyApp,
        rec: &mut DeployRecord,
    ) -> Result<Option<Outcome>, StoreError> {
        let Some(cmd) = app.spec.deploy.release_command.as_deref() else {
            return Ok(None);
        };
        if let Some(done) = self.release_command_done(&rec.app, cmd, &rec.image)? {
            self.intend(
                rec,
                format!(
                    "release command `{cmd}` for {}: already succeeded in {done}; not run again",
                    rec.image
                ),
            )?;
            self.done(rec, "skipped")?;
            return Ok(None);
        }
        if !crate::governance::approvals::migration_approved(&self.store, &rec.app, &rec.image)? {
            let reason = format!(
                "release command `{cmd}` for {} needs a human: migrations are always gated; \
                 approve the plan (`opsctl pending`, `opsctl approve ID`)",
                rec.image
            );
            if !rec.steps.is_empty() {
                // PreCheck or Drain already recorded this deploy: close it, nothing was changed.
                skip_machines(rec);
                rec.finished_at = Some(self.clock.now());
                self.finish(rec, DeployStatus::Halted, reason.clone())?;
            }
            return Ok(Some(Outcome::Blocked { reason }));
        }
        let image = rec.image.clone();
        let outcome = self.release_command(app, cmd, &image, rec).await?;
        let (status, reason) = match outcome {
            ReleaseCommandOutcome::Succeeded { .. } => return Ok(None),
            ReleaseCommandOutcome::Failed {
                machine,
                exit_code,
                last_logs,
            } => {
                let logs = if last_logs.is_empty() {
                    "no log lines available".to_owned()
                } else {
                    format!("last log lines: {}", last_logs.join(" | "))
                };
                tracing::error!(app = %rec.app, machine, exit_code, "release command failed; a human must act");
                (
                    DeployStatus::Failed,
                    format!(
                        "release_command_failed: `{cmd}` exited with code {exit_code} on machine \
                         {machine} ({logs}); the deploy was aborted before any app machine was \
                         touched and is not retried or rolled back (database changes are \
                         forward-only); escalate: a human must fix the command or the database, \
                         then run `opsctl apply`"
                    ),
                )
            }
            ReleaseCommandOutcome::PlatformError { reason } => {
                tracing::error!(app = %rec.app, "release command could not run: {reason}");
                (
                    DeployStatus::Halted,
                    format!(
                        "release_command_platform_error: Fly could not run `{cmd}`: {reason}; \
                         nothing was changed; escalate if it repeats, then run `opsctl apply`"
                    ),
                )
            }
            ReleaseCommandOutcome::Unknown { machine, reason } => {
                tracing::error!(app = %rec.app, machine = machine.as_deref().unwrap_or("-"), "release command outcome unknown: {reason}");
                (
                    DeployStatus::Halted,
                    format!(
                        "release command `{cmd}` did not report an exit: {reason}; no app \
                         machine was touched; a human must check the migration before running \
                         `opsctl apply` again"
                    ),
                )
            }
            ReleaseCommandOutcome::Invalid { reason } => (
                DeployStatus::Failed,
                format!(
                    "spec.deploy.releaseCommand `{cmd}` is invalid: {reason}; nothing was changed"
                ),
            ),
        };
        skip_machines(rec);
        rec.finished_at = Some(self.clock.now());
        self.finish(rec, status, reason)?;
        Ok(Some(Outcome::Deployed(Box::new(rec.clone()))))
    }

    /// The id of a deploy of `image` whose release command `cmd` succeeded, if any.
    ///
    /// # Errors
    /// The record store failed.
    pub fn release_command_done(
        &self,
        app: &str,
        cmd: &str,
        image: &str,
    ) -> Result<Option<String>, StoreError> {
        let quoted = format!("`{cmd}`");
        Ok(self
            .store
            .deploys(Some(app))?
            .into_iter()
            .find(|r| {
                r.image == image
                    && r.steps.iter().any(|s| {
                        s.intent.starts_with(WAIT_INTENT)
                            && s.intent.contains(&quoted)
                            && s.result
                                .as_deref()
                                .is_some_and(|r| r.starts_with("succeeded"))
                    })
            })
            .map(|r| r.id))
    }

    /// Run `cmd` once in a temporary machine of `image`, each step recorded before it is
    /// taken, and make sure the machine is gone afterwards (unless it may still be running).
    ///
    /// # Errors
    /// The record store failed (the command may then still be running; its machine destroys
    /// itself when it exits).
    pub async fn release_command(
        &self,
        app: &FlyApp,
        cmd: &str,
        image: &str,
        rec: &mut DeployRecord,
    ) -> Result<ReleaseCommandOutcome, StoreError> {
        let name = rec.app.clone();
        let argv = match split_command(cmd) {
            Ok(argv) => argv,
            Err(reason) => return Ok(ReleaseCommandOutcome::Invalid { reason }),
        };
        self.intend(
            rec,
            format!(
                "run release command `{cmd}` for {image} in a temporary machine (group \
                 {RELEASE_COMMAND_GROUP}, restart no, auto_destroy)"
            ),
        )?;
        let machines = match self.client.list_machines(&name).await {
            Ok(m) => m,
            Err(e) => {
                let reason = format!("could not list the app's machines: {e}");
                self.done(rec, format!("failed: {reason}"))?;
                return Ok(ReleaseCommandOutcome::PlatformError { reason });
            }
        };
        let request = MachineRequest {
            config: release_config(app, &machines, &argv, image),
            region: release_region(app, &machines),
            ..MachineRequest::default()
        };
        let mut created = None;
        let mut failures = Vec::new();
        for attempt in 1..=2 {
            let create_id = format!("{}-release-command-{attempt}", rec.id);
            match self
                .client
                .create_machine(&name, &request, &create_id)
                .await
            {
                Ok(m) => {
                    created = Some(m);
                    break;
                }
                Err(e) => {
                    let retry = e.kind == FlyErrorKind::Unavailable && attempt == 1;
                    failures.push(e.to_string());
                    if !retry {
                        break;
                    }
                    tracing::warn!(app = %name, error = %e, "could not create the release command machine; retrying once");
                    tokio::time::sleep(CREATE_RETRY_BACKOFF).await;
                }
            }
        }
        let Some(machine) = created else {
            let reason = format!(
                "creating the release command machine failed {} time(s): {}",
                failures.len(),
                failures.join("; then ")
            );
            self.done(rec, format!("failed: {reason}"))?;
            return Ok(ReleaseCommandOutcome::PlatformError { reason });
        };
        let id = machine.id.clone();
        let retried = if failures.is_empty() {
            String::new()
        } else {
            format!(" after a failed attempt ({})", failures.join("; "))
        };
        self.done(rec, format!("machine {id} created{retried}"))?;

        let timeout = app.spec.deploy.wait_timeout.0;
        self.intend(
            rec,
            format!(
                "{WAIT_INTENT} `{cmd}` (machine {id}) to start and exit (timeout {})",
                app.spec.deploy.wait_timeout
            ),
        )?;
        let (outcome, detail) = self.watch_release_machine(&name, &machine, timeout).await;
        let cleanup = match &outcome {
            ReleaseCommandOutcome::Unknown { .. } => {
                "left to finish; it destroys itself when it exits (auto_destroy)".to_owned()
            }
            _ => self.cleanup_release_machine(&name, &id).await,
        };
        let result = match &outcome {
            ReleaseCommandOutcome::Succeeded { .. } => format!("succeeded: exited 0{detail}"),
            ReleaseCommandOutcome::Failed {
                exit_code,
                last_logs,
                ..
            } => format!(
                "failed: exit code {exit_code}{detail}; last log lines: [{}]",
                last_logs.join(" | ")
            ),
            ReleaseCommandOutcome::PlatformError { reason }
            | ReleaseCommandOutcome::Unknown { reason, .. }
            | ReleaseCommandOutcome::Invalid { reason } => format!("failed: {reason}{detail}"),
        };
        self.done(rec, format!("{result}; machine {id} {cleanup}"))?;
        Ok(outcome)
    }

    /// Poll the release-command machine until its exit is read (then its logs, if it failed),
    /// Fly says it cannot run, or `timeout` passes. Returns the outcome and notes for the
    /// record (`; not visible for 1 s after its create`).
    async fn watch_release_machine(
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
    async fn cleanup_release_machine(&self, app: &str, id: &str) -> String {
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
            machine: None,
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

/// Every machine of the plan stays untouched: the rollout never started.
fn skip_machines(rec: &mut DeployRecord) {
    for m in &mut rec.machines {
        m.result = MachineResult::Skipped;
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
