//! Resolving `--fly` into a client (and, for `embedded`, a simulator started in-process).
//!
//! Both inputs are checked here, before any request, so a typo gets a message about the typo
//! rather than a `builder error` from the HTTP client: `--fly` must be `fly`, `embedded` or an
//! http(s) URL with a host and nothing after the path, and `FLY_API_TOKEN` must be one line
//! without spaces. Messages about the token never contain it.

use anyhow::Context;

use super::output::coded;

use crate::fly::{Endpoints, FlyClient};
use crate::secret::Secret;
use crate::sim;

/// Return a `config` error (the `--fly` flag or `FLY_API_TOKEN`; see `output`).
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(coded("config", format!($($arg)*)))
    };
}

/// A connected Fly target. Keeps an embedded simulator alive as long as it lives.
pub struct Target {
    /// The client.
    pub client: FlyClient,
    /// The in-process simulator for `--fly embedded`, kept alive while the target lives.
    pub _embedded: Option<sim::SimHandle>,
}

/// Token from `FLY_API_TOKEN` (checked by [`check_token`]); required except for the embedded
/// simulator, which accepts any token.
fn token(required: bool) -> anyhow::Result<Secret> {
    match std::env::var("FLY_API_TOKEN") {
        Ok(t) if !t.trim().is_empty() => check_token(&t),
        _ if !required => Ok(Secret::new("embedded-simulator")),
        _ => bail!(
            "FLY_API_TOKEN is not set: export a Fly API token (fly tokens create deploy), or use --fly embedded"
        ),
    }
}

/// `raw` trimmed, when it can go in an `Authorization` header: no whitespace or control
/// characters inside, except the one space of a `FlyV1 …` token. The error says what is wrong
/// and where, never the token itself.
///
/// # Errors
/// The token contains a line break, a space, a tab or another control character.
pub fn check_token(raw: &str) -> anyhow::Result<Secret> {
    let token = raw.trim();
    let body = token.strip_prefix("FlyV1 ").unwrap_or(token);
    let offset = token.chars().count() - body.chars().count();
    if let Some((i, c)) = body
        .chars()
        .enumerate()
        .find(|(_, c)| c.is_whitespace() || c.is_control())
    {
        let what = match c {
            '\n' | '\r' => "a line break",
            ' ' => "a space",
            '\t' => "a tab",
            c if c.is_whitespace() => "a whitespace character",
            _ => "a control character",
        };
        bail!(
            "FLY_API_TOKEN contains {what} (character {} of {}): a Fly token is one line with no \
             spaces; was a line break pasted with it? (`fly tokens create deploy` prints one)",
            offset + i + 1,
            token.chars().count()
        );
    }
    Ok(Secret::new(token))
}

/// Check a `--fly` URL: http or https, a host, no credentials (the token comes from
/// `FLY_API_TOKEN`), no query or fragment (API paths are appended to it). Returns it
/// normalised, without a trailing `/`.
///
/// # Errors
/// The URL does not parse (bad IP address, unclosed `[`, bad port…) or breaks a rule above.
pub fn check_url(text: &str) -> anyhow::Result<String> {
    let url = match reqwest::Url::parse(text) {
        Ok(url) => url,
        Err(e) => bail!(
            "--fly {text:?} is not a valid URL: {e} (expected `fly`, `embedded` or a URL like http://127.0.0.1:4280)"
        ),
    };
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "--fly: the URL has credentials in it; remove them (the token comes from FLY_API_TOKEN)"
        );
    }
    if !matches!(url.scheme(), "http" | "https") {
        bail!(
            "--fly {text:?}: expected `fly`, `embedded` or an http(s) URL, not a {}: URL",
            url.scheme()
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        bail!("--fly {text:?}: the URL has no host");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!(
            "--fly {}://{}: remove the `?…` or `#…` part; opsctl appends Fly's API paths to the URL",
            url.scheme(),
            url.host_str().unwrap_or_default()
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Resolve `--fly fly|embedded|URL`.
///
/// # Errors
/// Missing or malformed token, a malformed URL, or an embedded simulator that cannot start.
pub async fn connect(fly: &str) -> anyhow::Result<Target> {
    match fly {
        "fly" => Ok(Target {
            client: FlyClient::new(Endpoints::fly(), token(true)?)?,
            _embedded: None,
        }),
        "embedded" => {
            let token = token(false)?;
            let handle = sim::serve(
                sim::scenario::Scenario::lowendinsight_default(),
                ([127, 0, 0, 1], 0).into(),
            )
            .await
            .context("starting the embedded Fly simulator")?;
            let client = FlyClient::new(Endpoints::origin(&handle.base_url()), token)?;
            tracing::info!(url = %handle.base_url(), "embedded Fly simulator started");
            Ok(Target {
                client,
                _embedded: Some(handle),
            })
        }
        url if url.contains("://") => {
            let url = check_url(url)?;
            Ok(Target {
                client: FlyClient::new(Endpoints::origin(&url), token(true)?)?,
                _embedded: None,
            })
        }
        other => bail!("--fly {other:?}: expected `fly`, `embedded` or an http(s) URL"),
    }
}

/// The deployer `apply` and `run` share: the target's client, the state directory's record
/// store (opened for writing: one writer at a time), the system clock, and a stop signal fed by
/// SIGINT/SIGTERM (`signal::handle_stop_requests`). Returns it with the stop receiver.
///
/// # Errors
/// The state directory cannot be opened for writing.
pub fn deployer(
    target: &Target,
    global: &super::Global,
) -> anyhow::Result<(
    crate::runtime::deploy::Deployer,
    tokio::sync::watch::Receiver<bool>,
)> {
    use anyhow::Context;
    let store = std::sync::Arc::new(
        crate::records::RecordStore::open_write_at(global.store.as_deref(), &global.state)
            .context("opening the state directory")?,
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    super::signal::handle_stop_requests(stop_tx, global.log_format);
    // The deploy pipeline acts as `deployer`; a refused call leaves an escalation record.
    let clock: std::sync::Arc<dyn crate::runtime::clock::Clock> =
        std::sync::Arc::new(crate::runtime::clock::SystemClock);
    let guard = crate::fly::RoleGuard::default().with_hook(
        crate::governance::approvals::denial_recorder(store.clone(), clock.clone()),
    );
    let mut deployer = crate::runtime::deploy::Deployer::new(
        target.client.with_role(guard),
        store,
        clock,
        stop.clone(),
    );
    deployer.manifests = Some(global.manifests.clone());
    Ok((deployer, stop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_before_use() {
        assert_eq!(
            check_url("http://127.0.0.1:4280/").unwrap(),
            "http://127.0.0.1:4280"
        );
        assert_eq!(
            check_url("https://fly.example/api").unwrap(),
            "https://fly.example/api"
        );
        for (bad, says) in [
            ("http://256.0.0.1", "invalid IPv4 address"),
            ("http://[::1", "invalid IPv6 address"),
            ("http://host:99999", "invalid port"),
            ("ftp://host", "not a ftp: URL"),
            ("http://host/?x=1", "remove the `?…`"),
        ] {
            let e = check_url(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = check_url("http://me:hunter2@host").unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn tokens_are_trimmed_and_never_echoed() {
        assert_eq!(check_token("  fm2_abc\n").unwrap().expose(), "fm2_abc");
        assert_eq!(
            check_token("FlyV1 fm2_abc").unwrap().expose(),
            "FlyV1 fm2_abc"
        );
        for bad in [
            "fm2_se\ncret",
            "fm2_se cret",
            "fm2_se\tcret",
            "fm2_se\u{7}cret",
        ] {
            let e = check_token(bad).unwrap_err().to_string();
            assert!(!e.contains("cret") && !e.contains("fm2_"), "{e}");
            assert!(e.contains("character 7 of 11"), "{e}");
        }
    }
}
