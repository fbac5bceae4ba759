//! YAML text → documents of [`Node`]s that remember where they were written and how.
//!
//! This is the loader's first pass. It keeps what typed deserialisation throws away and strict
//! loading needs: the 1-based line and column of every node and key, and whether a scalar was
//! quoted. It also finds the problems that are about the text rather than the types, and finds
//! all of them, not only the first:
//! - tab characters in indentation ([`tab_problems`]),
//! - YAML syntax errors (from `granit-parser`, the parser under `serde-saphyr`),
//! - duplicate keys, naming both lines, non-string keys, merge keys (`<<`), and explicit tags
//!   other than `!!str`/`!!map`/`!!seq` ([`check_document`]).
//!
//! It does not know about manifest kinds or Rust types; [`super::de`] reads a [`Node`] into
//! them. Aliases (`*name`) are expanded by copying, with a node budget against alias bombs.

use std::collections::HashMap;
use std::path::Path;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError, Span, StrInput};

use super::path::FieldPath;
use crate::load::Diagnostic;

/// Most nodes one file may expand to (aliases included). A hand-written manifest has a few
/// hundred; this only stops alias bombs ("billion laughs").
const MAX_NODES: usize = 200_000;

/// A position in a file, both 1-based (column counted in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    fn from_span(span: &Span) -> Self {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Unquoted: YAML resolves its type from its text.
    Plain,
    /// `'…'` or `"…"`, or tagged `!!str`: always a string.
    Quoted,
    /// `|` or `>` block scalar: always a string.
    Block,
}

/// One YAML node.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// Where the node starts (for a block mapping: its first key).
    pub pos: Pos,
    /// Explicit tag, resolved (`tag:yaml.org,2002:str`), if one was written.
    pub tag: Option<String>,
    /// The content.
    pub value: Value,
}

/// Content of a [`Node`].
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// A scalar: its text after YAML processing, and how it was written.
    Scalar { text: String, style: Style },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in source order.
    Map(Vec<Entry>),
}

/// A mapping entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: Node,
    pub value: Node,
}

const STR_TAG: &str = "tag:yaml.org,2002:str";

impl Node {
    /// The scalar's text and style; a `!!str` tag makes any scalar [`Style::Quoted`].
    pub fn scalar(&self) -> Option<(&str, Style)> {
        match &self.value {
            Value::Scalar { text, style } => {
                let style = if self.tag.as_deref() == Some(STR_TAG) {
                    Style::Quoted
                } else {
                    *style
                };
                Some((text, style))
            }
            _ => None,
        }
    }

    /// A plain `~`, `null`, `Null`, `NULL` or nothing at all.
    pub fn is_null(&self) -> bool {
        matches!(self.scalar(), Some((text, Style::Plain)) if super::scalar::is_null(text))
    }

    /// The entry under `key` of a mapping node.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|e| e.key.scalar().is_some_and(|(k, _)| k == key)),
            _ => None,
        }
    }

    /// What this node is, for messages: "a mapping", "a list", "`text`", "the quoted string "x"".
    pub fn describe(&self) -> String {
        match (&self.value, self.scalar()) {
            (Value::Map(_), _) => "a mapping".to_owned(),
            (Value::Seq(_), _) => "a list".to_owned(),
            (_, Some((text, Style::Plain))) if super::scalar::is_null(text) => {
                "nothing (null)".to_owned()
            }
            (_, Some((text, Style::Plain))) => format!("`{text}`"),
            (_, Some((text, _))) => format!("the quoted string \"{text}\""),
            (_, None) => "a value".to_owned(),
        }
    }

    fn count(&self) -> usize {
        1 + match &self.value {
            Value::Scalar { .. } => 0,
            Value::Seq(items) => items.iter().map(Node::count).sum(),
            Value::Map(entries) => entries
                .iter()
                .map(|e| e.key.count() + e.value.count())
                .sum(),
        }
    }
}

/// One parsed document and the position of its first node.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    pub root: Node,
}

/// Every problem with the text of one file, and the documents that could be read.
pub(crate) struct Parsed {
    pub documents: Vec<Document>,
    pub errors: Vec<Diagnostic>,
}

/// Parse `text` (named `file`) into documents, reporting tabs, syntax errors, duplicate keys and
/// unsupported YAML features. Null documents (empty, or only comments) are left out.
pub(crate) fn parse(file: &Path, text: &str) -> Parsed {
    let mut errors = tab_problems(file, text);
    let had_tabs = !errors.is_empty();
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    let mut documents = Vec::new();
    loop {
        match builder.next_document() {
            Ok(Some(root)) => {
                let mut root = root;
                check_document(file, &mut root, &FieldPath::default(), &mut errors);
                if !root.is_null() {
                    documents.push(Document { root });
                }
            }
            Ok(None) => break,
            Err(BuildError::Scan(e)) => {
                let message = e.kind().to_string();
                // A tab already reported makes the parser's own complaint about it redundant.
                if !(had_tabs && message.contains("tab")) {
                    let pos = Pos {
                        line: e.marker().line(),
                        column: e.marker().col() + 1,
                    };
                    errors.push(diag(
                        file,
                        pos,
                        None,
                        format!("invalid YAML: {message}"),
                        None,
                    ));
                }
                break;
            }
            Err(BuildError::Other(pos, message)) => {
                errors.push(diag(file, pos, None, message, None));
                break;
            }
        }
    }
    Parsed { documents, errors }
}

fn diag(
    file: &Path,
    pos: Pos,
    field: Option<String>,
    message: String,
    help: Option<String>,
) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: pos.line,
        column: pos.column,
        field,
        message,
        help,
    }
}

/// Every line whose indentation contains a tab. Lines that are blank or only a comment are
/// skipped: YAML allows tabs there. A tab at the start of a line inside a block scalar (`|`)
/// is content in YAML, but is reported too: in a manifest it is almost always a mistake.
pub(crate) fn tab_problems(file: &Path, text: &str) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let indent_len = line
            .find(|c: char| c != ' ' && c != '\t')
            .unwrap_or(line.len());
        let rest = &line[indent_len..];
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if let Some(tab) = line[..indent_len].find('\t') {
            out.push(diag(
                file,
                Pos {
                    line: i + 1,
                    column: tab + 1,
                },
                None,
                "tab character in indentation: YAML indents with spaces only".to_owned(),
                Some("replace the tab with spaces".to_owned()),
            ));
        }
    }
    out
}

/// Report duplicate keys (keeping the first), non-scalar keys, merge keys and unsupported
/// tags in `node`, recursively; `path` is the node's field path.
pub(crate) fn check_document(
    file: &Path,
    node: &mut Node,
    path: &FieldPath,
    errors: &mut Vec<Diagnostic>,
) {
    if let Some(tag) = &node.tag {
        let supported = ["str", "map", "seq"].map(|s| format!("tag:yaml.org,2002:{s}"));
        if !supported.contains(tag) {
            let shown = tag
                .strip_prefix("tag:yaml.org,2002:")
                .map_or(tag.clone(), |s| format!("!!{s}"));
            errors.push(diag(
                file,
                node.pos,
                path.to_field(),
                format!("YAML tag `{shown}` is not supported in manifests"),
                Some("remove the tag; quote the value if it is a string".to_owned()),
            ));
        }
    }
    match &mut node.value {
        Value::Scalar { .. } => {}
        Value::Seq(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                check_document(file, item, &path.index(i), errors);
            }
        }
        Value::Map(entries) => {
            let mut seen: HashMap<String, Pos> = HashMap::new();
            let mut kept = Vec::with_capacity(entries.len());
            for mut entry in std::mem::take(entries) {
                let Some((key, style)) = entry.key.scalar().map(|(k, s)| (k.to_owned(), s)) else {
                    errors.push(diag(
                        file,
                        entry.key.pos,
                        path.to_field(),
                        format!(
                            "a mapping key must be a string, found {}",
                            entry.key.describe()
                        ),
                        None,
                    ));
                    continue;
                };
                if key == "<<" && style == Style::Plain {
                    errors.push(diag(
                        file,
                        entry.key.pos,
                        path.to_field(),
                        "merge keys (`<<`) are not supported in manifests".to_owned(),
                        Some("write the fields out in full".to_owned()),
                    ));
                    continue;
                }
                if let Some(first) = seen.get(&key) {
                    errors.push(diag(
                        file,
                        entry.key.pos,
                        Some(path.key(&key).to_string()),
                        format!(
                            "duplicate key `{key}`: it is also set on line {}, column {}",
                            first.line, first.column
                        ),
                        Some(format!(
                            "keep one `{key}`; YAML does not say which one wins"
                        )),
                    ));
                    continue;
                }
                seen.insert(key.clone(), entry.key.pos);
                check_document(file, &mut entry.value, &path.key(&key), errors);
                kept.push(entry);
            }
            *entries = kept;
        }
    }
}

enum BuildError {
    Scan(ScanError),
    Other(Pos, String),
}

impl From<ScanError> for BuildError {
    fn from(e: ScanError) -> Self {
        BuildError::Scan(e)
    }
}

struct Builder<'t> {
    parser: Parser<'t, StrInput<'t>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl<'t> Builder<'t> {
    /// Next event that matters (comments and other presentation events skipped).
    fn next(&mut self) -> Result<Option<(Event<'t>, Span)>, BuildError> {
        loop {
            match self.parser.next() {
                None => return Ok(None),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok((event, span))) => match event {
                    Event::StreamStart
                    | Event::StreamEnd
                    | Event::DocumentStart(..)
                    | Event::DocumentEnd
                    | Event::Alias(_)
                    | Event::Scalar(..)
                    | Event::SequenceStart(..)
                    | Event::SequenceEnd
                    | Event::MappingStart(..)
                    | Event::MappingEnd
                    | Event::UnresolvedAlias(_) => return Ok(Some((event, span))),
                    _ => continue,
                },
            }
        }
    }

    /// The root node of the next document, or `None` at the end of the stream.
    fn next_document(&mut self) -> Result<Option<Node>, BuildError> {
        loop {
            let Some((event, span)) = self.next()? else {
                return Ok(None);
            };
            match event {
                Event::StreamStart => continue,
                Event::StreamEnd => return Ok(None),
                Event::DocumentStart(..) => {
                    self.anchors.clear();
                    let Some((first, first_span)) = self.next()? else {
                        return Err(unexpected_end(&span));
                    };
                    let root = self.node(first, first_span)?;
                    match self.next()? {
                        Some((Event::DocumentEnd, _)) => return Ok(Some(root)),
                        Some((_, s)) => return Err(unexpected(&s)),
                        None => return Err(unexpected_end(&span)),
                    }
                }
                _ => return Err(unexpected(&span)),
            }
        }
    }

    fn node(&mut self, event: Event<'t>, span: Span) -> Result<Node, BuildError> {
        let pos = Pos::from_span(&span);
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(BuildError::Other(
                pos,
                format!("document too large: more than {MAX_NODES} YAML nodes (alias expansion?)"),
            ));
        }
        let tag_of = |tag: Option<std::borrow::Cow<'_, serde_saphyr::granit_parser::Tag>>| {
            tag.map(|t| format!("{}{}", t.handle(), t.suffix()))
        };
        let (node, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => Style::Quoted,
                    ScalarStyle::Literal | ScalarStyle::Folded => Style::Block,
                };
                let value = Value::Scalar {
                    text: text.into_owned(),
                    style,
                };
                (
                    Node {
                        pos,
                        tag: tag_of(tag),
                        value,
                    },
                    anchor,
                )
            }
            Event::SequenceStart(_, anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let Some((ev, sp)) = self.next()? else {
                        return Err(unexpected_end(&span));
                    };
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, sp)?);
                }
                (
                    Node {
                        pos,
                        tag: tag_of(tag),
                        value: Value::Seq(items),
                    },
                    anchor,
                )
            }
            Event::MappingStart(_, anchor, tag) => {
                let mut entries = Vec::new();
                loop {
                    let Some((ev, sp)) = self.next()? else {
                        return Err(unexpected_end(&span));
                    };
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(ev, sp)?;
                    let Some((ev, sp)) = self.next()? else {
                        return Err(unexpected_end(&span));
                    };
                    let value = self.node(ev, sp)?;
                    entries.push(Entry { key, value });
                }
                (
                    Node {
                        pos,
                        tag: tag_of(tag),
                        value: Value::Map(entries),
                    },
                    anchor,
                )
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(BuildError::Other(
                        pos,
                        "alias to an unknown anchor".to_owned(),
                    ));
                };
                self.nodes += target.count();
                if self.nodes > MAX_NODES {
                    return Err(BuildError::Other(
                        pos,
                        format!(
                            "document too large: more than {MAX_NODES} YAML nodes after expanding aliases"
                        ),
                    ));
                }
                let mut copy = target.clone();
                copy.pos = pos;
                return Ok(copy);
            }
            _ => return Err(unexpected(&span)),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn unexpected(span: &Span) -> BuildError {
    BuildError::Other(
        Pos::from_span(span),
        "invalid YAML: unexpected structure".to_owned(),
    )
}

fn unexpected_end(span: &Span) -> BuildError {
    BuildError::Other(
        Pos::from_span(span),
        "invalid YAML: the document ends too early".to_owned(),
    )
}

#[cfg(test)]
mod tests;
