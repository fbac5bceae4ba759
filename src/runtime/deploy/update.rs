//! Building the config an updated machine gets, and sending the update or the restore.
//!
//! An update replaces the whole config (NOTES.md §2.1), so the new config is the current one
//! with only what the manifest manages changed (image, env, size) and the release metadata
//! stamped; everything else (services, checks, mounts, fields Fly added later) is kept.

use std::collections::BTreeMap;

use opsctl_controllers::diff::{desired_size, is_platform_env};
use opsctl_controllers::observed::CpuKind;
use opsctl_controllers::rollout::MachineStep;
use opsctl_crds::FlyApp;

use crate::fly::wire::{
    self, META_PLATFORM_VERSION, META_PROCESS_GROUP, META_RELEASE_ID, META_RELEASE_VERSION,
    MachineConfig, MachineRequest,
};
use crate::fly::{FlyClient, FlyError};
use crate::records::ReleaseRef;

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
            group: group.to_owned(),
            release: release.clone(),
        }
    }

    /// `current` with the desired image, env and size and the release metadata; every other
    /// field (services, checks, mounts, unknown ones) kept as is.
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
        stamp(&mut cfg, &self.group, &self.release);
        cfg
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
    ) -> Result<(Touched, String), (MachineStep, String)> {
        let current = self
            .client
            .get_machine(&self.app, &step.machine)
            .await
            .map_err(|e| (step.clone(), e.to_string()))?;
        let Some(before) = current.config.clone() else {
            return Err((
                step,
                format!(
                    "Fly did not return the config (host_status {}); not updating blind",
                    current.host_status
                ),
            ));
        };
        let request = MachineRequest {
            config: desired.apply(&before),
            skip_launch: step.skip_launch,
            current_version: Some(current.instance_id.clone()),
            ..MachineRequest::default()
        };
        let updated = self
            .client
            .update_machine(&self.app, &step.machine, &request, self.nonce.as_deref())
            .await
            .map_err(|e| (step.clone(), e.to_string()))?;
        Ok((Touched { step, before }, updated.instance_id))
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
        let updated = self
            .client
            .update_machine(&self.app, &t.step.machine, &request, self.nonce.as_deref())
            .await?;
        Ok(updated.instance_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> FlyApp {
        let yaml = "apiVersion: opsctl.dev/v1alpha1\nkind: FlyApp\nmetadata: {name: web}\nspec:\n  image: registry.fly.io/web:v2\n  env: {PORT: \"8080\"}\n  processGroups:\n    app:\n      regions: {iad: 1}\n      vm: {size: shared-cpu-2x}\n  checks:\n    alive: {type: tcp, port: 8080}\n";
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
            "services": [{"internal_port": 8080}],
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
    }
}
