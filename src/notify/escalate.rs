//! Engineering escalation through `AlertRoute` beads targets.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use opsctl_crds::kinds::alert_route::Severity;

use super::AlertRoutes;
use crate::records::Record;
use crate::records::beads::{BdCommand, BeadsError, EngTarget, EscalationWrite, write_escalation};

/// An escalation that could not be written: which route and file, and why.
#[derive(Debug, thiserror::Error)]
#[error("escalation to route {route} ({path}): {source}")]
pub struct EscalateError {
    /// Route name.
    pub route: String,
    /// Beads file.
    pub path: PathBuf,
    /// Cause.
    pub source: BeadsError,
}

/// Write `record` into the engineering beads of every route that matches it (by the record's
/// kind, app and priority) and has a `beads` target: a new issue with a `caused-by` dependency
/// on the record's issue in the `ops_prefix` namespace (`records::beads::write_escalation`;
/// idempotent). Relative paths are relative to the route's manifest. `bd` mode runs `bd` (or
/// `$BEADS_BD_PATH`). Runs the file work on tokio's blocking pool; returns one result per
/// beads target, in route order; empty when no route matches.
pub async fn escalate(
    routes: &AlertRoutes,
    record: &Record,
    ops_prefix: &str,
    now: DateTime<Utc>,
) -> Vec<Result<EscalationWrite, EscalateError>> {
    let chosen = routes.targets_for(
        record.kind.as_str(),
        record.app.as_deref(),
        Severity::from_priority(record.priority),
    );
    let mut out = Vec::new();
    for c in chosen {
        let Some(b) = &c.target.beads else { continue };
        let path = c.route.base.join(&b.path);
        let target = EngTarget {
            path: path.clone(),
            prefix: b.prefix.clone(),
            bd: b.use_bd.then(|| BdCommand {
                program: std::env::var_os("BEADS_BD_PATH")
                    .map_or_else(|| PathBuf::from("bd"), PathBuf::from),
            }),
        };
        let rec = record.clone();
        let prefix = ops_prefix.to_owned();
        let result =
            tokio::task::spawn_blocking(move || write_escalation(&target, &rec, &prefix, now))
                .await
                .unwrap_or_else(|e| {
                    Err(BeadsError::Other(format!(
                        "escalation writer panicked: {e}"
                    )))
                });
        match &result {
            Ok(w) => {
                tracing::info!(route = %c.route.name, issue = %w.id, created = w.created, "escalated to engineering beads")
            }
            Err(e) => {
                tracing::warn!(route = %c.route.name, error = %e, "could not write the engineering escalation")
            }
        }
        out.push(result.map_err(|source| EscalateError {
            route: c.route.name.clone(),
            path,
            source,
        }));
    }
    out
}
