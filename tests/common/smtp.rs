//! A real SMTP server for tests: `tests/smtp_server.py` (aiosmtpd, which scripts/test installs)
//! on a free loopback port, with the certificates of a [`TestPki`](super::TestPki).

use std::collections::BTreeSet;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{free_port, wait_until, TestPki};

/// How the server wants to be talked to.
pub struct SmtpOptions<'a> {
    /// `starttls`, `tls` (implicit TLS) or `none`.
    pub security: &'a str,
    /// Required for `starttls` and `tls`.
    pub pki: Option<&'a TestPki>,
    /// Set: AUTH with exactly these is required before MAIL.
    pub login: Option<(&'a str, &'a str)>,
    /// Set: answer this reply (e.g. `451 4.3.0 try later`) at `rcpt` or `data`.
    pub fail: Option<(&'a str, &'a str)>,
}

/// One message as the server received it.
pub struct Received {
    /// The raw message, as it came over the wire.
    pub raw: String,
    /// Envelope, and the message as Python's email package parsed it (headers decoded, parts).
    pub parsed: serde_json::Value,
}

pub struct SmtpServer {
    pub port: u16,
    out: TempDir,
    child: Option<Child>,
}

/// `AUTH XOAUTH2` as the only mechanism: `user` with one of `tokens`; `gmail` refuses the way
/// Gmail does (a 334 challenge, then 535), else the way Microsoft 365 does (535 at once).
pub struct XOAuth2<'a> {
    pub user: &'a str,
    pub tokens: &'a [&'a str],
    pub gmail: bool,
}

impl SmtpServer {
    pub fn start(options: SmtpOptions<'_>) -> SmtpServer {
        SmtpServer::start_with(options, Vec::new())
    }

    /// A server whose EHLO leaves out 8BITMIME, as an old relay's does: it refuses
    /// `BODY=8BITMIME`.
    pub fn start_without_8bitmime(options: SmtpOptions<'_>) -> SmtpServer {
        SmtpServer::start_with(options, vec!["--no-8bitmime".to_owned()])
    }

    /// A server that offers only `AUTH XOAUTH2` and checks the bearer token.
    pub fn start_xoauth2(options: SmtpOptions<'_>, xoauth2: XOAuth2<'_>) -> SmtpServer {
        let mut args = vec!["--xoauth2-user".to_owned(), xoauth2.user.to_owned()];
        for token in xoauth2.tokens {
            args.extend(["--accept-token".to_owned(), (*token).to_owned()]);
        }
        if xoauth2.gmail {
            args.extend(["--xoauth2-style".to_owned(), "gmail".to_owned()]);
        }
        SmtpServer::start_with(options, args)
    }

    fn start_with(options: SmtpOptions<'_>, extra: Vec<String>) -> SmtpServer {
        let out = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_server.py");
        let mut command = Command::new("python3");
        command
            .arg(script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--security")
            .arg(options.security)
            .arg("--out")
            .arg(out.path());
        if let Some(pki) = options.pki {
            command
                .arg("--cert")
                .arg(&pki.server_cert)
                .arg("--key")
                .arg(&pki.server_key);
        }
        if let Some((user, password)) = options.login {
            command.args(["--user", user, "--password", password]);
        }
        if let Some((stage, reply)) = options.fail {
            command.args(["--fail-on", stage, "--fail-reply", reply]);
        }
        command.args(extra);
        let log = std::fs::File::create(out.path().join("server.log")).expect("log file");
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("python3 runs");
        let mut server = SmtpServer {
            port,
            out,
            child: Some(child),
        };
        wait_until("the SMTP server to accept", Duration::from_secs(20), || {
            server.assert_running();
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        server
    }

    /// Fails the test with the server's log if it exited (e.g. aiosmtpd is not installed).
    fn assert_running(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tests/smtp_server.py exited ({status}):\n{}", self.log());
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.out.path().join("server.log")).unwrap_or_default()
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        let dir = self.out.path();
        (1..)
            .map(|n| dir.join(format!("{n}.eml")))
            .take_while(|eml| eml.exists())
            .map(|eml| read_received(&eml))
            .collect()
    }

    /// Each XOAUTH2 attempt in order: `<user> <token> ok|refused`.
    pub fn auth_attempts(&self) -> Vec<String> {
        std::fs::read_to_string(self.out.path().join("auth.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Distinct client connections that said EHLO or HELO.
    pub fn sessions(&self) -> usize {
        let text =
            std::fs::read_to_string(self.out.path().join("sessions.txt")).unwrap_or_default();
        text.lines().collect::<BTreeSet<_>>().len()
    }
}

fn read_received(eml: &Path) -> Received {
    let raw = std::fs::read(eml).expect("read .eml");
    let json = std::fs::read(eml.with_extension("json")).expect("read .json");
    Received {
        raw: String::from_utf8(raw).expect("the message is UTF-8"),
        parsed: serde_json::from_slice(&json).expect("summary JSON"),
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
