//! The image registry: enough of the OCI distribution API for opsctl's check before a
//! rollback (`HEAD /v2/<name>/manifests/<reference>`), and a way to prune images from it, as
//! Fly prunes old images from `registry.fly.io`.
//!
//! The simulator knows an image when the scenario's `images` lists it, a release ran it, or a
//! machine's config names it; it serves every registry host at once (the host is not part of
//! the path). A known, unpruned image answers 200 with `Docker-Content-Digest` (the same fake
//! digest the machines' `image_ref` reports) and the OCI manifest media type; a pruned or
//! unknown one 404 with distribution's `MANIFEST_UNKNOWN` error body. Requests need
//! `Authorization: Basic …` (what `registry.fly.io` takes: user `x`, the Fly token as
//! password) or `Bearer …`; without, 401 with a `WWW-Authenticate: Basic` challenge.
//!
//! Control (not Fly, not counted): `GET /__sim/registry` ([`RegistryDump`]) and
//! `POST /__sim/registry` ([`RegistryChange`]: prune or restore images, make the registry
//! answer 503). A scenario prunes at start with `prunedImages: [...]`. Registry requests are
//! counted as `"HEAD /v2/{name}/manifests/{reference}"` (or `GET`).

use std::collections::BTreeSet;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::error::{SimError, parse_required};
use super::ids::image_ref;
use super::state::SimState;
use super::world::World;

/// OCI image manifest media type, sent as `Content-Type` of a found manifest.
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What the registry holds beyond the world's images.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryBook {
    /// Full image references pruned from the registry.
    pub pruned: BTreeSet<String>,
    /// The registry answers 503 to everything (down).
    pub unavailable: bool,
}

/// `GET /__sim/registry`: every image the registry knows and whether it is pruned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryDump {
    /// Known images that can be pulled.
    pub images: Vec<String>,
    /// Pruned images.
    pub pruned: Vec<String>,
    /// Answering 503.
    pub unavailable: bool,
}

/// Body of `POST /__sim/registry`: images to prune, images to put back, and whether the
/// registry is down. Every field is optional; the answer is the new [`RegistryDump`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryChange {
    /// Full image references to prune.
    pub prune: Vec<String>,
    /// Full image references to restore.
    pub restore: Vec<String>,
    /// `true`: answer 503 from now on; `false`: answer again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<bool>,
}

impl World {
    /// Every image the simulated registry knows: listed behaviours, release images and
    /// machine images, pruned ones included.
    pub fn registry_images(&self) -> BTreeSet<String> {
        let mut all: BTreeSet<String> = self.behaviors.images.keys().cloned().collect();
        for app in self.apps.values() {
            all.extend(app.releases.iter().map(|r| r.image.clone()));
            all.extend(app.machines.values().map(|m| m.config.image.clone()));
        }
        all
    }

    /// The known, unpruned image that `name` and `reference` (tag or digest) name, if any.
    fn registry_lookup(&self, name: &str, reference: &str) -> Option<String> {
        self.registry_images().into_iter().find(|image| {
            if self.registry.pruned.contains(image) {
                return false;
            }
            let r = image_ref(image);
            let same_name = r.repository == name || format!("library/{}", r.repository) == name;
            same_name && (r.tag == reference || r.digest == reference)
        })
    }

    fn registry_dump(&self) -> RegistryDump {
        let all = self.registry_images();
        RegistryDump {
            images: all
                .iter()
                .filter(|i| !self.registry.pruned.contains(*i))
                .cloned()
                .collect(),
            pruned: self.registry.pruned.iter().cloned().collect(),
            unavailable: self.registry.unavailable,
        }
    }
}

impl SimState {
    /// Applies a [`RegistryChange`] (prune, restore, down/up) and returns the new state.
    pub fn change_registry(&self, change: RegistryChange) -> RegistryDump {
        self.with_world(|w, _| {
            w.registry.pruned.extend(change.prune);
            for image in &change.restore {
                w.registry.pruned.remove(image);
            }
            if let Some(down) = change.unavailable {
                w.registry.unavailable = down;
            }
            w.registry_dump()
        })
    }

    /// The registry's images and state.
    pub fn registry(&self) -> RegistryDump {
        self.with_world(|w, _| w.registry_dump())
    }
}

/// The registry routes and their control routes.
pub fn routes() -> Router<SimState> {
    Router::new()
        .route("/v2/", get(version_check))
        .route("/v2/{*rest}", get(manifest))
        .route("/__sim/registry", get(dump).post(change))
}

async fn dump(State(s): State<SimState>) -> Json<RegistryDump> {
    Json(s.registry())
}

async fn change(State(s): State<SimState>, body: Bytes) -> Result<Json<RegistryDump>, SimError> {
    let change: RegistryChange = parse_required(&body)?;
    Ok(Json(s.change_registry(change)))
}

fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"code": code, "message": message}]});
    (status, Json(body)).into_response()
}

fn authorized(req: &Request) -> bool {
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, cred)| {
            (scheme.eq_ignore_ascii_case("basic") || scheme.eq_ignore_ascii_case("bearer"))
                && !cred.trim().is_empty()
        })
}

fn unauthorized() -> Response {
    let mut resp = errors(
        StatusCode::UNAUTHORIZED,
        "UNAUTHORIZED",
        "authentication required",
    );
    resp.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"registry.fly.io\""),
    );
    resp
}

async fn version_check(State(s): State<SimState>, req: Request) -> Response {
    s.count_request(format!("{} /v2/", req.method()));
    if !authorized(&req) {
        return unauthorized();
    }
    Json(serde_json::json!({})).into_response()
}

async fn manifest(State(s): State<SimState>, Path(rest): Path<String>, req: Request) -> Response {
    let Some((name, reference)) = rest.rsplit_once("/manifests/") else {
        s.count_request("unmatched".to_string());
        return errors(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "not found");
    };
    let method = if req.method() == Method::HEAD {
        "HEAD"
    } else {
        "GET"
    };
    s.count_request(format!("{method} /v2/{{name}}/manifests/{{reference}}"));
    if !authorized(&req) {
        return unauthorized();
    }
    let (down, found) =
        s.with_world(|w, _| (w.registry.unavailable, w.registry_lookup(name, reference)));
    if down {
        return errors(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "registry unavailable (simulated)",
        );
    }
    let Some(image) = found else {
        return errors(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            "manifest unknown",
        );
    };
    let digest = image_ref(&image).digest;
    let mut resp = Json(serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
    }))
    .into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OCI_MANIFEST));
    if let Ok(v) = HeaderValue::from_str(&digest) {
        resp.headers_mut().insert("docker-content-digest", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::sim::{Scenario, router};

    const OLD: &str = "registry.fly.io/lowendinsight:deployment-OLD";

    async fn head(state: &SimState, path: &str, auth: Option<&str>) -> Response {
        let mut req = Request::builder().method("HEAD").uri(path);
        if let Some(a) = auth {
            req = req.header(AUTHORIZATION, a);
        }
        router(state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn known_images_are_served_until_pruned() {
        let state = SimState::new(Scenario::lowendinsight_default());
        let path = "/v2/lowendinsight/manifests/deployment-OLD";
        let ok = head(&state, path, Some("Basic eDp0b2s=")).await;
        assert_eq!(ok.status(), StatusCode::OK);
        let digest = ok.headers()["docker-content-digest"].to_str().unwrap();
        assert_eq!(digest, image_ref(OLD).digest);
        let by_digest = head(
            &state,
            &format!("/v2/lowendinsight/manifests/{digest}"),
            Some("Basic eDp0b2s="),
        )
        .await;
        assert_eq!(by_digest.status(), StatusCode::OK);

        let unknown = head(
            &state,
            "/v2/lowendinsight/manifests/deployment-NEVER",
            Some("Basic eDp0b2s="),
        )
        .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

        let dump = state.change_registry(RegistryChange {
            prune: vec![OLD.into()],
            ..Default::default()
        });
        assert_eq!(dump.pruned, vec![OLD.to_string()]);
        assert!(!dump.images.contains(&OLD.to_string()));
        let gone = head(&state, path, Some("Basic eDp0b2s=")).await;
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);

        state.change_registry(RegistryChange {
            unavailable: Some(true),
            restore: vec![OLD.into()],
            ..Default::default()
        });
        let down = head(&state, path, Some("Basic eDp0b2s=")).await;
        assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            state
                .request_counts()
                .get("HEAD /v2/{name}/manifests/{reference}"),
            5
        );
    }

    #[tokio::test]
    async fn credentials_are_required() {
        let state = SimState::new(Scenario::lowendinsight_default());
        let resp = head(&state, "/v2/lowendinsight/manifests/deployment-OLD", None).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(
            resp.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
    }

    #[test]
    fn a_scenario_can_prune_at_start() {
        let s = Scenario::from_yaml(&format!(
            "images: {{'{OLD}': healthy}}\nprunedImages: ['{OLD}']\n"
        ))
        .unwrap();
        let state = SimState::new(s);
        assert_eq!(state.registry().pruned, vec![OLD.to_string()]);
        assert!(state.registry().images.is_empty());
    }
}
