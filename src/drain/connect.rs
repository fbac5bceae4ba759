//! From the secret database URL to a read-only PostgreSQL session, and from driver errors to
//! [`DrainError`]s that carry no part of the URL.
//!
//! The URL is a secret (it holds the password, and the user, host and database say where the
//! data lives). It is read once, here; nothing derived from it is logged. Driver errors are
//! not passed through: server messages about connecting can name the user and the database
//! (`role "…" does not exist`, `no pg_hba.conf entry for host …, user …, database …`), so those
//! get a fixed description, and every other text is scrubbed of the URL and its parts.
//!
//! What the session is: `default_transaction_read_only=on` (the drain cannot write, even by a
//! bug), `statement_timeout`, `application_name=opsctl-drain` unless the URL names one, and
//! no TLS (this build has none; inside Fly's private network 6PN, Fly Postgres URLs use
//! `sslmode=disable`). `sslmode=require`/`verify-ca`/`verify-full` is refused up front.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use sqlx::{ConnectOptions, PgConnection};

use super::DrainError;
use crate::secret::Secret;

/// `application_name` of the drain's session, unless the URL sets one (visible in
/// `pg_stat_activity`, so a DBA can tell what is polling).
pub(super) const APPLICATION_NAME: &str = "opsctl-drain";

/// Query parameters sqlx 0.9 understands (`sqlx-postgres` `options/parse.rs`). Others are
/// dropped before the URL reaches sqlx, because sqlx logs an unknown parameter's *value*.
const KNOWN_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Which step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Opening the session (TCP, startup, authentication).
    Connect,
    /// Reading `oban_jobs`.
    Query,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Query => "query",
        })
    }
}

/// A parsed URL, ready to connect, and what to scrub from any text about it.
pub(crate) struct Target {
    options: PgConnectOptions,
    scrub: Scrubber,
}

impl Target {
    /// Parse `url` (`postgres://` or `postgresql://`, libpq's URI form as sqlx reads it) and
    /// set up the session options. `statement_timeout` bounds each query on the server.
    ///
    /// # Errors
    ///
    /// [`DrainError::InvalidUrl`] when the URL cannot be parsed, has another scheme, or asks
    /// for TLS. The message never repeats the URL.
    pub(crate) fn parse(url: &Secret, statement_timeout: Duration) -> Result<Self, DrainError> {
        let invalid = |reason: String| DrainError::InvalidUrl { reason };
        let mut parsed =
            url::Url::parse(url.expose()).map_err(|e| invalid(format!("not a URL ({e})")))?;
        let scrub = Scrubber::from_url(url.expose(), &parsed);
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(invalid(
                "the scheme must be postgres:// or postgresql://".into(),
            ));
        }
        drop_unknown_params(&mut parsed);
        let options = PgConnectOptions::from_str(parsed.as_str())
            .map_err(|_| invalid("the PostgreSQL driver rejected it".into()))?;
        if matches!(
            options.get_ssl_mode(),
            PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
        ) {
            return Err(invalid(
                "it asks for TLS (sslmode=require/verify-*), which opsctl is built without; \
                 inside Fly's private network use sslmode=disable"
                    .into(),
            ));
        }
        let named = options.get_application_name().is_some();
        let mut options = options
            .options([
                ("default_transaction_read_only", "on".to_string()),
                (
                    "statement_timeout",
                    format!("{}ms", statement_timeout.as_millis().max(1)),
                ),
            ])
            .disable_statement_logging();
        if !named {
            options = options.application_name(APPLICATION_NAME);
        }
        Ok(Self { options, scrub })
    }

    /// Name the session `name` in `pg_stat_activity` instead of [`APPLICATION_NAME`], unless
    /// the URL names one (the maintenance checks share this read-only session set-up).
    pub(crate) fn labelled(mut self, name: &str) -> Self {
        if self.options.get_application_name() == Some(APPLICATION_NAME) {
            self.options = self.options.application_name(name);
        }
        self
    }

    /// Open a session, bounded by `within`.
    ///
    /// # Errors
    ///
    /// [`DrainError::Unavailable`] (stage `connect`) when the server cannot be reached, does not
    /// answer within `within`, or refuses the login; [`DrainError::InvalidUrl`] when the driver
    /// rejects the options.
    pub(crate) async fn connect(&self, within: Duration) -> Result<PgConnection, DrainError> {
        match tokio::time::timeout(within, self.options.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.classify(&e, Stage::Connect)),
            Err(_) => Err(timed_out(Stage::Connect, within)),
        }
    }

    /// Turn a driver error into a [`DrainError`] with no part of the URL in it.
    pub(crate) fn classify(&self, err: &sqlx::Error, stage: Stage) -> DrainError {
        classify(err, stage, &self.scrub)
    }
}

/// The error for an attempt that got no answer within `within`.
pub(super) fn timed_out(stage: Stage, within: Duration) -> DrainError {
    DrainError::Unavailable {
        stage,
        reason: format!("no answer within {} ms", within.as_millis()),
        sqlstate: None,
    }
}

fn drop_unknown_params(url: &mut url::Url) {
    type Pairs = Vec<(String, String)>;
    let (kept, dropped): (Pairs, Pairs) = url
        .query_pairs()
        .into_owned()
        .partition(|(k, _)| KNOWN_PARAMS.contains(&k.as_str()) || k.starts_with("options["));
    if dropped.is_empty() {
        return;
    }
    for (key, _) in &dropped {
        tracing::warn!(
            parameter = %key,
            "ignoring a database URL parameter the PostgreSQL driver does not know"
        );
    }
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
}

fn classify(err: &sqlx::Error, stage: Stage, scrub: &Scrubber) -> DrainError {
    let unavailable = |reason: String, sqlstate: Option<String>| DrainError::Unavailable {
        stage,
        reason,
        sqlstate,
    };
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let sqlstate = (!code.is_empty()).then(|| code.clone());
            let fixed = match code.as_str() {
                "28P01" => Some("authentication failed (wrong password?)"),
                c if c.starts_with("28") => {
                    Some("the server refused the login (unknown role, or not allowed by pg_hba)")
                }
                "3D000" => Some("the database named in the URL does not exist"),
                c if c.starts_with("08") => Some("the connection was refused or broken"),
                "53300" => Some("the server has too many connections"),
                "57P01" | "57P02" | "57P03" => {
                    Some("the server is shutting down, restarting or starting up")
                }
                "57014" => Some("the query was cancelled (statement_timeout)"),
                "25006" => Some("the drain tried to write in its read-only session (opsctl bug)"),
                _ => None,
            };
            match code.as_str() {
                // undefined_table, undefined_column, invalid_text_representation (an enum
                // without the state), undefined_function / datatype_mismatch.
                "42P01" | "42703" | "22P02" | "42883" | "42804" => DrainError::NotOban {
                    reason: scrub.scrub(db.message()),
                    sqlstate,
                },
                _ => {
                    let reason = match fixed {
                        Some(text) => text.to_string(),
                        None => scrub.scrub(db.message()),
                    };
                    unavailable(reason, sqlstate)
                }
            }
        }
        sqlx::Error::Io(e) => unavailable(scrub.scrub(&e.to_string()), None),
        sqlx::Error::Tls(_) => unavailable("TLS negotiation failed".into(), None),
        sqlx::Error::Protocol(_) => unavailable(
            "unexpected reply from the server (is it PostgreSQL?)".into(),
            None,
        ),
        sqlx::Error::Configuration(_) => DrainError::InvalidUrl {
            reason: "the PostgreSQL driver rejected its options".into(),
        },
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::Decode(_) => DrainError::NotOban {
            reason: "oban_jobs columns have unexpected types (id bigint, queue text)".into(),
            sqlstate: None,
        },
        _ => unavailable("the PostgreSQL driver failed".into(), None),
    }
}

/// Removes the URL and its parts from a text.
pub(crate) struct Scrubber {
    /// Longest first, so the whole URL goes before any part of it.
    needles: Vec<String>,
}

impl Scrubber {
    const MASK: &'static str = "[redacted]";

    pub(crate) fn from_url(raw: &str, url: &url::Url) -> Self {
        // Percent-decoding (`+` kept as `+`), through the form decoder `url` exports.
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let mut needles = vec![raw.to_string(), url.as_str().to_string()];
        let username = url.username();
        needles.push(username.to_string());
        needles.push(decode(username));
        if let Some(password) = url.password() {
            needles.push(password.to_string());
            needles.push(decode(password));
        }
        if let Some(host) = url.host_str() {
            needles.push(host.to_string());
        }
        let database = url.path().trim_start_matches('/');
        needles.push(database.to_string());
        needles.push(decode(database));
        for (key, value) in url.query_pairs() {
            if matches!(&*key, "password" | "user" | "dbname" | "host" | "hostaddr") {
                needles.push(value.into_owned());
            }
        }
        needles.retain(|n| !n.is_empty());
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        Self { needles }
    }

    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), Self::MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgres://lei_app:s3cr%2Ft-pw@lei-db.flycast:5432/lei_prod?sslmode=disable";

    #[test]
    fn scrubs_the_url_and_its_parts() {
        let url = url::Url::parse(URL).expect("url");
        let s = Scrubber::from_url(URL, &url);
        let text = format!(
            "{URL} | password s3cr/t-pw or s3cr%2Ft-pw | role \"lei_app\" | db \"lei_prod\" | lei-db.flycast"
        );
        let out = s.scrub(&text);
        for leaked in [
            "s3cr",
            "lei_app",
            "lei_prod",
            "lei-db.flycast",
            "postgres://",
        ] {
            assert!(!out.contains(leaked), "{leaked} leaked in {out}");
        }
        assert!(out.contains("[redacted]"));
    }

    #[test]
    fn scrubs_parameters_given_in_the_query() {
        let raw = "postgres:///db1?host=h1&user=u1&password=hunter22";
        let url = url::Url::parse(raw).expect("url");
        let out = Scrubber::from_url(raw, &url).scrub("hunter22 u1 h1");
        assert_eq!(out, "[redacted] [redacted] [redacted]");
    }

    #[test]
    fn refuses_tls_and_other_schemes_without_echoing_the_url() {
        let timeout = Duration::from_secs(5);
        for raw in [
            "postgres://u:topsecret@h/db?sslmode=require",
            "mysql://u:topsecret@h/db",
            "not a url topsecret",
        ] {
            let Err(err) = Target::parse(&Secret::new(raw), timeout) else {
                panic!("{raw} was accepted");
            };
            assert!(matches!(err, DrainError::InvalidUrl { .. }), "{err:?}");
            let text = err.to_string();
            assert!(!text.contains("topsecret"), "{text}");
        }
    }

    #[test]
    fn sets_a_read_only_session_and_names_it() {
        let target = Target::parse(
            &Secret::new("postgres://u:p@127.0.0.1:5432/db?sslmode=disable&connect_timeout=3"),
            Duration::from_secs(5),
        )
        .expect("parses");
        let options = target.options.get_options().unwrap_or_default();
        assert!(
            options.contains("default_transaction_read_only=on"),
            "{options}"
        );
        assert!(options.contains("statement_timeout=5000ms"), "{options}");
        assert_eq!(
            target.options.get_application_name(),
            Some(APPLICATION_NAME)
        );

        let named = Target::parse(
            &Secret::new("postgres://u@h/db?application_name=mine"),
            Duration::from_secs(5),
        )
        .expect("parses");
        assert_eq!(named.options.get_application_name(), Some("mine"));
    }
}
