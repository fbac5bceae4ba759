//! The simulator's error answers, in Fly's shapes.
//!
//! Machines and releases REST errors are `{"error": "...", "status"?: "..."}` (wire
//! `ErrorResponse`, NOTES.md §2.8) with the HTTP status Fly uses. GraphQL errors are not here:
//! they travel inside a 200 response (see [`super::releases`]). Errors are answers to the
//! caller, not faults of the simulator, so nothing here logs.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::fly::wire::ErrorResponse;

/// An error the simulator answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// 401: no `Authorization: Bearer|FlyV1 <token>`.
    #[error("Authenticate: token validation error")]
    Unauthorized,
    /// 404: unknown app.
    #[error("app not found")]
    AppNotFound,
    /// 404: unknown machine.
    #[error("machine not found")]
    MachineNotFound,
    /// 404: no active lease on the machine.
    #[error("lease not found")]
    LeaseNotFound,
    /// 404: the machine has no such metadata key.
    #[error("metadata key not found")]
    MetadataNotFound,
    /// 404: unknown release id.
    #[error("release not found")]
    ReleaseNotFound,
    /// 404: the app has no complete release.
    #[error("no current release")]
    NoCurrentRelease,
    /// 409: someone else holds the machine's lease (text as Fly sends it, NOTES.md §2.7).
    #[error("aborted: machine ID {id} lease currently held by {owner}, expires at {expires_at}")]
    LeaseHeld {
        /// Machine id.
        id: String,
        /// Lease holder.
        owner: String,
        /// RFC 3339 expiry.
        expires_at: String,
    },
    /// 404: some other resource (a certificate, …) does not exist; the text says which.
    #[error("{0}")]
    NotFound(String),
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 422: the request is well-formed but refused (a taken hostname, a missing PEM).
    #[error("{0}")]
    Unprocessable(String),
    /// 412: the machine is in the wrong state for this call.
    #[error("{0}")]
    Precondition(String),
    /// 408: `wait` ran out of time.
    #[error(
        "deadline exceeded: machine did not reach state {states} within {timeout_s}s; machine failed to reach desired state"
    )]
    WaitTimeout {
        /// The awaited states, comma-separated.
        states: String,
        /// The timeout used, seconds.
        timeout_s: u64,
    },
}

impl SimError {
    /// The HTTP status Fly answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::AppNotFound
            | Self::MachineNotFound
            | Self::LeaseNotFound
            | Self::MetadataNotFound
            | Self::ReleaseNotFound
            | Self::NoCurrentRelease
            | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::LeaseHeld { .. } => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Precondition(_) => StatusCode::PRECONDITION_FAILED,
            Self::WaitTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

impl IntoResponse for SimError {
    fn into_response(self) -> Response {
        let body = ErrorResponse {
            error: self.to_string(),
            status: None,
            message: None,
        };
        (self.status(), Json(body)).into_response()
    }
}

/// Parses a JSON body into `T`; an empty body reads as `T::default()`. Content-Type is not
/// required (fly-go omits it on some calls).
///
/// # Errors
/// [`SimError::BadRequest`] naming what could not be parsed.
pub fn parse_body<T>(body: &[u8]) -> Result<T, SimError>
where
    T: serde::de::DeserializeOwned + Default,
{
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| SimError::BadRequest(format!("json: {e}")))
}

/// Parses a JSON body into `T`; the body is required.
///
/// # Errors
/// [`SimError::BadRequest`] when it is empty or does not parse.
pub fn parse_required<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, SimError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(SimError::BadRequest(
            "json: request body is required".to_string(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| SimError::BadRequest(format!("json: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_conflict_text_matches_fly() {
        let e = SimError::LeaseHeld {
            id: "78419dec230468".into(),
            owner: "x@tokens.fly.io".into(),
            expires_at: "2026-08-14T09:57:35Z".into(),
        };
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert_eq!(
            e.to_string(),
            "aborted: machine ID 78419dec230468 lease currently held by x@tokens.fly.io, expires at 2026-08-14T09:57:35Z"
        );
    }

    #[test]
    fn bodies_parse_or_say_why() {
        let v: serde_json::Value = parse_body(b"").unwrap();
        assert!(v.is_null());
        assert!(matches!(
            parse_required::<serde_json::Value>(b" "),
            Err(SimError::BadRequest(_))
        ));
        let e = parse_body::<serde_json::Value>(b"{").unwrap_err();
        assert!(e.to_string().starts_with("json: "));
    }
}
