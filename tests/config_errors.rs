//! Configuration: one file per invalid case under tests/fixtures/config/, each listing the exact
//! problems it must produce (`# expect: ...`); plus defaults, overrides and secret redaction.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reload_butler::config::{Config, ConfigError, DestinationKind, Env, MqttEndpoint, TenantAuth};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn env(pairs: &[(&str, &str)]) -> Env {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Loads one fixture and compares its problems with its `# expect:` lines, in any order.
fn check(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let expected: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_owned)
        .collect();
    match Config::load(path, &Env::new()) {
        Ok(_) => panic!("{} was accepted", path.display()),
        Err(ConfigError::Yaml { message, .. }) => {
            assert!(
                text.contains("# expect-yaml-error"),
                "{}: {message}",
                path.display()
            );
            assert!(
                message.contains("line"),
                "YAML errors name the line: {message}"
            );
        }
        Err(ConfigError::Invalid { problems, .. }) => {
            let got: BTreeSet<String> = problems.iter().map(ToString::to_string).collect();
            assert_eq!(got, expected, "{}", path.display());
            assert_eq!(problems.len(), got.len(), "no problem is reported twice");
        }
        Err(other) => panic!("{}: {other}", path.display()),
    }
}

#[test]
fn every_invalid_fixture_reports_exactly_its_problems() {
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures()).expect("fixture dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            check(&path);
            count += 1;
        }
    }
    assert!(count >= 14, "only {count} fixtures found");
}

#[test]
fn three_mistakes_are_three_problems_in_the_error_text() {
    let err =
        Config::load(&fixtures().join("three-mistakes.yaml"), &Env::new()).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("has 3 problems"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("  - ")).count(),
        3,
        "{text}"
    );
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let err =
        Config::load(&fixtures().join("destinations.yaml"), &Env::new()).expect_err("invalid");
    assert!(!err.to_string().contains("SECRETTOKEN"), "{err}");

    let yaml = "
tenants:
  - {id: t1, url: https://t1.eu.qlikcloud.com, auth: {api_key: '${KEY}'}}
mqtt: {url: 'mqtt://b:1883', username: u, password: '${PW}'}
admin: {token: '${ADMIN_TOKEN}'}
destinations:
  - {name: s, type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/${SLACK_TOKEN}'}
  - {name: x, type: email, from: a@acme.com, recipients: [b@acme.com], smtp: {host: smtp.office365.com, username: a@acme.com,
     oauth2: {token_url: 'https://login.microsoftonline.com/t/oauth2/v2.0/token', client_id: c, client_secret: '${SMTP_OAUTH}', scope: s}}}
  - {name: g, type: email, transport: graph, from: a@acme.com, recipients: [b@acme.com],
     graph: {token_url: 'https://login.microsoftonline.com/t/oauth2/v2.0/token', client_id: c, client_secret: '${GRAPH_OAUTH}'}}
";
    let config = Config::from_yaml(
        yaml,
        Path::new("inline.yaml"),
        &env(&[
            ("KEY", "apikey-123"),
            ("PW", "mqttpw-456"),
            ("SLACK_TOKEN", "slacktoken-789"),
            ("ADMIN_TOKEN", "admintoken-000"),
            ("SMTP_OAUTH", "smtpoauth-111"),
            ("GRAPH_OAUTH", "graphoauth-222"),
        ]),
    )
    .expect("valid");
    let debug = format!("{config:?}");
    for secret in [
        "apikey-123",
        "mqttpw-456",
        "slacktoken-789",
        "admintoken-000",
        "smtpoauth-111",
        "graphoauth-222",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into Debug output");
    }
    assert!(debug.contains("<redacted>"));
    match &config.tenants[0].auth {
        Some(TenantAuth::ApiKey(key)) => assert_eq!(key.expose(), "apikey-123"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        config.admin.token.as_ref().map(|t| t.expose()),
        Some("admintoken-000")
    );
    let err = Config::load(&fixtures().join("admin-token-spaces.yaml"), &Env::new())
        .expect_err("invalid");
    assert!(!err.to_string().contains("horse"), "{err}");
}

#[test]
fn a_minimal_file_gets_the_documented_defaults() {
    let yaml = "tenants: [{id: t1, url: 'https://t1.eu.qlikcloud.com/', auth: {api_key: k}}]";
    let config = Config::from_yaml(yaml, Path::new("min.yaml"), &Env::new()).expect("valid");
    let mqtt = config.mqtt.expect("mqtt on by default");
    assert_eq!(
        mqtt.endpoint,
        MqttEndpoint::Tcp {
            host: "127.0.0.1".into(),
            port: 1883
        }
    );
    assert_eq!(mqtt.subscription(), "qscloud/app/reload/#");
    assert!(mqtt.persistent_session);
    assert_eq!(mqtt.keep_alive, Duration::from_secs(30));
    assert_eq!(config.tenants[0].base_url(), "https://t1.eu.qlikcloud.com");
    assert_eq!(config.alert_on.len(), 5);
    assert!(!config.include_automation_test_runs);
    assert!(!config.include_session_apps);
    assert_eq!(config.state.path, Path::new("data/reload-butler.db"));
    assert_eq!(config.admin.listen, Some(([127, 0, 0, 1], 9090).into()));
    assert!(config.admin.token.is_none());
    assert_eq!(config.poll.interval, Duration::from_secs(300));
    assert_eq!(config.delivery.give_up_after, Duration::from_secs(86_400));
    assert_eq!(config.gateway.max_body, 256 << 10);
    assert!(config.destinations.is_empty());
}

#[test]
fn environment_overrides_win_over_the_file() {
    let yaml = "
mqtt: {url: 'mqtt://file:1883'}
tenants: [{id: t1, url: 'https://t1.eu.qlikcloud.com', auth: {api_key: k}}]
destinations:
  - {name: mail, type: email, from: a@b.se, recipients: [x@y.se], smtp: {host: smtp.example.com}}
";
    let config = Config::from_yaml(
        yaml,
        Path::new("o.yaml"),
        &env(&[
            ("RELOAD_BUTLER__MQTT__URL", "mqtts://env-broker"),
            ("RELOAD_BUTLER__MQTT__SHARED_GROUP", "rb"),
            ("RELOAD_BUTLER__ALERT_ON", "[reload_failed]"),
            ("RELOAD_BUTLER__DESTINATIONS__0__SMTP__PORT", "2525"),
            ("RELOAD_BUTLER__ADMIN__LISTEN", "127.0.0.1:9999"),
        ]),
    )
    .expect("valid");
    let mqtt = config.mqtt.expect("mqtt");
    assert_eq!(
        mqtt.endpoint,
        MqttEndpoint::Tls {
            host: "env-broker".into(),
            port: 8883
        }
    );
    assert_eq!(mqtt.subscription(), "$share/rb/qscloud/app/reload/#");
    assert_eq!(config.alert_on.len(), 1);
    assert_eq!(config.admin.listen, Some(([127, 0, 0, 1], 9999).into()));
    match &config.destinations[0].kind {
        DestinationKind::Email(email) => match &email.transport {
            reload_butler::config::MailTransport::Smtp(smtp) => assert_eq!(smtp.port, 2525),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // A misspelt override is as much a problem as a misspelt key.
    let err = Config::from_yaml(
        yaml,
        Path::new("o.yaml"),
        &env(&[("RELOAD_BUTLER__MQTT__URLL", "x")]),
    )
    .expect_err("unknown key");
    assert!(err.to_string().contains("mqtt.urll: unknown key"), "{err}");
}

/// The variables the shipped config expects.
pub const SHIPPED_ENV: &[(&str, &str)] = &[
    ("QLIK_TENANT_ID", "xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct"),
    ("QLIK_API_KEY", "test-key"),
    ("SMTP_PASSWORD", "test-password"),
    (
        "SLACK_WEBHOOK_URL",
        "https://hooks.slack.com/services/T0/B0/x",
    ),
    (
        "TEAMS_WEBHOOK_URL",
        "https://prod.westeurope.logic.azure.com/workflows/x",
    ),
];

#[test]
fn the_shipped_config_is_valid_with_its_variables_and_names_each_missing_one() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/reload-butler.yaml");
    let config = Config::load(&path, &env(SHIPPED_ENV)).expect("shipped config is valid");
    assert_eq!(config.destinations.len(), 3);
    assert_eq!(
        config.timezone,
        reload_butler::zone::Zone::named("Europe/Stockholm")
    );
    assert!(
        config.gateway.secrets.is_empty(),
        "QLIK_WEBHOOK_SECRET defaults to none"
    );

    match Config::load(&path, &Env::new()) {
        Err(ConfigError::Invalid { problems, .. }) => {
            assert_eq!(problems.len(), SHIPPED_ENV.len(), "{problems:?}");
            for (var, _) in SHIPPED_ENV {
                assert!(
                    problems.iter().any(|p| p.message.contains(var)),
                    "{var} not named in {problems:?}"
                );
            }
        }
        other => panic!("{other:?}"),
    }
}
