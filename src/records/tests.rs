use chrono::{TimeZone, Utc};

use super::*;

fn record(id: &str, app: &str, minute: u32, status: DeployStatus) -> DeployRecord {
    let at = Utc.with_ymd_and_hms(2026, 11, 29, 12, minute, 0).unwrap();
    DeployRecord {
        id: id.into(),
        status,
        previous_image: Some("img:old".into()),
        ..DeployRecord::start(app, Trigger::Apply, "img:new", at)
    }
}

#[test]
fn newest_snapshot_wins_and_newest_deploy_first() {
    let dir = tempfile::tempdir().unwrap();
    newest_snapshot_wins(&RecordStore::open_write(dir.path()).unwrap(), || {
        RecordStore::open_read(dir.path())
    });
}

/// The store tests that hold for both backends, on PostgreSQL (a fresh schema per test).
#[test]
fn postgres_store_has_the_same_semantics() {
    let Some(db) = pg::testdb::Schema::new("store_semantics") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let open = || RecordStore::open_postgres(&db.url(), dir.path(), None).unwrap();
    newest_snapshot_wins(&open(), open);
    let db2 = pg::testdb::Schema::new("store_records").unwrap();
    let store = RecordStore::open_postgres(&db2.url(), dir.path(), None).unwrap();
    other_records_beside_deploys(&store);
    let empty = pg::testdb::Schema::new("store_empty").unwrap();
    let store = RecordStore::open_postgres(&empty.url(), dir.path(), None).unwrap();
    assert!(store.deploys(None).unwrap().is_empty());
    assert!(store.records(|_| true).unwrap().is_empty());
    assert!(store.history_of("incident-x").unwrap().is_empty());
}

/// Snapshots of d1, d2, d1 again: one entry per id, its newest state, newest deploy first;
/// `reopen` (another handle on the same store) sees the same, filtered by app.
fn newest_snapshot_wins(store: &RecordStore, reopen: impl Fn() -> RecordStore) {
    store
        .append(&record("d1", "a", 1, DeployStatus::InProgress))
        .unwrap();
    store
        .append(&record("d2", "b", 2, DeployStatus::InProgress))
        .unwrap();
    store
        .append(&record("d1", "a", 1, DeployStatus::Succeeded))
        .unwrap();
    let all = store.deploys(None).unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["d2", "d1"]
    );
    assert_eq!(all[1].status, DeployStatus::Succeeded);
    let only_a = reopen().deploys(Some("a")).unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].status, DeployStatus::Succeeded);
}

#[test]
fn a_torn_last_line_is_skipped_by_readers_and_cut_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RecordStore::open_write(dir.path()).unwrap();
        store
            .append(&record("d1", "a", 1, DeployStatus::Succeeded))
            .unwrap();
    }
    let journal = dir.path().join("records.jsonl");
    let mut f = OpenOptions::new().append(true).open(&journal).unwrap();
    f.write_all(b"{\"v\":1,\"record\":{\"id\":\"d2\",\"app")
        .unwrap();
    drop(f);
    assert_eq!(
        RecordStore::open_read(dir.path())
            .deploys(None)
            .unwrap()
            .len(),
        1
    );
    let store = RecordStore::open_write(dir.path()).unwrap();
    store
        .append(&record("d3", "a", 3, DeployStatus::Failed))
        .unwrap();
    let ids: Vec<String> = store
        .deploys(None)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["d3", "d1"]);
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
}

#[test]
fn one_writer_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RecordStore::open_write(dir.path()).unwrap();
    assert!(matches!(
        RecordStore::open_write(dir.path()),
        Err(StoreError::Locked(_))
    ));
}

#[test]
fn read_only_store_refuses_writes_and_reads_missing_journal_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open_read(dir.path());
    assert!(store.deploys(None).unwrap().is_empty());
    assert!(
        store
            .append(&record("d1", "a", 1, DeployStatus::Failed))
            .is_err()
    );
}

#[test]
fn other_records_share_the_journal_without_disturbing_deploys() {
    let dir = tempfile::tempdir().unwrap();
    other_records_beside_deploys(&RecordStore::open_write(dir.path()).unwrap());
}

/// A deploy, an incident (linked, then closed) and an approval: one current state per id,
/// newest first, the incident's history in order.
fn other_records_beside_deploys(store: &RecordStore) {
    let t = |m| Utc.with_ymd_and_hms(2026, 11, 29, 12, m, 0).unwrap();
    store
        .append(&record("d1", "a", 1, DeployStatus::Succeeded))
        .unwrap();
    let mut inc = Record::new(RecordKind::Incident, "a is down", t(2));
    inc.app = Some("a".into());
    inc.link(LinkKind::CausedBy, "d1");
    inc.link(LinkKind::CausedBy, "d1");
    store.append_record(&inc).unwrap();
    let approval = Record::new(RecordKind::Approval, "deploy b", t(3));
    store.append_record(&approval).unwrap();
    inc.close("resolved", t(4));
    store.append_record(&inc).unwrap();

    assert_eq!(store.deploys(None).unwrap().len(), 1);
    let all = store.records(|_| true).unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [approval.id.as_str(), inc.id.as_str()],
        "newest first, one entry per id"
    );
    assert_eq!(all[1].status, RecordStatus::Closed);
    assert_eq!(all[1].links.len(), 1, "a link is added once");
    assert!(inc.id.starts_with("incident-01"), "{}", inc.id);
    let incidents = store.records(|r| r.kind == RecordKind::Incident).unwrap();
    assert_eq!(incidents.len(), 1);
    let history = store.history_of(&inc.id).unwrap();
    assert_eq!(
        history.iter().map(|r| r.status).collect::<Vec<_>>(),
        [RecordStatus::Open, RecordStatus::Closed]
    );
}

#[test]
fn journal_lines_from_before_phases_still_read() {
    // A snapshot as PR-2-era opsctl wrote it: no phase, no escalation.
    let old = r#"{"v":1,"record":{"id":"deploy-01","app":"a","status":"in_progress","trigger":"apply","image":"r/a:2","strategy":"rolling","machines":[],"steps":[],"started_at":"2026-11-29T10:00:00Z"}}"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("records.jsonl"), format!("{old}\n")).unwrap();
    let store = RecordStore::open_read(dir.path());
    let recs = store.deploys(None).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].phase, None);
    assert_eq!(recs[0].escalation, None);
    assert_eq!(recs[0].status, DeployStatus::InProgress);
}

#[test]
fn postgres_history_cannot_be_rewritten() {
    let Some(db) = pg::testdb::Schema::new("append_only") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open_postgres(&db.url(), dir.path(), None).unwrap();
    store
        .append(&record("d1", "a", 1, DeployStatus::Succeeded))
        .unwrap();
    for sql in [
        "UPDATE opsctl_records SET app = 'b'",
        "DELETE FROM opsctl_records",
        "TRUNCATE opsctl_records",
    ] {
        let e = db.exec_here(sql).unwrap_err();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }
    // Opening again (the DDL runs again) keeps the rows and the guard.
    let again = RecordStore::open_postgres(&db.url(), dir.path(), None).unwrap();
    assert_eq!(again.deploys(None).unwrap().len(), 1);
    assert!(db.exec_here("DELETE FROM opsctl_records").is_err());
}

#[test]
fn postgres_fenced_writes_need_the_current_epoch() {
    let Some(db) = pg::testdb::Schema::new("fencing") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fence = std::sync::Arc::new(pg::Fence::new("opsctl-run", "replica-a"));
    let store = RecordStore::open_postgres(&db.url(), dir.path(), Some(fence.clone())).unwrap();
    let rec = record("d1", "a", 1, DeployStatus::InProgress);
    // Never held: refused.
    assert!(matches!(
        store.append(&rec),
        Err(StoreError::Fenced { epoch: 0 })
    ));
    db.exec_here(
        "INSERT INTO opsctl_leader (name, holder, epoch, renewed_at) \
         VALUES ('opsctl-run', 'replica-a', 7, now())",
    )
    .unwrap();
    fence.set_epoch(7);
    store.append(&rec).unwrap();
    // Another replica takes the lease over (epoch 8): the old leader's writes are refused.
    db.exec_here("UPDATE opsctl_leader SET holder = 'replica-b', epoch = 8")
        .unwrap();
    let e = store
        .append(&record("d1", "a", 1, DeployStatus::Succeeded))
        .unwrap_err();
    assert!(matches!(e, StoreError::Fenced { epoch: 7 }), "{e}");
    assert!(e.to_string().contains("not the leader"), "{e}");
    let inc = Record::new(
        RecordKind::Incident,
        "x",
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap(),
    );
    assert!(store.append_record(&inc).is_err());
    let now = store.deploys(None).unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(
        now[0].status,
        DeployStatus::InProgress,
        "the refused write left no trace"
    );
}

#[test]
fn postgres_errors_never_show_the_url() {
    let dir = tempfile::tempdir().unwrap();
    let e = RecordStore::open_postgres(
        "postgres://opsuser:hunter2@127.0.0.1:1/secretdb",
        dir.path(),
        None,
    )
    .unwrap_err()
    .to_string();
    for leaked in ["hunter2", "opsuser", "secretdb", "postgres://"] {
        assert!(!e.contains(leaked), "{leaked} in {e}");
    }
    let e = RecordStore::open_postgres("mysql://u:hunter2@h/db", dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("expected a postgres:// URL") && !e.contains("hunter2"),
        "{e}"
    );
}
