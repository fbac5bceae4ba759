//! What users write to describe a fault ([`FaultSpec`]) and the checks it must pass; the
//! kinds and their fields are tabled in the parent module's docs.

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::sim::clock::DurationStr;

/// What a fault does; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// A fraction of requests answered 5xx.
    ErrorRate,
    /// Added delay.
    Latency,
    /// Every request answered 429.
    Storm429,
    /// The connection closes without an answer.
    ApiDown,
    /// A lease held by someone else.
    LeaseHeldBy,
    /// A create that is performed but whose answer never arrives in time.
    CreateTimesOutButSucceeds,
    /// The machine list answers `[]`.
    ListEmptyOnce,
    /// Updates rejected as concurrent.
    ConcurrentUpdate,
    /// A machine created while the fault is installed answers 404 for a moment (case BUG-15 C:
    /// Fly's propagation delay right after a create).
    NotFoundAfterCreate,
}

impl FaultKind {
    /// The spelling in scenarios, the control API and the request counts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ErrorRate => "errorRate",
            Self::Latency => "latency",
            Self::Storm429 => "storm429",
            Self::ApiDown => "apiDown",
            Self::LeaseHeldBy => "leaseHeldBy",
            Self::CreateTimesOutButSucceeds => "createTimesOutButSucceeds",
            Self::ListEmptyOnce => "listEmptyOnce",
            Self::ConcurrentUpdate => "concurrentUpdate",
            Self::NotFoundAfterCreate => "notFoundAfterCreate",
        }
    }

    /// The only route a kind applies to, for kinds tied to one Fly call.
    pub(super) fn fixed_route(self) -> Option<&'static str> {
        match self {
            Self::CreateTimesOutButSucceeds => Some("POST /v1/apps/{app}/machines"),
            Self::ListEmptyOnce => Some("GET /v1/apps/{app}/machines"),
            Self::ConcurrentUpdate => Some("POST /v1/apps/{app}/machines/{id}"),
            _ => None,
        }
    }

    pub(super) fn default_times(self) -> Option<u64> {
        match self {
            Self::CreateTimesOutButSucceeds | Self::ListEmptyOnce | Self::ConcurrentUpdate => {
                Some(1)
            }
            _ => None,
        }
    }

    /// Fields (camelCase) this kind accepts besides `kind`, `after` and `for`.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Self::ErrorRate => &[
                "route", "machine", "times", "rate", "status", "message", "seed",
            ],
            Self::Latency => &["route", "machine", "times", "delay"],
            Self::Storm429 | Self::ApiDown => &["route", "machine", "times"],
            Self::LeaseHeldBy => &["machine", "owner"],
            Self::CreateTimesOutButSucceeds => &["times", "delay", "drop"],
            Self::ListEmptyOnce => &["times"],
            Self::ConcurrentUpdate => &["machine", "times", "status"],
            Self::NotFoundAfterCreate => &["route", "times", "propagation"],
        }
    }
}

/// One fault as written in a scenario or posted to `/__sim/faults`. See the module docs for
/// which fields each kind takes; [`FaultSpec::problems`] checks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultSpec {
    /// What the fault does.
    pub kind: Spanned<FaultKind>,
    /// Only requests to this route: `"METHOD /route/{template}"` (as in the request counts)
    /// or just the template (any method). Default: every Fly API route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Only requests about this machine id. Default: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// Start of the window, virtual time after installation (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<DurationStr>,
    /// Length of the window, virtual time (default: until removed; `leaseHeldBy`: 1h).
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub lasts: Option<DurationStr>,
    /// Fire at most this many times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// `errorRate`: fraction of matching requests that fail, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// `errorRate`: 500–599 (default 503); `concurrentUpdate`: 409 or 412 (default 409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `errorRate`: the `error` text (default: the status's reason, lower case).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `errorRate`: the generator's seed (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// `latency`: added delay; `createTimesOutButSucceeds`: how long the answer is held
    /// (default 60s). Real time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<DurationStr>,
    /// `createTimesOutButSucceeds`: close the connection instead of holding the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<bool>,
    /// `leaseHeldBy`: the lease holder, e.g. `other-actor@tokens.fly.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// `notFoundAfterCreate`: how long after its create a new machine answers 404 (virtual
    /// time, default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<DurationStr>,
}

impl FaultSpec {
    /// A spec of `kind` with nothing else set.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            kind: Spanned::new(
                kind,
                serde_saphyr::Location::UNKNOWN,
                serde_saphyr::Location::UNKNOWN,
            ),
            route: None,
            machine: None,
            after: None,
            lasts: None,
            times: None,
            rate: None,
            status: None,
            message: None,
            seed: None,
            delay: None,
            drop: None,
            owner: None,
            propagation: None,
        }
    }

    /// The kind.
    pub fn kind(&self) -> FaultKind {
        self.kind.value
    }

    /// Every problem with this spec (fields its kind does not take, missing or out-of-range
    /// values), each naming the field.
    pub fn problems(&self) -> Vec<String> {
        let kind = self.kind();
        let name = kind.as_str();
        let mut out = Vec::new();
        let given = [
            ("route", self.route.is_some()),
            ("machine", self.machine.is_some()),
            ("times", self.times.is_some()),
            ("rate", self.rate.is_some()),
            ("status", self.status.is_some()),
            ("message", self.message.is_some()),
            ("seed", self.seed.is_some()),
            ("delay", self.delay.is_some()),
            ("drop", self.drop.is_some()),
            ("owner", self.owner.is_some()),
            ("propagation", self.propagation.is_some()),
        ];
        for (field, set) in given {
            if set && !kind.fields().contains(&field) {
                out.push(format!(
                    "fault {name} does not take `{field}`; it takes: {}",
                    kind.fields().join(", ")
                ));
            }
        }
        let mut need = |field: &str, ok: bool| {
            if !ok {
                out.push(format!("fault {name} needs `{field}`"));
            }
        };
        match kind {
            FaultKind::ErrorRate => need("rate", self.rate.is_some()),
            FaultKind::Latency => need("delay", self.delay.is_some()),
            FaultKind::LeaseHeldBy => {
                need("machine", self.machine.is_some());
                need(
                    "owner",
                    self.owner.as_deref().is_some_and(|o| !o.is_empty()),
                );
            }
            _ => {}
        }
        if let Some(rate) = self.rate
            && !(0.0..=1.0).contains(&rate)
        {
            out.push(format!(
                "fault {name}: `rate` must be between 0 and 1, got {rate}"
            ));
        }
        if let Some(status) = self.status {
            let ok = match kind {
                FaultKind::ConcurrentUpdate => matches!(status, 409 | 412),
                _ => (500..=599).contains(&status),
            };
            if !ok {
                let want = match kind {
                    FaultKind::ConcurrentUpdate => "409 or 412",
                    _ => "500–599",
                };
                out.push(format!(
                    "fault {name}: `status` must be {want}, got {status}"
                ));
            }
        }
        if self.times == Some(0) {
            out.push(format!("fault {name}: `times` must be at least 1"));
        }
        if let Some(route) = &self.route {
            let path = route.split_once(' ').map_or(route.as_str(), |(_, p)| p);
            if !path.starts_with('/') {
                out.push(format!(
                    "fault {name}: `route` must be a route template such as \
                     \"POST /v1/apps/{{app}}/machines/{{id}}\", got {route:?}"
                ));
            }
        }
        out
    }
}
