//! From Fly's wire format to domain observations ([`opsctl_controllers::observed`]): the one
//! place where `fly_process_group` becomes `group` and a machine event becomes an [`ExitInfo`].
//!
//! Rules (NOTES.md §2.3–§2.6): a machine is managed when its metadata says
//! `fly_platform_version=v2`; its group is `fly_process_group` (legacy `process_group`, else
//! `app`); its release is `fly_release_version`; events are newest first; check names from
//! Fly's compatibility shim (`bg_deployments_compat*`) are dropped, as fly-go does. The
//! config's `services`, `checks` and `stop_config` become a [`ServiceConfig`] as Fly has them
//! (see [`service_config`]); normalising them is the controllers' job.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use opsctl_controllers::machine_config::{
    Check, CheckKind, Concurrency, Port, Service, ServiceConfig, Stop,
};
use opsctl_controllers::observed::{
    CheckResult, CheckState, CpuKind, ExitInfo, GuestSize, MachineState, ObservedApp,
    ObservedMachine, ObservedRelease,
};
use opsctl_crds::DurationStr;
use serde_json::Value;

use crate::fly::wire::{self, META_PLATFORM_VERSION, META_PROCESS_GROUP, META_RELEASE_VERSION};
use crate::fly::{FlyClient, FlyError};

/// Observe one app: its machines (one list call) and its newest releases (one GraphQL call).
///
/// # Errors
/// [`FlyError`] from either call; `Unavailable` means "could not see", never "unhealthy".
pub async fn observe_app(client: &FlyClient, app: &str) -> Result<ObservedApp, FlyError> {
    let mut observed = observe_machines(client, app).await?;
    observed.releases = observe_releases(client, app).await?;
    Ok(observed)
}

/// Observe one app's machines only: one list call (`GET /v1/apps/{app}/machines`), with
/// `releases` left empty. Enough to tell whether an app is in sync (the diff and the plan hash
/// read machines only); the reconciler's idle pass costs this one call.
///
/// # Errors
/// [`FlyError`] from the list call; `Unavailable` means "could not see", never "unhealthy".
pub async fn observe_machines(client: &FlyClient, app: &str) -> Result<ObservedApp, FlyError> {
    let machines = client.list_machines(app).await?;
    let mut machines: Vec<ObservedMachine> = machines
        .iter()
        .filter(|m| m.state != "destroyed")
        .map(machine)
        .collect();
    machines.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ObservedApp {
        name: app.to_owned(),
        machines,
        releases: Vec::new(),
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

/// Process groups flyctl reserves for its own temporary machines (fly-go constants).
const RESERVED_GROUPS: [&str; 3] = [
    "fly_app_release_command",
    "fly_app_test_machine_command",
    "fly_app_console",
];

/// Convert one wire machine.
pub fn machine(m: &wire::Machine) -> ObservedMachine {
    let config = m.config.as_ref().or(m.incomplete_config.as_ref());
    let meta = |k: &str| config.and_then(|c| c.metadata.get(k)).cloned();
    let reserved = meta(META_PROCESS_GROUP).is_some_and(|g| RESERVED_GROUPS.contains(&g.as_str()));
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
        // flyctl's rule: only Fly Launch machines, and not its reserved groups (a release
        // command's temporary machine, test machines, consoles; NOTES.md §2.3).
        managed: meta(META_PLATFORM_VERSION).as_deref() == Some("v2") && !reserved,
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
        service_config: config.map(service_config).unwrap_or_default(),
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

/// The services, top-level checks and `stop_config` of a wire config, as Fly has them.
///
/// Lenient, because this reads what Fly sends: a field of the wrong shape reads as absent (an
/// `internal_port` as 0), so it shows as drift and the next update rewrites it, rather than
/// failing the whole observation. `null` reads as absent. Ports are `port`, or
/// `start_port`–`end_port`. Durations are Go duration strings (`"15s"`, `"1m21s"`, `"1.5s"`)
/// or integer nanoseconds, as fly-go reads them (NOTES.md §2.3).
pub fn service_config(config: &wire::MachineConfig) -> ServiceConfig {
    ServiceConfig {
        services: config.services.iter().map(service).collect(),
        checks: config
            .checks
            .iter()
            .map(|(name, c)| (name.clone(), check(c)))
            .collect(),
        stop: config
            .extra
            .get("stop_config")
            .filter(|v| v.is_object())
            .map(|v| Stop {
                signal: text(v, "signal").or_else(|| {
                    v.get("signal")
                        .and_then(Value::as_u64)
                        .map(|n| n.to_string())
                }),
                timeout: duration(v.get("timeout")),
            }),
    }
}

fn service(v: &Value) -> Service {
    Service {
        internal_port: port(v.get("internal_port")).unwrap_or(0),
        protocol: text(v, "protocol").unwrap_or_default(),
        ports: list(v, "ports")
            .filter_map(|p| {
                let first = port(p.get("port")).or_else(|| port(p.get("start_port")))?;
                Some(Port {
                    port: first,
                    end_port: port(p.get("end_port")),
                    handlers: list(p, "handlers")
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect(),
                    force_https: p
                        .get("force_https")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
            })
            .collect(),
        concurrency: v
            .get("concurrency")
            .filter(|c| c.is_object())
            .map(|c| Concurrency {
                kind: text(c, "type").unwrap_or_default(),
                soft_limit: limit(c.get("soft_limit")),
                hard_limit: limit(c.get("hard_limit")),
            }),
        checks: list(v, "checks").map(check).collect(),
    }
}

fn check(v: &Value) -> Check {
    Check {
        kind: match text(v, "type").as_deref() {
            Some("tcp") => CheckKind::Tcp,
            Some("http") => CheckKind::Http,
            other => CheckKind::Other(other.unwrap_or_default().to_owned()),
        },
        port: port(v.get("port")),
        path: text(v, "path"),
        method: text(v, "method"),
        interval: duration(v.get("interval")),
        timeout: duration(v.get("timeout")),
        grace_period: duration(v.get("grace_period")),
    }
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn port(v: Option<&Value>) -> Option<u16> {
    v.and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
}

fn limit(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
}

/// A Go duration string or integer nanoseconds; `None` when absent or unreadable.
fn duration(v: Option<&Value>) -> Option<DurationStr> {
    let d = match v? {
        Value::String(s) => parse_go_duration(s)?,
        Value::Number(n) => Duration::from_nanos(n.as_u64()?),
        _ => return None,
    };
    Some(DurationStr(d))
}

/// Go's `time.ParseDuration` for non-negative values: a sequence of decimal numbers, each
/// with an optional fraction and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), e.g.
/// `"1h0m0s"`, `"1.5s"`, `"300ms"`; `"0"` alone is zero.
fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let (whole, frac) = num.split_once('.').unwrap_or((num, ""));
        if whole.is_empty() && frac.is_empty() {
            return None;
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut nanos = whole.checked_mul(per_unit)?;
        let mut scale = per_unit;
        for digit in frac.chars() {
            scale /= 10;
            nanos += u128::from(digit.to_digit(10)?) * scale;
        }
        total_nanos = total_nanos.checked_add(nanos)?;
        rest = next;
    }
    let secs = u64::try_from(total_nanos / 1_000_000_000).ok()?;
    Some(Duration::new(secs, (total_nanos % 1_000_000_000) as u32))
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
    fn go_durations() {
        let cases = [
            ("15s", 15_000),
            ("15000ms", 15_000),
            ("1m21s", 81_000),
            ("1h0m0s", 3_600_000),
            ("1.5s", 1_500),
            ("0.5m", 30_000),
            ("250000us", 250),
            ("0", 0),
            ("0s", 0),
        ];
        for (input, ms) in cases {
            let d = parse_go_duration(input).unwrap_or_else(|| panic!("{input}"));
            assert_eq!(d.as_millis(), ms, "{input}");
        }
        for bad in ["", "15", "s", "1x", "-1s", "1..5s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
        assert_eq!(
            duration(Some(&serde_json::json!(15_000_000_000_u64))),
            Some(DurationStr::from_secs(15)),
            "fly-go reads a bare number as nanoseconds"
        );
    }

    /// The config flyctl wrote from LowEndInsight's fly.toml, with what Fly adds or spells its
    /// own way (`autostart`, `autostop: false`, a check `kind`, nulls, nanosecond numbers).
    #[test]
    fn reads_services_checks_and_stop() {
        let config: wire::MachineConfig = serde_json::from_value(serde_json::json!({
            "image": "img:1",
            "services": [{
                "protocol": "tcp", "internal_port": 8080, "autostart": true, "autostop": false,
                "ports": [{"port": 80, "handlers": ["http"], "force_https": true},
                          {"start_port": 10000, "end_port": 10010, "handlers": null},
                          {"handlers": ["tls"]}],
                "concurrency": {"type": "connections", "soft_limit": 20, "hard_limit": 25},
                "checks": [{"type": "tcp", "interval": "15s", "timeout": 10_000_000_000_u64, "grace_period": "1s"}]
            }],
            "checks": {"readyz": {"type": "http", "port": 4000, "path": "/readyz", "kind": "informational", "headers": []}},
            "stop_config": {"signal": "SIGINT", "timeout": "5s"}
        }))
        .unwrap();
        let c = service_config(&config);
        let svc = &c.services[0];
        assert_eq!((svc.internal_port, svc.protocol.as_str()), (8080, "tcp"));
        assert_eq!(svc.ports.len(), 2, "a port without a number is dropped");
        assert_eq!(svc.ports[0].handlers, ["http"]);
        assert!(svc.ports[0].force_https);
        assert_eq!(
            (svc.ports[1].port, svc.ports[1].end_port),
            (10000, Some(10010))
        );
        assert_eq!(svc.concurrency.as_ref().unwrap().hard_limit, Some(25));
        assert_eq!(svc.checks[0].timeout, Some(DurationStr::from_secs(10)));
        assert_eq!(c.checks["readyz"].kind, CheckKind::Http);
        assert_eq!(c.checks["readyz"].path.as_deref(), Some("/readyz"));
        let stop = c.stop.unwrap();
        assert_eq!(stop.signal.as_deref(), Some("SIGINT"));
        assert_eq!(stop.timeout, Some(DurationStr::from_secs(5)));

        let bare: wire::MachineConfig =
            serde_json::from_value(serde_json::json!({"image": "x", "services": null, "checks": null, "stop_config": null}))
                .unwrap();
        assert_eq!(service_config(&bare), ServiceConfig::default());
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
