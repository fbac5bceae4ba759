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

use opsctl_crds::FlyApp;

mod config;
mod watch;

use self::config::{release_config, release_region, split_command};
use super::{Deployer, Outcome};
use crate::fly::FlyErrorKind;
use crate::fly::wire::MachineRequest;
use crate::records::{DeployRecord, DeployStatus, MachineResult, StoreError};

/// The process group flyctl gives release-command machines (NOTES.md §2.3, reserved groups).
pub const RELEASE_COMMAND_GROUP: &str = "fly_app_release_command";

/// Wait before the one retry of a create Fly could not perform (BUG-15 A).
const CREATE_RETRY_BACKOFF: Duration = Duration::from_secs(2);

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
        self.enter(
            rec,
            opsctl_controllers::rollout::phase::Phase::ReleaseCommand,
        )?;
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
}

/// Every machine of the plan stays untouched: the rollout never started.
fn skip_machines(rec: &mut DeployRecord) {
    for m in &mut rec.machines {
        m.result = MachineResult::Skipped;
    }
}
