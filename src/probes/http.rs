//! The HTTP probe (`spec.health.probes[].http {url, expectStatus, bodyContains, timeout}`): one
//! `GET`, judged on its status and, when asked, on its body.
//!
//! What counts: a status other than `expectStatus` is [`ProbeResult::Failed`], and so is a body
//! without `bodyContains`; no answer at all (DNS, connect, TLS, the request's `timeout`) is
//! [`ProbeResult::Unknown`]. Redirects are followed (up to 10, reqwest's default) unless
//! `expectStatus` is itself a redirect (3xx). At most [`BODY_LIMIT`] bytes of the body are read.
//! Reasons never carry the URL's credentials or query.

use std::time::Duration;

use opsctl_crds::flyapp::HttpProbe;

use super::ProbeResult;

/// How much of a body is read to look for `bodyContains` (1 MiB); the rest is not read.
pub const BODY_LIMIT: usize = 1 << 20;

/// Runs HTTP probes; cheap to clone (it holds reqwest clients, which pool connections).
#[derive(Debug, Clone)]
pub struct HttpProber {
    follow: reqwest::Client,
    no_follow: reqwest::Client,
}

/// The HTTP client could not be built (TLS backend initialisation): our side, not the app's.
#[derive(Debug, thiserror::Error)]
#[error("building the HTTP client for probes")]
pub struct ClientError(#[source] reqwest::Error);

impl HttpProber {
    /// A prober with its own clients (a `User-Agent` of `opsctl-probe/<version>`).
    ///
    /// # Errors
    /// [`ClientError`] when reqwest cannot build a client.
    pub fn new() -> Result<Self, ClientError> {
        let agent = concat!("opsctl-probe/", env!("CARGO_PKG_VERSION"));
        let build = |policy| {
            reqwest::Client::builder()
                .user_agent(agent)
                .redirect(policy)
                .build()
                .map_err(ClientError)
        };
        Ok(Self {
            follow: build(reqwest::redirect::Policy::default())?,
            no_follow: build(reqwest::redirect::Policy::none())?,
        })
    }

    /// Probe once. Never fails: what could not be seen is [`ProbeResult::Unknown`].
    pub async fn probe(&self, p: &HttpProbe) -> ProbeResult {
        let client = if (300..400).contains(&p.expect_status) {
            &self.no_follow
        } else {
            &self.follow
        };
        let timeout = p.timeout.get();
        let request = client.get(&p.url).timeout(timeout);
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return unknown(&e, timeout),
        };
        let status = response.status().as_u16();
        if status != p.expect_status || p.body_contains.is_none() {
            return judge(p, status, None);
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() >= BODY_LIMIT {
                        body.truncate(BODY_LIMIT);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return unknown(&e, timeout),
            }
        }
        judge(p, status, Some(&String::from_utf8_lossy(&body)))
    }
}

/// Judge an answer: `status` against `expectStatus`, then `body` (`None`: not read) against
/// `bodyContains`. Pure.
pub fn judge(p: &HttpProbe, status: u16, body: Option<&str>) -> ProbeResult {
    if status != p.expect_status {
        return ProbeResult::Failed {
            reason: format!(
                "GET {} answered status {status}, expected {}",
                redacted(&p.url),
                p.expect_status
            ),
        };
    }
    match (&p.body_contains, body) {
        (Some(needle), Some(body)) if !body.contains(needle.as_str()) => ProbeResult::Failed {
            reason: format!(
                "GET {} answered {status} but the body does not contain {needle:?}",
                redacted(&p.url)
            ),
        },
        (Some(_), None) => ProbeResult::Unknown {
            reason: "the body was not read".into(),
        },
        _ => ProbeResult::Passed,
    }
}

/// Why there was no answer, from reqwest's error chain (without the URL).
fn unknown(e: &reqwest::Error, timeout: Duration) -> ProbeResult {
    if e.is_timeout() {
        return ProbeResult::Unknown {
            reason: format!("no answer within {}", opsctl_crds::DurationStr(timeout)),
        };
    }
    let mut reason = if e.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !reason.ends_with(&text) {
            reason.push_str(": ");
            reason.push_str(&text);
        }
        source = s.source();
    }
    ProbeResult::Unknown { reason }
}

/// `url` without user info, query or fragment, for reasons and logs.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;

    use super::*;

    fn probe(url: String, body_contains: Option<&str>, timeout: &str) -> HttpProbe {
        HttpProbe {
            url,
            expect_status: 200,
            body_contains: body_contains.map(str::to_owned),
            timeout: timeout.parse().unwrap(),
        }
    }

    #[test]
    fn judging_answers() {
        let p = probe(
            "https://u:pw@app.fly.dev/?token=x".into(),
            Some("LowEndInsight"),
            "5s",
        );
        assert_eq!(
            judge(&p, 200, Some("<h1>LowEndInsight</h1>")),
            ProbeResult::Passed
        );
        let ProbeResult::Failed { reason } = judge(&p, 503, None) else {
            panic!()
        };
        assert_eq!(
            reason,
            "GET https://app.fly.dev/ answered status 503, expected 200"
        );
        assert!(!reason.contains("pw") && !reason.contains("token"));
        assert!(matches!(
            judge(&p, 200, Some("maintenance")),
            ProbeResult::Failed { .. }
        ));
        let no_body = probe("https://app.fly.dev/".into(), None, "5s");
        assert_eq!(judge(&no_body, 200, None), ProbeResult::Passed);
    }

    async fn serve(app: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// One test over real sockets: passing, failing, hanging and refused endpoints.
    #[tokio::test]
    async fn probes_a_real_server() {
        let addr = serve(
            Router::new()
                .route("/ok", get(|| async { "Welcome to LowEndInsight" }))
                .route(
                    "/down",
                    get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
                )
                .route(
                    "/hang",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        "late"
                    }),
                ),
        )
        .await;
        let prober = HttpProber::new().unwrap();
        let url = |path: &str| format!("http://{addr}{path}");
        assert_eq!(
            prober
                .probe(&probe(url("/ok"), Some("LowEndInsight"), "5s"))
                .await,
            ProbeResult::Passed
        );
        assert!(matches!(
            prober
                .probe(&probe(url("/ok"), Some("Grafana"), "5s"))
                .await,
            ProbeResult::Failed { .. }
        ));
        assert!(matches!(
            prober.probe(&probe(url("/down"), None, "5s")).await,
            ProbeResult::Failed { .. }
        ));
        let hang = prober.probe(&probe(url("/hang"), None, "300ms")).await;
        assert_eq!(
            hang,
            ProbeResult::Unknown {
                reason: "no answer within 300ms".into()
            }
        );
        // A port nobody listens on: bind one, then close it.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let refused = prober
            .probe(&probe(format!("http://{closed}/"), None, "2s"))
            .await;
        assert!(
            matches!(&refused, ProbeResult::Unknown { reason } if reason.starts_with("could not connect")),
            "{refused:?}"
        );
    }
}
