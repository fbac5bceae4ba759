//! The beads `issues.jsonl` format, classic (SQLite) era, as LowEndInsight's `.beads/` holds
//! it: one JSON object per line, sorted by `id`, labels, dependencies and comments embedded in
//! the issue (DESIGN.md §7; `../shared/reference/beads-glitchlab-lowendinsight.md` §1.3, from
//! steveyegge/beads `internal/types/types.go`).
//!
//! - [`BeadsIssue`]: the fields beads defines that opsctl reads or writes, typed, and every other
//!   key kept as it came in [`BeadsIssue::extra`], so that reading a file and writing it back
//!   loses nothing (the LowEndInsight file round-trips byte for byte, see the tests).
//! - [`BeadsFile`]: a whole file; lines that are not issues (v1.0 `bd export` writes
//!   `{"_type":"memory",…}` lines) are kept whole and written after the issues.
//! - [`to_line`]: one issue as one line, with Go's `encoding/json` HTML escapes (`<` → `\u003c`,
//!   `>` → `\u003e`, `&` → `\u0026`, U+2028/U+2029) so that a file `bd` wrote and opsctl rewrites
//!   differs only where an issue changed.
//! - [`hash_id`]: `<prefix>-<base36 hash>` ids, as beads derives them (`GenerateHashID`: SHA-256,
//!   base 36, 4 to 8 characters by database size, `docs/ADAPTIVE_IDS.md`).
//!
//! Submodules: [`map`] (opsctl records → issues and back), [`eng`] (writing an escalation into an
//! engineering repository's `.beads/issues.jsonl`).

pub mod eng;
pub mod map;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use eng::{BdCommand, EngTarget, EscalationWrite, write_escalation};
pub use map::{
    ExportOptions, ExportSummary, ImportSummary, OPSCTL_ID_PREFIXES, beads_id_for, deploy_to_issue,
    export_store, import_into_store, is_opsctl_id, issue_to_record, record_to_issue,
    scrub_credentials, scrub_value,
};

/// Errors reading or writing a beads file. Each names the file and, for a bad line, the line
/// number (1-based) and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum BeadsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is not a beads issue.
    #[error("{path}:{line}: {message}")]
    Line {
        /// File.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong (the JSON error, or the missing/mistyped field).
        message: String,
    },
    /// Two issues share an id.
    #[error("{path}:{line}: duplicate issue id `{id}` (first at line {first})")]
    DuplicateId {
        /// File.
        path: PathBuf,
        /// Line of the second one.
        line: usize,
        /// Line of the first one.
        first: usize,
        /// The id.
        id: String,
    },
    /// Another problem (a lock held, a `bd` command failing), in words.
    #[error("{0}")]
    Other(String),
}

/// One beads issue. Field names, order and omission rules are beads' own (`types.Issue`); only
/// `id` and `title` are required on read (as `bd import` requires). Timestamps are kept as the
/// strings they were (beads' SQLite era wrote nanoseconds and a local offset,
/// `2026-03-16T18:55:09.739399325-04:00`); opsctl writes RFC 3339 UTC (`…Z`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeadsIssue {
    /// `<prefix>-<hash>`, a child `<parent>.<n>`, or an explicit id.
    pub id: String,
    /// One line.
    pub title: String,
    /// Free text (markdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Design notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub design: Option<String>,
    /// Acceptance criteria.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acceptance_criteria: Option<String>,
    /// Notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    /// `open`, `in_progress`, `blocked`, `deferred`, `closed`, … (absent means `open`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// 0 (P0, critical) to 4; beads never omits it, opsctl always writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// `bug`, `feature`, `task`, `epic`, `chore`, … (absent means `task`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_type: Option<String>,
    /// Assignee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Human owner (git author email).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Actor that created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<String>,
    /// Why it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// A reference outside beads (`gh-9`, a URL, `opsctl:<record id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ref: Option<String>,
    /// Arbitrary JSON (opsctl keeps its own record here, under `opsctl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// Typed edges to other issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<BeadsDependency>>,
    /// Comments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<BeadsComment>>,
    /// Every other key, as it was (`started_at`, `due_at`, `_type`, `dependency_count`, …).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl BeadsIssue {
    /// A bare issue: `id`, `title`, nothing else.
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            description: None,
            design: None,
            acceptance_criteria: None,
            notes: None,
            status: None,
            priority: None,
            issue_type: None,
            assignee: None,
            owner: None,
            created_at: None,
            created_by: None,
            updated_at: None,
            closed_at: None,
            close_reason: None,
            external_ref: None,
            metadata: None,
            labels: None,
            dependencies: None,
            comments: None,
            extra: BTreeMap::new(),
        }
    }

    /// Labels (empty when absent).
    pub fn labels(&self) -> &[String] {
        self.labels.as_deref().unwrap_or(&[])
    }

    /// Dependencies (empty when absent).
    pub fn dependencies(&self) -> &[BeadsDependency] {
        self.dependencies.as_deref().unwrap_or(&[])
    }
}

/// A dependency edge: `issue_id` depends on `depends_on_id` with meaning `type` (`blocks`,
/// `parent-child`, `related`, `caused-by`, …; any string of up to 50 characters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeadsDependency {
    /// The issue holding the edge.
    pub issue_id: String,
    /// The issue it points to (may have another prefix: a cross-namespace edge).
    pub depends_on_id: String,
    /// Edge type.
    #[serde(rename = "type")]
    pub kind: String,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Other keys (`metadata`, `thread_id`), as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A comment. `id` was an integer before beads 1.0 and is a string since; both are kept as
/// they came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BeadsComment {
    /// Integer (classic) or string (1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The issue commented on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_id: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Text (markdown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// Other keys, as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One line of a beads file.
#[derive(Debug, Clone, PartialEq)]
pub enum BeadsLine {
    /// An issue (no `_type`, or `_type: "issue"`).
    Issue(Box<BeadsIssue>),
    /// Anything else beads writes there (`{"_type":"memory",…}`), kept whole.
    Other(Value),
}

/// A whole `issues.jsonl`: issues and other lines, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeadsFile {
    /// The lines.
    pub lines: Vec<BeadsLine>,
}

impl BeadsFile {
    /// Parse `text` (the contents of `path`, named in errors). Blank lines are skipped.
    ///
    /// # Errors
    /// [`BeadsError::Line`] for a line that is not JSON, not an object, or lacks a string
    /// `id`/`title`; [`BeadsError::DuplicateId`] for an id seen twice.
    pub fn parse(path: &Path, text: &str) -> Result<Self, BeadsError> {
        let mut lines = Vec::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            if raw.trim().is_empty() {
                continue;
            }
            let parsed = parse_line(raw).map_err(|message| BeadsError::Line {
                path: path.to_owned(),
                line,
                message,
            })?;
            if let BeadsLine::Issue(issue) = &parsed {
                if let Some(&first) = seen.get(&issue.id) {
                    return Err(BeadsError::DuplicateId {
                        path: path.to_owned(),
                        line,
                        first,
                        id: issue.id.clone(),
                    });
                }
                seen.insert(issue.id.clone(), line);
            }
            lines.push(parsed);
        }
        Ok(Self { lines })
    }

    /// Read and parse `path`.
    ///
    /// # Errors
    /// [`BeadsError::Io`] when it cannot be read, else as [`BeadsFile::parse`].
    pub fn read(path: &Path) -> Result<Self, BeadsError> {
        let text = std::fs::read_to_string(path).map_err(|source| BeadsError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// The issues, in file order.
    pub fn issues(&self) -> impl Iterator<Item = &BeadsIssue> {
        self.lines.iter().filter_map(|l| match l {
            BeadsLine::Issue(i) => Some(&**i),
            BeadsLine::Other(_) => None,
        })
    }

    /// The file as text: issues sorted by id (byte order, as beads sorts), then the other
    /// lines in their order; one line each, `\n`-terminated.
    pub fn to_text(&self) -> String {
        let mut issues: Vec<&BeadsIssue> = self.issues().collect();
        issues.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = String::new();
        for issue in issues {
            out.push_str(&to_line(issue));
            out.push('\n');
        }
        for line in &self.lines {
            if let BeadsLine::Other(v) = line {
                out.push_str(&to_line(v));
                out.push('\n');
            }
        }
        out
    }
}

/// Parse one line.
fn parse_line(raw: &str) -> Result<BeadsLine, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = &value else {
        return Err("not a JSON object (each line is one issue)".to_owned());
    };
    match map.get("_type").and_then(Value::as_str) {
        Some("issue") | None => {}
        Some(_) => return Ok(BeadsLine::Other(value)),
    }
    for field in ["id", "title"] {
        match map.get(field) {
            Some(Value::String(_)) => {}
            Some(_) => return Err(format!("field `{field}`: expected a string")),
            None => return Err(format!("field `{field}` is missing")),
        }
    }
    let issue = issue_from_value(value).map_err(|e| {
        // serde_json's messages name the type ("invalid type: string, expected i64"); find the
        // field by trying each known one.
        format!(
            "{}: {e}",
            first_bad_field(raw).unwrap_or_else(|| "issue".into())
        )
    })?;
    Ok(BeadsLine::Issue(Box::new(issue)))
}

/// An issue from its JSON object. An explicit `null` (beads omits empty fields, other writers
/// may not) would read as an absent field and be lost on writing: such keys go to `extra`,
/// which writes them back.
///
/// # Errors
/// When the value is not an object or a known field has the wrong type.
pub fn issue_from_value(value: Value) -> Result<BeadsIssue, serde_json::Error> {
    let Value::Object(mut map) = value else {
        return serde_json::from_value(value);
    };
    let nulls: Vec<String> = map
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for k in &nulls {
        map.remove(k);
    }
    let mut issue: BeadsIssue = serde_json::from_value(Value::Object(map))?;
    for k in nulls {
        issue.extra.insert(k, Value::Null);
    }
    Ok(issue)
}

/// The first known field whose value has the wrong type, as `field `name``.
fn first_bad_field(raw: &str) -> Option<String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(raw) else {
        return None;
    };
    for (key, value) in &map {
        let mut probe = serde_json::Map::new();
        probe.insert("id".into(), Value::String(String::new()));
        probe.insert("title".into(), Value::String(String::new()));
        probe.insert(key.clone(), value.clone());
        if serde_json::from_value::<BeadsIssue>(Value::Object(probe)).is_err() {
            return Some(format!("field `{key}`"));
        }
    }
    None
}

/// One value as one JSON line, escaped as Go's `json.Marshal` escapes (HTML-safe), no newline.
pub fn to_line<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    // Serialising owned JSON-compatible types into a Vec cannot fail.
    value
        .serialize(&mut ser)
        .expect("JSON serialisation of a beads line");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// serde_json's compact formatter, with Go's HTML-safe escapes in strings.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            let esc = match ch {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + ch.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Lowercase base-36 digits of `bytes` read as a big-endian number, most significant first.
fn base36(bytes: &[u8]) -> String {
    // Repeated division of a big number held in bytes; 32 bytes → ~50 digits.
    let mut num: Vec<u8> = bytes.to_vec();
    let mut digits = Vec::new();
    while num.iter().any(|&b| b != 0) {
        let mut rem: u32 = 0;
        for b in num.iter_mut() {
            let cur = (rem << 8) | u32::from(*b);
            *b = (cur / 36) as u8;
            rem = cur % 36;
        }
        digits.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[rem as usize]);
    }
    if digits.is_empty() {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("ascii")
}

/// The base-36 SHA-256 of `seed`, as beads' `GenerateHashID` builds the hash part of an id.
pub fn hash36(seed: &str) -> String {
    use sha2::Digest;
    base36(&sha2::Sha256::digest(seed.as_bytes()))
}

/// How many hash characters beads uses for a database of `issues` issues
/// (`docs/ADAPTIVE_IDS.md`: 4 up to about 500, 5 up to about 1,500, then 6; bounded 4..=8).
pub fn adaptive_len(issues: usize) -> usize {
    match issues {
        0..=500 => 4,
        501..=1500 => 5,
        _ => 6,
    }
}

/// `<prefix>-<first len chars of hash36(seed)>`, lengthened one character at a time while
/// `taken` says the id is used (a collision), up to the whole hash.
pub fn hash_id(prefix: &str, seed: &str, len: usize, taken: impl Fn(&str) -> bool) -> String {
    let hash = hash36(seed);
    let mut n = len.clamp(1, hash.len());
    loop {
        let id = format!("{prefix}-{}", &hash[..n]);
        if !taken(&id) || n == hash.len() {
            return id;
        }
        n += 1;
    }
}

/// The issue prefix of a beads folder's `config.yaml` (`issue-prefix: "lowendinsight"`), when
/// set and not commented out.
pub fn config_prefix(beads_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(beads_dir.join("config.yaml")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix("issue-prefix:")?;
        let v = rest.split(" #").next()?.trim().trim_matches(['"', '\'']);
        (!v.is_empty()).then(|| v.trim_end_matches('-').to_owned())
    })
}

/// Whether `prefix` is a usable beads prefix: lowercase letters, digits and `-`, starting with
/// a letter or digit, not ending with `-`.
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !prefix.starts_with('-')
        && !prefix.ends_with('-')
}

#[cfg(test)]
mod tests;
