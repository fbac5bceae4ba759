//! Lease handlers: `GET`, `POST` and `DELETE /v1/apps/{app}/machines/{id}/lease` (NOTES.md
//! §2.7).
//!
//! Acquire takes the TTL from the body `{"ttl": N}` (spec) or `?ttl=N` (what fly-go sends),
//! default 30 s, and answers 201 with the wrapped envelope
//! `{"status":"success","data":{nonce, expires_at, owner, description, version}}`. A POST
//! carrying the current nonce in `fly-machine-lease-nonce` refreshes (same nonce back); a
//! lease held under another nonce is a 409 with Fly's "lease currently held by" text.
//! Expiry is on the virtual clock, so `/__sim/advance` expires leases. Which mutations the
//! lease guards is decided by [`super::machines`], through [`SimMachine::guard`].

use crate::sim::auth::FlyRoutes;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::clock::to_chrono;
use super::error::{SimError, parse_body};
use super::ids::new_nonce;
use super::machine::{LeaseRec, SimMachine};
use super::machines::{MachinePath, Query_, live, nonce, param};
use super::state::SimState;
use crate::fly::wire::{LeaseEnvelope, LeaseRequest};

/// Lease TTL when the request gives none, seconds.
const DEFAULT_LEASE_TTL_S: u64 = 30;

/// The lease route.
pub fn routes(state: &SimState) -> Router<SimState> {
    let path = "/v1/apps/{app}/machines/{id}/lease";
    Router::new().fly_route(
        state,
        path,
        get(get_lease).post(acquire_lease).delete(release_lease),
    )
}

/// A new lease for `m`, held by `owner` for `ttl_s` seconds of virtual time.
pub(super) fn new_lease(
    m: &SimMachine,
    owner: String,
    description: String,
    ttl_s: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> LeaseRec {
    LeaseRec {
        nonce: new_nonce(),
        owner,
        description,
        expires_at: now + to_chrono(Duration::from_secs(ttl_s)),
        version: m.instance_id.clone(),
    }
}

fn envelope(lease: &LeaseRec) -> LeaseEnvelope {
    LeaseEnvelope {
        status: "success".to_string(),
        data: Some(lease.to_wire()),
        message: None,
    }
}

async fn get_lease(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
) -> Result<Json<LeaseEnvelope>, SimError> {
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        m.active_lease(now)
            .map(|l| Json(envelope(l)))
            .ok_or(SimError::LeaseNotFound)
    })
}

async fn acquire_lease(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
    Query(q): Query_,
    body: Bytes,
) -> Result<Response, SimError> {
    let req: LeaseRequest = parse_body(&body)?;
    let ttl = match (req.ttl, param(&q, "ttl")) {
        (Some(t), _) => t,
        (None, Some(t)) => t
            .parse()
            .map_err(|_| SimError::BadRequest(format!("invalid ttl {t:?}; give seconds")))?,
        (None, None) => DEFAULT_LEASE_TTL_S,
    };
    if ttl == 0 {
        return Err(SimError::BadRequest(
            "ttl must be at least 1 second".to_string(),
        ));
    }
    let description = req
        .description
        .or_else(|| param(&q, "description").map(str::to_string))
        .unwrap_or_default();
    s.with_world(|w, now| {
        let owner = w.lease_owner.clone();
        let (m, _) = w.machine(&app, &id, now)?;
        live(m)?;
        let sent = nonce(&headers);
        let lease = match m.active_lease(now) {
            Some(l) if sent == Some(l.nonce.as_str()) => LeaseRec {
                expires_at: now + to_chrono(Duration::from_secs(ttl)),
                ..l.clone()
            },
            Some(l) => return Err(m.lease_held(l)),
            None => new_lease(m, owner, description, ttl, now),
        };
        let body = envelope(&lease);
        m.lease = Some(lease);
        Ok((StatusCode::CREATED, Json(body)).into_response())
    })
}

async fn release_lease(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    headers: HeaderMap,
) -> Result<Json<Value>, SimError> {
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        m.guard(nonce(&headers), now)?;
        m.lease = None;
        Ok(Json(json!({"status": "success", "data": {"ok": true}})))
    })
}
