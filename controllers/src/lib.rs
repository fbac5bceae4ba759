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
//! - [`rollout`]: the rolling plan, per-machine health verdicts, and the rollback decision;
//!   the rollout as a recorded state machine ([`rollout::phase`]), what recovery does with a
//!   dead rollout ([`rollout::recovery`]), and what a finished deploy reports
//!   ([`rollout::report`]).
//! - [`drain`]: whether the Oban queues are drained, timed out or still waited for.
//! - [`history`]: decisions from past deploys: pinned-out images, pauses, rollback targets.
//! - [`maintenance`]: the maintenance checks' judges (machine status, health, PostgreSQL,
//!   Redis, Oban growth, cost).
//! - [`incident`]: the incident pipeline's decisions: dedup, classification, responses.
//! - [`governance`]: the one decision function (auto / gated / denied), burn-in, freeze
//!   windows, roles and their operations, plan hashes.
//! - [`signal`]: what checks and pipelines report to the incident pipeline, and its fingerprint.
//! - [`certs`]: certificate windows: expiry (BUG-23), not-ready and rate-limited certificates
//!   (BUG-21), Fly's view against the TLS handshake's.
//! - [`slo`]: `HealthSLO` evaluation: error budget, burn rates, multi-window alerts.
#![warn(missing_docs)]

pub mod certs;
pub mod diff;
pub mod drain;
pub mod governance;
pub mod history;
pub mod incident;
pub mod machine_config;
pub mod maintenance;
pub mod observed;
pub mod rollout;
pub mod signal;
pub mod slo;

#[cfg(test)]
mod testkit;
