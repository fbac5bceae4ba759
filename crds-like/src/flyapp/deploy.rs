//! `spec.deploy`: strategy, batch size, health waits, and the stages before the rollout
//! (`preCheck` in [`super::precheck`], `drain`, `releaseCommand`).

use serde::{Deserialize, Serialize};

use super::PreCheckSpec;
use crate::duration::DurationStr;

/// `spec.deploy`: the rollout strategy and its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploySpec {
    /// Default `rolling` (flyctl's default).
    #[serde(default)]
    pub strategy: Strategy,
    /// Rolling only: how many machines of a group may be down at once, as a count (`1`, `2`)
    /// or a fraction in (0, 1) rounded up (`0.33`). Default 0.33, flyctl's default
    /// (NOTES.md §6.1).
    #[serde(default = "default_max_unavailable")]
    pub max_unavailable: MaxUnavailable,
    /// How long to wait for one machine to start and pass its checks. Default `5m`
    /// (flyctl's `wait_timeout`).
    #[serde(default = "default_wait_timeout")]
    pub wait_timeout: DurationStr,
    /// A check that stays `critical` this long on a started machine fails that machine's step at
    /// once, instead of waiting out `waitTimeout`. Fly only reports `critical` after the check's
    /// own grace period, so this guards against flapping, not against slow starts. Default `30s`.
    /// Must be shorter than `waitTimeout`, or the wait would always time out first.
    #[serde(default = "default_fail_after")]
    pub fail_after: DurationStr,
    /// What to drain before machines are replaced (the `Drain` stage, DESIGN.md §5).
    /// Absent: nothing is drained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainSpec>,
    /// A command run in a temporary machine before the rollout, usually a database migration
    /// (fly.toml `deploy.release_command`). Absent: none. A release command is always gated
    /// for a human (ADR §4, DESIGN.md §6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_command: Option<String>,
    /// Gates checked before anything is touched (the `PreCheck` stage, DESIGN.md §5; the
    /// handoff contract, ADR §6): CI green for the commit, the commit on the release branch.
    /// Absent or empty: neither gate runs, and a valid manifest set is the only pre-check.
    /// See docs/precheck.md.
    #[serde(default, skip_serializing_if = "PreCheckSpec::is_empty")]
    pub pre_check: PreCheckSpec,
}

/// `spec.deploy.drain`: work to let finish before machines are replaced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainSpec {
    /// Wait for these Oban queues to empty. Absent: no Oban drain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oban: Option<ObanDrain>,
}

/// Drain Oban queues before a deploy: wait (read-only) until no job is `executing` or
/// `available` in `queues`, up to `timeout`, then deploy anyway with a warning (docs/drain.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObanDrain {
    /// Variable holding the database URL (a secret: never logged).
    pub database_url_env: String,
    /// Queues to drain, e.g. `[analysis]`. At least one.
    pub queues: Vec<String>,
    /// How long to wait before going on with a warning. Default `5m`.
    #[serde(default = "default_wait_timeout")]
    pub timeout: DurationStr,
}

impl Default for DeploySpec {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            max_unavailable: default_max_unavailable(),
            wait_timeout: default_wait_timeout(),
            fail_after: default_fail_after(),
            drain: None,
            release_command: None,
            pre_check: PreCheckSpec::default(),
        }
    }
}

fn default_max_unavailable() -> MaxUnavailable {
    MaxUnavailable::Fraction(0.33)
}

fn default_wait_timeout() -> DurationStr {
    DurationStr::from_secs(300)
}

fn default_fail_after() -> DurationStr {
    DurationStr::from_secs(30)
}

/// Deploy strategy, as flyctl names them.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Per group: first machine alone, then up to `maxUnavailable` at a time.
    #[default]
    Rolling,
    /// One extra machine per group first; healthy → destroyed → rolling.
    Canary,
    /// New machines beside the old, switch when all are healthy.
    Bluegreen,
    /// Everything at once, no waits.
    Immediate,
}

/// `maxUnavailable`: a machine count (≥ 1) or a fraction in (0, 1).
///
/// Written as a YAML number: an integer is a count, a number with a fraction part is a
/// fraction (`1` is one machine, `0.5` half of the group). Range checks (count ≥ 1, fraction
/// strictly between 0 and 1) happen in validation so that they are reported with the others.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MaxUnavailable {
    /// At most this many machines of a group at once.
    Count(u32),
    /// This share of the group, rounded up.
    Fraction(f64),
}

impl schemars::JsonSchema for MaxUnavailable {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MaxUnavailable".into()
    }

    /// A YAML integer (a count) or a number with a fraction part (a share of the group); a
    /// string is refused. Ranges are checked by the loader's validation.
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A machine count like 1, or a fraction of the group like 0.33 (rounded up).",
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "not": {"type": "integer"}}
            ],
            "examples": [1, 0.33]
        })
    }
}

impl<'de> Deserialize<'de> for MaxUnavailable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = MaxUnavailable;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a count like 1 or a fraction like 0.33")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxUnavailable, E> {
                u32::try_from(v).map(MaxUnavailable::Count).map_err(|_| {
                    E::custom(format_args!(
                        "maxUnavailable {v} is too large: expected a count like 1 or a fraction like 0.33"
                    ))
                })
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxUnavailable, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format_args!(
                        "maxUnavailable {v} is negative: expected a count like 1 or a fraction like 0.33"
                    ))),
                }
            }

            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<MaxUnavailable, E> {
                Ok(MaxUnavailable::Fraction(v))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxUnavailable, E> {
                Err(E::custom(format_args!(
                    "expected a count like 1 or a fraction like 0.33, found `{v}`"
                )))
            }
        }

        d.deserialize_any(Visitor)
    }
}
