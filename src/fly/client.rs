//! The Fly API client: Machines REST (`/v1/apps/{app}/machines…`) and GraphQL releases
//! ([`super::releases`]). The same code talks to Fly and to the simulator; only the
//! [`Endpoints`] differ (DESIGN.md §4.1).
//!
//! It decides nothing. Sending, rate limiting and retries live in `super::transport`;
//! errors in [`super::error`]. The token never appears in an error, a log line or `Debug`.

use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::fly::error::{FlyError, FlyErrorKind};
use crate::fly::role::{self, RoleGuard};
use crate::fly::transport::{Call, RetryPolicy, Transport, enc};
use crate::fly::wire::{self, Lease, LeaseEnvelope, Machine, MachineRequest};
use crate::secret::Secret;

/// Where the Fly APIs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Machines REST base, without the `/v1` suffix (`https://api.machines.dev`).
    pub machines: String,
    /// GraphQL URL (`https://api.fly.io/graphql`).
    pub graphql: String,
}

impl Endpoints {
    /// Fly's production hosts (NOTES.md §1).
    pub fn fly() -> Self {
        Self {
            machines: "https://api.machines.dev".into(),
            graphql: "https://api.fly.io/graphql".into(),
        }
    }

    /// One origin serving all APIs (the simulator, or a proxy): `http://127.0.0.1:4280`.
    pub fn origin(url: &str) -> Self {
        let base = url.trim_end_matches('/');
        Self {
            machines: base.to_owned(),
            graphql: format!("{base}/graphql"),
        }
    }
}

/// Per-request timeout; `wait` calls add their own `timeout` to it.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A Fly API client. Cheap to clone; clones share rate limits.
#[derive(Clone)]
pub struct FlyClient {
    pub(crate) transport: Transport,
    pub(crate) endpoints: Endpoints,
    /// The agent role every call is checked against ([`super::role`]).
    pub(crate) guard: RoleGuard,
}

impl std::fmt::Debug for FlyClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlyClient")
            .field("endpoints", &self.endpoints)
            .field("token", self.transport.token())
            .field("role", &self.guard.role())
            .finish()
    }
}

/// Metadata key opsctl sets on machines it creates, so a create whose answer was lost can be
/// found instead of repeated.
pub const META_CREATE_ID: &str = "opsctl_create_id";

impl FlyClient {
    /// A client for `endpoints` authenticating with `token`.
    ///
    /// # Errors
    /// When the TLS backend cannot be initialised.
    pub fn new(endpoints: Endpoints, token: Secret) -> Result<Self, FlyError> {
        Ok(Self {
            transport: Transport::new(token)?,
            endpoints,
            guard: RoleGuard::default(),
        })
    }

    /// The same client (sharing rate limits) acting under `guard`: every call is checked
    /// against its role's allowlist before it is sent. A new client acts as `deployer` with
    /// the ADR's allowlists.
    pub fn with_role(&self, guard: RoleGuard) -> Self {
        Self {
            guard,
            ..self.clone()
        }
    }

    /// The role this client acts as.
    pub fn role(&self) -> &RoleGuard {
        &self.guard
    }

    /// The endpoints in use.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    fn machine_call<'a>(
        &self,
        method: Method,
        path: String,
        action: &'static str,
        machine: Option<&'a str>,
    ) -> Call<'a> {
        let retry = if method == Method::GET || method == Method::DELETE {
            RetryPolicy::Idempotent
        } else {
            RetryPolicy::NotPerformed
        };
        let scope = machine.map_or_else(|| app_of(&path).to_owned(), str::to_owned);
        Call {
            read: method == Method::GET,
            method,
            url: format!("{}{path}", self.endpoints.machines),
            path,
            action,
            scope,
            body: None,
            nonce: None,
            timeout: REQUEST_TIMEOUT,
            retry,
        }
    }

    async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, FlyError> {
        self.guard.check(
            &call.method,
            &call.path,
            role::rest_needs(&call.method, &call.path),
        )?;
        self.transport.send(&call).await
    }

    /// `GET /v1/apps/{app}/machines`: every machine of the app except destroyed ones.
    ///
    /// # Errors
    /// [`FlyError`]; `Unavailable` after retries when Fly cannot be reached.
    pub async fn list_machines(&self, app: &str) -> Result<Vec<Machine>, FlyError> {
        let path = format!("/v1/apps/{}/machines", enc(app));
        self.send(self.machine_call(Method::GET, path, "list", None))
            .await
    }

    /// `GET /v1/apps/{app}/machines/{id}`.
    ///
    /// # Errors
    /// [`FlyError`]; `NotFound` for an unknown machine.
    pub async fn get_machine(&self, app: &str, id: &str) -> Result<Machine, FlyError> {
        let path = format!("/v1/apps/{}/machines/{}", enc(app), enc(id));
        self.send(self.machine_call(Method::GET, path, "get", Some(id)))
            .await
    }

    /// `POST /v1/apps/{app}/machines/{id}`: replace the machine's whole config. Returns the
    /// machine with its new `instance_id`. Retried only when Fly certainly did not apply it
    /// (429; "concurrent update in progress").
    ///
    /// # Errors
    /// [`FlyError`]; `Conflict` when a lease is held by someone else.
    pub async fn update_machine(
        &self,
        app: &str,
        id: &str,
        request: &MachineRequest,
        nonce: Option<&str>,
    ) -> Result<Machine, FlyError> {
        let path = format!("/v1/apps/{}/machines/{}", enc(app), enc(id));
        let call = Call {
            body: Some(to_value(request)),
            nonce,
            ..self.machine_call(Method::POST, path, "update", Some(id))
        };
        self.send(call).await
    }

    /// `POST /v1/apps/{app}/machines`: create a machine, at most once.
    ///
    /// The config gets metadata [`META_CREATE_ID`] = `create_id`. If the answer is lost (5xx,
    /// timeout), the machine list is searched for that id before anything else happens, so
    /// a create is never repeated blindly (issue #3).
    ///
    /// # Errors
    /// [`FlyError`] when the create failed, or when it may have happened but cannot be found
    /// (then `Unavailable`).
    pub async fn create_machine(
        &self,
        app: &str,
        request: &MachineRequest,
        create_id: &str,
    ) -> Result<Machine, FlyError> {
        let mut request = request.clone();
        request
            .config
            .metadata
            .insert(META_CREATE_ID.into(), create_id.to_owned());
        let path = format!("/v1/apps/{}/machines", enc(app));
        let call = Call {
            body: Some(to_value(&request)),
            ..self.machine_call(Method::POST, path, "create", None)
        };
        match self.send::<Machine>(call).await {
            Ok(m) => Ok(m),
            Err(e) if e.kind == FlyErrorKind::Unavailable && e.status != Some(429) => {
                tracing::warn!(app, error = %e, "create answer lost; looking for the machine before retrying");
                let found = self.find_created(app, create_id).await?;
                match found {
                    Some(m) => Ok(m),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The machine created with `create_id`, if it exists.
    ///
    /// # Errors
    /// [`FlyError`] from the list call.
    pub async fn find_created(
        &self,
        app: &str,
        create_id: &str,
    ) -> Result<Option<Machine>, FlyError> {
        let machines = self.list_machines(app).await?;
        Ok(machines.into_iter().find(|m| {
            m.config
                .as_ref()
                .and_then(|c| c.metadata.get(META_CREATE_ID))
                .is_some_and(|v| v == create_id)
        }))
    }

    /// `DELETE /v1/apps/{app}/machines/{id}?force=true`. A machine already gone (404) counts
    /// as deleted, as in flyctl.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn destroy_machine(
        &self,
        app: &str,
        id: &str,
        nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let path = format!("/v1/apps/{}/machines/{}", enc(app), enc(id));
        let mut call = Call {
            nonce,
            ..self.machine_call(Method::DELETE, path, "destroy", Some(id))
        };
        call.url.push_str("?force=true");
        match self.send::<Value>(call).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind == FlyErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `POST …/{id}/{action}` for `start`, `stop`, `restart`, `cordon`, `uncordon`.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn machine_action(
        &self,
        app: &str,
        id: &str,
        action: MachineAction,
        nonce: Option<&str>,
    ) -> Result<(), FlyError> {
        let verb = action.as_str();
        let path = format!("/v1/apps/{}/machines/{}/{verb}", enc(app), enc(id));
        let body = matches!(action, MachineAction::Stop).then(|| json!({}));
        let call = Call {
            body,
            nonce,
            ..self.machine_call(Method::POST, path, verb, Some(id))
        };
        self.send::<Value>(call).await.map(|_| ())
    }

    /// `POST …/{id}/lease` with body `{"ttl": ttl_secs}`: acquire a lease, or refresh the
    /// one held when `nonce` is given (Fly returns the same nonce).
    ///
    /// # Errors
    /// [`FlyError`]; `Conflict` ([`FlyError::is_lease_held`]) when someone else holds it.
    pub async fn acquire_lease(
        &self,
        app: &str,
        id: &str,
        ttl_secs: u64,
        description: &str,
        nonce: Option<&str>,
    ) -> Result<Lease, FlyError> {
        let path = format!("/v1/apps/{}/machines/{}/lease", enc(app), enc(id));
        let call = Call {
            body: Some(json!({"ttl": ttl_secs, "description": description})),
            nonce,
            ..self.machine_call(Method::POST, path.clone(), "lease", Some(id))
        };
        let env: LeaseEnvelope = self.send(call).await?;
        env.data.ok_or_else(|| {
            FlyError::local(
                FlyErrorKind::Protocol,
                "POST",
                &path,
                format!("lease response without data (status {})", env.status),
            )
        })
    }

    /// `GET …/{id}/lease`: the lease held on a machine, if any.
    ///
    /// # Errors
    /// [`FlyError`] other than 404.
    pub async fn get_lease(&self, app: &str, id: &str) -> Result<Option<Lease>, FlyError> {
        let path = format!("/v1/apps/{}/machines/{}/lease", enc(app), enc(id));
        match self
            .send::<LeaseEnvelope>(self.machine_call(Method::GET, path, "lease_get", Some(id)))
            .await
        {
            Ok(env) => Ok(env.data),
            Err(e) if e.kind == FlyErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `DELETE …/{id}/lease` with the nonce: release a lease. Idempotent.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn release_lease(&self, app: &str, id: &str, nonce: &str) -> Result<(), FlyError> {
        let path = format!("/v1/apps/{}/machines/{}/lease", enc(app), enc(id));
        let call = Call {
            nonce: Some(nonce),
            ..self.machine_call(Method::DELETE, path, "lease", Some(id))
        };
        self.send::<Value>(call).await.map(|_| ())
    }

    /// `GET …/{id}/wait?state=S&timeout=T&instance_id=V`: block until the machine version
    /// reaches `state`. `timeout` is clamped to 1–60 s as Fly requires. `Ok(false)` on Fly's
    /// 408 (not there yet; call again).
    ///
    /// # Errors
    /// [`FlyError`] other than 408.
    pub async fn wait(
        &self,
        app: &str,
        id: &str,
        instance_id: &str,
        state: &str,
        timeout: Duration,
    ) -> Result<bool, FlyError> {
        let secs = timeout.as_secs().clamp(1, 60);
        let path = format!("/v1/apps/{}/machines/{}/wait", enc(app), enc(id));
        let mut call = self.machine_call(Method::GET, path, "wait", Some(id));
        call.url.push_str(&format!(
            "?state={}&timeout={secs}&instance_id={}",
            enc(state),
            enc(instance_id)
        ));
        call.timeout = REQUEST_TIMEOUT + Duration::from_secs(secs);
        match self.send::<Value>(call).await {
            Ok(_) => Ok(true),
            Err(e) if e.status == Some(408) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/apps/{app}`.
    ///
    /// # Errors
    /// [`FlyError`]; `NotFound` for an unknown app.
    pub async fn get_app(&self, app: &str) -> Result<wire::App, FlyError> {
        let path = format!("/v1/apps/{}", enc(app));
        self.send(self.machine_call(Method::GET, path, "app", None))
            .await
    }
}

/// Simple machine actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineAction {
    /// Start a stopped machine.
    Start,
    /// Stop it (Fly's default signal and timeout).
    Stop,
    /// Restart it.
    Restart,
    /// Take it out of Fly Proxy routing.
    Cordon,
    /// Put it back into routing.
    Uncordon,
}

impl MachineAction {
    /// The path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Restart => "restart",
            Self::Cordon => "cordon",
            Self::Uncordon => "uncordon",
        }
    }
}

pub(crate) fn to_value<T: Serialize>(v: &T) -> Value {
    // Serialising our own wire structs to JSON cannot fail: no non-string map keys, no I/O.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// The app segment of a Machines API path (`/v1/apps/{app}/…`), the rate-limit scope of calls
/// that are about no single machine; the whole path when it has none.
pub(crate) fn app_of(path: &str) -> &str {
    path.strip_prefix("/v1/apps/")
        .map(|rest| rest.split('/').next().unwrap_or(rest))
        .unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let c = FlyClient::new(Endpoints::fly(), Secret::new("fm2_secret_value")).unwrap();
        assert!(!format!("{c:?}").contains("secret_value"));
    }

    #[test]
    fn rate_limit_scope_is_the_app_for_app_wide_calls() {
        assert_eq!(app_of("/v1/apps/lei/machines"), "lei");
        assert_eq!(app_of("/v1/apps/lei/certificates/a.example"), "lei");
        assert_eq!(app_of("/v1/apps/lei"), "lei");
    }

    #[test]
    fn origin_serves_every_api() {
        let e = Endpoints::origin("http://127.0.0.1:4280/");
        assert_eq!(e.machines, "http://127.0.0.1:4280");
        assert_eq!(e.graphql, "http://127.0.0.1:4280/graphql");
    }
}
