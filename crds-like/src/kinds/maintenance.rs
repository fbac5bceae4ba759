//! The `MaintenanceSchedule` kind: the periodic read-only checks, their intervals and thresholds (DESIGN.md §3).

use serde::{Deserialize, Serialize};

use crate::load::Checker;

/// `spec` of a `MaintenanceSchedule` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceScheduleSpec {}

/// Rules beyond types on one `MaintenanceSchedule` spec.
pub(crate) fn rules(_c: &mut Checker<'_>, _spec: &MaintenanceScheduleSpec) {}
