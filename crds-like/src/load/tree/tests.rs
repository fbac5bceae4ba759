//! Tests of the YAML tree: positions, styles, documents, and the problems found in text.

use super::*;

fn parse_ok(text: &str) -> Vec<Document> {
    let parsed = parse(Path::new("t.yaml"), text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    parsed.documents
}

#[test]
fn positions_and_styles() {
    let docs = parse_ok("a: 'q'\nb:\n  c: no\n");
    let root = &docs[0].root;
    let b = &root.get("b").unwrap().value;
    let c = &b.get("c").unwrap();
    assert_eq!(c.key.pos, Pos { line: 3, column: 3 });
    assert_eq!(c.value.pos, Pos { line: 3, column: 6 });
    assert_eq!(c.value.scalar(), Some(("no", Style::Plain)));
    assert_eq!(
        root.get("a").unwrap().value.scalar(),
        Some(("q", Style::Quoted))
    );
}

#[test]
fn multi_document_skips_empty_documents() {
    let docs = parse_ok("a: 1\n---\n# only a comment\n---\nb: 2\n---\n");
    assert_eq!(docs.len(), 2);
}

#[test]
fn duplicate_keys_name_both_lines() {
    let parsed = parse(Path::new("t.yaml"), "a: 1\nb:\n  x: 1\n  x: 2\n");
    assert_eq!(parsed.errors.len(), 1);
    let e = &parsed.errors[0];
    assert_eq!((e.line, e.column), (4, 3));
    assert_eq!(e.field.as_deref(), Some("b.x"));
    assert!(
        e.message.contains("duplicate key `x`") && e.message.contains("line 3"),
        "{e}"
    );
}

#[test]
fn tabs_are_reported_by_line() {
    let parsed = parse(Path::new("t.yaml"), "a:\n  b: 1\n\tc: 2\n");
    assert_eq!(parsed.errors.len(), 1, "{:?}", parsed.errors);
    assert_eq!((parsed.errors[0].line, parsed.errors[0].column), (3, 1));
    assert!(parsed.errors[0].message.contains("tab"));
    // A tab after spaces parses, but is still refused.
    let parsed = parse(Path::new("t.yaml"), "a:\n  \tb: 1\n# \tfine\n");
    assert_eq!(parsed.errors.len(), 1);
    assert_eq!((parsed.errors[0].line, parsed.errors[0].column), (2, 3));
}

#[test]
fn syntax_errors_are_located() {
    let parsed = parse(Path::new("t.yaml"), "a: [1, 2\n");
    assert_eq!(parsed.errors.len(), 1);
    assert!(
        parsed.errors[0].message.starts_with("invalid YAML"),
        "{}",
        parsed.errors[0]
    );
    assert_eq!(parsed.errors[0].line, 1);
}

#[test]
fn aliases_expand_and_bombs_stop() {
    let docs = parse_ok("a: &x {b: 1}\nc: *x\n");
    assert!(docs[0].root.get("c").unwrap().value.get("b").is_some());
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let parsed = parse(Path::new("t.yaml"), &bomb);
    assert!(
        parsed
            .errors
            .iter()
            .any(|e| e.message.contains("too large")),
        "{:?}",
        parsed.errors
    );
}

#[test]
fn tags_and_merge_keys_are_refused() {
    let parsed = parse(
        Path::new("t.yaml"),
        "a: !!int 5\nb: !!str no\nbase: &b {x: 1}\nc:\n  <<: *b\n",
    );
    let messages: Vec<_> = parsed.errors.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].contains("`!!int`"));
    assert!(messages[1].contains("merge keys"));
}
