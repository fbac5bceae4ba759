//! Reading an app's TLS certificates through the Machines REST certificates resource
//! (`/v1/apps/{app}/certificates…`; `../shared/fly-api/NOTES.md` §4.2, shapes in
//! `../shared/fly-api/examples/certificate*.json`), and converting what Fly shows into the
//! domain's [`FlyCertView`].
//!
//! Read-only on purpose: only `GET` list and `GET` show. The maintenance pipeline never adds,
//! checks, deletes or re-orders a certificate (case BUG-21: a new order counts against the CA's
//! rate limit, and the cure for a rate limit is waiting).
//!
//! The wire types mirror Fly's field names and read only what opsctl uses; unknown fields are
//! ignored, so Fly adding a field never breaks a check. (The simulator keeps its own, complete
//! copies in `crate::sim::certificates`.)

use chrono::{DateTime, Utc};
use opsctl_controllers::certs::{DnsRecord, FlyCertStatus, FlyCertView, parse_cert_time};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::fly::client::{FlyClient, REQUEST_TIMEOUT};
use crate::fly::error::{FlyError, FlyErrorKind};
use crate::fly::transport::{Call, RetryPolicy, enc};

/// `CertificateSummary`, one entry of the list (`certificates_list_resp.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// The hostname.
    pub hostname: String,
    /// `active`, `pending_validation`, `pending_ownership`, …
    pub status: String,
    /// Ready to be served.
    #[serde(default)]
    pub configured: bool,
    /// ACME (Let's Encrypt) was asked for.
    #[serde(default)]
    pub acme_requested: bool,
    /// An imported certificate exists.
    #[serde(default)]
    pub has_custom_certificate: bool,
    /// A Fly-issued certificate exists.
    #[serde(default)]
    pub has_fly_certificate: bool,
}

/// `GET …/certificates` answer.
#[derive(Debug, Clone, Deserialize)]
struct CertificateList {
    #[serde(default)]
    certificates: Vec<CertificateSummary>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// `CertificateDetail` (`certificate_show_resp.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateDetail {
    /// The hostname.
    pub hostname: String,
    /// Ready to be served.
    #[serde(default)]
    pub configured: bool,
    /// ACME was asked for.
    #[serde(default)]
    pub acme_requested: bool,
    /// `active`, `pending_validation`, `pending_ownership`, …
    pub status: String,
    /// RFC 3339 time until which the CA refuses new orders; `null` when not limited.
    #[serde(default)]
    pub rate_limited_until: Option<String>,
    /// Issued certificates (ACME and custom).
    #[serde(default)]
    pub certificates: Vec<CertificateEntry>,
    /// What Fly found in DNS.
    #[serde(default)]
    pub validation: Option<Validation>,
    /// The records Fly asks for.
    #[serde(default)]
    pub dns_requirements: Option<DnsRequirements>,
    /// Why validation failed.
    #[serde(default)]
    pub validation_errors: Vec<ValidationError>,
}

/// One of `certificates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateEntry {
    /// `fly` or `custom`.
    pub source: String,
    /// `active`, `pending_validation`, …
    pub status: String,
    /// RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// Issuer of a custom certificate.
    #[serde(default)]
    pub issuer: Option<String>,
}

/// `validation`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// DNS points at the app.
    #[serde(default)]
    pub dns_configured: bool,
    /// TLS-ALPN-01 can validate.
    #[serde(default)]
    pub alpn_configured: bool,
    /// HTTP-01 can validate.
    #[serde(default)]
    pub http_configured: bool,
    /// The `_fly-ownership` TXT record is in place.
    #[serde(default)]
    pub ownership_txt_configured: bool,
}

/// `dns_requirements`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsRequirements {
    /// A records for the hostname.
    #[serde(default)]
    pub a: Vec<String>,
    /// AAAA records for the hostname.
    #[serde(default)]
    pub aaaa: Vec<String>,
    /// CNAME target (instead of A/AAAA, for a non-apex name).
    #[serde(default)]
    pub cname: Option<String>,
    /// The ACME DNS-01 challenge CNAME.
    #[serde(default)]
    pub acme_challenge: Option<NameTarget>,
    /// The ownership TXT record.
    #[serde(default)]
    pub ownership: Option<OwnershipRecord>,
}

/// `dns_requirements.acme_challenge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NameTarget {
    /// Record name.
    pub name: String,
    /// CNAME target.
    pub target: String,
}

/// `dns_requirements.ownership`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnershipRecord {
    /// Record name.
    pub name: String,
    /// TXT value naming the app.
    pub app_value: String,
}

/// One of `validation_errors`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationError {
    /// `DNS_NOT_CONFIGURED`, `CAA_RECORD_MISSING_FLY`, …
    pub code: String,
    /// What is wrong.
    #[serde(default)]
    pub message: String,
}

impl CertificateDetail {
    /// Fly's view in domain terms. Unreadable times are left out (with a debug log line):
    /// a missing expiry is unknown, never "expired".
    pub fn to_view(&self) -> FlyCertView {
        let time = |s: &str| match parse_cert_time(s) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::debug!(hostname = %self.hostname, error = %e, "unreadable certificate time from Fly");
                None
            }
        };
        let expires_at: Vec<DateTime<Utc>> = self
            .certificates
            .iter()
            .filter_map(|c| c.expires_at.as_deref().and_then(time))
            .collect();
        let dns_configured = self
            .validation
            .as_ref()
            .map_or(self.configured, |v| v.dns_configured);
        FlyCertView {
            status: FlyCertStatus::from_wire(&self.status),
            configured: self.configured,
            dns_configured,
            expires_at,
            rate_limited_until: self.rate_limited_until.as_deref().and_then(time),
            validation_errors: self
                .validation_errors
                .iter()
                .map(|e| e.code.clone())
                .collect(),
            dns_requirements: self.requirements(),
        }
    }

    /// `dns_requirements` as a list of records: A and AAAA (or, for a subdomain, the CNAME
    /// instead), the ACME challenge CNAME and the ownership TXT.
    fn requirements(&self) -> Vec<DnsRecord> {
        let Some(r) = &self.dns_requirements else {
            return Vec::new();
        };
        let host = &self.hostname;
        let rec = |kind: &str, name: &str, value: &str| DnsRecord {
            kind: kind.to_owned(),
            name: name.to_owned(),
            value: value.to_owned(),
        };
        let mut out: Vec<DnsRecord> = r.a.iter().map(|v| rec("A", host, v)).collect();
        out.extend(r.aaaa.iter().map(|v| rec("AAAA", host, v)));
        if let Some(c) = &r.cname {
            out.push(rec("CNAME", host, &format!("{c} (instead of A/AAAA)")));
        }
        if let Some(c) = &r.acme_challenge {
            out.push(rec("CNAME", &c.name, &c.target));
        }
        if let Some(o) = &r.ownership {
            out.push(rec("TXT", &o.name, &o.app_value));
        }
        out
    }
}

impl FlyClient {
    fn certificates_call(&self, path: String) -> Call<'static> {
        Call {
            scope: crate::fly::client::app_of(&path).to_owned(),
            read: true,
            method: Method::GET,
            url: format!("{}{path}", self.endpoints.machines),
            path,
            action: "certificates",
            body: None,
            nonce: None,
            timeout: REQUEST_TIMEOUT,
            retry: RetryPolicy::Idempotent,
        }
    }

    /// `GET /v1/apps/{app}/certificates`, every page (`limit=500`, following `next_cursor`).
    ///
    /// # Errors
    /// [`FlyError`]; `NotFound` for an unknown app, `Unavailable` when Fly cannot be reached.
    pub async fn list_certificates(&self, app: &str) -> Result<Vec<CertificateSummary>, FlyError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/apps/{}/certificates?limit=500", enc(app));
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={}", enc(c)));
            }
            let page: CertificateList = self.transport.send(&self.certificates_call(path)).await?;
            let empty = page.certificates.is_empty();
            out.extend(page.certificates);
            match page.next_cursor {
                Some(c) if !empty && !c.is_empty() && cursor.as_deref() != Some(&c) => {
                    cursor = Some(c)
                }
                _ => return Ok(out),
            }
        }
    }

    /// `GET /v1/apps/{app}/certificates/{hostname}` (a wildcard goes as `%2A.example.com`).
    /// `Ok(None)` when Fly answers 404: the hostname was never added to the app.
    ///
    /// # Errors
    /// [`FlyError`]; `Unavailable` when Fly cannot be reached (the observation is unknown).
    pub async fn get_certificate(
        &self,
        app: &str,
        hostname: &str,
    ) -> Result<Option<CertificateDetail>, FlyError> {
        let path = format!("/v1/apps/{}/certificates/{}", enc(app), enc(hostname));
        match self
            .transport
            .send::<CertificateDetail>(&self.certificates_call(path))
            .await
        {
            Ok(d) => Ok(Some(d)),
            Err(e) if e.kind == FlyErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flys_example_converts_to_the_domain_view() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/fly-api/examples/certificate_show_resp.json");
        let text = std::fs::read_to_string(path).unwrap();
        let d: CertificateDetail = serde_json::from_str(&text).unwrap();
        let v = d.to_view();
        assert_eq!(v.status, FlyCertStatus::Active);
        assert!(v.configured && v.dns_configured);
        assert_eq!(v.expires_at.len(), 2);
        assert_eq!(
            v.expires_at[1],
            parse_cert_time("2024-04-15T12:00:00Z").unwrap()
        );
        assert_eq!(v.rate_limited_until, None);
        let kinds: Vec<&str> = v.dns_requirements.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(kinds, ["A", "AAAA", "CNAME", "CNAME", "TXT"]);
        assert_eq!(v.dns_requirements[4].name, "_fly-ownership.example.com");
    }

    #[test]
    fn a_rate_limit_and_an_unreadable_expiry_are_read_safely() {
        let d: CertificateDetail = serde_json::from_value(serde_json::json!({
            "hostname": "app.example.com", "status": "pending_validation", "configured": true,
            "rate_limited_until": "2025-06-03T12:00:00Z",
            "certificates": [{"source": "fly", "status": "pending_validation", "expires_at": "soon"}],
            "validation": {"dns_configured": true},
            "validation_errors": [], "some_new_field": 1
        }))
        .unwrap();
        let v = d.to_view();
        assert_eq!(v.status, FlyCertStatus::PendingValidation);
        assert!(v.expires_at.is_empty());
        assert_eq!(
            v.rate_limited_until,
            Some(parse_cert_time("2025-06-03T12:00:00Z").unwrap())
        );
    }
}
