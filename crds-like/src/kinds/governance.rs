//! The `GovernancePolicy` kind: gates per pipeline mode and role, burn-in phases, budget caps, tool allowlist, freeze windows (DESIGN.md §3).

use serde::{Deserialize, Serialize};

use crate::load::Checker;

/// `spec` of a `GovernancePolicy` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GovernancePolicySpec {}

/// Rules beyond types on one `GovernancePolicy` spec.
pub(crate) fn rules(_c: &mut Checker<'_>, _spec: &GovernancePolicySpec) {}
