//! Certificate handlers: `/v1/apps/{app}/certificates…` (NOTES.md §4.2).
//!
//! | call | answer |
//! |---|---|
//! | `GET …/certificates?filter=&cursor=&limit=` | `{"certificates":[summary],"total_count":N}` (+ `next_cursor` when more); `limit` default 25, max 500; `filter` matches part of the hostname |
//! | `POST …/certificates/acme` `{"hostname"}` | 201 detail, `pending_validation`; 422 for a bad or taken hostname |
//! | `POST …/certificates/custom` `{"hostname","fullchain","private_key"}` | 201 detail; 422 without PEM |
//! | `GET …/certificates/{hostname}` | detail; 404 `certificate not found` |
//! | `POST …/certificates/{hostname}/check` | detail + `dns_records` |
//! | `DELETE …/certificates/{hostname}` | 204 |
//! | `DELETE …/certificates/{hostname}/acme` | detail without the Fly certificate |
//! | `DELETE …/certificates/{hostname}/custom` | detail without the custom one, + `warning` |

use crate::sim::auth::FlyRoutes;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::json;

use super::{CertificateDetail, SimCertificate, valid_hostname};
use crate::sim::error::{SimError, parse_required};
use crate::sim::machines::{Query_, param};
use crate::sim::state::SimState;

const LIST: &str = "/v1/apps/{app}/certificates";
const ACME: &str = "/v1/apps/{app}/certificates/acme";
const CUSTOM: &str = "/v1/apps/{app}/certificates/custom";
const ONE: &str = "/v1/apps/{app}/certificates/{hostname}";
const CHECK: &str = "/v1/apps/{app}/certificates/{hostname}/check";
const ONE_ACME: &str = "/v1/apps/{app}/certificates/{hostname}/acme";
const ONE_CUSTOM: &str = "/v1/apps/{app}/certificates/{hostname}/custom";

/// The certificate routes.
pub fn routes(state: &SimState) -> Router<SimState> {
    Router::new()
        .fly_route(state, LIST, get(list))
        .fly_route(state, ACME, post(add_acme))
        .fly_route(state, CUSTOM, post(add_custom))
        .fly_route(state, ONE, get(show).delete(remove))
        .fly_route(state, CHECK, post(check))
        .fly_route(state, ONE_ACME, delete(remove_acme))
        .fly_route(state, ONE_CUSTOM, delete(remove_custom))
}

type HostPath = Path<(String, String)>;

fn not_found() -> SimError {
    SimError::NotFound("certificate not found".to_string())
}

async fn list(
    State(s): State<SimState>,
    Path(app): Path<String>,
    Query(q): Query_,
) -> Result<Json<serde_json::Value>, SimError> {
    let limit = match param(&q, "limit") {
        None | Some("") => 25,
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| SimError::BadRequest(format!("invalid limit {l:?}")))?,
    }
    .clamp(1, 500);
    let offset = match param(&q, "cursor") {
        None | Some("") => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| SimError::BadRequest(format!("invalid cursor {c:?}")))?,
    };
    let filter = param(&q, "filter").unwrap_or_default().to_string();
    s.with_world(|w, _| {
        let a = w.app(&app)?;
        let all: Vec<_> = a
            .certificates
            .values()
            .filter(|c| c.hostname.contains(&filter))
            .collect();
        let page: Vec<_> = all
            .iter()
            .skip(offset)
            .take(limit)
            .map(|c| c.summary())
            .collect();
        let mut body = json!({"certificates": page, "total_count": all.len()});
        if offset + limit < all.len() {
            body["next_cursor"] = json!((offset + limit).to_string());
        }
        Ok(Json(body))
    })
}

/// Body of `POST …/certificates/acme`.
#[derive(Debug, Deserialize)]
struct AcmeRequest {
    hostname: String,
}

/// Body of `POST …/certificates/custom`.
#[derive(Debug, Deserialize)]
struct CustomRequest {
    hostname: String,
    #[serde(default)]
    fullchain: String,
    #[serde(default)]
    private_key: String,
}

fn check_hostname(host: &str) -> Result<(), SimError> {
    if valid_hostname(host) {
        Ok(())
    } else {
        Err(SimError::Unprocessable(format!(
            "Validation failed: Hostname {host:?} is not a valid hostname"
        )))
    }
}

async fn add_acme(
    State(s): State<SimState>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let AcmeRequest { hostname } = parse_required(&body)?;
    check_hostname(&hostname)?;
    s.with_world(|w, now| {
        let a = w.app_mut(&app)?;
        if a.certificates.contains_key(&hostname) {
            return Err(SimError::Unprocessable(
                "Validation failed: Hostname has already been taken".to_string(),
            ));
        }
        let cert = SimCertificate::acme(&hostname, now);
        let detail = cert.detail(&app);
        a.certificates.insert(hostname, cert);
        Ok((StatusCode::CREATED, Json(detail)).into_response())
    })
}

async fn add_custom(
    State(s): State<SimState>,
    Path(app): Path<String>,
    body: Bytes,
) -> Result<Response, SimError> {
    let req: CustomRequest = parse_required(&body)?;
    check_hostname(&req.hostname)?;
    for (field, pem) in [
        ("fullchain", &req.fullchain),
        ("private_key", &req.private_key),
    ] {
        if !pem.contains("-----BEGIN ") {
            return Err(SimError::Unprocessable(format!(
                "Validation failed: {field} must be PEM-encoded"
            )));
        }
    }
    s.with_world(|w, now| {
        let a = w.app_mut(&app)?;
        let cert = a
            .certificates
            .entry(req.hostname.clone())
            .or_insert_with(|| {
                let mut c = SimCertificate::acme(&req.hostname, now);
                c.acme_requested = false;
                c
            });
        cert.import_custom(now);
        Ok((StatusCode::CREATED, Json(cert.detail(&app))).into_response())
    })
}

/// Runs `f` on certificate `host` of `app`; 404 for an unknown app or hostname.
fn with_cert<R>(
    s: &SimState,
    app: &str,
    host: &str,
    f: impl FnOnce(&mut SimCertificate, chrono::DateTime<chrono::Utc>) -> R,
) -> Result<R, SimError> {
    s.with_world(|w, now| {
        let cert = w
            .app_mut(app)?
            .certificates
            .get_mut(host)
            .ok_or_else(not_found)?;
        Ok(f(cert, now))
    })
}

async fn show(
    State(s): State<SimState>,
    Path((app, host)): HostPath,
) -> Result<Json<CertificateDetail>, SimError> {
    with_cert(&s, &app, &host, |c, _| Json(c.detail(&app)))
}

async fn check(
    State(s): State<SimState>,
    Path((app, host)): HostPath,
) -> Result<Json<CertificateDetail>, SimError> {
    with_cert(&s, &app, &host, |c, now| {
        c.check(now);
        Json(c.checked(&app))
    })
}

async fn remove(
    State(s): State<SimState>,
    Path((app, host)): HostPath,
) -> Result<StatusCode, SimError> {
    s.with_world(|w, _| {
        w.app_mut(&app)?
            .certificates
            .remove(&host)
            .map(|_| StatusCode::NO_CONTENT)
            .ok_or_else(not_found)
    })
}

async fn remove_acme(
    State(s): State<SimState>,
    Path((app, host)): HostPath,
) -> Result<Json<CertificateDetail>, SimError> {
    with_cert(&s, &app, &host, |c, now| {
        c.remove_acme(now);
        Json(c.detail(&app))
    })
}

async fn remove_custom(
    State(s): State<SimState>,
    Path((app, host)): HostPath,
) -> Result<Json<CertificateDetail>, SimError> {
    with_cert(&s, &app, &host, |c, now| {
        let had_fly = c.fly.is_some();
        c.remove_custom(now);
        let mut detail = c.detail(&app);
        detail.warning = Some(if had_fly {
            "custom certificate removed; the hostname is served with its Fly certificate"
                .to_string()
        } else {
            "custom certificate removed; no certificate is left for this hostname".to_string()
        });
        Json(detail)
    })
}
