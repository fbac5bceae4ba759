//! Fly's documented example bodies (`../shared/fly-api/examples/*.json`) parse into the
//! client's wire types (`opsctl::fly::wire`) without losing a field the type models, and a
//! machine with every field the OpenAPI spec lists survives a read → write round trip
//! (issue #3, "Proof").
//!
//! "Without loss" is checked on JSON: parse the example into the wire type, serialise it
//! back, and compare the two `serde_json::Value`s path by path. A `null` and an absent field
//! are the same (Go's nil map, erratum E6). Any path that is gone or changed is a loss unless
//! listed in [`KNOWN_LOSSES`] with its reason. Additions (a default the wire type writes) are
//! reported too, because under `config` they would be written back to Fly on an update.
//!
//! Every example file must be mapped in [`mapping`]: a new example without a wire type fails
//! here until someone decides which type reads it (or that none does yet).

#[path = "contract/examples.rs"]
#[allow(dead_code)]
mod examples;
#[path = "contract/openapi.rs"]
#[allow(dead_code)]
mod openapi;

use std::collections::{BTreeMap, BTreeSet};

use opsctl::fly::wire::{LeaseEnvelope, Machine, WaitResponse};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Which wire type reads each example, and what it is for.
enum Reader {
    /// Parsed with this function (which round-trips through a wire type).
    Typed(fn(&Value) -> Result<Value, String>),
    /// The client reads this body as untyped JSON or not at all; why.
    Untyped(&'static str),
}

fn round_trip<T: DeserializeOwned + Serialize>(v: &Value) -> Result<Value, String> {
    let parsed: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&parsed).map_err(|e| e.to_string())
}

fn metadata(v: &Value) -> Result<Value, String> {
    round_trip::<BTreeMap<String, String>>(v)
}

fn mapping(name: &str) -> Option<Reader> {
    use Reader::*;
    Some(match name {
        "machines_create_resp.json" | "machines_update_resp.json" => Typed(round_trip::<Machine>),
        "machines_lease_create_resp.json" => Typed(round_trip::<LeaseEnvelope>),
        "machines_ok_true_resp.json" => Typed(round_trip::<WaitResponse>),
        // `MachineConfig.metadata` and the metadata endpoint share this map type.
        "machines_metadata_get_resp.json" => Typed(metadata),
        "machines_lease_release_resp.json" => {
            Untyped("release_lease reads the body as serde_json::Value and ignores it")
        }
        "machines_start_resp.json" => {
            Untyped("machine_action(Start) reads the body as serde_json::Value and ignores it")
        }
        "certificates_list_resp.json"
        | "certificates_acme_create_resp.json"
        | "certificates_custom_create_resp.json"
        | "certificate_show_resp.json"
        | "certificate_check_resp.json" => Untyped(
            "no certificate wire types yet (issue #3, Simulator: certificates); see docs/fly-compat.md",
        ),
        _ => return None,
    })
}

/// Losses that are deliberate or known, by `(example or sample, path)`. Paths use `*` for
/// array elements. docs/fly-compat.md, "Wire types".
const KNOWN_LOSSES: &[(&str, &str, &str)] = &[];

/// Differences between `before` and `after`: `-path` lost, `~path` changed, `+path` added.
fn diff(before: &Value, after: &Value, at: &str, out: &mut BTreeSet<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                let here = format!("{at}/{k}");
                match a.get(k) {
                    Some(av) => diff(bv, av, &here, out),
                    None if bv.is_null() => {}
                    None => {
                        out.insert(format!("-{here}"));
                    }
                }
            }
            // Additions matter only in what is written back to Fly: the config.
            for (k, av) in a {
                if !b.contains_key(k) && !av.is_null() && at.starts_with("/config") {
                    out.insert(format!("+{at}/{k}"));
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (bv, av) in b.iter().zip(a) {
                diff(bv, av, &format!("{at}/*"), out);
            }
        }
        (b, a) if b == a => {}
        // Go nil vs empty: `null` → `{}`/`[]` or back is the same value.
        (Value::Null, Value::Object(o)) | (Value::Object(o), Value::Null) if o.is_empty() => {}
        (Value::Null, Value::Array(v)) | (Value::Array(v), Value::Null) if v.is_empty() => {}
        _ => {
            out.insert(format!("~{at}"));
        }
    }
}

fn unexpected(what: &str, found: &BTreeSet<String>) -> Vec<String> {
    found
        .iter()
        .filter(|f| !KNOWN_LOSSES.iter().any(|(w, p, _)| *w == what && p == f))
        .cloned()
        .collect()
}

#[test]
fn every_example_is_mapped_and_parses_without_loss() {
    let names = examples::names();
    assert!(names.len() >= 12, "examples missing: {names:?}");
    let mut problems = Vec::new();
    for name in &names {
        match mapping(name) {
            None => problems.push(format!(
                "{name}: no wire type decided (add it to mapping())"
            )),
            Some(Reader::Untyped(why)) => eprintln!("{name}: not typed: {why}"),
            Some(Reader::Typed(read)) => {
                let before = examples::load(name);
                match read(&before) {
                    Err(e) => problems.push(format!("{name}: does not parse: {e}")),
                    Ok(after) => {
                        let mut found = BTreeSet::new();
                        diff(&before, &after, "", &mut found);
                        for f in unexpected(name, &found) {
                            problems.push(format!("{name}: {f}"));
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A machine with every field the spec's `Machine` schema lists (config included, so every
/// `fly.MachineConfig` field) survives parse → serialise. This is what a deploy does: read
/// the machine, change the image, send the whole config back (NOTES.md §2.1: "full replace").
#[test]
fn a_machine_with_every_spec_field_survives_a_round_trip() {
    let spec = openapi::Spec::load();
    let sample = spec.sample(&openapi::Spec::schema_ref("Machine"), 16);
    assert!(
        sample
            .pointer("/config/services/0/checks/0/interval")
            .is_some(),
        "the sample reaches nested config: {sample}"
    );
    let findings = spec.validate(&openapi::Spec::schema_ref("Machine"), &sample);
    assert!(
        findings.is_empty(),
        "sample breaks its own spec: {findings:?}"
    );
    let after = round_trip::<Machine>(&sample).expect("the sample parses as wire::Machine");
    let mut found = BTreeSet::new();
    diff(&sample, &after, "", &mut found);
    let what = "spec sample Machine";
    let new = unexpected(what, &found);
    let gone: Vec<_> = KNOWN_LOSSES
        .iter()
        .filter(|(w, p, _)| *w == what && !found.contains(*p))
        .map(|(_, p, _)| *p)
        .collect();
    for (w, p, why) in KNOWN_LOSSES {
        if *w == what && found.contains(*p) {
            eprintln!("known: {p} ({why})");
        }
    }
    assert!(
        new.is_empty() && gone.is_empty(),
        "new losses: {new:?}\nlisted but no longer lost (delete from KNOWN_LOSSES and docs/fly-compat.md): {gone:?}"
    );
}
