//! `run` and `gateway`: the two long-running commands.

use std::path::Path;

use super::exit::{load, runtime, Exit, Outcome};
use crate::app::RunError;

/// `run`: the daemon, until SIGINT or SIGTERM.
pub fn daemon(path: &Path) -> Outcome {
    let config = load(path)?;
    match runtime()?.block_on(crate::app::run(config)) {
        Ok(()) => Ok(()),
        Err(error @ (RunError::NoEventSource | RunError::Config(_))) => {
            Err(Exit::config(error.to_string()))
        }
        Err(error) => {
            tracing::error!(%error, "reload-butler stopped");
            Err(Exit::runtime(error.to_string()))
        }
    }
}

/// `gateway`: the webhook gateway, until SIGINT or SIGTERM.
pub fn gateway(path: &Path) -> Outcome {
    let config = load(path)?;
    match runtime()?.block_on(crate::gateway::run(config)) {
        Ok(()) => Ok(()),
        Err(error) if error.is_config() => Err(Exit::config(format!(
            "{} has 1 problem:\n  - {error}",
            path.display()
        ))),
        Err(error) => {
            tracing::error!(%error, "gateway stopped");
            Err(Exit::runtime(error.to_string()))
        }
    }
}
