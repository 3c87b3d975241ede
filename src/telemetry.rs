//! Logging set-up: tracing to stderr, as text or JSON lines.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `RUST_LOG` wins when set; otherwise `-v` raises the level from info to debug to trace.
pub fn init(format: LogFormat, verbose: u8) {
    init_at(format, verbose, "info");
}

/// Like [`init`] with another level for no `-v` (the demo prints its own summary and keeps the
/// log to warnings).
pub fn init_at(format: LogFormat, verbose: u8, quiet_level: &str) {
    let level = match verbose {
        0 => quiet_level,
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
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
