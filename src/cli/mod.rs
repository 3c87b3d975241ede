//! The command line: subcommands and their arguments. Each command lives in its own file and
//! returns an [`Outcome`]; `main` turns it into the exit code of design §2.

mod check;
mod demo;
mod doctor;
mod exit;
mod healthcheck;
mod import_butler;
mod render;
mod run;
mod setup;
mod silence;
mod test_alert;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config;
use crate::telemetry::{self, LogFormat};

pub use exit::{Code, Exit, Outcome};

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
    /// Configuration file (YAML); RELOAD_BUTLER_CONFIG sets it for every command (a container's
    /// main process and its HEALTHCHECK alike).
    #[arg(long, global = true, value_name = "PATH", env = "RELOAD_BUTLER_CONFIG", default_value = config::DEFAULT_PATH)]
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
pub enum SetupCommand {
    /// Create the tenant's webhook for the gateway, or update the one with that URL: the event
    /// types `alert_on` needs, enabled, a secret generated once into --secret-file (mode 0600,
    /// never printed). Idempotent.
    Webhook {
        /// The tenant (its id in tenants:).
        #[arg(long, value_name = "ID")]
        tenant: String,
        /// The URL Qlik Cloud calls; default gateway.public_url.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// Where the secret is kept (read when it exists, else generated and written).
        #[arg(long, value_name = "FILE", default_value = setup::DEFAULT_SECRET_FILE)]
        secret_file: PathBuf,
    },
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
    /// Check the whole chain (config, state store, broker, each tenant's credentials, poll role,
    /// API key and webhook, each destination) and print one line per check; exit 0 only when all
    /// pass.
    Doctor {
        /// Send the test alert too (when every check passed).
        #[arg(long)]
        send: bool,
    },
    /// Set up what the gateway needs in Qlik Cloud.
    Setup {
        #[command(subcommand)]
        command: SetupCommand,
    },
    /// Ad-hoc silences: add, list, remove (kept in the state store).
    Silence {
        #[command(subcommand)]
        command: silence::SilenceCommand,
    },
    /// Everything in one process on loopback: an embedded broker, the gateway and the daemon;
    /// a signed sample webhook becomes email, Slack and Teams alerts written to ./demo-out/.
    Demo,
    /// Exit 0 when the running daemon's admin endpoint (or the gateway) answers /healthz (for
    /// HEALTHCHECK).
    Healthcheck {
        /// Address to ask instead of `admin.listen` (or `gateway.listen`) from the config.
        #[arg(long, value_name = "HOST:PORT")]
        address: Option<std::net::SocketAddr>,
        /// Which endpoint: `daemon` (admin.listen), `gateway` (gateway.listen, HTTPS when it
        /// serves HTTPS), or `any` (healthy when either answers: the container image's check).
        #[arg(long, value_enum, default_value = "daemon")]
        of: healthcheck::Target,
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
    // The demo prints its own summary; its log keeps to warnings unless -v.
    let quiet_level = match cli.command {
        Command::Demo => "warn",
        _ => "info",
    };
    let rust_log = config::process_env().remove("RUST_LOG");
    telemetry::init(
        cli.log_format,
        cli.verbose,
        quiet_level,
        rust_log.as_deref(),
    );
    let path = cli.config.as_path();
    let outcome = match cli.command {
        Command::Check => check::command(path),
        Command::Run => run::daemon(path),
        Command::Gateway => run::gateway(path),
        Command::Demo => demo::command(),
        Command::Silence { command } => silence::command(path, command),
        Command::Doctor { send } => doctor::command(path, send),
        Command::Setup {
            command:
                SetupCommand::Webhook {
                    tenant,
                    url,
                    secret_file,
                },
        } => setup::webhook(path, &tenant, url.as_deref(), &secret_file),
        Command::Healthcheck { address, of } => healthcheck::command(path, address, of),
        Command::ImportButler { file } => import_butler::command(&file),
        Command::TestAlert { destination } => test_alert::command(path, destination.as_deref()),
        Command::Render {
            event,
            destination,
            offline,
        } => render::command(path, &event, destination.as_deref(), offline),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => exit.report(),
    }
}
