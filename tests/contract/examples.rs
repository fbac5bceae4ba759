//! Fly's example response bodies (`../shared/fly-api/examples/*.json`, copied verbatim from
//! superfly/docs; `../shared/fly-api/SOURCES.md`) and a shape comparison against them, for
//! the endpoints and fields the 2024 OpenAPI spec does not cover.

use serde_json::Value;

/// Every example file name, sorted.
pub fn names() -> Vec<String> {
    let dir = super::openapi::fly_api_file("examples");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The parsed example `name` (e.g. `machines_start_resp.json`).
///
/// # Panics
/// When the file is missing or not JSON.
pub fn load(name: &str) -> Value {
    let path = super::openapi::fly_api_file("examples").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// How `actual` differs in shape from `example`: every field of the example must be present
/// with the same JSON kind (an example `null` matches anything; arrays compare their first
/// elements, path segment `*`); fields the example does not show are reported as `+field` unless listed in
/// `newer` (fields Fly added after the example was written, with a source in
/// docs/fly-compat.md). Objects at the paths in `maps` are free-form maps (metadata, labels):
/// only their values' kinds are compared with the example's first value.
pub fn shape_diff(example: &Value, actual: &Value, newer: &[&str], maps: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    diff(example, actual, "", newer, maps, &mut out);
    out
}

fn diff(e: &Value, a: &Value, at: &str, newer: &[&str], maps: &[&str], out: &mut Vec<String>) {
    if e.is_null() {
        return;
    }
    if super::openapi::kind(e) != super::openapi::kind(a) {
        out.push(format!(
            "{}: example has {}, got {}",
            if at.is_empty() { "/" } else { at },
            super::openapi::kind(e),
            super::openapi::kind(a)
        ));
        return;
    }
    match (e, a) {
        (Value::Object(eo), Value::Object(ao)) if maps.contains(&at) => {
            if let Some(first) = eo.values().next() {
                for (k, v) in ao {
                    diff(first, v, &format!("{at}/{k}"), newer, maps, out);
                }
            }
        }
        (Value::Object(eo), Value::Object(ao)) => {
            for (k, ev) in eo {
                let here = format!("{at}/{k}");
                match ao.get(k) {
                    Some(av) => diff(ev, av, &here, newer, maps, out),
                    None => out.push(format!("-{here}")),
                }
            }
            for k in ao.keys() {
                let here = format!("{at}/{k}");
                if !eo.contains_key(k) && !newer.contains(&here.as_str()) {
                    out.push(format!("+{here}"));
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) => {
            if let Some(first) = ea.first() {
                for av in aa {
                    diff(first, av, &format!("{at}/*"), newer, maps, out);
                }
            }
        }
        _ => {}
    }
}
