//! Output plumbing: the format flag, logging set-up, and the one place errors are printed.

use std::io::Write;
use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;

use super::{Global, LogFormat};

/// `-o text|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// Stable JSON, one document on stdout; every object has a `kind`.
    Json,
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
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    ignore_broken_pipe(writeln!(out))
}

/// Print text on stdout. A closed pipe is not an error.
pub fn print_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    ignore_broken_pipe(out.write_all(text.as_bytes()))
}

fn ignore_broken_pipe(r: std::io::Result<()>) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// The one error renderer: the error and its chain ("Caused by:"), as text on stderr or as a
/// JSON object on stdout. Exit code 1.
pub fn report(global: &Global, e: &anyhow::Error) -> ExitCode {
    let chain: Vec<String> = e.chain().skip(1).map(ToString::to_string).collect();
    if global.output == Format::Json {
        let obj = serde_json::json!({"kind": "error", "message": e.to_string(), "causes": chain});
        let _ = print_json(&obj);
    } else {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {e}");
        if !chain.is_empty() {
            let _ = writeln!(err, "\nCaused by:");
            for c in &chain {
                let _ = writeln!(err, "    {c}");
            }
        }
    }
    ExitCode::from(1)
}
