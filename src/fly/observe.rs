//! From Fly's wire format to domain observations ([`opsctl_controllers::observed`]): the one
//! place where `fly_process_group` becomes `group` and a machine event becomes an [`ExitInfo`].
//!
//! Rules (NOTES.md §2.3–§2.6): a machine is managed when its metadata says
//! `fly_platform_version=v2`; its group is `fly_process_group` (legacy `process_group`, else
//! `app`); its release is `fly_release_version`; events are newest first; check names from
//! Fly's compatibility shim (`bg_deployments_compat*`) are dropped, as fly-go does.

use chrono::{DateTime, TimeZone, Utc};
use opsctl_controllers::observed::{
    CheckResult, CheckState, CpuKind, ExitInfo, GuestSize, MachineState, ObservedApp,
    ObservedMachine, ObservedRelease,
};

use crate::fly::wire::{self, META_PLATFORM_VERSION, META_PROCESS_GROUP, META_RELEASE_VERSION};
use crate::fly::{FlyClient, FlyError};

/// Observe one app: its machines (one list call) and its newest releases (one GraphQL call).
///
/// # Errors
/// [`FlyError`] from either call; `Unavailable` means "could not see", never "unhealthy".
pub async fn observe_app(client: &FlyClient, app: &str) -> Result<ObservedApp, FlyError> {
    let machines = client.list_machines(app).await?;
    let releases = observe_releases(client, app).await?;
    let mut machines: Vec<ObservedMachine> = machines
        .iter()
        .filter(|m| m.state != "destroyed")
        .map(machine)
        .collect();
    machines.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ObservedApp {
        name: app.to_owned(),
        machines,
        releases,
    })
}

/// The newest 25 releases of `app`, newest first.
///
/// # Errors
/// [`FlyError`].
pub async fn observe_releases(
    client: &FlyClient,
    app: &str,
) -> Result<Vec<ObservedRelease>, FlyError> {
    Ok(client
        .list_releases(app, 25)
        .await?
        .into_iter()
        .map(|r| ObservedRelease {
            id: r.id,
            version: r.version,
            status: r.status,
            image: r.image_ref,
        })
        .collect())
}

/// Convert one wire machine.
pub fn machine(m: &wire::Machine) -> ObservedMachine {
    let config = m.config.as_ref().or(m.incomplete_config.as_ref());
    let meta = |k: &str| config.and_then(|c| c.metadata.get(k)).cloned();
    let group = meta(META_PROCESS_GROUP)
        .or_else(|| meta("process_group"))
        .unwrap_or_else(|| "app".to_owned());
    let configured_checks = config
        .map(|c| {
            c.checks.len()
                + c.services
                    .iter()
                    .map(|s| {
                        s.get("checks")
                            .and_then(|v| v.as_array())
                            .map_or(0, Vec::len)
                    })
                    .sum::<usize>()
        })
        .unwrap_or(0);
    ObservedMachine {
        id: m.id.clone(),
        region: m.region.clone(),
        group,
        state: MachineState::from_fly(&m.state),
        image: config.map(|c| c.image.clone()).unwrap_or_default(),
        version: m.instance_id.clone(),
        release_version: meta(META_RELEASE_VERSION).and_then(|v| v.parse().ok()),
        managed: meta(META_PLATFORM_VERSION).as_deref() == Some("v2"),
        env: config.map(|c| c.env.clone()).unwrap_or_default(),
        guest: config.and_then(|c| c.guest.as_ref()).map(|g| GuestSize {
            cpu_kind: if g.cpu_kind == "performance" {
                CpuKind::Performance
            } else {
                CpuKind::Shared
            },
            cpus: g.cpus,
            memory_mb: g.memory_mb,
        }),
        checks: m
            .checks
            .iter()
            .filter(|c| !c.name.starts_with("bg_deployments_compat"))
            .map(|c| CheckResult {
                name: c.name.clone(),
                state: match c.status.as_str() {
                    "passing" => CheckState::Passing,
                    "warning" => CheckState::Warning,
                    _ => CheckState::Critical,
                },
                output: c.output.clone(),
            })
            .collect(),
        configured_checks,
        last_exit: m.events.iter().find(|e| e.kind == "exit").map(|e| {
            let exit = e
                .request
                .as_ref()
                .and_then(|r| r.exit_event.clone())
                .unwrap_or_default();
            ExitInfo {
                exit_code: exit.exit_code,
                oom_killed: exit.oom_killed,
                requested_stop: exit.requested_stop,
                restarting: exit.restarting,
                restart_count: e.request.as_ref().map_or(0, |r| r.restart_count),
                at: millis(e.timestamp),
            }
        }),
        last_start: m
            .events
            .iter()
            .find(|e| e.kind == "start")
            .map(|e| millis(e.timestamp)),
        cordoned: m.cordoned,
    }
}

fn millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_groups_checks_and_exit() {
        let m: wire::Machine = serde_json::from_value(serde_json::json!({
            "id": "m1", "state": "stopped", "region": "iad", "instance_id": "01A",
            "config": {"image": "img:1", "env": {"PORT": "8080"},
                "metadata": {"fly_platform_version": "v2", "fly_process_group": "worker", "fly_release_version": "42"},
                "services": [{"internal_port": 8080, "checks": [{"type": "tcp"}]}],
                "checks": {"readyz": {"type": "http", "port": 4000}}},
            "checks": [{"name": "readyz", "status": "critical", "output": "503"},
                       {"name": "bg_deployments_compat_x", "status": "passing"}],
            "events": [
              {"type": "exit", "status": "stopped", "source": "flyd", "timestamp": 1700000009000_i64,
               "request": {"exit_event": {"exit_code": 1, "oom_killed": false, "requested_stop": false}, "restart_count": 0}},
              {"type": "start", "status": "started", "source": "flyd", "timestamp": 1700000006000_i64}
            ]
        }))
        .unwrap();
        let o = machine(&m);
        assert_eq!(o.group, "worker");
        assert!(o.managed);
        assert_eq!(o.release_version, Some(42));
        assert_eq!(o.configured_checks, 2);
        assert_eq!(o.checks.len(), 1, "compat checks are dropped");
        assert_eq!(o.checks[0].state, CheckState::Critical);
        let exit = o.last_exit.unwrap();
        assert_eq!((exit.exit_code, exit.requested_stop), (1, false));
        assert_eq!(exit.at.timestamp(), 1_700_000_009);
        assert_eq!(o.state, MachineState::Stopped);
    }

    #[test]
    fn machines_without_v2_metadata_are_unmanaged() {
        let m: wire::Machine = serde_json::from_value(serde_json::json!({
            "id": "m2", "state": "started", "config": {"image": "x"}
        }))
        .unwrap();
        let o = machine(&m);
        assert!(!o.managed);
        assert_eq!(o.group, "app");
    }
}
