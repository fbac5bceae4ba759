//! The services, checks and stop settings of a machine config, in domain terms: what the
//! manifest asks for (mapped as flyctl's `ToMachineConfig` maps a fly.toml) and what a machine
//! was observed to have, in the same types, so the two can be compared.
//!
//! Inputs: a `FlyApp` manifest ([`desired`]) or, for the observed side, the `opsctl` crate's
//! conversion of Fly's wire config (`src/fly/observe.rs`). Outputs: [`ServiceConfig`] values,
//! which [`ServiceConfig::normalized`] brings to one canonical form before `diff` compares them
//! (case BUG-25 in `../shared/cases/README.md`: no drift from explicit defaults, empty values,
//! list order or platform-added fields). Writing these values into Fly's wire config is the
//! runtime's job (`src/runtime/deploy/update.rs`); nothing here knows Fly's JSON.
//!
//! Only the fields the manifest can express are modelled. Fields it cannot say (a service's
//! `autostart`, `autostop`, `min_machines_running`, a port's `http_options`/`tls_options`, a
//! check's `headers`, `protocol`, `tls_*` and `kind`) are neither compared nor overwritten: an
//! update keeps them as Fly has them.
//!
//! Sources: `../shared/fly-api/NOTES.md` §2.3 (MachineConfig) and §7.2 (flyctl
//! `ToMachineConfig`); flyctl `internal/appconfig/service.go` (`toMachineService`: protocol,
//! internal port, ports, concurrency, tcp checks then http checks).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use opsctl_crds::flyapp::{self, CheckKind as ManifestCheckKind};
use opsctl_crds::{DurationStr, FlyApp};
use serde::{Deserialize, Serialize};

/// Fly's stop signal when a config names none (fly.toml `kill_signal` default; the manifest's
/// `stop.signal` doc).
pub const DEFAULT_STOP_SIGNAL: &str = "SIGINT";

/// Fly's stop timeout when a config names none: 5 s (fly.toml `kill_timeout` default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Fly Proxy's concurrency type when a service's `concurrency` names none (Fly docs,
/// "Guidelines for concurrency settings": "`connections` is the default concurrency type").
/// The default *limits* are not normalised: the docs have said both "soft 20, hard 25" and
/// "soft 20, no hard limit", so an absent limit stays absent.
pub const DEFAULT_CONCURRENCY_TYPE: &str = "connections";

/// The services, top-level checks and stop settings of one machine's config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Services Fly Proxy routes to the machine (config `services`), in config order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// Top-level checks by name (config `checks`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, Check>,
    /// How Fly stops the machine (config `stop_config`); `None`: Fly's defaults
    /// ([`DEFAULT_STOP_SIGNAL`], [`DEFAULT_STOP_TIMEOUT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// One service (config `services[]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Service {
    /// Port the app listens on inside the machine (0 when Fly's config has none).
    pub internal_port: u16,
    /// `tcp` or `udp`; empty: not said (Fly's default, `tcp`).
    pub protocol: String,
    /// Public ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Concurrency limits; `None`: Fly Proxy's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Service checks, in config order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
}

/// A public port of a service (config `services[].ports[]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Port {
    /// The port, or the first port of a range (Fly's `port` or `start_port`).
    pub port: u16,
    /// Last port of a range (Fly's `end_port`); `None` for a single port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
    /// Handlers (`http`, `tls`, `proxy_proto`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub handlers: Vec<String>,
    /// Redirect plain HTTP to HTTPS.
    #[serde(default)]
    pub force_https: bool,
}

/// Concurrency limits of a service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Concurrency {
    /// `connections` or `requests`; empty: not said ([`DEFAULT_CONCURRENCY_TYPE`]).
    pub kind: String,
    /// Above this Fly Proxy prefers other machines; `None`: Fly's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_limit: Option<u32>,
    /// Above this Fly Proxy sends nothing more; `None`: Fly's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_limit: Option<u32>,
}

/// What a check probes with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// A TCP connect.
    Tcp,
    /// An HTTP request expecting 2xx.
    Http,
    /// A type this version does not know, as Fly spelled it (always drift against a manifest).
    Other(String),
}

/// A Fly check: a service check or a top-level check. Durations keep their value, not their
/// spelling: `15s` and `15000ms` are the same [`DurationStr`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Check {
    /// `tcp` or `http`.
    pub kind: CheckKind,
    /// Port probed; `None`: for a service check, the service's internal port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// HTTP path; `None`: not said (`/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// HTTP method; `None`: not said (`GET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// How often Fly runs it; `None`: Fly's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<DurationStr>,
    /// How long one run may take; `None`: Fly's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
    /// How long after a start failures do not count; `None`: Fly's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period: Option<DurationStr>,
}

/// How Fly stops a machine (config `stop_config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stop {
    /// Signal name (`SIGINT`) or number as Fly has it; `None`: [`DEFAULT_STOP_SIGNAL`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Grace before SIGKILL; `None`: [`DEFAULT_STOP_TIMEOUT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationStr>,
}

/// What the manifest asks of the config of a machine in process group `group`, as flyctl's
/// `ToMachineConfig` would build it (NOTES.md §7.2): the services that apply to the group
/// (those naming it in `processes`, and those naming no group), in manifest order, their
/// checks; every top-level check (they name no group); `stop_config` from `spec.stop`.
/// Values are as written; compare them only after [`ServiceConfig::normalized`].
pub fn desired(app: &FlyApp, group: &str) -> ServiceConfig {
    let spec = &app.spec;
    let services = spec
        .services
        .iter()
        .filter(|s| s.processes.is_empty() || s.processes.iter().any(|p| p == group))
        .map(|s| Service {
            internal_port: s.internal_port,
            protocol: s.protocol.clone(),
            ports: s
                .ports
                .iter()
                .map(|p| Port {
                    port: p.port,
                    end_port: None,
                    handlers: p.handlers.clone(),
                    force_https: p.force_https,
                })
                .collect(),
            concurrency: s.concurrency.as_ref().map(|c| Concurrency {
                kind: c.kind.clone(),
                soft_limit: Some(c.soft_limit),
                hard_limit: Some(c.hard_limit),
            }),
            checks: s.checks.iter().map(check_from_manifest).collect(),
        })
        .collect();
    ServiceConfig {
        services,
        checks: spec
            .checks
            .iter()
            .map(|(name, c)| (name.clone(), check_from_manifest(c)))
            .collect(),
        stop: spec.stop.as_ref().map(|s| Stop {
            signal: s.signal.clone(),
            timeout: s.timeout,
        }),
    }
}

fn check_from_manifest(c: &flyapp::Check) -> Check {
    Check {
        kind: match c.kind {
            ManifestCheckKind::Tcp => CheckKind::Tcp,
            ManifestCheckKind::Http => CheckKind::Http,
        },
        port: c.port,
        path: c.path.clone(),
        method: c.method.clone(),
        interval: c.interval,
        timeout: c.timeout,
        grace_period: c.grace_period,
    }
}

impl ServiceConfig {
    /// The canonical form both sides take before they are compared, so that only differences
    /// Fly acts on are drift (case BUG-25). Rules (each also in docs/manifests.md):
    ///
    /// - absent == Fly's default: protocol `tcp`; concurrency type `connections`; an http
    ///   check's method `GET` and path `/`; a service check's port is the service's internal
    ///   port; `stop_config` absent, or its signal or timeout absent, is `SIGINT` / `5s`;
    /// - spelling: protocol, handlers and concurrency type lower case; HTTP method upper case;
    ///   signals as `SIG` names (`INT`, `sigint`, `2` → `SIGINT`); durations by value;
    /// - empty == absent: an empty path, method or signal;
    /// - what Fly ignores is dropped: a tcp check's path and method;
    /// - order that Fly does not act on is sorted: services, ports (by port), a port's handlers
    ///   (a set: flyctl itself writes `[http, tls]` for `http_service` and `[tls, http]` in
    ///   `[[services]]` templates), and a service's checks (their order only changes Fly's
    ///   generated `servicecheck-NN` names).
    ///
    /// Idempotent: normalising a normalised value changes nothing.
    pub fn normalized(&self) -> ServiceConfig {
        let mut services: Vec<Service> = self.services.iter().map(Service::normalized).collect();
        services.sort();
        ServiceConfig {
            services,
            checks: self
                .checks
                .iter()
                .map(|(name, c)| (name.clone(), c.normalized(None)))
                .collect(),
            stop: Some(
                self.stop
                    .as_ref()
                    .map_or_else(Stop::fly_default, Stop::normalized),
            ),
        }
    }
}

impl Service {
    fn normalized(&self) -> Service {
        let mut ports: Vec<Port> = self.ports.iter().map(Port::normalized).collect();
        ports.sort();
        let mut checks: Vec<Check> = self
            .checks
            .iter()
            .map(|c| c.normalized(Some(self.internal_port)))
            .collect();
        checks.sort();
        Service {
            internal_port: self.internal_port,
            protocol: lower_or(&self.protocol, "tcp"),
            ports,
            concurrency: self.concurrency.as_ref().map(|c| Concurrency {
                kind: lower_or(&c.kind, DEFAULT_CONCURRENCY_TYPE),
                soft_limit: c.soft_limit,
                hard_limit: c.hard_limit,
            }),
            checks,
        }
    }

    /// `8080/tcp`: how a service is named in summaries.
    pub fn label(&self) -> String {
        let protocol = if self.protocol.is_empty() {
            "tcp"
        } else {
            &self.protocol
        };
        format!("{}/{protocol}", self.internal_port)
    }
}

impl Port {
    fn normalized(&self) -> Port {
        let mut handlers: Vec<String> = self
            .handlers
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        handlers.sort();
        handlers.dedup();
        Port {
            port: self.port,
            end_port: self.end_port.filter(|end| *end != self.port),
            handlers,
            force_https: self.force_https,
        }
    }
}

impl Check {
    /// `service_port`: the internal port of the service this check belongs to, `None` for a
    /// top-level check.
    fn normalized(&self, service_port: Option<u16>) -> Check {
        let kind = match &self.kind {
            CheckKind::Other(s) => match s.trim().to_ascii_lowercase().as_str() {
                "tcp" => CheckKind::Tcp,
                "http" => CheckKind::Http,
                other => CheckKind::Other(other.to_owned()),
            },
            k => k.clone(),
        };
        let (path, method) = match kind {
            CheckKind::Http => (
                Some(non_empty(self.path.as_deref()).unwrap_or("/").to_owned()),
                Some(
                    non_empty(self.method.as_deref())
                        .unwrap_or("GET")
                        .to_ascii_uppercase(),
                ),
            ),
            CheckKind::Tcp => (None, None),
            CheckKind::Other(_) => (
                non_empty(self.path.as_deref()).map(str::to_owned),
                non_empty(self.method.as_deref()).map(str::to_ascii_uppercase),
            ),
        };
        Check {
            kind,
            port: self.port.or(service_port),
            path,
            method,
            interval: self.interval,
            timeout: self.timeout,
            grace_period: self.grace_period,
        }
    }
}

impl Stop {
    /// Fly's stop settings when a config says nothing.
    pub fn fly_default() -> Stop {
        Stop {
            signal: Some(DEFAULT_STOP_SIGNAL.to_owned()),
            timeout: Some(DurationStr(DEFAULT_STOP_TIMEOUT)),
        }
    }

    fn normalized(&self) -> Stop {
        Stop {
            signal: Some(
                non_empty(self.signal.as_deref())
                    .map_or_else(|| DEFAULT_STOP_SIGNAL.to_owned(), signal_name),
            ),
            timeout: Some(self.timeout.unwrap_or(DurationStr(DEFAULT_STOP_TIMEOUT))),
        }
    }
}

/// `INT`, `sigint`, `2` → `SIGINT`. Numbers are Linux's (signal(7)); an unknown number stays
/// as written.
fn signal_name(s: &str) -> String {
    let s = s.trim();
    if let Ok(n) = s.parse::<u32>() {
        let name = match n {
            1 => "SIGHUP",
            2 => "SIGINT",
            3 => "SIGQUIT",
            6 => "SIGABRT",
            9 => "SIGKILL",
            10 => "SIGUSR1",
            12 => "SIGUSR2",
            15 => "SIGTERM",
            _ => return s.to_owned(),
        };
        return name.to_owned();
    }
    let upper = s.to_ascii_uppercase();
    if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    }
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn lower_or(s: &str, default: &str) -> String {
    match s.trim() {
        "" => default.to_owned(),
        s => s.to_ascii_lowercase(),
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckKind::Tcp => f.write_str("tcp"),
            CheckKind::Http => f.write_str("http"),
            CheckKind::Other(s) => f.write_str(s),
        }
    }
}

/// `http GET /readyz :4000 every 15s, timeout 5s, grace 1s`; absent parts are left out.
impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(m) = &self.method {
            write!(f, " {m}")?;
        }
        if let Some(p) = &self.path {
            write!(f, " {p}")?;
        }
        if let Some(p) = self.port {
            write!(f, " :{p}")?;
        }
        let timing: Vec<String> = [
            self.interval.map(|d| format!("every {d}")),
            self.timeout.map(|d| format!("timeout {d}")),
            self.grace_period.map(|d| format!("grace {d}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !timing.is_empty() {
            write!(f, " {}", timing.join(", "))?;
        }
        Ok(())
    }
}

/// `SIGINT, 5s`; absent parts are shown as Fly's defaults in brackets.
impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.signal {
            Some(s) => write!(f, "{s}")?,
            None => write!(f, "({DEFAULT_STOP_SIGNAL})")?,
        }
        match self.timeout {
            Some(t) => write!(f, ", {t}"),
            None => write!(f, ", ({})", DurationStr(DEFAULT_STOP_TIMEOUT)),
        }
    }
}

/// `443 [http, tls]`, `80 [http] force-https`, `10000-10010`.
impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.port)?;
        if let Some(end) = self.end_port {
            write!(f, "-{end}")?;
        }
        if !self.handlers.is_empty() {
            write!(f, " [{}]", self.handlers.join(", "))?;
        }
        if self.force_https {
            f.write_str(" force-https")?;
        }
        Ok(())
    }
}

/// `connections 20/25` (soft/hard; `-` for a limit not said).
impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = |l: Option<u32>| l.map_or_else(|| "-".to_owned(), |l| l.to_string());
        write!(
            f,
            "{} {}/{}",
            self.kind,
            limit(self.soft_limit),
            limit(self.hard_limit)
        )
    }
}

/// What differs between two normalised service lists, for people: `8080/tcp: internal port
/// 8080 → 9090; port 443 handlers [http, tls] → [tls]`. Empty when they are equal.
pub fn describe_services(from: &[Service], to: &[Service]) -> String {
    if from.len() != to.len() {
        let labels = |s: &[Service]| {
            let l: Vec<String> = s.iter().map(Service::label).collect();
            format!("[{}]", l.join(", "))
        };
        return format!("services {} → {}", labels(from), labels(to));
    }
    let mut parts = Vec::new();
    for (a, b) in from.iter().zip(to) {
        let items = service_delta(a, b);
        if !items.is_empty() {
            parts.push(format!("{}: {}", a.label(), items.join("; ")));
        }
    }
    parts.join(" | ")
}

fn service_delta(a: &Service, b: &Service) -> Vec<String> {
    let mut out = Vec::new();
    if a.internal_port != b.internal_port {
        out.push(format!(
            "internal port {} → {}",
            a.internal_port, b.internal_port
        ));
    }
    if a.protocol != b.protocol {
        out.push(format!("protocol {} → {}", a.protocol, b.protocol));
    }
    let key = |p: &Port| (p.port, p.end_port);
    for p in &a.ports {
        match b.ports.iter().find(|q| key(q) == key(p)) {
            None => out.push(format!("-port {p}")),
            Some(q) if q != p => out.push(format!("port {p} → {q}")),
            Some(_) => {}
        }
    }
    for q in &b.ports {
        if !a.ports.iter().any(|p| key(p) == key(q)) {
            out.push(format!("+port {q}"));
        }
    }
    if a.concurrency != b.concurrency {
        let show = |c: &Option<Concurrency>| {
            c.as_ref()
                .map_or_else(|| "(Fly's default)".to_owned(), ToString::to_string)
        };
        out.push(format!(
            "concurrency {} → {}",
            show(&a.concurrency),
            show(&b.concurrency)
        ));
    }
    if a.checks != b.checks {
        if a.checks.len() == b.checks.len() {
            for (x, y) in a.checks.iter().zip(&b.checks) {
                if x != y {
                    out.push(format!("check {x}: {}", describe_check(Some(x), Some(y))));
                }
            }
        } else {
            let list = |c: &[Check]| {
                let l: Vec<String> = c.iter().map(ToString::to_string).collect();
                format!("[{}]", l.join("; "))
            };
            out.push(format!("checks {} → {}", list(&a.checks), list(&b.checks)));
        }
    }
    out
}

/// What differs between two normalised checks, for people: `timeout 5s → 2s, path /readyz →
/// /healthz`; `(none) → http GET / :4000` when one side has none.
pub fn describe_check(from: Option<&Check>, to: Option<&Check>) -> String {
    let (a, b) = match (from, to) {
        (Some(a), Some(b)) => (a, b),
        (a, b) => {
            let show = |c: Option<&Check>| c.map_or_else(|| "(none)".to_owned(), |c| c.to_string());
            return format!("{} → {}", show(a), show(b));
        }
    };
    let opt = |v: Option<String>| v.unwrap_or_else(|| "(default)".to_owned());
    let fields = [
        ("type", Some(a.kind.to_string()), Some(b.kind.to_string())),
        (
            "port",
            a.port.map(|p| p.to_string()),
            b.port.map(|p| p.to_string()),
        ),
        ("path", a.path.clone(), b.path.clone()),
        ("method", a.method.clone(), b.method.clone()),
        (
            "interval",
            a.interval.map(|d| d.to_string()),
            b.interval.map(|d| d.to_string()),
        ),
        (
            "timeout",
            a.timeout.map(|d| d.to_string()),
            b.timeout.map(|d| d.to_string()),
        ),
        (
            "grace",
            a.grace_period.map(|d| d.to_string()),
            b.grace_period.map(|d| d.to_string()),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, x, y)| x != y)
        .map(|(name, x, y)| format!("{name} {} → {}", opt(x), opt(y)))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
