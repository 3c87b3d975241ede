//! Configuration: one YAML file → environment overrides and `${VAR}` expansion → typed, validated
//! [`Config`], with every problem reported at once (key path and why). See docs/configuration.md.

mod build;
mod destinations;
mod email;
pub mod env;
mod gateway;
mod rate_limit;
pub mod reader;
mod routes;
pub mod secret;
mod silences;
mod values;
mod webhook;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use env::{process_env, Env};
pub use rate_limit::TenantRateLimit;
pub use reader::Problem;
pub use routes::{Route, RouteMatch};
pub use secret::{Secret, SecretUrl};
pub use silences::{Matcher, SilenceConfig, WeeklyWindow};
pub use values::http_url;
pub use webhook::{stock_name, HttpMethod, WebhookConfig, STOCK_PREFIX, STOCK_WEBHOOK_TEMPLATES};

use crate::domain::Failure;

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_PATH: &str = "config/reload-butler.yaml";

#[derive(Debug, Clone)]
pub struct Config {
    /// For the *Local* time fields of templates; `None` is the system's local zone.
    pub timezone: Option<crate::zone::Zone>,
    /// `None` when `mqtt.url` is null: the daemon then learns of failures by polling alone.
    pub mqtt: Option<MqttConfig>,
    pub alert_on: Vec<Failure>,
    pub include_session_apps: bool,
    /// Alert on automation runs started from the Automate editor as tests too.
    pub include_automation_test_runs: bool,
    pub poll: PollConfig,
    pub state: StateConfig,
    pub admin: AdminConfig,
    pub tenants: Vec<TenantConfig>,
    pub links: Vec<LinkConfig>,
    pub enrich: EnrichConfig,
    pub script_log_archive: ScriptLogArchiveConfig,
    pub delivery: DeliveryConfig,
    pub destinations: Vec<DestinationConfig>,
    pub gateway: GatewayConfig,
    pub silences: Vec<SilenceConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MqttEndpoint {
    Tcp {
        host: String,
        port: u16,
    },
    Tls {
        host: String,
        port: u16,
    },
    /// An in-process broker on 127.0.0.1:`port`, started by this process.
    Embedded {
        port: u16,
    },
}

#[derive(Debug, Clone)]
pub struct MqttConfig {
    pub endpoint: MqttEndpoint,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    /// Mutual TLS: certificate chain and private key (both PEM).
    pub client_identity: Option<(PathBuf, PathBuf)>,
    pub topic: String,
    pub shared_group: Option<String>,
    pub keep_alive: Duration,
    pub persistent_session: bool,
}

impl MqttConfig {
    /// The topic filter actually subscribed: `$share/<group>/<topic>` with a shared group.
    pub fn subscription(&self) -> String {
        match &self.shared_group {
            Some(group) => format!("$share/{group}/{}", self.topic),
            None => self.topic.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PollConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub lookback: Duration,
}

#[derive(Debug, Clone)]
pub struct StateConfig {
    /// The SQLite database (used unless `url` is set).
    pub path: PathBuf,
    /// `postgres://…`: the PostgreSQL database that several instances share, instead of `path`.
    pub url: Option<Secret>,
    /// With `url`: the certificates (PEM) to trust for TLS to the server, instead of the
    /// system's roots (a private CA, or a cloud provider's bundle).
    pub ca_file: Option<PathBuf>,
    /// How long a claim on a job or an outbox row (and the poll's turn) lasts unless renewed:
    /// how long work of an instance that died waits before another takes it over.
    pub lease: Duration,
    /// How long an event id or reload id is remembered for deduplication.
    pub dedupe_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `None` turns the admin endpoint off.
    pub listen: Option<SocketAddr>,
    /// Bearer token the silence endpoints require; unset, they are open on a loopback
    /// `listen` and refused on any other.
    pub token: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct TenantConfig {
    pub id: String,
    pub comment: String,
    /// The tenant's URL, e.g. `https://acme.eu.qlikcloud.com` (no query or fragment).
    pub url: url::Url,
    pub auth: Option<TenantAuth>,
    pub qmc_url: Option<String>,
    pub hub_url: Option<String>,
    /// The client-side budget of this tenant's credential (`rate_limit`).
    pub rate_limit: TenantRateLimit,
}

impl TenantConfig {
    /// The URL without a trailing slash, for appending paths: `https://acme.eu.qlikcloud.com`.
    pub fn base_url(&self) -> &str {
        self.url.as_str().trim_end_matches('/')
    }
}

#[derive(Debug, Clone)]
pub enum TenantAuth {
    ApiKey(Secret),
    OAuth {
        client_id: String,
        client_secret: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub id: String,
    pub text: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct EnrichConfig {
    pub enabled: bool,
    pub timeout: Duration,
    pub cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct ScriptLogArchiveConfig {
    pub enabled: bool,
    pub dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub give_up_after: Duration,
    pub dry_run_dir: Option<PathBuf>,
    pub retention: Duration,
}

pub use destinations::{
    AppOwnerConfig, DestinationConfig, DestinationKind, DestinationType, EmailConfig, Grouping,
    MessageFormat, NoticeTemplates, Priority, ScriptLogLines, SlackConfig, SmtpConfig,
    SmtpSecurity, TeamsConfig, AUTOMATION_SUBJECT, DIGEST_SUBJECT, RECOVERY_SUBJECT,
};
pub use email::{GraphConfig, MailTransport, OAuthClient, TransportKind};

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub listen: SocketAddr,
    pub path: String,
    /// Certificate chain and key (PEM): both set → HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Webhook secrets; more than one during a rotation.
    pub secrets: Vec<Secret>,
    pub max_body: u64,
    /// Connections open at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
    /// Body bytes all requests hold at once beyond each one's first 16 KiB.
    pub body_budget: u64,
    pub topic_prefix: String,
    /// Non-empty: only events of these tenants are accepted (others get 403).
    pub allowed_tenants: Vec<String>,
    /// The URL Qlik Cloud calls (the webhook's URL): what `setup webhook` registers and
    /// `doctor` looks for.
    pub public_url: Option<url::Url>,
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("{path} has {} problem{}:\n{}", problems.len(), if problems.len() == 1 { "" } else { "s" }, list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Whether some enabled destination sends recovery notices.
    pub fn recovery_enabled(&self) -> bool {
        self.destinations
            .iter()
            .any(|d| d.enabled && d.notify_recovery)
    }

    /// Whether the daemon keeps `failing_apps` (which apps are failing now): for recovery
    /// notices, `escalate_after`, and for the console whenever the admin endpoint is on.
    pub fn tracks_failing_apps(&self) -> bool {
        self.recovery_enabled()
            || self.admin.listen.is_some()
            || self
                .destinations
                .iter()
                .any(|d| d.enabled && d.route.escalate_after > 1)
    }

    /// Reads, expands and validates the file at `path` with the given environment.
    pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, path, env)
    }

    /// Like [`Config::load`] for text already in memory; `origin` names it in errors.
    pub fn from_yaml(text: &str, origin: &Path, env: &Env) -> Result<Config, ConfigError> {
        let mut tree: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Yaml {
                path: origin.to_owned(),
                message: e.to_string(),
            })?;
        let problems = reader::Problems::default();
        env::expand_vars(&mut tree, "", env, &problems);
        env::apply_overrides(&mut tree, env, &problems);
        let config = build::build(&tree, &problems);
        let problems = problems.into_vec();
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                path: origin.to_owned(),
                problems,
            }),
        }
    }
}
