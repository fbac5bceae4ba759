//! Fly releases through GraphQL (`releasesUnprocessed`, `createRelease`, `updateRelease`;
//! NOTES.md §3). GraphQL errors arrive with HTTP 200 in `errors[]` and are mapped onto
//! [`FlyErrorKind`] by their `extensions.code`.

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::fly::client::{FlyClient, REQUEST_TIMEOUT, to_value};
use crate::fly::error::{FlyError, FlyErrorKind};
use crate::fly::transport::{Call, RetryPolicy};
use crate::fly::wire::{GqlRelease, GraphqlRequest, GraphqlResponse};

impl FlyClient {
    async fn graphql(
        &self,
        query: &str,
        variables: Value,
        scope: &str,
        retry: RetryPolicy,
    ) -> Result<Value, FlyError> {
        let request = GraphqlRequest {
            query: query.to_owned(),
            variables: variables.as_object().cloned().unwrap_or_default(),
            operation_name: None,
        };
        self.guard.check(
            &Method::POST,
            "/graphql",
            crate::fly::role::graphql_needs(query),
        )?;
        let call = Call {
            method: Method::POST,
            url: self.endpoints.graphql.clone(),
            path: "/graphql".into(),
            action: "graphql",
            scope: scope.to_owned(),
            read: query.trim_start().starts_with("query"),
            body: Some(to_value(&request)),
            nonce: None,
            timeout: REQUEST_TIMEOUT,
            retry,
        };
        let resp: GraphqlResponse = self.transport.send(&call).await?;
        if let Some(first) = resp.errors.first() {
            let code = first
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let kind = match code {
                "UNAUTHORIZED" => FlyErrorKind::Unauthorized,
                "NOT_FOUND" => FlyErrorKind::NotFound,
                "SERVICE_UNAVAILABLE"
                | "MAINTENANCE"
                | "SERVER_ERROR"
                | "INTERNAL_SERVER_ERROR" => FlyErrorKind::Unavailable,
                _ => FlyErrorKind::Rejected,
            };
            return Err(FlyError {
                status: Some(200),
                ..FlyError::local(kind, "POST", "/graphql", first.message.clone())
            });
        }
        Ok(resp.data.unwrap_or(Value::Null))
    }

    /// Releases of `app`, newest first (GraphQL `releasesUnprocessed`, as `fly releases`
    /// asks for them; NOTES.md §3.2).
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn list_releases(&self, app: &str, limit: u32) -> Result<Vec<GqlRelease>, FlyError> {
        const QUERY: &str = "query($appName: String!, $limit: Int!) { app(name: $appName) { releases: releasesUnprocessed(first: $limit) { nodes { id version description reason status imageRef stable createdAt } } } }";
        let data = self
            .graphql(
                QUERY,
                json!({"appName": app, "limit": limit}),
                app,
                RetryPolicy::Idempotent,
            )
            .await?;
        let nodes = data
            .pointer("/app/releases/nodes")
            .cloned()
            .unwrap_or(Value::Array(vec![]));
        let mut releases: Vec<GqlRelease> = decode(nodes)?;
        releases.sort_by_key(|r| std::cmp::Reverse(r.version));
        Ok(releases)
    }

    /// Create a release (GraphQL `createRelease`); returns `(id, version)`.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn create_release(
        &self,
        app: &str,
        image: &str,
        strategy: &str,
    ) -> Result<(String, i64), FlyError> {
        const QUERY: &str = "mutation($input: CreateReleaseInput!) { createRelease(input: $input) { release { id version } } }";
        let input = json!({"input": {"appId": app, "image": image, "platformVersion": "machines", "strategy": strategy, "definition": {}}});
        let data = self
            .graphql(QUERY, input, app, RetryPolicy::NotPerformed)
            .await?;
        let release = data
            .pointer("/createRelease/release")
            .cloned()
            .unwrap_or(Value::Null);
        let id = release
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match release.get("version").and_then(Value::as_i64) {
            Some(v) if !id.is_empty() => Ok((id, v)),
            _ => Err(FlyError::local(
                FlyErrorKind::Protocol,
                "POST",
                "/graphql",
                "createRelease returned no release id/version".into(),
            )),
        }
    }

    /// Set a release's status (`running`, `complete`, `failed`, `interrupted`) with GraphQL
    /// `updateRelease`. Idempotent.
    ///
    /// # Errors
    /// [`FlyError`].
    pub async fn update_release(&self, release_id: &str, status: &str) -> Result<(), FlyError> {
        const QUERY: &str = "mutation($input: UpdateReleaseInput!) { updateRelease(input: $input) { release { id } } }";
        let vars = json!({"input": {"releaseId": release_id, "status": status}});
        self.graphql(QUERY, vars, release_id, RetryPolicy::Idempotent)
            .await
            .map(|_| ())
    }
}

fn decode<T: DeserializeOwned>(v: Value) -> Result<T, FlyError> {
    serde_json::from_value(v).map_err(|e| FlyError {
        status: Some(200),
        ..FlyError::local(
            FlyErrorKind::Protocol,
            "POST",
            "/graphql",
            format!("unexpected response: {e}"),
        )
    })
}
