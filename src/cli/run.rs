//! `run` and `gateway`: the two long-running commands.

use std::path::Path;

use super::exit::{load, runtime, Exit, Outcome};
use crate::app::RunError;

/// `run`: the daemon, until SIGINT or SIGTERM.
pub fn daemon(path: &Path) -> Outcome {
    let config = load(path)?;
    raise_fd_limit();
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
    raise_fd_limit();
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

/// File descriptors the long-running commands ask for: the usual soft limit of 1,024 runs out
/// under a flood of slow connections, and then the state store cannot open its files.
const WANTED_FDS: u64 = 65_536;

/// Raises the soft limit on open files towards `WANTED_FDS` (never above the hard limit).
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(WANTED_FDS) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open file limit; it stays as it is"),
    }
}
