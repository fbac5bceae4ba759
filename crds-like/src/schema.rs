//! JSON Schema (Draft 2020-12) of each resource kind, as `opsctl schema` prints it and as the
//! files in `crds-like/schemas/<Kind>.json` hold it (DESIGN.md §3).
//!
//! Each schema is a whole manifest: `apiVersion` (the constant [`API_VERSION`]), `kind` (the
//! constant kind name), `metadata` and `spec`, no other top-level key. The `spec` part is
//! derived by schemars from the same serde types the loader reads, so field names are the
//! camelCase ones the loader accepts and `deny_unknown_fields` becomes
//! `additionalProperties: false`. Types the loader reads by hand carry hand-written schemas:
//! durations (`"90s"`, [`crate::DurationStr`]), ratios (`0.999` or `"99.9%"`) and
//! `maxUnavailable` (a count or a fraction).
//!
//! What a schema cannot say (cross-field rules, cron syntax, image references, unknown-region
//! warnings) the loader still checks: a manifest valid against the schema may still be refused
//! by `opsctl validate`, never the other way round for field names and value shapes.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};
use serde_json::{Value, json};

use crate::kinds::{
    AlertRouteSpec, CertWindowSpec, GovernancePolicySpec, HealthSloSpec, MaintenanceScheduleSpec,
    RunbookSpec,
};
use crate::{API_VERSION, FlyAppSpec, KNOWN_KINDS, Metadata};

/// The `$id` base of the published schemas (a name, never fetched).
pub const SCHEMA_ID_BASE: &str = "https://opsctl.dev/schemas/v1alpha1/";

fn spec_and_metadata<T: JsonSchema>(kind: &str) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let spec: Schema = generator.subschema_for::<T>();
    let metadata: Schema = generator.subschema_for::<Metadata>();
    let defs = generator.take_definitions(true);
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("{SCHEMA_ID_BASE}{kind}.json"),
        "title": kind,
        "description": format!("An opsctl `{kind}` manifest ({API_VERSION}); see docs/manifests.md."),
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": false,
        "properties": {
            "apiVersion": {"const": API_VERSION},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
        "$defs": defs,
    })
}

/// The JSON Schema of manifests of `kind` (one of [`KNOWN_KINDS`], exact spelling), or `None`
/// for an unknown kind.
pub fn for_kind(kind: &str) -> Option<Value> {
    Some(match kind {
        "FlyApp" => spec_and_metadata::<FlyAppSpec>(kind),
        "HealthSLO" => spec_and_metadata::<HealthSloSpec>(kind),
        "CertWindow" => spec_and_metadata::<CertWindowSpec>(kind),
        "GovernancePolicy" => spec_and_metadata::<GovernancePolicySpec>(kind),
        "MaintenanceSchedule" => spec_and_metadata::<MaintenanceScheduleSpec>(kind),
        "Runbook" => spec_and_metadata::<RunbookSpec>(kind),
        "AlertRoute" => spec_and_metadata::<AlertRouteSpec>(kind),
        _ => None?,
    })
}

/// Every kind's schema, in [`KNOWN_KINDS`] order.
pub fn all() -> Vec<(&'static str, Value)> {
    KNOWN_KINDS
        .iter()
        .filter_map(|k| for_kind(k).map(|s| (*k, s)))
        .collect()
}

/// The file text of a schema as shipped in `crds-like/schemas/` (pretty JSON, newline at the
/// end), so the staleness test and `opsctl schema --write` agree byte for byte.
pub fn file_text(schema: &Value) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests;
