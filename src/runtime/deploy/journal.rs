//! Recording a deploy as it goes: each phase and each step is appended to the record store
//! *before* it is entered or taken (a store failure stops the deploy), then its result.

use opsctl_controllers::rollout::phase::{Phase, transition};

use super::Deployer;
use crate::records::{DeployRecord, DeployStatus, MachineResult, StepRecord, StoreError};

impl Deployer {
    /// Record (durably) that `rec` enters `phase`, before it does. A transition the
    /// controllers' [`transition`] rejects is an opsctl bug: logged at ERROR (and a panic in
    /// debug builds, so tests catch it); the journal still records where the deploy is.
    pub(super) fn enter(&self, rec: &mut DeployRecord, phase: Phase) -> Result<(), StoreError> {
        Self::check_transition(rec, &phase);
        tracing::debug!(app = %rec.app, record = %rec.id, phase = %phase, "entering phase");
        rec.phase = Some(phase);
        self.store.append(rec)
    }

    fn check_transition(rec: &DeployRecord, phase: &Phase) {
        if let Err(e) = transition(rec.phase.as_ref(), phase) {
            tracing::error!(app = %rec.app, record = %rec.id, error = %e, "opsctl bug");
            debug_assert!(false, "{e}");
        }
    }

    /// Set `rec.phase` to `done` with the outcome of its status, unless the record stays
    /// recoverable (`needs_recovery`: it keeps the phase it halted in). Not appended here.
    pub(super) fn mark_done(rec: &mut DeployRecord) {
        if rec.needs_recovery {
            return;
        }
        if let Some(outcome) = rec.outcome() {
            let done = Phase::Done { outcome };
            if rec.phase.as_ref() == Some(&done) {
                return;
            }
            Self::check_transition(rec, &done);
            rec.phase = Some(done);
        }
    }

    /// Record `intent` (durably) before doing it.
    pub(super) fn intend(&self, rec: &mut DeployRecord, intent: String) -> Result<(), StoreError> {
        tracing::info!(app = %rec.app, "{intent}");
        rec.steps.push(StepRecord {
            at: self.clock.now(),
            intent,
            result: None,
        });
        self.store.append(rec)
    }

    /// Record the result of the last step.
    pub(super) fn done(
        &self,
        rec: &mut DeployRecord,
        result: impl Into<String>,
    ) -> Result<(), StoreError> {
        if let Some(last) = rec.steps.last_mut() {
            last.result = Some(result.into());
        }
        self.store.append(rec)
    }

    pub(super) fn finish(
        &self,
        rec: &mut DeployRecord,
        status: DeployStatus,
        reason: String,
    ) -> Result<(), StoreError> {
        rec.status = status;
        rec.reason = Some(reason);
        Self::mark_done(rec);
        self.store.append(rec)
    }

    pub(super) fn set_result(
        rec: &mut DeployRecord,
        machine: &str,
        result: MachineResult,
        detail: Option<String>,
    ) {
        if let Some(m) = rec.machines.iter_mut().find(|m| m.machine == machine) {
            m.result = result;
            m.detail = detail;
        }
    }
}
