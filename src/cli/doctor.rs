//! `doctor`: checks the whole chain a Qlik Cloud failure travels, one line per check (`ok`, or
//! the problem and what to do), and exits 0 only when every check passes. Read-only: it sends
//! nothing unless `--send` asks for the test alert too.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;

use super::exit::{current_thread_runtime, load, Code, Exit, Outcome};
use super::setup::{client, event_types, explain};
use crate::config::{
    Config, DestinationKind, MailTransport, MqttConfig, OAuthClient, TenantAuth, TenantConfig,
};
use crate::qlik::api::QlikClient;
use crate::qlik::credential::{key_state, KeyState};

/// How long the broker and destination checks may take each.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one check.
enum Verdict {
    Ok(String),
    /// What is wrong, and what to do about it.
    Problem(String),
}

struct Report {
    failed: usize,
}

impl Report {
    fn line(&mut self, what: &str, verdict: Verdict) {
        match verdict {
            Verdict::Ok(detail) => println!("ok    {what}: {detail}"),
            Verdict::Problem(problem) => {
                self.failed += 1;
                println!("FAIL  {what}: {problem}");
            }
        }
    }
}

pub fn command(config_path: &Path, send: bool) -> Outcome {
    let mut report = Report { failed: 0 };
    let config = match load(config_path) {
        Ok(config) => config,
        Err(exit) => {
            report.line("config", Verdict::Problem(exit.message));
            return Err(Exit::said(Code::Config));
        }
    };
    let problems = super::check::all_problems(&config);
    report.line(
        "config",
        if problems.is_empty() {
            Verdict::Ok(format!("{} is valid", config_path.display()))
        } else {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Verdict::Problem(format!("{} (run `check`)", lines.join("; ")))
        },
    );
    report.line("state store", store(&config));
    current_thread_runtime()?.block_on(async {
        report.line("broker", broker(config.mqtt.as_ref()).await);
        for tenant in &config.tenants {
            tenant_checks(&config, tenant, &mut report).await;
        }
        for d in config.destinations.iter().filter(|d| d.enabled) {
            report.line(
                &format!("destination {}", d.name),
                reachable(&d.name, &d.kind).await,
            );
        }
    });
    if send && report.failed == 0 {
        println!("sending the test alert:");
        super::test_alert::command(config_path, None)?;
    }
    if report.failed == 0 {
        println!("all checks passed");
        Ok(())
    } else {
        println!(
            "{} check{} failed",
            report.failed,
            super::exit::plural(report.failed)
        );
        Err(Exit::said(Code::Runtime))
    }
}

/// Opens the state store (creating it if needed) and takes its write lock.
fn store(config: &Config) -> Verdict {
    if let Some(url) = &config.state.url {
        let probed = match current_thread_runtime() {
            Ok(runtime) => runtime.block_on(crate::store::pg::PgStore::probe(
                url.expose(),
                config.state.ca_file.as_deref(),
            )),
            Err(exit) => Err(crate::store::StoreError::Task(exit.message)),
        };
        return match probed {
            Ok(()) => Verdict::Ok("the PostgreSQL database (state.url) answers".into()),
            Err(error) => Verdict::Problem(format!(
                "{error}; check state.url, the server and its pg_hba.conf"
            )),
        };
    }
    let path = &config.state.path;
    match crate::store::Store::open(path, config.state.dedupe_ttl).and_then(|mut s| s.probe_write())
    {
        Ok(()) => Verdict::Ok(format!("{} takes writes", path.display())),
        Err(error) => Verdict::Problem(format!(
            "{error}; check the directory's owner and free space"
        )),
    }
}

/// Connects with a client id of its own (never the daemon's: the broker would drop the
/// daemon's session) and subscribes to the daemon's topic, waiting for the broker's answer.
async fn broker(mqtt: Option<&MqttConfig>) -> Verdict {
    let Some(mqtt) = mqtt else {
        return Verdict::Ok("not used (mqtt.url: null: the poll alone)".into());
    };
    let mut own = mqtt.clone();
    own.client_id = format!("{}-doctor", mqtt.client_id);
    own.persistent_session = false;
    let options = match crate::mqtt::client_options(&own) {
        Ok(options) => options,
        Err(error) => return Verdict::Problem(error.to_string()),
    };
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, 16);
    let topic = mqtt.topic.clone();
    let outcome = tokio::time::timeout(NETWORK_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                    if let Err(error) = client.subscribe(topic.clone(), rumqttc::QoS::AtLeastOnce).await {
                        return Err(error.to_string());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(ack))) => {
                    return if ack.return_codes.contains(&rumqttc::SubscribeReasonCode::Failure) {
                        Err(format!("the broker refused the subscription to {topic}: check its ACL for this user"))
                    } else {
                        Ok(())
                    };
                }
                Ok(_) => {}
                Err(error) => return Err(format!("{error}; check mqtt.url, the credentials and the broker")),
            }
        }
    })
    .await;
    let _ = client.disconnect().await;
    match outcome {
        Ok(Ok(())) => Verdict::Ok(format!(
            "connected, subscription to {} accepted",
            mqtt.topic
        )),
        Ok(Err(problem)) => Verdict::Problem(problem),
        Err(_) => Verdict::Problem(format!(
            "no answer within {}s; check mqtt.url and that the broker runs",
            NETWORK_TIMEOUT.as_secs()
        )),
    }
}

async fn tenant_checks(config: &Config, tenant: &TenantConfig, report: &mut Report) {
    let name = format!("tenant {}", tenant.id);
    let Some(auth) = &tenant.auth else {
        report.line(
            &name,
            Verdict::Ok("no auth: events alone, no enrichment, no poll".into()),
        );
        return;
    };
    let api = match client(config, tenant) {
        Ok(api) => api,
        Err(exit) => return report.line(&name, Verdict::Problem(exit.message)),
    };
    let me = match api.me().await {
        Ok(me) => me,
        Err(error) => {
            return report.line(
                &format!("{name} credentials"),
                Verdict::Problem(explain(&error)),
            )
        }
    };
    let who = me.name.clone().unwrap_or_else(|| me.id.clone());
    report.line(
        &format!("{name} credentials"),
        Verdict::Ok(format!("accepted (user {who})")),
    );
    if config.poll.enabled {
        report.line(
            &format!("{name} poll"),
            if me.has_role("TenantAdmin") {
                Verdict::Ok("the user is a TenantAdmin".into())
            } else {
                Verdict::Problem(format!("the poll lists every app's reloads, which needs the TenantAdmin role: assign it to {who}, or set poll.enabled: false"))
            },
        );
    }
    if let TenantAuth::ApiKey(key) = auth {
        report.line(
            &format!("{name} API key"),
            api_key(&api, key.expose()).await,
        );
    }
    if config.mqtt.is_some() {
        report.line(
            &format!("{name} webhook"),
            webhook(config, &api, &tenant.id).await,
        );
    }
}

/// The key's state and expiry (see `qlik::credential`).
async fn api_key(api: &QlikClient, key: &str) -> Verdict {
    let now = Utc::now();
    let state = key_state(api, key).await;
    match (state.problem(now), state) {
        (Some(problem), _) => Verdict::Problem(problem.describe(now)),
        (None, KeyState::Expires(Some(at))) => {
            Verdict::Ok(format!("active, expires on {}", at.format("%Y-%m-%d")))
        }
        (None, _) => Verdict::Ok("active; its expiry is not known".into()),
    }
}

/// The webhook that calls `gateway.public_url`: there, enabled, with the event types
/// `alert_on` needs, and its recent deliveries answered.
async fn webhook(config: &Config, api: &QlikClient, tenant: &str) -> Verdict {
    let Some(url) = &config.gateway.public_url else {
        return Verdict::Problem("gateway.public_url is not set: set it to the URL Qlik Cloud calls, so the webhook can be found".into());
    };
    let url = url.as_str();
    let fix = format!("run `reload-butler setup webhook --tenant {tenant}`");
    let found = match api.webhooks_for(url).await {
        Ok(found) => found,
        Err(error) => return Verdict::Problem(explain(&error)),
    };
    let Some(hook) = found.first() else {
        return Verdict::Problem(format!("no webhook calls {url}: {fix}"));
    };
    if !hook.enabled {
        let why = hook.disabled_reason.as_deref().unwrap_or("no reason given");
        return Verdict::Problem(format!(
            "webhook {} is disabled ({why:?}): fix what failed, then {fix}",
            hook.id
        ));
    }
    let missing: Vec<String> = event_types(config)
        .into_iter()
        .filter(|t| !hook.event_types.contains(t))
        .collect();
    if !missing.is_empty() {
        return Verdict::Problem(format!(
            "webhook {} does not send {}: {fix}",
            hook.id,
            missing.join(", ")
        ));
    }
    let deliveries = match api.webhook_deliveries(&hook.id).await {
        Ok(deliveries) => deliveries,
        Err(error) => return Verdict::Problem(explain(&error)),
    };
    let failed: Vec<_> = deliveries
        .iter()
        .filter(|d| d.status != "success")
        .collect();
    match failed.first() {
        None => Verdict::Ok(format!(
            "webhook {} enabled; its last {} deliveries succeeded",
            hook.id,
            deliveries.len()
        )),
        Some(latest) => {
            let status = latest
                .response
                .as_ref()
                .and_then(|r| r.status_code)
                .map_or_else(|| "no answer".to_owned(), |s| format!("HTTP {s}"));
            let when = latest
                .triggered_at
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            let message = latest.status_message.as_deref().unwrap_or_default();
            Verdict::Problem(format!(
                "{} of the last {} deliveries of webhook {} failed; the latest at {when}: {status} {message:?}; check that the gateway runs and is reachable at {url}",
                failed.len(),
                deliveries.len(),
                hook.id
            ))
        }
    }
}

/// A destination's service answers a connection, and its token endpoint grants a token when it
/// has one (nothing is sent).
async fn reachable(name: &str, kind: &DestinationKind) -> Verdict {
    let (host, port) = match kind {
        DestinationKind::Email(email) => {
            let (address, client) = match &email.transport {
                MailTransport::Smtp(smtp) => ((smtp.host.clone(), smtp.port), smtp.oauth2.as_ref()),
                MailTransport::Graph(graph) => match host_port(&graph.api_url) {
                    Some(address) => (address, Some(&graph.client)),
                    None => return Verdict::Problem("graph.api_url has no host".into()),
                },
            };
            if let Some(client) = client {
                if let Err(problem) = token(client).await {
                    return Verdict::Problem(problem);
                }
            }
            if let MailTransport::Smtp(smtp) = &email.transport {
                return smtp_sign_in(name, email, smtp.username.is_some()).await;
            }
            address
        }
        DestinationKind::Slack(slack) => match webhook_address(slack.webhook_url.as_ref()) {
            Some(address) => address,
            None => return Verdict::Problem("webhook_url has no host".into()),
        },
        DestinationKind::Teams(teams) => match webhook_address(teams.webhook_url.as_ref()) {
            Some(address) => address,
            None => return Verdict::Problem("webhook_url has no host".into()),
        },
        DestinationKind::Webhook(webhook) => match webhook_address(webhook.url.as_ref()) {
            Some(address) => address,
            None => return Verdict::Problem("url has no host".into()),
        },
    };
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(NETWORK_TIMEOUT, connect).await {
        Ok(Ok(_)) => Verdict::Ok(format!("{host}:{port} answers")),
        Ok(Err(error)) => Verdict::Problem(format!(
            "cannot connect to {host}:{port}: {error}; check the host, the port and the firewall"
        )),
        Err(_) => Verdict::Problem(format!(
            "{host}:{port} did not answer within {}s; check the firewall",
            NETWORK_TIMEOUT.as_secs()
        )),
    }
}

/// Connects to the relay, EHLO, STARTTLS or TLS, and AUTH when a user is set: all a send does
/// before the mail itself.
async fn smtp_sign_in(name: &str, email: &crate::config::EmailConfig, auth: bool) -> Verdict {
    let notifier = match crate::notify::email::EmailNotifier::new(name, email) {
        Ok(notifier) => notifier,
        Err(error) => return Verdict::Problem(error.to_string()),
    };
    let signed_in = tokio::time::timeout(NETWORK_TIMEOUT, notifier.sign_in()).await;
    match signed_in {
        Ok(Some(Ok(relay))) if auth => {
            Verdict::Ok(format!("{relay} answers and accepts the sign-in"))
        }
        Ok(Some(Ok(relay))) => {
            Verdict::Ok(format!("{relay} answers (no smtp.username: no sign-in)"))
        }
        Ok(Some(Err(error))) => Verdict::Problem(format!(
            "{error}; check smtp.host, smtp.port, smtp.security and the credentials"
        )),
        Ok(None) => Verdict::Ok("Microsoft Graph: the token endpoint answers".into()),
        Err(_) => Verdict::Problem(format!(
            "the relay did not finish the sign-in within {}s; check smtp.host and smtp.port",
            NETWORK_TIMEOUT.as_secs()
        )),
    }
}

/// Asks the token endpoint for a token, as the sender will.
async fn token(client: &OAuthClient) -> Result<(), String> {
    let source = crate::oauth::TokenSource::new(client, NETWORK_TIMEOUT)
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    source
        .token()
        .await
        .map(drop)
        .map_err(|e| format!("the token endpoint {} refused: {e}", client.token_url))
}

fn webhook_address(url: Option<&crate::config::SecretUrl>) -> Option<(String, u16)> {
    host_port(url?.expose())
}

fn host_port(url: &url::Url) -> Option<(String, u16)> {
    Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
}
