//! Building the config an updated machine gets, and sending the update or the restore.
//!
//! An update replaces the whole config (NOTES.md §2.1), so the new config is the current one
//! with only what the manifest manages changed (image, env, size, services, top-level checks,
//! `stop_config`) and the release metadata stamped; everything else (mounts, restart, init,
//! fields Fly added later) is kept. Services, checks and `stop_config` are rebuilt from the
//! manifest as flyctl rebuilds them from fly.toml (NOTES.md §7.2: absent in the manifest means
//! absent on the machine), except for the keys the manifest cannot express, which are carried
//! over from the matching current entry (see [`write_service_config`]).

use std::collections::BTreeMap;

use opsctl_controllers::diff::{desired_size, is_platform_env};
use opsctl_controllers::machine_config::{self, Check, CheckKind, ServiceConfig};
use opsctl_controllers::observed::CpuKind;
use opsctl_controllers::rollout::MachineStep;
use opsctl_crds::FlyApp;
use serde_json::{Map, Value, json};

use crate::fly::wire::{
    self, META_PLATFORM_VERSION, META_PROCESS_GROUP, META_RELEASE_ID, META_RELEASE_VERSION,
    MachineConfig, MachineRequest,
};
use crate::fly::{FlyClient, FlyError};
use crate::records::ReleaseRef;

/// How often an update whose answer was lost is checked and re-sent.
const UPDATE_ATTEMPTS: u64 = 3;

/// A touched machine: its step and its config before the update (what a rollback restores:
/// image *and* config).
pub(super) struct Touched {
    pub step: MachineStep,
    pub before: MachineConfig,
}

/// What an updated machine's config should hold.
pub(super) struct Desired {
    image: String,
    env: BTreeMap<String, String>,
    guest: Option<wire::Guest>,
    service_config: ServiceConfig,
    group: String,
    release: ReleaseRef,
}

impl Desired {
    pub fn new(app: &FlyApp, group: &str, image: String, release: &ReleaseRef) -> Self {
        let guest = desired_size(app, group).map(|g| wire::Guest {
            cpu_kind: match g.cpu_kind {
                CpuKind::Shared => "shared".into(),
                CpuKind::Performance => "performance".into(),
            },
            cpus: g.cpus,
            memory_mb: g.memory_mb,
            extra: Default::default(),
        });
        Self {
            image,
            env: app.spec.env.clone(),
            guest,
            service_config: machine_config::desired(app, group),
            group: group.to_owned(),
            release: release.clone(),
        }
    }

    /// `current` with the desired image, env, size, services, top-level checks and stop
    /// settings, and the release metadata; every other field (mounts, restart, unknown ones)
    /// kept as is.
    pub fn apply(&self, current: &MachineConfig) -> MachineConfig {
        let mut cfg = current.clone();
        cfg.image = self.image.clone();
        let platform: BTreeMap<String, String> = cfg
            .env
            .iter()
            .filter(|(k, _)| is_platform_env(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        cfg.env = self.env.clone();
        cfg.env.extend(platform);
        if let Some(g) = &self.guest {
            // Only size fields are managed; GPUs, host dedication and the like stay.
            let mut guest = cfg.guest.take().unwrap_or_default();
            guest.cpu_kind = g.cpu_kind.clone();
            guest.cpus = g.cpus;
            guest.memory_mb = g.memory_mb;
            cfg.guest = Some(guest);
        }
        write_service_config(&mut cfg, &self.service_config);
        stamp(&mut cfg, &self.group, &self.release);
        cfg
    }
}

/// Write `want` into `cfg` as flyctl's `ToMachineConfig` does (NOTES.md §7.2): `services`, the
/// top-level `checks` and `stop_config` become exactly what the manifest says (and are removed
/// when it says nothing), in Fly's spelling (`internal_port`, `force_https`, `soft_limit`,
/// durations as Go duration strings such as `"15s"`).
///
/// Keys the manifest cannot express survive from the current entry they belong to, so an
/// update never drops what Fly or another tool set: a service's `autostart`, `autostop`,
/// `min_machines_running` and the like (from the current service with the same protocol and
/// internal port, else the one at the same position); a port's `http_options`, `tls_options`,
/// `proxy_proto_options` (same port number); a check's `headers`, `protocol`, `tls_*`, `kind`
/// (service checks: same position and type; top-level: same name); other `stop_config` keys.
pub(super) fn write_service_config(cfg: &mut MachineConfig, want: &ServiceConfig) {
    let mut current: Vec<Option<Value>> = std::mem::take(&mut cfg.services)
        .into_iter()
        .map(Some)
        .collect();
    for (i, s) in want.services.iter().enumerate() {
        let protocol = if s.protocol.is_empty() {
            "tcp"
        } else {
            &s.protocol
        };
        let same = |v: &Value| {
            v.get("internal_port").and_then(Value::as_u64) == Some(u64::from(s.internal_port))
                && v.get("protocol").and_then(Value::as_str).unwrap_or("tcp") == protocol
        };
        let at = current
            .iter()
            .position(|c| c.as_ref().is_some_and(same))
            .or_else(|| current.get(i).and_then(Option::as_ref).map(|_| i));
        let mut obj = object(at.and_then(|i| current[i].take()));
        obj.insert("protocol".into(), json!(protocol));
        obj.insert("internal_port".into(), json!(s.internal_port));
        let old_ports: Vec<Value> = match obj.remove("ports") {
            Some(Value::Array(ports)) => ports,
            _ => vec![],
        };
        let ports: Vec<Value> = s
            .ports
            .iter()
            .map(|p| {
                let old = old_ports
                    .iter()
                    .find(|o| o.get("port").and_then(Value::as_u64) == Some(u64::from(p.port)));
                let mut port = object(old.cloned());
                port.insert("port".into(), json!(p.port));
                set_or_remove(
                    &mut port,
                    "handlers",
                    (!p.handlers.is_empty()).then(|| json!(p.handlers)),
                );
                set_or_remove(
                    &mut port,
                    "force_https",
                    p.force_https.then_some(json!(true)),
                );
                Value::Object(port)
            })
            .collect();
        set_or_remove(&mut obj, "ports", (!ports.is_empty()).then(|| json!(ports)));
        let concurrency = s.concurrency.as_ref().map(|c| {
            let mut conc = object(obj.get("concurrency").cloned());
            conc.insert("type".into(), json!(c.kind));
            set_or_remove(&mut conc, "soft_limit", c.soft_limit.map(|l| json!(l)));
            set_or_remove(&mut conc, "hard_limit", c.hard_limit.map(|l| json!(l)));
            Value::Object(conc)
        });
        set_or_remove(&mut obj, "concurrency", concurrency);
        let old_checks: Vec<Value> = match obj.remove("checks") {
            Some(Value::Array(checks)) => checks,
            _ => vec![],
        };
        let checks: Vec<Value> = s
            .checks
            .iter()
            .enumerate()
            .map(|(j, c)| {
                let old = old_checks
                    .get(j)
                    .filter(|o| o.get("type").and_then(Value::as_str) == Some(&c.kind.to_string()));
                check_json(old.cloned(), c)
            })
            .collect();
        set_or_remove(
            &mut obj,
            "checks",
            (!checks.is_empty()).then(|| json!(checks)),
        );
        cfg.services.push(Value::Object(obj));
    }
    let mut old_checks = std::mem::take(&mut cfg.checks);
    cfg.checks = want
        .checks
        .iter()
        .map(|(name, c)| (name.clone(), check_json(old_checks.remove(name), c)))
        .collect();
    let stop = want.stop.as_ref().map(|stop| {
        let mut obj = object(cfg.extra.get("stop_config").cloned());
        set_or_remove(&mut obj, "signal", stop.signal.as_ref().map(|s| json!(s)));
        set_or_remove(
            &mut obj,
            "timeout",
            stop.timeout.map(|t| json!(t.to_string())),
        );
        Value::Object(obj)
    });
    set_or_remove(&mut cfg.extra, "stop_config", stop);
}

/// A check in Fly's spelling, keeping the keys of `old` the manifest cannot express.
fn check_json(old: Option<Value>, c: &Check) -> Value {
    let mut obj = object(old);
    obj.insert("type".into(), json!(c.kind.to_string()));
    set_or_remove(&mut obj, "port", c.port.map(|p| json!(p)));
    let http = c.kind == CheckKind::Http;
    set_or_remove(
        &mut obj,
        "path",
        c.path.as_ref().filter(|_| http).map(|p| json!(p)),
    );
    set_or_remove(
        &mut obj,
        "method",
        c.method.as_ref().filter(|_| http).map(|m| json!(m)),
    );
    for (key, d) in [
        ("interval", c.interval),
        ("timeout", c.timeout),
        ("grace_period", c.grace_period),
    ] {
        set_or_remove(&mut obj, key, d.map(|d| json!(d.to_string())));
    }
    Value::Object(obj)
}

/// `v` as a JSON object; anything else (absent, `null`, a wrong shape) as an empty one.
fn object(v: Option<Value>) -> Map<String, Value> {
    match v {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

fn set_or_remove(obj: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            obj.insert(key.to_owned(), v);
        }
        None => {
            obj.remove(key);
        }
    }
}

fn stamp(cfg: &mut MachineConfig, group: &str, release: &ReleaseRef) {
    cfg.metadata
        .insert(META_PLATFORM_VERSION.into(), "v2".into());
    cfg.metadata
        .insert(META_PROCESS_GROUP.into(), group.to_owned());
    cfg.metadata
        .insert(META_RELEASE_ID.into(), release.id.clone());
    cfg.metadata
        .insert(META_RELEASE_VERSION.into(), release.version.to_string());
}

pub(super) struct UpdateCtx {
    pub client: FlyClient,
    pub app: String,
    pub nonce: Option<String>,
}

impl UpdateCtx {
    /// Update one machine; returns what was touched and the new version id.
    pub async fn update(
        self,
        step: MachineStep,
        desired: Desired,
    ) -> Result<(Touched, String), (MachineStep, FlyError)> {
        let current = self
            .client
            .get_machine(&self.app, &step.machine)
            .await
            .map_err(|e| (step.clone(), e))?;
        let Some(before) = current.config.clone() else {
            let why = format!(
                "Fly did not return the config (host_status {}); not updating blind",
                current.host_status
            );
            let e = FlyError::local(
                crate::fly::FlyErrorKind::Unavailable,
                "GET",
                &step.machine,
                why,
            );
            return Err((step, e));
        };
        let request = MachineRequest {
            config: desired.apply(&before),
            skip_launch: step.skip_launch,
            current_version: Some(current.instance_id.clone()),
            ..MachineRequest::default()
        };
        let version = self
            .send(&step.machine, &request, &current.instance_id)
            .await
            .map_err(|e| (step.clone(), e))?;
        Ok((Touched { step, before }, version))
    }

    /// Put the machine's previous config back, stamped with the rollback release.
    /// Put the machine's previous config back (with `image` instead of its previous image when
    /// that one is known bad), stamped with the rollback release.
    pub async fn restore(
        &self,
        t: &Touched,
        release: &ReleaseRef,
        image: Option<&str>,
    ) -> Result<String, FlyError> {
        let mut cfg = t.before.clone();
        if let Some(image) = image {
            cfg.image = image.to_owned();
        }
        stamp(&mut cfg, &t.step.group, release);
        let request = MachineRequest {
            config: cfg,
            skip_launch: t.step.skip_launch,
            ..MachineRequest::default()
        };
        let current = self.client.get_machine(&self.app, &t.step.machine).await?;
        self.send(&t.step.machine, &request, &current.instance_id)
            .await
    }

    /// Send an update of `machine` (now at `from_version`); the new version id. An update
    /// whose answer is lost (5xx, timeout) is checked before it is sent again, up to
    /// [`UPDATE_ATTEMPTS`] times: applied (new version with the image) → done; untouched →
    /// re-sent; changed by someone else → `Conflict`.
    async fn send(
        &self,
        machine: &str,
        request: &MachineRequest,
        from_version: &str,
    ) -> Result<String, FlyError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self
                .client
                .update_machine(&self.app, machine, request, self.nonce.as_deref())
                .await
            {
                Ok(updated) => return Ok(updated.instance_id),
                Err(e) if e.is_unavailable() && attempts < UPDATE_ATTEMPTS => e,
                Err(e) => return Err(e),
            };
            tracing::warn!(app = %self.app, machine, error = %err, "update answer lost; checking whether it was applied");
            tokio::time::sleep(std::time::Duration::from_millis(500 * attempts)).await;
            match self.client.get_machine(&self.app, machine).await {
                Ok(now) if now.instance_id != from_version => {
                    if now
                        .config
                        .as_ref()
                        .is_some_and(|c| c.image == request.config.image)
                    {
                        return Ok(now.instance_id);
                    }
                    let why = format!(
                        "{machine} changed under us (version {from_version} → {}) while updating",
                        now.instance_id
                    );
                    return Err(FlyError::local(
                        crate::fly::FlyErrorKind::Conflict,
                        "POST",
                        "update",
                        why,
                    ));
                }
                Ok(_) => continue, // not applied: safe to send again
                Err(_) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> FlyApp {
        let yaml = "apiVersion: opsctl.dev/v1alpha1\nkind: FlyApp\nmetadata: {name: web}\nspec:\n  image: registry.fly.io/web:v2\n  env: {PORT: \"8080\"}\n  processGroups:\n    app:\n      regions: {iad: 1}\n      vm: {size: shared-cpu-2x}\n  services:\n    - internalPort: 8080\n  checks:\n    alive: {type: tcp, port: 8080}\n";
        opsctl_crds::load_str("web.yaml".as_ref(), yaml)
            .unwrap()
            .apps
            .remove(0)
    }

    /// Update replaces the whole config (NOTES.md §2.1): what the manifest does not manage,
    /// Fly's own env and metadata, and fields unknown to us must survive.
    #[test]
    fn apply_changes_only_managed_fields() {
        let current: MachineConfig = serde_json::from_value(serde_json::json!({
            "image": "registry.fly.io/web:v1",
            "env": {"PORT": "9999", "OLD": "1", "FLY_PROCESS_GROUP": "app", "PRIMARY_REGION": "iad"},
            "metadata": {"fly_platform_version": "v2", "fly_process_group": "app", "custom": "keep"},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256, "kernel_args": ["quiet"]},
            "services": [{"internal_port": 8080, "autostart": true}],
            "mounts": [{"volume": "vol_1", "path": "/data"}],
        }))
        .unwrap();
        let release = ReleaseRef {
            id: "rel".into(),
            version: 7,
        };
        let cfg =
            Desired::new(&app(), "app", "registry.fly.io/web:v2".into(), &release).apply(&current);
        assert_eq!(cfg.image, "registry.fly.io/web:v2");
        assert_eq!(cfg.env.get("PORT").map(String::as_str), Some("8080"));
        assert!(
            !cfg.env.contains_key("OLD"),
            "env not in the manifest is removed"
        );
        assert_eq!(
            cfg.env.get("FLY_PROCESS_GROUP").map(String::as_str),
            Some("app")
        );
        assert_eq!(
            cfg.env.get("PRIMARY_REGION").map(String::as_str),
            Some("iad")
        );
        let guest = cfg.guest.as_ref().unwrap();
        assert_eq!((guest.cpus, guest.memory_mb), (2, 512));
        assert_eq!(guest.extra["kernel_args"][0], "quiet");
        assert_eq!(cfg.metadata.get("custom").map(String::as_str), Some("keep"));
        assert_eq!(
            cfg.metadata.get(META_RELEASE_VERSION).map(String::as_str),
            Some("7")
        );
        assert_eq!(cfg.extra["mounts"][0]["volume"], "vol_1");
        assert_eq!(cfg.services.len(), 1);
        assert_eq!(
            cfg.services[0]["autostart"], true,
            "unmanaged service keys stay"
        );
    }
}

#[cfg(test)]
mod config_tests;
