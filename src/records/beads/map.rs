//! opsctl records ↔ beads issues (DESIGN.md §7).
//!
//! Export (`opsctl records export`): every deploy ([`DeployRecord`]) and every other record
//! ([`Record`]) becomes one issue:
//!
//! | beads field | from |
//! |---|---|
//! | `id` | `<prefix>-<8 base-36 chars of SHA-256(opsctl id)>` ([`beads_id_for`]); stable across exports |
//! | `title`, `description` | the record's, credentials in URLs scrubbed |
//! | `status` | `open`, `in_progress`, `blocked`, `closed` (deploys: in progress → `in_progress`, halted → `blocked`, rollback failed → `open`, others → `closed`) |
//! | `priority` | the record's (deploys: 2, failed or rolled back 1, rollback failed 0) |
//! | `issue_type` | incident, escalation → `bug`; cost snapshot → `chore`; others → `task` (beads classic types only) |
//! | `labels` | the record's plus `ops`, `opsctl:<kind>`, `app:<app>` (deploys also `deploy`, `result:<status>`), sorted |
//! | `dependencies` | one per link: `caused-by`, `related`, `parent-child`, target mapped to its beads id (a target that is not an opsctl id, e.g. `eng-x1y`, is kept as written) |
//! | `created_at`, `updated_at`, `closed_at` | RFC 3339, UTC |
//! | `external_ref` | `opsctl:<record id>` |
//! | `metadata.opsctl` | `{id, kind, app, data}` (deploys: `{id, kind: "deploy", app, deploy: <the record less leases>}`), credentials in URLs scrubbed |
//!
//! Import (`opsctl records import FILE`): every issue is stored whole as a record of kind
//! [`RecordKind::Bead`] with id `bead-<issue id>` and the issue in `data`; status, priority,
//! labels, title and timestamps are copied for listing. Imported issues are **never** turned
//! back into live deploys, incidents or approvals: a file could otherwise forge the successful
//! deploys that the governance burn-in counts, or an approval. Re-export writes the issue from
//! `data` unchanged, so import → export is lossless. An imported issue whose id equals that of
//! a native record's issue is not exported (the native record wins) and is counted in
//! [`ExportSummary::shadowed`].

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use super::{BeadsDependency, BeadsFile, BeadsIssue, BeadsLine, hash_id};
use crate::records::{
    DeployRecord, DeployStatus, Record, RecordKind, RecordStatus, RecordStore, StoreError,
};

/// Id prefixes of opsctl's own records (`deploy-<ulid>`, `incident-<ulid>`, …).
pub const OPSCTL_ID_PREFIXES: &[&str] = &[
    "deploy-",
    "incident-",
    "postmortem-",
    "approval-",
    "escalation-",
    "check-",
    "cost_snapshot-",
];

/// Hash characters in an exported id: beads' maximum, so ids stay stable as the store grows
/// (beads' adaptive 4–6 would change length with the count) and collide with odds ~1e-5 at
/// 10,000 records; a collision lengthens the later record's id.
const ID_HASH_LEN: usize = 8;

/// Export settings.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Issue prefix (`ops` unless configured).
    pub prefix: String,
    /// `created_by` of the issues and edges.
    pub actor: String,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            prefix: "ops".into(),
            actor: "opsctl".into(),
        }
    }
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExportSummary {
    /// Issues from deploy records.
    pub deploys: usize,
    /// Issues from other native records.
    pub records: usize,
    /// Issues that were imported earlier, written back unchanged.
    pub imported: usize,
    /// Imported issues not written because a native record has the same id.
    pub shadowed: usize,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportSummary {
    /// Issues in the file.
    pub issues: usize,
    /// New records.
    pub created: usize,
    /// Records that changed (a new snapshot appended).
    pub updated: usize,
    /// Records already stored exactly so (nothing appended).
    pub unchanged: usize,
    /// Non-issue lines (`_type: memory`, …) not imported.
    pub skipped_lines: usize,
}

/// Whether `id` is one of opsctl's record ids (`<kind>-<26-char ulid>`).
pub fn is_opsctl_id(id: &str) -> bool {
    OPSCTL_ID_PREFIXES.iter().any(|p| {
        id.strip_prefix(p)
            .is_some_and(|rest| rest.len() == 26 && rest.chars().all(|c| c.is_ascii_alphanumeric()))
    })
}

/// The beads id of opsctl record `opsctl_id` under `prefix` (ignoring collisions, which
/// [`export_store`] resolves): `ops-k3j9x0a2`.
pub fn beads_id_for(prefix: &str, opsctl_id: &str) -> String {
    hash_id(prefix, opsctl_id, ID_HASH_LEN, |_| false)
}

/// RFC 3339 in UTC with `Z`.
fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `text` with the credentials of any `scheme://user:password@host` URL replaced by
/// `[redacted]` (records hold no secrets by contract; this is the second lock).
pub fn scrub_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("[redacted]");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `value` with [`scrub_credentials`] applied to every string in it.
pub fn scrub_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(scrub_credentials(s)),
        Value::Array(a) => Value::Array(a.iter().map(scrub_value).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), scrub_value(v))).collect())
        }
        other => other.clone(),
    }
}

fn status_str(s: RecordStatus) -> &'static str {
    match s {
        RecordStatus::Open => "open",
        RecordStatus::InProgress => "in_progress",
        RecordStatus::Blocked => "blocked",
        RecordStatus::Closed => "closed",
    }
}

fn sorted_labels(labels: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = labels.into_iter().collect();
    v.sort();
    v.dedup();
    v
}

/// The issue of a non-deploy record. `id_of` maps an opsctl id to its beads id (links).
pub fn record_to_issue(
    rec: &Record,
    id_of: &dyn Fn(&str) -> String,
    opts: &ExportOptions,
) -> BeadsIssue {
    let id = id_of(&rec.id);
    let mut issue = BeadsIssue::new(id.clone(), scrub_credentials(&rec.title));
    if !rec.description.is_empty() {
        issue.description = Some(scrub_credentials(&rec.description));
    }
    issue.status = Some(status_str(rec.status).into());
    issue.priority = Some(i64::from(rec.priority.min(4)));
    issue.issue_type = Some(
        match rec.kind {
            RecordKind::Incident | RecordKind::Escalation => "bug",
            RecordKind::CostSnapshot => "chore",
            _ => "task",
        }
        .into(),
    );
    issue.created_at = Some(ts(rec.created_at));
    issue.created_by = Some(opts.actor.clone());
    issue.updated_at = Some(ts(rec.updated_at));
    issue.closed_at = rec.closed_at.map(ts);
    issue.close_reason = rec.close_reason.clone();
    issue.external_ref = Some(format!("opsctl:{}", rec.id));
    issue.metadata = Some(json!({"opsctl": {
        "id": rec.id, "kind": rec.kind.as_str(), "app": rec.app, "data": scrub_value(&rec.data),
    }}));
    let mut labels = rec.labels.clone();
    labels.push("ops".into());
    labels.push(format!("opsctl:{}", rec.kind.as_str()));
    if let Some(app) = &rec.app {
        labels.push(format!("app:{app}"));
    }
    issue.labels = Some(sorted_labels(labels));
    if !rec.links.is_empty() {
        issue.dependencies = Some(
            rec.links
                .iter()
                .map(|l| BeadsDependency {
                    issue_id: id.clone(),
                    depends_on_id: id_of(&l.to),
                    kind: link_kind_str(l.kind).into(),
                    created_at: Some(ts(rec.created_at)),
                    created_by: Some(opts.actor.clone()),
                    extra: BTreeMap::new(),
                })
                .collect(),
        );
    }
    issue
}

fn link_kind_str(k: crate::records::LinkKind) -> &'static str {
    match k {
        crate::records::LinkKind::CausedBy => "caused-by",
        crate::records::LinkKind::Related => "related",
        crate::records::LinkKind::ParentChild => "parent-child",
    }
}

/// The issue of a deploy record.
pub fn deploy_to_issue(d: &DeployRecord, id: &str, opts: &ExportOptions) -> BeadsIssue {
    let tag = d
        .image
        .rsplit_once(':')
        .map_or(d.image.as_str(), |(_, t)| t);
    let mut issue = BeadsIssue::new(id, format!("Deploy {} {tag}", d.app));
    let mut desc = vec![format!("fly app: {}", d.app), format!("image: {}", d.image)];
    if let Some(p) = &d.previous_image {
        desc.push(format!("previous image: {p}"));
    }
    if let Some(r) = &d.release {
        desc.push(format!("release: v{}", r.version));
    }
    if let Some(c) = &d.commit {
        desc.push(format!("commit: {c}"));
    }
    desc.push(format!(
        "strategy: {}, trigger: {}",
        d.strategy,
        serde_json::to_value(d.trigger)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    ));
    desc.push(format!("result: {}", d.status.as_str()));
    if let Some(h) = &d.health {
        desc.push(format!("health: {h}"));
    }
    if let Some(r) = &d.reason {
        desc.push(format!("reason: {r}"));
    }
    if let Some(rb) = &d.rollback {
        desc.push(format!("rollback to {}: {}", rb.image, rb.outcome));
    }
    issue.description = Some(scrub_credentials(&desc.join("\n")));
    let (status, priority) = match d.status {
        DeployStatus::InProgress => ("in_progress", 2),
        DeployStatus::Succeeded => ("closed", 2),
        DeployStatus::Failed | DeployStatus::RolledBack => ("closed", 1),
        DeployStatus::RollbackFailed => ("open", 0),
        DeployStatus::Halted => ("blocked", 1),
    };
    issue.status = Some(status.into());
    issue.priority = Some(priority);
    issue.issue_type = Some("task".into());
    issue.created_at = Some(ts(d.started_at));
    issue.created_by = Some(opts.actor.clone());
    issue.updated_at = Some(ts(d
        .finished_at
        .or_else(|| d.steps.last().map(|s| s.at))
        .unwrap_or(d.started_at)));
    if status == "closed" {
        issue.closed_at = d.finished_at.map(ts);
        issue.close_reason = Some(d.status.as_str().into());
    }
    issue.external_ref = Some(format!("opsctl:{}", d.id));
    // The whole record, less the lease nonces of a running deploy (meaningless elsewhere).
    let mut record = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut record {
        m.remove("leases");
    }
    issue.metadata = Some(json!({"opsctl": {
        "id": d.id, "kind": "deploy", "app": d.app, "deploy": scrub_value(&record),
    }}));
    issue.labels = Some(sorted_labels([
        "ops".to_owned(),
        "deploy".to_owned(),
        "opsctl:deploy".to_owned(),
        format!("app:{}", d.app),
        format!("result:{}", d.status.as_str()),
    ]));
    issue
}

/// Every record of `store` as a beads file, sorted by id, and what was written.
///
/// # Errors
/// [`StoreError`] when the journal cannot be read.
pub fn export_store(
    store: &RecordStore,
    opts: &ExportOptions,
) -> Result<(BeadsFile, ExportSummary), StoreError> {
    let deploys = store.deploys(None)?;
    let records = store.records(|_| true)?;
    let (imported, native): (Vec<&Record>, Vec<&Record>) =
        records.iter().partition(|r| r.kind == RecordKind::Bead);

    // Assign ids oldest first, so an old record keeps its id when a new one collides.
    let mut order: Vec<(DateTime<Utc>, &str)> = deploys
        .iter()
        .map(|d| (d.started_at, d.id.as_str()))
        .chain(native.iter().map(|r| (r.created_at, r.id.as_str())))
        .collect();
    order.sort();
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut taken: HashSet<String> = HashSet::new();
    for (_, oid) in order {
        let id = hash_id(&opts.prefix, oid, ID_HASH_LEN, |c| taken.contains(c));
        taken.insert(id.clone());
        ids.insert(oid.to_owned(), id);
    }
    let id_of = |oid: &str| -> String {
        ids.get(oid).cloned().unwrap_or_else(|| {
            if is_opsctl_id(oid) {
                // A link to a record this store does not hold: its id as any store would give it.
                beads_id_for(&opts.prefix, oid)
            } else {
                oid.to_owned()
            }
        })
    };

    let mut summary = ExportSummary::default();
    let mut lines = Vec::new();
    for d in &deploys {
        lines.push(BeadsLine::Issue(Box::new(deploy_to_issue(
            d,
            &id_of(&d.id),
            opts,
        ))));
        summary.deploys += 1;
    }
    for r in &native {
        lines.push(BeadsLine::Issue(Box::new(record_to_issue(r, &id_of, opts))));
        summary.records += 1;
    }
    for r in imported {
        match super::issue_from_value(r.data.clone()) {
            Ok(issue) if taken.contains(&issue.id) => summary.shadowed += 1,
            Ok(issue) => {
                lines.push(BeadsLine::Issue(Box::new(issue)));
                summary.imported += 1;
            }
            Err(e) => {
                tracing::warn!(record = %r.id, error = %e, "an imported bead no longer parses; not exported");
            }
        }
    }
    Ok((BeadsFile { lines }, summary))
}

fn parse_ts(s: Option<&str>) -> Option<DateTime<Utc>> {
    s.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The record an imported issue is stored as (kind [`RecordKind::Bead`], id
/// `bead-<issue id>`, the issue whole in `data`). Missing or unparsable timestamps fall back to
/// `now`.
pub fn issue_to_record(issue: &BeadsIssue, now: DateTime<Utc>) -> Record {
    let created = parse_ts(issue.created_at.as_deref()).unwrap_or(now);
    let status = match issue.status.as_deref().unwrap_or("open") {
        "in_progress" | "hooked" => RecordStatus::InProgress,
        "blocked" => RecordStatus::Blocked,
        "closed" | "tombstone" => RecordStatus::Closed,
        _ => RecordStatus::Open,
    };
    let app = issue
        .labels()
        .iter()
        .find_map(|l| l.strip_prefix("app:").map(str::to_owned));
    Record {
        id: format!("bead-{}", issue.id),
        kind: RecordKind::Bead,
        app,
        title: issue.title.clone(),
        description: String::new(),
        status,
        priority: issue.priority.unwrap_or(2).clamp(0, 4) as u8,
        labels: issue.labels().to_vec(),
        links: Vec::new(),
        created_at: created,
        updated_at: parse_ts(issue.updated_at.as_deref()).unwrap_or(created),
        closed_at: parse_ts(issue.closed_at.as_deref()),
        close_reason: issue.close_reason.clone(),
        data: serde_json::to_value(issue).unwrap_or(Value::Null),
    }
}

/// Store every issue of `file` (see the module doc); an issue already stored identically is
/// left alone, a changed one gets a new snapshot.
///
/// # Errors
/// [`StoreError`] when the journal cannot be read or written.
pub fn import_into_store(
    store: &RecordStore,
    file: &BeadsFile,
    now: DateTime<Utc>,
) -> Result<ImportSummary, StoreError> {
    let existing: HashMap<String, Record> = store
        .records(|r| r.kind == RecordKind::Bead)?
        .into_iter()
        .map(|r| (r.id.clone(), r))
        .collect();
    let mut summary = ImportSummary::default();
    for line in &file.lines {
        let BeadsLine::Issue(issue) = line else {
            summary.skipped_lines += 1;
            continue;
        };
        summary.issues += 1;
        let rec = issue_to_record(issue, now);
        match existing.get(&rec.id) {
            Some(old) if old.data == rec.data => summary.unchanged += 1,
            Some(_) => {
                store.append_record(&rec)?;
                summary.updated += 1;
            }
            None => {
                store.append_record(&rec)?;
                summary.created += 1;
            }
        }
    }
    Ok(summary)
}
