//! TLS certificates of an app, as the Machines REST certificates resource shows them
//! (NOTES.md §4.2; shapes in `../shared/fly-api/examples/certificate*.json`).
//!
//! A scenario lists each app's certificates ([`CertificateSpec`]: hostname, status, expiry
//! relative to the clock start, rate limit, validation errors); the handlers in [`routes`]
//! list, show, check, add (ACME or custom) and delete them. Expiry and rate limits are on the
//! virtual clock, so advancing it by 50 days brings a 60-day certificate into a 14-day
//! renewal window.
//!
//! What is simulated of validation: a certificate is `configured` when its DNS is
//! (`dnsConfigured`; new certificates for `*.fly.dev` hostnames have it, others do not). A
//! `check` on a pending certificate whose DNS is configured and that is not rate limited
//! issues a Let's Encrypt certificate valid 90 days from the check. Nothing else changes a
//! certificate by itself; DNS lookups, ACME and PEM parsing are not simulated.
//!
//! The JSON types here mirror Fly's wire shapes field by field; the Fly client has no
//! certificates yet, so they live with the simulator until it does.

mod routes;

pub use routes::routes;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::clock::{DurationStr, to_chrono};
use super::ids::fnv64;

/// How long a certificate the simulator issues is valid (Let's Encrypt: 90 days).
const ISSUED_VALIDITY_DAYS: i64 = 90;

/// A certificate as written under `apps[].certificates` in a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificateSpec {
    /// The hostname, e.g. `lowendinsight.fly.dev` or `*.example.com`.
    pub hostname: Spanned<String>,
    /// `active` (default), `pending_validation` or `pending_ownership`.
    #[serde(default)]
    pub status: CertStatus,
    /// `fly` (ACME, default) or `custom` (imported).
    #[serde(default)]
    pub source: CertSource,
    /// Expiry of the issued certificate, from the clock start (default `90d` for an active
    /// one). Give this or `expiresAt`.
    #[serde(default)]
    pub expires_in: Option<DurationStr>,
    /// Expiry as an RFC 3339 time (for one that has already expired, say).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// DNS points at the app (default: `true` when `active`).
    #[serde(default)]
    pub dns_configured: Option<bool>,
    /// The DNS provider Fly detected (default `unknown`).
    #[serde(default = "default_dns_provider")]
    pub dns_provider: String,
    /// ACME is rate limited until the clock start plus this.
    #[serde(default)]
    pub rate_limited_for: Option<DurationStr>,
    /// Issuer of a custom certificate (default `Custom CA`).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Validation errors to report, stamped with the clock start.
    #[serde(default)]
    pub validation_errors: Vec<ValidationErrorSpec>,
}

/// One validation error in a scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidationErrorSpec {
    /// E.g. `DNS_NOT_CONFIGURED`, `CAA_RECORD_MISSING_FLY`.
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// What to do (default empty).
    #[serde(default)]
    pub remediation: String,
}

/// A certificate's status (Fly's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertStatus {
    /// Issued and served.
    #[default]
    Active,
    /// Waiting for DNS / ACME validation.
    PendingValidation,
    /// Waiting for the ownership TXT record.
    PendingOwnership,
}

/// Where a certificate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertSource {
    /// Issued by Fly through ACME (Let's Encrypt).
    #[default]
    Fly,
    /// Imported (`fullchain` + `private_key`).
    Custom,
}

impl CertificateSpec {
    /// Problems a scenario loader reports: an empty hostname, both expiry forms.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let host = &self.hostname.value;
        if !valid_hostname(host) {
            out.push(format!("certificate hostname {host:?} is not a hostname"));
        }
        if self.expires_in.is_some() && self.expires_at.is_some() {
            out.push(format!(
                "certificate {host}: give `expiresIn` or `expiresAt`, not both"
            ));
        }
        out
    }
}

/// `example.com`, `*.example.com`: dot-separated labels of letters, digits and `-`.
pub fn valid_hostname(host: &str) -> bool {
    let rest = host.strip_prefix("*.").unwrap_or(host);
    rest.contains('.')
        && rest.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// One issued certificate (ACME or custom).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// `active` or pending.
    pub status: CertStatus,
    /// Issued at, virtual time.
    pub created_at: DateTime<Utc>,
    /// Expires at, virtual time.
    pub expires_at: DateTime<Utc>,
    /// Custom certificates: the issuer.
    pub issuer: Option<String>,
}

/// A certificate in the simulated world.
#[derive(Debug, Clone)]
pub struct SimCertificate {
    /// Hostname.
    pub hostname: String,
    /// Overall status.
    pub status: CertStatus,
    /// ACME was asked for.
    pub acme_requested: bool,
    /// The ACME certificate, once issued.
    pub fly: Option<Issued>,
    /// The imported certificate.
    pub custom: Option<Issued>,
    /// DNS points at the app.
    pub dns_configured: bool,
    /// Detected DNS provider.
    pub dns_provider: String,
    /// ACME rate limited until, virtual time.
    pub rate_limited_until: Option<DateTime<Utc>>,
    /// Reported validation errors.
    pub validation_errors: Vec<ValidationError>,
    /// Added at, virtual time.
    pub created_at: DateTime<Utc>,
    /// Last change, virtual time.
    pub updated_at: DateTime<Utc>,
}

impl SimCertificate {
    /// The certificate a scenario describes; `start` is the virtual clock's start.
    pub fn from_spec(spec: &CertificateSpec, start: DateTime<Utc>) -> Self {
        let expires_at = spec.expires_at.unwrap_or_else(|| {
            let d = spec
                .expires_in
                .map_or(chrono::Duration::days(ISSUED_VALIDITY_DAYS), |d| {
                    to_chrono(d.0)
                });
            start + d
        });
        let issued = Issued {
            status: spec.status,
            created_at: expires_at - chrono::Duration::days(ISSUED_VALIDITY_DAYS),
            expires_at,
            issuer: None,
        };
        let created_at = issued.created_at.min(start);
        let (fly, custom) = match (spec.source, spec.status) {
            (CertSource::Fly, CertStatus::Active) => (Some(issued), None),
            (CertSource::Fly, _) => (None, None),
            (CertSource::Custom, _) => (
                None,
                Some(Issued {
                    issuer: Some(spec.issuer.clone().unwrap_or_else(|| "Custom CA".into())),
                    ..issued
                }),
            ),
        };
        Self {
            hostname: spec.hostname.value.clone(),
            status: spec.status,
            acme_requested: spec.source == CertSource::Fly,
            fly,
            custom,
            dns_configured: spec
                .dns_configured
                .unwrap_or(spec.status == CertStatus::Active),
            dns_provider: spec.dns_provider.clone(),
            rate_limited_until: spec.rate_limited_for.map(|d| start + to_chrono(d.0)),
            validation_errors: spec
                .validation_errors
                .iter()
                .map(|e| ValidationError {
                    code: e.code.clone(),
                    message: e.message.clone(),
                    remediation: e.remediation.clone(),
                    timestamp: rfc3339(start),
                })
                .collect(),
            created_at,
            updated_at: start,
        }
    }

    /// A new ACME certificate for `hostname`, pending validation.
    pub fn acme(hostname: &str, now: DateTime<Utc>) -> Self {
        Self {
            hostname: hostname.to_string(),
            status: CertStatus::PendingValidation,
            acme_requested: true,
            fly: None,
            custom: None,
            dns_configured: hostname.ends_with(".fly.dev"),
            dns_provider: default_dns_provider(),
            rate_limited_until: None,
            validation_errors: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Attaches an imported certificate (valid one year from `now`: the PEM is not parsed).
    pub fn import_custom(&mut self, now: DateTime<Utc>) {
        let status = if self.dns_configured {
            CertStatus::Active
        } else {
            CertStatus::PendingOwnership
        };
        self.custom = Some(Issued {
            status,
            created_at: now,
            expires_at: now + chrono::Duration::days(365),
            issuer: Some("Custom CA".to_string()),
        });
        if self.fly.is_none() {
            self.status = status;
        }
        self.updated_at = now;
    }

    /// What `check` does: a pending certificate with DNS configured and no rate limit gets
    /// a Let's Encrypt certificate valid 90 days from `now`.
    pub fn check(&mut self, now: DateTime<Utc>) {
        let limited = self.rate_limited_until.is_some_and(|t| t > now);
        if self.status == CertStatus::Active || !self.dns_configured || limited {
            return;
        }
        if self.acme_requested {
            self.fly = Some(Issued {
                status: CertStatus::Active,
                created_at: now,
                expires_at: now + chrono::Duration::days(ISSUED_VALIDITY_DAYS),
                issuer: None,
            });
        }
        if let Some(c) = &mut self.custom {
            c.status = CertStatus::Active;
        }
        self.status = CertStatus::Active;
        self.validation_errors.clear();
        self.updated_at = now;
    }

    /// `DELETE …/acme`: stops ACME and drops the Fly certificate.
    pub fn remove_acme(&mut self, now: DateTime<Utc>) {
        self.acme_requested = false;
        self.fly = None;
        self.status = self
            .custom
            .as_ref()
            .map_or(CertStatus::PendingValidation, |c| c.status);
        self.updated_at = now;
    }

    /// `DELETE …/custom`: drops the imported certificate.
    pub fn remove_custom(&mut self, now: DateTime<Utc>) {
        self.custom = None;
        self.status = self
            .fly
            .as_ref()
            .map_or(CertStatus::PendingValidation, |c| c.status);
        self.updated_at = now;
    }

    /// The list entry (`CertificateSummary`).
    pub fn summary(&self) -> CertificateSummary {
        CertificateSummary {
            hostname: self.hostname.clone(),
            status: self.status,
            dns_provider: self.dns_provider.clone(),
            acme_dns_configured: self.dns_configured && self.acme_requested,
            acme_alpn_configured: self.dns_configured && self.acme_requested,
            acme_http_configured: self.dns_configured && self.acme_requested,
            ownership_txt_configured: self.dns_configured,
            configured: self.status == CertStatus::Active,
            acme_requested: self.acme_requested,
            has_custom_certificate: self.custom.is_some(),
            has_fly_certificate: self.fly.is_some(),
            created_at: rfc3339(self.created_at),
            updated_at: rfc3339(self.updated_at),
        }
    }

    /// The full view (`CertificateDetail`) for app `app`.
    pub fn detail(&self, app: &str) -> CertificateDetail {
        let entry = |source: CertSource, i: &Issued| CertificateEntry {
            source,
            status: i.status,
            created_at: rfc3339(i.created_at),
            expires_at: rfc3339(i.expires_at),
            issuer: i.issuer.clone(),
            issued: match source {
                CertSource::Fly => vec![IssuedEntry {
                    kind: "ecdsa".to_string(),
                    expires_at: rfc3339(i.expires_at),
                    certificate_authority: "lets_encrypt".to_string(),
                }],
                CertSource::Custom => Vec::new(),
            },
        };
        let mut certificates = Vec::new();
        if let Some(c) = &self.custom {
            certificates.push(entry(CertSource::Custom, c));
        }
        if let Some(f) = &self.fly {
            certificates.push(entry(CertSource::Fly, f));
        }
        let d = self.dns_configured;
        CertificateDetail {
            hostname: self.hostname.clone(),
            configured: self.status == CertStatus::Active,
            acme_requested: self.acme_requested,
            status: self.status,
            dns_provider: self.dns_provider.clone(),
            rate_limited_until: self.rate_limited_until.map(rfc3339),
            certificates,
            validation: Validation {
                dns_configured: d,
                alpn_configured: d,
                http_configured: d,
                ownership_txt_configured: d,
            },
            dns_requirements: self.requirements(app),
            validation_errors: self.validation_errors.clone(),
            dns_records: None,
            warning: None,
        }
    }

    /// The detail plus `dns_records`, as `check` answers.
    pub fn checked(&self, app: &str) -> CertificateDetail {
        let req = self.requirements(app);
        let records = if self.dns_configured {
            DnsRecords {
                resolved_addresses: req.a.iter().chain(&req.aaaa).cloned().collect(),
                a: req.a.clone(),
                aaaa: req.aaaa.clone(),
                cname: Vec::new(),
                soa: Some(format!("ns1.{}", apex(&self.hostname))),
                acme_challenge_cname: Some(req.acme_challenge.target.clone()),
                ownership_txt: Some(req.ownership.app_value.clone()),
            }
        } else {
            DnsRecords::default()
        };
        CertificateDetail {
            dns_records: Some(records),
            ..self.detail(app)
        }
    }

    fn requirements(&self, app: &str) -> DnsRequirements {
        let h = fnv64(format!("{app}/{}", self.hostname).as_bytes());
        let bare = self.hostname.trim_start_matches("*.");
        DnsRequirements {
            a: vec![format!("137.66.{}.{}", (h >> 8) & 0xff, h & 0xff)],
            aaaa: vec![format!("2a09:8280:1::{:x}", (h >> 16) & 0xffff)],
            cname: format!("{app}.fly.dev"),
            acme_challenge: AcmeChallenge {
                name: format!("_acme-challenge.{bare}"),
                target: format!("{bare}.{:05x}.flydns.net", (h >> 32) & 0xfffff),
            },
            ownership: Ownership {
                name: format!("_fly-ownership.{bare}"),
                app_value: format!("app-{:010x}", h & 0xff_ffff_ffff),
                org_value: format!("org-{:010x}", (h >> 24) & 0xff_ffff_ffff),
            },
        }
    }
}

fn apex(host: &str) -> String {
    let labels: Vec<&str> = host.trim_start_matches("*.").split('.').collect();
    labels[labels.len().saturating_sub(2)..].join(".")
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn default_dns_provider() -> String {
    "unknown".to_string()
}

/// `CertificateSummary` (list entries), `certificates_list_resp.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateSummary {
    pub hostname: String,
    pub status: CertStatus,
    pub dns_provider: String,
    pub acme_dns_configured: bool,
    pub acme_alpn_configured: bool,
    pub acme_http_configured: bool,
    pub ownership_txt_configured: bool,
    pub configured: bool,
    pub acme_requested: bool,
    pub has_custom_certificate: bool,
    pub has_fly_certificate: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// `CertificateDetail`, `certificate_show_resp.json` (plus `dns_records` on check,
/// `certificate_check_resp.json`, and `warning` on custom delete).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateDetail {
    pub hostname: String,
    pub configured: bool,
    pub acme_requested: bool,
    pub status: CertStatus,
    pub dns_provider: String,
    pub rate_limited_until: Option<String>,
    pub certificates: Vec<CertificateEntry>,
    pub validation: Validation,
    pub dns_requirements: DnsRequirements,
    pub validation_errors: Vec<ValidationError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_records: Option<DnsRecords>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// One entry of `certificates` in a detail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateEntry {
    pub source: CertSource,
    pub status: CertStatus,
    pub created_at: String,
    pub expires_at: String,
    pub issuer: Option<String>,
    pub issued: Vec<IssuedEntry>,
}

/// One entry of `issued`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssuedEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub expires_at: String,
    pub certificate_authority: String,
}

/// `validation`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub dns_configured: bool,
    pub alpn_configured: bool,
    pub http_configured: bool,
    pub ownership_txt_configured: bool,
}

/// `dns_requirements`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsRequirements {
    pub a: Vec<String>,
    pub aaaa: Vec<String>,
    pub cname: String,
    pub acme_challenge: AcmeChallenge,
    pub ownership: Ownership,
}

/// `dns_requirements.acme_challenge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcmeChallenge {
    pub name: String,
    pub target: String,
}

/// `dns_requirements.ownership`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ownership {
    pub name: String,
    pub app_value: String,
    pub org_value: String,
}

/// One of `validation_errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    pub code: String,
    pub message: String,
    pub remediation: String,
    pub timestamp: String,
}

/// `dns_records` (check only): what DNS answers now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsRecords {
    pub a: Vec<String>,
    pub aaaa: Vec<String>,
    pub cname: Vec<String>,
    pub resolved_addresses: Vec<String>,
    pub soa: Option<String>,
    pub acme_challenge_cname: Option<String>,
    pub ownership_txt: Option<String>,
}
