//! Tests of the node deserializer: values, soft errors, hard errors.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::*;
use crate::load::tree;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Sample {
    name: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    count: Option<u32>,
    #[serde(default)]
    enabled: bool,
}

fn read(text: &str) -> (Result<Sample, DeError>, Vec<Diagnostic>) {
    let file = Path::new("t.yaml");
    let parsed = tree::parse(file, text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let ctx = Ctx::new(file);
    let result = Sample::deserialize(NodeDe::new(
        &parsed.documents[0].root,
        FieldPath::default(),
        &ctx,
    ));
    (result, ctx.errors.into_inner())
}

#[test]
fn reads_a_good_value() {
    let (result, errors) = read("name: x\nenv: {A: \"no\", B: 'on'}\ncount: 3\nenabled: true\n");
    assert!(errors.is_empty(), "{errors:?}");
    let s = result.unwrap();
    assert_eq!(s.env["A"], "no");
    assert_eq!(s.count, Some(3));
}

#[test]
fn collects_several_soft_errors() {
    let (result, errors) =
        read("name: 0777\nenv:\n  A: no\n  B: 12:30\ncount: two\nenabled: yes\ncolour: red\n");
    assert!(result.is_ok());
    let got: Vec<(usize, usize, Option<&str>)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.field.as_deref()))
        .collect();
    assert_eq!(
        got,
        vec![
            (7, 1, Some("colour")),
            (1, 7, Some("name")),
            (3, 6, Some("env.A")),
            (4, 6, Some("env.B")),
            (5, 8, Some("count")),
            (6, 10, Some("enabled")),
        ]
    );
    assert!(errors[2].message.contains("quote it"), "{}", errors[2]);
    assert!(errors[4].message.contains("whole number"), "{}", errors[4]);
    assert!(errors[0].message.contains("`name`"), "{}", errors[0]);
}

#[test]
fn missing_field_is_located_at_the_parent() {
    let (result, errors) = read("env: {}\n");
    assert!(errors.is_empty());
    let e = result.unwrap_err();
    assert_eq!(e.message, "missing field `name`");
    assert_eq!(e.path.unwrap().to_string(), "name");
    assert_eq!(e.pos, Some(Pos { line: 1, column: 1 }));
}
