//! One delivery: the payload of each target kind, the POST, and the retries.
//!
//! Payloads (`docs/notifications.md`):
//! - webhook: `{"kind":"opsctl.event","version":1,"event":{…Event}}`.
//! - Slack incoming webhook: `{"text":…,"blocks":[section, context]}` (Slack's
//!   "Sending messages using incoming webhooks"; `&`, `<`, `>` escaped as Slack asks).
//! - PagerDuty Events API v2 (`POST /v2/enqueue`, PagerDuty's events-v2 OpenAPI): trigger
//!   `{"routing_key","event_action":"trigger","dedup_key","payload":{"summary","source",
//!   "severity","timestamp","component","group","class","custom_details"},"client"}`, resolve
//!   `{"routing_key","event_action":"resolve","dedup_key"}`. 202 accepted; 400 is a bad event
//!   (not retried); 429 and 5xx are retried, as PagerDuty's retry guidance says.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use opsctl_crds::kinds::alert_route::{PAGERDUTY_EVENTS_URL, Target};
use serde_json::{Value, json};

use super::{Event, EventAction, NotifierConfig, ts};
use crate::secret::Secret;

/// Why a delivery attempt failed. Never holds a URL or key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The environment variable naming the URL or key is not set (or empty).
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The receiver answered with a status that will not change on retry (4xx but 429).
    #[error("rejected with HTTP {status}: {body}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The start of the answer (receivers echo the request, never the URL).
        body: String,
    },
    /// 5xx or 429: worth retrying.
    #[error("HTTP {status}")]
    Transient {
        /// HTTP status.
        status: u16,
        /// `Retry-After`, seconds, when sent.
        retry_after: Option<u64>,
    },
    /// Timeout, connection refused or reset: worth retrying.
    #[error("{0}")]
    Network(String),
}

impl DeliveryError {
    fn retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Network(_))
    }
}

/// The JSON body for `target` (the routing key inside a PagerDuty body is `routing_key`).
pub fn payload(target: &Target, event: &Event, routing_key: &str, source: &str) -> Value {
    match target.kind() {
        "slack" => slack(event),
        "pagerduty" => pagerduty(event, routing_key, source),
        _ => json!({"kind": "opsctl.event", "version": 1, "event": event}),
    }
}

/// Slack wants `&`, `<`, `>` escaped in text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack(e: &Event) -> Value {
    let head = match e.action {
        EventAction::Trigger => format!("[{}]", e.severity.as_str().to_uppercase()),
        EventAction::Resolve => "[RESOLVED]".to_owned(),
    };
    let app = e
        .app
        .as_deref()
        .map(|a| format!("{a}: "))
        .unwrap_or_default();
    let text = slack_escape(&format!("{head} {app}{}", e.title));
    let mut body = format!("*{text}*");
    if !e.detail.is_empty() {
        let mut detail = slack_escape(&e.detail);
        if detail.len() > 2500 {
            detail = super::truncate(&detail, 2500) + "…";
        }
        body.push('\n');
        body.push_str(&detail);
    }
    json!({
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(&format!(
                "opsctl · {} `{}` · {} · {}", e.kind, e.record, e.status, ts(e.at)
            ))}]},
        ],
    })
}

fn pagerduty(e: &Event, routing_key: &str, source: &str) -> Value {
    match e.action {
        EventAction::Resolve => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": e.dedup_key,
        }),
        EventAction::Trigger => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": e.dedup_key,
            "payload": {
                "summary": super::truncate(&e.title, 1024),
                "source": e.app.as_deref().unwrap_or(source),
                "severity": e.severity.pagerduty(),
                "timestamp": ts(e.at),
                "component": e.app,
                "group": e.kind,
                "class": e.kind,
                "custom_details": {"record": e.record, "status": e.status, "detail": e.detail},
            },
            "client": source,
        }),
    }
}

/// The URL and (PagerDuty) routing key of `target`, from the environment.
fn endpoint(target: &Target, cfg: &NotifierConfig) -> Result<(Secret, Secret), DeliveryError> {
    let env = |name: &str| -> Result<Secret, DeliveryError> {
        (cfg.env)(name)
            .filter(|v| !v.is_empty())
            .map(Secret::new)
            .ok_or_else(|| DeliveryError::MissingEnv(name.to_owned()))
    };
    if let Some(w) = &target.webhook {
        let url = match (&w.url, &w.url_env) {
            (Some(u), _) => Secret::new(u.clone()),
            (None, Some(name)) => env(name)?,
            (None, None) => return Err(DeliveryError::MissingEnv("url".into())),
        };
        return Ok((url, Secret::new("")));
    }
    if let Some(s) = &target.slack {
        return Ok((env(&s.webhook_url_env)?, Secret::new("")));
    }
    if let Some(p) = &target.pagerduty {
        let url = Secret::new(
            p.events_url
                .clone()
                .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_owned()),
        );
        return Ok((url, env(&p.routing_key_env)?));
    }
    Err(DeliveryError::Rejected {
        status: 0,
        body: "not a webhook, slack or pagerduty target".into(),
    })
}

/// One POST.
async fn send_once(
    client: &reqwest::Client,
    url: &Secret,
    body: &Value,
) -> Result<(), DeliveryError> {
    let resp = client
        .post(url.expose())
        .json(body)
        .send()
        .await
        // The error's text would include the URL (a secret for Slack and token webhooks).
        .map_err(|e| DeliveryError::Network(network_reason(&e.without_url())))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    if code == 429 || status.is_server_error() {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        return Err(DeliveryError::Transient {
            status: code,
            retry_after,
        });
    }
    let text = resp.text().await.unwrap_or_default();
    Err(DeliveryError::Rejected {
        status: code,
        body: super::truncate(text.trim(), 200),
    })
}

fn network_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(c) = src {
            s.push_str(": ");
            s.push_str(&c.to_string());
            src = c.source();
        }
        s
    }
}

/// The wait before the next attempt: the backoff's `d`, raised to a 429/5xx's `Retry-After`
/// (capped at `max`); `None` (no more attempts) stays `None`.
fn next_delay(e: &DeliveryError, d: Option<Duration>, max: Duration) -> Option<Duration> {
    match e {
        DeliveryError::Transient {
            retry_after: Some(s),
            ..
        } => d.map(|d| d.max(Duration::from_secs(*s).min(max))),
        _ => d,
    }
}

/// Deliver `event` to `target` with retries; `(attempts, result)`.
pub(super) async fn deliver(
    client: &reqwest::Client,
    cfg: &NotifierConfig,
    target: &Target,
    event: &Event,
) -> (usize, Result<(), DeliveryError>) {
    let (url, key) = match endpoint(target, cfg) {
        Ok(x) => x,
        Err(e) => return (0, Err(e)),
    };
    let body = payload(target, event, key.expose(), &cfg.source);
    let attempts = AtomicUsize::new(0);
    let max_delay = cfg.max_delay;
    let result = (|| async {
        attempts.fetch_add(1, Ordering::Relaxed);
        send_once(client, &url, &body).await
    })
    .retry(
        ExponentialBuilder::default()
            .with_min_delay(cfg.min_delay)
            .with_max_delay(cfg.max_delay)
            .with_max_times(cfg.retries)
            .with_jitter(),
    )
    .sleep(tokio::time::sleep)
    .when(DeliveryError::retryable)
    .adjust(move |e, d| next_delay(e, d, max_delay))
    .notify(|e, d| tracing::debug!(target = target.kind(), error = %e, retry_in = ?d, "notification attempt failed; retrying"))
    .await;
    (attempts.load(Ordering::Relaxed), result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_raises_the_backoff_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let ms = Duration::from_millis;
        let t = |ra| DeliveryError::Transient {
            status: 429,
            retry_after: ra,
        };
        assert_eq!(next_delay(&t(Some(5)), Some(ms(1000)), max), Some(ms(5000)));
        assert_eq!(next_delay(&t(Some(600)), Some(ms(1000)), max), Some(max));
        assert_eq!(next_delay(&t(Some(0)), Some(ms(1000)), max), Some(ms(1000)));
        assert_eq!(next_delay(&t(None), Some(ms(1000)), max), Some(ms(1000)));
        assert_eq!(next_delay(&t(Some(5)), None, max), None, "out of attempts");
        assert!(t(None).retryable());
        assert!(DeliveryError::Network("timed out".into()).retryable());
        assert!(
            !DeliveryError::Rejected {
                status: 404,
                body: String::new()
            }
            .retryable()
        );
    }
}
