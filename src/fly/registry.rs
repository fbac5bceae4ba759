//! Does an image still exist in its registry? Asked before every rollback, because Fly prunes
//! old images from `registry.fly.io` (NOTES.md §6.7: "images in registry.fly.io may be
//! pruned"), and a rollback onto a pruned image leaves the machines failing to pull it.
//!
//! One call of the OCI distribution API (distribution-spec v1.1, "Checking if content exists
//! in the registry"): `HEAD /v2/<name>/manifests/<reference>` with an `Accept` for the OCI
//! index and manifest and the Docker v2 manifest list and manifest media types. 200 means
//! present, 404 (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`) means gone; anything else is
//! [`ImagePresence::Unknown`]: a registry that cannot be asked says nothing about the image.
//!
//! Authentication: `registry.fly.io` takes the Fly API token as HTTP Basic auth with user `x`
//! (what `fly auth docker` writes into the Docker config; `docker login -u x` with the token).
//! When a registry answers 401 with a `Bearer` challenge (distribution's token auth), the
//! token is fetched from the challenge's `realm` (with the Basic credentials for
//! `registry.fly.io`, anonymously elsewhere) and the HEAD is sent again once. The Fly token is
//! sent to `registry.fly.io` (or to the simulator origin) only, never to another registry.
//!
//! Endpoints: against Fly's production API the registry is the image's own host over HTTPS
//! (Docker Hub for a reference without one). When the Fly client talks to another origin (the
//! simulator, `--fly URL`), that origin serves every registry too.
//!
//! This module decides nothing: the deploy executor turns the answer into "roll back" or
//! "escalate" (src/runtime/deploy/rollback.rs).

use std::time::Duration;

use opsctl_crds::image_ref::ImageRef;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, WWW_AUTHENTICATE};

use super::FlyClient;
use super::client::Endpoints;
use crate::secret::Secret;

/// Media types a manifest HEAD accepts: OCI image index and manifest, Docker v2 manifest list
/// and manifest (distribution-spec "Pulling manifests"; Docker's image-manifest-v2-2 doc).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Fly's registry host; the only one the Fly token is sent to.
pub const FLY_REGISTRY: &str = "registry.fly.io";

/// Basic-auth user name `registry.fly.io` expects with the Fly token as password.
const FLY_REGISTRY_USER: &str = "x";

/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the registry says about one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagePresence {
    /// The manifest exists (`digest`: the registry's `Docker-Content-Digest`, when sent).
    Present {
        /// `sha256:…`, when the registry sent one.
        digest: Option<String>,
    },
    /// The registry answered 404: the manifest (or the whole repository) is gone.
    Absent,
    /// The registry could not be asked (unreachable, timeout, 401/403, 429, 5xx, a reference
    /// that does not parse): nothing is known about the image.
    Unknown {
        /// Why, in words (status, error kind); never a credential.
        reason: String,
    },
}

impl std::fmt::Display for ImagePresence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Present { digest: Some(d) } => write!(f, "present ({d})"),
            Self::Present { digest: None } => f.write_str("present"),
            Self::Absent => f.write_str("absent from its registry (pruned?)"),
            Self::Unknown { reason } => write!(f, "unknown: {reason}"),
        }
    }
}

/// Where to ask about an image: base URL, repository name and reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestUrl {
    /// Registry host as in the reference (`registry.fly.io`, `registry-1.docker.io`).
    pub host: String,
    /// `<base>/v2/<name>/manifests/<reference>`.
    pub url: String,
    /// The repository name (`lowendinsight`, `library/nginx`).
    pub name: String,
}

/// A registry client: cheap to clone.
#[derive(Clone)]
pub struct RegistryClient {
    http: reqwest::Client,
    token: Secret,
    /// `None`: each image's own host over HTTPS; `Some(origin)`: every registry is there.
    origin: Option<String>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("origin", &self.origin)
            .field("token", &self.token)
            .finish()
    }
}

impl RegistryClient {
    /// A client using `fly`'s token: production registries when `fly` talks to Fly's own
    /// hosts, else `fly`'s origin for every registry (the simulator).
    pub fn for_fly(fly: &FlyClient) -> Self {
        let endpoints = fly.endpoints();
        let origin = (*endpoints != Endpoints::fly()).then(|| endpoints.machines.clone());
        Self::new(fly.transport.token().clone(), origin)
    }

    /// A client sending `token` to `registry.fly.io` (or to `origin`, which then serves every
    /// registry).
    pub fn new(token: Secret, origin: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("opsctl/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            http,
            token,
            origin: origin.map(|o| o.trim_end_matches('/').to_owned()),
        }
    }

    /// The manifest URL for `image` (a full reference as `spec.image` holds it). A reference
    /// without a host is Docker Hub's (`registry-1.docker.io`, `library/` for a one-part
    /// name); without tag or digest the reference is `latest`; a digest wins over a tag.
    ///
    /// # Errors
    /// The parse error, in words, when `image` is not a reference.
    pub fn manifest_url(&self, image: &str) -> Result<ManifestUrl, String> {
        let r = ImageRef::parse(image).map_err(|e| format!("`{image}` is not a reference: {e}"))?;
        let (host, name) = match r.host {
            None | Some("docker.io") | Some("index.docker.io") => {
                let name = if r.repository.contains('/') {
                    r.repository.to_owned()
                } else {
                    format!("library/{}", r.repository)
                };
                ("registry-1.docker.io".to_owned(), name)
            }
            Some(h) => (h.to_owned(), r.repository.to_owned()),
        };
        let reference = r.digest.or(r.tag).unwrap_or("latest");
        let base = match &self.origin {
            Some(origin) => origin.clone(),
            None => format!("https://{host}"),
        };
        Ok(ManifestUrl {
            url: format!("{base}/v2/{name}/manifests/{reference}"),
            host,
            name,
        })
    }

    /// Whether the Fly token may be sent for `host`: Fly's registry, or the origin that
    /// stands in for every registry.
    fn sends_token(&self, host: &str) -> bool {
        self.origin.is_some() || host == FLY_REGISTRY
    }

    /// Ask the registry whether `image` exists (`HEAD …/manifests/<reference>`). Never fails:
    /// what cannot be asked is [`ImagePresence::Unknown`].
    pub async fn presence(&self, image: &str) -> ImagePresence {
        let target = match self.manifest_url(image) {
            Ok(t) => t,
            Err(reason) => return ImagePresence::Unknown { reason },
        };
        let basic = self.sends_token(&target.host);
        let first = match self.head(&target.url, Auth::basic(basic)).await {
            Ok(r) => r,
            Err(reason) => return ImagePresence::Unknown { reason },
        };
        if first.status() != StatusCode::UNAUTHORIZED {
            return judge(&first);
        }
        let challenge = first
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(BearerChallenge::parse);
        let Some(challenge) = challenge else {
            return ImagePresence::Unknown {
                reason: format!("{} refused our credentials (401)", target.host),
            };
        };
        let bearer = match self.fetch_token(&challenge, &target, basic).await {
            Ok(t) => t,
            Err(reason) => return ImagePresence::Unknown { reason },
        };
        match self.head(&target.url, Auth::Bearer(&bearer)).await {
            Ok(r) => judge(&r),
            Err(reason) => ImagePresence::Unknown { reason },
        }
    }

    async fn head(&self, url: &str, auth: Auth<'_>) -> Result<reqwest::Response, String> {
        let mut req = self.http.head(url).header(ACCEPT, MANIFEST_ACCEPT);
        req = match auth {
            Auth::None => req,
            Auth::FlyBasic => req.basic_auth(FLY_REGISTRY_USER, Some(self.token.expose())),
            Auth::Bearer(t) => req.bearer_auth(t),
        };
        req.send().await.map_err(|e| describe(&e))
    }

    /// Distribution token auth: `GET realm?service=…&scope=repository:<name>:pull`.
    async fn fetch_token(
        &self,
        c: &BearerChallenge,
        target: &ManifestUrl,
        basic: bool,
    ) -> Result<String, String> {
        let scope = c
            .scope
            .clone()
            .unwrap_or_else(|| format!("repository:{}:pull", target.name));
        let mut query = vec![("scope", scope)];
        if let Some(service) = &c.service {
            query.push(("service", service.clone()));
        }
        let mut req = self.http.get(&c.realm).query(&query);
        if basic {
            req = req.basic_auth(FLY_REGISTRY_USER, Some(self.token.expose()));
        }
        let resp = req.send().await.map_err(|e| describe(&e))?;
        if !resp.status().is_success() {
            return Err(format!(
                "{} token endpoint answered {}",
                target.host,
                resp.status().as_u16()
            ));
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let answer: TokenAnswer = resp
            .json()
            .await
            .map_err(|_| format!("{} token endpoint sent no token", target.host))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| format!("{} token endpoint sent no token", target.host))
    }
}

enum Auth<'a> {
    None,
    FlyBasic,
    Bearer(&'a str),
}

impl Auth<'_> {
    fn basic(send: bool) -> Self {
        if send { Self::FlyBasic } else { Self::None }
    }
}

fn judge(resp: &reqwest::Response) -> ImagePresence {
    let status = resp.status();
    if status.is_success() {
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        return ImagePresence::Present { digest };
    }
    if status == StatusCode::NOT_FOUND {
        return ImagePresence::Absent;
    }
    ImagePresence::Unknown {
        reason: format!("registry answered {}", status.as_u16()),
    }
}

/// A transport error in words: kind only (no URL with credentials, no token).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let host = e.url().and_then(|u| u.host_str()).unwrap_or("the registry");
    format!("{host}: {kind}")
}

/// A `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenge (RFC 6750 §3, as
/// distribution's token auth sends it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// Token endpoint URL.
    pub realm: String,
    /// `service` parameter to pass on.
    pub service: Option<String>,
    /// `scope` parameter to pass on.
    pub scope: Option<String>,
}

impl BearerChallenge {
    /// Parse a `WWW-Authenticate` value; `None` unless it is a Bearer challenge with a realm.
    pub fn parse(header: &str) -> Option<Self> {
        let (scheme, params) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut realm = None;
        let mut service = None;
        let mut scope = None;
        let mut rest = params.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                match after.find(',') {
                    Some(i) => (&after[..i], &after[i..]),
                    None => (after, ""),
                }
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "realm" => realm = Some(value.to_owned()),
                "service" => service = Some(value.to_owned()),
                "scope" => scope = Some(value.to_owned()),
                _ => {}
            }
            rest = tail.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Self {
            realm: realm?,
            service,
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prod() -> RegistryClient {
        RegistryClient::new(Secret::new("tok"), None)
    }

    #[test]
    fn manifest_urls_follow_the_reference() {
        let c = prod();
        let u = c
            .manifest_url("registry.fly.io/lowendinsight:deployment-01KK")
            .unwrap();
        assert_eq!(
            u.url,
            "https://registry.fly.io/v2/lowendinsight/manifests/deployment-01KK"
        );
        assert_eq!(u.host, FLY_REGISTRY);
        let d = format!("ghcr.io/org/app:v1@sha256:{}", "a".repeat(64));
        assert_eq!(
            c.manifest_url(&d).unwrap().url,
            format!(
                "https://ghcr.io/v2/org/app/manifests/sha256:{}",
                "a".repeat(64)
            )
        );
        assert_eq!(
            c.manifest_url("nginx").unwrap().url,
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
        );
        assert!(c.manifest_url("Not A Ref").is_err());
        let sim = RegistryClient::new(Secret::new("tok"), Some("http://127.0.0.1:9/".into()));
        assert_eq!(
            sim.manifest_url("registry.fly.io/web:v2").unwrap().url,
            "http://127.0.0.1:9/v2/web/manifests/v2"
        );
    }

    #[test]
    fn the_fly_token_goes_to_fly_s_registry_only() {
        let c = prod();
        assert!(c.sends_token("registry.fly.io"));
        assert!(!c.sends_token("ghcr.io"));
        assert!(!c.sends_token("registry-1.docker.io"));
        let secret = RegistryClient::new(Secret::new("fm2_s3cr3t"), None);
        let shown = format!("{secret:?}");
        assert!(
            !shown.contains("s3cr3t") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn bearer_challenges_parse() {
        let c = BearerChallenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.docker.io/token");
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(c.scope.as_deref(), Some("repository:library/nginx:pull"));
        assert_eq!(BearerChallenge::parse(r#"Basic realm="fly""#), None);
        assert_eq!(BearerChallenge::parse(r#"Bearer service="x""#), None);
    }

    /// A registry that wants distribution token auth: 401 with a Bearer challenge, a token
    /// endpoint that checks the Basic credentials, then 200 / 404 with the token.
    #[tokio::test]
    async fn the_bearer_challenge_is_answered_once() {
        use axum::Router;
        use axum::http::{HeaderMap, StatusCode, header};
        use axum::response::IntoResponse;
        use axum::routing::get;

        async fn token(headers: HeaderMap) -> axum::response::Response {
            // `x:tok` in base64.
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                == Some("Basic eDp0b2s=")
            {
                axum::Json(serde_json::json!({"token": "bearer-1"})).into_response()
            } else {
                StatusCode::UNAUTHORIZED.into_response()
            }
        }
        async fn manifest(
            axum::extract::Path(rest): axum::extract::Path<String>,
            headers: HeaderMap,
        ) -> axum::response::Response {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok());
            if auth != Some("Bearer bearer-1") {
                let port = headers
                    .get(header::HOST)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                return (
                    StatusCode::UNAUTHORIZED,
                    [(
                        header::WWW_AUTHENTICATE,
                        format!(r#"Bearer realm="http://{port}/token",service="registry.fly.io""#),
                    )],
                )
                    .into_response();
            }
            if rest.ends_with("/manifests/v1") {
                (StatusCode::OK, [("docker-content-digest", "sha256:abc")]).into_response()
            } else {
                StatusCode::NOT_FOUND.into_response()
            }
        }
        let app = Router::new()
            .route("/token", get(token))
            .route("/v2/{*rest}", get(manifest));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = RegistryClient::new(Secret::new("tok"), Some(format!("http://{addr}")));
        assert_eq!(
            c.presence("registry.fly.io/web:v1").await,
            ImagePresence::Present {
                digest: Some("sha256:abc".into())
            }
        );
        assert_eq!(
            c.presence("registry.fly.io/web:v0").await,
            ImagePresence::Absent
        );
        let wrong = RegistryClient::new(Secret::new("other"), Some(format!("http://{addr}")));
        assert!(matches!(
            wrong.presence("registry.fly.io/web:v1").await,
            ImagePresence::Unknown { .. }
        ));
        let down = RegistryClient::new(Secret::new("tok"), Some("http://127.0.0.1:9".into()));
        assert!(matches!(
            down.presence("registry.fly.io/web:v1").await,
            ImagePresence::Unknown { .. }
        ));
    }
}
