//! Logging set-up: tracing to stderr, as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `RUST_LOG` (passed in by the caller, which read the environment through `config`) wins when
/// set; otherwise `-v` raises the level from `quiet_level` to debug to trace. The demo prints its
/// own summary and keeps the log to warnings.
pub fn init(format: LogFormat, verbose: u8, quiet_level: &str, rust_log: Option<&str>) {
    let level = match verbose {
        0 => quiet_level,
        1 => "debug",
        _ => "trace",
    };
    let filter = rust_log
        .filter(|directives| !directives.trim().is_empty())
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| {
            EnvFilter::new(format!(
                "{level},rumqttc=warn,rumqttd=off,hyper=warn,axum=warn"
            ))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in files or journald.
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
