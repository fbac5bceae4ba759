//! The schemas against what the loader accepts: the shipped files are fresh, every kind has
//! one, and every key of every manifest the loader accepts (manifests/, examples/, the YAML
//! examples of docs/manifests.md) is a key the schema names at that place.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{all, file_text, for_kind};
use crate::KNOWN_KINDS;
use crate::load::tree::{self, Node, Value as Yaml};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `crds-like/schemas/<Kind>.json` equal what the types generate now. `UPDATE_SCHEMAS=1`
/// rewrites them (as `opsctl schema --write crds-like/schemas` does).
#[test]
fn shipped_schema_files_are_fresh() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let update = std::env::var_os("UPDATE_SCHEMAS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (kind, schema) in all() {
        let path = dir.join(format!("{kind}.json"));
        let want = file_text(&schema);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &want).unwrap();
            continue;
        }
        if std::fs::read_to_string(&path).ok().as_deref() != Some(want.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale or missing JSON Schema files: {}.\nThe resource types changed: refresh them with \
         `UPDATE_SCHEMAS=1 cargo test -p opsctl-crds --lib schema` or \
         `cargo run -- schema --write crds-like/schemas`, and commit the result.",
        stale.join(", ")
    );
}

#[test]
fn every_known_kind_has_a_schema_and_no_other() {
    for k in KNOWN_KINDS {
        let s = for_kind(k).unwrap_or_else(|| panic!("no schema for {k}"));
        assert_eq!(s["properties"]["kind"]["const"], *k);
        assert_eq!(
            s["additionalProperties"], false,
            "{k}: unknown top-level keys"
        );
    }
    assert!(for_kind("Flyapp").is_none());
    assert_eq!(all().len(), KNOWN_KINDS.len());
}

/// Follow a local `$ref` (`#/$defs/Name`).
fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    while let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local $ref");
        s = &root["$defs"][name];
    }
    s
}

fn allows(s: &Value, ty: &str) -> bool {
    match s.get("type") {
        None => true,
        Some(Value::String(t)) => t == ty || (ty == "number" && t == "integer"),
        Some(Value::Array(ts)) => ts.iter().any(|t| t == ty),
        _ => false,
    }
}

/// Problems of `node` (at `at`) against schema `s`: keys the schema does not name, mappings or
/// lists where it wants something else, a wrong `const`.
fn check(root: &Value, s: &Value, node: &Node, at: &str) -> Vec<String> {
    let s = resolve(root, s);
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let results: Vec<Vec<String>> = alts.iter().map(|a| check(root, a, node, at)).collect();
            if results.iter().any(Vec::is_empty) {
                return Vec::new();
            }
            return vec![format!(
                "{at}: matches none of the {key} alternatives: {results:?}"
            )];
        }
    }
    let mut problems: Vec<String> = s
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|a| check(root, a, node, at))
        .collect();
    match &node.value {
        Yaml::Map(entries) => {
            if !allows(s, "object") {
                problems.push(format!(
                    "{at}: a mapping where the schema wants {}",
                    s["type"]
                ));
                return problems;
            }
            let props = s.get("properties");
            for e in entries {
                let key = e
                    .key
                    .scalar()
                    .map(|(k, _)| k.to_owned())
                    .unwrap_or_default();
                let here = format!("{at}.{key}");
                match (
                    props.and_then(|p| p.get(&key)),
                    s.get("additionalProperties"),
                ) {
                    (Some(sub), _) => problems.extend(check(root, sub, &e.value, &here)),
                    (None, Some(Value::Bool(false))) => {
                        problems.push(format!("{here}: not a field of the schema"))
                    }
                    (None, Some(sub @ Value::Object(_))) => {
                        problems.extend(check(root, sub, &e.value, &here))
                    }
                    (None, _) if props.is_some() => {
                        problems.push(format!("{here}: not among the schema's properties"))
                    }
                    (None, _) => {}
                }
            }
        }
        Yaml::Seq(items) => {
            if !allows(s, "array") {
                problems.push(format!("{at}: a list where the schema wants {}", s["type"]));
                return problems;
            }
            if let Some(sub) = s.get("items") {
                for (i, item) in items.iter().enumerate() {
                    problems.extend(check(root, sub, item, &format!("{at}[{i}]")));
                }
            }
        }
        Yaml::Scalar { text, .. } => {
            if let Some(c) = s.get("const").and_then(Value::as_str)
                && c != text
            {
                problems.push(format!("{at}: `{text}` is not the constant `{c}`"));
            }
            if !node.is_null()
                && s.get("type").is_some()
                && !["string", "number", "integer", "boolean"]
                    .iter()
                    .any(|t| allows(s, t))
            {
                problems.push(format!(
                    "{at}: a scalar where the schema wants {}",
                    s["type"]
                ));
            }
        }
    }
    problems
}

/// Every manifest document of `text` checked against its kind's schema; the kinds seen.
fn check_text(file: &str, text: &str) -> (Vec<String>, Vec<String>) {
    let parsed = tree::parse(Path::new(file), text);
    let mut problems = Vec::new();
    let mut kinds = Vec::new();
    for doc in &parsed.documents {
        let kind = doc
            .root
            .get("kind")
            .and_then(|e| e.value.scalar())
            .map(|(k, _)| k.to_owned())
            .unwrap_or_default();
        let schema = for_kind(&kind).unwrap_or_else(|| panic!("{file}: no schema for {kind:?}"));
        problems.extend(check(
            &schema,
            &schema,
            &doc.root,
            &format!("{file}:{kind}"),
        ));
        kinds.push(kind);
    }
    (problems, kinds)
}

/// The loader-accepted manifests shipped with opsctl: files under manifests/ and examples/
/// that are manifests (not simulator scenarios), and docs/manifests.md's YAML examples.
fn shipped() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut dirs = vec![repo().join("manifests"), repo().join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                let text = std::fs::read_to_string(&p).unwrap();
                if text.contains("apiVersion: opsctl.dev/") {
                    out.push((p.display().to_string(), text));
                }
            }
        }
    }
    let doc = std::fs::read_to_string(repo().join("docs/manifests.md")).unwrap();
    for (i, block) in doc.split("```yaml").skip(1).enumerate() {
        let body = block.split("```").next().unwrap_or_default();
        if body.contains("apiVersion: opsctl.dev/") {
            out.push((
                format!("docs/manifests.md yaml block {}", i + 1),
                body.to_owned(),
            ));
        }
    }
    out
}

#[test]
fn every_key_the_loader_accepts_in_shipped_manifests_is_in_the_schema() {
    let mut problems = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    let mut checked = 0;
    for (file, text) in shipped() {
        // Only what the loader accepts: the schema must describe the loader, not fragments.
        if crate::load_str(Path::new(&file), &text).is_err() {
            continue;
        }
        let (p, k) = check_text(&file, &text);
        problems.extend(p);
        kinds.extend(k);
        checked += 1;
    }
    assert!(
        problems.is_empty(),
        "keys the schemas do not describe:\n{}",
        problems.join("\n")
    );
    assert!(
        checked >= 3,
        "only {checked} shipped manifest file(s) were checked"
    );
    eprintln!("checked {checked} file(s), kinds {kinds:?}");
    for must in ["FlyApp", "GovernancePolicy"] {
        assert!(
            kinds.contains(must),
            "no shipped {must} manifest was checked: {kinds:?}"
        );
    }
}

#[test]
fn a_misspelled_or_misplaced_key_is_caught() {
    let base = std::fs::read_to_string(repo().join("manifests/lowendinsight.yaml")).unwrap();
    assert!(check_text("ok.yaml", &base).0.is_empty());
    let typo = base.replacen("primaryRegion:", "primary_region:", 1);
    let (problems, _) = check_text("typo.yaml", &typo);
    assert!(
        problems.iter().any(|p| p.contains("spec.primary_region")),
        "{problems:?}"
    );
    // The loader refuses it too: the schema and the loader agree on the spelling.
    assert!(crate::load_str(Path::new("typo.yaml"), &typo).is_err());
}

#[test]
fn hand_written_schemas_say_what_the_loader_takes() {
    let s = for_kind("FlyApp").unwrap();
    let dur = &s["$defs"]["Duration"];
    assert_eq!(dur["type"], "string", "{dur}");
    let ratio = &for_kind("HealthSLO").unwrap()["$defs"]["Ratio"];
    let alts: Vec<&Value> = ratio["oneOf"].as_array().unwrap().iter().collect();
    assert!(alts.iter().any(|a| a["type"] == "number"));
    assert!(alts.iter().any(|a| a["type"] == "string"));
    let text = serde_json::to_string(&s).unwrap();
    for camel in [
        "primaryRegion",
        "processGroups",
        "maxUnavailable",
        "waitTimeout",
        "memoryMb",
    ] {
        assert!(
            text.contains(&format!("\"{camel}\"")),
            "{camel} missing from the FlyApp schema"
        );
    }
}
