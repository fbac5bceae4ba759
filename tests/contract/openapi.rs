//! Fly's Machines OpenAPI spec (`../shared/fly-api/machines-openapi3.json`, Sept 2024) as a
//! validator: find the operation for a request, and check a JSON body against the schema the
//! spec gives it.
//!
//! Hand-written on purpose, not the `jsonschema` crate: the spec uses eight keywords (`type`,
//! `properties`, `additionalProperties`, `items`, `enum`, `required`, `allOf`, `$ref`), and
//! `jsonschema` with `default-features = false` adds 31 crates to the lock file (two regex
//! engines, bignum and UUID code; about a minute of build on the 2-core CI machine). It also
//! cannot tell "a field the spec does not list", which is the finding we most want: the spec
//! never sets `additionalProperties: false`, so a validator that follows JSON Schema to the
//! letter accepts any invented field. [`Spec::validate`] reports those separately as
//! [`Finding::Unlisted`], named `Schema.field`, so the test can hold them against a list of
//! fields Fly is known to send beyond the 2024 spec.
//!
//! The spec is read as Fly's Go code generated it (swaggo), so a few of its statements are
//! known to be wrong about the wire; [`ERRATA`] patches them before use, each with its source.
//! docs/fly-compat.md lists the same table.
//!
//! What it does not do: formats (`date-time`), numeric ranges, `oneOf`/`anyOf` (unused by
//! this spec), or remote `$ref`s.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// `$ref` prefix of the spec's schemas.
const SCHEMAS: &str = "#/components/schemas/";

/// A known mistake of the 2024 spec about the wire, and how it is patched.
pub struct Erratum {
    /// Short id used in docs/fly-compat.md (`E1`, …).
    pub id: &'static str,
    /// What the spec says and what Fly sends, with the source.
    pub why: &'static str,
}

/// The patches [`Spec::load`] applies, in order. docs/fly-compat.md §"Spec errata".
pub const ERRATA: &[Erratum] = &[
    Erratum {
        id: "E1",
        why: "`fly.Duration` is an object `{\"time.Duration\": int}` in the spec (a swaggo \
              artifact); on the wire it is a Go duration string (\"15s\"): fly-go \
              `Duration.MarshalJSON`, NOTES.md §2.3, docs examples. Patched to a string; \
              `{type: object, allOf: [Duration]}` wrappers are unwrapped.",
    },
    Erratum {
        id: "E2",
        why: "`fly.MachineService.autostop` is a string enum in the spec, but its own \
              description says responses use `false`/`true` for off/stop (NOTES.md §2.3). \
              Patched to also accept booleans.",
    },
    Erratum {
        id: "E3",
        why: "Lease responses are wrapped `{\"status\":\"success\",\"data\":{Lease}}` in reality \
              (docs example machines_lease_create_resp.json, flyctl checks `status`), the spec \
              documents the bare `Lease`; release answers `{\"status\":\"success\",\"data\":{\"ok\":true}}` \
              (machines_lease_release_resp.json). Patched: `LeaseEnvelope`, `LeaseReleased`.",
    },
    Erratum {
        id: "E4",
        why: "Acquiring a lease answers 201 Created (docs `machines/api/leases`, NOTES.md §2.1); \
              the spec lists only 200. Patched: 201 added with the same body.",
    },
    Erratum {
        id: "E5",
        why: "`main.statusCode` lacks the newer `volume_placement_capacity` and `name_taken` \
              (fly-go `flaps_error_test.go`, NOTES.md §2.8). Patched: added.",
    },
    Erratum {
        id: "E6",
        why: "Go encodes a nil map, slice or pointer as `null` (`\"env\": null` in \
              machines_update_resp.json) and swaggo never marks anything `nullable`. \
              The validator accepts `null` where the spec says object or array, nowhere else, \
              and `\"\"` (Go's zero string) for a string enum (`restart.policy: \"\"` there).",
    },
    Erratum {
        id: "E7",
        why: "Errors: the spec documents `ErrorResponse` only for some 400s, while every \
              Machines API error is that shape (docs \"Response Codes\", fly-go \
              `handleAPIError`, NOTES.md §2.8). A non-2xx status the operation does not list \
              is validated against `ErrorResponse`.",
    },
];

/// One problem found by [`Spec::validate`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Finding {
    /// The body breaks the schema: `(json pointer, what)`.
    Invalid(String, String),
    /// A field the schema does not list, as `Schema.field` (the nearest named schema).
    Unlisted(String),
}

/// One operation of the spec.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Method, upper case.
    pub method: String,
    /// The spec's path template, with the server's `/v1` prefix (`/v1/apps/{app_name}/…`).
    pub template: String,
    /// The operation object.
    pub op: Value,
}

impl Operation {
    /// `"GET /v1/apps/{app_name}/machines"`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// Schema of the JSON request body, if the spec gives one.
    pub fn request_schema(&self) -> Option<&Value> {
        self.op
            .pointer("/requestBody/content/application~1json/schema")
    }

    /// The response entry for `status`, if the spec lists it: `Some(None)` means listed
    /// without a body schema.
    pub fn response_schema(&self, status: u16) -> Option<Option<&Value>> {
        let r = self.op.get("responses")?.get(status.to_string())?;
        Some(r.pointer("/content/application~1json/schema"))
    }

    /// Parameters declared `in` a place (`query`, `header`, `path`): name → (schema,
    /// required).
    pub fn params(&self, place: &str) -> BTreeMap<String, (Value, bool)> {
        let mut out = BTreeMap::new();
        for p in self
            .op
            .get("parameters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if p.get("in").and_then(Value::as_str) == Some(place)
                && let Some(name) = p.get("name").and_then(Value::as_str)
            {
                let schema = p.get("schema").cloned().unwrap_or(json!({}));
                let required = p.get("required").and_then(Value::as_bool) == Some(true);
                out.insert(name.to_ascii_lowercase(), (schema, required));
            }
        }
        out
    }
}

/// The loaded, patched spec.
pub struct Spec {
    doc: Value,
}

/// Path of a file in `../shared/fly-api/`.
pub fn fly_api_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fly-api")
        .join(name)
}

impl Spec {
    /// Reads `../shared/fly-api/machines-openapi3.json` and applies [`ERRATA`].
    ///
    /// # Panics
    /// When the file is missing or not JSON: the contract tests cannot run without it.
    pub fn load() -> Self {
        let path = fly_api_file("machines-openapi3.json");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        let mut spec = Self { doc };
        spec.patch();
        spec
    }

    fn patch(&mut self) {
        let dur = format!("{SCHEMAS}fly.Duration");
        // E1
        self.doc["components"]["schemas"]["fly.Duration"] =
            json!({"type": "string", "description": "Go duration string (erratum E1)"});
        unwrap_duration_wrappers(&mut self.doc["components"], &dur);
        // E2
        let autostop =
            &mut self.doc["components"]["schemas"]["fly.MachineService"]["properties"]["autostop"];
        autostop["type"] = json!(["string", "boolean"]);
        autostop["enum"] = json!(["off", "stop", "suspend", false, true]);
        // E3
        self.doc["components"]["schemas"]["LeaseEnvelope"] = json!({
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["success"]},
                "data": {"$ref": format!("{SCHEMAS}Lease")},
                "message": {"type": "string"},
                "code": {"type": "string"}
            }
        });
        self.doc["components"]["schemas"]["LeaseReleased"] = json!({
            "type": "object",
            "required": ["status", "data"],
            "properties": {
                "status": {"type": "string", "enum": ["success"]},
                "data": {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean", "enum": [true]}}}
            }
        });
        let envelope = json!({"description": "OK (erratum E3)", "content": {"application/json": {"schema": {"$ref": format!("{SCHEMAS}LeaseEnvelope")}}}});
        let released = json!({"description": "OK (erratum E3)", "content": {"application/json": {"schema": {"$ref": format!("{SCHEMAS}LeaseReleased")}}}});
        let lease = &mut self.doc["paths"]["/apps/{app_name}/machines/{machine_id}/lease"];
        lease["get"]["responses"]["200"] = envelope.clone();
        lease["post"]["responses"]["200"] = envelope.clone();
        // E4
        lease["post"]["responses"]["201"] = envelope;
        lease["delete"]["responses"]["200"] = released;
        // E5
        self.doc["components"]["schemas"]["main.statusCode"]["enum"] = json!([
            "unknown",
            "insufficient_capacity",
            "volume_placement_capacity",
            "name_taken"
        ]);
    }

    /// The operation serving `method` `path` (a request path such as
    /// `/v1/apps/x/machines/abc/lease`), if the spec has one.
    pub fn operation(&self, method: &str, path: &str) -> Option<Operation> {
        let rest = path.strip_prefix("/v1")?;
        let wanted: Vec<&str> = rest.split('/').collect();
        let paths = self.doc.get("paths")?.as_object()?;
        // A literal segment beats a `{param}`, as in every router: prefer fewer params.
        let mut best: Option<(usize, &String, &Value)> = None;
        for (template, item) in paths {
            let segs: Vec<&str> = template.split('/').collect();
            if segs.len() != wanted.len() {
                continue;
            }
            let mut params = 0;
            let fits = segs.iter().zip(&wanted).all(|(t, w)| {
                if t.starts_with('{') {
                    params += 1;
                    !w.is_empty()
                } else {
                    t == w
                }
            });
            if fits && best.is_none_or(|(p, _, _)| params < p) {
                best = Some((params, template, item));
            }
        }
        let (_, template, item) = best?;
        let op = item.get(method.to_ascii_lowercase())?.clone();
        Some(Operation {
            method: method.to_ascii_uppercase(),
            template: format!("/v1{template}"),
            op,
        })
    }

    /// Every operation of the spec as `"METHOD /v1/template"`.
    pub fn operation_keys(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(paths) = self.doc.get("paths").and_then(Value::as_object) {
            for (template, item) in paths {
                for method in item.as_object().into_iter().flat_map(|o| o.keys()) {
                    if method != "parameters" {
                        out.push(format!("{} /v1{template}", method.to_ascii_uppercase()));
                    }
                }
            }
        }
        out
    }

    /// `{"$ref": "#/components/schemas/NAME"}`.
    pub fn schema_ref(name: &str) -> Value {
        json!({"$ref": format!("{SCHEMAS}{name}")})
    }

    /// The named schema, after errata.
    pub fn named(&self, name: &str) -> Option<&Value> {
        self.doc
            .pointer(&format!("/components/schemas/{}", escape(name)))
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        let pointer = reference.strip_prefix('#')?;
        self.doc.pointer(pointer)
    }

    /// Checks `value` against `schema`; every problem, in document order.
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<Finding> {
        let mut out = Vec::new();
        self.check(schema, value, "", "(inline)", &mut out);
        out
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, named: &str, out: &mut Vec<Finding>) {
        let Some(s) = schema.as_object() else {
            return;
        };
        let mut named = named.to_owned();
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match self.resolve(r) {
                Some(target) => {
                    let name = r.strip_prefix(SCHEMAS).unwrap_or(r);
                    self.check(target, value, at, name, out);
                }
                None => out.push(Finding::Invalid(
                    at.into(),
                    format!("unresolvable $ref {r}"),
                )),
            }
            // OpenAPI 3.0: siblings of $ref are ignored.
            return;
        }
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            // allOf members describe the same object; name fields after the referenced schema.
            if let Some(r) = sub.get("$ref").and_then(Value::as_str) {
                named = r.strip_prefix(SCHEMAS).unwrap_or(r).to_owned();
            }
            self.check(sub, value, at, &named, out);
        }
        let types: Vec<&str> = match s.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() {
            let nullable =
                value.is_null() && (types.contains(&"object") || types.contains(&"array"));
            if !nullable && !types.iter().any(|t| has_type(value, t)) {
                out.push(Finding::Invalid(
                    at.into(),
                    format!("expected {}, got {}", types.join(" or "), kind(value)),
                ));
                return;
            }
        }
        if let Some(allowed) = s.get("enum").and_then(Value::as_array)
            && !value.is_null()
            && value.as_str() != Some("")
            && !allowed.contains(value)
        {
            out.push(Finding::Invalid(
                at.into(),
                format!("{value} is not one of {}", Value::Array(allowed.clone())),
            ));
        }
        if let Some(obj) = value.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for req in s
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(name) = req.as_str()
                    && !obj.contains_key(name)
                {
                    out.push(Finding::Invalid(
                        at.into(),
                        format!("missing required `{name}`"),
                    ));
                }
            }
            for (k, v) in obj {
                let here = format!("{at}/{}", escape(k));
                if let Some(p) = props.and_then(|p| p.get(k)) {
                    self.check(p, v, &here, &format!("{named}.{k}"), out);
                    continue;
                }
                match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        out.push(Finding::Invalid(here, format!("`{k}` is not allowed")))
                    }
                    Some(extra @ Value::Object(_)) => self.check(extra, v, &here, &named, out),
                    // A schema with listed properties and no additionalProperties: the spec
                    // documents the fields, so anything else is worth naming.
                    _ if props.is_some() => out.push(Finding::Unlisted(format!("{named}.{k}"))),
                    _ => {}
                }
            }
        }
        if let (Some(items), Some(arr)) = (s.get("items"), value.as_array()) {
            for (i, v) in arr.iter().enumerate() {
                self.check(items, v, &format!("{at}/{i}"), &format!("{named}[]"), out);
            }
        }
    }

    /// A value with every field `schema` lists filled in (strings `"x"`, integers `1`,
    /// booleans `true`, one array element, one map entry), for round-trip tests. Stops at
    /// `depth` to survive recursive schemas.
    pub fn sample(&self, schema: &Value, depth: usize) -> Value {
        let Some(s) = schema.as_object() else {
            return Value::Null;
        };
        if depth == 0 {
            return Value::Null;
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            return self
                .resolve(r)
                .map(|t| self.sample(t, depth - 1))
                .unwrap_or(Value::Null);
        }
        if let Some(first) = s
            .get("enum")
            .and_then(Value::as_array)
            .and_then(|e| e.first())
        {
            return first.clone();
        }
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            let mut merged = serde_json::Map::new();
            for sub in all {
                if let Value::Object(o) = self.sample(sub, depth) {
                    merged.extend(o);
                }
            }
            return Value::Object(merged);
        }
        let t = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts.first().and_then(Value::as_str).unwrap_or(""),
            _ if s.contains_key("properties") => "object",
            _ => "",
        };
        match t {
            "string" => json!("x"),
            "integer" | "number" => json!(1),
            "boolean" => json!(true),
            "array" => {
                let item = s
                    .get("items")
                    .map(|i| self.sample(i, depth - 1))
                    .unwrap_or(Value::Null);
                if item.is_null() {
                    json!([])
                } else {
                    json!([item])
                }
            }
            "object" => {
                let mut o = serde_json::Map::new();
                for (k, p) in s
                    .get("properties")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let v = self.sample(p, depth - 1);
                    if !v.is_null() {
                        o.insert(k.clone(), v);
                    }
                }
                if let Some(extra @ Value::Object(_)) = s.get("additionalProperties") {
                    let v = self.sample(extra, depth - 1);
                    if !v.is_null() {
                        o.insert("k".into(), v);
                    }
                }
                Value::Object(o)
            }
            _ => Value::Null,
        }
    }
}

/// Replaces every `{…, allOf: [{$ref: fly.Duration}]}` by the bare reference (erratum E1: the
/// wrapper also says `type: object`, which a duration string is not).
fn unwrap_duration_wrappers(v: &mut Value, dur: &str) {
    match v {
        Value::Object(o) => {
            let wraps = o.get("allOf").and_then(Value::as_array).is_some_and(|a| {
                a.len() == 1 && a[0].get("$ref").and_then(Value::as_str) == Some(dur)
            });
            if wraps {
                o.clear();
                o.insert("$ref".into(), Value::String(dur.to_owned()));
                return;
            }
            for child in o.values_mut() {
                unwrap_duration_wrappers(child, dur);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| unwrap_duration_wrappers(c, dur)),
        _ => {}
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "null" => v.is_null(),
        _ => true,
    }
}

/// JSON kind, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON-pointer escaping of one segment.
fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Checks a query-string value against a parameter schema (`boolean`, `integer`, `string`
/// with `enum`). Returns what is wrong.
pub fn check_param(schema: &Value, value: &str) -> Option<String> {
    let t = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("string");
    let ok = match t {
        "boolean" => matches!(value, "true" | "false"),
        "integer" => value.parse::<i64>().is_ok(),
        _ => true,
    };
    if !ok {
        return Some(format!("`{value}` is not a {t}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| a.as_str() == Some(value))
    {
        return Some(format!(
            "`{value}` is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    None
}
