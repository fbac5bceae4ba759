//! Machine metadata handlers (NOTES.md §2.1): `GET …/{id}/metadata`, `GET/POST/DELETE
//! …/{id}/metadata/{key}`, and the newer whole-map `PATCH`/`PUT …/{id}/metadata`.
//!
//! Metadata writes do not make a new machine version (Fly keeps them apart from config
//! updates). The whole-map calls take `{"metadata": {…}, "machine_version": "…",
//! "updated_at": "…"}` and answer 204; a `machine_version` that is not the machine's current
//! `instance_id` is 412, which is how a client detects a concurrent change. `PATCH` merges
//! the given keys into the map; `PUT` replaces the map. Fly's docs give both the same body
//! and do not say how they differ; this is our reading. `updated_at` is accepted and ignored.

use crate::sim::auth::FlyRoutes;
use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::{SimError, parse_required};
use super::machines::{MachinePath, live};
use super::state::SimState;

const MAP: &str = "/v1/apps/{app}/machines/{id}/metadata";
const KEY: &str = "/v1/apps/{app}/machines/{id}/metadata/{key}";

/// The metadata routes.
pub fn routes(state: &SimState) -> Router<SimState> {
    Router::new()
        .fly_route(
            state,
            MAP,
            get(get_metadata).patch(patch_metadata).put(put_metadata),
        )
        .fly_route(
            state,
            KEY,
            get(get_metadata_key)
                .post(set_metadata)
                .delete(delete_metadata),
        )
}

async fn get_metadata(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
) -> Result<Json<BTreeMap<String, String>>, SimError> {
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        Ok(Json(m.config.metadata.clone()))
    })
}

async fn get_metadata_key(
    State(s): State<SimState>,
    Path((app, id, key)): Path<(String, String, String)>,
) -> Result<Json<Value>, SimError> {
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        match m.config.metadata.get(&key) {
            Some(v) => Ok(Json(json!({"value": v}))),
            None => Err(SimError::MetadataNotFound),
        }
    })
}

/// Body of `POST …/metadata/{key}`.
#[derive(Debug, Deserialize)]
struct MetadataValue {
    value: String,
}

async fn set_metadata(
    State(s): State<SimState>,
    Path((app, id, key)): Path<(String, String, String)>,
    body: Bytes,
) -> Result<StatusCode, SimError> {
    let MetadataValue { value } = parse_required(&body)?;
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        live(m)?;
        m.config.metadata.insert(key, value);
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn delete_metadata(
    State(s): State<SimState>,
    Path((app, id, key)): Path<(String, String, String)>,
) -> Result<StatusCode, SimError> {
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        live(m)?;
        m.config.metadata.remove(&key);
        Ok(StatusCode::NO_CONTENT)
    })
}

/// Body of `PATCH`/`PUT …/metadata`.
#[derive(Debug, Deserialize)]
struct MetadataUpdate {
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    machine_version: Option<String>,
    /// Accepted (fly-go sends it) and ignored.
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<Value>,
}

async fn patch_metadata(
    s: State<SimState>,
    p: MachinePath,
    body: Bytes,
) -> Result<StatusCode, SimError> {
    write_metadata(s, p, Method::PATCH, body)
}

async fn put_metadata(
    s: State<SimState>,
    p: MachinePath,
    body: Bytes,
) -> Result<StatusCode, SimError> {
    write_metadata(s, p, Method::PUT, body)
}

fn write_metadata(
    State(s): State<SimState>,
    Path((app, id)): MachinePath,
    method: Method,
    body: Bytes,
) -> Result<StatusCode, SimError> {
    let req: MetadataUpdate = parse_required(&body)?;
    s.with_world(|w, now| {
        let (m, _) = w.machine(&app, &id, now)?;
        live(m)?;
        if let Some(v) = req
            .machine_version
            .as_deref()
            .filter(|v| !v.is_empty() && *v != m.instance_id)
        {
            return Err(SimError::Precondition(format!(
                "failed_precondition: machine_version {v} does not match machine version {}",
                m.instance_id
            )));
        }
        if method == Method::PUT {
            m.config.metadata = req.metadata;
        } else {
            m.config.metadata.extend(req.metadata);
        }
        m.updated_at = now;
        Ok(StatusCode::NO_CONTENT)
    })
}
