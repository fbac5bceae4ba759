//! The agent role a [`FlyClient`](super::FlyClient) acts as, enforced on every call (ADR §3–4;
//! DESIGN.md §5): each Fly call maps to the [`Operation`]s that may make it, and a call whose
//! operations the role's allowlist does not include is refused *before* any request leaves —
//! a typed [`FlyErrorKind::Denied`] error, and a report to the client's denial hook (the
//! runtime writes it down as an escalation record). Never a silent skip. A controller bug
//! cannot get around it, because the check sits where the request is built.
//!
//! The mapping reads the call itself (method, path, GraphQL operation), not what the calling
//! code claims it is doing: machine writes (update, create, destroy, start, stop, cordon,
//! leases) are `deploy` or `rollback` work done inside a strategy; `/exec` and unknown writes
//! are raw machine commands; secrets, app creation and app deletion have their own (always
//! denied) operations.

use std::sync::Arc;

use opsctl_controllers::governance::Role;
use opsctl_crds::kinds::governance::{Operation, RolesSpec};
use reqwest::Method;

use crate::fly::error::{FlyError, FlyErrorKind};

/// A refused call, as reported to the denial hook. Holds no token, body or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedCall {
    /// Role the client acts as.
    pub role: Role,
    /// The operation the call needs (the first of those that could make it).
    pub operation: Operation,
    /// HTTP method.
    pub method: String,
    /// Path without host or query (`/graphql` for GraphQL).
    pub path: String,
}

/// Called for every refused call, synchronously, before the error is returned.
pub type DenialHook = Arc<dyn Fn(&DeniedCall) + Send + Sync>;

/// The role and allowlists a client enforces.
#[derive(Clone)]
pub struct RoleGuard {
    role: Role,
    roles: RolesSpec,
    hook: Option<DenialHook>,
}

impl std::fmt::Debug for RoleGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleGuard")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Default for RoleGuard {
    /// `deployer` with the ADR's allowlists.
    fn default() -> Self {
        Self::new(Role::Deployer, RolesSpec::default())
    }
}

impl RoleGuard {
    /// Act as `role` under the allowlists `roles` (a policy's `spec.roles`).
    pub fn new(role: Role, roles: RolesSpec) -> Self {
        Self {
            role,
            roles,
            hook: None,
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Report refused calls to `hook`.
    pub fn with_hook(mut self, hook: DenialHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Refuse a call the role may not make.
    ///
    /// # Errors
    /// [`FlyErrorKind::Denied`] naming the role and operation; the hook has been called.
    pub(crate) fn check(
        &self,
        method: &Method,
        path: &str,
        needs: &[Operation],
    ) -> Result<(), FlyError> {
        if needs.iter().any(|op| self.role.allows(&self.roles, *op)) {
            return Ok(());
        }
        let operation = needs.first().copied().unwrap_or(Operation::MachineRaw);
        let denied = DeniedCall {
            role: self.role,
            operation,
            method: method.to_string(),
            path: path.to_owned(),
        };
        tracing::error!(role = self.role.as_str(), operation = operation.as_str(), method = %method, path, "Fly call refused: outside the role's allowlist");
        if let Some(hook) = &self.hook {
            hook(&denied);
        }
        Err(FlyError::local(
            FlyErrorKind::Denied,
            method.as_str(),
            path,
            format!(
                "refused before sending: the {} role may not use `{}` (governance allowlist, ADR §4)",
                self.role.as_str(),
                operation.as_str()
            ),
        ))
    }
}

/// The operations that may make a Machines REST call (any one suffices).
pub(crate) fn rest_needs(method: &Method, path: &str) -> &'static [Operation] {
    use Operation::*;
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    // ["v1", "apps", app, rest...]
    let rest: &[&str] = segs.get(3..).unwrap_or(&[]);
    let read = *method == Method::GET || *method == Method::HEAD;
    if rest.contains(&"secrets") {
        return if *method == Method::DELETE {
            &[SecretsUnset]
        } else if read {
            &[Status]
        } else {
            &[SecretsSet]
        };
    }
    if segs.len() <= 3 {
        return match *method {
            Method::GET | Method::HEAD => &[Status],
            Method::DELETE => &[AppsDestroy],
            _ => &[AppsCreate],
        };
    }
    match (rest.first().copied(), read) {
        (Some("certificates"), true) => &[Certs],
        (Some("volumes"), true) => &[VolumesList],
        (Some("machines"), true) => &[Status],
        (Some("machines"), false) => {
            let last = rest.last().copied().unwrap_or_default();
            match last {
                "exec" => &[MachineRaw],
                "restart" => &[MachineRestart, Deploy, Rollback],
                _ => &[Deploy, Rollback],
            }
        }
        (_, true) => &[Status],
        (_, false) => &[MachineRaw],
    }
}

/// The operations that may make a GraphQL call, from the operation its query names.
pub(crate) fn graphql_needs(query: &str) -> &'static [Operation] {
    use Operation::*;
    let q = query.trim_start();
    let mutation = q.starts_with("mutation");
    if q.contains("unsetSecrets") {
        &[SecretsUnset]
    } else if q.contains("setSecrets") {
        &[SecretsSet]
    } else if q.contains("deleteApp") {
        &[AppsDestroy]
    } else if q.contains("createApp") {
        &[AppsCreate]
    } else if mutation && (q.contains("createRelease") || q.contains("updateRelease")) {
        &[Deploy, Rollback]
    } else if mutation {
        &[MachineRaw]
    } else if q.contains("releases") || q.contains("Release") {
        &[Releases]
    } else {
        &[Status]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_map_to_operations() {
        use Operation::*;
        let rows: &[(Method, &str, &[Operation])] = &[
            (Method::GET, "/v1/apps/a/machines", &[Status]),
            (Method::GET, "/v1/apps/a/machines/m/wait", &[Status]),
            (Method::POST, "/v1/apps/a/machines/m", &[Deploy, Rollback]),
            (
                Method::POST,
                "/v1/apps/a/machines/m/lease",
                &[Deploy, Rollback],
            ),
            (Method::DELETE, "/v1/apps/a/machines/m", &[Deploy, Rollback]),
            (Method::POST, "/v1/apps/a/machines/m/exec", &[MachineRaw]),
            (Method::POST, "/v1/apps/a/secrets", &[SecretsSet]),
            (Method::DELETE, "/v1/apps/a/secrets/K", &[SecretsUnset]),
            (Method::POST, "/v1/apps", &[AppsCreate]),
            (Method::DELETE, "/v1/apps/a", &[AppsDestroy]),
            (Method::GET, "/v1/apps/a/certificates", &[Certs]),
            (Method::GET, "/v1/apps/a/volumes", &[VolumesList]),
        ];
        for (m, p, want) in rows {
            assert_eq!(rest_needs(m, p), *want, "{m} {p}");
        }
        assert_eq!(
            graphql_needs("mutation($i: X!) { createRelease(input: $i) { release { id } } }"),
            &[Deploy, Rollback]
        );
        assert_eq!(
            graphql_needs(
                "query { app(name: \"a\") { releases: releasesUnprocessed(first: 5) { nodes { id } } } }"
            ),
            &[Releases]
        );
        assert_eq!(
            graphql_needs("mutation { setSecrets(input: {}) { app { id } } }"),
            &[SecretsSet]
        );
    }

    #[test]
    fn the_monitor_may_read_but_not_write_and_nobody_sets_secrets() {
        let monitor = RoleGuard::new(Role::Monitor, RolesSpec::default());
        assert!(
            monitor
                .check(
                    &Method::GET,
                    "/v1/apps/a/machines",
                    rest_needs(&Method::GET, "/v1/apps/a/machines")
                )
                .is_ok()
        );
        let e = monitor
            .check(
                &Method::POST,
                "/v1/apps/a/machines/m",
                rest_needs(&Method::POST, "/v1/apps/a/machines/m"),
            )
            .unwrap_err();
        assert_eq!(e.kind, FlyErrorKind::Denied);
        assert!(
            e.message.contains("the monitor role may not use `deploy`"),
            "{e}"
        );
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let deployer =
            RoleGuard::default().with_hook(Arc::new(move |d| sink.lock().unwrap().push(d.clone())));
        let e = deployer
            .check(
                &Method::POST,
                "/v1/apps/a/secrets",
                rest_needs(&Method::POST, "/v1/apps/a/secrets"),
            )
            .unwrap_err();
        assert_eq!(e.kind, FlyErrorKind::Denied);
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].operation, Operation::SecretsSet);
        assert_eq!(seen[0].role, Role::Deployer);
    }

    /// The check sits before the transport: a refused call never reaches Fly (here the
    /// simulator, which counts every request it receives), while an allowed one does.
    #[tokio::test]
    async fn a_denied_call_never_reaches_the_simulator() {
        use crate::fly::{Endpoints, FlyClient};
        use crate::secret::Secret;
        use crate::sim;
        let handle = sim::serve(
            sim::scenario::Scenario::lowendinsight_default(),
            ([127, 0, 0, 1], 0).into(),
        )
        .await
        .unwrap();
        let client =
            FlyClient::new(Endpoints::origin(&handle.base_url()), Secret::new("t")).unwrap();
        let machines = client.list_machines("lowendinsight").await.unwrap();
        let before = handle.state().request_counts().total;
        let denials = Arc::new(std::sync::Mutex::new(0));
        let count = denials.clone();
        let monitor = client.with_role(
            RoleGuard::new(Role::Monitor, RolesSpec::default())
                .with_hook(Arc::new(move |_| *count.lock().unwrap() += 1)),
        );
        let request = crate::fly::wire::MachineRequest {
            config: machines[0].config.clone().unwrap_or_default(),
            ..Default::default()
        };
        let e = monitor
            .update_machine("lowendinsight", &machines[0].id, &request, None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, FlyErrorKind::Denied);
        let e = monitor
            .create_release("lowendinsight", "img", "deploy")
            .await
            .unwrap_err();
        assert_eq!(e.kind, FlyErrorKind::Denied);
        assert_eq!(*denials.lock().unwrap(), 2);
        assert_eq!(
            handle.state().request_counts().total,
            before,
            "no request was sent"
        );
        monitor.list_machines("lowendinsight").await.unwrap();
        assert_eq!(
            handle.state().request_counts().total,
            before + 1,
            "reads go through"
        );
    }
}
