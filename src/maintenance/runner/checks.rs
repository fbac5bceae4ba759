//! The checks of a maintenance run, one method each: observe read-only (Fly through
//! [`ReadOnlyFly`], PostgreSQL, Redis, HTTP probes, the certificate checker), then judge with
//! the pure `opsctl_controllers::maintenance` judges. Reporting is in the parent module.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use opsctl_controllers::maintenance::{
    self as judges, Judgement, Observation, Status, cost, health, machines, oban,
};
use opsctl_crds::kinds::maintenance::{CheckName, MaintenanceScheduleSpec};
use opsctl_crds::{FlyApp, ManifestSet};

use super::{AppResult, Maintenance};
use crate::fly::wire;
use crate::maintenance::{machines as convert, postgres, redis};
use crate::probes::ProbeResult;
use crate::records::{Record, RecordKind};

impl Maintenance {
    async fn list(
        &self,
        app: &str,
        schedule: &MaintenanceScheduleSpec,
        check: CheckName,
    ) -> Observation<Vec<wire::Machine>> {
        let timeout = schedule.checks.timing(check).timeout(check);
        match tokio::time::timeout(timeout, self.fly.list_machines(app)).await {
            Ok(Ok(list)) => Observation::Seen(list),
            Ok(Err(e)) => Observation::Unknown {
                reason: e.to_string(),
            },
            Err(_) => Observation::Unknown {
                reason: format!(
                    "Fly did not answer within {}",
                    opsctl_crds::DurationStr(timeout)
                ),
            },
        }
    }

    pub(super) async fn machine_status(
        &self,
        app: &str,
        schedule: &MaintenanceScheduleSpec,
    ) -> Judgement {
        let now = self.clock.now();
        match self.list(app, schedule, CheckName::MachineStatus).await {
            Observation::Seen(list) => {
                let views: Vec<_> = list.iter().map(convert::view).collect();
                machines::judge(app, &views, now)
            }
            Observation::Down { reason, .. } | Observation::Unknown { reason } => {
                Judgement::fly_blind(machines::SOURCE, reason, now)
            }
        }
    }

    pub(super) async fn app_health(
        &self,
        app: &FlyApp,
        schedule: &MaintenanceScheduleSpec,
        slos: &[opsctl_crds::Manifest<opsctl_crds::kinds::HealthSloSpec>],
    ) -> Judgement {
        let name = app.app_name();
        let listed = self.list(name, schedule, CheckName::AppHealth).await;
        let machines = match listed {
            Observation::Seen(list) => Observation::Seen(list.iter().map(convert::view).collect()),
            Observation::Down { class, reason } => Observation::Down { class, reason },
            Observation::Unknown { reason } => Observation::Unknown { reason },
        };
        let mut probes = Vec::new();
        for p in &app.spec.health.probes {
            let result = match &self.prober {
                Some(prober) => {
                    let started = tokio::time::Instant::now();
                    let r = prober.probe(&p.http).await;
                    let latency_ms =
                        u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
                    self.sample(name, &r, latency_ms);
                    probe_observation(r)
                }
                None => Observation::Unknown {
                    reason: "the HTTP client for probes could not be built".into(),
                },
            };
            probes.push(health::ProbeSeen {
                url: crate::probes::http::redacted(&p.http.url),
                result,
            });
        }
        let now = self.clock.now();
        let judgement = health::judge(
            name,
            &machines,
            app.spec.health.machine_checks,
            &probes,
            now,
        );
        self.with_slo_signals(judgement, name, slos, now)
    }

    /// Keep one probe result for the app's SLOs. A probe that got no answer we could judge
    /// (`Unknown`: our side could not see) is not a sample: unknown is never unhealthy.
    fn sample(&self, app: &str, r: &ProbeResult, latency_ms: u32) {
        let Some(slo) = &self.slo else { return };
        let ok = match r {
            ProbeResult::Passed => true,
            ProbeResult::Failed { .. } => false,
            ProbeResult::Unknown { .. } => return,
        };
        let now = self.clock.now();
        let sample = opsctl_controllers::slo::Sample {
            at: now,
            ok,
            latency_ms,
        };
        if let Err(e) = slo.store().append(app, sample, now) {
            tracing::warn!(app, error = %e, "could not keep the probe result for the SLOs");
        }
    }

    /// Evaluate `app`'s `HealthSLO`s and add their `slo_burn` signals to the app-health
    /// judgement (it is an alert while an SLO burns).
    fn with_slo_signals(
        &self,
        mut j: Judgement,
        app: &str,
        slos: &[opsctl_crds::Manifest<opsctl_crds::kinds::HealthSloSpec>],
        now: DateTime<Utc>,
    ) -> Judgement {
        let Some(tracker) = &self.slo else { return j };
        let burning = tracker.evaluate_app(slos, app, now);
        if burning.is_empty() {
            return j;
        }
        let names: Vec<String> = burning.iter().map(|s| s.class.clone()).collect();
        let text = format!("SLO burning ({})", names.join(", "));
        // Burning is positive evidence from the probes: an alert even when Fly could not be
        // read (the blindness signal stays beside it).
        if j.status == Status::Ok {
            j.summary = text;
        } else {
            j.summary = format!("{}; {text}", j.summary);
        }
        j.status = Status::Alert;
        j.signals.extend(burning);
        j
    }

    /// The certificate check: run the checker (due hostnames only), then one judgement per
    /// app from the last assessment of each of its hostnames.
    pub(super) async fn cert_expiry(&self, set: &ManifestSet) -> Vec<AppResult> {
        let Some(certs) = &self.certs else {
            return Vec::new();
        };
        let now = self.clock.now();
        certs.check_certs(&set.cert_windows, now).await;
        let mut per_app: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for h in certs.status() {
            per_app.entry(h.last.app.clone()).or_default().push(h);
        }
        let mut results = Vec::new();
        for (app, hosts) in per_app {
            let j = cert_judgement(&app, &hosts, &set.cert_windows, now);
            results.push(self.report(CheckName::CertExpiry, &app, j));
        }
        results
    }

    pub(super) async fn postgres(
        &self,
        app: &FlyApp,
        schedule: &MaintenanceScheduleSpec,
    ) -> Option<Judgement> {
        let dep = app.spec.health.dependencies.as_ref()?.postgres.as_ref()?;
        let timeout = schedule
            .checks
            .timing(CheckName::PostgresConnections)
            .timeout(CheckName::PostgresConnections);
        let seen = postgres::connections((self.env)(&dep.url_env), &dep.url_env, timeout).await;
        Some(judges::postgres::judge(
            app.app_name(),
            &seen,
            dep.max_connections_percent,
            self.clock.now(),
        ))
    }

    pub(super) async fn redis(
        &self,
        app: &FlyApp,
        schedule: &MaintenanceScheduleSpec,
    ) -> Option<Judgement> {
        let dep = app.spec.health.dependencies.as_ref()?.redis.as_ref()?;
        let timeout = schedule
            .checks
            .timing(CheckName::Redis)
            .timeout(CheckName::Redis);
        let seen = redis::ping((self.env)(&dep.url_env), &dep.url_env, timeout).await;
        Some(judges::redis::judge(
            app.app_name(),
            &seen,
            self.clock.now(),
        ))
    }

    pub(super) async fn oban(
        &self,
        app: &FlyApp,
        schedule: &MaintenanceScheduleSpec,
    ) -> Option<Judgement> {
        let (env, queues) = match app
            .spec
            .health
            .dependencies
            .as_ref()
            .and_then(|d| d.oban.as_ref())
        {
            Some(o) => (o.database_url_env.clone(), o.queues.clone()),
            None => {
                let d = app.spec.deploy.drain.as_ref()?.oban.as_ref()?;
                (d.database_url_env.clone(), d.queues.clone())
            }
        };
        let rule_spec = &schedule.checks.oban_queue_depth;
        let rule = oban::GrowthRule {
            samples: rule_spec.samples as usize,
            min_available: rule_spec.min_available,
        };
        let timeout = schedule
            .checks
            .timing(CheckName::ObanQueueDepth)
            .timeout(CheckName::ObanQueueDepth);
        let name = app.app_name();
        let seen = postgres::oban_available((self.env)(&env), &env, &queues, timeout).await;
        let seen = match seen {
            Observation::Seen(counts) => {
                let mut state = self.lock();
                let mut histories = BTreeMap::new();
                for (queue, n) in counts {
                    let h = state
                        .oban
                        .entry((name.to_owned(), queue.clone()))
                        .or_default();
                    h.push_back(n);
                    while h.len() > rule.samples.max(2) {
                        h.pop_front();
                    }
                    histories.insert(queue, h.iter().copied().collect());
                }
                Observation::Seen(histories)
            }
            Observation::Down { class, reason } => Observation::Down { class, reason },
            Observation::Unknown { reason } => Observation::Unknown { reason },
        };
        Some(oban::judge(name, &seen, rule, self.clock.now()))
    }

    pub(super) async fn cost(&self, app: &str, schedule: &MaintenanceScheduleSpec) -> Judgement {
        let now = self.clock.now();
        let list = match self.list(app, schedule, CheckName::CostSnapshot).await {
            Observation::Seen(list) => list,
            Observation::Down { reason, .. } | Observation::Unknown { reason } => {
                return Judgement::fly_blind(cost::SOURCE, reason, now);
            }
        };
        let inputs: Vec<_> = list.iter().map(convert::cost_input).collect();
        let from = now - TimeDelta::days(1);
        let estimate = cost::estimate(&inputs, &schedule.prices, from, now);
        let rule = &schedule.checks.cost_snapshot;
        let since = now - TimeDelta::days(i64::from(rule.trailing_days));
        let trailing: Vec<f64> = self
            .store
            .records(|r| {
                r.kind == RecordKind::CostSnapshot
                    && r.app.as_deref() == Some(app)
                    && r.created_at >= since
                    && r.created_at < now
            })
            .unwrap_or_default()
            .iter()
            .filter_map(|r| r.data.get("total_usd").and_then(serde_json::Value::as_f64))
            .collect();
        let judgement = cost::judge(
            app,
            &estimate,
            &trailing,
            rule.anomaly_factor,
            !schedule.prices.is_empty(),
            now,
        );
        if self.record {
            let mut rec = Record::new(
                RecordKind::CostSnapshot,
                format!("cost {app}: ${:.2} over 24h", estimate.total_usd),
                now,
            );
            rec.app = Some(app.to_owned());
            rec.description = judgement.summary.clone();
            rec.labels = vec!["maintenance".into(), format!("app:{app}")];
            rec.data = serde_json::to_value(&estimate).unwrap_or_default();
            rec.close("snapshot", now);
            if let Err(e) = self.store.append_record(&rec) {
                tracing::error!(app, error = %e, "could not record the cost snapshot");
            }
        }
        judgement
    }
}

/// The certificate check's judgement for `app` from the last result of each of its
/// hostnames: an alert with the windows' signals (none under `onShort: report`), unknown when
/// no hostname could be seen at all (one `observer_blind` signal), else ok. The summary gives
/// each hostname's days left and findings.
fn cert_judgement(
    app: &str,
    hosts: &[crate::maintenance::certs::CertHostStatus],
    windows: &[opsctl_crds::Manifest<opsctl_crds::kinds::CertWindowSpec>],
    now: DateTime<Utc>,
) -> Judgement {
    use opsctl_crds::kinds::cert_window::OnShort;
    let on_short = |host: &str| {
        windows
            .iter()
            .find(|w| {
                w.spec.app_name(w.name()) == app && w.spec.hostnames.iter().any(|h| h == host)
            })
            .map_or(OnShort::Alert, |w| w.spec.on_short)
    };
    let mut parts = Vec::new();
    let mut signals = Vec::new();
    for h in hosts {
        let a = &h.last;
        let mut part = match a.remaining {
            Some(r) => format!("{} {} days left", a.hostname, r.days_left),
            None if a.is_unknown() => format!("{} unknown", a.hostname),
            None => a.hostname.clone(),
        };
        if !a.findings.is_empty() {
            let kinds: Vec<&str> = a.findings.iter().map(|f| f.kind.class()).collect();
            part.push_str(&format!(" ({})", kinds.join(", ")));
        }
        parts.push(part);
        signals.extend(a.signals(on_short(&a.hostname)));
    }
    let summary = parts.join("; ");
    if !signals.is_empty() {
        return Judgement::alert(summary, signals);
    }
    if !hosts.is_empty() && hosts.iter().all(|h| h.last.is_unknown()) {
        return Judgement::unknown(app, "maintenance/cert_expiry", summary, now);
    }
    Judgement::ok(summary)
}
/// A probe result as the health judge takes it: a wrong answer is `Down` with a stable class
/// (`status:503`, else `body`); no answer is `Unknown`.
fn probe_observation(r: ProbeResult) -> Observation<()> {
    match r {
        ProbeResult::Passed => Observation::Seen(()),
        ProbeResult::Failed { reason } => {
            let class = reason
                .split("answered status ")
                .nth(1)
                .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .filter(|code| !code.is_empty())
                .map_or_else(|| "body".to_owned(), |code| format!("status:{code}"));
            Observation::Down { class, reason }
        }
        ProbeResult::Unknown { reason } => Observation::Unknown { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_failures_get_stable_classes() {
        let failed = |reason: &str| {
            probe_observation(ProbeResult::Failed {
                reason: reason.into(),
            })
        };
        assert!(
            matches!(failed("GET https://a/ answered status 503, expected 200"), Observation::Down { class, .. } if class == "status:503")
        );
        assert!(
            matches!(failed("GET https://a/ answered 200 but the body does not contain \"x\""), Observation::Down { class, .. } if class == "body")
        );
        assert!(matches!(
            probe_observation(ProbeResult::Unknown {
                reason: "timeout".into()
            }),
            Observation::Unknown { .. }
        ));
    }
}
