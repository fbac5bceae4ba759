//! The fly.toml as a tree with byte spans ([`TVal`]), and a reader ([`Cx`], [`Tbl`], [`Field`])
//! that records what happened to every key: carried into the manifest, dropped with a reason,
//! or refused with a located error. Nothing is dropped silently: a key the import code never
//! asks for is dropped by [`Tbl::finish`] with a reason, and the import's tests check that the
//! record covers every key of every real fly.toml.
//!
//! Inputs: TOML text, parsed by the `toml` crate (spans from `toml::de::DeTable`). Outputs: the
//! record in [`Cx`], turned into warnings and errors by [`super`].

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::duration::DurationStr;
use crate::load::Diagnostic;

/// A TOML value and the bytes it spans.
#[derive(Debug, Clone)]
pub(crate) struct TVal {
    pub span: Range<usize>,
    pub kind: TKind,
}

/// TOML value kinds.
#[derive(Debug, Clone)]
pub(crate) enum TKind {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<TVal>),
    /// Entries in source order.
    Table(Vec<TEntry>),
}

/// A table entry.
#[derive(Debug, Clone)]
pub(crate) struct TEntry {
    pub key: String,
    pub value: TVal,
}

impl TVal {
    /// "a string", "an integer", … for messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            TKind::Str(_) => "a string",
            TKind::Int(_) => "an integer",
            TKind::Float(_) => "a float",
            TKind::Bool(_) => "a boolean",
            TKind::Datetime(_) => "a date-time",
            TKind::Array(_) => "an array",
            TKind::Table(_) => "a table",
        }
    }

    /// The value as TOML-ish text for messages.
    pub fn show(&self) -> String {
        match &self.kind {
            TKind::Str(s) => format!("\"{s}\""),
            TKind::Int(i) => i.to_string(),
            TKind::Float(f) => f.to_string(),
            TKind::Bool(b) => b.to_string(),
            TKind::Datetime(d) => d.clone(),
            TKind::Array(_) => "an array".to_owned(),
            TKind::Table(_) => "a table".to_owned(),
        }
    }
}

/// Parse TOML text into a [`TVal`] table; on failure, every syntax error with its byte span.
pub(crate) fn parse(text: &str) -> Result<TVal, Vec<(Range<usize>, String)>> {
    let (table, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| (e.span().unwrap_or(0..0), e.message().trim().to_owned()))
            .collect());
    }
    let span = table.span();
    let mut bad = Vec::new();
    let entries = convert_table(table.get_ref(), &mut bad);
    if !bad.is_empty() {
        return Err(bad);
    }
    Ok(TVal {
        span,
        kind: TKind::Table(entries),
    })
}

fn convert_table(table: &DeTable<'_>, bad: &mut Vec<(Range<usize>, String)>) -> Vec<TEntry> {
    let mut entries: Vec<(usize, TEntry)> = table
        .iter()
        .map(|(k, v)| {
            (
                k.span().start,
                TEntry {
                    key: k.get_ref().to_string(),
                    value: convert(v.span(), v.get_ref(), bad),
                },
            )
        })
        .collect();
    entries.sort_by_key(|(start, _)| *start);
    entries.into_iter().map(|(_, e)| e).collect()
}

fn convert(span: Range<usize>, v: &DeValue<'_>, bad: &mut Vec<(Range<usize>, String)>) -> TVal {
    let kind = match v {
        DeValue::String(s) => TKind::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()) {
            Ok(n) => TKind::Int(n),
            Err(_) => {
                bad.push((span.clone(), format!("integer {i} does not fit in 64 bits")));
                TKind::Int(0)
            }
        },
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => TKind::Float(x),
            Err(_) => {
                bad.push((span.clone(), format!("cannot read the float {f}")));
                TKind::Float(0.0)
            }
        },
        DeValue::Boolean(b) => TKind::Bool(*b),
        DeValue::Datetime(d) => TKind::Datetime(d.to_string()),
        DeValue::Array(items) => TKind::Array(
            items
                .iter()
                .map(|item| convert(item.span(), item.get_ref(), bad))
                .collect(),
        ),
        DeValue::Table(t) => TKind::Table(convert_table(t, bad)),
    };
    TVal { span, kind }
}

/// What happened to keys, and the problems found: the import's record.
pub(crate) struct Cx<'t> {
    file: PathBuf,
    text: &'t str,
    /// Paths copied into the manifest, with their byte offset.
    pub carried: Vec<(usize, String)>,
    /// Paths left out, with their byte offset and why.
    pub dropped: Vec<(usize, String, String)>,
    /// Other things a person should know (defaults chosen, values converted), by offset.
    pub notes: Vec<(usize, String)>,
    /// Problems that make the import fail.
    pub errors: Vec<Diagnostic>,
}

impl<'t> Cx<'t> {
    pub fn new(file: &Path, text: &'t str) -> Self {
        Cx {
            file: file.to_path_buf(),
            text,
            carried: Vec::new(),
            dropped: Vec::new(),
            notes: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of byte `offset`.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    pub fn carry(&mut self, f: &Field<'_>) {
        self.carried.push((f.val.span.start, f.path.clone()));
    }

    pub fn drop(&mut self, f: &Field<'_>, reason: impl Into<String>) {
        self.dropped
            .push((f.val.span.start, f.path.clone(), reason.into()));
    }

    pub fn note(&mut self, offset: usize, message: String) {
        self.notes.push((offset, message));
    }

    pub fn error_at(
        &mut self,
        span: &Range<usize>,
        field: Option<&str>,
        message: String,
        help: Option<String>,
    ) {
        let (line, column) = self.line_col(span.start);
        self.errors.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            field: field.map(str::to_owned),
            message,
            help,
        });
    }

    pub fn error(&mut self, f: &Field<'_>, message: String, help: Option<String>) {
        let span = f.val.span.clone();
        self.error_at(&span, Some(&f.path), message, help);
    }

    fn expected(&mut self, f: &Field<'_>, what: &str) {
        self.error(
            f,
            format!(
                "expected {what}, found {} {}",
                f.val.type_name(),
                f.val.show()
            ),
            None,
        );
    }
}

/// A value at a dotted path (`services[0].internal_port`).
#[derive(Clone)]
pub(crate) struct Field<'v> {
    pub path: String,
    pub val: &'v TVal,
}

/// How a bare integer duration is read.
#[derive(Clone, Copy)]
pub(crate) enum BareNumber {
    /// `kill_timeout = 5` is five seconds (flyctl).
    Seconds,
    /// Check `interval = 10000` is ten seconds (flyctl's legacy patch, `patches.go`).
    Millis,
}

impl<'v> Field<'v> {
    pub fn new(path: String, val: &'v TVal) -> Self {
        Field { path, val }
    }

    /// A string, carried.
    pub fn str(&self, cx: &mut Cx<'_>) -> Option<String> {
        match &self.val.kind {
            TKind::Str(s) => {
                cx.carry(self);
                Some(s.clone())
            }
            _ => {
                cx.expected(self, "a string");
                None
            }
        }
    }

    /// A boolean, carried.
    pub fn bool(&self, cx: &mut Cx<'_>) -> Option<bool> {
        match self.val.kind {
            TKind::Bool(b) => {
                cx.carry(self);
                Some(b)
            }
            _ => {
                cx.expected(self, "true or false");
                None
            }
        }
    }

    /// A non-negative integer up to `max`, carried. With `legacy_string`, a string of digits
    /// is accepted too, as flyctl does for ports (`port = "80"`), with a note.
    pub fn uint(&self, cx: &mut Cx<'_>, max: u32, legacy_string: bool) -> Option<u32> {
        let n = match &self.val.kind {
            TKind::Int(n) => *n,
            TKind::Str(s) if legacy_string && s.parse::<i64>().is_ok() => {
                cx.note(
                    self.val.span.start,
                    format!(
                        "{}: the string \"{s}\" read as the number {s} (legacy fly.toml)",
                        self.path
                    ),
                );
                s.parse::<i64>().unwrap_or_default()
            }
            _ => {
                cx.expected(self, &format!("a whole number from 0 to {max}"));
                return None;
            }
        };
        match u32::try_from(n) {
            Ok(v) if v <= max => {
                cx.carry(self);
                Some(v)
            }
            _ => {
                cx.error(
                    self,
                    format!("{n} is out of range: expected 0 to {max}"),
                    None,
                );
                None
            }
        }
    }

    /// A duration: a string with units (`"15s"`, `"1m21s"`), or a bare integer read as
    /// `bare`. An empty string is ignored with a warning, as flyctl ignores it.
    pub fn duration(&self, cx: &mut Cx<'_>, bare: BareNumber) -> Option<DurationStr> {
        match &self.val.kind {
            TKind::Str(s) if s.trim().is_empty() => {
                cx.drop(self, "empty duration; ignored");
                None
            }
            TKind::Str(s) => match s.parse::<DurationStr>() {
                Ok(d) => {
                    cx.carry(self);
                    Some(d)
                }
                Err(e) => {
                    cx.error(self, format!("{e}"), None);
                    None
                }
            },
            TKind::Int(n) if *n >= 0 => {
                let n = n.unsigned_abs();
                let d = match bare {
                    BareNumber::Seconds => DurationStr::from_secs(n),
                    BareNumber::Millis => {
                        let d = DurationStr(std::time::Duration::from_millis(n));
                        cx.note(
                            self.val.span.start,
                            format!("{}: the bare number {n} read as milliseconds ({d}), as flyctl reads legacy check durations", self.path),
                        );
                        d
                    }
                };
                cx.carry(self);
                Some(d)
            }
            _ => {
                cx.expected(self, "a duration like \"15s\"");
                None
            }
        }
    }

    /// An array of strings, carried.
    pub fn str_list(&self, cx: &mut Cx<'_>) -> Option<Vec<String>> {
        let TKind::Array(items) = &self.val.kind else {
            cx.expected(self, "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match &item.kind {
                TKind::Str(s) => out.push(s.clone()),
                _ => {
                    let f = Field::new(format!("{}[{i}]", self.path), item);
                    cx.expected(&f, "a string");
                    return None;
                }
            }
        }
        cx.carry(self);
        Some(out)
    }

    /// A table, to read key by key.
    pub fn table(&self, cx: &mut Cx<'_>) -> Option<Tbl<'v>> {
        match &self.val.kind {
            TKind::Table(entries) => Some(Tbl::new(self.path.clone(), self.val, entries)),
            _ => {
                cx.expected(self, "a table");
                None
            }
        }
    }

    /// An array of tables (`[[services]]`), each with its indexed path. A single table is
    /// accepted as a one-element array, as flyctl does (`[mounts]`, `[[mounts]]`). An empty
    /// array is dropped with a warning.
    pub fn tables(&self, cx: &mut Cx<'_>) -> Option<Vec<Tbl<'v>>> {
        match &self.val.kind {
            TKind::Table(entries) => Some(vec![Tbl::new(self.path.clone(), self.val, entries)]),
            TKind::Array(items) if items.is_empty() => {
                cx.drop(self, "empty list; ignored");
                Some(Vec::new())
            }
            TKind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let f = Field::new(format!("{}[{i}]", self.path), item);
                    out.push(f.table(cx)?);
                }
                Some(out)
            }
            _ => {
                cx.expected(self, "a table or an array of tables");
                None
            }
        }
    }
}

/// A table being read: every key is either taken or dropped by [`Tbl::finish`].
pub(crate) struct Tbl<'v> {
    pub path: String,
    pub val: &'v TVal,
    entries: &'v [TEntry],
    taken: Vec<bool>,
}

impl<'v> Tbl<'v> {
    fn new(path: String, val: &'v TVal, entries: &'v [TEntry]) -> Self {
        Tbl {
            path,
            val,
            entries,
            taken: vec![false; entries.len()],
        }
    }

    /// The table itself as a [`Field`], for errors about it.
    pub fn field(&self) -> Field<'v> {
        Field::new(self.path.clone(), self.val)
    }

    /// Path of `key` in this table.
    pub fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Take `key`, marking it handled.
    pub fn take(&mut self, key: &str) -> Option<Field<'v>> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        self.taken[i] = true;
        Some(Field::new(self.child_path(key), &self.entries[i].value))
    }

    /// Take every key not taken yet, in source order.
    pub fn take_rest(&mut self) -> Vec<(String, Field<'v>)> {
        let mut out = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            if !self.taken[i] {
                self.taken[i] = true;
                out.push((e.key.clone(), Field::new(self.child_path(&e.key), &e.value)));
            }
        }
        out
    }

    /// Drop every key not taken, with `reason(key)`; an empty table is dropped as a whole.
    pub fn finish(mut self, cx: &mut Cx<'_>, reason: impl Fn(&str) -> String) {
        if self.entries.is_empty() {
            if !self.path.is_empty() {
                cx.drop(&self.field(), "empty table; nothing to import");
            }
            return;
        }
        for (key, f) in self.take_rest() {
            cx.drop(&f, reason(&key));
        }
    }
}
