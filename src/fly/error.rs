//! Errors of Fly calls, sorted by whose move it is (STYLE.md "Errors").

use std::time::Duration;

/// Whose move it is after a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlyErrorKind {
    /// 401/403: the token is missing, wrong or lacks access. The user fixes it.
    Unauthorized,
    /// 404.
    NotFound,
    /// 409: a lease is held by someone else, or a concurrent update.
    Conflict,
    /// 412: the machine is not in a state that allows the call (e.g. still replacing).
    Precondition,
    /// Another 4xx, or a GraphQL error: Fly refused the request. Not retried.
    Rejected,
    /// Fly could not be reached, or answered 408/429/5xx after retries: observation is
    /// unknown, never unhealthy.
    Unavailable,
    /// Fly answered something we could not read.
    Protocol,
    /// Refused before sending: the client's agent role may not make this call
    /// ([`super::role`]). Never retried; a human changes the policy or the code.
    Denied,
}

/// A failed Fly call. Carries method, path (no host, no query), status, Fly's `error` text
/// and the `fly-request-id`; never the token.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{method} {path}: {}{message}{}", status.map(|s| format!("{s} ")).unwrap_or_default(), request_id.as_ref().map(|r| format!(" (fly-request-id {r})")).unwrap_or_default())]
pub struct FlyError {
    /// Whose move it is.
    pub kind: FlyErrorKind,
    /// HTTP method.
    pub method: String,
    /// Path, without host or query.
    pub path: String,
    /// HTTP status, if one came back.
    pub status: Option<u16>,
    /// Fly's `error` text, or the transport error.
    pub message: String,
    /// `fly-request-id` response header.
    pub request_id: Option<String>,
    /// `Retry-After` of a 429/503, when Fly sent one.
    pub retry_after: Option<Duration>,
}

impl FlyError {
    /// An error that did not come from an HTTP status (transport, decoding).
    pub(crate) fn local(kind: FlyErrorKind, method: &str, path: &str, message: String) -> Self {
        Self {
            kind,
            method: method.to_owned(),
            path: path.to_owned(),
            status: None,
            message,
            request_id: None,
            retry_after: None,
        }
    }

    /// True when the caller should treat the observation as unknown.
    pub fn is_unavailable(&self) -> bool {
        self.kind == FlyErrorKind::Unavailable
    }

    /// A conflict that clears by itself within seconds: another update in flight, the machine
    /// still replacing (case BUG-04 in `../shared/cases/README.md`). Retried with backoff.
    pub fn is_transient_conflict(&self) -> bool {
        matches!(
            self.kind,
            FlyErrorKind::Conflict | FlyErrorKind::Precondition
        ) && (self.message.contains("concurrent update")
            || self.message.contains("is replacing")
            || self.message.contains("still active")
            || self
                .message
                .contains("unable to start machine from current state"))
    }

    /// A lease held by someone else (`lease currently held by …`).
    pub fn is_lease_held(&self) -> bool {
        self.kind == FlyErrorKind::Conflict && self.message.contains("lease currently held by")
    }
}
