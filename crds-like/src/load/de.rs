//! A serde [`Deserializer`](serde::Deserializer) over a [`Node`] tree: typed reading that
//! knows where every value was written and how, and that goes on after a mistake.
//!
//! Why not `serde_saphyr::from_str` straight into the types: serde stops at the first error,
//! while DESIGN.md §3 and STYLE.md ask for every error, each located. Reading from the tree
//! lets most mistakes be recorded as *soft* errors in [`Ctx`] while deserialisation goes on
//! with a placeholder (the document is rejected anyway, so a placeholder never escapes):
//! - a string field given an unquoted `no`, `on`, `0777`, `1e3`, `12:30`, `8080` ("quote it"),
//! - a number or boolean field given something else (`regions: {iad: two}`),
//! - an unknown field (the expected fields come from serde's `deserialize_struct`),
//! - an unknown enum value.
//!
//! What cannot go on (a missing field, a mapping where a scalar belongs, a custom
//! `Deserialize` refusing a value) is a *hard* [`DeError`], located at the innermost node.
//! Inputs: a [`Node`] from [`super::tree`]. Outputs: the typed value, soft errors in [`Ctx`].

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

use serde::de::{self, IntoDeserializer, Visitor};

mod access;

use access::{MapAcc, MapEnum, SeqAcc};

use super::path::FieldPath;
use super::scalar::{self, Core};
use super::spelling::{list, one_of, suggest};
use super::tree::{Entry, Node, Pos, Style, Value};
use crate::load::Diagnostic;

/// Shared state of one deserialisation: the file name and the soft errors found so far.
pub(crate) struct Ctx<'a> {
    pub file: &'a Path,
    pub errors: RefCell<Vec<Diagnostic>>,
}

impl<'a> Ctx<'a> {
    pub fn new(file: &'a Path) -> Self {
        Ctx {
            file,
            errors: RefCell::new(Vec::new()),
        }
    }

    fn push(&self, pos: Pos, path: &FieldPath, message: String, help: Option<String>) {
        self.errors.borrow_mut().push(Diagnostic {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            field: path.to_field(),
            message,
            help,
        });
    }
}

/// An error that stopped deserialisation, located at the innermost node known.
#[derive(Debug)]
pub(crate) struct DeError {
    pub message: String,
    pub help: Option<String>,
    pub pos: Option<Pos>,
    pub path: Option<FieldPath>,
    missing: Option<&'static str>,
}

impl DeError {
    fn new(message: String) -> Self {
        DeError {
            message,
            help: None,
            pos: None,
            path: None,
            missing: None,
        }
    }

    /// As a [`Diagnostic`] in `file`.
    pub fn into_diagnostic(self, file: &Path) -> Diagnostic {
        let pos = self.pos.unwrap_or_default();
        Diagnostic {
            file: file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            field: self.path.and_then(|p| p.to_field()),
            message: self.message,
            help: self.help,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        let mut e = DeError::new(format!("missing field `{field}`"));
        e.missing = Some(field);
        e.help = Some(format!("add `{field}`: it is required"));
        e
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {unexp}"))
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {unexp}"))
    }
}

/// Deserializer for one node at a field path.
pub(crate) struct NodeDe<'a> {
    node: &'a Node,
    path: FieldPath,
    ctx: &'a Ctx<'a>,
}

impl<'a> NodeDe<'a> {
    pub fn new(node: &'a Node, path: FieldPath, ctx: &'a Ctx<'a>) -> Self {
        NodeDe { node, path, ctx }
    }

    fn soft(&self, message: String, help: Option<String>) {
        self.ctx.push(self.node.pos, &self.path, message, help);
    }

    fn hard(&self, message: String, help: Option<String>) -> DeError {
        let mut e = DeError::new(message);
        e.help = help;
        self.locate(e)
    }

    /// Give `e` this node's position and path unless it already has a deeper one.
    fn locate(&self, mut e: DeError) -> DeError {
        if e.pos.is_none() {
            e.pos = Some(self.node.pos);
            e.path = Some(match e.missing {
                Some(field) => self.path.key(field),
                None => self.path.clone(),
            });
        }
        e
    }

    /// The plain text of a scalar that must be a number, or a soft error and `None`.
    fn number_text(&self, what: &str) -> Option<&'a str> {
        match self.node.scalar() {
            Some((text, Style::Plain)) if !scalar::is_null(text) => Some(text),
            Some((text, Style::Quoted | Style::Block)) => {
                // Only suggest dropping the quotes when what is inside is a number.
                let help = text
                    .trim()
                    .parse::<f64>()
                    .is_ok()
                    .then(|| format!("remove the quotes: {}", text.trim()));
                self.soft(
                    format!("expected {what}, found the quoted string \"{text}\""),
                    help,
                );
                None
            }
            _ => {
                self.soft(
                    format!("expected {what}, found {}", self.node.describe()),
                    None,
                );
                None
            }
        }
    }

    fn integer<T>(&self, min: i128, max: i128) -> Option<T>
    where
        T: TryFrom<i128>,
    {
        let what = if min < 0 {
            "a whole number"
        } else {
            "a whole number (0 or more)"
        };
        let text = self.number_text(what)?;
        let body = text.strip_prefix('-').unwrap_or(text);
        if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit()) {
            self.soft(format!("expected {what}, found `{text}`"), None);
            return None;
        }
        if body.len() > 1 && body.starts_with('0') {
            let plain = body.trim_start_matches('0');
            let plain = if plain.is_empty() { "0" } else { plain };
            self.soft(
                format!("`{text}` has a leading zero, which YAML 1.1 reads as an octal number"),
                Some(format!("write {plain}")),
            );
            return None;
        }
        match text.parse::<i128>() {
            Ok(v) if (min..=max).contains(&v) => T::try_from(v).ok(),
            _ => {
                self.soft(
                    format!("`{text}` is out of range: expected {min} to {max}"),
                    None,
                );
                None
            }
        }
    }

    fn float(&self) -> Option<f64> {
        let text = self.number_text("a number")?;
        match scalar::resolve_core(text) {
            Core::Unsigned(v) => Some(v as f64),
            Core::Signed(v) => Some(v as f64),
            Core::Float(v) if v.is_finite() => Some(v),
            _ => {
                self.soft(format!("expected a number, found `{text}`"), None);
                None
            }
        }
    }

    /// The text of a scalar that must be a string; soft errors for unquoted look-alikes.
    fn string(&self) -> &'a str {
        match self.node.scalar() {
            Some((text, Style::Plain)) => {
                if scalar::is_null(text) {
                    self.soft(
                        format!("expected a string, found {}", self.node.describe()),
                        Some("write a value, or \"\" for an empty string".to_owned()),
                    );
                } else if let Some(h) = scalar::string_hazard(text) {
                    self.soft(
                        format!(
                            "unquoted `{text}` is {} {}, but this field is a string: quote it",
                            h.reads_as,
                            h.version()
                        ),
                        Some(format!("write \"{text}\" in quotes")),
                    );
                }
                text
            }
            Some((text, _)) => text,
            None => {
                self.soft(
                    format!("expected a string, found {}", self.node.describe()),
                    None,
                );
                ""
            }
        }
    }

    fn entries(&self) -> Option<&'a [Entry]> {
        match &self.node.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }
}

macro_rules! deserialize_integer {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v: $ty = self
                .integer(i128::from(<$ty>::MIN), i128::from(<$ty>::MAX))
                .unwrap_or_default();
            visitor.$visit(v).map_err(|e| self.locate(e))
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDe<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match (&self.node.value, self.node.scalar()) {
            (Value::Map(entries), _) => {
                visitor.visit_map(MapAcc::new(entries.iter().collect(), &self))
            }
            (Value::Seq(items), _) => visitor.visit_seq(SeqAcc::new(items, &self)),
            (_, Some((text, Style::Plain))) => match scalar::resolve_core(text) {
                Core::Null => visitor.visit_unit(),
                Core::Bool(b) => visitor.visit_bool(b),
                Core::Unsigned(v) => visitor.visit_u64(v),
                Core::Signed(v) => visitor.visit_i64(v),
                Core::Float(v) => visitor.visit_f64(v),
                Core::Str => visitor.visit_str(text),
            },
            (_, Some((text, _))) => visitor.visit_str(text),
            (_, None) => visitor.visit_unit(),
        };
        result.map_err(|e| self.locate(e))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = match self.node.scalar() {
            Some(("true" | "True" | "TRUE", Style::Plain)) => true,
            Some(("false" | "False" | "FALSE", Style::Plain)) => false,
            _ => {
                self.soft(
                    format!("expected true or false, found {}", self.node.describe()),
                    Some("write true or false, unquoted".to_owned()),
                );
                false
            }
        };
        visitor.visit_bool(value).map_err(|e| self.locate(e))
    }

    deserialize_integer!(deserialize_i8, visit_i8, i8);
    deserialize_integer!(deserialize_i16, visit_i16, i16);
    deserialize_integer!(deserialize_i32, visit_i32, i32);
    deserialize_integer!(deserialize_i64, visit_i64, i64);
    deserialize_integer!(deserialize_u8, visit_u8, u8);
    deserialize_integer!(deserialize_u16, visit_u16, u16);
    deserialize_integer!(deserialize_u32, visit_u32, u32);
    deserialize_integer!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let v = self.float().unwrap_or_default();
        visitor.visit_f64(v).map_err(|e| self.locate(e))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.string();
        visitor.visit_str(text).map_err(|e| self.locate(e))
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let text = self.string();
        visitor
            .visit_bytes(text.as_bytes())
            .map_err(|e| self.locate(e))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none().map_err(|e| self.locate(e))
        } else {
            let (node, path, ctx) = (self.node, self.path.clone(), self.ctx);
            visitor
                .visit_some(self)
                .map_err(|e| NodeDe { node, path, ctx }.locate(e))
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if !self.node.is_null() {
            return Err(self.hard(
                format!("expected nothing (null), found {}", self.node.describe()),
                None,
            ));
        }
        visitor.visit_unit().map_err(|e| self.locate(e))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let (node, path, ctx) = (self.node, self.path.clone(), self.ctx);
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| NodeDe { node, path, ctx }.locate(e))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        const EMPTY: &[Node] = &[];
        let items: &[Node] = match &self.node.value {
            Value::Seq(items) => items,
            _ => {
                let help = self
                    .node
                    .is_null()
                    .then(|| "write [] for an empty list".to_owned());
                self.soft(
                    format!("expected a list, found {}", self.node.describe()),
                    help,
                );
                EMPTY
            }
        };
        visitor
            .visit_seq(SeqAcc::new(items, &self))
            .map_err(|e| self.locate(e))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let entries = match self.entries() {
            Some(entries) => entries.iter().collect(),
            None => {
                let help = self
                    .node
                    .is_null()
                    .then(|| "write {} for an empty mapping".to_owned());
                self.soft(
                    format!("expected a mapping, found {}", self.node.describe()),
                    help,
                );
                Vec::new()
            }
        };
        visitor
            .visit_map(MapAcc::new(entries, &self))
            .map_err(|e| self.locate(e))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let Some(entries) = self.entries() else {
            let expected = list(fields);
            if self.node.is_null() {
                self.soft(
                    format!("expected a mapping with {expected}, found nothing (null)"),
                    Some("write {} to take every default".to_owned()),
                );
                return visitor
                    .visit_map(MapAcc::new(Vec::new(), &self))
                    .map_err(|e| self.locate(e));
            }
            return Err(self.hard(
                format!(
                    "expected a mapping with {expected}, found {}",
                    self.node.describe()
                ),
                None,
            ));
        };
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry.key.scalar() {
                Some((key, _)) if !fields.contains(&key) => {
                    let help = suggest(key, fields).map(|s| format!("did you mean `{s}`?"));
                    self.ctx.push(
                        entry.key.pos,
                        &self.path.key(key),
                        format!("unknown field `{key}`; expected {}", list(fields)),
                        help,
                    );
                }
                _ => known.push(entry),
            }
        }
        visitor
            .visit_map(MapAcc::new(known, &self))
            .map_err(|e| self.locate(e))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if let Some((text, _)) = self.node.scalar() {
            // An unknown value is a soft error; reading goes on with the first variant as a
            // placeholder (the document is rejected anyway).
            let variant = match variants.first() {
                Some(first) if !variants.contains(&text) => {
                    let help = suggest(text, variants).map(|s| format!("did you mean `{s}`?"));
                    self.soft(
                        format!("unknown value `{text}`; expected {}", one_of(variants)),
                        help,
                    );
                    first
                }
                _ => text,
            };
            return visitor
                .visit_enum(variant.into_deserializer())
                .map_err(|e: DeError| self.locate(e));
        }
        match self.entries() {
            Some([entry]) => visitor
                .visit_enum(MapEnum {
                    entry,
                    parent: &self,
                })
                .map_err(|e| self.locate(e)),
            _ => Err(self.hard(
                format!(
                    "expected {}, found {}",
                    one_of(variants),
                    self.node.describe()
                ),
                None,
            )),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.scalar() {
            Some((text, _)) => visitor.visit_str(text).map_err(|e| self.locate(e)),
            None => Err(self.hard(
                format!("expected a name, found {}", self.node.describe()),
                None,
            )),
        }
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

#[cfg(test)]
mod tests;
