//! `silence add|list|remove`: ad-hoc silences kept in the state store, which the running daemon
//! reads for each alert (no restart needed).

use std::path::Path;

use chrono::{DateTime, Utc};

use super::exit::{current_thread_runtime, load, Exit, Outcome};
use crate::silence::{self, AddError, NewSilence};
use crate::store::{SharedStore, StateStore};

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
        #[arg(long = "for", value_name = "DURATION")]
        duration: Option<String>,
        /// Until when (RFC 3339), instead of --for.
        #[arg(long, value_name = "TIME", conflicts_with = "duration")]
        until: Option<String>,
        #[arg(long, default_value = "")]
        comment: String,
        /// When the silence ends, send the alerts it silenced after all.
        #[arg(long)]
        resend: bool,
    },
    /// List the silences that are not over (all with --all).
    List {
        #[arg(long)]
        all: bool,
    },
    /// Remove a silence by id.
    Remove { id: i64 },
}

pub fn command(config_path: &Path, command: SilenceCommand) -> Outcome {
    let config = load(config_path)?;
    current_thread_runtime()?.block_on(async {
        let store = match StateStore::open(&config.state, false, false).await {
            Ok(state) => state.shared().await,
            Err(error) => Err(error),
        }
        .map_err(|error| Exit::runtime(error.to_string()))?;
        on(&store, command).await
    })
}

async fn on(store: &SharedStore, command: SilenceCommand) -> Outcome {
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
            resend,
        } => {
            let request = NewSilence {
                app,
                tenant,
                space,
                tag,
                error_code,
                duration,
                until,
                comment,
                resend,
            };
            match silence::add(store, request, Utc::now()).await {
                Ok(added) => {
                    println!(
                        "silence {} added, until {}",
                        added.id,
                        rfc3339(added.ends_at)
                    );
                    Ok(())
                }
                Err(refused @ (AddError::Invalid(_) | AddError::TooMany)) => {
                    return Err(Exit::config(refused.to_string()))
                }
                Err(AddError::Store(error)) => Err(error),
            }
        }
        SilenceCommand::List { all } => store.silences(all).await.map(|silences| {
            if silences.is_empty() {
                println!("no silences");
            }
            for s in silences {
                println!(
                    "{}\tuntil {}\t{}\t{}",
                    s.id,
                    rfc3339(s.ends_at),
                    silence::describe(&s.matcher),
                    // Comments from before their validation may hold control characters.
                    s.comment.escape_debug()
                );
            }
        }),
        SilenceCommand::Remove { id } => match store.remove_silence(id).await {
            Ok(true) => {
                println!("silence {id} removed");
                Ok(())
            }
            Ok(false) => return Err(Exit::config(format!("no silence {id}"))),
            Err(error) => Err(error),
        },
    };
    result.map_err(|error| Exit::runtime(error.to_string()))
}

fn rfc3339(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default()
}
