//! One simulated machine: its state transitions, events, checks and lease, on virtual time.
//!
//! Nothing runs in the background. A machine keeps its visible state plus a short queue of
//! transitions scheduled at virtual instants (`started` at t0 + startDelay, `stopped` at
//! t0 + stopDelay, a crash-loop's next exit, …). Every read or mutation first calls
//! [`SimMachine::settle`], which applies the transitions whose time has come, in order,
//! writing their events. A mutation then drops the transitions still queued (a stop cancels a
//! pending start) and queues its own.
//!
//! This module knows nothing about HTTP: [`super::machines`] turns requests into these calls
//! and [`SimMachine::to_wire`] into Fly's `Machine` JSON. One-shot machines (release
//! commands) and `auto_destroy` are in [`one_shot`].

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use super::checks;
use super::clock::to_chrono;
use super::error::SimError;
use super::ids::{image_ref, new_ulid, private_ip};
use super::scenario::{ImageBehavior, ReleaseCommandSpec, Timing};
use super::signals;
use crate::fly::wire::{
    CheckStatus, EventRequest, ExitEvent, Lease, Machine, MachineConfig, MachineEvent,
};

/// Events kept per machine (newest first); older ones are dropped.
const MAX_EVENTS: usize = 100;

/// Config versions kept per machine (newest first).
const MAX_VERSIONS: usize = 50;

/// How images behave, and the scenario's timings. Read at each transition, so a change made
/// through `/__sim/images` applies from the next start on (check results change at once).
#[derive(Debug, Clone)]
pub struct Behaviors {
    /// Transition delays.
    pub timing: Timing,
    /// Behaviour per full image reference.
    pub images: BTreeMap<String, ImageBehavior>,
    /// Behaviour of unlisted images.
    pub default: ImageBehavior,
    /// How one-shot machines (release commands) running an image end, per image.
    pub release_commands: BTreeMap<String, ReleaseCommandSpec>,
}

impl Behaviors {
    /// The behaviour of `image`.
    pub fn of(&self, image: &str) -> ImageBehavior {
        self.images.get(image).copied().unwrap_or(self.default)
    }

    fn start_delay(&self, image: &str) -> chrono::Duration {
        match self.of(image) {
            ImageBehavior::SlowStart(d) => to_chrono(d.0),
            _ => to_chrono(self.timing.start_delay.0),
        }
    }

    fn stop_delay(&self) -> chrono::Duration {
        to_chrono(self.timing.stop_delay.0)
    }
}

/// A lease on a machine (virtual-time expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRec {
    /// Sent back as `fly-machine-lease-nonce`.
    pub nonce: String,
    /// Holder.
    pub owner: String,
    /// Free text.
    pub description: String,
    /// Expiry, virtual time.
    pub expires_at: DateTime<Utc>,
    /// The machine's `instance_id` when taken.
    pub version: String,
}

impl LeaseRec {
    /// The wire form (`expires_at` in unix seconds).
    pub fn to_wire(&self) -> Lease {
        Lease {
            nonce: self.nonce.clone(),
            expires_at: self.expires_at.timestamp(),
            owner: self.owner.clone(),
            description: self.description.clone(),
            version: self.version.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A launched machine begins booting: `created` → `starting` (no event; `start` follows).
    Boot,
    /// → `started` (event `start`).
    Start,
    /// Process exit → `stopped` (event `exit`); flyd restarts it when `restarting`.
    Exit { code: i32, restarting: bool },
    /// Requested stop completes → `stopped` (event `stop`).
    Stop,
    /// → `destroyed` (event `destroy`, source `user`).
    Destroy,
    /// flyd destroys an `auto_destroy` machine that stopped (event `destroy`, source `flyd`).
    AutoDestroy,
    /// Requested suspend completes → `suspended` (event `suspend`).
    Suspend,
}

#[derive(Debug, Clone)]
struct Scheduled {
    at: DateTime<Utc>,
    step: Step,
}

/// A simulated machine.
#[derive(Debug, Clone)]
pub struct SimMachine {
    /// Hex id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Region code.
    pub region: String,
    /// ULID of the current version.
    pub instance_id: String,
    /// The current config.
    pub config: MachineConfig,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Out of proxy routing.
    pub cordoned: bool,
    /// The lease, possibly expired.
    pub lease: Option<LeaseRec>,
    state: String,
    started_at: Option<DateTime<Utc>>,
    crashed: bool,
    restart_count: u32,
    events: Vec<MachineEvent>,
    pending: Vec<Scheduled>,
    versions: Vec<(String, MachineConfig)>,
    /// A one-shot run in progress: the lines it prints when it exits.
    run_output: Vec<String>,
    /// Lines one-shot runs printed, by the unix-ms timestamp of their `exit` event.
    outputs: Vec<(i64, Vec<String>)>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn is_running(state: &str) -> bool {
    matches!(state, "started" | "starting" | "replacing" | "restarting")
}

impl SimMachine {
    /// A machine created at `now` (event `launch`/`created`), in state `created` as Fly's create
    /// answer shows it (`machines_create_resp.json`). Unless `skip_launch`, it is `starting`
    /// from the next [`settle`](Self::settle) at or after `now` and `started` after the
    /// image's start delay.
    pub fn launch(
        id: String,
        name: String,
        region: String,
        config: MachineConfig,
        now: DateTime<Utc>,
        skip_launch: bool,
        b: &Behaviors,
    ) -> Self {
        let mut m = Self {
            id,
            name,
            region,
            instance_id: new_ulid(now),
            config,
            created_at: now,
            updated_at: now,
            cordoned: false,
            lease: None,
            state: "created".to_string(),
            started_at: None,
            crashed: false,
            restart_count: 0,
            events: Vec::new(),
            pending: Vec::new(),
            versions: Vec::new(),
            run_output: Vec::new(),
            outputs: Vec::new(),
        };
        m.record_version();
        m.push_event(now, "launch", "created", "user", None);
        if !skip_launch {
            m.schedule(now, Step::Boot);
            let at = now + b.start_delay(&m.config.image);
            m.schedule(at, Step::Start);
        }
        m
    }

    /// The visible state after the last [`settle`](Self::settle).
    pub fn state(&self) -> &str {
        &self.state
    }

    /// Applies every transition due at or before `now`, in order.
    pub fn settle(&mut self, now: DateTime<Utc>, b: &Behaviors) {
        while self.pending.first().is_some_and(|s| s.at <= now) {
            let Scheduled { mut at, step } = self.pending.remove(0);
            if matches!(step, Step::Start)
                && self.crashed
                && b.of(&self.config.image) == ImageBehavior::CrashLoop
            {
                at = self.skip_crash_cycles(at, now, b);
            }
            self.apply(at, step, b);
        }
    }

    /// A crash loop left alone for a long virtual time would replay every cycle; jump over
    /// all but the last few (their events would have been dropped from the capped list).
    fn skip_crash_cycles(
        &mut self,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
        b: &Behaviors,
    ) -> DateTime<Utc> {
        let cycle = to_chrono(b.timing.exit_after.0) + b.start_delay(&self.config.image);
        let cycle_ms = cycle.num_milliseconds().max(1);
        let behind = (now - at).num_milliseconds() / cycle_ms;
        if behind <= 20 {
            return at;
        }
        let skip = behind - 2;
        self.restart_count = self
            .restart_count
            .saturating_add(u32::try_from(skip).unwrap_or(u32::MAX));
        at + chrono::Duration::milliseconds(skip.saturating_mul(cycle_ms))
    }

    fn apply(&mut self, at: DateTime<Utc>, step: Step, b: &Behaviors) {
        self.updated_at = at;
        match step {
            Step::Boot => {
                if self.state == "created" {
                    self.state = "starting".to_string();
                }
            }
            Step::Start => {
                self.state = "started".to_string();
                self.started_at = Some(at);
                self.crashed = false;
                self.push_event(at, "start", "started", "flyd", None);
                self.run_output.clear();
                if one_shot::is_one_shot(&self.config) {
                    let run = b.one_shot_run(&self.config.image);
                    self.run_output = run.output;
                    let code = run.code;
                    let restarting = false;
                    self.schedule(at + run.runs_for, Step::Exit { code, restarting });
                    return;
                }
                let exit_at = at + to_chrono(b.timing.exit_after.0);
                match b.of(&self.config.image) {
                    ImageBehavior::CrashLoop => self.schedule(
                        exit_at,
                        Step::Exit {
                            code: 1,
                            restarting: true,
                        },
                    ),
                    ImageBehavior::Exits(code) => self.schedule(
                        exit_at,
                        Step::Exit {
                            code,
                            restarting: false,
                        },
                    ),
                    _ => {}
                }
            }
            Step::Exit { code, restarting } => {
                self.state = "stopped".to_string();
                self.started_at = None;
                self.crashed = true;
                if restarting {
                    self.restart_count = self.restart_count.saturating_add(1);
                }
                let request = exit_request(at, code, false, restarting, self.restart_count);
                self.push_event(at, "exit", "stopped", "flyd", Some(request));
                let output = std::mem::take(&mut self.run_output);
                if !output.is_empty() {
                    self.outputs.push((at.timestamp_millis(), output));
                }
                if restarting {
                    let next = at + b.start_delay(&self.config.image);
                    self.schedule(next, Step::Start);
                } else if one_shot::auto_destroy(&self.config) {
                    self.schedule(at + b.stop_delay(), Step::AutoDestroy);
                }
            }
            Step::Stop => {
                self.state = "stopped".to_string();
                self.started_at = None;
                self.crashed = false;
                let request = exit_request(at, 0, true, false, self.restart_count);
                self.push_event(at, "stop", "stopped", "user", Some(request));
                if one_shot::auto_destroy(&self.config) {
                    self.schedule(at + b.stop_delay(), Step::AutoDestroy);
                }
            }
            Step::Destroy | Step::AutoDestroy => {
                self.state = "destroyed".to_string();
                self.started_at = None;
                self.lease = None;
                let source = if matches!(step, Step::AutoDestroy) {
                    "flyd"
                } else {
                    "user"
                };
                self.push_event(at, "destroy", "destroyed", source, None);
            }
            Step::Suspend => {
                self.state = "suspended".to_string();
                self.started_at = None;
                self.crashed = false;
                self.push_event(at, "suspend", "suspended", "user", None);
            }
        }
    }

    fn record_version(&mut self) {
        self.versions
            .insert(0, (self.instance_id.clone(), self.config.clone()));
        self.versions.truncate(MAX_VERSIONS);
    }

    /// Config versions, newest first: (`instance_id`, config as it was set).
    pub fn versions(&self) -> &[(String, MachineConfig)] {
        &self.versions
    }

    fn schedule(&mut self, at: DateTime<Utc>, step: Step) {
        let i = self.pending.partition_point(|s| s.at <= at);
        self.pending.insert(i, Scheduled { at, step });
    }

    fn push_event(
        &mut self,
        at: DateTime<Utc>,
        kind: &str,
        status: &str,
        source: &str,
        request: Option<EventRequest>,
    ) {
        self.events.insert(
            0,
            MachineEvent {
                id: new_ulid(at),
                kind: kind.to_string(),
                status: status.to_string(),
                source: source.to_string(),
                timestamp: at.timestamp_millis(),
                request,
            },
        );
        self.events.truncate(MAX_EVENTS);
    }

    /// Replaces the whole config (new `instance_id`, event `update`/`replacing`) and restarts
    /// the machine on it, unless `skip_launch`, which leaves it `stopped` (or `created`).
    pub fn update(
        &mut self,
        config: MachineConfig,
        skip_launch: bool,
        now: DateTime<Utc>,
        b: &Behaviors,
    ) {
        self.settle(now, b);
        self.pending.clear();
        self.config = config;
        self.instance_id = new_ulid(now);
        self.record_version();
        self.updated_at = now;
        self.restart_count = 0;
        self.started_at = None;
        self.crashed = false;
        self.push_event(now, "update", "replacing", "user", None);
        if skip_launch {
            if self.state != "created" {
                self.state = "stopped".to_string();
            }
        } else {
            self.state = "replacing".to_string();
            let at = now + b.start_delay(&self.config.image);
            self.schedule(at, Step::Start);
        }
    }

    /// Stops a running machine (`stopping`, then `stopped` after stopDelay). On a stopped
    /// machine it only cancels a pending flyd restart.
    pub fn stop(&mut self, now: DateTime<Utc>, b: &Behaviors) {
        self.settle(now, b);
        match self.state.as_str() {
            "destroyed" | "destroying" | "stopping" => {}
            // A pending flyd restart is cancelled; a pending auto-destroy is not.
            "stopped" | "created" => self.pending.retain(|s| matches!(s.step, Step::AutoDestroy)),
            _ => {
                self.pending.clear();
                self.state = "stopping".to_string();
                self.started_at = None;
                self.updated_at = now;
                self.schedule(now + b.stop_delay(), Step::Stop);
            }
        }
    }

    /// Starts a stopped or created machine; returns the state it was in.
    ///
    /// # Errors
    /// [`SimError::Precondition`] while it is still stopping or destroying, or destroyed.
    pub fn start(&mut self, now: DateTime<Utc>, b: &Behaviors) -> Result<String, SimError> {
        self.settle(now, b);
        let previous = self.state.clone();
        match previous.as_str() {
            "destroying" | "destroyed" => Err(SimError::Precondition(format!(
                "failed_precondition: machine {} is {previous}",
                self.id
            ))),
            "stopping" => Err(SimError::Precondition(
                "failed_precondition: machine still active, refusing to start".to_string(),
            )),
            s if is_running(s) => Ok(previous),
            _ => {
                self.pending.clear();
                self.state = "starting".to_string();
                self.crashed = false;
                self.restart_count = 0;
                self.updated_at = now;
                let at = now + b.start_delay(&self.config.image);
                self.schedule(at, Step::Start);
                Ok(previous)
            }
        }
    }

    /// Restarts a running machine (event `restart`/`restarting`); starts a stopped one.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub fn restart(&mut self, now: DateTime<Utc>, b: &Behaviors) -> Result<(), SimError> {
        self.settle(now, b);
        if !is_running(&self.state) {
            return self.start(now, b).map(|_| ());
        }
        self.pending.clear();
        self.state = "restarting".to_string();
        self.started_at = None;
        self.updated_at = now;
        self.push_event(now, "restart", "restarting", "user", None);
        let at = now + b.stop_delay() + b.start_delay(&self.config.image);
        self.schedule(at, Step::Start);
        Ok(())
    }

    /// Suspends a started machine (`suspending`, then `suspended` after stopDelay); `start`
    /// resumes it.
    ///
    /// # Errors
    /// [`SimError::Precondition`] unless it is `started`.
    pub fn suspend(&mut self, now: DateTime<Utc>, b: &Behaviors) -> Result<(), SimError> {
        self.settle(now, b);
        if self.state != "started" {
            return Err(SimError::Precondition(format!(
                "failed_precondition: unable to suspend machine {}, not currently started (is {})",
                self.id, self.state
            )));
        }
        self.pending.clear();
        self.state = "suspending".to_string();
        self.started_at = None;
        self.updated_at = now;
        self.schedule(now + b.stop_delay(), Step::Suspend);
        Ok(())
    }

    /// Delivers signal `number` to the main process. One that [`signals::terminates`] it
    /// makes it exit at once with code 128 + `number` (event `exit`); flyd restarts it unless
    /// the config's `restart.policy` is `no`. Others change nothing.
    ///
    /// # Errors
    /// [`SimError::Precondition`] unless it is `started`.
    pub fn signal(
        &mut self,
        number: i32,
        now: DateTime<Utc>,
        b: &Behaviors,
    ) -> Result<(), SimError> {
        self.settle(now, b);
        if self.state != "started" {
            return Err(SimError::Precondition(format!(
                "failed_precondition: machine {} is not running (is {})",
                self.id, self.state
            )));
        }
        if !signals::terminates(number) {
            return Ok(());
        }
        let restarting = one_shot::restart_policy(&self.config) != Some("no");
        self.pending.clear();
        self.apply(
            now,
            Step::Exit {
                code: 128 + number,
                restarting,
            },
            b,
        );
        Ok(())
    }

    /// Destroys the machine (`destroying`, then `destroyed` after stopDelay). Destroying a
    /// destroyed machine is a no-op.
    ///
    /// # Errors
    /// [`SimError::Precondition`] when it is running and `force` (or `kill`) was not given.
    pub fn destroy(
        &mut self,
        force: bool,
        now: DateTime<Utc>,
        b: &Behaviors,
    ) -> Result<(), SimError> {
        self.settle(now, b);
        if matches!(self.state.as_str(), "destroyed" | "destroying") {
            return Ok(());
        }
        if is_running(&self.state) && !force {
            return Err(SimError::Precondition(
                "failed_precondition: unable to destroy machine, not currently stopped or suspended"
                    .to_string(),
            ));
        }
        self.pending.clear();
        self.state = "destroying".to_string();
        self.started_at = None;
        self.updated_at = now;
        self.lease = None;
        self.schedule(now + b.stop_delay(), Step::Destroy);
        Ok(())
    }

    /// The lease, if one is held and not expired at `now`.
    pub fn active_lease(&self, now: DateTime<Utc>) -> Option<&LeaseRec> {
        self.lease.as_ref().filter(|l| l.expires_at > now)
    }

    /// Lets a mutation through unless someone holds an unexpired lease and `nonce` is not its
    /// nonce.
    ///
    /// # Errors
    /// [`SimError::LeaseHeld`] (409).
    pub fn guard(&self, nonce: Option<&str>, now: DateTime<Utc>) -> Result<(), SimError> {
        match self.active_lease(now) {
            Some(l) if nonce != Some(l.nonce.as_str()) => Err(self.lease_held(l)),
            _ => Ok(()),
        }
    }

    /// The 409 for a lease held by someone else.
    pub fn lease_held(&self, l: &LeaseRec) -> SimError {
        SimError::LeaseHeld {
            id: self.id.clone(),
            owner: l.owner.clone(),
            expires_at: rfc3339(l.expires_at),
        }
    }

    /// Check results at `now`: empty until `checkGrace` after the latest start; then one entry
    /// per configured check, `passing` or `critical` by image behaviour. A machine that exited
    /// by itself reports its checks `critical`; one stopped on request reports none.
    pub fn checks(&self, now: DateTime<Utc>, b: &Behaviors) -> Vec<CheckStatus> {
        let failing = matches!(
            b.of(&self.config.image),
            ImageBehavior::FailsChecks | ImageBehavior::CrashLoop
        );
        match (self.state.as_str(), self.started_at) {
            ("started", Some(t)) => {
                let ready = t + to_chrono(b.timing.check_grace.0);
                if now < ready {
                    Vec::new()
                } else {
                    checks::statuses(&self.config, failing, ready)
                }
            }
            ("stopped", _) if self.crashed => checks::statuses(&self.config, true, self.updated_at),
            _ => Vec::new(),
        }
    }

    /// Fly's `Machine` JSON at `now` (call [`settle`](Self::settle) first).
    pub fn to_wire(&self, now: DateTime<Utc>, b: &Behaviors) -> Machine {
        Machine {
            id: self.id.clone(),
            name: self.name.clone(),
            state: self.state.clone(),
            region: self.region.clone(),
            instance_id: self.instance_id.clone(),
            private_ip: private_ip(&self.id),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
            image_ref: image_ref(&self.config.image),
            config: Some(self.config.clone()),
            incomplete_config: None,
            events: self.events.clone(),
            checks: self.checks(now, b),
            host_status: "ok".to_string(),
            cordoned: self.cordoned,
            nonce: None,
        }
    }

    /// Events, newest first.
    pub fn events(&self) -> &[MachineEvent] {
        &self.events
    }

    /// Lines a one-shot run printed before its `exit` event at `exit_ms` (unix ms); empty for
    /// any other event.
    pub fn output_at(&self, exit_ms: i64) -> &[String] {
        self.outputs
            .iter()
            .find(|(t, _)| *t == exit_ms)
            .map_or(&[], |(_, lines)| lines.as_slice())
    }
}

fn exit_request(
    at: DateTime<Utc>,
    code: i32,
    requested: bool,
    restarting: bool,
    restarts: u32,
) -> EventRequest {
    EventRequest {
        exit_event: Some(ExitEvent {
            exit_code: code,
            oom_killed: false,
            requested_stop: requested,
            restarting,
            exited_at: Some(rfc3339(at)),
        }),
        restart_count: restarts,
        extra: serde_json::Map::new(),
    }
}

pub mod one_shot;
#[cfg(test)]
mod tests;
