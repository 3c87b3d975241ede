//! One rustls crypto provider for the whole process.

/// Installs ring as rustls' process-wide provider. reqwest, lettre and rumqttc can each pull in
/// a provider; with two compiled in, rustls cannot choose and panics at the first TLS connect.
/// Idempotent: `main` calls it first, and every TLS client constructor calls it again so that
/// library users (and tests) are covered too.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A PEM file named by a configuration key that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
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
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|source| PemError::Read {
        key,
        path: path.to_owned(),
        source,
    })
}

/// Every certificate of the PEM file at `path` (the config `key` names it); at least one.
pub fn read_certs(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = read(path, key)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(PemError::Pem {
            key,
            path: path.to_owned(),
            expected: "certificate",
        });
    }
    Ok(certs)
}

/// The private key (PKCS#8, PKCS#1 or SEC1) of the PEM file at `path`.
pub fn read_key(path: &Path, key: &'static str) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read(path, key)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| PemError::Pem {
        key,
        path: path.to_owned(),
        expected: "private key",
    })
}
