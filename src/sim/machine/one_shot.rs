//! One-shot machines: a machine that runs its command once and exits, as Fly's release-command
//! machines do (NOTES.md §6.2 step 3; flyctl `ToReleaseMachineConfig`).
//!
//! A machine is one-shot when its metadata says `fly_process_group: fly_app_release_command`,
//! or when its config has both `restart.policy: no` and `auto_destroy: true` (what
//! `fly machine run --rm` creates). A plain `restart.policy: no` machine is *not* one-shot: a
//! server that is not restarted still serves until it dies, as before.
//!
//! A one-shot machine starts as any machine does, runs for `timing.exitAfter` (or the
//! scenario's `releaseCommands[image].runFor`), prints the scripted lines, and exits with the
//! scripted code: `releaseCommands[image].exitCode`, else its image behaviour (`{exits: N}` → N,
//! `crash-loop` → 1), else 0. It is never restarted. Independently of that, **any** machine
//! with `auto_destroy: true` is destroyed by flyd once it stops, whether its process exited or
//! it was stopped on request (event `destroy`, source `flyd`); it stays readable by id and in
//! the list with `include_deleted`.
//!
//! Nothing here knows about HTTP or locks; [`super::SimMachine`] calls these at its
//! transitions.

use chrono::Duration;

use super::Behaviors;
use crate::fly::wire::{META_PROCESS_GROUP, MachineConfig};
use crate::sim::clock::to_chrono;
use crate::sim::scenario::ImageBehavior;

/// The process group flyctl gives release-command machines (NOTES.md §2.3, reserved groups).
pub const RELEASE_COMMAND_GROUP: &str = "fly_app_release_command";

/// How one run of a one-shot machine ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    /// Exit code.
    pub code: i32,
    /// Time from `started` to the exit, virtual.
    pub runs_for: Duration,
    /// Lines printed just before the exit.
    pub output: Vec<String>,
}

/// Whether a machine with `config` runs its command once (see the module docs).
pub fn is_one_shot(config: &MachineConfig) -> bool {
    let release_command = config
        .metadata
        .get(META_PROCESS_GROUP)
        .is_some_and(|g| g == RELEASE_COMMAND_GROUP);
    release_command || (restart_policy(config) == Some("no") && auto_destroy(config))
}

/// `config.restart.policy`, if set.
pub(super) fn restart_policy(config: &MachineConfig) -> Option<&str> {
    config
        .extra
        .get("restart")
        .and_then(|r| r.get("policy"))
        .and_then(|p| p.as_str())
}

/// `config.auto_destroy`: flyd destroys the machine once it stops.
pub(super) fn auto_destroy(config: &MachineConfig) -> bool {
    config
        .extra
        .get("auto_destroy")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// `config.init.cmd` as one line (`/app/bin/migrate arg`), if set.
pub(crate) fn command_line(config: &MachineConfig) -> Option<String> {
    let cmd = config.extra.get("init")?.get("cmd")?.as_array()?;
    let words: Vec<&str> = cmd.iter().filter_map(|w| w.as_str()).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

impl Behaviors {
    /// How a one-shot run of `image` ends, as scripted now.
    pub(super) fn one_shot_run(&self, image: &str) -> Run {
        let exit_after = to_chrono(self.timing.exit_after.0);
        match self.release_commands.get(image) {
            Some(spec) => Run {
                code: spec.exit_code,
                runs_for: spec.run_for.map_or(exit_after, |d| to_chrono(d.0)),
                output: spec.logs.clone(),
            },
            None => Run {
                code: match self.of(image) {
                    ImageBehavior::Exits(code) => code,
                    ImageBehavior::CrashLoop => 1,
                    _ => 0,
                },
                runs_for: exit_after,
                output: Vec::new(),
            },
        }
    }
}
