//! Records other than deploys: incidents, postmortems, approvals, escalations, check results
//! and cost snapshots (DESIGN.md §7). One shape for all of them, close to a beads issue (id,
//! title, status, priority, labels, typed links, UTC timestamps), with the kind's own details in
//! `data`; each pipeline keeps a typed view of its `data` and converts.
//!
//! Like deploys, a record is stored as snapshots: each change appends the whole record again,
//! the newest snapshot is its current state, and the older ones are its history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One record. Never holds a secret value: secret *names* may appear, values never.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `<kind>-<ulid>` (e.g. `incident-01km…`, lowercase as deploy ids), sortable by creation time; see [`Record::new_id`].
    pub id: String,
    /// What it is.
    pub kind: RecordKind,
    /// Fly app it concerns, when it concerns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// One line, for lists.
    pub title: String,
    /// Free text for people (what happened, what to do).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where it stands.
    pub status: RecordStatus,
    /// 0 (critical) to 4 (backlog), as in beads.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Free-form labels (`ops`, `outage`, `app:lowendinsight`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Typed links to other records (deploys included).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// UTC.
    pub created_at: DateTime<Utc>,
    /// UTC, time of this snapshot.
    pub updated_at: DateTime<Utc>,
    /// UTC, when it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
    /// Why it was closed (`resolved`, `denied`, `expired`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// The kind's own details (an incident's fingerprint and occurrences, an approval's plan
    /// hash, a check's result), as the owning pipeline writes them.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

fn default_priority() -> u8 {
    2
}

impl Record {
    /// A new open record of `kind`, created `now` (UTC), priority 2, no links, no data.
    pub fn new(kind: RecordKind, title: impl Into<String>, now: DateTime<Utc>) -> Self {
        Self {
            id: Self::new_id(kind, now),
            kind,
            app: None,
            title: title.into(),
            description: String::new(),
            status: RecordStatus::Open,
            priority: default_priority(),
            labels: Vec::new(),
            links: Vec::new(),
            created_at: now,
            updated_at: now,
            closed_at: None,
            close_reason: None,
            data: serde_json::Value::Null,
        }
    }

    /// `<kind>-<ulid>` with the ULID's time part taken from `now`, so ids sort by creation time
    /// even under a virtual clock.
    pub fn new_id(kind: RecordKind, now: DateTime<Utc>) -> String {
        let ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
        let ulid = ulid::Ulid::from_parts(ms, ulid::Ulid::new().random());
        format!("{}-{}", kind.as_str(), ulid.to_string().to_lowercase())
    }

    /// Close it `now` with `reason`.
    pub fn close(&mut self, reason: impl Into<String>, now: DateTime<Utc>) {
        self.status = RecordStatus::Closed;
        self.closed_at = Some(now);
        self.close_reason = Some(reason.into());
        self.updated_at = now;
    }

    /// Add a link of `kind` to record `to`, once.
    pub fn link(&mut self, kind: LinkKind, to: impl Into<String>) {
        let link = Link {
            kind,
            to: to.into(),
        };
        if !self.links.contains(&link) {
            self.links.push(link);
        }
    }
}

/// Kinds of records besides deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// An incident (one per open fingerprint).
    Incident,
    /// The postmortem that closes an incident.
    Postmortem,
    /// A gated action waiting for, or given, a human decision.
    Approval,
    /// Something a human must look at (engineering backlog).
    Escalation,
    /// A maintenance check's result worth keeping (a finding).
    Check,
    /// A daily cost estimate.
    CostSnapshot,
    /// An issue imported from a beads `issues.jsonl` (`opsctl records import`), kept whole in
    /// `data`; never acted on (see `records::beads::map`).
    Bead,
}

impl RecordKind {
    /// Snake-case name, as in JSON and ids.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Incident => "incident",
            Self::Postmortem => "postmortem",
            Self::Approval => "approval",
            Self::Escalation => "escalation",
            Self::Check => "check",
            Self::CostSnapshot => "cost_snapshot",
            Self::Bead => "bead",
        }
    }
}

/// Status, as in beads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Open, nobody on it yet.
    Open,
    /// Being worked on (an incident being answered, an approval being acted on).
    InProgress,
    /// Waiting on something else (an approval waiting for a human).
    Blocked,
    /// Done.
    Closed,
}

/// A typed link (DESIGN.md §7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// What the link means.
    pub kind: LinkKind,
    /// The record linked to (any record id, deploys included).
    pub to: String,
}

/// Link kinds, named as beads dependency types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// This record was caused by the other (an incident caused by a deploy).
    CausedBy,
    /// Loosely related.
    Related,
    /// This record is a child of the other (a postmortem of an incident).
    ParentChild,
}
