//! `opsctl demo`: the scripted end-to-end run on the embedded simulator (DESIGN.md §8).
//!
//! LowEndInsight starts on release v109 (image `…:deployment-OLD`, two machines in `iad`).
//! The demo loads the shipped manifest (image `…:deployment-NEW`), shows the drift, rolls it
//! out, shows the diff clean, then "commits" a bad image (`…:deployment-BAD`, whose checks
//! fail): the rollout stops at the first machine and rolls it back as a new release, and a
//! failed deploy goes to the incident pipeline, which records an incident and its postmortem,
//! and a second automatic attempt of the same bad image is refused. Each step checks what it expects
//! and the demo exits 0 only when every step behaved.
//!
//! Output: the story as text on stdout. With `-o json` the story goes to stderr and stdout
//! gets one document at the end: `{"kind":"demo","passed":N,"failed":M,"steps":[{"name":…,
//! "ok":bool}],"records":[deploy record…]}` (records oldest first, fields as in
//! `docs/records.md`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use opsctl_controllers::diff::{Change, diff};
use opsctl_crds::{DurationStr, load_str};
use serde_json::json;

use super::Global;
use super::output::{Format, print_json, print_progress, print_text};
use crate::fly::observe::observe_app;
use crate::records::{DeployStatus, RecordStore, Trigger};
use crate::runtime::clock::SystemClock;
use crate::runtime::deploy::{Deployer, Outcome};
use crate::sim;

/// The manifest the demo deploys: the one this repository ships.
const MANIFEST: &str = include_str!("../../manifests/lowendinsight.yaml");

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {}

pub async fn exec(_args: DemoArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let handle = sim::serve(
        sim::scenario::Scenario::lowendinsight_default(),
        ([127, 0, 0, 1], 0).into(),
    )
    .await
    .context("starting the embedded Fly simulator")?;
    let client = crate::fly::FlyClient::new(
        crate::fly::Endpoints::origin(&handle.base_url()),
        crate::secret::Secret::new("demo-token"),
    )?;
    let state = global.state.join("demo");
    if state.exists() {
        std::fs::remove_dir_all(&state).with_context(|| format!("clearing {}", state.display()))?;
    }
    let store = Arc::new(RecordStore::open_write(&state)?);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut deployer = Deployer::new(client.clone(), store.clone(), Arc::new(SystemClock), stop);
    deployer.poll = Duration::from_millis(200);
    let set = load_str("manifests/lowendinsight.yaml".as_ref(), MANIFEST)
        .map_err(|e| anyhow::anyhow!("the shipped manifest is invalid: {:?}", e.diagnostics))?;
    let Some(mut good) = set.apps.into_iter().next() else {
        bail!("the shipped manifest has no FlyApp")
    };
    // Fly reports a failing check as critical after its grace period; the shipped manifest
    // waits 30s before calling that a failure. The demo shortens it to stay quick.
    good.spec.deploy.fail_after = DurationStr::from_secs(3);
    // The shipped manifest probes the real https://lowendinsight.fly.dev/; the demo's Fly is a
    // simulator, so probing the real site would judge something the demo did not deploy.
    good.spec.health.probes.clear();
    let mut bad = good.clone();
    bad.spec.image = good.spec.image.replace("deployment-NEW", "deployment-BAD");

    let mut demo = Demo {
        json: global.output == Format::Json,
        steps: Vec::new(),
    };
    demo.say(&format!(
        "Fly simulator on {} — LowEndInsight runs release v109 (deployment-OLD) on 2 machines in iad\n",
        handle.base_url()
    ))?;

    let observed = observe_app(&client, good.app_name()).await?;
    let d = diff(&good, &observed);
    demo.say(&super::diff::render(&d))?;
    let images = d.changes.iter().filter(|c| matches!(c, Change::Image { from, to, .. } if from.ends_with("deployment-OLD") && to.ends_with("deployment-NEW"))).count();
    demo.check("1. diff shows image OLD → NEW on 2 machines", images == 2)?;

    let outcome = deployer.deploy(&good, Trigger::Demo, None).await?;
    demo.report(&outcome)?;
    demo.check("2. rolling deploy of NEW succeeds as release v110", matches!(&outcome, Outcome::Deployed(r) if r.status == DeployStatus::Succeeded && r.release.as_ref().is_some_and(|r| r.version == 110)))?;

    let d = diff(&good, &observe_app(&client, good.app_name()).await?);
    demo.say(&super::diff::render(&d))?;
    demo.check("3. diff is clean after the rollout", d.is_empty())?;

    demo.say("A commit sets the image to deployment-BAD, whose checks fail…\n")?;
    let outcome = deployer.deploy(&bad, Trigger::Demo, None).await?;
    demo.report(&outcome)?;
    let rolled_back = matches!(&outcome, Outcome::Deployed(r) if r.status == DeployStatus::RolledBack
        && r.rollback.as_ref().is_some_and(|rb| rb.machines.len() == 1 && rb.image == good.spec.image));
    demo.check(
        "4. BAD fails health on the first machine and is rolled back as a new release",
        rolled_back,
    )?;

    // The deploy pipeline hands the finished deploy to the incident pipeline (in `opsctl run`
    // after the settle time; here at once): an incident, answered from the record, and its
    // postmortem.
    if let Outcome::Deployed(rec) = &outcome {
        let (_stop_tx2, stop2) = tokio::sync::watch::channel(false);
        let mut responder =
            Deployer::new(client.clone(), store.clone(), Arc::new(SystemClock), stop2);
        responder.poll = deployer.poll;
        let mut pipeline = crate::incident::IncidentPipeline::new(
            responder,
            crate::incident::IncidentConfig::default(),
        );
        for signal in crate::incident::after_deploy(&client, rec, chrono::Utc::now()).await {
            pipeline.handle(signal).await?;
        }
    }
    let kinds = |kind: crate::records::RecordKind| {
        store
            .records(|r| r.kind == kind && r.app.as_deref() == Some(good.app_name()))
            .map(|v| v.into_iter().map(|r| r.title).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let incidents = kinds(crate::records::RecordKind::Incident);
    let postmortems = kinds(crate::records::RecordKind::Postmortem);
    for t in incidents.iter().chain(&postmortems) {
        demo.say(&format!("  recorded: {t}\n"))?;
    }
    demo.check(
        "4b. the failed deploy becomes an incident with a postmortem",
        !incidents.is_empty() && !postmortems.is_empty(),
    )?;

    let on_new = observe_app(&client, good.app_name())
        .await?
        .machines
        .iter()
        .all(|m| m.image == good.spec.image);
    demo.check("5. every machine runs NEW again", on_new)?;

    let again = deployer.deploy(&bad, Trigger::Demo, None).await?;
    demo.report(&again)?;
    demo.check(
        "6. the bad image is not deployed a second time automatically",
        matches!(again, Outcome::Blocked { .. }),
    )?;

    let d = diff(&good, &observe_app(&client, good.app_name()).await?);
    demo.check(
        "7. with the manifest back on NEW, the diff ends clean",
        d.is_empty(),
    )?;

    let history = store.deploys(None)?;
    demo.say(&format!("\nDeploy records in {}:\n", state.display()))?;
    for r in history.iter().rev() {
        demo.say(&format!("  {}\n", super::apply::summary(r)))?;
    }
    demo.say(&format!(
        "Incidents and postmortems: `opsctl --state {} records export` (beads issues.jsonl)\n",
        state.display()
    ))?;
    handle.shutdown().await;
    let (passed, failed) = demo.counts();
    demo.say(&format!("\n{passed} passed, {failed} failed\n"))?;
    if demo.json {
        let steps: Vec<_> = demo
            .steps
            .iter()
            .map(|(name, ok)| json!({"name": name, "ok": ok}))
            .collect();
        let records: Vec<_> = history.iter().rev().collect();
        print_json(&json!({"kind": "demo", "passed": passed, "failed": failed,
                           "steps": steps, "records": records}))?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The demo's steps so far, and where its story goes.
struct Demo {
    /// `-o json`: the story goes to stderr, a JSON document to stdout at the end.
    json: bool,
    /// Each checked step and whether it behaved.
    steps: Vec<(String, bool)>,
}

impl Demo {
    fn check(&mut self, what: &str, ok: bool) -> anyhow::Result<()> {
        self.steps.push((what.to_owned(), ok));
        self.say(&format!("{} {what}\n", if ok { '✓' } else { '✗' }))
    }

    /// (passed, failed).
    fn counts(&self) -> (usize, usize) {
        let passed = self.steps.iter().filter(|(_, ok)| *ok).count();
        (passed, self.steps.len() - passed)
    }

    fn say(&self, text: &str) -> anyhow::Result<()> {
        if self.json {
            print_progress(text)
        } else {
            print_text(text)
        }
    }

    fn report(&self, outcome: &Outcome) -> anyhow::Result<()> {
        match outcome {
            Outcome::Deployed(r) => self.say(&format!("  {}\n", super::apply::summary(r))),
            Outcome::Blocked { reason } => self.say(&format!("  blocked: {reason}\n")),
            Outcome::NothingToDo(_) => self.say("  nothing to do\n"),
        }
    }
}
