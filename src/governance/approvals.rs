//! Approvals as records (`Record` kind `approval`, DESIGN.md §6–7): one per gated plan of an
//! app, bound to the plan's hash. Its life:
//!
//! | state | record status | how it gets there |
//! |---|---|---|
//! | `pending` | `blocked` | a pass met a gated action with no approval for this plan hash |
//! | `approved` | `in_progress` | `opsctl approve ID` (plan hash still current) or the HTTP endpoint |
//! | `denied` | `closed`, reason `denied` | `opsctl deny ID` |
//! | `applied` | `closed`, reason `applied` | the approved plan ran (a `related` link to the deploy) |
//! | `superseded` | `closed`, reason `superseded` | a pass found a different plan for the app |
//! | `stale` | `closed`, reason `stale` | `opsctl approve` found the observed state changed |
//! | `expired` | `closed`, reason `expired` | pending longer than the policy's `approvalTimeout`; an escalation record is written, and nothing runs |
//!
//! Decisions from a process that does not hold the store's writer lock (`opsctl approve` while
//! `opsctl run` runs) go to the state directory's decision inbox, `decisions.jsonl` (one
//! fsynced line each, appended without the lock). Every reader overlays the inbox on the
//! journal, so a decision counts at once everywhere; the writer ([`ingest`], each pass of the
//! gate) records it in the journal as the approval's next snapshot.
//!
//! The data never holds a secret value (actions carry image references and rule ids).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::records::{LinkKind, Record, RecordKind, RecordStatus, RecordStore, StoreError};

/// One action as an approval shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalAction {
    /// `deploy`, `migration`, …
    pub kind: String,
    /// What it would change.
    pub detail: String,
    /// `auto`, `gated` or `denied`.
    pub verdict: String,
    /// The rule id.
    pub rule: String,
    /// The rule, for people.
    pub why: String,
    /// The image it concerns (deploys, migrations, rollbacks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// For a rollback (`opsctl rollback`): the Fly release version whose image it restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<i64>,
}

/// `data` of an approval record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalData {
    /// See the module doc.
    pub state: String,
    /// Hash of the observed state and actions the plan was computed from.
    pub plan_hash: String,
    /// Every action of the plan, with its decision.
    pub actions: Vec<ApprovalAction>,
    /// The policy that decided (`default` for the ADR's).
    pub policy: String,
    /// Seconds a pending approval waits before it expires.
    pub timeout_secs: u64,
    /// Who decided (`cli`, `http`), once decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
}

/// An approval record and its data.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// The record.
    pub record: Record,
    /// Its data.
    pub data: ApprovalData,
    /// Decided in the inbox and not yet recorded in the journal.
    unsaved: bool,
}

impl Approval {
    /// Read an approval from a record; `None` for other kinds or unreadable data.
    pub fn from_record(record: Record) -> Option<Self> {
        if record.kind != RecordKind::Approval {
            return None;
        }
        let data = serde_json::from_value(record.data.clone()).ok()?;
        Some(Self {
            record,
            data,
            unsaved: false,
        })
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The app.
    pub fn app(&self) -> &str {
        self.record.app.as_deref().unwrap_or_default()
    }

    /// A manual rollback's approval (`opsctl rollback`), not a reconcile plan's: `apply` and
    /// `run` leave it alone, `approve` re-checks it against the rollback computed now.
    pub fn is_rollback(&self) -> bool {
        self.data.actions.iter().any(|a| a.kind == "rollback")
    }

    /// The release version a rollback approval restores.
    pub fn rollback_version(&self) -> Option<i64> {
        self.data
            .actions
            .iter()
            .find(|a| a.kind == "rollback")
            .and_then(|a| a.release_version)
    }

    /// How long it has waited at `now`.
    pub fn age(&self, now: DateTime<Utc>) -> chrono::Duration {
        now - self.record.created_at
    }

    fn save(&mut self, store: &RecordStore, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.record.data = serde_json::to_value(&self.data).unwrap_or_default();
        self.record.updated_at = now;
        store.append_record(&self.record)
    }

    /// Mark it `state` and close it with that reason, now.
    ///
    /// # Errors
    /// The store failed.
    pub fn close(
        &mut self,
        store: &RecordStore,
        state: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.data.state = state.to_owned();
        self.record.close(state, now);
        self.save(store, now)
    }

    /// Approve it (by `who`), now.
    ///
    /// # Errors
    /// The store failed.
    pub fn approve(
        &mut self,
        store: &RecordStore,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.data.state = "approved".into();
        self.data.decided_by = Some(who.to_owned());
        self.record.status = RecordStatus::InProgress;
        self.save(store, now)
    }

    /// Deny it (by `who`), now.
    ///
    /// # Errors
    /// The store failed.
    pub fn deny(
        &mut self,
        store: &RecordStore,
        who: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.data.decided_by = Some(who.to_owned());
        self.close(store, "denied", now)
    }

    /// Mark it applied by deploy `deploy`, now.
    ///
    /// # Errors
    /// The store failed.
    pub fn applied(
        &mut self,
        store: &RecordStore,
        deploy: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.record.link(LinkKind::Related, deploy);
        self.close(store, "applied", now)
    }
}

/// Create a pending approval for `app`, now.
///
/// # Errors
/// The store failed.
pub fn create_pending(
    store: &RecordStore,
    app: &str,
    title: String,
    data: ApprovalData,
    now: DateTime<Utc>,
) -> Result<Approval, StoreError> {
    let mut record = Record::new(RecordKind::Approval, title, now);
    record.app = Some(app.to_owned());
    record.status = RecordStatus::Blocked;
    record.labels = vec!["ops".into(), "approval".into(), format!("app:{app}")];
    record.description = format!(
        "Waiting for a human: `opsctl approve {}` or `opsctl deny {}`.",
        record.id, record.id
    );
    let mut a = Approval {
        record,
        data,
        unsaved: false,
    };
    a.save(store, now)?;
    Ok(a)
}

/// Every approval of `app` (all apps when `None`), newest first.
///
/// # Errors
/// The store failed.
pub fn approvals(store: &RecordStore, app: Option<&str>) -> Result<Vec<Approval>, StoreError> {
    let inbox = read_inbox(store.dir());
    Ok(store
        .records(|r| {
            r.kind == RecordKind::Approval && app.is_none_or(|a| r.app.as_deref() == Some(a))
        })?
        .into_iter()
        .filter_map(Approval::from_record)
        .map(|mut a| {
            let decided = inbox.iter().find(|d| {
                d.id == a.record.id && (d.state != "approved" || d.plan_hash == a.data.plan_hash)
            });
            if a.data.state == "pending"
                && let Some(d) = decided
            {
                a.data.state = d.state.clone();
                a.data.decided_by = Some(d.by.clone());
                a.unsaved = true;
                if d.state == "approved" {
                    a.record.status = RecordStatus::InProgress;
                    a.record.updated_at = d.at;
                } else {
                    a.record.close(d.state.clone(), d.at);
                }
            }
            a
        })
        .collect())
}

/// The decision inbox's file in state directory `dir`.
const INBOX: &str = "decisions.jsonl";

/// One decision in the inbox.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct InboxDecision {
    id: String,
    /// `approved`, `denied` or `stale`.
    state: String,
    plan_hash: String,
    by: String,
    at: DateTime<Utc>,
}

fn read_inbox(dir: &std::path::Path) -> Vec<InboxDecision> {
    let Ok(text) = std::fs::read_to_string(dir.join(INBOX)) else {
        return Vec::new();
    };
    // A torn last line (a crash mid-append) does not parse and is skipped.
    text.lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Record a decision on approval `a` (`approved`, `denied` or `stale`) by `who`, without the
/// writer lock: one fsynced line appended to the state directory's inbox. It counts for every
/// reader at once; [`ingest`] records it in the journal.
///
/// # Errors
/// The inbox could not be written.
pub fn submit(
    dir: &std::path::Path,
    a: &Approval,
    state: &str,
    who: &str,
    now: DateTime<Utc>,
) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let line = InboxDecision {
        id: a.record.id.clone(),
        state: state.to_owned(),
        plan_hash: a.data.plan_hash.clone(),
        by: who.to_owned(),
        at: now,
    };
    let mut text = serde_json::to_string(&line).map_err(std::io::Error::other)?;
    text.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(INBOX))?;
    f.write_all(text.as_bytes())?;
    f.sync_data()
}

/// Record every inbox decision not yet in the journal as its approval's next snapshot (the
/// writer calls this each pass).
///
/// # Errors
/// The store failed.
pub fn ingest(store: &RecordStore, now: DateTime<Utc>) -> Result<(), StoreError> {
    for mut a in approvals(store, None)? {
        if a.unsaved {
            tracing::info!(approval = %a.record.id, state = %a.data.state, "decision recorded");
            a.unsaved = false;
            let at = a.record.updated_at.max(now);
            a.save(store, at)?;
        }
    }
    Ok(())
}

/// Approvals waiting for a human (state `pending`), newest first.
///
/// # Errors
/// The store failed.
pub fn pending(store: &RecordStore, app: Option<&str>) -> Result<Vec<Approval>, StoreError> {
    Ok(approvals(store, app)?
        .into_iter()
        .filter(|a| a.data.state == "pending")
        .collect())
}

/// One approval by id.
///
/// # Errors
/// The store failed.
pub fn find(store: &RecordStore, id: &str) -> Result<Option<Approval>, StoreError> {
    Ok(approvals(store, None)?.into_iter().find(|a| a.id() == id))
}

/// Whether a human approved running release command `cmd` for `image` of `app`: an approval
/// in state `approved` whose plan has a migration of that image. This replaces "a human ran
/// `opsctl apply`" as the release command's gate (migrations are always human, ADR §4).
///
/// # Errors
/// The store failed.
pub fn migration_approved(store: &RecordStore, app: &str, image: &str) -> Result<bool, StoreError> {
    Ok(approvals(store, Some(app))?.iter().any(|a| {
        a.data.state == "approved"
            && a.data
                .actions
                .iter()
                .any(|x| x.kind == "migration" && x.image.as_deref() == Some(image))
    }))
}

/// Write an escalation record for an approval that expired: a human must look; nothing runs.
///
/// # Errors
/// The store failed.
pub fn escalate_expired(
    store: &RecordStore,
    approval: &Approval,
    now: DateTime<Utc>,
) -> Result<Record, StoreError> {
    let app = approval.app().to_owned();
    let mut r = Record::new(
        RecordKind::Escalation,
        format!(
            "approval {} for {app} expired without a decision",
            approval.id()
        ),
        now,
    );
    r.app = Some(app.clone());
    r.priority = 1;
    r.labels = vec!["ops".into(), "escalation".into(), format!("app:{app}")];
    r.description = format!(
        "The gated plan {} waited {} s (the policy's approvalTimeout) and was not acted on. Nothing ran automatically. Review it with `opsctl plan`; the next change to the manifests or to Fly queues a new approval.",
        approval.data.plan_hash, approval.data.timeout_secs
    );
    r.link(LinkKind::Related, approval.id());
    store.append_record(&r)?;
    Ok(r)
}

/// A denial hook for [`crate::fly::RoleGuard`]: every Fly call refused by the role allowlist
/// becomes an escalation record (role, operation, method and path; never a body or token).
/// A store failure is logged: the call is refused either way.
pub fn denial_recorder(
    store: std::sync::Arc<RecordStore>,
    clock: std::sync::Arc<dyn crate::runtime::clock::Clock>,
) -> crate::fly::role::DenialHook {
    std::sync::Arc::new(move |d: &crate::fly::DeniedCall| {
        let now = clock.now();
        let app = d
            .path
            .strip_prefix("/v1/apps/")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned);
        let mut r = Record::new(
            RecordKind::Escalation,
            format!(
                "Fly call refused: the {} role may not use `{}` ({} {})",
                d.role.as_str(),
                d.operation.as_str(),
                d.method,
                d.path
            ),
            now,
        );
        r.app = app.clone();
        r.priority = 1;
        r.labels = vec![
            "ops".into(),
            "escalation".into(),
            "denied-call".into(),
            format!("role:{}", d.role.as_str()),
        ];
        if let Some(app) = app {
            r.labels.push(format!("app:{app}"));
        }
        r.description = "A controller tried a Fly call outside its role's allowlist (ADR §4). The call was refused before it was sent. This is a bug in opsctl or a policy that is too narrow; a human must look.".into();
        r.data = serde_json::json!({"role": d.role, "operation": d.operation, "method": d.method, "path": d.path});
        if let Err(e) = store.append_record(&r) {
            tracing::error!(error = %e, "recording a refused Fly call failed");
        }
    })
}
