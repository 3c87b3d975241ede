//! How a command ends when it does not succeed, and what every command needs first: the
//! configuration.

use std::fmt;
use std::path::Path;
use std::process::ExitCode;

use crate::config::{self, Config, ConfigError};

/// The exit codes of design §2 other than 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// A failure at run time.
    Runtime = 1,
    /// Bad usage or a bad configuration.
    Config = 2,
}

/// A command that did not succeed: its exit code and what to tell the user (`error: …` on
/// stderr). An empty message means the command has said everything already.
#[derive(Debug, thiserror::Error)]
pub struct Exit {
    pub code: Code,
    pub message: String,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Exit {
    pub fn config(message: impl Into<String>) -> Self {
        Self {
            code: Code::Config,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: Code::Runtime,
            message: message.into(),
        }
    }

    /// A bad configuration, one `error:` line a problem.
    pub fn each(problems: &[impl fmt::Display]) -> Self {
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        Self::config(lines.join("\nerror: "))
    }

    /// The command printed its own account of what failed.
    pub fn said(code: Code) -> Self {
        Self {
            code,
            message: String::new(),
        }
    }

    /// Prints the message and gives the process exit code.
    pub fn report(self) -> ExitCode {
        if !self.message.is_empty() {
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.code as u8)
    }
}

/// The outcome of a command.
pub type Outcome = Result<(), Exit>;

/// Loads the configuration the command line names, from the process environment.
pub fn load(path: &Path) -> Result<Config, Exit> {
    Config::load(path, &config::process_env()).map_err(|error| {
        let mut message = error.to_string();
        if matches!(error, ConfigError::Read { .. }) && path == Path::new(config::DEFAULT_PATH) {
            message.push_str(
                "\nhint: pass --config PATH, or run from the directory that holds config/",
            );
        }
        Exit::config(message)
    })
}

/// The problems of a configuration as one message: `<file> has N problems:` and a line each.
pub fn problems(path: &Path, problems: &[impl fmt::Display]) -> Exit {
    let mut message = format!(
        "{} has {} problem{}:",
        path.display(),
        problems.len(),
        plural(problems.len())
    );
    for problem in problems {
        message.push_str(&format!("\n  - {problem}"));
    }
    Exit::config(message)
}

pub fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The multi-threaded runtime of the long-running commands.
pub fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| Exit::runtime(format!("cannot start the async runtime: {error}")))
}

/// A single-threaded runtime for the short commands.
pub fn current_thread_runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Exit::runtime(format!("cannot start the async runtime: {error}")))
}
