//! The `AlertRoute` kind: where notifications and escalations go: webhook, Slack, PagerDuty Events v2, engineering beads (DESIGN.md §3).

use serde::{Deserialize, Serialize};

use crate::load::Checker;

/// `spec` of a `AlertRoute` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AlertRouteSpec {}

/// Rules beyond types on one `AlertRoute` spec.
pub(crate) fn rules(_c: &mut Checker<'_>, _spec: &AlertRouteSpec) {}
