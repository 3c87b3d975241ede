//! HTTPS for the gateway: a rustls server configuration from `gateway.tls.cert_file` and
//! `gateway.tls.key_file` (PEM), read once at start-up.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

const CERT_KEY: &str = "gateway.tls.cert_file";
const KEY_KEY: &str = "gateway.tls.key_file";

/// Why the gateway's certificate or key cannot be used; each names its configuration key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {key} {path}: {source}")]
    Read {
        key: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{key} {path} holds no usable PEM {expected}")]
    Pem {
        key: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("gateway.tls: the certificate and key cannot be used together: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The acceptor for HTTPS connections (HTTP/1.1 offered over ALPN).
pub fn acceptor(cert_file: &Path, key_file: &Path) -> Result<TlsAcceptor, TlsError> {
    crate::tls::ensure_crypto_provider();
    let certs = read_certs(cert_file)?;
    let key = read_key(key_file)?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, CERT_KEY)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::Pem {
            key: CERT_KEY,
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path, KEY_KEY)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Pem {
        key: KEY_KEY,
        path: path.to_owned(),
        expected: "private key",
    })
}
