//! The stages before any machine is touched (DESIGN.md §5): PreCheck (CI green, commit on the
//! release branch; src/precheck/) and Drain (Oban queues empty; src/drain/). The release
//! command stage is in [`super::release_command`].

use opsctl_crds::FlyApp;

use super::{Deployer, PRECHECK_BLOCKED};
use crate::records::{DeployRecord, DeployStatus, StoreError};

impl Deployer {
    /// The PreCheck stage (DESIGN.md §5): CI green for the commit, commit on the release
    /// branch. Recorded as a step; `false` (and the record finished as failed, naming the
    /// blocking checks) when the deploy must not go on.
    pub(super) async fn pre_check(
        &self,
        app: &FlyApp,
        rec: &mut DeployRecord,
    ) -> Result<bool, StoreError> {
        let spec = &app.spec.deploy.pre_check;
        let commit = rec.commit.clone().unwrap_or_default();
        self.intend(
            rec,
            format!(
                "pre-check commit {}: CI status and release branch",
                if commit.is_empty() { "(none)" } else { &commit }
            ),
        )?;
        let (Some(dir), false) = (&self.manifests, commit.is_empty()) else {
            self.done(rec, "no git commit for the manifests")?;
            self.finish(rec, DeployStatus::Failed, format!("{PRECHECK_BLOCKED}: spec.deploy.preCheck needs the manifests' git commit, and they are not in a git checkout"))?;
            return Ok(false);
        };
        let token = spec.ci.as_ref().and_then(crate::precheck::token_from_env);
        let checker = crate::precheck::PreCheck::new(
            reqwest::Client::new(),
            self.clock.clone(),
            self.stop.clone(),
        );
        let report = checker.run(spec, &commit, dir, token).await;
        self.done(rec, report.to_string())?;
        if report.passed() {
            return Ok(true);
        }
        self.finish(
            rec,
            DeployStatus::Failed,
            format!("{PRECHECK_BLOCKED}: {report}"),
        )?;
        Ok(false)
    }

    /// The Drain stage (DESIGN.md §5, case BUG-18): wait until the Oban queues have no
    /// executing or available jobs. A timeout, an unreachable database or a missing URL are
    /// recorded as warnings and the deploy goes on (DESIGN: "timeout → proceed with a warning
    /// record"); only a stop request ends the deploy here (`false`).
    pub(super) async fn drain(
        &self,
        oban: &opsctl_crds::flyapp::ObanDrain,
        rec: &mut DeployRecord,
    ) -> Result<bool, StoreError> {
        use crate::drain::{DrainOutcome, DrainRequest, drain_oban};
        self.intend(
            rec,
            format!(
                "drain Oban queues {} (timeout {})",
                oban.queues.join(", "),
                oban.timeout
            ),
        )?;
        let result = match DrainRequest::from_env(oban) {
            Ok(req) => drain_oban(&req, self.clock.as_ref(), self.stop.clone()).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(DrainOutcome::Stopped { .. }) => {
                self.done(rec, "stopped")?;
                self.finish(
                    rec,
                    DeployStatus::Halted,
                    "opsctl was asked to stop while draining Oban; nothing was changed".into(),
                )?;
                Ok(false)
            }
            Ok(outcome @ DrainOutcome::Drained { .. }) => {
                self.done(rec, outcome.to_string())?;
                Ok(true)
            }
            Ok(outcome) => {
                tracing::warn!(app = %rec.app, "drain: {outcome}; deploying anyway");
                self.done(rec, format!("warning: {outcome}; deploying anyway"))?;
                Ok(true)
            }
            Err(e) => {
                tracing::warn!(app = %rec.app, error = %e, "drain could not run; deploying anyway");
                self.done(
                    rec,
                    format!("warning: drain could not run ({e}); deploying anyway"),
                )?;
                Ok(true)
            }
        }
    }
}
