//! `opsctl diff`: desired (manifests) vs observed (Fly), per app. Exit 0 in sync, 2 drift, 1
//! when any app could not be observed (1 wins over 2). Each app is observed on its own: one
//! that fails (unknown to Fly, Fly unreachable) is reported as an error and the others are
//! still diffed and shown.
//!
//! JSON (`-o json`): `{"kind":"diff","in_sync":bool,"errors":N,"apps":[{"app":…,
//! "outcome":"in_sync"|"drift","in_sync":bool,"changes":[{"kind":"image","machine":…,
//! "group":…,"region":…,"from":…,"to":…}, …]} | {"app":…,"outcome":"error","in_sync":false,
//! "error":{"kind":"error","code":…,"message":…,"causes":[…]}}]}`; change kinds: `image`,
//! `env`, `size`, `services`, `check`, `stop`, `count`, `mixed_images`, `undeclared_group`. `in_sync` is true only when every app was
//! observed and none drifted.

use std::process::ExitCode;

use clap::Args;
use opsctl_controllers::diff::{AppDiff, Change, diff};
use serde_json::json;

use super::output::{Format, error_json, error_line, print_json, print_text, report_text_only};
use super::{Global, target, validate};
use crate::fly::observe::observe_app;

/// Arguments of `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
}

/// One app's result.
enum AppResult {
    Diffed(AppDiff),
    /// Observation failed: the app's state is unknown.
    Failed(String, anyhow::Error),
}

pub async fn exec(args: DiffArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let set = validate::load(global)?;
    let apps: Vec<_> = set
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
    let target = target::connect(&global.fly).await?;
    let mut results = Vec::new();
    for app in apps {
        let name = app.app_name();
        results.push(match observe_app(&target.client, name).await {
            Ok(observed) => AppResult::Diffed(diff(app, &observed)),
            Err(e) => AppResult::Failed(
                name.to_owned(),
                anyhow::Error::new(e)
                    .context(format!("observing {name} on Fly (observed state unknown)")),
            ),
        });
    }
    let failed: Vec<&str> = results
        .iter()
        .filter_map(|r| match r {
            AppResult::Failed(app, _) => Some(app.as_str()),
            AppResult::Diffed(_) => None,
        })
        .collect();
    let in_sync = results
        .iter()
        .all(|r| matches!(r, AppResult::Diffed(d) if d.is_empty()));
    if global.output == Format::Json {
        let apps: Vec<_> = results
            .iter()
            .map(|r| match r {
                AppResult::Diffed(d) => json!({"app": d.app,
                    "outcome": if d.is_empty() { "in_sync" } else { "drift" },
                    "in_sync": d.is_empty(), "changes": d.changes}),
                AppResult::Failed(app, e) => {
                    json!({"app": app, "outcome": "error", "in_sync": false, "error": error_json(e)})
                }
            })
            .collect();
        print_json(
            &json!({"kind": "diff", "in_sync": in_sync, "errors": failed.len(), "apps": apps}),
        )?;
    } else {
        let text: String = results
            .iter()
            .map(|r| match r {
                AppResult::Diffed(d) => render(d),
                AppResult::Failed(app, e) => format!("{app}: error: {}\n", error_line(e)),
            })
            .collect();
        print_text(&text)?;
    }
    if !failed.is_empty() {
        report_text_only(
            global,
            &anyhow::anyhow!(
                "{} of {} app(s) could not be observed: {}; their drift is unknown",
                failed.len(),
                results.len(),
                failed.join(", ")
            ),
        );
        return Ok(ExitCode::from(1));
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
            Change::Services {
                machine,
                group,
                summary,
                ..
            }
            | Change::Check {
                machine,
                group,
                summary,
                ..
            }
            | Change::Stop {
                machine,
                group,
                summary,
                ..
            } => {
                format!("~ machine {machine} ({group}): {summary}")
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
