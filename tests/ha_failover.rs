//! High availability on PostgreSQL (issue #8): two real `opsctl run --store postgres://…`
//! processes against one simulator. Exactly one leads and mutates Fly; the other stands by.
//! SIGKILL the leader mid-rollout: the other takes over within 15 s and finishes the half-done
//! rollout from the records (each machine updated once, one deploy record, no lease left).
//!
//! Needs `OPSCTL_TEST_DATABASE_URL` (postgres://postgres@127.0.0.1:5432/test); without it the
//! test prints `SKIP` and passes, except under `CI=true`. Each test works in a schema of its
//! own (`?options=-csearch_path=…`), dropped at the end.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Lines, M1, M2, NEW, OLD, Sim, Workspace, eventually, git, manifest, opsctl};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A schema of its own on the test database, dropped on drop.
struct Db {
    base: String,
    schema: String,
}

impl Db {
    fn new(test: &str) -> Option<Self> {
        let Some(base) = std::env::var("OPSCTL_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "OPSCTL_TEST_DATABASE_URL is not set under CI=true: .ci/run must start PostgreSQL"
            );
            eprintln!("SKIP {test}: OPSCTL_TEST_DATABASE_URL is not set");
            return None;
        };
        let schema = format!("ha_{test}_{}", std::process::id());
        let db = Self { base, schema };
        db.exec(&format!(
            "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
            db.schema
        ));
        Some(db)
    }

    /// The URL opsctl gets: this schema first on the search path.
    fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-csearch_path%3D{}", self.base, self.schema)
    }

    fn exec(&self, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = PgConnection::connect(&self.base).await.expect("database");
            sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .expect(sql);
        });
    }

    /// One bigint column of `sql`, run in this schema.
    fn column(&self, sql: &str) -> Vec<Option<i64>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = PgConnection::connect(&self.url()).await.expect("database");
            sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
                .fetch_all(&mut c)
                .await
                .expect(sql)
        })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.exec(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
    }
}

/// `opsctl run` on `manifests` with the shared store and a state directory of its own.
fn replica(sim: &Sim, manifests: &Path, state: &Path, store: &str) -> (Child, Lines) {
    replica_with(sim, manifests, state, store, &[])
}

/// [`replica`] with more `run` arguments.
fn replica_with(
    sim: &Sim,
    manifests: &Path,
    state: &Path,
    store: &str,
    extra: &[&str],
) -> (Child, Lines) {
    let mut child = opsctl()
        .arg("--manifests")
        .arg(manifests)
        .arg("--state")
        .arg(state)
        .args(["--fly", &sim.url])
        .env("FLY_API_TOKEN", "test-token")
        .env("OPSCTL_STORE", store)
        .args(["run", "--resync", "1h", "--poll", "100ms"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::collect(&mut child);
    (child, lines)
}

/// Deploy records in the shared store, through `opsctl history --store …`.
fn deploys(store: &str) -> Vec<serde_json::Value> {
    let out = opsctl()
        .env("OPSCTL_STORE", store)
        .args(["history", "-o", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", common::text(&out)));
    v["deploys"].as_array().cloned().unwrap_or_default()
}

fn no_lease_held(sim: &Sim, logs: &str) {
    for m in [M1, M2] {
        let lease = sim.get(&format!("/v1/apps/lowendinsight/machines/{m}/lease"));
        let held = lease["data"]["nonce"].is_string() && lease["status"] == "success";
        assert!(!held, "lease left on {m}: {lease}\n{logs}");
    }
}

#[test]
fn killing_the_leader_mid_rollout_hands_over_and_the_rollout_finishes_once() {
    let Some(db) = Db::new("failover") else {
        return;
    };
    let store = db.url();
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    let repo = ws.commit_all("LowEndInsight on OLD");

    // Two replicas: the first leads, the second stands by.
    let (mut a, a_lines) = replica(&sim, &repo, &ws.dir.path().join("state-a"), &store);
    assert!(
        a_lines.wait_for("leadership acquired", Duration::from_secs(20)),
        "{}",
        a_lines.all()
    );
    assert!(
        a_lines.wait_for("reconciler started", Duration::from_secs(10)),
        "{}",
        a_lines.all()
    );
    let (mut b, b_lines) = replica(&sim, &repo, &ws.dir.path().join("state-b"), &store);
    assert!(
        b_lines.wait_for("standing by", Duration::from_secs(20)),
        "{}",
        b_lines.all()
    );
    assert!(
        !b_lines.all().contains("reconciler started"),
        "the follower runs no reconciler: {}",
        b_lines.all()
    );

    // A commit: only the leader rolls it out. Kill it once the first machine is updated.
    std::fs::write(repo.join("lowendinsight.yaml"), manifest(NEW)).unwrap();
    git(&repo, &["commit", "-q", "-am", "deploy NEW"]);
    let updated = eventually(Duration::from_secs(20), || {
        (sim.count("POST /v1/apps/{app}/machines/{id}") >= 1).then_some(())
    });
    assert!(
        updated.is_some(),
        "the leader updated a machine: {}",
        a_lines.all()
    );
    let _ = a.kill(); // SIGKILL: no release, no parking
    let killed = Instant::now();
    let _ = a.wait();
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        1,
        "killed mid-rollout: one machine updated, by the leader alone"
    );
    let half_done = deploys(&store);
    assert_eq!(half_done.len(), 1, "{half_done:?}");
    assert_eq!(half_done[0]["status"], "in_progress", "{half_done:?}");
    assert!(
        !b_lines.all().contains("reconciler started"),
        "the follower took no action while the leader lived: {}",
        b_lines.all()
    );

    // The follower takes over within 15 s and finishes the rollout from the records.
    assert!(
        b_lines.wait_for("leadership acquired", Duration::from_secs(15)),
        "no takeover within 15 s: {}",
        b_lines.all()
    );
    let took = killed.elapsed();
    eprintln!("SIGKILL → new leader: {took:?}");
    assert!(took <= Duration::from_secs(15), "takeover took {took:?}");
    let done = eventually(Duration::from_secs(30), || {
        deploys(&store)
            .into_iter()
            .find(|d| d["status"] != "in_progress")
    })
    .unwrap_or_else(|| panic!("rollout not finished: {}", b_lines.all()));
    assert_eq!(done["status"], "succeeded", "{done}\n{}", b_lines.all());
    assert_eq!(
        done["id"], half_done[0]["id"],
        "the half-done deploy was resumed, not started again"
    );
    assert_eq!(deploys(&store).len(), 1, "no duplicate deploy");
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        2,
        "each machine updated exactly once: {}",
        sim.requests()
    );
    no_lease_held(&sim, &b_lines.all());
    // Every record row was written under a leader epoch: the first leader's, then the new one's.
    assert_eq!(
        db.column("SELECT DISTINCT epoch FROM opsctl_records ORDER BY 1"),
        vec![Some(1), Some(2)]
    );

    // SIGTERM: the new leader stops cleanly and gives the lease up.
    common::send_signal(&b, "TERM");
    let status = eventually(Duration::from_secs(15), || b.try_wait().unwrap())
        .unwrap_or_else(|| panic!("no exit after SIGTERM: {}", b_lines.all()));
    assert!(status.success(), "{status:?}: {}", b_lines.all());
    assert!(
        b_lines.wait_for("leadership released", Duration::from_secs(1)),
        "{}",
        b_lines.all()
    );
    assert_eq!(
        db.column("SELECT epoch FROM opsctl_leader WHERE holder IS NOT NULL"),
        Vec::<Option<i64>>::new(),
        "no leader lease left held"
    );
    for text in [a_lines.all(), b_lines.all()] {
        assert!(
            !text.contains("postgres://") && !text.contains(&db.schema),
            "the store URL is never logged: {text}"
        );
    }
}

/// A leader that is paused (SIGSTOP: a long GC pause, a frozen VM) loses its lease; when it
/// wakes up it must not act on what it believed before: its record writes carry a stale epoch
/// and are refused, so it takes no further Fly step, and it steps down.
#[test]
fn a_paused_leader_that_wakes_up_after_a_takeover_is_fenced_off() {
    let Some(db) = Db::new("fencing") else {
        return;
    };
    let store = db.url();
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    let repo = ws.commit_all("LowEndInsight on OLD");
    let (mut a, a_lines) = replica(&sim, &repo, &ws.dir.path().join("state-a"), &store);
    assert!(
        a_lines.wait_for("reconciler started", Duration::from_secs(20)),
        "{}",
        a_lines.all()
    );
    let (mut b, b_lines) = replica(&sim, &repo, &ws.dir.path().join("state-b"), &store);
    assert!(
        b_lines.wait_for("standing by", Duration::from_secs(20)),
        "{}",
        b_lines.all()
    );

    std::fs::write(repo.join("lowendinsight.yaml"), manifest(NEW)).unwrap();
    git(&repo, &["commit", "-q", "-am", "deploy NEW"]);
    let updated = eventually(Duration::from_secs(20), || {
        (sim.count("POST /v1/apps/{app}/machines/{id}") >= 1).then_some(())
    });
    assert!(updated.is_some(), "{}", a_lines.all());
    common::send_signal(&a, "STOP");

    assert!(
        b_lines.wait_for("leadership acquired", Duration::from_secs(15)),
        "{}",
        b_lines.all()
    );
    let done = eventually(Duration::from_secs(30), || {
        deploys(&store)
            .into_iter()
            .find(|d| d["status"] != "in_progress")
    })
    .unwrap_or_else(|| panic!("rollout not finished: {}", b_lines.all()));
    assert_eq!(done["status"], "succeeded", "{done}");
    let updates = sim.count("POST /v1/apps/{app}/machines/{id}");
    assert_eq!(updates, 2, "{}", sim.requests());

    // The old leader wakes up: it learns it lost the lease and takes no further step.
    common::send_signal(&a, "CONT");
    assert!(
        a_lines.wait_for("leadership lost", Duration::from_secs(10)),
        "{}",
        a_lines.all()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        sim.count("POST /v1/apps/{app}/machines/{id}"),
        2,
        "the stale leader updated no machine: {}",
        a_lines.all()
    );
    let after = deploys(&store);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["status"], "succeeded", "{after:?}");
    assert_eq!(
        sim.images(),
        vec![(M1.into(), NEW.into()), (M2.into(), NEW.into())]
    );
    assert_eq!(
        db.column("SELECT count(*) FROM opsctl_records WHERE epoch = 1 AND seq > (SELECT min(seq) FROM opsctl_records WHERE epoch = 2)"),
        vec![Some(0)],
        "no record written under the old epoch after the takeover"
    );
    for child in [&mut a, &mut b] {
        common::send_signal(child, "TERM");
    }
    for (child, lines) in [(&mut a, &a_lines), (&mut b, &b_lines)] {
        let status = eventually(Duration::from_secs(15), || child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("no exit after SIGTERM: {}", lines.all()));
        assert!(status.success(), "{status:?}: {}", lines.all());
    }
    no_lease_held(
        &sim,
        &format!("A:\n{}\nB:\n{}", a_lines.all(), b_lines.all()),
    );
}

/// `GET /status` of a replica's listener on `port`, once `ok` accepts it.
fn live_status(port: u16, ok: impl Fn(&serde_json::Value) -> bool) -> Option<serde_json::Value> {
    eventually(Duration::from_secs(20), || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let v: serde_json::Value = rt.block_on(async {
            reqwest::get(format!("http://127.0.0.1:{port}/status"))
                .await
                .ok()?
                .json()
                .await
                .ok()
        })?;
        ok(&v).then_some(v)
    })
}

/// The listener runs for the whole process: the standby answers `/status` as `standby`, the
/// leader as `leader` with its reconciles.
#[test]
fn status_names_the_leader_and_the_standby() {
    let Some(db) = Db::new("status") else {
        return;
    };
    let store = db.url();
    let sim = Sim::start();
    let ws = Workspace::new(OLD);
    let repo = ws.commit_all("LowEndInsight on OLD");
    let port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (pa, pb) = (port(), port());
    let listen = |p: u16| format!("127.0.0.1:{p}");
    let (la, lb) = (listen(pa), listen(pb));
    let (mut a, a_lines) = replica_with(
        &sim,
        &repo,
        &ws.dir.path().join("state-a"),
        &store,
        &["--listen", &la],
    );
    assert!(
        a_lines.wait_for("leadership acquired", Duration::from_secs(20)),
        "{}",
        a_lines.all()
    );
    let (mut b, b_lines) = replica_with(
        &sim,
        &repo,
        &ws.dir.path().join("state-b"),
        &store,
        &["--listen", &lb],
    );
    assert!(
        b_lines.wait_for("standing by", Duration::from_secs(20)),
        "{}",
        b_lines.all()
    );
    let leader = live_status(pa, |v| v["apps"][0]["result"] == "ok")
        .unwrap_or_else(|| panic!("leader's /status: {}", a_lines.all()));
    assert_eq!(leader["role"], "leader");
    assert_eq!(leader["running"], true);
    let standby = live_status(pb, |v| v["kind"] == "reconciler")
        .unwrap_or_else(|| panic!("standby's /status: {}", b_lines.all()));
    assert_eq!(standby["role"], "standby", "{standby}");
    assert_eq!(standby["running"], false, "{standby}");
    assert_eq!(standby["apps"], serde_json::json!([]), "{standby}");
    // Only the leader is ready: a load balancer routes approvals and webhooks to it.
    let readyz = |p: u16| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let r = reqwest::get(format!("http://127.0.0.1:{p}/readyz"))
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    let (code, body) = readyz(pb);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("standby"), "{body}");
    assert_eq!(
        eventually(Duration::from_secs(10), || {
            let (code, _) = readyz(pa);
            (code == 200).then_some(code)
        }),
        Some(200),
        "leader ready: {:?}",
        readyz(pa)
    );
    for (child, lines) in [(&mut a, &a_lines), (&mut b, &b_lines)] {
        common::send_signal(child, "TERM");
        let status = eventually(Duration::from_secs(15), || child.try_wait().unwrap())
            .unwrap_or_else(|| panic!("no exit after SIGTERM: {}", lines.all()));
        assert!(status.success(), "{status:?}: {}", lines.all());
    }
}
