//! The `MaintenanceSchedule` kind: the periodic read-only checks, how often each runs and its
//! thresholds (DESIGN.md §3, §5 "Maintenance"; the ADR's "Maintenance Pipeline" table, issue #6).
//!
//! What users write, nothing more: every check has a default (the ADR's table, see
//! [`CheckName::default_interval`]), so a set with no `MaintenanceSchedule` runs every check on
//! every `FlyApp` at the ADR's intervals, and a schedule only says what differs. At most one
//! schedule per manifest set (checked in [`crate::load`]).
//!
//! Where each check connects is **not** here: the names of the environment variables holding
//! the app's database and Redis URLs come from the `FlyApp` (`spec.health.dependencies`, and
//! `spec.deploy.drain.oban` for Oban), so a URL is named once; values never appear in
//! manifests. Running the checks lives in the `opsctl` crate (`src/maintenance/`), judging
//! their results in `opsctl-controllers` (`maintenance`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::DurationStr;
use crate::flyapp::{VM_PRESETS, is_vm_preset};
use crate::load::{Checker, field_path};

/// `spec` of a `MaintenanceSchedule` manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MaintenanceScheduleSpec {
    /// Per-check schedules and thresholds. Absent, or a check left out: that check's defaults.
    #[serde(default)]
    pub checks: ChecksSpec,
    /// Price per hour of one running machine, in USD, by Fly preset (`shared-cpu-1x: 0.0028`),
    /// for the cost snapshot. Keys are Fly presets ([`VM_PRESETS`]); values ≥ 0. Prices change:
    /// copy them from <https://fly.io/docs/about/pricing/> for your regions. Empty (the
    /// default): the cost snapshot counts machine-hours but prices nothing, and raises no
    /// anomaly.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, f64>,
}

/// The checks of the ADR's maintenance table, each optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChecksSpec {
    /// App health: Fly machine checks plus the `FlyApp`'s external probes. Default every 5 min.
    #[serde(default)]
    pub app_health: Timing,
    /// TLS certificate expiry per `CertWindow` hostname. Default daily. Its thresholds are the
    /// `CertWindow`'s.
    #[serde(default)]
    pub cert_expiry: Timing,
    /// Fly machine status: machines that should run but are `stopped`/`failed`. Default every
    /// 15 min.
    #[serde(default)]
    pub machine_status: Timing,
    /// PostgreSQL connections in use over `max_connections` minus
    /// `superuser_reserved_connections`, against the `FlyApp`'s
    /// `health.dependencies.postgres.maxConnectionsPercent` (default 80). Default every 15 min.
    #[serde(default)]
    pub postgres_connections: Timing,
    /// Redis PING. Default every 5 min.
    #[serde(default)]
    pub redis: Timing,
    /// Cost snapshot: machine sizes × running hours, priced with `spec.prices`. Default daily.
    #[serde(default)]
    pub cost_snapshot: CostSnapshotCheck,
    /// Oban queue depth: `available` jobs per queue. Default every 15 min.
    #[serde(default)]
    pub oban_queue_depth: ObanQueueDepthCheck,
}

/// When one check runs: every `interval` (plus a random delay up to `jitter`), or at each
/// `cron` occurrence (UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timing {
    /// Default `true`. `false`: the check never runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Run this often (at least `10s`). Absent (and no `cron`): the check's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationStr>,
    /// A cron expression in UTC (`0 6 * * *`: daily at 06:00; five fields, or six with
    /// seconds first; croner's syntax, `L`, `W` and `#` included). Not with `interval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronExpr>,
    /// Each run is delayed by a random amount up to this, so checks of many apps do not fire
    /// at the same instant. Must be shorter than the interval. Absent: a tenth of the interval
    /// (capped at 5 min); `0s` for a `cron` schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<DurationStr>,
    /// How long one observation (a Fly call, a query, a PING) may take before it counts as
    /// `unknown` (a timeout is never a failure of the app). Default `30s`, or half the
    /// interval when that is shorter; must be shorter than the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: None,
            cron: None,
            jitter: None,
            timeout: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// Default time a run may take.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// Most jitter a default gives (5 min).
pub const MAX_DEFAULT_JITTER: Duration = Duration::from_secs(300);

/// Shortest interval accepted: a check more often than this would load the services it watches.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);

impl Timing {
    /// The effective schedule of check `name`: the cron expression when given, else the
    /// interval (the check's default when absent).
    pub fn every(&self, name: CheckName) -> Every {
        match &self.cron {
            Some(cron) => Every::Cron(cron.clone()),
            None => Every::Interval(
                self.interval
                    .map_or_else(|| name.default_interval(), DurationStr::get),
            ),
        }
    }

    /// The effective jitter: as written, else a tenth of the interval capped at
    /// [`MAX_DEFAULT_JITTER`], and zero for a cron schedule.
    pub fn jitter(&self, name: CheckName) -> Duration {
        if let Some(j) = self.jitter {
            return j.get();
        }
        match self.every(name) {
            Every::Cron(_) => Duration::ZERO,
            Every::Interval(i) => (i / 10).min(MAX_DEFAULT_JITTER),
        }
    }

    /// The effective timeout of one observation: as written, else [`DEFAULT_CHECK_TIMEOUT`]
    /// or half the interval when that is shorter (so a default never outlasts a short
    /// interval).
    pub fn timeout(&self, name: CheckName) -> Duration {
        if let Some(t) = self.timeout {
            return t.get();
        }
        match self.every(name) {
            Every::Interval(i) => DEFAULT_CHECK_TIMEOUT.min(i / 2),
            Every::Cron(_) => DEFAULT_CHECK_TIMEOUT,
        }
    }
}

/// How often a check runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Every {
    /// A fixed interval.
    Interval(Duration),
    /// Each occurrence of a cron expression, in UTC.
    Cron(CronExpr),
}

/// `checks.costSnapshot`: [`Timing`] plus the anomaly rule. The timing fields are written out
/// again rather than `#[serde(flatten)]`ed: serde does not support `flatten` together with
/// `deny_unknown_fields`, and an unknown key must stay an error. [`CostSnapshotCheck::timing`]
/// gives them back as a [`Timing`], so the scheduling rules exist once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CostSnapshotCheck {
    /// Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// As [`Timing::interval`]; default `24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationStr>,
    /// As [`Timing::cron`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronExpr>,
    /// As [`Timing::jitter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<DurationStr>,
    /// As [`Timing::timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// A day's estimate above this many times the trailing daily average is an anomaly.
    /// Default `2` (the ADR); must be above 1.
    #[serde(default = "default_anomaly_factor")]
    pub anomaly_factor: f64,
    /// Days of earlier snapshots the average is taken over. Default 7; 1 to 90. Fewer days on
    /// record than this: the average of those there are; none: no anomaly can be judged.
    #[serde(default = "default_trailing_days")]
    pub trailing_days: u32,
}

impl Default for CostSnapshotCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: None,
            cron: None,
            jitter: None,
            timeout: None,
            anomaly_factor: default_anomaly_factor(),
            trailing_days: default_trailing_days(),
        }
    }
}

fn default_anomaly_factor() -> f64 {
    2.0
}

fn default_trailing_days() -> u32 {
    7
}

/// `checks.obanQueueDepth`: [`Timing`] plus the growth rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObanQueueDepthCheck {
    /// Default `true`.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// As [`Timing::interval`]; default `15m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationStr>,
    /// As [`Timing::cron`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronExpr>,
    /// As [`Timing::jitter`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<DurationStr>,
    /// As [`Timing::timeout`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// A queue whose `available` count rose at every one of the last `samples` runs (so
    /// `samples - 1` rises in a row) grows without bound. Default 4 (an hour at 15 min);
    /// 2 to 100.
    #[serde(default = "default_samples")]
    pub samples: u32,
    /// Growth is only reported once the newest count is at least this. Default 0 (the ADR's
    /// rule as is); raise it for queues where a handful of waiting jobs is normal.
    #[serde(default)]
    pub min_available: u64,
}

impl Default for ObanQueueDepthCheck {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: None,
            cron: None,
            jitter: None,
            timeout: None,
            samples: default_samples(),
            min_available: 0,
        }
    }
}

fn default_samples() -> u32 {
    4
}

impl CostSnapshotCheck {
    /// The schedule part.
    pub fn timing(&self) -> Timing {
        Timing {
            enabled: self.enabled,
            interval: self.interval,
            cron: self.cron.clone(),
            jitter: self.jitter,
            timeout: self.timeout,
        }
    }
}

impl ObanQueueDepthCheck {
    /// The schedule part.
    pub fn timing(&self) -> Timing {
        Timing {
            enabled: self.enabled,
            interval: self.interval,
            cron: self.cron.clone(),
            jitter: self.jitter,
            timeout: self.timeout,
        }
    }
}

impl ChecksSpec {
    /// The schedule part of check `name`.
    pub fn timing(&self, name: CheckName) -> Timing {
        match name {
            CheckName::AppHealth => self.app_health.clone(),
            CheckName::CertExpiry => self.cert_expiry.clone(),
            CheckName::MachineStatus => self.machine_status.clone(),
            CheckName::PostgresConnections => self.postgres_connections.clone(),
            CheckName::Redis => self.redis.clone(),
            CheckName::CostSnapshot => self.cost_snapshot.timing(),
            CheckName::ObanQueueDepth => self.oban_queue_depth.timing(),
        }
    }
}

/// The checks of the ADR's maintenance table.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum CheckName {
    /// App health (machine checks + probes).
    AppHealth,
    /// TLS certificate expiry.
    CertExpiry,
    /// Fly machine status.
    MachineStatus,
    /// PostgreSQL connections.
    PostgresConnections,
    /// Redis PING.
    Redis,
    /// Cost snapshot.
    CostSnapshot,
    /// Oban queue depth.
    ObanQueueDepth,
}

impl CheckName {
    /// Every check, in the ADR table's order.
    pub const ALL: [CheckName; 7] = [
        Self::AppHealth,
        Self::CertExpiry,
        Self::MachineStatus,
        Self::PostgresConnections,
        Self::Redis,
        Self::CostSnapshot,
        Self::ObanQueueDepth,
    ];

    /// The manifest key (`appHealth`, `machineStatus`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AppHealth => "appHealth",
            Self::CertExpiry => "certExpiry",
            Self::MachineStatus => "machineStatus",
            Self::PostgresConnections => "postgresConnections",
            Self::Redis => "redis",
            Self::CostSnapshot => "costSnapshot",
            Self::ObanQueueDepth => "obanQueueDepth",
        }
    }

    /// The ADR's interval for the check (issue #6 table): app health and Redis 5 min; machine
    /// status, PostgreSQL connections and Oban depth 15 min; certificates and cost daily.
    pub fn default_interval(self) -> Duration {
        const MIN: u64 = 60;
        Duration::from_secs(match self {
            Self::AppHealth | Self::Redis => 5 * MIN,
            Self::MachineStatus | Self::PostgresConnections | Self::ObanQueueDepth => 15 * MIN,
            Self::CertExpiry | Self::CostSnapshot => 24 * 60 * MIN,
        })
    }
}

/// A cron expression, checked by croner when read (five fields `min hour dom month dow`, or
/// six with seconds first). Evaluated in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(try_from = "String", into = "String")]
pub struct CronExpr(String);

impl CronExpr {
    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CronExpr {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let fields = value.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "`{value}` is not a cron expression: expected 5 fields (minute hour day-of-month month day-of-week), like `0 6 * * *`"
            ));
        }
        match value.parse::<croner::Cron>() {
            Ok(_) => Ok(Self(value)),
            Err(e) => Err(format!(
                "`{value}` is not a cron expression ({e}): expected e.g. `0 6 * * *` (daily at 06:00 UTC)"
            )),
        }
    }
}

impl From<CronExpr> for String {
    fn from(value: CronExpr) -> String {
        value.0
    }
}

impl std::fmt::Display for CronExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Rules beyond types on one `MaintenanceSchedule` spec; every problem is reported at its field.
pub(crate) fn rules(c: &mut Checker<'_>, spec: &MaintenanceScheduleSpec) {
    for name in CheckName::ALL {
        let t = spec.checks.timing(name);
        let cp = field_path(&["spec", "checks", name.as_str()]);
        timing(c, &cp, name, &t);
    }
    let cost = &spec.checks.cost_snapshot;
    let cp = field_path(&["spec", "checks", "costSnapshot"]);
    if !(cost.anomaly_factor.is_finite() && cost.anomaly_factor > 1.0) {
        c.error(
            &cp.key("anomalyFactor"),
            format!(
                "anomalyFactor {} must be above 1: it multiplies the trailing daily average",
                cost.anomaly_factor
            ),
            Some("the ADR's rule is 2 (twice the average)".to_owned()),
        );
    }
    if !(1..=90).contains(&cost.trailing_days) {
        c.error(
            &cp.key("trailingDays"),
            format!("trailingDays {} is not from 1 to 90", cost.trailing_days),
            None,
        );
    }
    let oban = &spec.checks.oban_queue_depth;
    if !(2..=100).contains(&oban.samples) {
        c.error(
            &field_path(&["spec", "checks", "obanQueueDepth", "samples"]),
            format!(
                "samples {} is not from 2 to 100: growth needs at least two samples",
                oban.samples
            ),
            None,
        );
    }
    for (size, price) in &spec.prices {
        let pp = field_path(&["spec", "prices"]).key(size);
        if !is_vm_preset(size) {
            let help = crate::load::suggest_word(size, VM_PRESETS)
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("one of {}", VM_PRESETS.join(", "))));
            c.key_error(&pp, format!("`{size}` is not a Fly machine preset"), help);
        }
        if !(price.is_finite() && *price >= 0.0) {
            c.error(
                &pp,
                format!("price {price} is not a number of USD per hour ≥ 0"),
                None,
            );
        }
    }
    if spec.checks.cost_snapshot.enabled
        && spec.prices.is_empty()
        && c.is_written(&field_path(&["spec", "checks", "costSnapshot"]))
    {
        c.warn(
            &cp,
            "costSnapshot is configured but spec.prices is empty: snapshots count machine-hours only and never raise a cost anomaly".to_owned(),
            Some("add spec.prices, e.g. {shared-cpu-1x: 0.0028}".to_owned()),
        );
    }
}

fn timing(c: &mut Checker<'_>, cp: &crate::load::FieldPathBuf, name: CheckName, t: &Timing) {
    if t.interval.is_some() && t.cron.is_some() {
        c.error(
            &cp.key("cron"),
            "both interval and cron are given: a check runs on one schedule".to_owned(),
            Some("keep one of them".to_owned()),
        );
        return;
    }
    let interval = match t.every(name) {
        Every::Interval(i) => {
            if i < MIN_INTERVAL {
                c.error(
                    &cp.key("interval"),
                    format!(
                        "interval {} is shorter than {}: checks that often would load the services they watch",
                        DurationStr(i),
                        DurationStr(MIN_INTERVAL)
                    ),
                    None,
                );
                return;
            }
            Some(i)
        }
        Every::Cron(_) => None,
    };
    if let (Some(interval), Some(jitter)) = (interval, t.jitter)
        && jitter.get() >= interval
    {
        c.error(
            &cp.key("jitter"),
            format!(
                "jitter {jitter} is not shorter than the interval {}: runs would bunch up or be skipped",
                DurationStr(interval)
            ),
            None,
        );
    }
    if let Some(timeout) = t.timeout {
        if timeout.get().is_zero() {
            c.error(&cp.key("timeout"), "timeout is zero".to_owned(), None);
        } else if interval.is_some_and(|i| timeout.get() >= i) {
            c.error(
                &cp.key("timeout"),
                format!("timeout {timeout} is not shorter than the interval: a slow run would always be followed by a skipped one"),
                None,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::{Diagnostic, load_str};

    const HEAD: &str = "apiVersion: opsctl.dev/v1alpha1\nkind: MaintenanceSchedule\nmetadata: {name: ops}\nspec:\n";

    fn load(spec: &str) -> Result<MaintenanceScheduleSpec, Vec<Diagnostic>> {
        load_str(Path::new("m.yaml"), &format!("{HEAD}{spec}"))
            .map(|mut set| set.schedules.remove(0).spec)
            .map_err(|e| e.diagnostics)
    }

    fn errors(spec: &str) -> Vec<String> {
        load(spec)
            .expect_err("should be rejected")
            .iter()
            .map(|d| {
                format!(
                    "{}:{} {} {}",
                    d.line,
                    d.column,
                    d.field.as_deref().unwrap_or("-"),
                    d.message
                )
            })
            .collect()
    }

    #[test]
    fn an_empty_schedule_gives_the_adrs_defaults() {
        let spec = load("  {}\n").expect("valid");
        let min = |m: u64| Duration::from_secs(m * 60);
        let expect = [
            (CheckName::AppHealth, min(5)),
            (CheckName::CertExpiry, min(24 * 60)),
            (CheckName::MachineStatus, min(15)),
            (CheckName::PostgresConnections, min(15)),
            (CheckName::Redis, min(5)),
            (CheckName::CostSnapshot, min(24 * 60)),
            (CheckName::ObanQueueDepth, min(15)),
        ];
        for (name, interval) in expect {
            let t = spec.checks.timing(name);
            assert!(t.enabled, "{name:?}");
            assert_eq!(t.every(name), Every::Interval(interval), "{name:?}");
            assert_eq!(t.timeout(name), DEFAULT_CHECK_TIMEOUT);
        }
        assert_eq!(
            spec.checks
                .timing(CheckName::AppHealth)
                .jitter(CheckName::AppHealth),
            Duration::from_secs(30)
        );
        assert_eq!(
            spec.checks
                .timing(CheckName::CostSnapshot)
                .jitter(CheckName::CostSnapshot),
            MAX_DEFAULT_JITTER
        );
        assert_eq!(spec.checks.cost_snapshot.anomaly_factor, 2.0);
        assert_eq!(spec.checks.oban_queue_depth.samples, 4);
    }

    #[test]
    fn a_written_schedule_overrides_per_check() {
        let spec = load(
            "  checks:\n    redis: {interval: 1m, jitter: 5s, timeout: 3s}\n    costSnapshot: {cron: \"5 0 * * *\", anomalyFactor: 3, trailingDays: 14}\n    obanQueueDepth: {enabled: false, samples: 6, minAvailable: 50}\n  prices: {shared-cpu-1x: 0.0028, performance-2x: 0.0861}\n",
        )
        .expect("valid");
        let redis = spec.checks.timing(CheckName::Redis);
        assert_eq!(
            redis.every(CheckName::Redis),
            Every::Interval(Duration::from_secs(60))
        );
        assert_eq!(redis.jitter(CheckName::Redis), Duration::from_secs(5));
        assert_eq!(redis.timeout(CheckName::Redis), Duration::from_secs(3));
        let short = load("  checks:\n    appHealth: {interval: 20s}\n").expect("valid");
        let t = short.checks.timing(CheckName::AppHealth);
        assert_eq!(t.timeout(CheckName::AppHealth), Duration::from_secs(10));
        let cost = spec.checks.timing(CheckName::CostSnapshot);
        assert!(
            matches!(cost.every(CheckName::CostSnapshot), Every::Cron(c) if c.as_str() == "5 0 * * *")
        );
        assert_eq!(cost.jitter(CheckName::CostSnapshot), Duration::ZERO);
        assert_eq!(spec.checks.cost_snapshot.anomaly_factor, 3.0);
        assert!(!spec.checks.timing(CheckName::ObanQueueDepth).enabled);
        assert_eq!(spec.checks.oban_queue_depth.min_available, 50);
        assert_eq!(spec.prices["performance-2x"], 0.0861);
    }

    #[test]
    fn rule_errors_name_line_column_and_field() {
        let errs = errors(
            "  checks:\n    redis: {interval: 5s}\n    appHealth: {interval: 1m, jitter: 2m}\n    machineStatus: {interval: 5m, cron: \"0 * * * *\"}\n    obanQueueDepth: {samples: 1}\n    costSnapshot: {anomalyFactor: 0.5}\n  prices: {shared-cpu-1: 0.1, performance-1x: -1}\n",
        );
        let has = |want: &str| errs.iter().any(|e| e.contains(want));
        assert!(
            has("6:23 spec.checks.redis.interval interval 5s is shorter than 10s"),
            "{errs:#?}"
        );
        assert!(
            has("7:39 spec.checks.appHealth.jitter jitter 2m is not shorter"),
            "{errs:#?}"
        );
        assert!(
            has("8:41 spec.checks.machineStatus.cron both interval and cron"),
            "{errs:#?}"
        );
        assert!(
            has("9:31 spec.checks.obanQueueDepth.samples samples 1"),
            "{errs:#?}"
        );
        assert!(
            has("10:35 spec.checks.costSnapshot.anomalyFactor anomalyFactor 0.5"),
            "{errs:#?}"
        );
        assert!(
            has("11:12 spec.prices.shared-cpu-1 `shared-cpu-1` is not a Fly machine preset"),
            "{errs:#?}"
        );
        assert!(
            has("11:47 spec.prices.performance-1x price -1"),
            "{errs:#?}"
        );
    }

    #[test]
    fn a_bad_cron_expression_is_reported_where_it_is_written() {
        let errs = errors("  checks:\n    certExpiry: {cron: \"61 * * * *\"}\n");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("6:24 spec.checks.certExpiry.cron")
                    && e.contains("`61 * * * *` is not a cron expression")),
            "{errs:#?}"
        );
        let errs = errors("  checks:\n    redis: {cron: daily}\n");
        assert!(
            errs.iter()
                .any(|e| e.starts_with("6:19 spec.checks.redis.cron")
                    && e.contains("expected 5 fields")),
            "{errs:#?}"
        );
    }

    #[test]
    fn unknown_checks_are_refused() {
        let errs = errors("  checks:\n    disk: {interval: 5m}\n");
        assert!(errs.iter().any(|e| e.contains("disk")), "{errs:#?}");
    }

    #[test]
    fn a_second_schedule_is_an_error_at_its_name() {
        let text = format!(
            "{HEAD}  {{}}\n---\n{}",
            HEAD.replace("name: ops", "name: more")
        );
        let err =
            load_str(Path::new("m.yaml"), &format!("{text}  {{}}\n")).expect_err("two schedules");
        let d = &err.diagnostics[0];
        assert_eq!(
            (d.line, d.field.as_deref()),
            (9, Some("metadata.name")),
            "{d}"
        );
        assert!(
            d.message.contains("a second MaintenanceSchedule `more`"),
            "{d}"
        );
    }
}
