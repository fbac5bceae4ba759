//! `opsctl diff`: desired (manifests) vs observed (Fly), per app. Exit 0 in sync, 2 drift.
//!
//! JSON (`-o json`): `{"kind":"diff","in_sync":bool,"apps":[{"app":…,"in_sync":bool,
//! "changes":[{"kind":"image","machine":…,"group":…,"region":…,"from":…,"to":…}, …]}]}`;
//! change kinds: `image`, `env`, `size`, `count`, `undeclared_group`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use opsctl_controllers::diff::{AppDiff, Change, diff};
use serde_json::json;

use super::output::{Format, print_json, print_text};
use super::{Global, target, validate};
use crate::fly::observe::observe_app;

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
}

pub async fn exec(args: DiffArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let set = validate::load(global)?;
    let target = target::connect(&global.fly).await?;
    let mut diffs = Vec::new();
    for app in set
        .apps
        .iter()
        .filter(|a| args.app.as_deref().is_none_or(|n| n == a.app_name()))
    {
        let observed = observe_app(&target.client, app.app_name())
            .await
            .with_context(|| {
                format!(
                    "observing {} on Fly (observed state unknown)",
                    app.app_name()
                )
            })?;
        diffs.push(diff(app, &observed));
    }
    if let Some(name) = &args.app
        && diffs.is_empty()
    {
        anyhow::bail!("no FlyApp named {name:?} in {}", global.manifests.display());
    }
    let in_sync = diffs.iter().all(AppDiff::is_empty);
    if global.output == Format::Json {
        let apps: Vec<_> = diffs
            .iter()
            .map(|d| json!({"app": d.app, "in_sync": d.is_empty(), "changes": d.changes}))
            .collect();
        print_json(&json!({"kind": "diff", "in_sync": in_sync, "apps": apps}))?;
    } else {
        print_text(&diffs.iter().map(render).collect::<String>())?;
    }
    Ok(if in_sync {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Text rendering of one app's diff.
pub fn render(d: &AppDiff) -> String {
    if d.is_empty() {
        return format!("{}: in sync\n", d.app);
    }
    let mut s = format!("{}: {} change(s)\n", d.app, d.changes.len());
    for c in &d.changes {
        let line = match c {
            Change::Image {
                machine,
                group,
                region,
                from,
                to,
            } => {
                format!("~ machine {machine} ({group}, {region}): image {from} → {to}")
            }
            Change::Env {
                machine,
                group,
                key,
                from,
                to,
            } => format!(
                "~ machine {machine} ({group}): env {key}: {} → {}",
                from.as_deref().unwrap_or("(unset)"),
                to.as_deref().unwrap_or("(unset)")
            ),
            Change::Size {
                machine,
                group,
                from,
                to,
            } => format!(
                "~ machine {machine} ({group}): size {} → {} cpu(s) {} MB",
                from.map(|f| format!("{} cpu(s) {} MB", f.cpus, f.memory_mb))
                    .unwrap_or_else(|| "(unset)".into()),
                to.cpus,
                to.memory_mb
            ),
            Change::Count {
                group,
                region,
                observed,
                desired,
            } => {
                let sign = if desired > observed { '+' } else { '-' };
                format!(
                    "{sign} group {group} in {region}: {observed} → {desired} machine(s) (scaling is not applied automatically)"
                )
            }
            Change::MixedImages { group, images } => {
                let parts: Vec<String> = images
                    .iter()
                    .map(|(image, ids)| format!("{image} on {}", ids.join(", ")))
                    .collect();
                format!("! group {group} runs mixed images: {}", parts.join("; "))
            }
            Change::UndeclaredGroup { group, machines } => {
                format!(
                    "? group {group} is not in the manifest: machines {}",
                    machines.join(", ")
                )
            }
        };
        s.push_str("  ");
        s.push_str(&line);
        s.push('\n');
    }
    let images: Vec<(&str, &str)> = d
        .changes
        .iter()
        .filter_map(|c| match c {
            Change::Image { from, to, .. } => Some((from.as_str(), to.as_str())),
            _ => None,
        })
        .collect();
    if let Some((from, to)) = images.first()
        && images.iter().all(|i| i == &(*from, *to))
    {
        s.push_str(&format!(
            "  = image {from} → {to} on {} machine(s)\n",
            images.len()
        ));
    }
    s
}
