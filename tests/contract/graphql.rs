//! Fly's GraphQL schema (`../shared/fly-api/fly-graphql-schema.graphql`, fly-go's copy) as a
//! checker for the GraphQL the client sends and the simulator answers.
//!
//! A small reader for the SDL (object, interface, input and enum types with their fields and
//! arguments) and for executable documents as the client writes them: one operation, fields,
//! aliases, arguments with `$variables` or literals, nested selections. Fragments and
//! directives in queries are reported as unsupported rather than guessed at.
//!
//! Checks, all against the schema:
//! - every selected field exists on its parent type, every argument on its field, and a
//!   variable passed to an argument has a compatible declared type;
//! - variables of input-object type carry only fields of that input type, every non-null one,
//!   and enum fields use one of the enum's values;
//! - a response has exactly the selected fields (GraphQL returns what was asked, no more, no
//!   less), non-null fields are not null, and scalars have their JSON kind.

use std::collections::BTreeMap;

use serde_json::Value;

/// A type reference as written: `[ReleaseUnprocessed!]!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef(pub String);

impl TypeRef {
    /// The named type inside lists and `!`.
    pub fn base(&self) -> &str {
        self.0.trim_matches(|c| c == '[' || c == ']' || c == '!')
    }
    /// Non-null at the outer level.
    pub fn non_null(&self) -> bool {
        self.0.ends_with('!')
    }
    /// A list at the outer level.
    pub fn is_list(&self) -> bool {
        self.0.trim_end_matches('!').starts_with('[')
    }
    /// The element type of a list.
    pub fn item(&self) -> TypeRef {
        let inner = self.0.trim_end_matches('!');
        TypeRef(inner[1..inner.len() - 1].to_owned())
    }
}

/// A field of an object, interface or input type.
#[derive(Debug, Clone)]
pub struct Field {
    /// Its type.
    pub ty: TypeRef,
    /// Arguments: name → type.
    pub args: BTreeMap<String, TypeRef>,
}

/// A named type of the schema.
#[derive(Debug, Clone)]
pub enum TypeDef {
    /// `type`, `interface` or `input`: fields by name.
    Fields(BTreeMap<String, Field>),
    /// `enum`: the values.
    Enum(Vec<String>),
}

/// The schema.
pub struct Schema {
    /// Types by name.
    pub types: BTreeMap<String, TypeDef>,
    /// Root query type name.
    pub query: String,
    /// Root mutation type name.
    pub mutation: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Punct(char),
    Spread,
    Str,
    Other(String),
}

fn tokenize(text: &str) -> Vec<Tok> {
    let b: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() || c == ',' {
            i += 1;
        } else if c == '#' {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '"' {
            if b[i..].starts_with(&['"', '"', '"']) {
                i += 3;
                while i < b.len() && !b[i..].starts_with(&['"', '"', '"']) {
                    i += 1;
                }
                i += 3;
            } else {
                i += 1;
                while i < b.len() && b[i] != '"' {
                    if b[i] == '\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            out.push(Tok::Str);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push(Tok::Name(b[start..i].iter().collect()));
        } else if b[i..].starts_with(&['.', '.', '.']) {
            out.push(Tok::Spread);
            i += 3;
        } else if "{}()[]:!=@$|&".contains(c) {
            out.push(Tok::Punct(c));
            i += 1;
        } else {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.' || b[i] == '-') {
                i += 1;
            }
            if i == start {
                i += 1;
            }
            out.push(Tok::Other(b[start..i].iter().collect()));
        }
    }
    out
}

struct Cursor {
    toks: Vec<Tok>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn name(&mut self) -> Option<String> {
        match self.next() {
            Some(Tok::Name(n)) => Some(n),
            _ => None,
        }
    }
    fn skip_strings(&mut self) {
        while self.peek() == Some(&Tok::Str) {
            self.pos += 1;
        }
    }
    /// Skips a balanced group starting at the current `open`.
    fn skip_group(&mut self, open: char, close: char) {
        if !self.eat(open) {
            return;
        }
        let mut depth = 1;
        while depth > 0 {
            match self.next() {
                Some(Tok::Punct(c)) if c == open => depth += 1,
                Some(Tok::Punct(c)) if c == close => depth -= 1,
                None => return,
                _ => {}
            }
        }
    }
    fn type_ref(&mut self) -> TypeRef {
        let mut s = String::new();
        if self.eat('[') {
            s.push('[');
            s.push_str(&self.type_ref().0);
            self.eat(']');
            s.push(']');
        } else if let Some(n) = self.name() {
            s.push_str(&n);
        }
        if self.eat('!') {
            s.push('!');
        }
        TypeRef(s)
    }
    fn skip_directives(&mut self) {
        while self.eat('@') {
            self.name();
            if self.peek() == Some(&Tok::Punct('(')) {
                self.skip_group('(', ')');
            }
        }
    }
    /// Skips one value (default values, literal arguments).
    fn skip_value(&mut self) {
        match self.peek() {
            Some(Tok::Punct('[')) => self.skip_group('[', ']'),
            Some(Tok::Punct('{')) => self.skip_group('{', '}'),
            Some(Tok::Punct('$')) => {
                self.pos += 1;
                self.name();
            }
            _ => {
                self.pos += 1;
            }
        }
    }
}

impl Schema {
    /// Reads `../shared/fly-api/fly-graphql-schema.graphql`.
    ///
    /// # Panics
    /// When the file cannot be read.
    pub fn load() -> Self {
        let path = super::openapi::fly_api_file("fly-graphql-schema.graphql");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        Self::parse(&text)
    }

    /// Parses SDL text.
    pub fn parse(text: &str) -> Self {
        let mut c = Cursor {
            toks: tokenize(text),
            pos: 0,
        };
        let mut schema = Schema {
            types: BTreeMap::new(),
            query: "Query".into(),
            mutation: "Mutation".into(),
        };
        while let Some(t) = c.next() {
            let Tok::Name(kw) = t else { continue };
            match kw.as_str() {
                "schema" => {
                    c.skip_directives();
                    c.eat('{');
                    while let Some(Tok::Name(op)) = c.peek().cloned() {
                        c.pos += 1;
                        c.eat(':');
                        let ty = c.name().unwrap_or_default();
                        match op.as_str() {
                            "query" => schema.query = ty,
                            "mutation" => schema.mutation = ty,
                            _ => {}
                        }
                    }
                    c.eat('}');
                }
                "type" | "interface" | "input" => {
                    let Some(name) = c.name() else { continue };
                    // implements A & B, directives: up to the body.
                    while !matches!(c.peek(), Some(Tok::Punct('{')) | None) {
                        if c.peek() == Some(&Tok::Punct('@')) {
                            c.skip_directives();
                        } else if matches!(c.peek(), Some(Tok::Name(n)) if is_definition_keyword(n))
                        {
                            break;
                        } else {
                            c.pos += 1;
                        }
                    }
                    if !c.eat('{') {
                        continue;
                    }
                    let mut fields = BTreeMap::new();
                    loop {
                        c.skip_strings();
                        if c.eat('}') || c.peek().is_none() {
                            break;
                        }
                        let Some(fname) = c.name() else { continue };
                        let mut args = BTreeMap::new();
                        if c.eat('(') {
                            loop {
                                c.skip_strings();
                                if c.eat(')') || c.peek().is_none() {
                                    break;
                                }
                                let Some(aname) = c.name() else { continue };
                                c.eat(':');
                                let aty = c.type_ref();
                                if c.eat('=') {
                                    c.skip_value();
                                }
                                c.skip_directives();
                                args.insert(aname, aty);
                            }
                        }
                        c.eat(':');
                        let ty = c.type_ref();
                        if c.eat('=') {
                            c.skip_value();
                        }
                        c.skip_directives();
                        fields.insert(fname, Field { ty, args });
                    }
                    schema.types.insert(name, TypeDef::Fields(fields));
                }
                "enum" => {
                    let Some(name) = c.name() else { continue };
                    c.skip_directives();
                    if !c.eat('{') {
                        continue;
                    }
                    let mut values = Vec::new();
                    loop {
                        c.skip_strings();
                        if c.eat('}') || c.peek().is_none() {
                            break;
                        }
                        if let Some(v) = c.name() {
                            values.push(v);
                        }
                        c.skip_directives();
                    }
                    schema.types.insert(name, TypeDef::Enum(values));
                }
                _ => {}
            }
        }
        schema
    }

    fn fields(&self, ty: &str) -> Option<&BTreeMap<String, Field>> {
        match self.types.get(ty) {
            Some(TypeDef::Fields(f)) => Some(f),
            _ => None,
        }
    }
}

fn is_definition_keyword(n: &str) -> bool {
    matches!(
        n,
        "type" | "interface" | "input" | "enum" | "scalar" | "union" | "directive" | "schema"
    )
}

/// What a query selected: response key → (field type, sub-selection).
#[derive(Debug, Clone, Default)]
pub struct Selection(pub BTreeMap<String, (TypeRef, Option<Selection>)>);

/// A checked operation.
#[derive(Debug, Default)]
pub struct Checked {
    /// What is wrong with the query text against the schema.
    pub problems: Vec<String>,
    /// Variables: name → declared type.
    pub variables: BTreeMap<String, TypeRef>,
    /// The selection on the root type.
    pub selection: Selection,
}

/// Checks an operation's text against the schema.
pub fn check_query(schema: &Schema, text: &str) -> Checked {
    let mut c = Cursor {
        toks: tokenize(text),
        pos: 0,
    };
    let mut out = Checked::default();
    let root = match c.peek() {
        Some(Tok::Name(n)) if n == "mutation" => {
            c.pos += 1;
            schema.mutation.clone()
        }
        Some(Tok::Name(n)) if n == "query" => {
            c.pos += 1;
            schema.query.clone()
        }
        _ => schema.query.clone(),
    };
    if matches!(c.peek(), Some(Tok::Name(_))) {
        c.pos += 1; // operation name
    }
    if c.eat('(') {
        while !c.eat(')') {
            if c.peek().is_none() {
                break;
            }
            c.eat('$');
            let Some(v) = c.name() else { continue };
            c.eat(':');
            let ty = c.type_ref();
            if c.eat('=') {
                c.skip_value();
            }
            if !schema.types.contains_key(ty.base()) && !is_builtin_scalar(ty.base()) {
                out.problems
                    .push(format!("variable ${v}: unknown type {}", ty.base()));
            }
            out.variables.insert(v, ty);
        }
    }
    let vars = out.variables.clone();
    out.selection = selection(schema, &mut c, &root, &vars, &mut out.problems);
    out
}

fn is_builtin_scalar(t: &str) -> bool {
    matches!(t, "String" | "Int" | "Float" | "Boolean" | "ID")
}

fn selection(
    schema: &Schema,
    c: &mut Cursor,
    parent: &str,
    vars: &BTreeMap<String, TypeRef>,
    problems: &mut Vec<String>,
) -> Selection {
    let mut sel = Selection::default();
    if !c.eat('{') {
        return sel;
    }
    loop {
        match c.peek() {
            None => break,
            Some(Tok::Punct('}')) => {
                c.pos += 1;
                break;
            }
            Some(Tok::Spread) => {
                problems.push(format!(
                    "{parent}: fragments are not supported by this checker"
                ));
                c.pos += 1;
                continue;
            }
            _ => {}
        }
        let Some(first) = c.name() else { continue };
        let (key, name) = if c.eat(':') {
            (first, c.name().unwrap_or_default())
        } else {
            (first.clone(), first)
        };
        let field = schema.fields(parent).and_then(|f| f.get(&name)).cloned();
        if field.is_none() && name != "__typename" {
            problems.push(format!("{parent} has no field `{name}`"));
        }
        if c.eat('(') {
            while !c.eat(')') {
                if c.peek().is_none() {
                    break;
                }
                let Some(arg) = c.name() else { continue };
                c.eat(':');
                let declared = field.as_ref().and_then(|f| f.args.get(&arg));
                if field.is_some() && declared.is_none() {
                    problems.push(format!("{parent}.{name} has no argument `{arg}`"));
                }
                if c.eat('$') {
                    let v = c.name().unwrap_or_default();
                    match (vars.get(&v), declared) {
                        (None, _) => problems.push(format!("${v} is not declared")),
                        (Some(vt), Some(at)) if !compatible(vt, at) => problems.push(format!(
                            "${v}: {} passed to {parent}.{name}({arg}: {})",
                            vt.0, at.0
                        )),
                        _ => {}
                    }
                } else {
                    c.skip_value();
                }
            }
        }
        if c.peek() == Some(&Tok::Punct('@')) {
            problems.push(format!(
                "{parent}.{name}: directives are not supported by this checker"
            ));
            c.skip_directives();
        }
        let ty = field
            .as_ref()
            .map(|f| f.ty.clone())
            .unwrap_or(TypeRef("String".into()));
        let sub = if c.peek() == Some(&Tok::Punct('{')) {
            Some(selection(schema, c, ty.base(), vars, problems))
        } else {
            if schema.fields(ty.base()).is_some() {
                problems.push(format!(
                    "{parent}.{name} is an object and needs a selection"
                ));
            }
            None
        };
        sel.0.insert(key, (ty, sub));
    }
    sel
}

/// A variable of type `var` may be passed to an argument of type `arg`: same named type and
/// list shape, and not nullable where the argument is non-null.
fn compatible(var: &TypeRef, arg: &TypeRef) -> bool {
    var.base() == arg.base()
        && var.is_list() == arg.is_list()
        && (var.non_null() || !arg.non_null())
}

/// Checks a variable value against its declared type; input objects field by field.
pub fn check_variable(schema: &Schema, ty: &TypeRef, value: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    if value.is_null() {
        if ty.non_null() {
            out.push(format!("{at}: null for non-null {}", ty.0));
        }
        return out;
    }
    if ty.is_list() {
        match value.as_array() {
            Some(a) => {
                for (i, v) in a.iter().enumerate() {
                    out.extend(check_variable(schema, &ty.item(), v, &format!("{at}[{i}]")));
                }
            }
            None => out.push(format!("{at}: expected a list")),
        }
        return out;
    }
    match schema.types.get(ty.base()) {
        Some(TypeDef::Fields(fields)) => {
            let Some(obj) = value.as_object() else {
                out.push(format!("{at}: expected an input object {}", ty.base()));
                return out;
            };
            for k in obj.keys() {
                if !fields.contains_key(k) {
                    out.push(format!("{at}: {} has no field `{k}`", ty.base()));
                }
            }
            for (k, f) in fields {
                match obj.get(k) {
                    Some(v) => out.extend(check_variable(schema, &f.ty, v, &format!("{at}.{k}"))),
                    None if f.ty.non_null() => {
                        out.push(format!("{at}: missing non-null {}.{k}", ty.base()))
                    }
                    None => {}
                }
            }
        }
        Some(TypeDef::Enum(values)) => {
            if !value
                .as_str()
                .is_some_and(|s| values.iter().any(|v| v == s))
            {
                out.push(format!("{at}: {value} is not a {} value", ty.base()));
            }
        }
        None => {
            if let Some(why) = scalar_mismatch(ty.base(), value) {
                out.push(format!("{at}: {why}"));
            }
        }
    }
    out
}

fn scalar_mismatch(ty: &str, v: &Value) -> Option<String> {
    let ok = match ty {
        "Int" => v.is_i64() || v.is_u64(),
        "Float" => v.is_number(),
        "Boolean" => v.is_boolean(),
        "String" | "ID" | "ISO8601DateTime" => v.is_string(),
        _ => true, // JSON and other custom scalars
    };
    (!ok).then(|| format!("{v} is not a {ty}"))
}

/// Checks a response `data` object against what was selected.
pub fn check_response(schema: &Schema, sel: &Selection, data: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(obj) = data.as_object() else {
        out.push(format!("{at}: expected an object"));
        return out;
    };
    for k in obj.keys() {
        if !sel.0.contains_key(k) {
            out.push(format!("{at}.{k}: returned but not selected"));
        }
    }
    for (k, (ty, sub)) in &sel.0 {
        match obj.get(k) {
            None => out.push(format!("{at}.{k}: selected but missing")),
            Some(v) => out.extend(check_value(
                schema,
                ty,
                sub.as_ref(),
                v,
                &format!("{at}.{k}"),
            )),
        }
    }
    out
}

fn check_value(
    schema: &Schema,
    ty: &TypeRef,
    sub: Option<&Selection>,
    v: &Value,
    at: &str,
) -> Vec<String> {
    if v.is_null() {
        return if ty.non_null() {
            vec![format!("{at}: null for non-null {}", ty.0)]
        } else {
            vec![]
        };
    }
    if ty.is_list() {
        let Some(a) = v.as_array() else {
            return vec![format!("{at}: expected a list")];
        };
        return a
            .iter()
            .flat_map(|e| check_value(schema, &ty.item(), sub, e, &format!("{at}[]")))
            .collect();
    }
    match (sub, schema.types.get(ty.base())) {
        (Some(s), _) => check_response(schema, s, v, at),
        (None, Some(TypeDef::Enum(values))) => {
            if v.as_str().is_some_and(|s| values.iter().any(|x| x == s)) {
                vec![]
            } else {
                vec![format!("{at}: {v} is not a {} value", ty.base())]
            }
        }
        _ => scalar_mismatch(ty.base(), v)
            .map(|w| vec![format!("{at}: {w}")])
            .unwrap_or_default(),
    }
}
