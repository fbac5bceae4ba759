//! Resolving `--fly` into a client (and, for `embedded`, a simulator started in-process).

use anyhow::{Context, bail};

use crate::fly::{Endpoints, FlyClient};
use crate::secret::Secret;
use crate::sim;

/// A connected Fly target. Keeps an embedded simulator alive as long as it lives.
pub struct Target {
    /// The client.
    pub client: FlyClient,
    /// The in-process simulator for `--fly embedded`, kept alive while the target lives.
    pub _embedded: Option<sim::SimHandle>,
}

/// Token from `FLY_API_TOKEN`; required except for the embedded simulator.
fn token(required: bool) -> anyhow::Result<Secret> {
    match std::env::var("FLY_API_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim())),
        _ if !required => Ok(Secret::new("embedded-simulator")),
        _ => bail!(
            "FLY_API_TOKEN is not set: export a Fly API token (fly tokens create deploy), or use --fly embedded"
        ),
    }
}

/// Resolve `--fly fly|embedded|URL`.
///
/// # Errors
/// Missing token, a URL that is not http(s), or an embedded simulator that cannot start.
pub async fn connect(fly: &str) -> anyhow::Result<Target> {
    match fly {
        "fly" => Ok(Target {
            client: FlyClient::new(Endpoints::fly(), token(true)?)?,
            _embedded: None,
        }),
        "embedded" => {
            let handle = sim::serve(
                sim::scenario::Scenario::lowendinsight_default(),
                ([127, 0, 0, 1], 0).into(),
            )
            .await
            .context("starting the embedded Fly simulator")?;
            let client = FlyClient::new(Endpoints::origin(&handle.base_url()), token(false)?)?;
            tracing::info!(url = %handle.base_url(), "embedded Fly simulator started");
            Ok(Target {
                client,
                _embedded: Some(handle),
            })
        }
        url if url.starts_with("http://") || url.starts_with("https://") => Ok(Target {
            client: FlyClient::new(Endpoints::origin(url), token(true)?)?,
            _embedded: None,
        }),
        other => bail!("--fly {other:?}: expected `fly`, `embedded` or an http(s) URL"),
    }
}
