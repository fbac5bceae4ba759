//! Prometheus metrics of `opsctl run`, served as `/metrics` on its listener (issue #8), and the
//! readiness `/readyz` reports. Names follow controller-runtime and Argo CD:
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `opsctl_reconcile_total` | counter | `controller`, `result` | reconciles of one app (`result`: `ok`, `error`, `waiting`, `blocked`, `denied`) |
//! | `opsctl_reconcile_duration_seconds` | histogram | `controller` | time of one app's reconcile, deploys included |
//! | `opsctl_fly_api_requests_total` | counter | `op`, `code` | Fly API requests by rate-limit action and HTTP status (`error`: no answer) |
//! | `opsctl_drift` | gauge | `app` | 1 while the app drifts from its manifest, else 0 |
//! | `opsctl_deploys_total` | counter | `app`, `result` | finished deploys by status |
//! | `opsctl_incidents_open` | gauge | | open incidents (read from the record store at scrape time) |
//! | `opsctl_check_status` | gauge | `check`, `app` | last maintenance result: 0 ok, 1 alert, −1 unknown (from the scheduler's status file at scrape time) |
//! | `opsctl_check_last_run_timestamp_seconds` | gauge | `check`, `app` | when that result was judged (Unix seconds, UTC) |
//! | `opsctl_cert_expiry_seconds` | gauge | `app`, `hostname` | seconds until the certificate's notAfter at scrape time (negative once expired), from the last certificate check |
//! | `opsctl_workqueue_depth` | gauge | `controller` | keys of the reconciler's work queue ready to be handed to a worker (set by the reconciler and at scrape time) |
//!
//! One process-wide registry ([`global`]): the Fly transport, the reconciler and the listener
//! of one process share it, and tests that look at metrics scrape a real `opsctl run`.
//! Output is OpenMetrics text (`application/openmetrics-text; version=1.0.0`), which
//! Prometheus reads.

use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::records::{RecordKind, RecordStatus, RecordStore};

/// Labels of `opsctl_reconcile_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `deploy` (the reconciler of FlyApps).
    pub controller: String,
    /// `ok`, `error`, `waiting`, `blocked`, `denied`.
    pub result: String,
}

/// Labels of `opsctl_reconcile_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// Controller name.
    pub controller: String,
}

/// Labels of `opsctl_fly_api_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlyLabels {
    /// The call's rate-limit action (`list`, `get`, `update`, `lease`, `wait`, `graphql`, …).
    pub op: String,
    /// HTTP status, or `error` when no answer came.
    pub code: String,
}

/// Labels with an app.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabels {
    /// Fly app.
    pub app: String,
}

/// Labels of `opsctl_deploys_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeployLabels {
    /// Fly app.
    pub app: String,
    /// Deploy status (`succeeded`, `rolled_back`, …).
    pub result: String,
}

/// Labels of `opsctl_git_fetches_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitLabels {
    /// What asked for the fetch: `startup`, `interval`, `retry` or `webhook`.
    pub trigger: String,
    /// `ok` or `error`.
    pub result: String,
}

/// The process's metrics and readiness.
pub struct Metrics {
    /// `opsctl_reconcile_total`.
    pub reconcile: Family<ReconcileLabels, Counter>,
    /// `opsctl_reconcile_duration_seconds`.
    pub reconcile_duration: Family<ControllerLabels, Histogram>,
    /// `opsctl_fly_api_requests_total`.
    pub fly_requests: Family<FlyLabels, Counter>,
    /// `opsctl_drift`.
    pub drift: Family<AppLabels, Gauge>,
    /// `opsctl_deploys_total`.
    pub deploys: Family<DeployLabels, Counter>,
    /// `opsctl_workqueue_depth`.
    pub workqueue_depth: Family<ControllerLabels, Gauge>,
    /// `opsctl_git_fetches_total` (`run --git-url`).
    pub git_fetches: Family<GitLabels, Counter>,
    /// `opsctl_git_last_fetch_success_timestamp_seconds` (Unix seconds, UTC; 0 before the first).
    pub git_last_success: Gauge,
    registry: Registry,
    manifests_loaded: AtomicBool,
    fly_reachable: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every family registered and nothing counted.
    pub fn new() -> Self {
        let reconcile = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration =
            Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
                // 10 ms to about 5.5 min: a pass without changes up to a slow rollout.
                Histogram::new(exponential_buckets(0.01, 2.0, 16))
            });
        let fly_requests = Family::<FlyLabels, Counter>::default();
        let drift = Family::<AppLabels, Gauge>::default();
        let deploys = Family::<DeployLabels, Counter>::default();
        let workqueue_depth = Family::<ControllerLabels, Gauge>::default();
        let git_fetches = Family::<GitLabels, Counter>::default();
        let git_last_success = Gauge::default();
        let mut registry = Registry::default();
        registry.register(
            "opsctl_reconcile",
            "Reconciles of one app, by controller and result",
            reconcile.clone(),
        );
        registry.register(
            "opsctl_reconcile_duration_seconds",
            "Time of one app's reconcile, deploys included",
            reconcile_duration.clone(),
        );
        registry.register(
            "opsctl_fly_api_requests",
            "Fly API requests by rate-limit action and HTTP status",
            fly_requests.clone(),
        );
        registry.register(
            "opsctl_drift",
            "1 while the app drifts from its manifest",
            drift.clone(),
        );
        registry.register(
            "opsctl_deploys",
            "Finished deploys by app and status",
            deploys.clone(),
        );
        registry.register(
            "opsctl_workqueue_depth",
            "Keys of the reconciler's work queue ready to be handed to a worker",
            workqueue_depth.clone(),
        );
        registry.register(
            "opsctl_git_fetches",
            "Fetches of the remote manifests repository (run --git-url) by trigger and result",
            git_fetches.clone(),
        );
        registry.register(
            "opsctl_git_last_fetch_success_timestamp_seconds",
            "When the remote manifests repository was last fetched successfully (Unix seconds)",
            git_last_success.clone(),
        );
        Self {
            reconcile,
            reconcile_duration,
            fly_requests,
            drift,
            deploys,
            workqueue_depth,
            git_fetches,
            git_last_success,
            registry,
            manifests_loaded: AtomicBool::new(false),
            fly_reachable: AtomicBool::new(false),
        }
    }

    /// Count one reconcile of `controller` with `result`, which took `seconds`.
    pub fn reconciled(&self, controller: &str, result: &str, seconds: f64) {
        self.reconcile
            .get_or_create(&ReconcileLabels {
                controller: controller.into(),
                result: result.into(),
            })
            .inc();
        self.reconcile_duration
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .observe(seconds);
    }

    /// Count one Fly API request of rate-limit action `op` answered with `code` (None: no
    /// answer).
    pub fn fly_request(&self, op: &str, code: Option<u16>) {
        self.fly_requests
            .get_or_create(&FlyLabels {
                op: op.into(),
                code: code.map_or_else(|| "error".to_owned(), |c| c.to_string()),
            })
            .inc();
    }

    /// Count one fetch of the remote manifests repository asked for by `trigger`; on success
    /// also the time it succeeded (`at`, UTC).
    pub fn git_fetched(&self, trigger: &str, ok: bool, at: chrono::DateTime<chrono::Utc>) {
        self.git_fetches
            .get_or_create(&GitLabels {
                trigger: trigger.into(),
                result: if ok { "ok" } else { "error" }.into(),
            })
            .inc();
        if ok {
            self.git_last_success.set(at.timestamp());
        }
    }

    /// Set whether `app` drifts.
    pub fn set_drift(&self, app: &str, drifts: bool) {
        self.drift
            .get_or_create(&AppLabels { app: app.into() })
            .set(i64::from(drifts));
    }

    /// Count a finished deploy of `app` with status `result`.
    pub fn deployed(&self, app: &str, result: &str) {
        self.deploys
            .get_or_create(&DeployLabels {
                app: app.into(),
                result: result.into(),
            })
            .inc();
    }

    /// Set the work-queue depth of `controller` (keys ready, not yet handed to a worker).
    pub fn set_workqueue_depth(&self, controller: &str, depth: usize) {
        self.workqueue_depth
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    /// A valid manifest set has been loaded (readiness).
    pub fn set_manifests_loaded(&self) {
        self.manifests_loaded.store(true, Ordering::Relaxed);
    }

    /// Whether the last reconcile pass could observe Fly (readiness).
    pub fn set_fly_reachable(&self, reachable: bool) {
        self.fly_reachable.store(reachable, Ordering::Relaxed);
    }

    /// Ready: manifests loaded and Fly reachable. `Err` says what is missing.
    ///
    /// # Errors
    /// The reasons it is not ready, for the `/readyz` body.
    pub fn ready(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if !self.manifests_loaded.load(Ordering::Relaxed) {
            missing.push("no valid manifest set loaded yet");
        }
        if !self.fly_reachable.load(Ordering::Relaxed) {
            missing.push("Fly not reached by the last reconcile pass");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }

    /// The metrics as OpenMetrics text, plus the gauges read at scrape time from `state`
    /// (open incidents from the record store, maintenance results from the scheduler's
    /// status file, certificate expiry), when given, and with `manifests` too the SLO gauges
    /// (`opsctl_slo_burn_rate`, `opsctl_slo_error_budget_remaining`) of every `HealthSLO`,
    /// evaluated over the probe samples kept under `state` at the time of the scrape.
    pub fn render(&self, state: Option<&Path>, manifests: Option<&Path>) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut out, &self.registry).is_err() {
            out.clear();
        }
        if let Some(dir) = state {
            out.push_str(&scraped(dir));
            if let Some(manifests) = manifests {
                out.push_str(&slo_gauges(dir, manifests, chrono::Utc::now()));
            }
        }
        out.push_str("# EOF\n");
        out
    }
}

/// Gauges computed at scrape time from the state directory.
fn scraped(dir: &Path) -> String {
    let mut out = String::new();
    let store = RecordStore::open_read(dir);
    let open = store
        .records(|r| r.kind == RecordKind::Incident && r.status != RecordStatus::Closed)
        .map(|r| r.len())
        .unwrap_or(0);
    out.push_str(
        "# HELP opsctl_incidents_open Open incidents.\n# TYPE opsctl_incidents_open gauge\n",
    );
    out.push_str(&format!("opsctl_incidents_open {open}\n"));
    if let Ok(Some(status)) = crate::maintenance::MaintenanceStatus::load(dir) {
        use opsctl_controllers::maintenance::Status;
        let mut lines = String::new();
        let mut times = String::new();
        for c in &status.checks {
            let check = serde_json::to_value(c.check)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            for r in &c.results {
                let v = match r.status {
                    Status::Ok => 0,
                    Status::Alert => 1,
                    Status::Unknown => -1,
                };
                let labels = format!(
                    "{{check=\"{}\",app=\"{}\"}}",
                    escape(&check),
                    escape(&r.app)
                );
                lines.push_str(&format!("opsctl_check_status{labels} {v}\n"));
                times.push_str(&format!(
                    "opsctl_check_last_run_timestamp_seconds{labels} {}\n",
                    r.at.timestamp()
                ));
            }
        }
        out.push_str("# HELP opsctl_check_status Last maintenance result: 0 ok, 1 alert, -1 unknown.\n# TYPE opsctl_check_status gauge\n");
        out.push_str(&lines);
        out.push_str("# HELP opsctl_check_last_run_timestamp_seconds When the last maintenance result was judged.\n# TYPE opsctl_check_last_run_timestamp_seconds gauge\n# UNIT opsctl_check_last_run_timestamp_seconds seconds\n");
        out.push_str(&times);
    }
    if let Ok(certs) = crate::maintenance::certs::load_status(dir) {
        let now = chrono::Utc::now();
        out.push_str("# HELP opsctl_cert_expiry_seconds Seconds until the certificate expires (negative once expired).\n# TYPE opsctl_cert_expiry_seconds gauge\n# UNIT opsctl_cert_expiry_seconds seconds\n");
        for c in certs {
            if let Some(not_after) = c.last.not_after {
                out.push_str(&format!(
                    "opsctl_cert_expiry_seconds{{app=\"{}\",hostname=\"{}\"}} {}\n",
                    escape(&c.last.app),
                    escape(&c.last.hostname),
                    (not_after - now).num_seconds()
                ));
            }
        }
    }
    out
}

/// `opsctl_slo_burn_rate{slo,app,sli,window}` (error-budget burn rate over each alert window;
/// 1.0 spends the budget exactly over the SLO period; windows without samples are left out) and
/// `opsctl_slo_error_budget_remaining{slo,app,sli}` (fraction of the period's budget left,
/// negative once overspent), for every `HealthSLO` in `manifests` evaluated at `now` (UTC) over
/// the samples the app-health check keeps under `state` (`maintenance::slo::SampleStore`).
/// An invalid manifest set or unreadable samples give no lines (a gap, not a zero).
fn slo_gauges(state: &Path, manifests: &Path, now: chrono::DateTime<chrono::Utc>) -> String {
    let Ok(set) = opsctl_crds::load_dir(manifests) else {
        return String::new();
    };
    if set.slos.is_empty() {
        return String::new();
    }
    let samples = crate::maintenance::slo::SampleStore::new(state);
    let mut burn = String::new();
    let mut budget = String::new();
    for slo in &set.slos {
        let Ok(report) = crate::maintenance::slo::evaluate_slo(&samples, slo, now) else {
            continue;
        };
        for o in &report.objectives {
            let labels = format!(
                "slo=\"{}\",app=\"{}\",sli=\"{}\"",
                escape(&report.slo),
                escape(&report.app),
                o.sli.as_str()
            );
            if let Some(b) = o.budget_remaining {
                budget.push_str(&format!(
                    "opsctl_slo_error_budget_remaining{{{labels}}} {b}\n"
                ));
            }
            for w in &o.burn_rates {
                if let Some(rate) = w.burn_rate {
                    let window =
                        opsctl_crds::DurationStr(std::time::Duration::from_secs(w.window_secs));
                    burn.push_str(&format!(
                        "opsctl_slo_burn_rate{{{labels},window=\"{window}\"}} {rate}\n"
                    ));
                }
            }
        }
    }
    let mut out = String::from(
        "# HELP opsctl_slo_burn_rate Error-budget burn rate over the window (1 spends the budget exactly over the SLO period).\n# TYPE opsctl_slo_burn_rate gauge\n",
    );
    out.push_str(&burn);
    out.push_str("# HELP opsctl_slo_error_budget_remaining Fraction of the SLO period's error budget left (negative once overspent).\n# TYPE opsctl_slo_error_budget_remaining gauge\n");
    out.push_str(&budget);
    out
}

/// A label value with `\`, `"` and newlines escaped (OpenMetrics text format).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_their_names_and_labels() {
        let m = Metrics::new();
        m.reconciled("deploy", "ok", 0.2);
        m.fly_request("list", Some(200));
        m.fly_request("update", None);
        m.set_drift("lei", true);
        m.deployed("lei", "rolled_back");
        m.set_workqueue_depth("deploy", 3);
        let at = chrono::DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        m.git_fetched("webhook", true, at);
        m.git_fetched("interval", false, at + chrono::Duration::minutes(1));
        let text = m.render(None, None);
        for line in [
            "opsctl_reconcile_total{controller=\"deploy\",result=\"ok\"} 1",
            "opsctl_reconcile_duration_seconds_count{controller=\"deploy\"} 1",
            "opsctl_fly_api_requests_total{op=\"list\",code=\"200\"} 1",
            "opsctl_git_fetches_total{trigger=\"webhook\",result=\"ok\"} 1",
            "opsctl_git_fetches_total{trigger=\"interval\",result=\"error\"} 1",
            "opsctl_git_last_fetch_success_timestamp_seconds 1795000000",
            "opsctl_fly_api_requests_total{op=\"update\",code=\"error\"} 1",
            "opsctl_drift{app=\"lei\"} 1",
            "opsctl_deploys_total{app=\"lei\",result=\"rolled_back\"} 1",
            "# TYPE opsctl_workqueue_depth gauge",
            "opsctl_workqueue_depth{controller=\"deploy\"} 3",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
    }

    #[test]
    fn ready_only_with_manifests_and_fly() {
        let m = Metrics::new();
        assert!(m.ready().unwrap_err().contains("manifest"));
        m.set_manifests_loaded();
        assert!(m.ready().unwrap_err().contains("Fly"));
        m.set_fly_reachable(true);
        assert_eq!(m.ready(), Ok(()));
        m.set_fly_reachable(false);
        assert!(m.ready().is_err());
    }

    #[test]
    fn open_incidents_are_counted_from_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::open_write(dir.path()).unwrap();
        let now = chrono::Utc::now();
        let open = crate::records::Record::new(RecordKind::Incident, "down", now);
        let mut closed = crate::records::Record::new(RecordKind::Incident, "was down", now);
        closed.close("resolved", now);
        store.append_record(&open).unwrap();
        store.append_record(&closed).unwrap();
        let text = Metrics::new().render(Some(dir.path()), None);
        assert!(text.contains("opsctl_incidents_open 1\n"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn slo_burn_rates_and_budget_are_scraped_from_the_samples() {
        use chrono::TimeZone;
        use opsctl_controllers::slo::Sample;
        let state = tempfile::tempdir().unwrap();
        let manifests = tempfile::tempdir().unwrap();
        std::fs::write(
            manifests.path().join("slo.yaml"),
            "apiVersion: opsctl.dev/v1alpha1\nkind: HealthSLO\nmetadata: {name: lei}\nspec:\n  availability: 99%\n  minSamples: 5\n",
        )
        .unwrap();
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 29, 12, 0, 0)
            .unwrap();
        let samples = crate::maintenance::slo::SampleStore::new(state.path());
        // 10 probes over the last 5 minutes, 1 failed: 10% bad against a 1% budget = 10×.
        for i in 0..10 {
            let at = now - chrono::Duration::seconds(30 * i);
            let sample = Sample {
                at,
                ok: i != 3,
                latency_ms: 100,
            };
            samples.append("lei", sample, now).unwrap();
        }
        let text = slo_gauges(state.path(), manifests.path(), now);
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap()
        };
        let five_min =
            line(r#"opsctl_slo_burn_rate{slo="lei",app="lei",sli="availability",window="5m"}"#);
        assert!((five_min - 10.0).abs() < 1e-9, "{text}");
        let budget =
            line(r#"opsctl_slo_error_budget_remaining{slo="lei",app="lei",sli="availability"}"#);
        assert!((budget - (1.0 - 10.0)).abs() < 1e-9, "{text}");
        assert!(text.contains("# TYPE opsctl_slo_burn_rate gauge"));

        // An invalid manifest set: no SLO lines at all, never a made-up zero.
        std::fs::write(manifests.path().join("bad.yaml"), "kind: Nope\n").unwrap();
        assert_eq!(slo_gauges(state.path(), manifests.path(), now), "");
    }
}
