//! `healthcheck`: asks the admin endpoint's `/healthz` and exits 0 when it answers 200. For
//! container HEALTHCHECKs and service managers, without curl in the image.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::exit::{load, Code, Exit, Outcome};

pub fn command(config_path: &Path, address: Option<SocketAddr>) -> Outcome {
    let address = match address {
        Some(address) => address,
        None => load(config_path)?
            .admin
            .listen
            .ok_or_else(|| Exit::config("admin.listen is null: there is no endpoint to ask"))?,
    };
    // A daemon bound to all interfaces answers on loopback too.
    let address = if address.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], address.port()))
    } else {
        address
    };
    match get_healthz(address) {
        Ok(200) => return Ok(()),
        Ok(status) => eprintln!("unhealthy: {address}/healthz answered {status}"),
        Err(error) => eprintln!("unhealthy: {address}/healthz: {error}"),
    }
    Err(Exit::said(Code::Runtime))
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
