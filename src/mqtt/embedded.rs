//! The in-process MQTT broker (rumqttd) for `mqtt.url: embedded` and `demo`: one machine, no
//! broker to install. It listens on loopback only and keeps sessions in memory, so events
//! published while the process is down are not queued — use a real broker in production. Its
//! own log is off by default (`RUST_LOG=rumqttd=info` shows it).

//!
//! It is built with the default `embedded-broker` feature (rumqttd is a quarter of the crate
//! graph); a production build can leave it out with `--no-default-features`, and `check` then
//! refuses `mqtt.url: embedded`.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("the embedded MQTT broker did not start listening on {0} (is the port taken?)")]
    NotListening(SocketAddr),
    #[error("cannot start the embedded MQTT broker's thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error(
        "this build has no embedded MQTT broker (built without the `embedded-broker` feature)"
    )]
    NotBuilt,
}

/// Without the feature there is nothing to start (config validation refuses `embedded` first).
#[cfg(not(feature = "embedded-broker"))]
pub fn start(_port: u16) -> Result<SocketAddr, EmbeddedError> {
    Err(EmbeddedError::NotBuilt)
}

#[cfg(feature = "embedded-broker")]
pub use broker::start;

#[cfg(feature = "embedded-broker")]
mod broker {
    use std::collections::HashMap;
    use std::net::{SocketAddr, TcpStream};
    use std::time::{Duration, Instant};

    use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

    use super::EmbeddedError;

    /// Largest message the embedded broker accepts: webhook bodies are capped far below this.
    const MAX_PAYLOAD: usize = 16 * 1024 * 1024;

    /// Starts the broker on 127.0.0.1:`port` in a thread of its own and waits until it accepts
    /// connections. The broker runs until the process ends.
    pub fn start(port: u16) -> Result<SocketAddr, EmbeddedError> {
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let server = ServerSettings {
            name: "embedded-v4".to_owned(),
            listen,
            tls: None,
            next_connection_delay_ms: 1,
            connections: ConnectionSettings {
                connection_timeout_ms: 60_000,
                max_payload_size: MAX_PAYLOAD,
                max_inflight_count: 100,
                auth: None,
                external_auth: None,
                dynamic_filters: true,
            },
        };
        let config = Config {
            id: 0,
            router: RouterConfig {
                max_connections: 1000,
                max_outgoing_packet_count: 200,
                max_segment_size: 100 * 1024 * 1024,
                max_segment_count: 10,
                custom_segment: None,
                initialized_filters: None,
                shared_subscriptions_strategy: Default::default(),
            },
            v4: Some(HashMap::from([("1".to_owned(), server)])),
            v5: None,
            ws: None,
            cluster: None,
            console: None,
            bridge: None,
            prometheus: None,
            metrics: None,
        };
        std::thread::Builder::new()
            .name("mqtt-broker".into())
            .spawn(move || {
                let mut broker = Broker::new(config);
                if let Err(error) = broker.start() {
                    tracing::error!(%error, "the embedded MQTT broker stopped");
                }
            })
            .map_err(EmbeddedError::Thread)?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(listen).is_err() {
            if Instant::now() > deadline {
                return Err(EmbeddedError::NotListening(listen));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        tracing::info!(address = %listen, "embedded MQTT broker listening");
        Ok(listen)
    }
}
