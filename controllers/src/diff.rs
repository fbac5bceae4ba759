//! Desired vs observed → drift, per app (`opsctl diff`, DESIGN.md §8).
//!
//! Inputs: a `FlyApp` manifest and an [`ObservedApp`]. Output: an [`AppDiff`] listing every
//! change that a reconcile would make, in a stable order (group, region, machine id). Pure and
//! deterministic: the same inputs give the same diff.
//!
//! What is *not* drift: keys Fly adds itself (`FLY_*` env such as `FLY_PROCESS_GROUP`,
//! `PRIMARY_REGION`; platform metadata), machines without `fly_platform_version=v2` (not
//! managed by Fly Launch, so not ours), and destroyed machines. Services, checks and stop
//! settings are compared after both sides are normalised
//! ([`ServiceConfig::normalized`](crate::machine_config::ServiceConfig::normalized): Fly's
//! defaults written out or left out, durations by value, order Fly does not act on, case
//! BUG-25), and only in the fields the manifest can express.

use std::collections::{BTreeMap, BTreeSet};

use opsctl_crds::FlyApp;
use serde::{Deserialize, Serialize};

use crate::machine_config::{self, ServiceConfig, describe_check, describe_services};
use crate::observed::{GuestSize, ObservedApp, ObservedMachine};

/// All drift of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppDiff {
    /// Fly app name.
    pub app: String,
    /// Changes, ordered by group, region, machine id.
    pub changes: Vec<Change>,
}

impl AppDiff {
    /// True when desired and observed agree.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Ids of machines whose config drifted (image, env, size, services, checks or stop),
    /// sorted, without repeats: the machines a rollout updates.
    pub fn machines_to_update(&self) -> BTreeSet<&str> {
        self.changes.iter().filter_map(Change::machine).collect()
    }
}

/// One difference between desired and observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// The machine runs another image.
    Image {
        /// Machine id.
        machine: String,
        /// Process group.
        group: String,
        /// Region.
        region: String,
        /// Observed image.
        from: String,
        /// Desired image.
        to: String,
    },
    /// An environment variable differs (`None`: absent on that side).
    Env {
        /// Machine id.
        machine: String,
        /// Process group.
        group: String,
        /// Variable name.
        key: String,
        /// Observed value.
        from: Option<String>,
        /// Desired value.
        to: Option<String>,
    },
    /// CPU or memory differ.
    Size {
        /// Machine id.
        machine: String,
        /// Process group.
        group: String,
        /// Observed size (`None`: the config does not say).
        from: Option<GuestSize>,
        /// Desired size.
        to: GuestSize,
    },
    /// The machine's services differ (protocol, internal port, ports, concurrency or service
    /// checks). `from` and `to` are normalised, so they differ only where Fly would act.
    Services {
        /// Machine id.
        machine: String,
        /// Process group.
        group: String,
        /// Observed services, normalised.
        from: Vec<machine_config::Service>,
        /// Desired services, normalised.
        to: Vec<machine_config::Service>,
        /// What differs, for people: `services: 8080/tcp: internal port 8080 → 9090`.
        summary: String,
    },
    /// A top-level check (config `checks`) differs, or is missing on one side (`None`).
    Check {
        /// Machine id.
        machine: String,
        /// Process group.
        group: String,
        /// Check name.
        name: String,
        /// Observed check, normalised.
        from: Option<machine_config::Check>,
        /// Desired check, normalised.
        to: Option<machine_config::Check>,
        /// What differs, for people: `check readyz: timeout 5s → 2s`.
        summary: String,
    },
    /// How Fly stops the machine differs (config `stop_config`; absent is Fly's default,
    /// `SIGINT` after 5 s).
    Stop {
        /// Machine id.
        machine: String,
        /// Process group.
        group: String,
        /// Observed, normalised.
        from: machine_config::Stop,
        /// Desired, normalised.
        to: machine_config::Stop,
        /// What differs, for people: `stop SIGINT, 5s → SIGTERM, 5s`.
        summary: String,
    },
    /// The number of machines of a group in a region differs (scaling: not applied
    /// automatically; see `docs/architecture.md`).
    Count {
        /// Process group.
        group: String,
        /// Region.
        region: String,
        /// Observed managed machines.
        observed: u32,
        /// Desired machines.
        desired: u32,
    },
    /// Machines of one group run different images (case BUG-08: an interrupted or
    /// overlapping rollout). Reported beside the per-machine image changes that converge it.
    MixedImages {
        /// Process group.
        group: String,
        /// Image → machine ids running it.
        images: BTreeMap<String, Vec<String>>,
    },
    /// Managed machines run a process group the manifest does not declare.
    UndeclaredGroup {
        /// Process group.
        group: String,
        /// Its machines.
        machines: Vec<String>,
    },
}

impl Change {
    /// The machine a config change applies to; `None` for count and group changes.
    pub fn machine(&self) -> Option<&str> {
        match self {
            Change::Image { machine, .. }
            | Change::Env { machine, .. }
            | Change::Size { machine, .. }
            | Change::Services { machine, .. }
            | Change::Check { machine, .. }
            | Change::Stop { machine, .. } => Some(machine),
            Change::Count { .. } | Change::MixedImages { .. } | Change::UndeclaredGroup { .. } => {
                None
            }
        }
    }
}

impl Change {
    /// The one-line summary of a services, check or stop change (what differs, normalised),
    /// for text output: `services: 8080/tcp: internal port 8080 → 9090`,
    /// `check readyz: (none) → http GET /readyz :4000 every 15s`, `stop SIGINT, 5s → SIGTERM,
    /// 5s`. `None` for the other kinds, whose fields say it all.
    pub fn summary(&self) -> Option<&str> {
        match self {
            Change::Services { summary, .. }
            | Change::Check { summary, .. }
            | Change::Stop { summary, .. } => Some(summary),
            _ => None,
        }
    }
}

/// True for env keys that Fly sets on every machine itself (never drift).
/// Source: flyctl `ToMachineConfig` adds `FLY_PROCESS_GROUP` and `PRIMARY_REGION`
/// (NOTES.md §7.2); fly.toml forbids user keys starting with `FLY_`.
pub fn is_platform_env(key: &str) -> bool {
    key.starts_with("FLY_") || key == "PRIMARY_REGION"
}

/// The environment a machine of `app` should have, platform keys excluded.
pub fn desired_env(app: &FlyApp) -> &BTreeMap<String, String> {
    &app.spec.env
}

/// The size a machine of `group` should have; `None` when the manifest does not say.
pub fn desired_size(app: &FlyApp, group: &str) -> Option<GuestSize> {
    let vm = app.spec.process_groups.get(group)?.vm.as_ref()?;
    GuestSize::from_preset(&vm.size, vm.memory_mb)
}

/// Diff `app` (desired) against `observed`.
///
/// ```
/// # use opsctl_controllers::{diff::diff, observed::ObservedApp};
/// # fn demo(app: &opsctl_crds::FlyApp, observed: &ObservedApp) {
/// let d = diff(app, observed);
/// if d.is_empty() { println!("in sync"); }
/// # }
/// ```
pub fn diff(app: &FlyApp, observed: &ObservedApp) -> AppDiff {
    let mut changes = Vec::new();
    let mut by_group: BTreeMap<&str, Vec<&ObservedMachine>> = BTreeMap::new();
    for m in observed.managed() {
        by_group.entry(m.group.as_str()).or_default().push(m);
    }
    for (group, spec) in &app.spec.process_groups {
        let machines = by_group.remove(group.as_str()).unwrap_or_default();
        let mut per_region: BTreeMap<&str, u32> = BTreeMap::new();
        for m in &machines {
            *per_region.entry(m.region.as_str()).or_default() += 1;
        }
        let regions: BTreeSet<&str> = spec
            .regions
            .keys()
            .map(String::as_str)
            .chain(per_region.keys().copied())
            .collect();
        for region in regions {
            let desired = spec.regions.get(region).copied().unwrap_or(0);
            let observed = per_region.get(region).copied().unwrap_or(0);
            if desired != observed {
                changes.push(Change::Count {
                    group: group.clone(),
                    region: region.to_owned(),
                    observed,
                    desired,
                });
            }
        }
        let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &machines {
            images
                .entry(m.image.clone())
                .or_default()
                .push(m.id.clone());
        }
        if images.len() > 1 {
            images.values_mut().for_each(|ids| ids.sort());
            changes.push(Change::MixedImages {
                group: group.clone(),
                images,
            });
        }
        let size = desired_size(app, group);
        let config = machine_config::desired(app, group).normalized();
        let mut sorted = machines;
        sorted.sort_by(|a, b| (&a.region, &a.id).cmp(&(&b.region, &b.id)));
        for m in sorted {
            machine_changes(app, m, size, &mut changes);
            config_changes(&config, m, &mut changes);
        }
    }
    for (group, machines) in by_group {
        changes.push(Change::UndeclaredGroup {
            group: group.to_owned(),
            machines: machines.iter().map(|m| m.id.clone()).collect(),
        });
    }
    AppDiff {
        app: app.app_name().to_owned(),
        changes,
    }
}

fn machine_changes(
    app: &FlyApp,
    m: &ObservedMachine,
    size: Option<GuestSize>,
    out: &mut Vec<Change>,
) {
    if m.image != app.spec.image {
        out.push(Change::Image {
            machine: m.id.clone(),
            group: m.group.clone(),
            region: m.region.clone(),
            from: m.image.clone(),
            to: app.spec.image.clone(),
        });
    }
    let desired = desired_env(app);
    let observed: BTreeMap<&String, &String> =
        m.env.iter().filter(|(k, _)| !is_platform_env(k)).collect();
    let keys: BTreeSet<&String> = desired.keys().chain(observed.keys().copied()).collect();
    for key in keys {
        let from = observed.get(key).map(|v| (*v).clone());
        let to = desired.get(key).cloned();
        if from != to {
            out.push(Change::Env {
                machine: m.id.clone(),
                group: m.group.clone(),
                key: key.clone(),
                from,
                to,
            });
        }
    }
    if let Some(to) = size
        && m.guest != Some(to)
    {
        out.push(Change::Size {
            machine: m.id.clone(),
            group: m.group.clone(),
            from: m.guest,
            to,
        });
    }
}

/// Services, top-level checks and stop settings of `m` against `desired` (normalised).
fn config_changes(desired: &ServiceConfig, m: &ObservedMachine, out: &mut Vec<Change>) {
    let observed = m.service_config.normalized();
    if observed.services != desired.services {
        out.push(Change::Services {
            machine: m.id.clone(),
            group: m.group.clone(),
            summary: format!(
                "services: {}",
                describe_services(&observed.services, &desired.services)
            ),
            from: observed.services.clone(),
            to: desired.services.clone(),
        });
    }
    let names: BTreeSet<&String> = observed
        .checks
        .keys()
        .chain(desired.checks.keys())
        .collect();
    for name in names {
        let from = observed.checks.get(name);
        let to = desired.checks.get(name);
        if from != to {
            out.push(Change::Check {
                machine: m.id.clone(),
                group: m.group.clone(),
                name: name.clone(),
                summary: format!("check {name}: {}", describe_check(from, to)),
                from: from.cloned(),
                to: to.cloned(),
            });
        }
    }
    let default_stop = machine_config::Stop::fly_default;
    let from = observed.stop.unwrap_or_else(default_stop);
    let to = desired.stop.clone().unwrap_or_else(default_stop);
    if from != to {
        out.push(Change::Stop {
            machine: m.id.clone(),
            group: m.group.clone(),
            summary: format!("stop {from} → {to}"),
            from,
            to,
        });
    }
}

#[cfg(test)]
mod tests;
