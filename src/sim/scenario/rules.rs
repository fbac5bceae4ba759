//! The rules a scenario must follow that YAML cannot express: unique names and ids, existing
//! releases and machines, valid faults, certificates, log lines and rate limits. Every broken
//! rule is reported, located at the value it is about.

use std::collections::BTreeSet;

use serde_saphyr::Spanned;

use super::{Problem, Scenario};

impl Scenario {
    /// Rules YAML cannot express; returns every broken one.
    pub(super) fn check(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            problems.push(Problem {
                line: 0,
                column: 0,
                message: format!(
                    "timeScale must be a positive number, got {}",
                    self.time_scale
                ),
            });
        }
        for message in self.rate_limits.problems() {
            problems.push(Problem {
                line: 0,
                column: 0,
                message,
            });
        }
        for (image, rc) in &self.release_commands {
            if image.is_empty() || !(0..=255).contains(&rc.exit_code) {
                problems.push(Problem {
                    line: 0,
                    column: 0,
                    message: format!(
                        "releaseCommands: image {image:?} needs a non-empty image reference and \
                         an exitCode from 0 to 255, got {}",
                        rc.exit_code
                    ),
                });
            }
        }
        let mut app_names = BTreeSet::new();
        let mut machine_ids = BTreeSet::new();
        for app in &self.apps {
            if app.name.value.is_empty() || !app_names.insert(app.name.value.clone()) {
                problems.push(at(
                    &app.name,
                    format!("duplicate or empty app name {:?}", app.name.value),
                ));
            }
            let mut versions = BTreeSet::new();
            for release in &app.releases {
                if release.version.value < 1 || !versions.insert(release.version.value) {
                    problems.push(at(
                        &release.version,
                        format!(
                            "release version {} of app {:?} must be ≥ 1 and unique",
                            release.version.value, app.name.value
                        ),
                    ));
                }
            }
            for machine in &app.machines {
                if !machine_ids.insert(machine.id.value.clone()) {
                    problems.push(at(
                        &machine.id,
                        format!("duplicate machine id {}", machine.id.value.0),
                    ));
                }
                if let Some(release) = &machine.release
                    && !versions.contains(&release.value)
                {
                    problems.push(at(
                        release,
                        format!(
                            "machine {} names release {}, which app {:?} does not have",
                            machine.id.value.0, release.value, app.name.value
                        ),
                    ));
                }
                if machine.resolved_image(app).is_none() {
                    problems.push(at(
                        &machine.id,
                        format!(
                            "machine {} has no image: give `image`, `config.image`, the app's \
                             `machineConfig.image`, or a `release`",
                            machine.id.value.0
                        ),
                    ));
                }
            }
            let mut hosts = BTreeSet::new();
            for cert in &app.certificates {
                let mut messages = cert.problems();
                if !hosts.insert(cert.hostname.value.clone()) {
                    messages.push(format!(
                        "duplicate certificate hostname {}",
                        cert.hostname.value
                    ));
                }
                problems.extend(messages.into_iter().map(|m| at(&cert.hostname, m)));
            }
            for log in &app.logs {
                let mut messages = log.problems();
                if let Some(m) = &log.machine
                    && !app.machines.iter().any(|x| &x.id.value.0 == m)
                {
                    messages.push(format!(
                        "log line names machine {m}, which app {:?} does not have",
                        app.name.value
                    ));
                }
                problems.extend(messages.into_iter().map(|m| at(&log.message, m)));
            }
        }
        for fault in &self.faults {
            let mut messages = fault.problems();
            if let Some(m) = &fault.machine
                && !machine_ids.iter().any(|id| &id.0 == m)
            {
                messages.push(format!(
                    "fault {} names machine {m}, which the scenario does not have",
                    fault.kind().as_str()
                ));
            }
            problems.extend(messages.into_iter().map(|m| at(&fault.kind, m)));
        }
        problems
    }
}

fn at<T>(spanned: &Spanned<T>, message: String) -> Problem {
    Problem {
        line: spanned.referenced.line(),
        column: spanned.referenced.column(),
        message,
    }
}
