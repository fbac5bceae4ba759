//! The `HealthSLO` kind: an availability and latency objective over probe results, with burn-rate alerting (DESIGN.md §3).

use serde::{Deserialize, Serialize};

use crate::load::Checker;

/// `spec` of a `HealthSLO` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSloSpec {}

/// Rules beyond types on one `HealthSLO` spec.
pub(crate) fn rules(_c: &mut Checker<'_>, _spec: &HealthSloSpec) {}
