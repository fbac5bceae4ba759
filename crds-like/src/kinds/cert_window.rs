//! The `CertWindow` kind: hostnames whose TLS certificates must stay valid (DESIGN.md §3).

use serde::{Deserialize, Serialize};

use crate::load::Checker;

/// `spec` of a `CertWindow` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertWindowSpec {}

/// Rules beyond types on one `CertWindow` spec.
pub(crate) fn rules(_c: &mut Checker<'_>, _spec: &CertWindowSpec) {}
