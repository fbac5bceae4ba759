//! Governance at run time (DESIGN.md §6; ADR §4–5): the I/O side of
//! `opsctl_controllers::governance`. It reads the record store (burn-in, approvals), computes
//! each app's governed plan, gates the deployer in `opsctl apply` and `opsctl run`, and keeps
//! approvals as records bound to the plan hash.
//!
//! Map:
//! - [`plan`]: an app's plan: observed state → actions, each with its decision and rule, and
//!   the plan hash; burn-in from the records.
//! - [`approvals`]: approval records (pending → approved/denied/applied/expired…), the
//!   escalation written when one expires, and the release command's approval.
//! - [`gate`]: the gate `apply` and `run` call instead of the deployer.
//!
//! The Fly client's own enforcement of the role allowlists is in [`crate::fly::role`].

pub mod approvals;
pub mod gate;
pub mod plan;

pub use gate::{Governed, governed_deploy};
pub use plan::{AppPlan, PlanError, plan_app};

#[cfg(test)]
mod tests;
