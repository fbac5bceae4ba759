//! Output plumbing: the format flag, logging set-up, and the one place errors are printed.
//!
//! Errors, as text on stderr: `error: MESSAGE`, then `Caused by:` and one line per cause (a
//! cause whose text the line above already contains is left out). As JSON on stdout (`-o
//! json`): `{"kind":"error","code":CODE,"message":…,"causes":[…]}`, where CODE is one of
//! `usage` (the command line: unknown flag, bad value), `config` (`--fly`, `FLY_API_TOKEN`),
//! `manifests.missing`, `manifests.invalid`, `fly.unauthorized`, `fly.not_found`,
//! `fly.conflict`, `fly.precondition`, `fly.rejected`, `fly.unavailable`, `fly.protocol`
//! (what Fly answered, or that it could not be reached), `store` (the state directory),
//! `git.fetch` (`run --git-url`: the first fetch failed and there is no earlier clone), or
//! `error`. Usage errors add `"usage"` (clap's usage line) when there is one.

use std::io::Write;
use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Global, LogFormat};
use crate::fly::{FlyError, FlyErrorKind};
use crate::records::StoreError;

/// `-o text|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// Stable JSON, one document on stdout; every object has a `kind`.
    Json,
}

/// An error whose `-o json` code is given where it is raised (see the module doc).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Coded {
    /// The `code` of the JSON error object.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

/// An [`anyhow::Error`] carrying `code`.
pub fn coded(code: &'static str, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Coded {
        code,
        message: message.into(),
    })
}

/// Logs go to stderr: INFO and up by default (progress of long operations), `-v` for DEBUG.
/// `RUST_LOG` overrides.
pub fn init_logging(global: &Global) {
    let level = match global.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("warn,opsctl={level}")));
    let ansi = !global.no_color && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match global.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder
            .with_ansi(ansi)
            .with_target(false)
            .compact()
            .try_init(),
    };
}

/// Print `value` as pretty JSON on stdout. A closed pipe is not an error.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    print_text(&text)
}

/// Print text on stdout. A closed pipe is not an error.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    ignore_broken_pipe(out.write_all(text.as_bytes()))
}

/// Print progress text for people on stderr (used when stdout carries a JSON document).
pub fn print_progress(text: &str) -> anyhow::Result<()> {
    let mut err = std::io::stderr().lock();
    ignore_broken_pipe(err.write_all(text.as_bytes()))
}

/// A message to the person at the terminal that is neither output nor an error (e.g. what a
/// Ctrl-C does): a plain line on stderr, or a WARN log event with `--log-format json` so that
/// stderr stays JSON lines.
pub fn notice(log_format: LogFormat, text: &str) {
    match log_format {
        LogFormat::Json => tracing::warn!("{text}"),
        LogFormat::Text => {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}

fn ignore_broken_pipe(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The causes of `e` worth printing: its `source()` chain without a cause whose text is
/// already part of the line before it (`record store /x: File exists (os error 17)` is not
/// followed by `File exists (os error 17)`).
fn causes(e: &anyhow::Error) -> Vec<String> {
    let mut previous = e.to_string();
    let mut out = Vec::new();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if text.is_empty() || previous.contains(&text) {
            continue;
        }
        previous.clone_from(&text);
        out.push(text);
    }
    out
}

/// The JSON `code` of `e` (module doc): the first coded error, Fly error or store error in
/// its chain.
fn code(e: &anyhow::Error) -> &'static str {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.code;
        }
        let fly = cause
            .downcast_ref::<FlyError>()
            .or_else(|| cause.downcast_ref::<Box<FlyError>>().map(AsRef::as_ref));
        if let Some(fly) = fly {
            return match fly.kind {
                FlyErrorKind::Unauthorized => "fly.unauthorized",
                FlyErrorKind::NotFound => "fly.not_found",
                FlyErrorKind::Conflict => "fly.conflict",
                FlyErrorKind::Precondition => "fly.precondition",
                FlyErrorKind::Rejected => "fly.rejected",
                FlyErrorKind::Unavailable => "fly.unavailable",
                FlyErrorKind::Protocol => "fly.protocol",
                FlyErrorKind::Denied => "fly.denied",
            };
        }
        if cause.downcast_ref::<StoreError>().is_some() {
            return "store";
        }
    }
    "error"
}

/// `e` as the JSON error object of the module doc.
pub fn error_json(e: &anyhow::Error) -> Value {
    json!({"kind": "error", "code": code(e), "message": e.to_string(), "causes": causes(e)})
}

/// `e` and its causes on one line, `message: cause: cause`, for a report that lists several
/// results (one app's error in `diff`/`apply`).
pub fn error_line(e: &anyhow::Error) -> String {
    let mut parts = vec![e.to_string()];
    parts.extend(causes(e));
    parts.join(": ")
}

/// The one error renderer: the error and its chain ("Caused by:"), as text on stderr or as a
/// JSON object on stdout. Exit code 1.
pub fn report(global: &Global, e: &anyhow::Error) -> ExitCode {
    if global.output == Format::Json {
        let _ = print_json(&error_json(e));
    } else {
        report_text(e);
    }
    ExitCode::from(1)
}

/// The text half of [`report`], for a command whose JSON document already holds the error
/// (several apps, one of which failed): prints nothing under `-o json`.
pub fn report_text_only(global: &Global, e: &anyhow::Error) {
    if global.output == Format::Text {
        report_text(e);
    }
}

fn report_text(e: &anyhow::Error) {
    let chain = causes(e);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    if !chain.is_empty() {
        let _ = writeln!(err, "\nCaused by:");
        for c in &chain {
            let _ = writeln!(err, "    {c}");
        }
    }
}

/// A command line clap could not parse, or `--help`/`--version`. Help and version go to
/// stdout with exit 0. A usage error keeps clap's text (stderr) and exits 1, the exit code of
/// every error (DESIGN.md §8; clap's own 2 would read as "drift" after `diff`); with `-o json`
/// on the command line it is a JSON error object with code `usage` on stdout.
pub fn usage_error(e: &clap::Error, json: bool) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if json {
        let rendered = e.render().to_string();
        let message = match e.kind() {
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                "a subcommand is required".to_owned()
            }
            _ => rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned(),
        };
        let usage = rendered
            .lines()
            .find_map(|l| l.strip_prefix("Usage: "))
            .map(str::to_owned);
        let mut obj = json!({"kind": "error", "code": "usage", "message": message,
                             "causes": [], "detail": rendered.trim_end()});
        if let Some(usage) = usage {
            obj["usage"] = Value::String(usage);
        }
        let _ = print_json(&obj);
    } else {
        let _ = e.print();
    }
    ExitCode::from(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_shown_is_dropped() {
        let io = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        let store = StoreError::Io {
            path: "/tmp/x".into(),
            source: io,
        };
        let e = anyhow::Error::new(store).context("opening the state directory");
        let chain = causes(&e);
        assert_eq!(chain.len(), 1, "{chain:?}");
        assert!(chain[0].starts_with("record store /tmp/x: "), "{chain:?}");
        assert_eq!(code(&e), "store");
    }
}
