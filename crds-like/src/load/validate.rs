//! Rules a `FlyApp` must follow beyond its types (DESIGN.md §3), checked after it was read
//! without errors. Every rule runs and every problem is reported, located at the field it
//! concerns (found again in the document's [`Node`] tree), with what was expected.
//!
//! Errors make the manifest set invalid; warnings do not. Rules that span manifests (duplicate
//! names) live in [`crate::load`], which sees the whole set. Facts about Fly come from
//! `../shared/fly-api/NOTES.md` (reserved `FLY_` variables, presets, check rules) and from
//! flyctl's behaviour as summarised there; image references follow distribution/reference
//! ([`crate::image_ref`]), region codes [`crate::regions`], and environment variable names
//! POSIX's portable names (XBD 8.1).

use std::path::Path;

use super::path::{FieldPath, Seg, locate};
use super::tree::Node;
use crate::flyapp::{
    Check, CheckKind, FlyAppSpec, MachineChecksRule, MaxUnavailable, VM_PRESETS, is_env_var_name,
    is_vm_preset,
};
use crate::image_ref::ImageRef;
use crate::load::{Diagnostic, Metadata};
use crate::regions::{FLY_REGIONS, is_known_region, near_regions};

/// Collects located problems for one document.
pub(crate) struct Checker<'a> {
    file: &'a Path,
    root: &'a Node,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// Where a problem points: at the value of a field, or at its key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum At {
    Value,
    Key,
}

impl<'a> Checker<'a> {
    pub fn new(file: &'a Path, root: &'a Node) -> Self {
        Checker {
            file,
            root,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn diag(&self, path: &FieldPath, at: At, message: String, help: Option<String>) -> Diagnostic {
        let (node, key_pos) = locate(self.root, path);
        let pos = if at == At::Key { key_pos } else { node.pos };
        Diagnostic {
            file: self.file.to_path_buf(),
            line: pos.line,
            column: pos.column,
            field: path.to_field(),
            message,
            help,
        }
    }

    pub(crate) fn error(&mut self, path: &FieldPath, message: String, help: Option<String>) {
        let d = self.diag(path, At::Value, message, help);
        self.errors.push(d);
    }

    pub(crate) fn key_error(&mut self, path: &FieldPath, message: String, help: Option<String>) {
        let d = self.diag(path, At::Key, message, help);
        self.errors.push(d);
    }

    pub(crate) fn warn(&mut self, path: &FieldPath, message: String, help: Option<String>) {
        let d = self.diag(path, At::Value, message, help);
        self.warnings.push(d);
    }

    pub(crate) fn key_warn(&mut self, path: &FieldPath, message: String, help: Option<String>) {
        let d = self.diag(path, At::Key, message, help);
        self.warnings.push(d);
    }

    /// Whether the manifest spells out the field at `path` (rather than taking its default).
    pub(crate) fn is_written(&self, path: &FieldPath) -> bool {
        let mut node = self.root;
        for seg in &path.0 {
            let next = match seg {
                Seg::Key(k) => node.get(k).map(|e| &e.value),
                Seg::Index(_) => None,
            };
            match next {
                Some(n) => node = n,
                None => return false,
            }
        }
        true
    }
}

/// The field path of `keys` (`["spec", "deploy"]` → `spec.deploy`).
pub(crate) fn path(keys: &[&str]) -> FieldPath {
    keys.iter().fold(FieldPath::default(), |p, k| p.key(k))
}

/// `metadata`: the name is a DNS-style name (lowercase letters, digits, `-`, `.`), as in
/// Kubernetes, so it can appear in record ids, labels and URLs unchanged.
pub(crate) fn metadata(c: &mut Checker<'_>, meta: &Metadata) {
    let name = &meta.name;
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-' || ch == '.')
        && name.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        && name.ends_with(|ch: char| ch.is_ascii_alphanumeric());
    if !ok {
        c.error(
            &path(&["metadata", "name"]),
            format!("`{name}` is not a valid name: use lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit"),
            None,
        );
    }
}

/// Every rule on one `FlyApp` spec.
pub(crate) fn flyapp(c: &mut Checker<'_>, meta: &Metadata, spec: &FlyAppSpec) {
    let spec_path = path(&["spec"]);
    app_name(c, meta, spec);
    image(c, &spec.image);

    if spec.process_groups.is_empty() {
        c.error(
            &spec_path.key("processGroups"),
            "no process groups: declare at least one".to_owned(),
            Some("e.g. processGroups: {app: {regions: {iad: 2}}}".to_owned()),
        );
    }
    for (name, group) in &spec.process_groups {
        let gp = spec_path.key("processGroups").key(name);
        if group.regions.is_empty() {
            c.error(
                &gp.key("regions"),
                format!("process group `{name}` has no regions: give at least one region and its machine count"),
                Some("e.g. regions: {iad: 2}".to_owned()),
            );
        }
        for region in group.regions.keys() {
            region_code(c, &gp.key("regions").key(region), region);
        }
        if let Some(vm) = &group.vm {
            if !is_vm_preset(&vm.size) {
                c.error(
                    &gp.key("vm").key("size"),
                    format!(
                        "`{}` is not a Fly machine size: expected one of {}",
                        vm.size,
                        VM_PRESETS.join(", ")
                    ),
                    None,
                );
            }
            if let Some(mb) = vm.memory_mb
                && (mb == 0 || mb % 256 != 0)
            {
                let up = mb.div_ceil(256).max(1) * 256;
                c.error(
                        &gp.key("vm").key("memoryMb"),
                        format!("memoryMb {mb} is not a positive multiple of 256: Fly allocates memory in 256 MB steps"),
                        Some(format!("write {up}")),
                    );
            }
        }
        if group
            .command
            .as_deref()
            .is_some_and(|cmd| cmd.trim().is_empty())
        {
            c.error(
                &gp.key("command"),
                "command is empty: remove it to run the image's default".to_owned(),
                None,
            );
        }
    }

    if let Some(primary) = &spec.primary_region
        && !spec
            .process_groups
            .values()
            .any(|g| g.regions.contains_key(primary))
    {
        c.warn(
            &spec_path.key("primaryRegion"),
            format!("primary region `{primary}` has no machines in any process group"),
            Some("add it to a group's regions, or change primaryRegion".to_owned()),
        );
    }

    for key in spec.env.keys() {
        let kp = spec_path.key("env").key(key);
        if key.is_empty() {
            c.key_error(&kp, "empty environment variable name".to_owned(), None);
        } else if !is_env_var_name(key) {
            c.key_error(
                &kp,
                format!("`{key}` is not a portable environment variable name: expected a letter or `_`, then letters, digits and `_` (POSIX portable names, [A-Za-z_][A-Za-z0-9_]*)"),
                Some(format!("e.g. `{}`", portable_env_name(key))),
            );
        } else if key.starts_with("FLY_") {
            c.key_error(
                &kp,
                format!("`{key}`: Fly reserves environment variables starting with FLY_ and sets them itself"),
                Some("rename the variable".to_owned()),
            );
        }
    }

    deploy(c, spec);
    services(c, spec);
    for (name, check) in &spec.checks {
        let cp = spec_path.key("checks").key(name);
        if check.port.is_none() {
            c.error(
                &cp,
                format!("machine check `{name}` has no port: a top-level check must name the port it probes"),
                Some("add port: <the port your app listens on>".to_owned()),
            );
        }
        check_fields(c, &cp, check);
    }
    health(c, spec);
}

fn app_name(c: &mut Checker<'_>, meta: &Metadata, spec: &FlyAppSpec) {
    let name = spec.app_name(&meta.name);
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !ok {
        let field = if spec.app.is_some() {
            path(&["spec", "app"])
        } else {
            path(&["metadata", "name"])
        };
        c.error(
            &field,
            format!("`{name}` is not a valid Fly app name: use lowercase letters, digits and `-` (at most 63)"),
            spec.app.is_none().then(|| "set spec.app to the Fly app name".to_owned()),
        );
    }
}

/// `spec.image`: a reference by the distribution/reference grammar ([`crate::image_ref`]),
/// pinned by a tag or a digest; `:latest` is a warning.
fn image(c: &mut Checker<'_>, image: &str) {
    let ip = path(&["spec", "image"]);
    if image.trim().is_empty() {
        c.error(
            &ip,
            "image is empty: expected a full reference like registry.fly.io/APP:TAG".to_owned(),
            None,
        );
        return;
    }
    if image.chars().any(char::is_whitespace) {
        c.error(&ip, format!("image `{image}` contains whitespace"), None);
        return;
    }
    let parsed = match ImageRef::parse(image) {
        Ok(parsed) => parsed,
        Err(e) => {
            c.error(
                &ip,
                format!("not a valid image reference: {e}; expected [HOST[:PORT]/]REPOSITORY[:TAG][@sha256:DIGEST], like registry.fly.io/APP:deployment-ID"),
                e.help(),
            );
            return;
        }
    };
    let name = match parsed.host {
        Some(host) => format!("{host}/{}", parsed.repository),
        None => parsed.repository.to_owned(),
    };
    match (parsed.tag, parsed.digest) {
        (None, None) => c.error(
            &ip,
            format!("image `{image}` has no tag or digest: a deploy must name exactly what it runs"),
            Some(format!("pin it, e.g. {image}:deployment-<id> or {image}@sha256:<digest>")),
        ),
        (Some("latest"), None) => c.warn(
            &ip,
            format!("image `{image}` uses the mutable tag `latest`: a mutable tag makes rollbacks and drift detection unreliable, since the same name can mean another image tomorrow"),
            Some(format!("pin a deployment tag or digest, e.g. {name}:deployment-<id> or {name}@sha256:<digest>")),
        ),
        _ => {}
    }
}

/// A region key: three lowercase letters (an error otherwise), and one of Fly's known regions
/// (a warning otherwise: see [`crate::regions`] for why).
fn region_code(c: &mut Checker<'_>, rp: &FieldPath, region: &str) {
    if !(region.len() == 3 && region.chars().all(|ch| ch.is_ascii_lowercase())) {
        c.key_error(
            rp,
            format!("`{region}` is not a Fly region code: expected three lowercase letters, like `iad` or `ord`"),
            None,
        );
    } else if !is_known_region(region) {
        let near = near_regions(region);
        let help = if near.is_empty() {
            "check `fly platform regions` for Fly's regions today; if it lists this code, opsctl's list is out of date".to_owned()
        } else {
            let near: Vec<String> = near.iter().map(|r| format!("`{r}`")).collect();
            format!(
                "did you mean {}? `fly platform regions` lists Fly's regions today",
                near.join(" or ")
            )
        };
        c.key_warn(
            rp,
            format!("unknown Fly region `{region}`: not one of Fly's public regions known to opsctl ({})", FLY_REGIONS.join(" ")),
            Some(help),
        );
    }
}

/// `name` made portable: invalid characters become `_`, and a leading digit gets a `_`.
fn portable_env_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A field naming an environment variable (`databaseUrlEnv`, `urlEnv`): a portable name.
fn env_var_ref(c: &mut Checker<'_>, fp: &FieldPath, name: &str) {
    if !is_env_var_name(name) {
        c.error(
            fp,
            format!("`{name}` is not a portable environment variable name: expected a letter or `_`, then letters, digits and `_`"),
            Some(format!("e.g. `{}`", portable_env_name(name))),
        );
    }
}

fn deploy(c: &mut Checker<'_>, spec: &FlyAppSpec) {
    let dp = path(&["spec", "deploy"]);
    match spec.deploy.max_unavailable {
        MaxUnavailable::Count(0) => c.error(
            &dp.key("maxUnavailable"),
            "maxUnavailable 0 would never let a rollout replace a machine: expected a count like 1 or a fraction like 0.33".to_owned(),
            Some("write 1".to_owned()),
        ),
        MaxUnavailable::Fraction(f) if !(f > 0.0 && f < 1.0) => c.error(
            &dp.key("maxUnavailable"),
            format!("maxUnavailable {f} is not a fraction strictly between 0 and 1: expected a count like 1 or a fraction like 0.33"),
            Some("write 1 for one machine at a time, or a fraction such as 0.33".to_owned()),
        ),
        _ => {}
    }
    let (wait, fail_after) = (spec.deploy.wait_timeout, spec.deploy.fail_after);
    if wait.get().is_zero() {
        c.error(
            &dp.key("waitTimeout"),
            "waitTimeout is zero: no machine could ever become healthy in time".to_owned(),
            None,
        );
    } else if fail_after >= wait {
        // Point at whichever of the two the manifest wrote: failAfter, else waitTimeout.
        let (field, fail_note) = if c.is_written(&dp.key("failAfter")) {
            (dp.key("failAfter"), "")
        } else {
            (dp.key("waitTimeout"), " (the default)")
        };
        c.error(
            &field,
            format!("failAfter {fail_after}{fail_note} is not shorter than waitTimeout {wait}: the wait would time out before a critical check could ever fail the step"),
            Some(format!("make failAfter shorter than waitTimeout, e.g. failAfter: 30s with waitTimeout: {wait}, or lengthen waitTimeout")),
        );
    }
    if let Some(oban) = spec.deploy.drain.as_ref().and_then(|d| d.oban.as_ref()) {
        let op = dp.key("drain").key("oban");
        env_var_ref(c, &op.key("databaseUrlEnv"), &oban.database_url_env);
        if oban.queues.is_empty() {
            c.error(
                &op.key("queues"),
                "no queues to drain: name at least one".to_owned(),
                None,
            );
        }
    }
    if spec
        .deploy
        .release_command
        .as_deref()
        .is_some_and(|cmd| cmd.trim().is_empty())
    {
        c.error(
            &dp.key("releaseCommand"),
            "releaseCommand is empty: remove it or name the command".to_owned(),
            None,
        );
    }
}

/// Signals Fly accepts for `kill_signal` / `stop_config.signal` (Fly docs, "fly.toml
/// configuration": kill_signal), with or without the `SIG` prefix.
const STOP_SIGNALS: [&str; 7] = [
    "SIGINT", "SIGTERM", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGKILL", "SIGSTOP",
];

fn stop_signal(c: &mut Checker<'_>, spec: &FlyAppSpec) {
    let Some(signal) = spec.stop.as_ref().and_then(|s| s.signal.as_deref()) else {
        return;
    };
    let upper = signal.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    if !STOP_SIGNALS.contains(&full.as_str()) {
        c.error(
            &path(&["spec", "stop", "signal"]),
            format!(
                "unknown stop signal `{signal}`: expected one of {}",
                STOP_SIGNALS.join(", ")
            ),
            Some("Fly sends this signal to stop a machine; SIGINT is its default".to_owned()),
        );
    }
}

fn services(c: &mut Checker<'_>, spec: &FlyAppSpec) {
    stop_signal(c, spec);
    for (i, svc) in spec.services.iter().enumerate() {
        let sp = path(&["spec", "services"]).index(i);
        if !matches!(svc.protocol.as_str(), "tcp" | "udp") {
            c.error(
                &sp.key("protocol"),
                format!(
                    "unknown protocol `{}`: expected `tcp` or `udp`",
                    svc.protocol
                ),
                None,
            );
        }
        if svc.internal_port == 0 {
            c.error(
                &sp.key("internalPort"),
                "internalPort 0: expected the port the app listens on".to_owned(),
                None,
            );
        }
        for (j, group) in svc.processes.iter().enumerate() {
            if !spec.process_groups.contains_key(group) {
                let groups: Vec<&str> = spec.process_groups.keys().map(String::as_str).collect();
                c.error(
                    &sp.key("processes").index(j),
                    format!("process group `{group}` is not declared in spec.processGroups (declared: {})", groups.join(", ")),
                    None,
                );
            }
        }
        for (j, port) in svc.ports.iter().enumerate() {
            if port.port == 0 {
                c.error(
                    &sp.key("ports").index(j).key("port"),
                    "port 0: expected a public port like 80 or 443".to_owned(),
                    None,
                );
            }
        }
        if let Some(conc) = &svc.concurrency {
            let cp = sp.key("concurrency");
            if !matches!(conc.kind.as_str(), "connections" | "requests") {
                c.error(
                    &cp.key("type"),
                    format!(
                        "unknown concurrency type `{}`: expected `connections` or `requests`",
                        conc.kind
                    ),
                    None,
                );
            }
            if conc.soft_limit > conc.hard_limit {
                c.error(
                    &cp.key("softLimit"),
                    format!("softLimit {} is above hardLimit {}: Fly Proxy would stop sending before it prefers other machines", conc.soft_limit, conc.hard_limit),
                    None,
                );
            }
        }
        for (j, check) in svc.checks.iter().enumerate() {
            check_fields(c, &sp.key("checks").index(j), check);
        }
    }
}

fn check_fields(c: &mut Checker<'_>, cp: &FieldPath, check: &Check) {
    if check.kind == CheckKind::Tcp && (check.path.is_some() || check.method.is_some()) {
        c.warn(
            cp,
            "a tcp check ignores path and method".to_owned(),
            Some("remove them, or use type: http".to_owned()),
        );
    }
    if check.kind == CheckKind::Http && check.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
        c.error(
            &cp.key("path"),
            "an http check path must start with `/`".to_owned(),
            None,
        );
    }
    if let (Some(interval), Some(timeout)) = (check.interval, check.timeout)
        && timeout > interval
    {
        c.warn(
            &cp.key("timeout"),
            format!("timeout {timeout} is longer than interval {interval}: runs will overlap"),
            None,
        );
    }
}

fn health(c: &mut Checker<'_>, spec: &FlyAppSpec) {
    let hp = path(&["spec", "health"]);
    let checks = spec.checks.len() + spec.services.iter().map(|s| s.checks.len()).sum::<usize>();
    match spec.health.machine_checks {
        MachineChecksRule::AllPassing if checks == 0 => c.error(
            &hp.key("machineChecks"),
            "machineChecks is all-passing, but the app declares no checks: a machine with no checks never counts as healthy, so no rollout could succeed".to_owned(),
            Some("add a check under spec.checks or a service's checks, or set health.machineChecks: ignore and rely on probes".to_owned()),
        ),
        MachineChecksRule::Ignore if spec.health.probes.is_empty() => c.warn(
            &hp.key("machineChecks"),
            "machine checks are ignored and there are no probes: nothing tells whether a release is healthy, so a bad release is never rolled back".to_owned(),
            Some("add a probe under spec.health.probes".to_owned()),
        ),
        _ => {}
    }
    for (i, probe) in spec.health.probes.iter().enumerate() {
        let pp = hp.key("probes").index(i).key("http");
        let url = &probe.http.url;
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        if rest.is_none_or(|r| r.is_empty() || r.starts_with('/')) {
            c.error(
                &pp.key("url"),
                format!("`{url}` is not an absolute http(s) URL"),
                Some("e.g. https://APP.fly.dev/".to_owned()),
            );
        }
        if !(100..=599).contains(&probe.http.expect_status) {
            c.error(
                &pp.key("expectStatus"),
                format!(
                    "{} is not an HTTP status: expected 100 to 599",
                    probe.http.expect_status
                ),
                None,
            );
        }
        if probe.http.timeout.get().is_zero() {
            c.error(&pp.key("timeout"), "timeout is zero".to_owned(), None);
        }
    }
    if let Some(deps) = &spec.health.dependencies {
        let dp = hp.key("dependencies");
        if let Some(redis) = &deps.redis {
            env_var_ref(c, &dp.key("redis").key("urlEnv"), &redis.url_env);
        }
        if let Some(pg) = &deps.postgres {
            env_var_ref(c, &dp.key("postgres").key("urlEnv"), &pg.url_env);
        }
        if let Some(oban) = &deps.oban {
            env_var_ref(
                c,
                &dp.key("oban").key("databaseUrlEnv"),
                &oban.database_url_env,
            );
        }
        if let Some(pg) = &deps.postgres
            && !(1..=100).contains(&pg.max_connections_percent)
        {
            c.error(
                &dp.key("postgres").key("maxConnectionsPercent"),
                format!(
                    "{} is not a percentage from 1 to 100",
                    pg.max_connections_percent
                ),
                None,
            );
        }
        if deps.oban.as_ref().is_some_and(|o| o.queues.is_empty()) {
            c.error(
                &dp.key("oban").key("queues"),
                "no queues: name at least one Oban queue".to_owned(),
                None,
            );
        }
    }
}
