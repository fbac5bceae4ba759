//! beads format tests: the real LowEndInsight file round-trips (values line by line, and byte
//! for byte with Go's escapes), import → export through the store is lossless, records map to
//! issues with typed dependencies and no secrets, escalations land sorted in an engineering
//! file with a `caused-by` edge, bad lines are named by file and line.

use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use serde_json::Value;

use super::*;
use crate::records::{
    DeployRecord, DeployStatus, LinkKind, Record, RecordKind, RecordStatus, RecordStore, Trigger,
};

const LEI_BEADS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/real-inputs/lowendinsight/beads/kitplummer__lowendinsight__issues.jsonl"
);

fn lei_text() -> String {
    std::fs::read_to_string(LEI_BEADS).expect("the real LowEndInsight beads file")
}

fn t(min: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 29, 12, min, 0).unwrap()
}

/// Each line's JSON value (Go's `\u003c` and a literal `<` parse to the same string).
fn values(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_lowendinsight_file_round_trips_value_for_value_and_byte_for_byte() {
    let text = lei_text();
    let file = BeadsFile::parse(Path::new(LEI_BEADS), &text).unwrap();
    assert_eq!(file.issues().count(), 158);
    let out = file.to_text();
    let (a, b) = (values(&text), values(&out));
    assert_eq!(a.len(), b.len());
    for (n, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(x, y, "line {} differs", n + 1);
    }
    // Go's HTML escapes and beads' key order are reproduced, so bd's own file is unchanged.
    assert!(text.contains("\\u003e"), "the file has Go escapes");
    assert_eq!(out, text);
}

#[test]
fn unknown_keys_and_v1_lines_are_kept() {
    let text = concat!(
        r#"{"id":"ops-b","title":"b","priority":1,"started_at":"2026-04-18T16:19:12Z","_type":"issue","dependency_count":0,"dependencies":[{"issue_id":"ops-b","depends_on_id":"eng-x","type":"caused-by","thread_id":"t1"}],"comments":[{"id":"c-1","issue_id":"ops-b","author":"x","text":"a \u0026 b","created_at":"2026-04-18T16:19:12Z","extra":true}]}"#,
        "\n",
        r#"{"_type":"memory","key":"k","value":"v"}"#,
        "\n",
        r#"{"id":"ops-a","title":"a","priority":0,"description":"","metadata":null,"assignee":null}"#,
        "\n"
    );
    let file = BeadsFile::parse(Path::new("x.jsonl"), text).unwrap();
    let out = file.to_text();
    let lines: Vec<&str> = out.lines().collect();
    // Sorted by id, other lines after the issues.
    assert!(lines[0].starts_with(r#"{"id":"ops-a""#), "{out}");
    assert!(lines[1].starts_with(r#"{"id":"ops-b""#), "{out}");
    assert_eq!(lines[2], r#"{"_type":"memory","key":"k","value":"v"}"#);
    let mut want = values(text);
    want.swap(0, 2);
    want.swap(1, 2);
    assert_eq!(values(&out), want);

    // And through the store (import → export), nulls and unknown keys included.
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open_write(dir.path()).unwrap();
    let s = import_into_store(&store, &file, t(0)).unwrap();
    assert_eq!((s.issues, s.skipped_lines), (2, 1));
    let (back, _) = export_store(&store, &ExportOptions::default()).unwrap();
    assert_eq!(values(&back.to_text()), want[..2].to_vec());
}

#[test]
fn a_bad_line_is_named_by_file_line_and_field() {
    let p = Path::new("eng/.beads/issues.jsonl");
    let good = r#"{"id":"a-1","title":"x"}"#;
    let cases = [
        ("{not json", "2: not JSON"),
        ("[1,2]", "2: not a JSON object"),
        (r#"{"title":"x"}"#, "2: field `id` is missing"),
        (
            r#"{"id":"a-2","title":"x","priority":"high"}"#,
            "2: field `priority`",
        ),
        (
            r#"{"id":"a-1","title":"again"}"#,
            "2: duplicate issue id `a-1` (first at line 1)",
        ),
    ];
    for (bad, want) in cases {
        let err = BeadsFile::parse(p, &format!("{good}\n{bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("eng/.beads/issues.jsonl:{want}")),
            "{bad}: {err}"
        );
    }
}

#[test]
fn ids_are_prefix_dash_base36_hash_and_grow_on_collision() {
    let id = beads_id_for("ops", "incident-01kmaaaaaaaaaaaaaaaaaaaaaa");
    assert!(id.starts_with("ops-") && id.len() == 4 + 8, "{id}");
    assert!(
        id[4..]
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    );
    assert_eq!(
        id,
        beads_id_for("ops", "incident-01kmaaaaaaaaaaaaaaaaaaaaaa")
    );
    assert_ne!(
        id,
        beads_id_for("ops", "incident-01kmaaaaaaaaaaaaaaaaaaaaab")
    );
    let longer = hash_id("ops", "incident-01kmaaaaaaaaaaaaaaaaaaaaaa", 8, |c| c == id);
    assert_eq!(longer.len(), id.len() + 1);
    assert!(longer.starts_with(&id));
    assert_eq!(adaptive_len(158), 4);
    assert_eq!(adaptive_len(1000), 5);
    assert_eq!(adaptive_len(5000), 6);
    // Known value: base 36 of a small number.
    assert_eq!(base36(&[0, 0, 1, 0]), "74");
}

#[test]
fn the_prefix_comes_from_config_yaml_when_set() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        "# issue-prefix: \"nope\"\nissue-prefix: \"lowendinsight\"\n",
    )
    .unwrap();
    assert_eq!(config_prefix(dir.path()).as_deref(), Some("lowendinsight"));
    // The real LEI config has it commented out.
    let lei = Path::new(LEI_BEADS).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        lei.join("kitplummer__lowendinsight__config.yaml"),
        tmp.path().join("config.yaml"),
    )
    .unwrap();
    assert_eq!(config_prefix(tmp.path()), None);
    assert!(valid_prefix("eng") && valid_prefix("bd-main"));
    assert!(!valid_prefix("Eng") && !valid_prefix("eng-") && !valid_prefix(""));
}

fn deploy(id: &str, status: DeployStatus, at: chrono::DateTime<Utc>) -> DeployRecord {
    DeployRecord {
        id: id.into(),
        app: "lowendinsight".into(),
        status,
        reason: Some("m1 failed health: checks critical".into()),
        trigger: Trigger::Reconcile,
        commit: Some("2d7c18f7e0f4".into()),
        image: "registry.fly.io/lowendinsight:v112".into(),
        revision: String::new(),
        previous_image: Some("registry.fly.io/lowendinsight:v111".into()),
        release: Some(crate::records::ReleaseRef {
            id: "rel_1".into(),
            version: 112,
        }),
        strategy: "rolling".into(),
        machines: vec![],
        failed_health: true,
        health: None,
        rollback: None,
        steps: vec![],
        needs_recovery: false,
        leases: Default::default(),
        escalation: None,
        end_health: None,
        phase: None,
        config_revision: String::new(),
        started_at: at,
        finished_at: Some(at + chrono::Duration::minutes(3)),
    }
}

const DEPLOY_ID: &str = "deploy-01kmzzzzzzzzzzzzzzzzzzzzzz";

fn incident() -> Record {
    let mut inc = Record::new(RecordKind::Incident, "lowendinsight down after v112", t(5));
    inc.id = "incident-01kn0000000000000000000000".into();
    inc.app = Some("lowendinsight".into());
    inc.priority = 0;
    inc.description =
        "redis at redis://default:hunter2@fly-lei-redis.upstash.io:6379 refused".into();
    inc.labels = vec!["outage".into()];
    inc.link(LinkKind::CausedBy, DEPLOY_ID);
    inc.link(LinkKind::Related, "lowendinsight-40z");
    inc.data = serde_json::json!({
        "fingerprint": "lowendinsight/deploy_outage/112/-",
        "evidence": ["postgres://lei:s3cr3tpw@lei-db.internal:5432/lei refused"],
    });
    inc
}

#[test]
fn records_export_as_issues_with_typed_dependencies_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open_write(dir.path()).unwrap();
    store
        .append(&deploy(DEPLOY_ID, DeployStatus::RolledBack, t(0)))
        .unwrap();
    let mut inc = incident();
    store.append_record(&inc).unwrap();
    let mut pm = Record::new(RecordKind::Postmortem, "postmortem: v112 outage", t(30));
    pm.link(LinkKind::ParentChild, &inc.id);
    pm.close("written", t(31));
    store.append_record(&pm).unwrap();
    inc.close("resolved", t(20));
    store.append_record(&inc).unwrap();

    let opts = ExportOptions::default();
    let (file, summary) = export_store(&store, &opts).unwrap();
    assert_eq!((summary.deploys, summary.records), (1, 2));
    let text = file.to_text();
    assert!(
        !text.contains("hunter2") && !text.contains("s3cr3tpw"),
        "{text}"
    );
    assert!(text.contains("redis://[redacted]@fly-lei-redis.upstash.io"));
    let issues: Vec<BeadsIssue> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = issues.iter().map(|i| i.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "sorted by id");

    let deploy_id = beads_id_for("ops", DEPLOY_ID);
    let inc_id = beads_id_for("ops", &inc.id);
    let d = issues.iter().find(|i| i.id == deploy_id).unwrap();
    assert_eq!(d.status.as_deref(), Some("closed"));
    assert_eq!(d.close_reason.as_deref(), Some("rolled_back"));
    assert_eq!(d.priority, Some(1));
    assert!(d.labels().contains(&"result:rolled_back".to_owned()));
    assert_eq!(d.created_at.as_deref(), Some("2026-11-29T12:00:00Z"));
    assert!(d.description.as_deref().unwrap().contains("release: v112"));

    let i = issues.iter().find(|i| i.id == inc_id).unwrap();
    assert_eq!(i.issue_type.as_deref(), Some("bug"));
    assert_eq!(i.status.as_deref(), Some("closed"), "the newest snapshot");
    assert_eq!(i.closed_at.as_deref(), Some("2026-11-29T12:20:00Z"));
    assert_eq!(i.priority, Some(0));
    assert_eq!(
        i.labels(),
        ["app:lowendinsight", "ops", "opsctl:incident", "outage"]
    );
    let deps: Vec<(&str, &str)> = i
        .dependencies()
        .iter()
        .map(|d| (d.kind.as_str(), d.depends_on_id.as_str()))
        .collect();
    assert_eq!(
        deps,
        [
            ("caused-by", deploy_id.as_str()),
            ("related", "lowendinsight-40z")
        ]
    );
    assert_eq!(
        i.external_ref.as_deref(),
        Some(&*format!("opsctl:{}", inc.id))
    );
    assert_eq!(
        i.metadata.as_ref().unwrap()["opsctl"]["data"]["fingerprint"],
        "lowendinsight/deploy_outage/112/-"
    );
    let p = issues
        .iter()
        .find(|x| x.title.starts_with("postmortem"))
        .unwrap();
    assert_eq!(p.dependencies()[0].kind, "parent-child");
    assert_eq!(p.dependencies()[0].depends_on_id, inc_id);

    // Another prefix changes every id and every edge.
    let (eng, _) = export_store(
        &store,
        &ExportOptions {
            prefix: "lei-ops".into(),
            ..opts
        },
    )
    .unwrap();
    assert!(eng.issues().all(|i| i.id.starts_with("lei-ops-")));
}

#[test]
fn lowendinsight_imports_into_the_store_and_exports_back_without_loss() {
    let text = lei_text();
    let file = BeadsFile::parse(Path::new(LEI_BEADS), &text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = RecordStore::open_write(dir.path()).unwrap();
    let s = import_into_store(&store, &file, t(0)).unwrap();
    assert_eq!(
        (s.issues, s.created, s.updated, s.unchanged),
        (158, 158, 0, 0)
    );
    // Imported issues are kept, not turned into deploys (burn-in) or live incidents.
    assert!(store.deploys(None).unwrap().is_empty());
    let recs = store.records(|_| true).unwrap();
    assert!(recs.iter().all(|r| r.kind == RecordKind::Bead));
    let r40z = recs
        .iter()
        .find(|r| r.id == "bead-lowendinsight-40z")
        .unwrap();
    assert_eq!(r40z.status, RecordStatus::Closed);
    assert_eq!(r40z.priority, 1);
    assert_eq!(
        r40z.created_at,
        Utc.with_ymd_and_hms(2026, 3, 8, 15, 16, 18).unwrap()
            + chrono::Duration::nanoseconds(139_895_778)
    );

    let (out, summary) = export_store(&store, &ExportOptions::default()).unwrap();
    assert_eq!(summary.imported, 158);
    let out = out.to_text();
    assert_eq!(values(&out), values(&text));
    assert_eq!(out, text);

    // Importing again changes nothing; a changed issue gets a new snapshot.
    let again = import_into_store(&store, &file, t(1)).unwrap();
    assert_eq!((again.created, again.updated, again.unchanged), (0, 0, 158));
    let changed = text.replacen(r#""status":"blocked""#, r#""status":"closed""#, 1);
    let file2 = BeadsFile::parse(Path::new("x"), &changed).unwrap();
    let third = import_into_store(&store, &file2, t(2)).unwrap();
    assert_eq!((third.updated, third.unchanged), (1, 157));
}

fn eng_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".beads")).unwrap();
    let path = dir.path().join(".beads/issues.jsonl");
    (dir, path)
}

#[test]
fn an_escalation_lands_sorted_in_the_engineering_file_with_a_caused_by_edge() {
    let (_dir, path) = eng_dir();
    // Start from the real LEI file: its other lines must stay byte for byte.
    let lei = lei_text();
    std::fs::write(&path, &lei).unwrap();
    let target = EngTarget {
        path: path.clone(),
        prefix: "lowendinsight".into(),
        bd: None,
    };
    let inc = incident();
    let w = write_escalation(&target, &inc, "ops", t(6)).unwrap();
    assert!(w.created);
    assert!(w.id.starts_with("lowendinsight-"), "{}", w.id);
    assert_eq!(w.caused_by, beads_id_for("ops", &inc.id));

    let text = std::fs::read_to_string(&path).unwrap();
    let file = BeadsFile::parse(&path, &text).unwrap();
    assert_eq!(file.issues().count(), 159);
    let ids: Vec<&str> = file.issues().map(|i| i.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "still sorted by id");
    let new = file.issues().find(|i| i.id == w.id).unwrap();
    assert_eq!(new.status.as_deref(), Some("open"));
    assert_eq!(new.priority, Some(0));
    let dep = &new.dependencies()[0];
    assert_eq!(
        (
            dep.issue_id.as_str(),
            dep.depends_on_id.as_str(),
            dep.kind.as_str()
        ),
        (w.id.as_str(), w.caused_by.as_str(), "caused-by")
    );
    assert!(!text.contains("hunter2"));
    // Every old line is unchanged: removing the new one gives the old file back.
    let without: String = text
        .lines()
        .filter(|l| !l.contains(&format!(r#""id":"{}""#, w.id)))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(without, lei);

    // Escalating the same record again writes nothing (no chain of duplicates).
    let again = write_escalation(&target, &inc, "ops", t(7)).unwrap();
    assert_eq!((again.id.as_str(), again.created), (w.id.as_str(), false));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // Nothing but the issues file is left in the repository's .beads (no temp, no lock file).
    let names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["issues.jsonl"]);
}

#[test]
fn escalations_into_a_new_file_and_concurrent_writers_lose_nothing() {
    let (_dir, path) = eng_dir();
    let target = EngTarget {
        path: path.clone(),
        prefix: "eng".into(),
        bd: None,
    };
    let handles: Vec<_> = (0..8)
        .map(|n| {
            let target = target.clone();
            std::thread::spawn(move || {
                let mut r = Record::new(RecordKind::Escalation, format!("esc {n}"), t(n));
                r.id = format!("escalation-01kn00000000000000000000{n:02}");
                write_escalation(&target, &r, "ops", t(n)).unwrap()
            })
        })
        .collect();
    let written: Vec<EscalationWrite> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let file = BeadsFile::read(&path).unwrap();
    assert_eq!(file.issues().count(), 8);
    for w in written {
        assert!(file.issues().any(|i| i.id == w.id));
    }
}

#[test]
fn a_missing_engineering_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let target = EngTarget {
        path: dir.path().join("nope/.beads/issues.jsonl"),
        prefix: "eng".into(),
        bd: None,
    };
    let err = write_escalation(&target, &incident(), "ops", t(0))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nope/.beads") && err.contains("does not exist"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn bd_mode_runs_bd_create_with_the_caused_by_dependency() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, path) = eng_dir();
    let log = dir.path().join("bd.args");
    let script = dir.path().join("fake-bd");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$PWD\" \"$@\" > {}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let target = EngTarget {
        path,
        prefix: "eng".into(),
        bd: Some(BdCommand { program: script }),
    };
    let inc = incident();
    let w = write_escalation(&target, &inc, "ops", t(0)).unwrap();
    let args = std::fs::read_to_string(&log).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        Path::new(args[0]).canonicalize().unwrap(),
        dir.path().canonicalize().unwrap()
    );
    assert_eq!(&args[1..3], ["create", inc.title.as_str()]);
    let pos = |flag: &str| args.iter().position(|a| *a == flag).unwrap() + 1;
    assert_eq!(args[pos("--id")], w.id);
    assert_eq!(args[pos("--deps")], format!("caused-by:{}", w.caused_by));
    assert_eq!(args[pos("-p")], "0");
    assert_eq!(args[pos("-t")], "bug");
    assert!(!args.iter().any(|a| a.contains("hunter2")));

    // A failing bd is an error with its stderr.
    let bad = EngTarget {
        bd: Some(BdCommand {
            program: "/bin/false".into(),
        }),
        ..target
    };
    let err = write_escalation(&bad, &incident(), "ops", t(0)).unwrap_err();
    assert!(err.to_string().contains("failed"), "{err}");
}
