//! How an email destination hands its mail over: SMTP (with a password or OAuth2 XOAUTH2), or
//! Microsoft Graph `sendMail`. Read here so that `check` refuses what the sender could not use.

use std::time::Duration;

use super::reader::Section;
use super::{Secret, SmtpConfig, SmtpSecurity};
use crate::keyword;

keyword! {
    /// `transport:` of an email destination.
    pub enum TransportKind { Smtp = "smtp", Graph = "graph" }
}

/// Where an email destination's mail goes.
#[derive(Debug, Clone)]
pub enum MailTransport {
    Smtp(SmtpConfig),
    Graph(GraphConfig),
}

/// An OAuth2 client that gets its access tokens with the client-credentials grant.
#[derive(Debug, Clone)]
pub struct OAuthClient {
    /// e.g. `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token`.
    pub token_url: url::Url,
    pub client_id: String,
    pub client_secret: Secret,
    /// e.g. `https://outlook.office365.com/.default`.
    pub scope: String,
}

/// `transport: graph`: `POST {api_url}/v1.0/users/{from}/sendMail` with an app token.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    pub client: OAuthClient,
    /// `https://graph.microsoft.com`, or a national cloud's Graph.
    pub api_url: url::Url,
    pub timeout: Duration,
}

const GRAPH_API: &str = "https://graph.microsoft.com";
const TIMEOUT: Duration = Duration::from_secs(30);

/// `transport`, and the `smtp` or `graph` section it names (the other one must be absent);
/// `None` when the `graph` section cannot be used (its problems are recorded).
pub(super) fn read_transport(s: &Section) -> Option<MailTransport> {
    let kind = s.or("transport", TransportKind::Smtp);
    let (used, unused) = match kind {
        TransportKind::Smtp => ("smtp", "graph"),
        TransportKind::Graph => ("graph", "smtp"),
    };
    if s.node(unused).is_present() {
        s.problem(
            unused,
            format!("is not used with `transport: {used}`; remove it"),
        );
    }
    match kind {
        TransportKind::Smtp => Some(MailTransport::Smtp(read_smtp(s))),
        TransportKind::Graph => read_graph(s).map(MailTransport::Graph),
    }
}

fn read_smtp(s: &Section) -> SmtpConfig {
    let smtp = s.section("smtp");
    let security = smtp.or("security", SmtpSecurity::StartTls);
    let default_port = match security {
        SmtpSecurity::StartTls => 587,
        SmtpSecurity::Tls => 465,
        SmtpSecurity::None => 25,
    };
    let oauth2 = smtp
        .node("oauth2")
        .is_present()
        .then(|| read_client(&smtp.section("oauth2"), None))
        .flatten();
    let config = SmtpConfig {
        host: smtp.req("host").unwrap_or_default(),
        port: smtp.or("port", default_port),
        security,
        username: smtp.opt("username").filter(|u: &String| !u.is_empty()),
        password: smtp.opt("password").filter(|p: &Secret| !p.is_empty()),
        timeout: smtp.or("timeout", TIMEOUT),
        ca_file: smtp.opt("ca_file"),
        oauth2,
    };
    if !config.host.is_empty() && url::Host::parse(&config.host).is_err() {
        smtp.problem(
            "host",
            format!("`{}` is not a host name or IP address", config.host),
        );
    }
    if smtp.node("oauth2").is_present() {
        if config.username.is_none() {
            smtp.problem(
                "username",
                "is required with smtp.oauth2: the mailbox XOAUTH2 signs in as (e.g. alerts@acme.com)",
            );
        }
        if config.password.is_some() {
            smtp.problem(
                "password",
                "is not used with smtp.oauth2 (the token is the password); remove one of them",
            );
        }
        if security == SmtpSecurity::None && !is_loopback_host(&config.host) {
            smtp.problem(
                "security",
                "`none` would send the OAuth2 token in clear text; use starttls or tls",
            );
        }
    }
    config
}

fn read_graph(s: &Section) -> Option<GraphConfig> {
    let graph = s.section("graph");
    let api_url = if graph.node("api_url").is_present() {
        secure_url(&graph, "api_url")
    } else {
        url::Url::parse(GRAPH_API).ok()
    };
    // The default scope is that of the Graph the mail goes to (a national cloud's api_url has
    // its own, e.g. `https://graph.microsoft.us/.default`).
    let default_scope = api_url
        .as_ref()
        .map(|url| format!("{}/.default", url.origin().ascii_serialization()));
    let client = read_client(&graph, Some(default_scope.unwrap_or_default()));
    let timeout = graph.or("timeout", TIMEOUT);
    Some(GraphConfig {
        client: client?,
        api_url: api_url?,
        timeout,
    })
}

/// `token_url`, `client_id`, `client_secret`, `scope` (`default_scope` when absent, else
/// required); `None` when one is missing or wrong (each has its problem).
fn read_client(s: &Section, default_scope: Option<String>) -> Option<OAuthClient> {
    if !s.node("token_url").is_present() {
        s.problem("token_url", "is required");
    }
    let token_url = secure_url(s, "token_url");
    let client_id: Option<String> = s.req("client_id");
    if client_id.as_ref().is_some_and(String::is_empty) {
        s.problem(
            "client_id",
            "is empty: the Application (client) ID of the app registration",
        );
    }
    let client_secret: Option<Secret> = s.req("client_secret");
    if client_secret.as_ref().is_some_and(Secret::is_empty) {
        s.problem(
            "client_secret",
            "is empty (an unset ${VAR}?): the token endpoint would refuse it",
        );
    }
    let scope = match default_scope {
        Some(default) => s.or("scope", default),
        None => s.req("scope").unwrap_or_default(),
    };
    if scope.is_empty() && s.node("scope").is_present() {
        s.problem(
            "scope",
            "is empty: e.g. https://outlook.office365.com/.default",
        );
    }
    Some(OAuthClient {
        token_url: token_url?,
        client_id: client_id.filter(|id| !id.is_empty())?,
        client_secret: client_secret.filter(|c| !c.is_empty())?,
        scope: Some(scope).filter(|s| !s.is_empty())?,
    })
}

/// An `https://` URL at `key`, or `http://` to a loopback address (a local relay or test);
/// `None` when absent or refused (with its problem).
fn secure_url(s: &Section, key: &'static str) -> Option<url::Url> {
    let url: url::Url = s.opt(key)?;
    if url.scheme() == "https" || url.host_str().is_some_and(is_loopback_host) {
        Some(url)
    } else {
        s.problem(
            key,
            "must be an https:// url (plain http only to a loopback address): it carries a secret",
        );
        None
    }
}

/// `localhost`, `127.0.0.1`, `::1` and the rest of 127/8.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, DestinationKind, Env};

    fn transport_of(destination: &str, env: &[(&str, &str)]) -> MailTransport {
        let yaml = format!(
            "poll: {{enabled: false}}\nenrich: {{enabled: false}}\n\
             tenants: [{{id: t1, url: 'https://t1.eu.qlikcloud.com'}}]\n\
             destinations:\n  - {{name: m, type: email, from: alerts@acme.com, \
             recipients: [ops@acme.com], {destination}}}\n"
        );
        let env: Env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config = Config::from_yaml(&yaml, std::path::Path::new("t.yaml"), &env)
            .unwrap_or_else(|e| panic!("{e}"));
        match &config.destinations[0].kind {
            DestinationKind::Email(email) => email.transport.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn graph_defaults_to_the_global_graph_and_its_scope() {
        let MailTransport::Graph(graph) = transport_of(
            "transport: graph, graph: {token_url: 'https://login.microsoftonline.com/t/oauth2/v2.0/token', \
             client_id: app, client_secret: '${GRAPH_SECRET}'}",
            &[("GRAPH_SECRET", "from-env")],
        ) else {
            panic!("graph")
        };
        assert_eq!(graph.api_url.as_str(), "https://graph.microsoft.com/");
        assert_eq!(graph.client.scope, "https://graph.microsoft.com/.default");
        assert_eq!(graph.client.client_secret.expose(), "from-env");
        assert_eq!(graph.timeout, TIMEOUT);
        let MailTransport::Graph(us) = transport_of(
            "transport: graph, graph: {token_url: 'https://login.microsoftonline.us/t/oauth2/v2.0/token', \
             client_id: app, client_secret: s, api_url: 'https://graph.microsoft.us'}",
            &[],
        ) else {
            panic!("graph")
        };
        assert_eq!(us.client.scope, "https://graph.microsoft.us/.default");
    }

    #[test]
    fn smtp_oauth2_is_read_beside_the_relay() {
        let MailTransport::Smtp(smtp) = transport_of(
            "smtp: {host: smtp.office365.com, username: alerts@acme.com, oauth2: \
             {token_url: 'https://login.microsoftonline.com/t/oauth2/v2.0/token', client_id: app, \
             client_secret: s, scope: 'https://outlook.office365.com/.default'}}",
            &[],
        ) else {
            panic!("smtp")
        };
        let oauth2 = smtp.oauth2.expect("oauth2");
        assert_eq!(oauth2.scope, "https://outlook.office365.com/.default");
        assert_eq!(format!("{oauth2:?}").matches("<redacted>").count(), 1);
        assert_eq!((smtp.port, smtp.password), (587, None));
    }

    #[test]
    fn loopback_hosts_are_named_or_numbered() {
        for host in ["localhost", "127.0.0.1", "127.8.9.1", "[::1]", "::1"] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "login.microsoftonline.com",
            "10.0.0.1",
            "localhost.acme.com",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
