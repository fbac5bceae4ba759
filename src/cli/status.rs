//! `opsctl status [APP]`: what opsctl knows about each app, as a list of sections. Each section
//! is one function from (manifests, records) to lines and a JSON value; add a section by adding
//! a function to [`SECTIONS`]. Sections here read no Fly state.
//!
//! Sections: `governance` (policy, burn-in phase and counted deploys, approvals waiting, last
//! deploy).
//!
//! JSON: `{"kind":"status","apps":[{"app":…,"<section>":{…}, …}]}`; `governance` is
//! `{"policy":…,"phase":1|2|3,"counted_deploys":N,"next_deploy":N,"pending_approvals":[ids],
//! "last_deploy"?:{"id":…,"status":…,"image":…}}`.

use clap::Args;
use opsctl_controllers::governance::policy_for;
use opsctl_crds::{FlyApp, ManifestSet};
use serde_json::{Value, json};
use std::process::ExitCode;

use super::output::{Format, print_json, print_text};
use super::{Global, validate};
use crate::governance::approvals;
use crate::governance::plan::app_burn_in;
use crate::records::RecordStore;

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this app.
    pub app: Option<String>,
}

/// What one section says about one app: text lines and a JSON value.
pub struct Section {
    /// Key in JSON, heading in text.
    pub name: &'static str,
    /// Lines for people.
    pub lines: Vec<String>,
    /// The same facts as JSON.
    pub json: Value,
}

/// Inputs every section gets.
pub struct StatusInputs<'a> {
    /// The manifest set.
    pub set: &'a ManifestSet,
    /// The record store, read-only.
    pub store: &'a RecordStore,
}

type SectionFn = fn(&StatusInputs<'_>, &FlyApp) -> anyhow::Result<Section>;

/// The sections, in display order.
const SECTIONS: &[SectionFn] = &[governance];

fn governance(inputs: &StatusInputs<'_>, app: &FlyApp) -> anyhow::Result<Section> {
    let name = app.app_name();
    let (policy, source) = policy_for(&inputs.set.policies, name);
    let (burn, records) = app_burn_in(inputs.store, name, &policy.burn_in)?;
    let pending: Vec<String> = approvals::pending(inputs.store, Some(name))?
        .iter()
        .map(|a| a.id().to_owned())
        .collect();
    let mut lines = vec![format!(
        "policy {source}: burn-in phase {}, {} counted deploy(s), the next is deploy {}",
        burn.phase,
        burn.count,
        burn.count + 1
    )];
    if pending.is_empty() {
        lines.push("no approval waiting".into());
    } else {
        lines.push(format!("waiting for approval: {}", pending.join(", ")));
    }
    let last = records.first();
    if let Some(r) = last {
        lines.push(format!(
            "last deploy {} {} ({})",
            r.id,
            r.status.as_str(),
            r.image
        ));
    }
    let mut json = json!({"policy": source, "phase": burn.phase, "counted_deploys": burn.count,
        "next_deploy": burn.count + 1, "pending_approvals": pending});
    if let Some(r) = last {
        json["last_deploy"] = json!({"id": r.id, "status": r.status, "image": r.image});
    }
    Ok(Section {
        name: "governance",
        lines,
        json,
    })
}

pub fn exec(args: StatusArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let set = validate::load(global)?;
    let apps: Vec<&FlyApp> = set
        .apps
        .iter()
        .filter(|a| args.app.as_deref().is_none_or(|n| n == a.app_name()))
        .collect();
    if let Some(name) = &args.app
        && apps.is_empty()
    {
        anyhow::bail!(
            "no FlyApp named {name:?} in {}",
            validate::shown(&global.manifests)
        );
    }
    let store = RecordStore::open_read(&global.state);
    let inputs = StatusInputs {
        set: &set,
        store: &store,
    };
    let mut values = Vec::new();
    let mut text = String::new();
    for app in apps {
        let mut v = json!({"app": app.app_name()});
        text.push_str(&format!("{}\n", app.app_name()));
        for section in SECTIONS {
            let s = section(&inputs, app)?;
            text.push_str(&format!("  {}:\n", s.name));
            for l in &s.lines {
                text.push_str(&format!("    {l}\n"));
            }
            v[s.name] = s.json;
        }
        values.push(v);
    }
    if global.output == Format::Json {
        print_json(&json!({"kind": "status", "apps": values}))?;
    } else {
        print_text(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}
