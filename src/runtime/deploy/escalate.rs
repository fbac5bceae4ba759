//! Asking a human: the registry check before a rollback and the escalation record.
//!
//! Fly prunes old images from `registry.fly.io` (NOTES.md §6.7), so before a rollback puts an
//! old image back, every image it would restore is looked up in its registry
//! ([`crate::fly::registry`]). A rollback goes ahead only when each one is known to be there:
//!
//! - gone (404): no rollback. Updating machines to an image that cannot be pulled leaves them
//!   failing to start (`replacing`, then `failed`) — a failed release would become an outage
//!   of every machine the rollback touches. The deploy ends `rollback_failed` (which pauses
//!   automatic deploys of the app, as after a failed rollback, BUG-14) and an
//!   [`RecordKind::Escalation`] record, caused by the deploy, tells a human what to do.
//! - unknown (registry unreachable, 401/403, 429, 5xx): the same. Guessing "probably still
//!   there" risks the outage above; guessing "gone" would be a verdict on what could not be
//!   seen. Neither is taken: a human decides, and the record says the registry could not be
//!   asked (not that the image is gone).

use opsctl_controllers::history::RegistryVerdict;

use super::Deployer;
use crate::fly::registry::{ImagePresence, RegistryClient};
use crate::records::{DeployRecord, LinkKind, Record, RecordKind, StoreError};

impl Deployer {
    /// Look up each of `images` in its registry; the verdict on the set, in words for the
    /// record. One request per distinct image.
    pub(crate) async fn check_registry(&self, images: &[String]) -> RegistryVerdict {
        let registry = RegistryClient::for_fly(&self.client);
        let mut seen = Vec::new();
        for image in images {
            if seen.contains(image) {
                continue;
            }
            seen.push(image.clone());
            match registry.presence(image).await {
                ImagePresence::Present { .. } => {}
                ImagePresence::Absent => {
                    return RegistryVerdict::Absent {
                        image: image.clone(),
                    };
                }
                ImagePresence::Unknown { reason } => {
                    return RegistryVerdict::Unknown {
                        image: image.clone(),
                        reason,
                    };
                }
            }
        }
        RegistryVerdict::Present
    }

    /// Record an escalation caused by deploy `rec` (durably), log it at ERROR, and remember
    /// its id on the deploy record. `title` is one line; `description` says what to do.
    pub(super) fn escalate(
        &self,
        rec: &mut DeployRecord,
        class: &str,
        title: String,
        description: String,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut esc = Record::new(RecordKind::Escalation, title.clone(), now);
        esc.app = Some(rec.app.clone());
        esc.description = description;
        esc.priority = 1;
        esc.labels = vec![
            "deploy".into(),
            format!("app:{}", rec.app),
            format!("escalation:{class}"),
        ];
        esc.link(LinkKind::CausedBy, rec.id.clone());
        esc.data = serde_json::json!({
            "class": class,
            "deploy": rec.id,
            "image": rec.image,
            "release": rec.release.as_ref().map(|r| r.version),
        });
        self.store.append_record(&esc)?;
        tracing::error!(app = %rec.app, deploy = %rec.id, escalation = %esc.id, class, "{title}; a human must act");
        rec.escalation = Some(esc.id);
        Ok(())
    }
}
