//! The `Runbook` kind: incident responses: signal pattern, classification, allowed steps (DESIGN.md §3).

use serde::{Deserialize, Serialize};

use crate::load::Checker;

/// `spec` of a `Runbook` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunbookSpec {}

/// Rules beyond types on one `Runbook` spec.
pub(crate) fn rules(_c: &mut Checker<'_>, _spec: &RunbookSpec) {}
