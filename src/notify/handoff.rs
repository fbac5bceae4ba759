//! The incident pipeline's hand-offs, answered by the alert routes: [`Routed`] implements
//! `incident::Escalator` (engineering beads through every matching `AlertRoute` beads target,
//! [`super::escalate`]) and `incident::Notifier` (webhook, Slack, PagerDuty through
//! [`super::Notifier`], with the incident fingerprint as PagerDuty's `dedup_key`).
//!
//! The routes are those of the manifests `opsctl run` started with; a change to `AlertRoute`
//! manifests takes effect at the next start.

use std::sync::Arc;

use crate::incident::{BoxFuture, Escalator, NotifyEvent};
use crate::records::Record;
use crate::runtime::clock::Clock;

use super::{AlertRoutes, Event, Notifier};

/// Alert routes as the incident pipeline's escalator and notifier.
#[derive(Clone)]
pub struct Routed {
    /// The routes (beads targets are used for escalations).
    pub routes: AlertRoutes,
    /// Background delivery to webhook, Slack and PagerDuty targets.
    pub notifier: Notifier,
    /// Beads prefix of the ops records an escalation depends on (`caused-by`).
    pub ops_prefix: String,
    /// For the escalation's timestamps.
    pub clock: Arc<dyn Clock>,
}

impl Escalator for Routed {
    /// Writes the escalation into every matching engineering beads file and queues its
    /// notification; fails (with every failed target named) only when a beads write failed.
    fn escalate<'a>(
        &'a self,
        escalation: &'a Record,
        _incident: &'a Record,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.notifier.notify(&Event::from_record(escalation));
            let results =
                super::escalate(&self.routes, escalation, &self.ops_prefix, self.clock.now()).await;
            let failed: Vec<String> = results
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string()))
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(failed.join("; "))
            }
        })
    }
}

impl crate::incident::Notifier for Routed {
    /// Opened and updated incidents trigger, resolved ones resolve (by the record's status);
    /// returns at once (delivery is in the background).
    fn notify<'a>(&'a self, _event: NotifyEvent, incident: &'a Record) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.notifier.notify(&Event::from_record(incident));
        })
    }
}
