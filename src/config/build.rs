//! Reads the expanded YAML tree into a typed [`Config`], checking each value and the rules that
//! tie values together. Every problem goes to `problems`; reading goes on after one.

use std::path::PathBuf;
use std::time::Duration;

use super::destinations::read_destinations;
use super::gateway::read_gateway;
use super::rate_limit::read_rate_limit;
use super::reader::{pair, Node, Problems, Section};
use super::*;

pub(super) fn build(tree: &serde_yaml_ng::Value, problems: &Problems) -> Option<Config> {
    let root = Node::root(tree, problems).section();
    let poll = read_poll(&root.section("poll"));
    let enrich = read_enrich(&root.section("enrich"));
    let credentials_needed = poll.enabled || enrich.enabled;
    let config = Config {
        timezone: root.opt("timezone"),
        mqtt: read_mqtt(&root.section("mqtt")),
        alert_on: root.or(
            "alert_on",
            vec![
                Failure::ReloadFailed,
                Failure::ReloadExceededLimit,
                Failure::EngineAttemptFailed,
                Failure::AutomationFailed,
                Failure::AutomationExceededLimit,
            ],
        ),
        include_session_apps: root.or("include_session_apps", false),
        include_automation_test_runs: root.or("include_automation_test_runs", false),
        state: read_state(&root.section("state")),
        admin: read_admin(&root.section("admin")),
        tenants: read_tenants(&root, credentials_needed),
        links: read_links(&root),
        script_log_archive: read_archive(&root.section("script_log_archive")),
        delivery: read_delivery(&root.section("delivery")),
        destinations: read_destinations(&root),
        gateway: read_gateway(&root.section("gateway")),
        silences: super::silences::read_silences(&root),
        poll,
        enrich,
    };
    if !config.enrich.enabled {
        for (i, d) in config.destinations.iter().enumerate() {
            let owner = matches!(&d.kind, DestinationKind::Email(e) if e.app_owner.enabled);
            for (key, used) in [
                ("only_apps_tagged", !d.only_apps_tagged.is_empty()),
                ("skip_apps_tagged", !d.skip_apps_tagged.is_empty()),
                ("app_owner.enabled", owner),
            ] {
                if used {
                    root.problem(
                        &format!("destinations[{i}].{key}"),
                        "needs enrich.enabled: tags and owners come from the Qlik Cloud API",
                    );
                }
            }
        }
    }
    if config.alert_on.is_empty() {
        root.problem("alert_on", "must name at least one kind of failure");
    }
    if config.mqtt.is_none() && !config.poll.enabled {
        root.problem(
            "mqtt.url",
            "is null and poll is disabled: nothing would ever be received",
        );
    }
    Some(config)
}

fn read_admin(s: &Section) -> AdminConfig {
    let token: Option<Secret> = s.opt("token");
    if let Some(token) = &token {
        // The value never goes into the message.
        if token.is_empty() {
            s.problem(
                "token",
                "must not be empty (remove the key to leave it unset)",
            );
        } else if !token.expose().bytes().all(|b| b.is_ascii_graphic()) {
            s.problem(
                "token",
                "must be printable ASCII without spaces, to fit an `Authorization: Bearer` header",
            );
        }
    }
    AdminConfig {
        listen: s.default_or_null("listen", ([127, 0, 0, 1], 9090).into()),
        token,
    }
}

fn read_mqtt(s: &Section) -> Option<MqttConfig> {
    let url: Option<String> = s.default_or_null("url", "mqtt://127.0.0.1:1883".to_owned());
    let url_node = s.node("url");
    let endpoint = url.as_deref().and_then(|url| match parse_mqtt_url(url) {
        Ok(endpoint) => endpoint,
        Err(why) => {
            url_node.problem(why);
            None
        }
    });
    let tls = matches!(endpoint, Some(MqttEndpoint::Tls { .. }));
    if matches!(endpoint, Some(MqttEndpoint::Embedded { .. })) {
        for key in ["username", "password"] {
            if s.node(key).is_present() {
                s.problem(
                    key,
                    "is not used with the embedded broker (it accepts loopback clients only)",
                );
            }
        }
    }
    let config = MqttConfig {
        endpoint: endpoint.clone().unwrap_or(MqttEndpoint::Tcp {
            host: String::new(),
            port: 0,
        }),
        client_id: s.or("client_id", "reload-butler-1".to_owned()),
        username: s.opt("username").filter(|u: &String| !u.is_empty()),
        password: s.opt("password").filter(|p: &Secret| !p.is_empty()),
        ca_file: s.opt("ca_file"),
        client_identity: pair(s, "client_cert_file", "client_key_file"),
        topic: s.or("topic", "qscloud/app/reload/#".to_owned()),
        shared_group: s.opt("shared_group").filter(|g: &String| !g.is_empty()),
        keep_alive: s.or("keep_alive", Duration::from_secs(30)),
        persistent_session: s.or("persistent_session", true),
    };
    if config.client_id.is_empty() {
        s.problem("client_id", "must not be empty");
    }
    if config.topic.is_empty() {
        s.problem("topic", "must not be empty");
    }
    if let Some(group) = &config.shared_group {
        if group.contains(['/', '+', '#']) {
            s.problem("shared_group", "must not contain `/`, `+` or `#`");
        }
    }
    if config.keep_alive < Duration::from_secs(5) {
        s.problem("keep_alive", "must be at least 5s");
    }
    if !tls && endpoint.is_some() {
        for key in ["ca_file", "client_cert_file", "client_key_file"] {
            if s.node(key).is_present() {
                s.problem(key, "is only used with an mqtts:// url");
            }
        }
    }
    endpoint.map(|_| config)
}

/// `mqtt://host[:port]` or `mqtts://host[:port]`; null, `""` or `none` mean "no MQTT".
fn parse_mqtt_url(url: &str) -> Result<Option<MqttEndpoint>, String> {
    let url = url.trim();
    if url.is_empty() || url.eq_ignore_ascii_case("none") || url.eq_ignore_ascii_case("null") {
        return Ok(None);
    }
    if let Some(rest) = url.strip_prefix("embedded") {
        if !cfg!(feature = "embedded-broker") {
            return Err(
                "this build has no embedded broker (built without the `embedded-broker` \
                 feature): use a broker such as mosquitto"
                    .to_owned(),
            );
        }
        let port = match rest.strip_prefix(':') {
            None if rest.is_empty() => 1883,
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| format!("`{port}` is not a port number"))?,
            None => {
                return Err(format!(
                    "expected `embedded` or `embedded:PORT`, found `{url}`"
                ))
            }
        };
        return Ok(Some(MqttEndpoint::Embedded { port }));
    }
    let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtts://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("mqtt://") {
        (false, rest)
    } else {
        return Err(format!(
            "expected mqtt://host:port or mqtts://host:port, found `{url}`"
        ));
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('@') {
        return Err(
            "put credentials in mqtt.username and mqtt.password, not in the url".to_owned(),
        );
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("`{port}` is not a port number"))?;
            (host, port)
        }
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return Err(format!("`{url}` has no valid host"));
    }
    let host = host.to_owned();
    Ok(Some(if tls {
        MqttEndpoint::Tls { host, port }
    } else {
        MqttEndpoint::Tcp { host, port }
    }))
}

fn read_poll(s: &Section) -> PollConfig {
    let poll = PollConfig {
        enabled: s.or("enabled", true),
        interval: s.or("interval", Duration::from_secs(300)),
        lookback: s.or("lookback", Duration::from_secs(3600)),
    };
    if poll.enabled && poll.interval < Duration::from_secs(10) {
        s.problem("interval", "must be at least 10s");
    }
    poll
}

fn read_state(s: &Section) -> StateConfig {
    let path: Option<PathBuf> = s.opt("path");
    let url: Option<Secret> = s.opt("url");
    let state = StateConfig {
        path: path
            .clone()
            .unwrap_or_else(|| PathBuf::from("data/reload-butler.db")),
        url: url.clone(),
        ca_file: s.opt("ca_file"),
        lease: s.or("lease", Duration::from_secs(30)),
        dedupe_ttl: s.or("dedupe_ttl", Duration::from_secs(7 * 86_400)),
    };
    if let Some(url) = &url {
        if path.is_some() {
            s.problem(
                "url",
                "give state.path (SQLite) or state.url (PostgreSQL), not both",
            );
        }
        if let Err(why) = check_postgres_url(url.expose()) {
            s.problem("url", why);
        }
    }
    if state.ca_file.is_some() && url.is_none() {
        s.problem(
            "ca_file",
            "is only used with state.url (PostgreSQL over TLS)",
        );
    }
    if state.lease < Duration::from_secs(5) {
        s.problem("lease", "must be at least 5s");
    }
    if state.path.as_os_str().is_empty() {
        s.problem("path", "must not be empty");
    }
    if state.dedupe_ttl < Duration::from_secs(3600) {
        s.problem(
            "dedupe_ttl",
            "must be at least 1h (Qlik may deliver an event again much later)",
        );
    }
    state
}

/// A `postgres://` URL that cannot be used; the message never repeats the URL (it may hold a
/// password).
fn check_postgres_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err("expected postgres://user:password@host:5432/database".into());
    }
    <tokio_postgres::Config as std::str::FromStr>::from_str(url)
        .map(|_| ())
        .map_err(|e| match std::error::Error::source(&e) {
            Some(why) => format!("not usable as a PostgreSQL URL: {why}"),
            None => format!("not usable as a PostgreSQL URL: {e}"),
        })
}

fn read_tenants(root: &Section, credentials_needed: bool) -> Vec<TenantConfig> {
    let mut tenants: Vec<TenantConfig> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for node in root.list("tenants") {
        let s = node.section();
        let id: String = s.req("id").unwrap_or_default();
        if ids.contains(&id) && !id.is_empty() {
            s.problem("id", format!("tenant `{id}` is listed twice"));
        }
        ids.push(id.clone());
        let url: Option<url::Url> = s.req("url");
        if url
            .as_ref()
            .is_some_and(|u| u.query().is_some() || u.fragment().is_some())
        {
            s.problem(
                "url",
                "must not have a query (`?`) or fragment (`#`): API paths are appended to it",
            );
        }
        let links = s.section("links");
        let (qmc_url, hub_url) = (links.opt("qmc"), links.opt("hub"));
        drop(links);
        let comment = s.or("comment", String::new());
        let auth = read_auth(&s.section("auth"), credentials_needed);
        let rate_limit = read_rate_limit(&s.section("rate_limit"));
        // Without a url the tenant is left out; its problem is recorded.
        if let Some(url) = url {
            tenants.push(TenantConfig {
                id,
                comment,
                url,
                auth,
                qmc_url,
                hub_url,
                rate_limit,
            });
        }
    }
    tenants
}

fn read_auth(s: &Section, credentials_needed: bool) -> Option<TenantAuth> {
    let api_key: Option<Secret> = s.opt("api_key");
    let oauth = s.section("oauth");
    let oauth_set = s.node("oauth").is_present();
    let client_id: Option<String> = oauth.opt("client_id");
    let client_secret: Option<Secret> = oauth.opt("client_secret");
    drop(oauth);
    match (api_key, oauth_set) {
        (Some(_), true) => {
            s.problem("", "set either api_key or oauth, not both");
            None
        }
        (Some(key), false) => {
            if key.is_empty() {
                s.problem("api_key", "must not be empty");
            }
            Some(TenantAuth::ApiKey(key))
        }
        (None, true) => match (client_id, client_secret) {
            (Some(client_id), Some(client_secret)) if !client_secret.is_empty() => {
                Some(TenantAuth::OAuth {
                    client_id,
                    client_secret,
                })
            }
            _ => {
                s.problem("oauth", "needs client_id and a non-empty client_secret");
                None
            }
        },
        (None, false) => {
            if credentials_needed {
                s.problem("", "needs api_key or oauth while enrich or poll is enabled");
            }
            None
        }
    }
}

fn read_links(root: &Section) -> Vec<LinkConfig> {
    root.list("links")
        .iter()
        .map(|node| {
            let s = node.section();
            LinkConfig {
                id: s.req("id").unwrap_or_default(),
                text: s.req("text").unwrap_or_default(),
                url: s.req("url").unwrap_or_default(),
            }
        })
        .collect()
}

fn read_enrich(s: &Section) -> EnrichConfig {
    EnrichConfig {
        enabled: s.or("enabled", true),
        timeout: s.or("timeout", Duration::from_secs(10)),
        cache_ttl: s.or("cache_ttl", Duration::from_secs(600)),
    }
}

fn read_archive(s: &Section) -> ScriptLogArchiveConfig {
    ScriptLogArchiveConfig {
        enabled: s.or("enabled", false),
        dir: s.or("dir", PathBuf::from("data/script-logs")),
    }
}

fn read_delivery(s: &Section) -> DeliveryConfig {
    let delivery = DeliveryConfig {
        retry_initial: s.or("retry_initial", Duration::from_secs(5)),
        retry_max: s.or("retry_max", Duration::from_secs(600)),
        give_up_after: s.or("give_up_after", Duration::from_secs(86_400)),
        dry_run_dir: s.opt("dry_run_dir"),
        retention: s.or("retention", Duration::from_secs(30 * 86_400)),
    };
    if delivery.retry_initial.is_zero() {
        s.problem("retry_initial", "must be more than 0");
    }
    if delivery.retry_max < delivery.retry_initial {
        s.problem("retry_max", "must not be shorter than retry_initial");
    }
    if delivery.give_up_after.is_zero() {
        s.problem("give_up_after", "must be more than 0");
    }
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        let tcp = |h: &str, p| {
            Ok(Some(MqttEndpoint::Tcp {
                host: h.into(),
                port: p,
            }))
        };
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1:1883"),
            tcp("127.0.0.1", 1883)
        );
        assert_eq!(parse_mqtt_url("mqtt://broker"), tcp("broker", 1883));
        assert_eq!(parse_mqtt_url("mqtt://[::1]:1884"), tcp("::1", 1884));
        assert_eq!(
            parse_mqtt_url("mqtts://broker.example.com"),
            Ok(Some(MqttEndpoint::Tls {
                host: "broker.example.com".into(),
                port: 8883
            }))
        );
        assert_eq!(parse_mqtt_url("none"), Ok(None));
        assert_eq!(
            parse_mqtt_url("embedded"),
            Ok(Some(MqttEndpoint::Embedded { port: 1883 }))
        );
        assert_eq!(
            parse_mqtt_url("embedded:18830"),
            Ok(Some(MqttEndpoint::Embedded { port: 18830 }))
        );
        assert!(parse_mqtt_url("embeddedx").is_err());
        assert!(parse_mqtt_url("http://broker").is_err());
        assert!(parse_mqtt_url("mqtt://user:pw@broker").is_err());
        assert!(parse_mqtt_url("mqtt://broker:99999").is_err());
    }
}
