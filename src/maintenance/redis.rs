//! Redis PING, spoken by hand over a `TcpStream` (RESP, <https://redis.io/docs/latest/develop/reference/protocol-spec/>):
//! `AUTH` when the URL carries credentials, then `PING` → `+PONG`.
//!
//! Why not the `redis` crate (the vetted pick in the crate list): this check needs one
//! command, and about 60 lines here save a dependency tree and its build on a shared 2-core
//! machine. What that costs: no `rediss://` (TLS) — such a URL is reported unknown with a
//! reason, not down — and no Sentinel or cluster discovery. Switch to `redis` (`tokio-comp`,
//! `tokio-rustls-comp`) when either is needed.
//!
//! A refused or reset connection, or an error reply (`-LOADING`, `-MASTERDOWN`), is
//! [`Observation::Down`]; a timeout, DNS failure, bad URL or refused credentials (`-NOAUTH`,
//! `-WRONGPASS`: our configuration) is [`Observation::Unknown`]. The URL is a [`Secret`]: no
//! part of it appears in a reason.

use std::time::Duration;

use opsctl_controllers::maintenance::Observation;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::secret::Secret;

/// PING the Redis server at `url` (`redis://[user[:password]@]host[:port][/db]`), all of it
/// within `timeout`.
pub async fn ping(url: Option<Secret>, env: &str, timeout: Duration) -> Observation<()> {
    let Some(url) = url else {
        return Observation::Unknown {
            reason: format!("{env} is not set in opsctl's environment"),
        };
    };
    let parsed = match url::Url::parse(url.expose()) {
        Ok(u) if u.scheme() == "redis" && u.host_str().is_some() => u,
        Ok(u) if u.scheme() == "rediss" => {
            return Observation::Unknown {
                reason: format!("{env} asks for TLS (rediss://), which this check does not speak"),
            };
        }
        _ => {
            return Observation::Unknown {
                reason: format!("{env} is not a redis://host:port URL"),
            };
        }
    };
    match tokio::time::timeout(timeout, exchange(&parsed)).await {
        Ok(result) => result,
        Err(_) => Observation::Unknown {
            reason: format!("no answer within {}", opsctl_crds::DurationStr(timeout)),
        },
    }
}

async fn exchange(url: &url::Url) -> Observation<()> {
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
    let port = url.port().unwrap_or(6379);
    let stream = match TcpStream::connect((host, port)).await {
        Ok(s) => s,
        Err(e) => return io_failure(&e),
    };
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let mut request = Vec::new();
    if let Some(password) = url.password() {
        let user = decode(url.username());
        let mut args = vec!["AUTH".to_owned()];
        if !user.is_empty() {
            args.push(user);
        }
        args.push(decode(password));
        request.extend(command(&args));
    }
    request.extend(command(&["PING".to_owned()]));
    if let Err(e) = write.write_all(&request).await {
        return io_failure(&e);
    }
    let replies = if url.password().is_some() { 2 } else { 1 };
    for i in 0..replies {
        let mut line = String::new();
        match read.read_line(&mut line).await {
            Ok(0) => {
                return Observation::Down {
                    class: "closed".into(),
                    reason: "the server closed the connection without an answer".into(),
                };
            }
            Ok(_) => {}
            Err(e) => return io_failure(&e),
        }
        let line = line.trim_end();
        if let Some(err) = line.strip_prefix('-') {
            let code = err.split_whitespace().next().unwrap_or("ERR");
            // Only the error code: the message of a failed AUTH could echo what was sent.
            if matches!(code, "NOAUTH" | "WRONGPASS") || (i == 0 && replies == 2) {
                return Observation::Unknown {
                    reason: format!("Redis refused opsctl's credentials ({code})"),
                };
            }
            return Observation::Down {
                class: code.to_lowercase(),
                reason: format!("PING answered an error ({code})"),
            };
        }
        if i + 1 == replies && line != "+PONG" {
            return Observation::Unknown {
                reason: "PING got an answer that is not PONG (is it Redis?)".into(),
            };
        }
    }
    Observation::Seen(())
}

/// RESP array of bulk strings.
fn command(args: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).as_bytes());
        out.extend(a.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

fn io_failure<T>(e: &std::io::Error) -> Observation<T> {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => Observation::Down {
            class: "refused".into(),
            reason: "connection refused".into(),
        },
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            Observation::Down {
                class: "reset".into(),
                reason: format!("connection lost ({})", e.kind()),
            }
        }
        kind => Observation::Unknown {
            reason: format!("could not reach Redis ({kind})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_resp_arrays_of_bulk_strings() {
        assert_eq!(command(&["PING".into()]), b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            command(&["AUTH".into(), "pässword".into()]),
            "*2\r\n$4\r\nAUTH\r\n$9\r\npässword\r\n".as_bytes()
        );
    }

    #[tokio::test]
    async fn bad_urls_and_tls_are_unknown_and_never_echo_the_url() {
        for raw in [
            "rediss://u:topsecret@host:6380",
            "http://u:topsecret@host",
            "not a url topsecret",
        ] {
            let o = ping(
                Some(Secret::new(raw)),
                "LEI_REDIS_URL",
                Duration::from_secs(1),
            )
            .await;
            let Observation::Unknown { reason } = o else {
                panic!("{raw}: {o:?}");
            };
            assert!(
                !reason.contains("topsecret") && reason.contains("LEI_REDIS_URL"),
                "{reason}"
            );
        }
        let o = ping(None, "LEI_REDIS_URL", Duration::from_secs(1)).await;
        assert!(
            matches!(o, Observation::Unknown { reason } if reason.contains("LEI_REDIS_URL is not set"))
        );
    }
}
