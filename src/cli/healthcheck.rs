//! `healthcheck`: asks a running endpoint's `/healthz` and exits 0 when it answers 200. For
//! container HEALTHCHECKs and service managers, without curl in the image: the daemon's admin
//! endpoint (default), the gateway (`--gateway`, over HTTPS when it serves HTTPS), or whichever
//! of the two runs (`--any`, the image's check: one image serves both roles).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::exit::{load, Code, Exit, Outcome};
use crate::config::Config;

/// Which endpoint to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// The daemon's admin endpoint (`admin.listen`).
    Daemon,
    /// The gateway (`gateway.listen`).
    Gateway,
    /// Healthy when either answers.
    Any,
}

/// One endpoint to ask: where, and the certificate it serves when it speaks HTTPS.
struct Endpoint {
    name: &'static str,
    address: SocketAddr,
    tls: Option<CertificateDer<'static>>,
}

pub fn command(config_path: &Path, address: Option<SocketAddr>, target: Target) -> Outcome {
    let endpoints = match (address, target) {
        (Some(address), Target::Daemon | Target::Any) => vec![Endpoint {
            name: "admin endpoint",
            address,
            tls: None,
        }],
        (address, target) => endpoints(&load(config_path)?, address, target)?,
    };
    let mut problems = Vec::new();
    for endpoint in &endpoints {
        let address = loopback(endpoint.address);
        match get_healthz(address, endpoint.tls.as_ref()) {
            Ok(200) => return Ok(()),
            Ok(status) => problems.push(format!(
                "{} {address}/healthz answered {status}",
                endpoint.name
            )),
            Err(error) => problems.push(format!("{} {address}/healthz: {error}", endpoint.name)),
        }
    }
    eprintln!("unhealthy: {}", problems.join("; "));
    Err(Exit::said(Code::Runtime))
}

fn endpoints(
    config: &Config,
    address: Option<SocketAddr>,
    target: Target,
) -> Result<Vec<Endpoint>, Exit> {
    let mut endpoints = Vec::new();
    if target != Target::Gateway {
        match config.admin.listen {
            Some(address) => endpoints.push(Endpoint {
                name: "admin endpoint",
                address,
                tls: None,
            }),
            None if target == Target::Daemon => {
                return Err(Exit::config(
                    "admin.listen is null: there is no endpoint to ask",
                ))
            }
            None => {}
        }
    }
    if target != Target::Daemon {
        let gateway = &config.gateway;
        let tls = match &gateway.tls {
            Some((cert_file, _)) => Some(
                crate::tls::read_certs(cert_file, "gateway.tls.cert_file")
                    .map_err(|e| Exit::config(e.to_string()))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| Exit::config("gateway.tls.cert_file holds no certificate"))?,
            ),
            None => None,
        };
        endpoints.push(Endpoint {
            name: "gateway",
            address: address.unwrap_or(gateway.listen),
            tls,
        });
    }
    Ok(endpoints)
}

/// A server bound to all interfaces answers on loopback too.
fn loopback(address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    }
}

fn get_healthz(address: SocketAddr, tls: Option<&CertificateDer<'static>>) -> std::io::Result<u16> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    let mut head = [0u8; 64];
    let n = match tls {
        None => {
            stream.write_all(request.as_bytes())?;
            stream.read(&mut head)?
        }
        Some(cert) => {
            let mut session = pinned_session(cert)?;
            let mut tls = rustls::Stream::new(&mut session, &mut stream);
            tls.write_all(request.as_bytes())?;
            tls.read(&mut head)?
        }
    };
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(&head[..n])
        .ok()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}

/// A TLS client that trusts exactly the gateway's own certificate: the check asks loopback,
/// where the certificate's names (the public host) do not apply.
fn pinned_session(cert: &CertificateDer<'static>) -> std::io::Result<rustls::ClientConnection> {
    crate::tls::ensure_crypto_provider();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        cert: cert.clone(),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").map_err(std::io::Error::other)?;
    rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)
}

#[derive(Debug)]
struct Pinned {
    cert: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the server's certificate is not gateway.tls.cert_file's".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
