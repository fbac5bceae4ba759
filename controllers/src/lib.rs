//! `opsctl-controllers`: opsctl's decisions as pure functions of
//! (desired, observed, history, policy, now) → plan (DESIGN.md §2).
//!
//! Nothing here awaits, reads a clock or the environment, or touches files or the network:
//! the runtime in the `opsctl` crate observes Fly, converts what it saw into [`observed`] types,
//! calls these functions, records the intents they return, acts, and feeds the results back.
//! `controllers/clippy.toml` bans the clock and environment calls.
//!
//! Map (start with [`diff`]):
//! - [`observed`]: what Fly reported, in domain terms (no Fly spellings).
//! - [`diff`]: desired vs observed → drift.
//! - [`machine_config`]: services, checks and stop settings, desired (from the manifest) and
//!   observed in the same types, and their normalisation.
//! - [`rollout`]: the rolling plan, per-machine health verdicts, and the rollback decision.
//! - [`history`]: decisions from past deploys: pinned-out images, pauses, rollback targets.
//! - [`governance`]: the one decision function (auto / gated / denied), burn-in, freeze
//!   windows, roles and their operations, plan hashes.
//! - [`signal`]: what checks and pipelines report to the incident pipeline, and its fingerprint.
#![warn(missing_docs)]

pub mod diff;
pub mod governance;
pub mod history;
pub mod machine_config;
pub mod observed;
pub mod rollout;
pub mod signal;

#[cfg(test)]
mod testkit;
