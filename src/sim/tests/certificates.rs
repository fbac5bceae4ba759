//! The certificates resource: the LowEndInsight scenario's two hostnames, add/check/delete,
//! expiry and rate limits on the virtual clock, and shapes that match Fly's examples.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{APP, Sim};
use crate::sim::Scenario;
use crate::sim::certificates::{CertStatus, CertificateDetail, CertificateSummary};

const CERTS: &str = "/v1/apps/lowendinsight/certificates";
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";

/// Paths of every object key in `v` (`a.b[].c`), to compare shapes without values.
fn keys(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let path = format!("{prefix}.{k}");
                out.push(path.clone());
                keys(v, &path, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                keys(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

fn shape(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    keys(v, "", &mut out);
    out.sort();
    out.dedup();
    out
}

fn example(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fly-api/examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn lowendinsight_has_an_active_and_a_pending_certificate() {
    let sim = Sim::new();
    let (status, body) = sim.get(CERTS).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["total_count"], 2);
    assert!(body.get("next_cursor").is_none());
    let list: Vec<CertificateSummary> =
        serde_json::from_value(body["certificates"].clone()).unwrap();
    let hosts: Vec<(&str, CertStatus)> = list
        .iter()
        .map(|c| (c.hostname.as_str(), c.status))
        .collect();
    assert_eq!(
        hosts,
        [
            ("api.lowendinsight.example", CertStatus::PendingValidation),
            ("lowendinsight.fly.dev", CertStatus::Active),
        ]
    );

    let (status, body) = sim.get(&format!("{CERTS}/lowendinsight.fly.dev")).await;
    assert_eq!(status, StatusCode::OK);
    let detail: CertificateDetail = serde_json::from_value(body).unwrap();
    assert!(detail.configured);
    let clock_start = chrono::DateTime::parse_from_rfc3339(
        &sim.state
            .now()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
    .unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(&detail.certificates[0].expires_at).unwrap();
    let days = (expires - clock_start).num_hours() as f64 / 24.0;
    assert!((59.9..=60.1).contains(&days), "expires in {days} days");

    let (_, body) = sim.get(&format!("{CERTS}/api.lowendinsight.example")).await;
    let detail: CertificateDetail = serde_json::from_value(body).unwrap();
    assert_eq!(detail.status, CertStatus::PendingValidation);
    assert!(!detail.configured && detail.certificates.is_empty());
    assert_eq!(detail.validation_errors[0].code, "DNS_NOT_CONFIGURED");
}

#[tokio::test]
async fn shapes_match_flys_examples() {
    let sim = Sim::new();
    let (_, list) = sim.get(CERTS).await;
    assert_eq!(shape(&list), shape(&example("certificates_list_resp.json")));

    let (_, show) = sim.get(&format!("{CERTS}/lowendinsight.fly.dev")).await;
    let ours = shape(&show);
    for key in shape(&example("certificate_show_resp.json")) {
        assert!(ours.contains(&key), "show lacks {key}");
    }
    let (_, checked) = sim
        .call(
            Method::POST,
            &format!("{CERTS}/lowendinsight.fly.dev/check"),
            None,
        )
        .await;
    assert_eq!(
        shape(&checked),
        shape(&example("certificate_check_resp.json"))
    );
    let (_, acme) = sim
        .post(
            &format!("{CERTS}/acme"),
            json!({"hostname": "www.example.com"}),
        )
        .await;
    assert_eq!(
        shape(&acme),
        shape(&example("certificates_acme_create_resp.json"))
    );
    let (_, custom) = sim
        .post(
            &format!("{CERTS}/custom"),
            json!({"hostname": "shop.example.com", "fullchain": PEM, "private_key": KEY}),
        )
        .await;
    let mut want = example("certificates_custom_create_resp.json");
    want["certificates"][0]["issuer"] = json!("x");
    assert_eq!(shape(&custom), shape(&want));
}

#[tokio::test]
async fn add_check_and_delete() {
    let sim = Sim::new();
    let (status, body) = sim
        .post(
            &format!("{CERTS}/acme"),
            json!({"hostname": "staging.lowendinsight.fly.dev"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "pending_validation");
    let (status, body) = sim
        .post(
            &format!("{CERTS}/acme"),
            json!({"hostname": "staging.lowendinsight.fly.dev"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("already been taken")
    );
    let (status, _) = sim
        .post(&format!("{CERTS}/acme"), json!({"hostname": "not a host"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // A fly.dev hostname has DNS: check issues a 90-day certificate.
    let check = format!("{CERTS}/staging.lowendinsight.fly.dev/check");
    let (status, body) = sim.call(Method::POST, &check, None).await;
    assert_eq!(status, StatusCode::OK);
    let detail: CertificateDetail = serde_json::from_value(body).unwrap();
    assert_eq!(detail.status, CertStatus::Active);
    assert_eq!(
        detail.certificates[0].issued[0].certificate_authority,
        "lets_encrypt"
    );
    assert!(!detail.dns_records.unwrap().a.is_empty());

    // Without DNS, check changes nothing.
    let (_, body) = sim
        .call(
            Method::POST,
            &format!("{CERTS}/api.lowendinsight.example/check"),
            None,
        )
        .await;
    assert_eq!(body["status"], "pending_validation");
    assert_eq!(body["dns_records"]["a"], json!([]));

    let (status, _) = sim
        .post(
            &format!("{CERTS}/custom"),
            json!({"hostname": "shop.example.com", "fullchain": "nope", "private_key": KEY}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = sim
        .post(
            &format!("{CERTS}/custom"),
            json!({"hostname": "lowendinsight.fly.dev", "fullchain": PEM, "private_key": KEY}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["certificates"].as_array().unwrap().len(),
        2,
        "custom + fly"
    );
    let (status, body) = sim
        .call(
            Method::DELETE,
            &format!("{CERTS}/lowendinsight.fly.dev/custom"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["warning"]
            .as_str()
            .unwrap()
            .contains("Fly certificate")
    );
    let (_, body) = sim
        .call(
            Method::DELETE,
            &format!("{CERTS}/lowendinsight.fly.dev/acme"),
            None,
        )
        .await;
    assert_eq!(
        (body["acme_requested"].clone(), body["certificates"].clone()),
        (json!(false), json!([]))
    );

    let one = format!("{CERTS}/staging.lowendinsight.fly.dev");
    assert_eq!(
        sim.call(Method::DELETE, &one, None).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = sim.get(&one).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "certificate not found"})
        )
    );
    assert_eq!(
        sim.get("/v1/apps/nope/certificates").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn wildcards_paging_and_filters() {
    let sim = Sim::new();
    let (status, _) = sim
        .post(
            &format!("{CERTS}/acme"),
            json!({"hostname": "*.lowendinsight.example"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = sim.get(&format!("{CERTS}/%2A.lowendinsight.example")).await;
    assert_eq!(
        (status, &body["hostname"]),
        (StatusCode::OK, &json!("*.lowendinsight.example"))
    );
    let (_, page) = sim.get(&format!("{CERTS}?limit=2")).await;
    assert_eq!(page["certificates"].as_array().unwrap().len(), 2);
    assert_eq!(
        (page["total_count"].clone(), page["next_cursor"].clone()),
        (json!(3), json!("2"))
    );
    let (_, rest) = sim.get(&format!("{CERTS}?limit=2&cursor=2")).await;
    assert_eq!(rest["certificates"].as_array().unwrap().len(), 1);
    let (_, only) = sim.get(&format!("{CERTS}?filter=fly.dev")).await;
    assert_eq!(only["total_count"], 1);
}

#[tokio::test]
async fn expiry_and_rate_limits_are_on_the_virtual_clock() {
    let scenario = Scenario::from_yaml(
        "\
timeScale: 0.000001
clockStart: \"2026-03-01T12:00:00Z\"
apps:
  - name: lowendinsight
    certificates:
      - {hostname: old.example.com, expiresAt: \"2026-02-20T00:00:00Z\"}
      - {hostname: soon.example.com, expiresIn: 13d}
      - hostname: limited.example.com
        status: pending_validation
        dnsConfigured: true
        rateLimitedFor: 1h
        validationErrors:
          - {code: RATE_LIMITED, message: too many certificates for this domain}
",
    )
    .unwrap();
    let sim = Sim::with(scenario);
    let expiry = |body: Value| body["certificates"][0]["expires_at"].clone();
    assert_eq!(
        expiry(sim.get(&format!("{CERTS}/old.example.com")).await.1),
        json!("2026-02-20T00:00:00Z")
    );
    assert_eq!(
        expiry(sim.get(&format!("{CERTS}/soon.example.com")).await.1),
        json!("2026-03-14T12:00:00Z")
    );
    let check = format!("{CERTS}/limited.example.com/check");
    let (_, body) = sim.call(Method::POST, &check, None).await;
    assert_eq!(body["status"], "pending_validation");
    assert_eq!(body["rate_limited_until"], "2026-03-01T13:00:00Z");
    sim.advance_ms(3_600_000);
    let (_, body) = sim.call(Method::POST, &check, None).await;
    assert_eq!(body["status"], "active");
    assert_eq!(body["validation_errors"], json!([]));
    assert_eq!(APP, "lowendinsight");
}

#[test]
fn certificate_specs_are_checked() {
    let e = Scenario::from_yaml(
        "apps:\n  - name: a\n    certificates:\n      - {hostname: nodots}\n      - {hostname: a.example.com, expiresIn: 1d, expiresAt: \"2026-01-01T00:00:00Z\"}\n      - {hostname: a.example.com}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("scenario:4:") && e.contains("not a hostname"),
        "{e}"
    );
    assert!(e.contains("not both"), "{e}");
    assert!(
        e.contains("scenario:6:") && e.contains("duplicate certificate"),
        "{e}"
    );
}
