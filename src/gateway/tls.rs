//! HTTPS for the gateway: a rustls server configuration from `gateway.tls.cert_file` and
//! `gateway.tls.key_file` (PEM), read once at start-up.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

const CERT_KEY: &str = "gateway.tls.cert_file";
const KEY_KEY: &str = "gateway.tls.key_file";

/// Why the gateway's certificate or key cannot be used; each names its configuration key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Pem(#[from] crate::tls::PemError),
    #[error("gateway.tls: the certificate and key cannot be used together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The acceptor for HTTPS connections (HTTP/1.1 offered over ALPN).
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    crate::tls::ensure_crypto_provider();
    let certs = crate::tls::read_certs(cert_file, CERT_KEY)?;
    let key = crate::tls::read_key(key_file, KEY_KEY)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
