//! The control API under `/__sim/`: not part of Fly, for tests and demos. No auth, JSON only,
//! not counted in the request counts.
//!
//! | call | does |
//! |---|---|
//! | `GET /__sim/requests` | [`RequestCounts`]: total and per `"METHOD /route/{template}"` |
//! | `DELETE /__sim/requests` | zero the counts and empty the request log (204) |
//! | `GET /__sim/requests/log` | `{"requests": [`[`LoggedRequest`]`]}`: the newest Fly API requests (at most [`REQUEST_LOG_CAPACITY`](super::REQUEST_LOG_CAPACITY)), oldest first, with their real arrival time |
//! | `GET /__sim/images` | `{"default": behaviour, "images": {image: behaviour}}` |
//! | `POST /__sim/images` | `{"image": "...", "behavior": "healthy"\|"fails-checks"\|"crash-loop"\|{"exits": N}\|{"slow-start": "40s"}}` |
//! | `POST /__sim/advance` | `{"by": "30s"}`: move the virtual clock; answers `{"now": RFC 3339}` |
//! | `GET /__sim/clock` | `{"now": RFC 3339, "timeScale": N}` |
//! | `GET /__sim/state` | [`StateDump`]: every app with its machines (destroyed ones too) and releases |
//! | `GET /__sim/faults` | [`FaultsDump`]: installed faults with their counts |
//! | `POST /__sim/faults` | one [`FaultSpec`] or a list; installs them now (201, [`FaultsDump`] of the new ones); 400 lists every problem |
//! | `DELETE /__sim/faults`, `DELETE /__sim/faults/{id}` | remove all faults / one (204), lifting the leases they placed |
//! | `GET /__sim/rate-limits` | [`RateLimits`] in force |
//! | `POST /__sim/rate-limits` | [`RateLimitsPatch`] (`{"enabled": false}`, …); answers the new limits; buckets refill |
//! | `POST /__sim/logs` | `{"app", "machine"?, "level"?, "message"}`: a log line now (201) |
//! | `GET /__sim/release-commands` | `{"releaseCommands": {image: {exitCode, logs, runFor?}}}` |
//! | `GET`/`POST /__sim/registry` | the image registry: prune, restore, down (routes in [`super::registry`]) |
//! | `POST /__sim/release-commands` | [`ReleaseCommandChange`]: how one-shot machines running `image` end from their next start; answers it |

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};

use super::clock::DurationStr;
use super::error::{SimError, parse_required};
use super::faults::{FaultSpec, FaultView};
use super::limits::{RateLimits, RateLimitsPatch};
use super::logs::{LogLevel, posted};
use super::scenario::{ImageBehavior, ReleaseCommandSpec};
use super::state::{LoggedRequest, RequestCounts, SimState};
use crate::fly::wire::{Machine, RestRelease};

/// The control routes.
pub fn routes() -> Router<SimState> {
    Router::new()
        .route("/__sim/requests", get(requests).delete(reset_requests))
        .route("/__sim/requests/log", get(request_log))
        .route("/__sim/images", get(images).post(set_image))
        .route("/__sim/advance", post(advance))
        .route("/__sim/clock", get(clock))
        .route("/__sim/state", get(state))
        .route(
            "/__sim/faults",
            get(faults).post(add_faults).delete(clear_faults),
        )
        .route("/__sim/faults/{id}", delete(remove_fault))
        .route("/__sim/rate-limits", get(rate_limits).post(set_rate_limits))
        .route("/__sim/logs", post(add_log))
        .route(
            "/__sim/release-commands",
            get(release_commands).post(set_release_command),
        )
}

/// Body of `POST /__sim/release-commands` (and its answer): the image, then the fields of a
/// scenario's `releaseCommands` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseCommandChange {
    /// Full image reference.
    pub image: String,
    /// Exit code, 0–255 (default 0).
    #[serde(default)]
    pub exit_code: i32,
    /// Lines printed just before the exit (default none).
    #[serde(default)]
    pub logs: Vec<String>,
    /// How long it runs (default `timing.exitAfter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_for: Option<DurationStr>,
}

async fn release_commands(State(s): State<SimState>) -> Json<serde_json::Value> {
    s.with_world(|w, _| Json(serde_json::json!({"releaseCommands": w.behaviors.release_commands})))
}

async fn set_release_command(
    State(s): State<SimState>,
    body: Bytes,
) -> Result<Json<ReleaseCommandChange>, SimError> {
    let change: ReleaseCommandChange = parse_required(&body)?;
    if change.image.is_empty() || !(0..=255).contains(&change.exit_code) {
        return Err(SimError::BadRequest(format!(
            "release command for {:?}: give a non-empty image and an exitCode from 0 to 255, got {}",
            change.image, change.exit_code
        )));
    }
    let spec = ReleaseCommandSpec {
        exit_code: change.exit_code,
        logs: change.logs.clone(),
        run_for: change.run_for,
    };
    s.set_release_command(&change.image, spec);
    Ok(Json(change))
}

/// `GET /__sim/faults` (and the answer of `POST`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaultsDump {
    /// Installed faults, oldest first.
    pub faults: Vec<FaultView>,
}

/// Body of `POST /__sim/faults`: one fault or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FaultsBody {
    One(Box<FaultSpec>),
    Many(Vec<FaultSpec>),
}

async fn faults(State(s): State<SimState>) -> Json<FaultsDump> {
    let now = s.now();
    Json(FaultsDump {
        faults: s.faults().iter().map(|f| f.view(now)).collect(),
    })
}

async fn add_faults(State(s): State<SimState>, body: Bytes) -> Result<Response, SimError> {
    let specs = match parse_required::<FaultsBody>(&body) {
        Ok(FaultsBody::One(spec)) => vec![*spec],
        Ok(FaultsBody::Many(specs)) => specs,
        // `untagged` hides why; parse as one fault again for the message.
        Err(_) => vec![parse_required::<FaultSpec>(&body)?],
    };
    let problems: Vec<String> = specs.iter().flat_map(FaultSpec::problems).collect();
    if !problems.is_empty() {
        return Err(SimError::BadRequest(problems.join("; ")));
    }
    let mut added = Vec::new();
    for spec in specs {
        added.push(s.add_fault(spec)?);
    }
    let now = s.now();
    let dump = FaultsDump {
        faults: added.iter().map(|f| f.view(now)).collect(),
    };
    Ok((StatusCode::CREATED, Json(dump)).into_response())
}

async fn clear_faults(State(s): State<SimState>) -> StatusCode {
    s.remove_faults(None);
    StatusCode::NO_CONTENT
}

async fn remove_fault(
    State(s): State<SimState>,
    Path(id): Path<u64>,
) -> Result<StatusCode, SimError> {
    match s.remove_faults(Some(id)) {
        0 => Err(SimError::NotFound(format!("no fault {id}"))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

async fn rate_limits(State(s): State<SimState>) -> Json<RateLimits> {
    Json(s.rate_limits())
}

async fn set_rate_limits(
    State(s): State<SimState>,
    body: Bytes,
) -> Result<Json<RateLimits>, SimError> {
    let patch: RateLimitsPatch = parse_required(&body)?;
    let limits = s.rate_limits().patched(patch);
    let problems = limits.problems();
    if !problems.is_empty() {
        return Err(SimError::BadRequest(problems.join("; ")));
    }
    s.set_rate_limits(limits);
    Ok(Json(limits))
}

/// Body of `POST /__sim/logs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLog {
    app: String,
    #[serde(default)]
    machine: Option<String>,
    #[serde(default)]
    level: LogLevel,
    message: String,
}

async fn add_log(State(s): State<SimState>, body: Bytes) -> Result<StatusCode, SimError> {
    let log: NewLog = parse_required(&body)?;
    s.with_world(|w, now| {
        let a = w.app_mut(&log.app)?;
        if let Some(m) = log.machine.as_deref()
            && !a.machines.contains_key(m)
        {
            return Err(SimError::MachineNotFound);
        }
        let line = posted(a, log.machine.as_deref(), log.level, &log.message, now);
        a.posted_logs.push(line);
        Ok(StatusCode::CREATED)
    })
}

/// Body of `POST /__sim/images` (and its answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageChange {
    /// Full image reference.
    pub image: String,
    /// New behaviour.
    pub behavior: ImageBehavior,
}

/// Body of `POST /__sim/advance`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Advance {
    by: DurationStr,
}

/// The virtual clock, as `/__sim/clock` and `/__sim/advance` report it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClockDump {
    /// Virtual now, RFC 3339 with milliseconds.
    pub now: String,
    /// Virtual seconds per real second.
    pub time_scale: f64,
}

/// `GET /__sim/state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateDump {
    /// Virtual now.
    pub clock: ClockDump,
    /// Behaviour of unlisted images.
    pub default_behavior: ImageBehavior,
    /// Behaviour per image.
    pub images: BTreeMap<String, ImageBehavior>,
    /// Apps by name.
    pub apps: Vec<AppDump>,
}

/// One app in [`StateDump`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppDump {
    /// Name.
    pub name: String,
    /// Organisation slug.
    pub org: String,
    /// Version of the newest complete release.
    pub current_release: Option<i64>,
    /// Machines, destroyed ones included.
    pub machines: Vec<Machine>,
    /// Releases, newest first.
    pub releases: Vec<RestRelease>,
    /// Active leases: machine id → owner.
    pub leases: BTreeMap<String, String>,
}

fn clock_dump(s: &SimState) -> ClockDump {
    ClockDump {
        now: s.now().to_rfc3339_opts(SecondsFormat::Millis, true),
        time_scale: s.time_scale(),
    }
}

async fn requests(State(s): State<SimState>) -> Json<RequestCounts> {
    Json(s.request_counts())
}

/// The request log (`GET /__sim/requests/log`).
#[derive(Debug, Serialize)]
struct RequestLog {
    requests: Vec<LoggedRequest>,
}

async fn request_log(State(s): State<SimState>) -> Json<RequestLog> {
    Json(RequestLog {
        requests: s.request_log(),
    })
}

async fn reset_requests(State(s): State<SimState>) -> StatusCode {
    s.reset_request_counts();
    StatusCode::NO_CONTENT
}

async fn images(State(s): State<SimState>) -> Json<serde_json::Value> {
    s.with_world(|w, _| {
        Json(serde_json::json!({"default": w.behaviors.default, "images": w.behaviors.images}))
    })
}

async fn set_image(State(s): State<SimState>, body: Bytes) -> Result<Json<ImageChange>, SimError> {
    let change: ImageChange = parse_required(&body)?;
    if change.image.is_empty() {
        return Err(SimError::BadRequest("image must not be empty".to_string()));
    }
    s.set_image_behavior(&change.image, change.behavior);
    Ok(Json(change))
}

async fn advance(State(s): State<SimState>, body: Bytes) -> Result<Json<ClockDump>, SimError> {
    let Advance { by } = parse_required(&body)?;
    s.advance(by.0);
    Ok(Json(clock_dump(&s)))
}

async fn clock(State(s): State<SimState>) -> Json<ClockDump> {
    Json(clock_dump(&s))
}

async fn state(State(s): State<SimState>) -> Json<StateDump> {
    let clock = clock_dump(&s);
    s.with_world(|w, now| {
        let b = &w.behaviors;
        let apps = w
            .apps
            .values_mut()
            .map(|a| {
                let mut leases = BTreeMap::new();
                let machines = a
                    .machines
                    .values_mut()
                    .map(|m| {
                        m.settle(now, b);
                        if let Some(l) = m.active_lease(now) {
                            leases.insert(m.id.clone(), l.owner.clone());
                        }
                        m.to_wire(now, b)
                    })
                    .collect();
                AppDump {
                    name: a.name.clone(),
                    org: a.org.clone(),
                    current_release: a.current_release().map(|r| r.version),
                    releases: a
                        .releases_newest_first(None)
                        .into_iter()
                        .map(|r| r.to_rest())
                        .collect(),
                    machines,
                    leases,
                }
            })
            .collect();
        Json(StateDump {
            clock,
            default_behavior: b.default,
            images: b.images.clone(),
            apps,
        })
    })
}
