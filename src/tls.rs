//! One rustls crypto provider for the whole process.

/// Installs ring as rustls' process-wide provider. reqwest, lettre and rumqttc can each pull in
/// a provider; with two compiled in, rustls cannot choose and panics at the first TLS connect.
/// Idempotent: `main` calls it first, and every TLS client constructor calls it again so that
/// library users (and tests) are covered too.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
