//! Builds rumqttc options from the configuration: endpoint, credentials, persistent session, and
//! TLS with rustls (system roots or a CA file, optional client certificate).

use std::sync::Arc;

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::config::{MqttConfig, MqttEndpoint};

/// The largest packet accepted from the broker. A message over the limit would make rumqttc
/// drop the connection and the broker redeliver it forever, so the limit is MQTT's own maximum.
const MAX_INCOMING_PACKET: usize = 256 * 1024 * 1024;
const MAX_OUTGOING_PACKET: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Pem(#[from] crate::tls::PemError),
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("no system root certificates found; set mqtt.ca_file")]
    NoRoots,
}

/// rumqttc options for one client id; the caller sets manual acks and the like.
pub fn client_options(config: &MqttConfig) -> Result<MqttOptions, MqttError> {
    let (host, port, tls) = match &config.endpoint {
        MqttEndpoint::Tcp { host, port } => (host.as_str(), *port, false),
        MqttEndpoint::Tls { host, port } => (host.as_str(), *port, true),
        MqttEndpoint::Embedded { port } => ("127.0.0.1", *port, false),
    };
    let mut options = MqttOptions::new(config.client_id.clone(), host, port);
    options
        .set_keep_alive(config.keep_alive)
        .set_clean_session(!config.persistent_session)
        .set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
    if let Some(username) = &config.username {
        let password = config
            .password
            .as_ref()
            .map(|p| p.expose().to_owned())
            .unwrap_or_default();
        options.set_credentials(username.clone(), password);
    }
    if tls {
        let tls_config = rustls_config(config)?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls_config),
        )));
    }
    Ok(options)
}

fn rustls_config(config: &MqttConfig) -> Result<rustls::ClientConfig, MqttError> {
    crate::tls::ensure_crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            for cert in crate::tls::read_certs(path, "mqtt.ca_file")? {
                roots.add(cert)?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system store may hold a certificate rustls cannot use; skip it.
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(MqttError::NoRoots);
            }
        }
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    Ok(match &config.client_identity {
        Some((cert_path, key_path)) => {
            let certs = crate::tls::read_certs(cert_path, "mqtt.client_cert_file")?;
            let key = crate::tls::read_key(key_path, "mqtt.client_key_file")?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    })
}
