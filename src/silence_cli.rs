//! `silence add|list|remove`: ad-hoc silences kept in the state store, which the running daemon
//! reads for each alert (no restart needed).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::cli::{load, EXIT_CONFIG, EXIT_RUNTIME};
use crate::config::Matcher;
use crate::store::Store;

#[derive(Debug, clap::Subcommand)]
pub enum SilenceCommand {
    /// Silence the alerts that match every given filter, for a while.
    Add {
        #[arg(long, value_name = "APP_ID")]
        app: Option<String>,
        #[arg(long, value_name = "TENANT_ID")]
        tenant: Option<String>,
        #[arg(long, value_name = "SPACE_ID")]
        space: Option<String>,
        #[arg(long, value_name = "TAG")]
        tag: Option<String>,
        #[arg(long, value_name = "CODE")]
        error_code: Option<String>,
        /// How long, e.g. `2h` or `1d`.
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<Duration>,
        /// Until when (RFC 3339), instead of --for.
        #[arg(long, value_name = "TIME", conflicts_with = "duration")]
        until: Option<DateTime<chrono::FixedOffset>>,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// List the silences that are not over (all with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Remove a silence by id.
    Remove { id: i64 },
}

pub fn command(config_path: &Path, command: SilenceCommand) -> ExitCode {
    let config = match load(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let mut store = match Store::open(&config.state.path, config.state.dedupe_ttl) {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = match command {
        SilenceCommand::Add {
            app,
            tenant,
            space,
            tag,
            error_code,
            duration,
            until,
            comment,
        } => {
            let matcher = Matcher {
                tenant,
                space,
                app,
                app_tag: tag,
                error_code,
            };
            if matcher == Matcher::default() {
                eprintln!(
                    "error: give at least one of --app, --tenant, --space, --tag, --error-code"
                );
                return ExitCode::from(EXIT_CONFIG);
            }
            let now = Utc::now();
            let end = match (duration, until) {
                (Some(d), None) => chrono::Duration::from_std(d)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d)),
                (None, Some(t)) => Some(t.with_timezone(&Utc)),
                _ => None,
            };
            let Some(end) = end.filter(|e| *e > now) else {
                eprintln!("error: give --for DURATION or a future --until TIME");
                return ExitCode::from(EXIT_CONFIG);
            };
            store
                .add_silence(
                    &matcher,
                    now.timestamp_millis(),
                    end.timestamp_millis(),
                    &comment,
                )
                .map(|id| println!("silence {id} added, until {}", end.to_rfc3339()))
        }
        SilenceCommand::List { all } => store.silences(all).map(|silences| {
            if silences.is_empty() {
                println!("no silences");
            }
            for s in silences {
                let until = DateTime::from_timestamp_millis(s.ends_at)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                println!(
                    "{}\tuntil {until}\t{}\t{}",
                    s.id,
                    describe(&s.matcher),
                    s.comment
                );
            }
        }),
        SilenceCommand::Remove { id } => match store.remove_silence(id) {
            Ok(true) => {
                println!("silence {id} removed");
                Ok(())
            }
            Ok(false) => {
                eprintln!("error: no silence {id}");
                return ExitCode::from(EXIT_CONFIG);
            }
            Err(error) => Err(error),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn describe(m: &Matcher) -> String {
    [
        ("tenant", &m.tenant),
        ("space", &m.space),
        ("app", &m.app),
        ("tag", &m.app_tag),
        ("error_code", &m.error_code),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join(" ")
}
