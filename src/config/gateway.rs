//! The `gateway:` section: what `reload-butler gateway` listens on, verifies and publishes to,
//! and the URL Qlik Cloud calls (`public_url`, for `setup webhook` and `doctor`).

use super::reader::{pair, ByteSize, Section};
use super::{GatewayConfig, Secret};

/// Linux's default limit of open files per process (`fs.nr_open`); also keeps the connection
/// semaphore within tokio's bound, which panics beyond it.
const MAX_CONNECTIONS: usize = 1 << 20;

pub(super) fn read_gateway(s: &Section) -> GatewayConfig {
    let tls = s.section("tls");
    let tls_pair = pair(&tls, "cert_file", "key_file");
    drop(tls);
    let gateway = GatewayConfig {
        listen: s.or("listen", ([0, 0, 0, 0], 8443).into()),
        path: s.or("path", "/qlik/webhook".to_owned()),
        tls: tls_pair,
        secrets: s
            .or("secrets", Vec::<Secret>::new())
            .into_iter()
            .filter(|secret| !secret.is_empty())
            .collect(),
        // Qlik's events are a few KB; a larger limit only gives a flood more to send.
        max_body: s.or("max_body", ByteSize(256 << 10)).0,
        max_connections: s.or("max_connections", 4096usize),
        body_budget: s.or("body_budget", ByteSize(64 << 20)).0,
        topic_prefix: s.or("topic_prefix", "qscloud/app/reload".to_owned()),
        allowed_tenants: s.or("allowed_tenants", Vec::new()),
        public_url: s.opt("public_url"),
    };
    if gateway.max_connections == 0 {
        s.problem("max_connections", "must be at least 1");
    } else if gateway.max_connections > MAX_CONNECTIONS {
        s.problem(
            "max_connections",
            "must be at most 1048576: each connection holds a file descriptor, and Linux allows a process no more by default",
        );
    }
    if gateway.body_budget < gateway.max_body {
        s.problem(
            "body_budget",
            "must be at least max_body: a body of max_body bytes could never be read",
        );
    }
    if gateway
        .public_url
        .as_ref()
        .is_some_and(|u| u.scheme() != "https")
    {
        s.problem(
            "public_url",
            "must be https://: Qlik Cloud calls webhooks over HTTPS only",
        );
    }
    if !gateway.path.starts_with('/') {
        s.problem("path", "must start with `/`");
    }
    if gateway.topic_prefix.is_empty() || gateway.topic_prefix.contains(['+', '#']) {
        s.problem("topic_prefix", "must be a topic without wildcards");
    }
    if gateway.max_body < 1024 {
        s.problem("max_body", "must be at least 1KiB");
    }
    gateway
}
