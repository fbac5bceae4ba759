//! Machines REST handlers (`/v1/apps/{app}…`, NOTES.md §2.1): apps, machines, wait,
//! suspend, signal, versions, events (leases are in [`super::leases`], metadata in
//! [`super::metadata`]).
//!
//! Handlers translate HTTP into [`super::machine::SimMachine`] calls under the world lock and
//! answer with the wire types of [`crate::fly::wire`]. Bodies are parsed leniently where
//! fly-go is lenient (an empty body is allowed where Fly allows one; Content-Type is not
//! required) and every error is Fly's `{"error": …}` JSON. Only `wait` awaits, polling the
//! world every 20 ms of real time without holding the lock.

use crate::sim::auth::FlyRoutes;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::clock::DurationStr;
use super::error::{SimError, parse_body, parse_required};
use super::ids::machine_name;
use super::leases::new_lease;
use super::machine::SimMachine;
use super::signals;
use super::state::SimState;
use crate::fly::wire::{App, Machine, MachineConfig, MachineEvent, MachineRequest};

/// Header carrying a lease nonce on guarded calls.
pub const NONCE_HEADER: &str = "fly-machine-lease-nonce";

/// How often `wait` looks at the machine, real time.
const WAIT_POLL: Duration = Duration::from_millis(20);

pub(super) type Query_ = Query<Vec<(String, String)>>;
type AppPath = Path<String>;
pub(super) type MachinePath = Path<(String, String)>;

/// The Machines API routes.
pub fn routes(state: &SimState) -> Router<SimState> {
    let m = "/v1/apps/{app}/machines/{id}";
    Router::new()
        .fly_route(state, "/v1/apps/{app}", get(get_app))
        .fly_route(
            state,
            "/v1/apps/{app}/machines",
            get(list_machines).post(create_machine),
        )
        .fly_route(
            state,
            m,
            get(get_machine)
                .post(update_machine)
                .delete(destroy_machine),
        )
        .fly_route(state, "/v1/apps/{app}/machines/{id}/stop", post(stop))
        .fly_route(state, "/v1/apps/{app}/machines/{id}/start", post(start))
        .fly_route(state, "/v1/apps/{app}/machines/{id}/restart", post(restart))
        .fly_route(state, "/v1/apps/{app}/machines/{id}/cordon", post(cordon))
        .fly_route(
            state,
            "/v1/apps/{app}/machines/{id}/uncordon",
            post(uncordon),
        )
        .fly_route(state, "/v1/apps/{app}/machines/{id}/wait", get(wait))
        .fly_route(state, "/v1/apps/{app}/machines/{id}/suspend", post(suspend))
        .fly_route(state, "/v1/apps/{app}/machines/{id}/signal", post(signal))
        .fly_route(
            state,
            "/v1/apps/{app}/machines/{id}/versions",
            get(versions),
        )
        .fly_route(state, "/v1/apps/{app}/machines/{id}/events", get(events))
}

pub(super) fn nonce(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub(super) fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

pub(super) fn flag(q: &[(String, String)], key: &str) -> bool {
    param(q, key).is_some_and(|v| matches!(v, "" | "true" | "1" | "yes"))
}

fn ok() -> Json<Value> {
    Json(json!({"ok": true}))
}

/// Refuses a mutation on a destroyed machine.
pub(super) fn live(m: &SimMachine) -> Result<(), SimError> {
    match m.state() {
        "destroyed" | "destroying" => Err(SimError::Precondition(format!(
            "failed_precondition: machine {} is {}",
            m.id,
            m.state()
        ))),
        _ => Ok(()),
    }
}

async fn get_app(State(s): State<SimState>, Path(app): AppPath) -> Result<Json<App>, SimError> {
    s.with_world(|w, _| {
        let a = w.app(&app)?;
        Ok(Json(App {
            id: a.name.clone(),
            name: a.name.clone(),
            status: a.status.clone(),
            organization: json!({"name": a.org, "slug": a.org}),
            machine_count: u32::try_from(a.live_machine_count()).unwrap_or(u32::MAX),
        }))
    })
}

async fn list_machines(
    State(s): State<SimState>,
    Path(app): AppPath,
    Query(q): Query_,
) -> Result<Json<Vec<Machine>>, SimError> {
    let include_deleted = flag(&q, "include_deleted");
    let region = param(&q, "region");
    let states: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "state")
        .flat_map(|(_, v)| v.split(','))
        .filter(|v| !v.is_empty())
        .collect();
    let wanted_meta: Vec<(&str, &str)> = q
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("metadata.")?, v.as_str())))
        .collect();
    s.with_world(|w, now| {
        let b = &w.behaviors;
        let a = w.apps.get_mut(&app).ok_or(SimError::AppNotFound)?;
        let mut out = Vec::new();
        for m in a.machines.values_mut() {
            m.settle(now, b);
            let keep = (include_deleted || m.state() != "destroyed")
                && region.is_none_or(|r| r == m.region)
                && (states.is_empty() || states.contains(&m.state()))
                && wanted_meta
                    .iter()
                    .all(|(k, v)| m.config.metadata.get(*k).map(String::as_str) == Some(*v));
            if keep {
                out.push(m.to_wire(now, b));
            }
        }
        Ok(Json(out))
    })
}

async fn get_machine(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
) -> Result<Json<Machine>, SimError> {
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        Ok(Json(m.to_wire(now, b)))
    })
}

async fn create_machine(
    State(s): State<SimState>,
    Path(app): AppPath,
    body: Bytes,
) -> Result<Json<Machine>, SimError> {
    let req: MachineRequest = parse_required(&body)?;
    if req.config.image.is_empty() {
        return Err(SimError::BadRequest(
            "invalid config.image: an image is required".to_string(),
        ));
    }
    s.with_world(|w, now| {
        let id = w.new_machine_id();
        let owner = w.lease_owner.clone();
        let b = &w.behaviors;
        let a = w.apps.get_mut(&app).ok_or(SimError::AppNotFound)?;
        let region = req
            .region
            .clone()
            .unwrap_or_else(|| a.primary_region.clone());
        let name = req.name.clone().unwrap_or_else(|| machine_name(&id));
        let mut m = SimMachine::launch(
            id.clone(),
            name,
            region,
            req.config,
            now,
            req.skip_launch,
            b,
        );
        m.cordoned = req.skip_service_registration;
        let mut nonce = None;
        if let Some(ttl) = req.lease_ttl.filter(|t| *t > 0) {
            let lease = new_lease(&m, owner, String::new(), ttl, now);
            nonce = Some(lease.nonce.clone());
            m.lease = Some(lease);
        }
        let mut wire = m.to_wire(now, b);
        wire.nonce = nonce;
        a.machines.insert(id, m);
        Ok(Json(wire))
    })
}

async fn update_machine(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Machine>, SimError> {
    let req: MachineRequest = parse_required(&body)?;
    if req.config.image.is_empty() {
        return Err(SimError::BadRequest(
            "invalid config.image: an image is required".to_string(),
        ));
    }
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        live(m)?;
        m.guard(nonce(&headers), now)?;
        if let Some(v) = req
            .current_version
            .as_deref()
            .filter(|v| *v != m.instance_id)
        {
            return Err(SimError::Precondition(format!(
                "failed_precondition: current_version {v} does not match machine version {}",
                m.instance_id
            )));
        }
        m.update(req.config, req.skip_launch, now, b);
        Ok(Json(m.to_wire(now, b)))
    })
}

/// Checks a stop body: absent, `null` or an object (fly-go sends
/// `{"id":…,"signal":…,"timeout":"0s"}`, signals as names or numbers; the simulator does not
/// use them). Anything else is Fly's 400 (superfly/docs#2187).
fn check_stop_body(body: &[u8]) -> Result<(), SimError> {
    let value: Value = parse_body(body)?;
    let kind = match value {
        Value::Null | Value::Object(_) => return Ok(()),
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
    };
    Err(SimError::BadRequest(format!(
        "json: cannot unmarshal {kind} into Go value of type main.stopRequest"
    )))
}

async fn stop(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, SimError> {
    check_stop_body(&body)?;
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        live(m)?;
        m.guard(nonce(&headers), now)?;
        m.stop(now, b);
        Ok(ok())
    })
}

/// Response of `POST …/start` (docs; not in `fly::wire`).
#[derive(Debug, Serialize)]
struct StartResponse {
    previous_state: String,
    migrated: bool,
    new_host: String,
}

async fn start(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
) -> Result<Json<StartResponse>, SimError> {
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        live(m)?;
        m.guard(nonce(&headers), now)?;
        let previous_state = m.start(now, b)?;
        Ok(Json(StartResponse {
            previous_state,
            migrated: false,
            new_host: String::new(),
        }))
    })
}

async fn suspend(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
) -> Result<Json<Value>, SimError> {
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        live(m)?;
        m.guard(nonce(&headers), now)?;
        m.suspend(now, b)?;
        Ok(ok())
    })
}

/// Body of `POST …/signal`: a name (`"SIGKILL"`, spec) or a number (`9`, fly-go).
#[derive(Debug, Deserialize)]
struct SignalRequest {
    signal: Value,
}

async fn signal(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, SimError> {
    let SignalRequest { signal } = parse_required(&body)?;
    let number = signals::number(&signal)
        .ok_or_else(|| SimError::BadRequest(format!("invalid signal {signal}")))?;
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        live(m)?;
        m.guard(nonce(&headers), now)?;
        m.signal(number, now, b)?;
        Ok(ok())
    })
}

/// One entry of `GET …/versions` (spec `MachineVersion`).
#[derive(Debug, Serialize)]
struct MachineVersion {
    version: String,
    user_config: MachineConfig,
}

async fn versions(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
) -> Result<Json<Vec<MachineVersion>>, SimError> {
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        Ok(Json(
            m.versions()
                .iter()
                .map(|(version, config)| MachineVersion {
                    version: version.clone(),
                    user_config: config.clone(),
                })
                .collect(),
        ))
    })
}

async fn restart(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
) -> Result<Json<Value>, SimError> {
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        live(m)?;
        m.guard(nonce(&headers), now)?;
        m.restart(now, b)?;
        Ok(ok())
    })
}

async fn cordon(s: State<SimState>, p: MachinePath, h: HeaderMap) -> Result<Json<Value>, SimError> {
    set_cordon(s, p, h, true)
}

async fn uncordon(
    s: State<SimState>,
    p: MachinePath,
    h: HeaderMap,
) -> Result<Json<Value>, SimError> {
    set_cordon(s, p, h, false)
}

fn set_cordon(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
    cordoned: bool,
) -> Result<Json<Value>, SimError> {
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        live(m)?;
        m.guard(nonce(&headers), now)?;
        m.cordoned = cordoned;
        m.updated_at = now;
        Ok(ok())
    })
}

async fn destroy_machine(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
    Query(q): Query_,
) -> Result<Json<Value>, SimError> {
    let force = flag(&q, "force") || flag(&q, "kill");
    s.with_world(|w, now| {
        let (m, b) = w.machine(&app, &id, now)?;
        m.guard(nonce(&headers), now)?;
        m.destroy(force, now, b)?;
        Ok(ok())
    })
}

/// States `wait` accepts (2024 spec plus the newer `failed`, `settled`, `created`).
const WAIT_STATES: [&str; 7] = [
    "started",
    "stopped",
    "suspended",
    "destroyed",
    "failed",
    "settled",
    "created",
];

/// A `wait` 200 as newer Fly sends it (NOTES.md §2.1): `{"ok":true,"state":"started",
/// "version":"01J…","event_id":"01J…"}`; `version` is the `instance_id`, `event_id` the event
/// that put the machine in `state`. `fly::wire::WaitResponse` reads the older `{ok, state}`.
#[derive(Debug, Serialize)]
struct WaitAnswer {
    ok: bool,
    state: String,
    version: String,
    event_id: String,
}

async fn wait(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    Query(q): Query_,
) -> Result<Json<WaitAnswer>, SimError> {
    let mut states: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "state")
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect();
    if states.is_empty() {
        states.push("started".to_string());
    }
    if let Some(bad) = states.iter().find(|s| !WAIT_STATES.contains(&s.as_str())) {
        return Err(SimError::BadRequest(format!(
            "invalid state {bad:?}; expected one of {}",
            WAIT_STATES.join(", ")
        )));
    }
    let timeout_s = match param(&q, "timeout") {
        None | Some("") => 60,
        Some(t) => t
            .parse::<u64>()
            .ok()
            .or_else(|| t.parse::<DurationStr>().ok().map(|d| d.0.as_secs()))
            .ok_or_else(|| SimError::BadRequest(format!("invalid timeout {t:?}; give seconds")))?,
    }
    .clamp(1, 60);
    let version = param(&q, "version")
        .or_else(|| param(&q, "instance_id"))
        .map(str::to_string);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout_s);
    loop {
        let reached = s.with_world(|w, now| {
            let (m, _) = w.machine(&app, &id, now)?;
            if let Some(v) = version.as_deref().filter(|v| *v != m.instance_id) {
                return Err(SimError::Precondition(format!(
                    "failed_precondition: version {v} is not the machine's current version {}",
                    m.instance_id
                )));
            }
            let state = m.state();
            let settled = matches!(
                state,
                "started" | "stopped" | "suspended" | "destroyed" | "failed" | "created"
            );
            let hit = states
                .iter()
                .any(|want| want == state || (want == "settled" && settled));
            Ok(hit.then(|| {
                let events = m.events();
                let event_id = events
                    .iter()
                    .find(|e| e.status == state)
                    .or_else(|| events.first())
                    .map(|e| e.id.clone())
                    .unwrap_or_default();
                WaitAnswer {
                    ok: true,
                    state: state.to_string(),
                    version: m.instance_id.clone(),
                    event_id,
                }
            }))
        })?;
        if let Some(answer) = reached {
            return Ok(Json(answer));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Err(SimError::WaitTimeout {
                states: states.join(","),
                timeout_s,
            });
        }
        tokio::time::sleep(WAIT_POLL.min(deadline - now)).await;
    }
}

async fn events(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    Query(q): Query_,
) -> Result<Json<Vec<MachineEvent>>, SimError> {
    let limit = match param(&q, "limit") {
        None => 20,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| SimError::BadRequest(format!("invalid limit {l:?}")))?,
    }
    .clamp(1, 50);
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        Ok(Json(m.events().iter().take(limit).cloned().collect()))
    })
}
