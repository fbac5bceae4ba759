//! The certificate check against real TLS servers (tokio-rustls on 127.0.0.1, with a CA and
//! certificates made here with rcgen) and the Fly simulator's certificates API: notAfter read
//! from the handshake, the 14-day window (BUG-23), Fly's view against the served one, and a
//! certificate stuck on a CA rate limit looked at hourly and never touched (BUG-21).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use opsctl::fly::{Endpoints, FlyClient};
use opsctl::maintenance::certs::{CertChecker, TlsProbe};
use opsctl::secret::Secret;
use opsctl::sim::{Scenario, SimHandle, serve};
use opsctl_controllers::certs::{CertFindingKind, HandshakeObservation, TlsVerdict};
use opsctl_controllers::signal::SignalKind;
use opsctl_crds::kinds::CertWindowSpec;
use opsctl_crds::kinds::cert_window::OnShort;
use opsctl_crds::{DurationStr, Manifest, Metadata};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

const APP: &str = "example-app";
const SOON: &str = "soon.example.com"; // 13 days left
const LATER: &str = "later.example.com"; // 15 days left
const OLD: &str = "old.example.com"; // expired 2 days ago
const LIMITED: &str = "limited.example.com"; // pending, CA rate limited for 2 days
const NODNS: &str = "nodns.example.com"; // pending, DNS not configured

/// A test CA and TLS servers for hostnames, each serving a leaf with a chosen notAfter.
struct Pki {
    ca_der: CertificateDer<'static>,
    ca_params: CertificateParams,
    ca_key: KeyPair,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "opsctl test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_der: cert.der().clone(),
            ca_params: params,
            ca_key: key,
        }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        roots
    }

    /// Serves `hostname` with a leaf valid until `not_after`, on a free port.
    async fn serve(&self, hostname: &str, not_after: DateTime<Utc>) -> SocketAddr {
        let mut params = CertificateParams::new(vec![hostname.to_owned()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(
            (not_after - chrono::Duration::days(90)).timestamp(),
        )
        .unwrap();
        params.not_after =
            time::OffsetDateTime::from_unix_timestamp(not_after.timestamp()).unwrap();
        let key = KeyPair::generate().unwrap();
        let issuer = Issuer::from_params(&self.ca_params, &self.ca_key);
        let leaf = params.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(tcp).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        addr
    }
}

/// Roots of a CA that signed none of the servers' certificates.
fn other_roots() -> RootCertStore {
    Pki::new().roots()
}

/// Now, to the second (X.509 times have no fractions).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

fn window(name: &str, hosts: &[&str], interval: &str) -> Manifest<CertWindowSpec> {
    Manifest {
        metadata: Metadata {
            name: name.to_owned(),
            labels: Default::default(),
            annotations: Default::default(),
        },
        spec: CertWindowSpec {
            app: Some(APP.to_owned()),
            hostnames: hosts.iter().map(|h| h.to_string()).collect(),
            interval: interval.parse::<DurationStr>().unwrap(),
            ..CertWindowSpec::default()
        },
        file: "certs.yaml".into(),
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A simulator whose virtual clock stands still at `start` (moved only by the `now` the test
/// hands the checker), with the certificates of the tests: Fly agrees with the served
/// certificate for SOON and OLD, lists a renewed one (89 days) for LATER, and has LIMITED stuck
/// on a rate limit and NODNS waiting for DNS.
async fn sim(start: DateTime<Utc>, soon: DateTime<Utc>, old: DateTime<Utc>) -> SimHandle {
    let yaml = format!(
        r#"
timeScale: 0.000001
clockStart: "{start}"
apps:
  - name: {APP}
    certificates:
      - {{hostname: {SOON}, status: active, expiresAt: "{soon}"}}
      - {{hostname: {LATER}, status: active, expiresIn: 89d}}
      - {{hostname: {OLD}, status: active, expiresAt: "{old}"}}
      - {{hostname: {LIMITED}, status: pending_validation, dnsConfigured: true, rateLimitedFor: 2d}}
      - hostname: {NODNS}
        status: pending_validation
        dnsConfigured: false
        validationErrors:
          - {{code: DNS_NOT_CONFIGURED, message: "no record points at {APP}"}}
"#,
        start = rfc3339(start),
        soon = rfc3339(soon),
        old = rfc3339(old),
    );
    let scenario = Scenario::from_yaml(&yaml).expect("scenario");
    serve(scenario, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("sim")
}

fn client(sim: &SimHandle) -> FlyClient {
    FlyClient::new(
        Endpoints::origin(&sim.base_url()),
        Secret::new("test-token"),
    )
    .unwrap()
}

#[tokio::test]
async fn the_handshake_reads_the_served_not_after_even_when_expired() {
    let pki = Pki::new();
    let t = now();
    let soon = t + days(13);
    let later = t + days(15);
    let old = t - days(2);
    let probe = TlsProbe::new()
        .with_roots(pki.roots())
        .connect_to(SOON, pki.serve(SOON, soon).await)
        .connect_to(LATER, pki.serve(LATER, later).await)
        .connect_to(OLD, pki.serve(OLD, old).await);

    for (host, want) in [(SOON, soon), (LATER, later)] {
        assert_eq!(
            probe.handshake(host).await,
            HandshakeObservation::Seen {
                not_after: want,
                verdict: TlsVerdict::Trusted
            },
            "{host}"
        );
    }
    match probe.handshake(OLD).await {
        HandshakeObservation::Seen { not_after, verdict } => {
            assert_eq!(not_after, old);
            match verdict {
                TlsVerdict::Untrusted { reason } => {
                    assert!(reason.to_lowercase().contains("expired"), "{reason}")
                }
                other => panic!("an expired certificate verified: {other:?}"),
            }
        }
        other => panic!("expired certificate not read: {other:?}"),
    }

    // With another CA's roots the chain does not verify, but is still read.
    let untrusting = TlsProbe::new()
        .with_roots(other_roots())
        .connect_to(SOON, pki.serve(SOON, soon).await);
    match untrusting.handshake(SOON).await {
        HandshakeObservation::Seen {
            not_after,
            verdict: TlsVerdict::Untrusted { .. },
        } => assert_eq!(not_after, soon),
        other => panic!("{other:?}"),
    }
}

/// With the platform's roots (the default, as reqwest's), a private CA's certificate is read
/// and judged untrusted.
#[tokio::test]
async fn the_platform_verifier_judges_a_private_ca_untrusted_and_still_reads_it() {
    let pki = Pki::new();
    let soon = now() + days(13);
    let probe = TlsProbe::new().connect_to(SOON, pki.serve(SOON, soon).await);
    match probe.handshake(SOON).await {
        HandshakeObservation::Seen {
            not_after,
            verdict: TlsVerdict::Untrusted { reason },
        } => {
            assert_eq!(not_after, soon);
            assert!(!reason.is_empty());
        }
        other => panic!("{other:?}"),
    }
}

/// Nothing listening, or nothing answering: unknown, never expired.
#[tokio::test]
async fn an_unreachable_host_is_unknown_not_expired() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe = TlsProbe::new()
        .with_roots(other_roots())
        .with_timeout(Duration::from_millis(300))
        .connect_to(SOON, refused)
        .connect_to(LATER, silent.local_addr().unwrap());
    for host in [SOON, LATER] {
        match probe.handshake(host).await {
            HandshakeObservation::Unknown { why } => assert!(why.contains(host), "{why}"),
            other => panic!("{host}: {other:?}"),
        }
    }
    assert_eq!(
        probe.handshake("*.example.com").await,
        HandshakeObservation::NotApplicable
    );
}

#[tokio::test]
async fn a_check_finds_the_short_the_expired_the_disagreeing_and_the_not_ready() {
    let pki = Pki::new();
    let t = now();
    let (soon, later, old) = (t + days(13), t + days(15), t - days(2));
    let sim = sim(t, soon, old).await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let probe = TlsProbe::new()
        .with_roots(pki.roots())
        .with_timeout(Duration::from_millis(500))
        .connect_to(SOON, pki.serve(SOON, soon).await)
        .connect_to(LATER, pki.serve(LATER, later).await)
        .connect_to(OLD, pki.serve(OLD, old).await)
        .connect_to(NODNS, refused)
        .connect_to("missing.example.com", refused);
    let checker = CertChecker::new(client(&sim), probe);
    let windows = [window(
        "web",
        &[SOON, LATER, OLD, NODNS, "missing.example.com"],
        "24h",
    )];

    let run = checker.check_certs(&windows, t).await;
    let by_host = |h: &str| -> Vec<&'static str> {
        run.findings()
            .iter()
            .filter(|f| f.hostname == h)
            .map(|f| f.kind.class())
            .collect()
    };
    // 13 days left: short; 15 days: fine by the window, but Fly lists another certificate.
    assert_eq!(by_host(SOON), ["expiring"]);
    assert_eq!(by_host(LATER), ["views_disagree"]);
    assert_eq!(by_host(OLD), ["expired"]);
    assert_eq!(by_host(NODNS), ["dns_not_configured"]);
    assert_eq!(by_host("missing.example.com"), ["missing"]);

    let nodns = run
        .findings()
        .into_iter()
        .find(|f| f.hostname == NODNS)
        .unwrap();
    let CertFindingKind::DnsNotConfigured { records } = &nodns.kind else {
        panic!("{nodns:?}")
    };
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["A", "AAAA", "CNAME", "CNAME", "TXT"]);
    assert!(nodns.detail.contains("_acme-challenge.nodns.example.com"));

    let soon_status = checker
        .status()
        .into_iter()
        .find(|s| s.last.hostname == SOON)
        .unwrap();
    assert_eq!(soon_status.last.remaining.unwrap().days_left, 13);
    assert_eq!(
        soon_status.last.remaining.unwrap().seconds,
        13 * 86_400,
        "opsctl_cert_expiry_seconds"
    );
    assert_eq!(soon_status.next_check_at, t + days(1));
    let json = serde_json::to_value(checker.status()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 5);

    let kinds: Vec<SignalKind> = run.signals.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == SignalKind::CertExpiring)
            .count(),
        2
    );
    assert!(
        run.signals
            .iter()
            .any(|s| s.fingerprint() == format!("{APP}/cert_expiring/-/expiring:{SOON}"))
    );

    // Nothing is due again until the interval has passed.
    let again = checker
        .check_certs(&windows, t + chrono::Duration::hours(23))
        .await;
    assert!(again.assessments.is_empty());

    // `onShort: report` keeps the findings for status but raises no signal.
    let mut quiet = windows[0].clone();
    quiet.spec.on_short = OnShort::Report;
    let run = checker.check_certs(&[quiet], t + days(1)).await;
    assert!(!run.findings().is_empty());
    assert!(run.signals.is_empty());

    // Only reads ever reached Fly.
    let counts = sim.state().request_counts();
    for (endpoint, n) in &counts.endpoints {
        assert!(
            endpoint.starts_with("GET /v1/apps/{app}/certificates/{hostname}"),
            "unexpected call {endpoint} ({n}×)"
        );
    }
    sim.shutdown().await;
}

/// BUG-21: a certificate stuck on a CA rate limit, in a window checked every minute, is read at
/// most once an hour, is never deleted, re-added or re-checked, and keeps one finding whose
/// fingerprint does not change. A restarted checker with the same state file keeps the pace.
#[tokio::test]
async fn a_rate_limited_certificate_is_read_hourly_and_never_touched() {
    let t = now();
    let sim = sim(t, t + days(13), t - days(2)).await;
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("maintenance/certs.json");
    let unreachable = TlsProbe::new()
        .with_roots(other_roots())
        .with_timeout(Duration::from_millis(200))
        .connect_to(LIMITED, "127.0.0.1:9".parse().unwrap());
    let windows = [window("limited", &[LIMITED], "1m")];
    let checker = CertChecker::new(client(&sim), unreachable.clone())
        .with_state_file(&state_file)
        .unwrap();

    let mut fingerprints = Vec::new();
    // Three hours of minutes, the first ninety with this checker.
    for minute in 0..90 {
        let run = checker
            .check_certs(&windows, t + chrono::Duration::minutes(minute))
            .await;
        fingerprints.extend(run.signals.iter().map(|s| s.fingerprint()));
        for f in run.findings() {
            assert_eq!(f.kind, CertFindingKind::RateLimited { until: t + days(2) });
        }
    }
    drop(checker);
    let restarted = CertChecker::new(client(&sim), unreachable)
        .with_state_file(&state_file)
        .unwrap();
    // Without the state file it would check at once (minute 90) and again at 150.
    for minute in 90..180 {
        let run = restarted
            .check_certs(&windows, t + chrono::Duration::minutes(minute))
            .await;
        fingerprints.extend(run.signals.iter().map(|s| s.fingerprint()));
    }

    let counts = sim.state().request_counts();
    assert_eq!(
        counts.get("GET /v1/apps/{app}/certificates/{hostname}"),
        3,
        "{counts:?}"
    );
    for mutation in [
        "POST /v1/apps/{app}/certificates/acme",
        "POST /v1/apps/{app}/certificates/custom",
        "POST /v1/apps/{app}/certificates/{hostname}/check",
        "DELETE /v1/apps/{app}/certificates/{hostname}",
        "DELETE /v1/apps/{app}/certificates/{hostname}/acme",
        "DELETE /v1/apps/{app}/certificates/{hostname}/custom",
    ] {
        assert_eq!(counts.get(mutation), 0, "{mutation}");
    }
    assert_eq!(fingerprints.len(), 3);
    assert!(
        fingerprints
            .iter()
            .all(|f| *f == format!("{APP}/cert_not_ready/-/acme_rate_limited:{LIMITED}")),
        "{fingerprints:?}"
    );
    let status = restarted.status();
    assert_eq!(status[0].next_check_at, t + chrono::Duration::hours(3));
    sim.shutdown().await;
}

/// Fly unreachable: the API view is unknown; with the handshake unknown too, nothing is found.
#[tokio::test]
async fn fly_down_and_no_handshake_finds_nothing() {
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let fly = FlyClient::new(
        Endpoints::origin(&format!("http://{dead}")),
        Secret::new("test-token"),
    )
    .unwrap();
    let probe = TlsProbe::new()
        .with_roots(other_roots())
        .with_timeout(Duration::from_millis(200))
        .connect_to(SOON, dead);
    let checker = CertChecker::new(fly, probe);
    tokio::time::pause();
    let run = checker
        .check_certs(&[window("web", &[SOON], "24h")], now())
        .await;
    assert!(run.findings().is_empty(), "{:?}", run.findings());
    assert!(run.signals.is_empty());
    assert!(run.assessments[0].is_unknown());
}

/// The certificate check wired into the maintenance pipeline (issue #6): `opsctl maintenance
/// run-once --check cert-expiry` hands a `CertWindow` hostname served with a 13-day
/// certificate to the checker and reports the alert, with a `cert_expiring` signal, exit 2.
#[tokio::test(flavor = "multi_thread")]
async fn run_once_reports_a_13_day_certificate_as_an_alert() {
    let pki = Pki::new();
    let hour = chrono::Duration::hours(1);
    let addr = pki.serve(SOON, now() + days(13) + hour).await;
    let later = pki.serve(LATER, now() + days(15) + hour).await;
    let out = tokio::task::spawn_blocking(move || {
        let sim = common::Sim::start();
        let ws = common::Workspace::new(common::OLD);
        std::fs::write(
            ws.manifests().join("certs.yaml"),
            format!(
                "apiVersion: opsctl.dev/v1alpha1\nkind: CertWindow\nmetadata: {{name: lowendinsight}}\nspec:\n  hostnames: [{SOON}, {LATER}]\n"
            ),
        )
        .unwrap();
        ws.opsctl(&sim)
            .args(["maintenance", "run-once", "--check", "cert-expiry", "-o", "json"])
            .args(["--connect-to", &format!("{SOON}={addr}")])
            .args(["--connect-to", &format!("{LATER}={later}")])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = common::text(&out);
    assert_eq!(out.status.code(), Some(2), "an alert exits 2: {text}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect(&text);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "one result per app: {v}");
    assert_eq!(results[0]["check"], "certExpiry");
    assert_eq!(results[0]["app"], "lowendinsight");
    assert_eq!(results[0]["status"], "alert");
    let summary = results[0]["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("{SOON} 13 days left")),
        "{summary}"
    );
    assert!(
        summary.contains(&format!("{LATER} 15 days left")),
        "{summary}"
    );
    let signals = v["signals"].as_array().unwrap();
    let expiring: Vec<_> = signals
        .iter()
        .filter(|s| s["kind"] == "cert_expiring")
        .collect();
    assert_eq!(
        expiring.len(),
        1,
        "only the 13-day certificate: {signals:?}"
    );
    assert_eq!(expiring[0]["class"], format!("expiring:{SOON}"));
    assert_eq!(expiring[0]["app"], "lowendinsight");
}
