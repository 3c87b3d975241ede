//! Subcommands and their arguments; each returns the process exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self, Config, ConfigError};
use crate::telemetry::{self, LogFormat};

/// Exit code for bad usage or a bad configuration.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_RUNTIME: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "reload-butler",
    version,
    about = "Tells people within seconds that a Qlik Cloud app reload failed.",
    long_about = "Tells people within seconds that a Qlik Cloud app reload failed: receives Qlik Cloud \
reload events over MQTT, keeps the failures of monitored tenants and turns each into one durable \
alert job. See README.md and docs/ for the whole picture."
)]
pub struct Cli {
    /// Configuration file (YAML).
    #[arg(long, global = true, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    pub config: PathBuf,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// More log detail: -v debug, -vv trace (RUST_LOG, when set, wins).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGINT or SIGTERM.
    Run,
    /// Run the webhook gateway until SIGINT or SIGTERM: receives Qlik Cloud webhooks, verifies
    /// their signature and publishes each event unchanged to the MQTT broker (section
    /// `gateway:`).
    Gateway,
    /// Validate the configuration, compile and render every template with a sample failure, and
    /// report every problem; sends nothing.
    Check,
    /// Send the sample failure for real to each enabled destination (or one) and print each
    /// answer.
    TestAlert {
        /// Only this destination (even if disabled).
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
    },
    /// Ad-hoc silences: add, list, remove (kept in the state store).
    Silence {
        #[command(subcommand)]
        command: crate::silence_cli::SilenceCommand,
    },
    /// Everything in one process on loopback: an embedded broker, the gateway and the daemon;
    /// a signed sample webhook becomes email, Slack and Teams alerts written to ./demo-out/.
    Demo,
    /// Exit 0 when the running daemon's admin endpoint answers /healthz (for HEALTHCHECK).
    Healthcheck {
        /// Address to ask instead of `admin.listen` from the config.
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<std::net::SocketAddr>,
    },
    /// Print the reload-butler config equivalent to a Butler config (its Qlik Cloud parts).
    ImportButler {
        /// Butler's YAML config file.
        file: PathBuf,
    },
    /// Print what each destination would get for one event file; sends nothing.
    Render {
        /// A Qlik reload event (webhook body) as JSON.
        #[arg(long, value_name = "FILE")]
        event: PathBuf,
        /// Only this destination.
        #[arg(long, value_name = "NAME")]
        destination: Option<String>,
        /// Do not call the Qlik Cloud API: render from the event alone.
        #[arg(long)]
        offline: bool,
    },
}

/// Parses the command line and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // The demo prints its own summary; its log keeps to warnings unless -v.
        Command::Demo => telemetry::init_at(cli.log_format, cli.verbose, "warn"),
        _ => telemetry::init(cli.log_format, cli.verbose),
    }
    match cli.command {
        Command::Check => check(&cli.config),
        Command::Run => run(&cli.config),
        Command::Gateway => gateway(&cli.config),
        Command::Demo => crate::demo::command(),
        Command::Silence { command } => crate::silence_cli::command(&cli.config, command),
        Command::Healthcheck { address } => crate::healthcheck::command(&cli.config, address),
        Command::ImportButler { file } => crate::import_butler::command(&file),
        Command::TestAlert { destination } => {
            crate::test_alert::command(&cli.config, destination.as_deref())
        }
        Command::Render {
            event,
            destination,
            offline,
        } => crate::preview::render_command(&cli.config, &event, destination.as_deref(), offline),
    }
}

pub(crate) fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path, &config::process_env()).map_err(|error| {
        eprintln!("error: {error}");
        if matches!(error, ConfigError::Read { .. }) && path == Path::new(config::DEFAULT_PATH) {
            eprintln!("hint: pass --config PATH, or run from the directory that holds config/");
        }
        ExitCode::from(EXIT_CONFIG)
    })
}

fn check(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // What `run` and `gateway` build at start-up (TLS files, senders, API clients), then the
    // templates: a config `check` accepts starts.
    let mut problems = crate::app::startup_problems(&config);
    problems.extend(crate::gateway::config_problems(&config));
    problems.extend(crate::preview::check_templates(&config));
    if !problems.is_empty() {
        eprintln!(
            "error: {} has {} problem{}:",
            path.display(),
            problems.len(),
            plural(problems.len())
        );
        for problem in &problems {
            eprintln!("  - {problem}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    let enabled = config.destinations.iter().filter(|d| d.enabled).count();
    println!(
        "{}: OK ({} tenant{}, {} destination{} of which {} enabled)",
        path.display(),
        config.tenants.len(),
        plural(config.tenants.len()),
        config.destinations.len(),
        plural(config.destinations.len()),
        enabled
    );
    ExitCode::SUCCESS
}

pub(crate) fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| {
            tracing::error!(%error, "cannot start the async runtime");
            ExitCode::from(EXIT_RUNTIME)
        })
}

fn gateway(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(crate::gateway::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_config() => {
            eprintln!("error: {} has 1 problem:\n  - {error}", path.display());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(%error, "gateway stopped");
            eprintln!("error: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn run(path: &Path) -> ExitCode {
    let config = match load(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(crate::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ (crate::app::RunError::NoEventSource | crate::app::RunError::Config(_))) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(error) => {
            tracing::error!(%error, "reload-butler stopped");
            eprintln!("error: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}
