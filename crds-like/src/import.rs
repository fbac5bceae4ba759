//! `fly.toml` → `FlyApp` import (`opsctl import fly-toml FILE`, DESIGN.md §3).
//!
//! Reads both the current layout and the legacy Nomad-era one (NOTES.md §7), and carries what a
//! `FlyApp` can hold: app, primary region, stop signal and timeout, env, services and
//! `[http_service]`, their checks, top-level `[checks]`, `[processes]` as process groups,
//! `[[vm]]` sizes, and `[deploy]` settings. Every key it cannot carry becomes a warning naming
//! its dotted path and why; nothing is dropped silently. Bad input (invalid TOML, wrong types,
//! values Fly would refuse) is an [`ImportError`] with line and column.
//!
//! Two things fly.toml does not say, so the import fills them in and says so:
//! - the image (built by `fly deploy`): `[build] image` if present, else the `image` argument,
//!   else `registry.fly.io/APP:latest` with a warning;
//! - machine counts: each group gets `{PRIMARY_REGION: 2}` when it serves traffic, else 1
//!   (flyctl's high-availability default), with a warning.
//!
//! The output is a manifest value and its YAML text, which [`crate::load::load_str`] accepts;
//! the import checks that itself before returning. It makes no decisions and performs no I/O.

mod reader;
mod sections;
mod vm;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Serialize;

use crate::API_VERSION;
use crate::flyapp::{
    Check, FlyAppSpec, HealthSpec, MachineChecksRule, ProcessGroup, StopConfig, VmSpec,
};
use crate::load::{Diagnostic, FlyApp, Metadata, load_str};
use reader::{BareNumber, Cx, Field, TKind};

/// A successful import.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// The manifest: `metadata.name` is the fly.toml `app`; `file` is the fly.toml's path.
    pub manifest: FlyApp,
    /// The same manifest as a complete YAML document (`apiVersion`, `kind`, `metadata`,
    /// `spec`), with the warnings as comments at the top. [`load_str`] accepts it.
    pub yaml: String,
    /// Everything a person should review, in source order: each key not carried (`path: why;
    /// dropped`), each value converted, each default filled in.
    pub warnings: Vec<String>,
}

/// The fly.toml could not be imported. Every problem found is listed, with the line and
/// column in the fly.toml and the dotted key path as `field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ImportError {
    /// Every problem, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// Warnings found before giving up, as in [`Imported::warnings`].
    pub warnings: Vec<String>,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot import fly.toml: {} problem(s)",
            self.diagnostics.len()
        )?;
        for d in &self.diagnostics {
            write!(f, "\n{d}")?;
        }
        Ok(())
    }
}

/// Import the fly.toml `text` read from `path` (used in messages and as the manifest's
/// `file`). `image`, when given, is the image to deploy (fly.toml usually has none); it wins
/// over `[build] image`.
///
/// # Errors
/// [`ImportError`] when the TOML is invalid, a value has the wrong type or a value Fly
/// would refuse (an unknown strategy, a size that is not a preset, memory not in 256 MB
/// steps, …), when `app` is missing, or when a service names a process group that does not
/// exist. Every problem is reported, located.
///
/// # Example
/// ```
/// use std::path::Path;
/// let toml = r#"
/// app = "web"
/// primary_region = "ord"
/// [http_service]
///   internal_port = 3000
///   [[http_service.checks]]
///     path = "/healthz"
///     interval = "10s"
/// "#;
/// let imported = opsctl_crds::import::import_fly_toml(Path::new("fly.toml"), toml, Some("registry.fly.io/web:v1")).unwrap();
/// assert_eq!(imported.manifest.spec.services[0].internal_port, 3000);
/// assert_eq!(imported.manifest.spec.process_groups["app"].regions["ord"], 2);
/// assert!(opsctl_crds::load_str(Path::new("web.yaml"), &imported.yaml).is_ok());
/// ```
pub fn import_fly_toml(
    path: &Path,
    text: &str,
    image: Option<&str>,
) -> Result<Imported, ImportError> {
    let Conversion { app, cx } = convert(path, text, image);
    let warnings = warnings(&cx);
    let mut errors = cx.errors;
    errors.sort_by_key(|d| (d.line, d.column));
    let Some(manifest) = app.filter(|_| errors.is_empty()) else {
        return Err(ImportError {
            diagnostics: errors,
            warnings,
        });
    };
    let yaml = match to_yaml(path, &manifest, &warnings) {
        Ok(yaml) => yaml,
        Err(message) => return Err(internal(path, message, warnings)),
    };
    // The import's own checks should have caught anything the loader refuses; if not, say so
    // rather than hand out a manifest that `opsctl validate` would reject.
    if let Err(e) = load_str(path, &yaml) {
        let diagnostics = e
            .diagnostics
            .into_iter()
            .map(|d| Diagnostic {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                field: d.field,
                message: format!("the imported manifest would be invalid: {}", d.message),
                help: d.help,
            })
            .collect();
        return Err(ImportError {
            diagnostics,
            warnings,
        });
    }
    Ok(Imported {
        manifest,
        yaml,
        warnings,
    })
}

fn internal(path: &Path, message: String, warnings: Vec<String>) -> ImportError {
    ImportError {
        diagnostics: vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: None,
            message: format!("internal error (an opsctl bug): {message}"),
            help: None,
        }],
        warnings,
    }
}

/// The record's drops and notes as warning lines, in source order.
fn warnings(cx: &Cx<'_>) -> Vec<String> {
    let mut all: Vec<(usize, String)> = cx
        .dropped
        .iter()
        .map(|(offset, path, reason)| (*offset, format!("{path}: {reason}")))
        .chain(cx.notes.iter().cloned())
        .collect();
    all.sort_by_key(|(offset, _)| *offset);
    all.into_iter().map(|(_, w)| w).collect()
}

fn to_yaml(path: &Path, app: &FlyApp, warnings: &[String]) -> Result<String, String> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Document<'a> {
        api_version: &'a str,
        kind: &'a str,
        metadata: &'a Metadata,
        spec: &'a FlyAppSpec,
    }
    let body = serde_saphyr::to_string(&Document {
        api_version: API_VERSION,
        kind: "FlyApp",
        metadata: &app.metadata,
        spec: &app.spec,
    })
    .map_err(|e| e.to_string())?;
    let mut out = format!(
        "# FlyApp imported from {} by `opsctl import fly-toml`.\n",
        path.display()
    );
    if warnings.is_empty() {
        out.push_str("# Everything in the fly.toml was carried over.\n");
    } else {
        out.push_str("# Review before committing; the import reported:\n");
        for w in warnings {
            out.push_str(&format!("#   - {}\n", w.replace('\n', " ")));
        }
    }
    out.push_str(&body);
    Ok(out)
}

/// The import's result and its full record (what was carried, dropped, noted, refused).
pub(crate) struct Conversion<'t> {
    pub app: Option<FlyApp>,
    pub cx: Cx<'t>,
}

/// Convert, keeping the record even when there are errors (the tests walk it).
pub(crate) fn convert<'t>(path: &Path, text: &'t str, image_arg: Option<&str>) -> Conversion<'t> {
    let mut cx = Cx::new(path, text);
    let root = match reader::parse(text) {
        Ok(root) => root,
        Err(problems) => {
            for (span, message) in problems {
                cx.error_at(&span, None, format!("invalid TOML: {message}"), None);
            }
            return Conversion { app: None, cx };
        }
    };
    let Some(mut t) = Field::new(String::new(), &root).table(&mut cx) else {
        return Conversion { app: None, cx };
    };

    let app = match t.take("app") {
        Some(v) => v.str(&mut cx).filter(|name| {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                cx.error(
                    &v,
                    format!(
                        "`{name}` is not a valid Fly app name (lowercase letters, digits and -)"
                    ),
                    None,
                );
            }
            ok
        }),
        None => {
            cx.error_at(
                &(0..0),
                Some("app"),
                "fly.toml has no `app`: the manifest needs the Fly app name".to_owned(),
                Some(
                    "add app = \"NAME\" at the top (flyctl takes it from -a otherwise)".to_owned(),
                ),
            );
            None
        }
    };
    let primary_region = t.take("primary_region").and_then(|v| v.str(&mut cx));
    let signal = t.take("kill_signal").and_then(|v| v.str(&mut cx));
    let timeout = t
        .take("kill_timeout")
        .and_then(|v| v.duration(&mut cx, BareNumber::Seconds));
    let env = t
        .take("env")
        .map(|v| sections::env(&mut cx, &v))
        .unwrap_or_default();
    let build_image = t
        .take("build")
        .and_then(|v| build(&mut cx, &v, image_arg.is_some()));
    let deploy = t
        .take("deploy")
        .map(|v| sections::deploy(&mut cx, &v))
        .unwrap_or_default();
    let commands = t
        .take("processes")
        .map(|v| processes(&mut cx, &v))
        .unwrap_or_default();
    let mut vms = Vec::new();
    for key in ["vm", "compute", "computes"] {
        if let Some(v) = t.take(key) {
            for vt in v.tables(&mut cx).unwrap_or_default() {
                vms.extend(vm::vm(&mut cx, vt));
            }
        }
    }
    // Each service with the fly.toml path it came from, for locating errors about it.
    let mut services = Vec::new();
    let mut service_paths = Vec::new();
    let mut http_port = None;
    if let Some(v) = t.take("http_service")
        && let Some(s) = sections::http_service(&mut cx, &v)
    {
        http_port = Some(s.internal_port);
        services.push(s);
        service_paths.push(v.path.clone());
    }
    if let Some(v) = t.take("services") {
        for st in v.tables(&mut cx).unwrap_or_default() {
            let path = st.path.clone();
            if let Some(s) = sections::service(&mut cx, st) {
                services.push(s);
                service_paths.push(path);
            }
        }
    }
    let checks = t
        .take("checks")
        .map(|v| top_checks(&mut cx, &v, http_port))
        .unwrap_or_default();
    if let Some(mut x) = t.take("experimental").and_then(|v| v.table(&mut cx)) {
        for (key, v) in x.take_rest() {
            let empty = match &v.val.kind {
                TKind::Array(a) => a.is_empty(),
                TKind::Str(s) => s.is_empty(),
                _ => false,
            };
            let reason = match key.as_str() {
                "cmd" | "entrypoint" | "exec" if empty => "empty; ignored",
                "cmd" | "entrypoint" | "exec" => {
                    "overrides the image's command, which a FlyApp does not carry (set processGroups.GROUP.command instead); dropped"
                }
                "auto_rollback" => {
                    "a Nomad-era setting with no effect on Machines apps (opsctl rolls back by spec.health instead); dropped"
                }
                "allowed_public_ports" | "private_network" | "enable_consul" | "enable_etcd" => {
                    "a Nomad-era setting with no effect on Machines apps; dropped"
                }
                "machine_config" => "raw machine config is not carried; dropped",
                _ => "experimental setting not carried; dropped",
            };
            cx.drop(&v, reason);
        }
        x.finish(&mut cx, |_| String::new());
    }
    t.finish(&mut cx, |key| {
        match key {
            "swap_size_mb" => "a FlyApp has no swap setting; dropped",
            "console_command" => "used by `fly ssh console` only; dropped",
            "host_dedication_id" => "dedicated hosts are not managed by opsctl; dropped",
            "mounts" | "mount" => {
                "volumes are not managed by opsctl: machines it creates get no volume, so create and attach volumes by hand; dropped"
            }
            "restart" => "restart policy is not carried, so Fly's default applies; dropped",
            "metrics" => "metrics scraping settings are not carried; dropped",
            "statics" => "static file serving is not carried; dropped",
            "files" => "files written into machines are not carried; dropped",
            "machine_checks" => "machine checks (one-off check machines run by flyctl) are not carried; dropped",
            _ => "not a fly.toml key opsctl knows; dropped",
        }
        .to_owned()
    });

    let Some(app) = app else {
        return Conversion { app: None, cx };
    };
    let region = match primary_region.clone() {
        Some(r) => r,
        None => {
            cx.note(0, "no primary_region: machines are placed in iad; change processGroups.*.regions to move them".to_owned());
            "iad".to_owned()
        }
    };
    let process_groups = groups(&mut cx, commands, &vms, &services, &region);
    let all_checks = checks.len() + services.iter().map(|s| s.checks.len()).sum::<usize>();
    let mut health = HealthSpec::default();
    if all_checks == 0 {
        health.machine_checks = MachineChecksRule::Ignore;
        cx.note(0, "no checks in fly.toml: health.machineChecks set to ignore; add a check or a probe (spec.health.probes) so a bad release is noticed".to_owned());
    }
    let image = match (image_arg, build_image) {
        (Some(i), _) => i.to_owned(),
        (None, Some(i)) => i,
        (None, None) => {
            cx.note(0, format!("no image in fly.toml (fly deploy builds it): spec.image set to registry.fly.io/{app}:latest; set spec.image to the image to deploy"));
            format!("registry.fly.io/{app}:latest")
        }
    };
    for (s, path) in services.iter().zip(&service_paths) {
        let field = format!("{path}.processes");
        let offset = cx
            .carried
            .iter()
            .find(|(_, p)| *p == field)
            .map_or(0, |(o, _)| *o);
        for g in &s.processes {
            if !process_groups.contains_key(g) {
                let groups: Vec<&str> = process_groups.keys().map(String::as_str).collect();
                cx.error_at(
                    &(offset..offset),
                    Some(&field),
                    format!(
                        "process group `{g}` is not defined in this fly.toml (groups: {})",
                        groups.join(", ")
                    ),
                    Some(
                        "define it under [processes], or remove it from the service's processes"
                            .to_owned(),
                    ),
                );
            }
        }
    }
    let stop = (signal.is_some() || timeout.is_some()).then_some(StopConfig { signal, timeout });
    let spec = FlyAppSpec {
        app: None,
        org: None,
        image,
        fly_toml: None,
        primary_region,
        process_groups,
        env,
        services,
        checks,
        stop,
        deploy,
        health,
    };
    let manifest = FlyApp {
        metadata: Metadata {
            name: app,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
        },
        spec,
        file: path.to_path_buf(),
    };
    Conversion {
        app: Some(manifest),
        cx,
    }
}

/// `[build]`: only `image` is carried (and only when no image was given).
fn build(cx: &mut Cx<'_>, f: &Field<'_>, image_given: bool) -> Option<String> {
    let mut t = f.table(cx)?;
    let image = t.take("image").and_then(|v| {
        if image_given {
            cx.drop(&v, "an image was given to the import, and it wins; dropped");
            None
        } else {
            v.str(cx)
        }
    });
    t.finish(cx, |_| "build settings are not part of a FlyApp (opsctl deploys an image that is already built); dropped".to_owned());
    image
}

/// `[processes]`: group name → command. The legacy empty `processes = []` (and the GraphQL
/// artefact `[[processes]]` with empty entries) mean "no groups", as flyctl reads them.
fn processes(cx: &mut Cx<'_>, f: &Field<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match &f.val.kind {
        TKind::Array(items)
            if items
                .iter()
                .all(|i| matches!(&i.kind, TKind::Table(e) if e.is_empty())) =>
        {
            cx.drop(
                f,
                "an empty legacy process list means the default group `app`; ignored",
            );
        }
        TKind::Table(_) => {
            let Some(mut t) = f.table(cx) else { return out };
            for (name, v) in t.take_rest() {
                if let Some(cmd) = v.str(cx) {
                    out.insert(name, cmd);
                }
            }
            t.finish(cx, |_| String::new());
        }
        _ => cx.error(
            f,
            format!(
                "processes: expected a table of group = \"command\", found {}",
                f.val.type_name()
            ),
            None,
        ),
    }
    out
}

/// Top-level `[checks.NAME]`; a check without a port takes `[http_service]`'s, as flyctl does.
fn top_checks(cx: &mut Cx<'_>, f: &Field<'_>, http_port: Option<u16>) -> BTreeMap<String, Check> {
    let mut out = BTreeMap::new();
    let Some(mut t) = f.table(cx) else { return out };
    for (name, v) in t.take_rest() {
        let Some(ct) = v.table(cx) else { continue };
        let Some(mut check) = sections::check(cx, ct, None) else {
            continue;
        };
        if check.port.is_none() {
            match http_port {
                Some(p) => {
                    check.port = Some(p);
                    cx.note(v.val.span.start, format!("{}: no port; [http_service]'s internal_port {p} written out, as flyctl does", v.path));
                }
                None => {
                    cx.error(
                        &v,
                        "no port, and no [http_service] to take one from".to_owned(),
                        Some("add port = <the port the check probes>".to_owned()),
                    );
                    continue;
                }
            }
        }
        out.insert(name, check);
    }
    t.finish(cx, |_| String::new());
    out
}

/// Process groups: `[processes]` names (else the default `app`), each with its machine count
/// in `region` and the `[[vm]]` that applies to it (flyctl's `ComputeForGroup`: an entry
/// naming the group, else the first entry naming no group).
fn groups(
    cx: &mut Cx<'_>,
    commands: BTreeMap<String, String>,
    vms: &[vm::VmEntry],
    services: &[crate::flyapp::Service],
    region: &str,
) -> BTreeMap<String, ProcessGroup> {
    let names: Vec<(String, Option<String>)> = if commands.is_empty() {
        vec![("app".to_owned(), None)]
    } else {
        commands
            .into_iter()
            .map(|(name, cmd)| (name, Some(cmd)))
            .collect()
    };
    for vm in vms {
        for g in &vm.processes {
            if !names.iter().any(|(n, _)| n == g) {
                cx.note(vm.offset, format!("{}.processes: `{g}` is not a process group of this app, so this entry does not apply to it", vm.path));
            }
        }
    }
    let mut out = BTreeMap::new();
    let mut counts = Vec::new();
    for (name, command) in names {
        let vm = vms
            .iter()
            .find(|v| v.processes.contains(&name))
            .or_else(|| vms.iter().find(|v| v.processes.is_empty()))
            .map(|v| VmSpec {
                size: v.size.clone(),
                memory_mb: v.memory_mb,
            });
        let serves = services
            .iter()
            .any(|s| s.processes.is_empty() || s.processes.contains(&name));
        let count = if serves { 2 } else { 1 };
        counts.push(format!("{name}: {{{region}: {count}}}"));
        out.insert(
            name,
            ProcessGroup {
                regions: BTreeMap::from([(region.to_owned(), count)]),
                vm,
                command,
            },
        );
    }
    cx.note(
        0,
        format!(
            "fly.toml has no machine counts: processGroups set to {} (flyctl's default: 2 machines for a group that serves traffic, 1 otherwise); edit to taste",
            counts.join(", ")
        ),
    );
    out
}

#[cfg(test)]
mod tests;
