//! `healthcheck`: asks the admin endpoint's `/healthz` and exits 0 when it answers 200. For
//! container HEALTHCHECKs and service managers, without curl in the image.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::{load, EXIT_CONFIG, EXIT_RUNTIME};

pub fn command(config_path: &Path, address: Option<SocketAddr>) -> ExitCode {
    let address = match address {
        Some(address) => address,
        None => match load(config_path) {
            Ok(config) => match config.admin.listen {
                Some(address) => address,
                None => {
                    eprintln!("error: admin.listen is null: there is no endpoint to ask");
                    return ExitCode::from(EXIT_CONFIG);
                }
            },
            Err(code) => return code,
        },
    };
    // A daemon bound to all interfaces answers on loopback too.
    let address = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    match get_healthz(address) {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("unhealthy: {address}/healthz answered {status}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(error) => {
            eprintln!("unhealthy: {address}/healthz: {error}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn get_healthz(address: SocketAddr) -> std::io::Result<u16> {
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    // "HTTP/1.1 200 OK"
    std::str::from_utf8(&head[..n])
        .ok()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}
