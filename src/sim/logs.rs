//! App logs the client can poll: `GET /v1/apps/{app}/logs?since=<unix ms>&limit=N`.
//!
//! Fly's real logs are a stream (NATS, or `GET https://api.fly.io/api/v1/apps/{app}/logs`,
//! which `fly logs` follows); this endpoint is a simplification for polling clients and is
//! **not** a Fly API. It answers `{"logs":[{"timestamp_ms","machine_id","region","level",
//! "message"}]}`, oldest first, only lines with `timestamp_ms > since` (default 0) and at or
//! before virtual now, at most `limit` (default 100, max 1000). To follow, pass the last
//! `timestamp_ms` seen as the next `since`.
//!
//! Lines come from three places, all on the virtual clock and generated when asked:
//! - the scenario's `apps[].logs` ([`LogSpec`]): a message at a time, optionally repeating;
//! - `POST /__sim/logs`: a line at the moment of the call;
//! - machine life, from each machine's events: starts, requested stops, suspends, exits. An
//!   exit that flyd restarts (a `crash-loop` image) prints BEAM crash lines — an application
//!   start failure (`** (EXIT)`, `Kernel pid terminated`, `erl_crash.dump`) on odd restarts,
//!   a `heart` time-out on even ones — then `Main child exited normally with code: 1`. A
//!   one-shot machine (a release command, [`super::machine::one_shot`]) prints `Preparing to
//!   run: `CMD`` at its start and its scripted lines (scenario `releaseCommands`) right
//!   before its exit line, at level `info` for exit code 0, else `error`.
//!   Machine lines live as long as the machine keeps the event (its last 100).

use crate::sim::auth::FlyRoutes;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::clock::{DurationStr, to_chrono};
use super::error::SimError;
use super::machine::SimMachine;
use super::machine::one_shot;
use super::machines::{Query_, param};
use super::state::{SimApp, SimState, World};

const LOGS: &str = "/v1/apps/{app}/logs";

/// The logs route.
pub fn routes(state: &SimState) -> Router<SimState> {
    Router::new().fly_route(state, LOGS, get(logs))
}

/// A log line as written under `apps[].logs` in a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LogSpec {
    /// First emission, after the clock start (default `0s`).
    #[serde(default)]
    pub at: Option<DurationStr>,
    /// Repeat this often (default: once).
    #[serde(default)]
    pub every: Option<DurationStr>,
    /// Stop repeating at this offset from the clock start (default: never).
    #[serde(default)]
    pub until: Option<DurationStr>,
    /// The machine that prints it (default: none; the region is then the app's).
    #[serde(default)]
    pub machine: Option<String>,
    /// `debug`, `info` (default), `warn` or `error`.
    #[serde(default)]
    pub level: LogLevel,
    /// The text.
    pub message: Spanned<String>,
}

impl LogSpec {
    /// Problems a scenario loader reports.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.every.is_some_and(|e| e.0.is_zero()) {
            out.push(format!(
                "log line {:?}: `every` must be longer than 0s",
                self.message.value
            ));
        }
        out
    }
}

/// A log level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Debug.
    Debug,
    /// Info.
    #[default]
    Info,
    /// Warning.
    Warn,
    /// Error.
    Error,
}

/// One log line on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Unix milliseconds, virtual time.
    pub timestamp_ms: i64,
    /// The machine that printed it; empty for app-level lines.
    pub machine_id: String,
    /// Region code.
    pub region: String,
    /// Level.
    pub level: LogLevel,
    /// The text.
    pub message: String,
}

/// The answer of `GET /v1/apps/{app}/logs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsResponse {
    /// Oldest first.
    pub logs: Vec<LogLine>,
}

/// A scenario log line resolved onto the virtual clock.
#[derive(Debug, Clone)]
pub struct LogSchedule {
    first: DateTime<Utc>,
    every: Option<Duration>,
    until: Option<DateTime<Utc>>,
    machine_id: String,
    region: String,
    level: LogLevel,
    message: String,
}

impl LogSchedule {
    /// `spec` for app `app` (region by machine, else the app's), clock starting at `start`.
    pub fn new(spec: &LogSpec, app: &SimApp, start: DateTime<Utc>) -> Self {
        let region = spec
            .machine
            .as_ref()
            .and_then(|id| app.machines.get(id))
            .map_or_else(|| app.primary_region.clone(), |m| m.region.clone());
        Self {
            first: start + to_chrono(spec.at.map_or(Duration::ZERO, |d| d.0)),
            every: spec.every.map(|d| d.0).filter(|d| !d.is_zero()),
            until: spec.until.map(|d| start + to_chrono(d.0)),
            machine_id: spec.machine.clone().unwrap_or_default(),
            region,
            level: spec.level,
            message: spec.message.value.clone(),
        }
    }

    /// Up to `limit` emissions with `since_ms < t ≤ now`.
    fn lines(&self, since_ms: i64, now: DateTime<Utc>, limit: usize) -> Vec<LogLine> {
        let first = self.first.timestamp_millis();
        let last = now
            .timestamp_millis()
            .min(self.until.map_or(i64::MAX, |u| u.timestamp_millis() - 1));
        let line = |t: i64| LogLine {
            timestamp_ms: t,
            machine_id: self.machine_id.clone(),
            region: self.region.clone(),
            level: self.level,
            message: self.message.clone(),
        };
        let Some(every) = self.every else {
            return if first > since_ms && first <= last {
                vec![line(first)]
            } else {
                Vec::new()
            };
        };
        let step = i64::try_from(every.as_millis()).unwrap_or(i64::MAX).max(1);
        let k0 = if since_ms < first {
            0
        } else {
            (since_ms - first) / step + 1
        };
        (k0..)
            .map(|k| first.saturating_add(k.saturating_mul(step)))
            .take_while(|t| *t <= last)
            .take(limit)
            .map(line)
            .collect()
    }
}

/// A line `POST /__sim/logs` added.
pub fn posted(
    app: &SimApp,
    machine: Option<&str>,
    level: LogLevel,
    message: &str,
    now: DateTime<Utc>,
) -> LogLine {
    let region = machine
        .and_then(|id| app.machines.get(id))
        .map_or_else(|| app.primary_region.clone(), |m| m.region.clone());
    LogLine {
        timestamp_ms: now.timestamp_millis(),
        machine_id: machine.unwrap_or_default().to_string(),
        region,
        level,
        message: message.to_string(),
    }
}

/// Every line of `app` with `since_ms < timestamp ≤ now`, oldest first, at most `limit`.
pub fn app_lines(app: &SimApp, since_ms: i64, now: DateTime<Utc>, limit: usize) -> Vec<LogLine> {
    let now_ms = now.timestamp_millis();
    let mut out: Vec<LogLine> = Vec::new();
    for s in &app.log_schedules {
        out.extend(s.lines(since_ms, now, limit));
    }
    out.extend(
        app.posted_logs
            .iter()
            .filter(|l| l.timestamp_ms > since_ms && l.timestamp_ms <= now_ms)
            .cloned(),
    );
    for m in app.machines.values() {
        out.extend(
            machine_lines(&app.name, m)
                .into_iter()
                .filter(|l| l.timestamp_ms > since_ms && l.timestamp_ms <= now_ms),
        );
    }
    out.sort_by_key(|l| l.timestamp_ms);
    out.truncate(limit);
    out
}

/// Lines a machine's events imply, oldest first.
fn machine_lines(app: &str, m: &SimMachine) -> Vec<LogLine> {
    let mut out = Vec::new();
    let stop_signal = m
        .config
        .extra
        .get("stop_config")
        .and_then(|c| c.get("signal"))
        .and_then(|s| s.as_str())
        .unwrap_or("SIGINT")
        .to_string();
    for e in m.events().iter().rev() {
        let ts = e.timestamp;
        let mut push = |offset: i64, level: LogLevel, message: String| {
            out.push(LogLine {
                timestamp_ms: ts - offset,
                machine_id: m.id.clone(),
                region: m.region.clone(),
                level,
                message,
            });
        };
        match e.kind.as_str() {
            "start" => {
                push(
                    1,
                    LogLevel::Info,
                    "INFO Starting init (commit: simulated)...".into(),
                );
                push(0, LogLevel::Info, "Machine started".into());
                if one_shot::is_one_shot(&m.config)
                    && let Some(cmd) = one_shot::command_line(&m.config)
                {
                    push(
                        0,
                        LogLevel::Info,
                        format!("INFO Preparing to run: `{cmd}` as root"),
                    );
                }
            }
            "stop" => {
                push(
                    2,
                    LogLevel::Info,
                    format!("INFO Sending signal {stop_signal} to main child process w/ PID 313"),
                );
                push(
                    1,
                    LogLevel::Info,
                    format!(
                        "INFO Main child exited with signal (with signal '{stop_signal}', core dumped? false)"
                    ),
                );
                push(0, LogLevel::Info, "INFO Starting clean up.".into());
            }
            "suspend" => push(
                0,
                LogLevel::Info,
                "Virtual machine has been suspended".into(),
            ),
            "exit" => {
                let request = e.request.as_ref();
                let exit = request.and_then(|r| r.exit_event.as_ref());
                let code = exit.map_or(0, |x| x.exit_code);
                let restarting = exit.is_some_and(|x| x.restarting);
                let restarts = request.map_or(0, |r| r.restart_count);
                if code > 128 {
                    let signal = super::signals::name(code - 128).unwrap_or("SIGKILL");
                    push(
                        0,
                        LogLevel::Info,
                        format!(
                            "INFO Main child exited with signal (with signal '{signal}', core dumped? false)"
                        ),
                    );
                    continue;
                }
                if restarting {
                    for (i, (level, line)) in beam_crash(app, restarts, ts).into_iter().enumerate()
                    {
                        push(5 - i as i64, level, line);
                    }
                }
                let output = m.output_at(ts);
                let level = if code == 0 {
                    LogLevel::Info
                } else {
                    LogLevel::Error
                };
                for (i, line) in output.iter().enumerate() {
                    let before = i64::try_from(output.len() - i).unwrap_or(i64::MAX);
                    push(before, level, line.clone());
                }
                push(
                    0,
                    LogLevel::Info,
                    format!("INFO Main child exited normally with code: {code}"),
                );
            }
            _ => {}
        }
    }
    out
}

/// BEAM crash lines for app `app`: an application start failure on odd restarts, a `heart`
/// time-out on even ones (at most five lines).
fn beam_crash(app: &str, restarts: u32, ts_ms: i64) -> Vec<(LogLevel, String)> {
    let module: String = app
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut cs = w.chars();
            cs.next()
                .map(|c| c.to_ascii_uppercase().to_string() + cs.as_str())
                .unwrap_or_default()
        })
        .collect();
    let atom = app.replace('-', "_");
    if restarts % 2 == 1 {
        vec![
            (LogLevel::Error, format!(
                "[error] Application {atom} exited: {module}.Application.start(:normal, []) returned an error: shutdown: failed to start child: {module}.Repo"
            )),
            (LogLevel::Error, "    ** (EXIT) an exception was raised: ** (DBConnection.ConnectionError) connection not available and request was dropped from queue after 2000ms".into()),
            (LogLevel::Error, format!(
                "Kernel pid terminated (application_controller) ({{application_start_failure,{atom},{{{{shutdown,{{failed_to_start_child,'Elixir.{module}.Repo',killed}}}},{{'Elixir.{module}.Application',start,[normal,[]]}}}}}}}})"
            )),
            (LogLevel::Error, "Crash dump is being written to: erl_crash.dump...done".into()),
        ]
    } else {
        let when = DateTime::<Utc>::from_timestamp_millis(ts_ms)
            .unwrap_or_default()
            .format("%a %b %e %H:%M:%S %Y");
        vec![
            (
                LogLevel::Error,
                format!("heart: {when}: heart-beat time-out, no activity for 60 seconds"),
            ),
            (
                LogLevel::Error,
                format!("heart: {when}: Would reboot. Terminating."),
            ),
        ]
    }
}

async fn logs(
    State(s): State<SimState>,
    Path(app): Path<String>,
    Query(q): Query_,
) -> Result<Json<LogsResponse>, SimError> {
    let since = match param(&q, "since") {
        None | Some("") => 0,
        Some(v) => v.parse::<i64>().map_err(|_| {
            SimError::BadRequest(format!("invalid since {v:?}; give unix milliseconds"))
        })?,
    };
    let limit = match param(&q, "limit") {
        None | Some("") => 100,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| SimError::BadRequest(format!("invalid limit {v:?}")))?,
    }
    .clamp(1, 1000);
    s.with_world(|w, now| {
        let World {
            apps, behaviors, ..
        } = w;
        let a = apps.get_mut(&app).ok_or(SimError::AppNotFound)?;
        for m in a.machines.values_mut() {
            m.settle(now, behaviors);
        }
        Ok(Json(LogsResponse {
            logs: app_lines(a, since, now, limit),
        }))
    })
}
