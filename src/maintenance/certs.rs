//! The certificate check: for every `CertWindow` hostname that is due, read Fly's view
//! (`GET /v1/apps/{app}/certificates/{hostname}`) and the served certificate (a TLS handshake
//! to the hostname on port 443), let `opsctl_controllers::certs::assess` decide, and keep the
//! last result per hostname for `opsctl status`.
//!
//! Read-only: the only Fly calls are `GET`s ([`crate::fly::certificates`]); a certificate is
//! never checked, deleted or re-added from here (BUG-21). A hostname whose certificate is stuck
//! on a CA rate limit is looked at no more than hourly
//! (`opsctl_controllers::certs::next_check_at`), and that survives a restart when the checker
//! has a state file.
//!
//! The handshake ([`TlsProbe`]) uses rustls with a capturing verifier: the platform's verifier
//! (the same one reqwest uses) gives the trust verdict, which is recorded, and the handshake
//! goes on whatever it says, so an expired or untrusted certificate is still read. `notAfter`
//! comes from the leaf with x509-parser. A failed connect or handshake is `Unknown`, never
//! "expired". One crypto provider: aws-lc-rs, passed explicitly, so no process-wide default
//! is needed (`../shared/reference/rust-crates.md`, "TLS certificate expiry probe").

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use opsctl_controllers::certs::{
    CertAssessment, CertFinding, FlyCertObservation, HandshakeObservation, TlsVerdict, assess,
    next_check_at,
};
use opsctl_controllers::signal::Signal;
use opsctl_crds::Manifest;
use opsctl_crds::kinds::CertWindowSpec;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;

use crate::fly::FlyClient;

/// Connect plus handshake must finish within this, or the handshake's view is unknown.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the trust verdict comes from.
#[derive(Debug, Clone)]
enum Trust {
    /// The operating system's roots, through rustls-platform-verifier (as reqwest does).
    Platform,
    /// These roots only (tests, private CAs).
    Roots(Arc<RootCertStore>),
}

/// A TLS handshake that reads the served leaf's `notAfter`, expired or not.
#[derive(Debug, Clone)]
pub struct TlsProbe {
    trust: Trust,
    port: u16,
    timeout: Duration,
    connect_to: HashMap<String, SocketAddr>,
}

impl Default for TlsProbe {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsProbe {
    /// Port 443, the platform's roots, [`HANDSHAKE_TIMEOUT`], DNS for addresses.
    pub fn new() -> Self {
        Self {
            trust: Trust::Platform,
            port: 443,
            timeout: HANDSHAKE_TIMEOUT,
            connect_to: HashMap::new(),
        }
    }

    /// Trust only `roots` for the verdict (a private CA, or a test's).
    pub fn with_roots(mut self, roots: RootCertStore) -> Self {
        self.trust = Trust::Roots(Arc::new(roots));
        self
    }

    /// Connect to `addr` for `hostname` instead of resolving it (as `curl --connect-to`);
    /// SNI and verification still use `hostname`.
    pub fn connect_to(mut self, hostname: &str, addr: SocketAddr) -> Self {
        self.connect_to.insert(hostname.to_owned(), addr);
        self
    }

    /// Use `timeout` for connect plus handshake.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Handshakes with `hostname` (SNI = `hostname`) and reads the leaf. A wildcard name is
    /// [`HandshakeObservation::NotApplicable`]; anything that goes wrong (DNS, refused,
    /// timeout, TLS alert, no certificate, unreadable DER) is
    /// [`HandshakeObservation::Unknown`] with the reason.
    pub async fn handshake(&self, hostname: &str) -> HandshakeObservation {
        if hostname.starts_with("*.") {
            return HandshakeObservation::NotApplicable;
        }
        match tokio::time::timeout(self.timeout, self.handshake_inner(hostname)).await {
            Ok(Ok(seen)) => seen,
            Ok(Err(why)) => HandshakeObservation::Unknown { why },
            Err(_) => HandshakeObservation::Unknown {
                why: format!(
                    "no TLS handshake with {hostname} within {}s",
                    self.timeout.as_secs()
                ),
            },
        }
    }

    async fn handshake_inner(&self, hostname: &str) -> Result<HandshakeObservation, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let inner: Arc<dyn ServerCertVerifier> = match &self.trust {
            Trust::Platform => Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone())
                    .map_err(|e| format!("loading the platform's trust roots: {e}"))?,
            ),
            Trust::Roots(roots) => rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.clone(),
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("building the verifier: {e}"))?,
        };
        let capturing = Arc::new(Capturing {
            inner,
            verdict: Mutex::new(None),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS configuration: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(capturing.clone())
            .with_no_client_auth();
        let name = ServerName::try_from(hostname.to_owned())
            .map_err(|e| format!("`{hostname}` is not a server name: {e}"))?;
        let tcp = match self.connect_to.get(hostname) {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect((hostname, self.port)).await,
        }
        .map_err(|e| format!("connecting to {hostname}:{}: {e}", self.port))?;
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with {hostname}: {e}"))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| format!("{hostname} sent no certificate"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| format!("reading {hostname}'s certificate: {e}"))?;
        let secs = cert.validity().not_after.timestamp();
        let not_after = DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| format!("{hostname}'s notAfter is out of range"))?;
        let verdict = capturing
            .verdict
            .lock()
            .map(|v| v.clone())
            .unwrap_or(None)
            .unwrap_or(TlsVerdict::Untrusted {
                reason: "not verified".to_owned(),
            });
        Ok(HandshakeObservation::Seen { not_after, verdict })
    }
}

/// Records the real verifier's verdict on the chain and lets the handshake go on, so the leaf
/// can be read even when it is expired or untrusted. Signatures are still checked by the real
/// verifier: the peer must hold the certificate's key.
#[derive(Debug)]
struct Capturing {
    inner: Arc<dyn ServerCertVerifier>,
    verdict: Mutex<Option<TlsVerdict>>,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(_) => TlsVerdict::Trusted,
            Err(e) => TlsVerdict::Untrusted {
                reason: e.to_string(),
            },
        };
        if let Ok(mut slot) = self.verdict.lock() {
            *slot = Some(verdict);
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The last check of one hostname, as `opsctl status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertHostStatus {
    /// What was seen and decided (app, hostname, both views, `not_after`, `remaining`
    /// (`seconds` is `opsctl_cert_expiry_seconds`), findings).
    #[serde(flatten)]
    pub last: CertAssessment,
    /// When this hostname is checked next (UTC).
    pub next_check_at: DateTime<Utc>,
}

/// The outcome of one [`CertChecker::check_certs`] call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CertCheckRun {
    /// One per hostname checked in this call (hostnames not yet due are skipped).
    pub assessments: Vec<CertAssessment>,
    /// The signals the windows' `onShort` asks for (none for `report`).
    pub signals: Vec<Signal>,
}

impl CertCheckRun {
    /// Every finding of this run.
    pub fn findings(&self) -> Vec<CertFinding> {
        self.assessments
            .iter()
            .flat_map(|a| a.findings.iter().cloned())
            .collect()
    }
}

/// Why the checker's state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertStateError {
    /// Reading or writing the file failed.
    #[error("certificate check state {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Where `opsctl run` keeps the certificate checker's state under the state directory
/// (`<state>/maintenance/certs.json`): a JSON array of [`CertHostStatus`], rewritten after
/// every check; `opsctl status` reads it.
pub fn state_path(state_dir: &Path) -> PathBuf {
    state_dir.join("maintenance").join("certs.json")
}

/// The per-hostname status `opsctl run` last wrote under `state_dir`, sorted by app then
/// hostname; empty when there is none yet.
///
/// # Errors
/// [`CertStateError`] when the file exists but cannot be read or parsed.
pub fn load_status(state_dir: &Path) -> Result<Vec<CertHostStatus>, CertStateError> {
    let path = state_path(state_dir);
    let io = |source| CertStateError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| io(std::io::Error::other(e))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io(e)),
    }
}

/// Runs certificate checks and remembers the last result per (app, hostname).
#[derive(Debug)]
pub struct CertChecker {
    fly: FlyClient,
    tls: TlsProbe,
    state_file: Option<PathBuf>,
    hosts: Mutex<BTreeMap<(String, String), CertHostStatus>>,
}

impl CertChecker {
    /// A checker reading Fly through `fly` (which only ever sends `GET`s from here) and
    /// handshaking with `tls`. State lives in memory only.
    pub fn new(fly: FlyClient, tls: TlsProbe) -> Self {
        Self {
            fly,
            tls,
            state_file: None,
            hosts: Mutex::new(BTreeMap::new()),
        }
    }

    /// Keeps the last result per hostname in `path` (JSON, rewritten after every check), so the
    /// hourly limit on rate-limited certificates holds across restarts. Loads it if it exists;
    /// an unreadable file is ignored with a warning (every hostname is then due).
    ///
    /// # Errors
    /// [`CertStateError`] when the file exists but cannot be read.
    pub fn with_state_file(mut self, path: &Path) -> Result<Self, CertStateError> {
        match std::fs::read(path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<CertHostStatus>>(&bytes) {
                Ok(list) => {
                    let mut hosts = self.lock();
                    for h in list {
                        hosts.insert((h.last.app.clone(), h.last.hostname.clone()), h);
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable certificate check state");
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(CertStateError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        self.state_file = Some(path.to_owned());
        Ok(self)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), CertHostStatus>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks every hostname of `windows` that is due at `now` (UTC): never checked, or its
    /// `next_check_at` has come. Per hostname, Fly's view and the handshake run together.
    /// Hostnames no longer in any window are forgotten.
    pub async fn check_certs(
        &self,
        windows: &[Manifest<CertWindowSpec>],
        now: DateTime<Utc>,
    ) -> CertCheckRun {
        let mut run = CertCheckRun::default();
        let mut wanted = Vec::new();
        for w in windows {
            let app = w.spec.app_name(w.name()).to_owned();
            for host in &w.spec.hostnames {
                let key = (app.clone(), host.clone());
                wanted.push(key.clone());
                let due = self.lock().get(&key).is_none_or(|h| now >= h.next_check_at);
                if !due {
                    continue;
                }
                let (fly, handshake) =
                    tokio::join!(self.fly_view(&app, host), self.tls.handshake(host));
                let a = assess(&app, host, &w.spec, fly, handshake, now);
                let next = next_check_at(now, a.rate_limited_until(), w.spec.interval.get());
                tracing::info!(
                    app = %app,
                    hostname = %host,
                    days_left = a.remaining.map(|r| r.days_left),
                    findings = a.findings.len(),
                    next_check_at = %next,
                    "certificate checked"
                );
                run.signals.extend(a.signals(w.spec.on_short));
                self.lock().insert(
                    key,
                    CertHostStatus {
                        last: a.clone(),
                        next_check_at: next,
                    },
                );
                run.assessments.push(a);
            }
        }
        self.lock().retain(|k, _| wanted.contains(k));
        self.save();
        run
    }

    async fn fly_view(&self, app: &str, hostname: &str) -> FlyCertObservation {
        match self.fly.get_certificate(app, hostname).await {
            Ok(Some(d)) => FlyCertObservation::Seen(d.to_view()),
            Ok(None) => FlyCertObservation::Missing,
            Err(e) => FlyCertObservation::Unknown { why: e.to_string() },
        }
    }

    fn save(&self) {
        let Some(path) = &self.state_file else {
            return;
        };
        let list = self.status();
        let write = || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&list).unwrap_or_default())?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::warn!(path = %path.display(), error = %e, "could not save certificate check state");
        }
    }

    /// The last result per hostname, sorted by app then hostname (for `opsctl status` and the
    /// `opsctl_cert_expiry_seconds` metric: `last.remaining.seconds`).
    pub fn status(&self) -> Vec<CertHostStatus> {
        self.lock().values().cloned().collect()
    }
}
