use serde_json::json;

use super::*;
use crate::testkit::app;

fn d(s: &str) -> Option<DurationStr> {
    Some(s.parse().expect("duration"))
}

fn tcp_check() -> Check {
    Check {
        kind: CheckKind::Tcp,
        port: None,
        path: None,
        method: None,
        interval: d("15s"),
        timeout: d("10s"),
        grace_period: d("1s"),
    }
}

/// LowEndInsight's service as flyctl writes it from its fly.toml (examples/sim/lowendinsight.yaml).
fn lei_service() -> Service {
    Service {
        internal_port: 8080,
        protocol: "tcp".into(),
        ports: vec![
            Port {
                port: 80,
                end_port: None,
                handlers: vec!["http".into()],
                force_https: true,
            },
            Port {
                port: 443,
                end_port: None,
                handlers: vec!["tls".into(), "http".into()],
                force_https: false,
            },
        ],
        concurrency: Some(Concurrency {
            kind: "connections".into(),
            soft_limit: Some(20),
            hard_limit: Some(25),
        }),
        checks: vec![tcp_check()],
    }
}

fn lei_config() -> ServiceConfig {
    ServiceConfig {
        services: vec![lei_service()],
        checks: BTreeMap::new(),
        stop: Some(Stop {
            signal: Some("SIGINT".into()),
            timeout: d("5s"),
        }),
    }
}

fn shipped_manifest() -> FlyApp {
    let text = include_str!("../../../manifests/lowendinsight.yaml");
    opsctl_crds::load_str("manifests/lowendinsight.yaml".as_ref(), text)
        .expect("the shipped manifest loads")
        .apps
        .remove(0)
}

/// The shipped manifest asks for exactly what the simulator's LowEndInsight machines have
/// (what flyctl built from the real fly.toml), so `opsctl diff` shows only the image.
#[test]
fn shipped_lowendinsight_manifest_matches_its_fly_config() {
    let want = desired(&shipped_manifest(), "app");
    assert_eq!(want.normalized(), lei_config().normalized());
}

#[test]
fn services_apply_to_the_groups_they_name_or_to_all() {
    let a = app(
        1,
        json!({
            "processGroups": {"app": {"regions": {"iad": 1}}, "worker": {"regions": {"iad": 1}}},
            "services": [
                {"internalPort": 8080, "ports": [{"port": 443, "handlers": ["tls", "http"]}]},
                {"internalPort": 9000, "processes": ["worker"]},
                {"internalPort": 7000, "protocol": "udp", "processes": ["app", "worker"]}
            ],
            "checks": {"readyz": {"type": "http", "port": 4000, "path": "/readyz", "interval": "15s", "timeout": "5s"}},
            "stop": {"signal": "SIGTERM", "timeout": "30s"}
        }),
    );
    let ports = |c: &ServiceConfig| {
        c.services
            .iter()
            .map(|s| s.internal_port)
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(&desired(&a, "app")), [8080, 7000]);
    assert_eq!(ports(&desired(&a, "worker")), [8080, 9000, 7000]);
    let app_cfg = desired(&a, "app");
    assert_eq!(app_cfg.checks["readyz"].path.as_deref(), Some("/readyz"));
    assert_eq!(app_cfg.checks["readyz"].timeout, d("5s"));
    assert_eq!(
        app_cfg.stop,
        Some(Stop {
            signal: Some("SIGTERM".into()),
            timeout: d("30s")
        })
    );
    assert_eq!(
        desired(&a, "worker").checks.len(),
        1,
        "top-level checks apply to all"
    );
}

/// BUG-25: every form on the left means what the right means to Fly, so neither is drift.
#[test]
fn equivalent_forms_normalise_alike() {
    type Edit = fn(&mut ServiceConfig);
    let cases: Vec<(&str, Edit)> = vec![
        ("protocol left out", |c| c.services[0].protocol.clear()),
        ("protocol in capitals", |c| {
            c.services[0].protocol = "TCP".into()
        }),
        ("ports in another order", |c| c.services[0].ports.reverse()),
        ("handlers in another order", |c| {
            c.services[0].ports[1].handlers = vec!["http".into(), "tls".into()]
        }),
        ("handlers in capitals, repeated", |c| {
            c.services[0].ports[1].handlers = vec!["TLS".into(), "http".into(), "tls".into()]
        }),
        ("a single port written as a range of one", |c| {
            c.services[0].ports[0].end_port = Some(80)
        }),
        ("concurrency type left out", |c| {
            c.services[0].concurrency.as_mut().unwrap().kind.clear()
        }),
        ("service check port written out", |c| {
            c.services[0].checks[0].port = Some(8080)
        }),
        ("tcp check with a path and method Fly ignores", |c| {
            c.services[0].checks[0].path = Some("/x".into());
            c.services[0].checks[0].method = Some("POST".into());
        }),
        ("durations in other units", |c| {
            c.services[0].checks[0].interval = d("15000ms");
            c.services[0].checks[0].grace_period = d("1000ms");
        }),
        ("service checks in another order", |c| {
            let http = Check {
                kind: CheckKind::Http,
                path: None,
                ..tcp_check()
            };
            c.services[0].checks = vec![http, tcp_check()];
        }),
        ("stop signal as a number", |c| {
            c.stop.as_mut().unwrap().signal = Some("2".into())
        }),
        ("stop signal without SIG, lower case", |c| {
            c.stop.as_mut().unwrap().signal = Some("int".into())
        }),
        ("stop left out (Fly's default is SIGINT, 5s)", |c| {
            c.stop = None
        }),
        ("stop with empty signal and no timeout", |c| {
            c.stop = Some(Stop {
                signal: Some(String::new()),
                timeout: None,
            })
        }),
    ];
    let mut reference = lei_config();
    // A second, http, service check so that order and defaults of http checks are exercised.
    reference.services[0].checks.push(Check {
        kind: CheckKind::Http,
        path: Some("/".into()),
        method: Some("GET".into()),
        ..tcp_check()
    });
    let want = reference.normalized();
    for (name, edit) in cases {
        let mut c = reference.clone();
        edit(&mut c);
        assert_eq!(c.normalized(), want, "{name}");
        assert_eq!(c.normalized().normalized(), want, "{name}: idempotent");
    }
}

#[test]
fn http_check_defaults_and_spelling() {
    let bare = Check {
        kind: CheckKind::Http,
        port: Some(4000),
        path: None,
        method: None,
        interval: None,
        timeout: None,
        grace_period: None,
    };
    let explicit = Check {
        path: Some("/".into()),
        method: Some("get".into()),
        ..bare.clone()
    };
    let other_spelling = Check {
        kind: CheckKind::Other("HTTP".into()),
        path: Some(String::new()),
        ..bare.clone()
    };
    let norm = |c: &Check| c.normalized(None);
    assert_eq!(norm(&bare), norm(&explicit));
    assert_eq!(norm(&bare), norm(&other_spelling));
    assert_eq!(norm(&bare).method.as_deref(), Some("GET"));
}

/// Real differences stay differences after normalisation.
#[test]
fn real_differences_remain() {
    type Edit = fn(&mut ServiceConfig);
    let cases: Vec<(&str, Edit)> = vec![
        ("internal port", |c| c.services[0].internal_port = 9090),
        ("protocol", |c| c.services[0].protocol = "udp".into()),
        ("a port removed", |c| {
            c.services[0].ports.pop();
        }),
        ("a handler removed", |c| {
            c.services[0].ports[1].handlers = vec!["tls".into()]
        }),
        ("force_https", |c| {
            c.services[0].ports[0].force_https = false
        }),
        ("soft limit", |c| {
            c.services[0].concurrency.as_mut().unwrap().soft_limit = Some(30)
        }),
        ("concurrency type", |c| {
            c.services[0].concurrency.as_mut().unwrap().kind = "requests".into()
        }),
        ("concurrency removed", |c| c.services[0].concurrency = None),
        ("check timeout", |c| {
            c.services[0].checks[0].timeout = d("2s")
        }),
        ("check removed", |c| c.services[0].checks.clear()),
        ("check port", |c| c.services[0].checks[0].port = Some(4000)),
        ("service removed", |c| c.services.clear()),
        ("top-level check added", |c| {
            c.checks.insert("readyz".into(), tcp_check());
        }),
        ("stop signal", |c| {
            c.stop.as_mut().unwrap().signal = Some("SIGTERM".into())
        }),
        ("stop timeout", |c| {
            c.stop.as_mut().unwrap().timeout = d("30s")
        }),
    ];
    let want = lei_config().normalized();
    for (name, edit) in cases {
        let mut c = lei_config();
        edit(&mut c);
        assert_ne!(c.normalized(), want, "{name}");
    }
}

#[test]
fn summaries_say_what_differs() {
    let from = lei_config().normalized();
    let mut to = lei_config();
    to.services[0].internal_port = 9090;
    to.services[0].ports[1].handlers = vec!["tls".into()];
    to.services[0].concurrency.as_mut().unwrap().soft_limit = Some(30);
    to.services[0].checks[0].timeout = d("2s");
    let to = to.normalized();
    let s = describe_services(&from.services, &to.services);
    assert!(s.starts_with("8080/tcp: internal port 8080 → 9090"), "{s}");
    assert!(s.contains("port 443 [http, tls] → 443 [tls]"), "{s}");
    assert!(
        s.contains("concurrency connections 20/25 → connections 30/25"),
        "{s}"
    );
    assert!(s.contains("timeout 10s → 2s"), "{s}");
    assert_eq!(
        describe_services(&from.services, &[]),
        "services [8080/tcp] → []"
    );
    let readyz = Check {
        kind: CheckKind::Http,
        port: Some(4000),
        path: Some("/readyz".into()),
        ..tcp_check()
    }
    .normalized(None);
    assert_eq!(
        describe_check(None, Some(&readyz)),
        "(none) → http GET /readyz :4000 every 15s, timeout 10s, grace 1s"
    );
}
