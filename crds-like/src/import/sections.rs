//! One function per fly.toml section: what each key becomes in a `FlyApp`, or why it is
//! dropped. The mapping follows flyctl (`internal/appconfig`, summarised in
//! `../shared/fly-api/NOTES.md` §7): legacy shapes flyctl still accepts are accepted here too
//! (string ports, `concurrency = "soft,hard"`, millisecond check durations), with a warning.

use std::collections::BTreeMap;

use super::reader::{BareNumber, Cx, Field, TKind, Tbl};
use crate::flyapp::{
    Check, CheckKind, Concurrency, DeploySpec, MaxUnavailable, Service, ServicePort, Strategy,
};

/// Why the auto-start/auto-stop family is dropped.
const AUTOSCALE: &str = "Fly's autostop/autostart and minimum counts are not carried: opsctl keeps the declared machine count running; dropped";

/// `[env]`: string values; numbers and booleans become strings (as flyctl does), with a note.
pub(crate) fn env(cx: &mut Cx<'_>, f: &Field<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(mut t) = f.table(cx) else { return out };
    for (key, v) in t.take_rest() {
        if key.starts_with("FLY_") {
            cx.drop(
                &v,
                "Fly reserves FLY_ variables and sets them itself; dropped",
            );
            continue;
        }
        let text = match &v.val.kind {
            TKind::Str(s) => s.clone(),
            TKind::Int(_) | TKind::Float(_) | TKind::Bool(_) | TKind::Datetime(_) => {
                let s = match &v.val.kind {
                    TKind::Datetime(d) => d.clone(),
                    _ => v.val.show(),
                };
                cx.note(
                    v.val.span.start,
                    format!(
                        "{}: {} {s} written as the string \"{s}\"",
                        v.path,
                        v.val.type_name()
                    ),
                );
                s
            }
            _ => {
                cx.error(
                    &v,
                    format!("expected a string, found {}", v.val.type_name()),
                    None,
                );
                continue;
            }
        };
        cx.carry(&v);
        out.insert(key, text);
    }
    t.finish(cx, |_| String::new());
    out
}

/// `[deploy]`.
pub(crate) fn deploy(cx: &mut Cx<'_>, f: &Field<'_>) -> DeploySpec {
    let mut spec = DeploySpec::default();
    let Some(mut t) = f.table(cx) else {
        return spec;
    };
    if let Some(v) = t.take("strategy")
        && let Some(s) = v.str(cx)
    {
        match s.as_str() {
            "rolling" => spec.strategy = Strategy::Rolling,
            "canary" => spec.strategy = Strategy::Canary,
            "bluegreen" => spec.strategy = Strategy::Bluegreen,
            "immediate" => spec.strategy = Strategy::Immediate,
            other => cx.error(
                &v,
                format!(
                    "unknown strategy `{other}`: expected rolling, canary, bluegreen or immediate"
                ),
                None,
            ),
        }
    }
    if let Some(v) = t.take("max_unavailable") {
        let value = match v.val.kind {
            TKind::Int(n) => Some(n as f64),
            TKind::Float(x) => Some(x),
            _ => None,
        };
        match value {
            Some(x) if x > 0.0 && x < 1.0 => {
                spec.max_unavailable = MaxUnavailable::Fraction(x);
                cx.carry(&v);
            }
            Some(x) if x >= 1.0 && x.fract() == 0.0 && x <= f64::from(u32::MAX) => {
                spec.max_unavailable = MaxUnavailable::Count(x as u32);
                cx.carry(&v);
            }
            _ => cx.error(
                &v,
                format!(
                    "expected a count like 1 or a fraction like 0.33, found {}",
                    v.val.show()
                ),
                None,
            ),
        }
    }
    if let Some(v) = t.take("wait_timeout")
        && let Some(d) = v.duration(cx, BareNumber::Seconds)
    {
        spec.wait_timeout = d;
    }
    if let Some(v) = t.take("release_command") {
        spec.release_command = v.str(cx);
    }
    t.finish(cx, |key| match key {
        "release_command_timeout" | "release_command_vm" => {
            "settings of the release command's temporary machine are not carried; Fly's defaults apply; dropped".to_owned()
        }
        "seed_command" => "a seed command is for first deploys by hand; dropped".to_owned(),
        _ => "not a deploy setting opsctl knows; dropped".to_owned(),
    });
    spec
}

/// One `[[services]]` entry.
pub(crate) fn service(cx: &mut Cx<'_>, mut t: Tbl<'_>) -> Option<Service> {
    let internal_port = match t.take("internal_port") {
        Some(v) => v.uint(cx, u32::from(u16::MAX), true),
        None => {
            cx.error(
                &t.field(),
                "missing internal_port, the port the app listens on".to_owned(),
                None,
            );
            None
        }
    };
    let protocol = match t.take("protocol") {
        Some(v) => {
            let p = v.str(cx);
            if let Some(p) = p.as_deref().filter(|p| !matches!(*p, "tcp" | "udp")) {
                cx.error(
                    &v,
                    format!("unknown protocol `{p}`: expected tcp or udp"),
                    None,
                );
            }
            p
        }
        None => None,
    };
    let mut ports = Vec::new();
    if let Some(v) = t.take("ports") {
        for pt in v.tables(cx).unwrap_or_default() {
            if let Some(p) = port(cx, pt) {
                ports.push(p);
            }
        }
    }
    let concurrency = t.take("concurrency").and_then(|v| concurrency(cx, &v));
    let mut checks = Vec::new();
    for (key, kind) in [
        ("tcp_checks", CheckKind::Tcp),
        ("http_checks", CheckKind::Http),
    ] {
        if let Some(v) = t.take(key) {
            for ct in v.tables(cx).unwrap_or_default() {
                checks.extend(check(cx, ct, Some(kind)));
            }
        }
    }
    let processes = t
        .take("processes")
        .and_then(|v| v.str_list(cx))
        .unwrap_or_default();
    t.finish(cx, |key| match key {
        "auto_stop_machines" | "auto_start_machines" | "min_machines_running" => {
            AUTOSCALE.to_owned()
        }
        "script_checks" => "Nomad-era script checks do not exist on Machines; dropped".to_owned(),
        "machine_checks" => {
            "machine checks (one-off check machines run by flyctl) are not carried; dropped"
                .to_owned()
        }
        _ => "not a service setting opsctl knows; dropped".to_owned(),
    });
    Some(Service {
        protocol: protocol.unwrap_or_else(|| "tcp".to_owned()),
        internal_port: u16::try_from(internal_port?).ok()?,
        ports,
        concurrency,
        checks,
        processes,
    })
}

/// `[http_service]`: one service on `internal_port` (default 8080) with port 80 `[http]`
/// (plus `force_https`) and 443 `[http, tls]`, as flyctl builds it (NOTES.md §7.2).
pub(crate) fn http_service(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Service> {
    let mut t = f.table(cx)?;
    let internal_port = match t.take("internal_port") {
        Some(v) => u16::try_from(v.uint(cx, u32::from(u16::MAX), true)?).ok()?,
        None => {
            cx.note(
                t.val.span.start,
                format!(
                    "{}: no internal_port; flyctl's default 8080 written out",
                    t.path
                ),
            );
            8080
        }
    };
    let force_https = t
        .take("force_https")
        .and_then(|v| v.bool(cx))
        .unwrap_or(false);
    let concurrency = t.take("concurrency").and_then(|v| concurrency(cx, &v));
    let mut checks = Vec::new();
    if let Some(v) = t.take("checks") {
        for ct in v.tables(cx).unwrap_or_default() {
            checks.extend(check(cx, ct, Some(CheckKind::Http)));
        }
    }
    let processes = t
        .take("processes")
        .and_then(|v| v.str_list(cx))
        .unwrap_or_default();
    t.finish(cx, |key| match key {
        "auto_stop_machines" | "auto_start_machines" | "min_machines_running" => {
            AUTOSCALE.to_owned()
        }
        "machine_checks" => {
            "machine checks (one-off check machines run by flyctl) are not carried; dropped"
                .to_owned()
        }
        "tls_options" | "http_options" => {
            "Fly Proxy TLS/HTTP options are not carried; Fly's defaults apply; dropped".to_owned()
        }
        _ => "not an http_service setting opsctl knows; dropped".to_owned(),
    });
    Some(Service {
        protocol: "tcp".to_owned(),
        internal_port,
        ports: vec![
            ServicePort {
                port: 80,
                handlers: vec!["http".to_owned()],
                force_https,
            },
            ServicePort {
                port: 443,
                handlers: vec!["http".to_owned(), "tls".to_owned()],
                force_https: false,
            },
        ],
        concurrency,
        checks,
        processes,
    })
}

fn port(cx: &mut Cx<'_>, mut t: Tbl<'_>) -> Option<ServicePort> {
    let number = t
        .take("port")
        .and_then(|v| v.uint(cx, u32::from(u16::MAX), true));
    let handlers = t
        .take("handlers")
        .and_then(|v| v.str_list(cx))
        .unwrap_or_default();
    let force_https = t
        .take("force_https")
        .and_then(|v| v.bool(cx))
        .unwrap_or(false);
    let had_port = number.is_some();
    t.finish(cx, |key| match key {
        "start_port" | "end_port" if had_port => {
            "port ranges are not supported by a FlyApp service; only `port` is carried; dropped".to_owned()
        }
        "start_port" | "end_port" => {
            "port ranges are not supported by a FlyApp service, and this entry has no single `port`; dropped".to_owned()
        }
        "http_options" | "tls_options" | "proxy_proto_options" => {
            "Fly Proxy handler options are not carried; Fly's defaults apply; dropped".to_owned()
        }
        _ => "not a port setting opsctl knows; dropped".to_owned(),
    });
    Some(ServicePort {
        port: u16::try_from(number?).ok()?,
        handlers,
        force_https,
    })
}

/// `concurrency`: a table, or the legacy `"soft,hard"` string (read as flyctl does: type
/// `requests`, `patches.go`). Incomplete limits are dropped so that Fly's defaults apply.
pub(crate) fn concurrency(cx: &mut Cx<'_>, f: &Field<'_>) -> Option<Concurrency> {
    if let TKind::Str(s) = &f.val.kind {
        let parsed = s
            .split_once(',')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
        let Some((soft_limit, hard_limit)) = parsed else {
            cx.error(
                f,
                format!(
                    "{}: expected a table or \"soft,hard\" limits, found \"{s}\"",
                    f.path
                ),
                None,
            );
            return None;
        };
        cx.note(
            f.val.span.start,
            format!("{}: legacy \"{s}\" read as soft_limit {soft_limit}, hard_limit {hard_limit}, type requests (as flyctl reads it)", f.path),
        );
        cx.carry(f);
        return limits(cx, f, "requests".to_owned(), soft_limit, hard_limit);
    }
    let mut t = f.table(cx)?;
    let (kind, soft, hard) = (t.take("type"), t.take("soft_limit"), t.take("hard_limit"));
    let (path, start) = (t.path.clone(), t.val.span.start);
    t.finish(cx, |_| {
        "not a concurrency setting opsctl knows; dropped".to_owned()
    });
    let (Some(soft), Some(hard)) = (soft.clone(), hard.clone()) else {
        // One limit alone cannot be carried without inventing the other.
        for v in [kind, soft, hard].into_iter().flatten() {
            cx.drop(&v, "a FlyApp needs both soft_limit and hard_limit to carry limits, so Fly's defaults apply instead; dropped");
        }
        return None;
    };
    let soft_limit = soft.uint(cx, u32::MAX, false);
    let hard_limit = hard.uint(cx, u32::MAX, false);
    let kind = match kind {
        Some(v) => {
            let k = v.str(cx)?;
            if !matches!(k.as_str(), "connections" | "requests") {
                cx.error(
                    &v,
                    format!("unknown concurrency type `{k}`: expected connections or requests"),
                    None,
                );
                return None;
            }
            k
        }
        None => {
            cx.note(
                start,
                format!("{path}: no type; Fly's default `connections` written out"),
            );
            "connections".to_owned()
        }
    };
    limits(cx, f, kind, soft_limit?, hard_limit?)
}

fn limits(
    cx: &mut Cx<'_>,
    f: &Field<'_>,
    kind: String,
    soft_limit: u32,
    hard_limit: u32,
) -> Option<Concurrency> {
    if soft_limit > hard_limit {
        cx.error(
            f,
            format!("soft_limit {soft_limit} is above hard_limit {hard_limit}"),
            None,
        );
        return None;
    }
    Some(Concurrency {
        kind,
        soft_limit,
        hard_limit,
    })
}

/// A check. `kind` is fixed for service checks (`tcp_checks`, `http_checks`,
/// `http_service.checks`); top-level `[checks.NAME]` say it with `type` (`None` here).
pub(crate) fn check(cx: &mut Cx<'_>, mut t: Tbl<'_>, kind: Option<CheckKind>) -> Option<Check> {
    let top_level = kind.is_none();
    let kind = match kind {
        Some(k) => Some(k),
        None => match t.take("type") {
            Some(v) => match v.str(cx).as_deref() {
                Some("tcp") => Some(CheckKind::Tcp),
                Some("http") => Some(CheckKind::Http),
                Some(other) => {
                    cx.error(
                        &v,
                        format!("unknown check type `{other}`: expected tcp or http"),
                        None,
                    );
                    None
                }
                None => None,
            },
            None => {
                cx.error(&t.field(), "missing `type` (tcp or http)".to_owned(), None);
                None
            }
        },
    };
    let port = if top_level {
        t.take("port")
            .and_then(|v| v.uint(cx, u32::from(u16::MAX), false))
    } else {
        None
    };
    let interval = t
        .take("interval")
        .and_then(|v| v.duration(cx, BareNumber::Millis));
    let timeout = t
        .take("timeout")
        .and_then(|v| v.duration(cx, BareNumber::Millis));
    let grace_period = t
        .take("grace_period")
        .and_then(|v| v.duration(cx, BareNumber::Millis));
    let (mut path, mut method) = (None, None);
    if kind == Some(CheckKind::Http) {
        path = t.take("path").and_then(|v| v.str(cx));
        method = t
            .take("method")
            .and_then(|v| v.str(cx))
            .map(|m| m.to_ascii_uppercase());
        if let Some(v) = t.take("protocol") {
            match &v.val.kind {
                TKind::Str(p) if p == "http" => cx.carry(&v),
                _ => cx.drop(
                    &v,
                    format!("a FlyApp check has no protocol setting, so this check will be made over plain http, not {}; dropped", v.val.show()),
                ),
            }
        }
    }
    t.finish(cx, |key| match key {
        "restart_limit" => "not supported on Machines; dropped".to_owned(),
        "tls_skip_verify" | "tls_server_name" => {
            "TLS settings of checks are not carried; dropped".to_owned()
        }
        "headers" => "check headers are not carried; dropped".to_owned(),
        "processes" if top_level => {
            "a FlyApp check applies to every process group; dropped".to_owned()
        }
        _ => "not a check setting opsctl knows; dropped".to_owned(),
    });
    Some(Check {
        kind: kind?,
        port: port.and_then(|p| u16::try_from(p).ok()),
        path,
        method,
        interval,
        timeout,
        grace_period,
    })
}
