//! Test harness: a real mosquitto on a free loopback port (plain, and TLS with certificates made
//! at test time), the real `reload-butler` binary with a temp state dir, and small helpers to
//! publish, read metrics and query the state store.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod gateway;
pub mod postgres;
pub mod qlik;
pub mod qlik_budget;
pub mod smtp;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use tempfile::TempDir;

pub const TENANT: &str = "xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A fixture with edits, e.g. a distinct event id and reload id per message.
pub fn event(name: &str, change: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(&fixture(name)).expect("fixture");
    change(&mut value);
    serde_json::to_vec(&value).expect("json")
}

/// The engine-attempt failure fixture with its own event id and reload id.
pub fn distinct_failure(n: usize) -> Vec<u8> {
    event("app-reload-finished-error.json", |v| {
        v["eventId"] = format!("evt-{n}").into();
        v["data"]["reloadId"] = format!("{n:024x}").into();
    })
}

fn mosquitto_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOSQUITTO") {
        return path.into();
    }
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .unwrap_or_else(|| "mosquitto".into())
}

/// Certificates made at test time: a CA, a server certificate for localhost signed by it, and an
/// unrelated CA for the wrong-CA case.
pub struct TestPki {
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub other_ca_file: PathBuf,
}

impl TestPki {
    pub fn create(dir: &Path) -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
        let ca = |name: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            let key = KeyPair::generate().expect("key");
            let cert = params.self_signed(&key).expect("ca cert");
            (cert, key)
        };
        let (ca_cert, ca_key) = ca("reload-butler test CA");
        let (other_cert, _) = ca("some other CA");
        let server_key = KeyPair::generate().expect("key");
        let server_cert =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params")
                .signed_by(&server_key, &ca_cert, &ca_key)
                .expect("server cert");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).expect("write pem");
            path
        };
        TestPki {
            ca_file: write("ca.pem", ca_cert.pem()),
            server_cert: write("server.pem", server_cert.pem()),
            server_key: write("server.key", server_key.serialize_pem()),
            other_ca_file: write("other-ca.pem", other_cert.pem()),
        }
    }
}

/// A real mosquitto broker with persistence, on free loopback ports.
pub struct Broker {
    pub port: u16,
    pub tls_port: Option<u16>,
    conf: PathBuf,
    child: Option<Child>,
    pub dir: TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        Self::start_with(None)
    }

    pub fn start_tls(pki: &TestPki) -> Broker {
        Self::start_with(Some(pki))
    }

    fn start_with(pki: Option<&TestPki>) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut conf = format!(
            "user root\nper_listener_settings false\nallow_anonymous true\npersistence true\n\
             persistence_location {}/\nautosave_interval 1\nlog_dest file {}/mosquitto.log\n\
             max_queued_messages 10000\nlistener {port} 127.0.0.1\n",
            dir.path().display(),
            dir.path().display()
        );
        let mut tls_port = None;
        if let Some(pki) = pki {
            let p = free_port();
            tls_port = Some(p);
            conf.push_str(&format!(
                "listener {p} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
                pki.ca_file.display(),
                pki.server_cert.display(),
                pki.server_key.display()
            ));
        }
        let conf_path = dir.path().join("mosquitto.conf");
        std::fs::write(&conf_path, conf).expect("write mosquitto.conf");
        let mut broker = Broker {
            port,
            tls_port,
            conf: conf_path,
            child: None,
            dir,
        };
        broker.resume();
        broker
    }

    /// Starts (again) on the same ports with the same persistence.
    pub fn resume(&mut self) {
        let child = Command::new(mosquitto_binary())
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (scripts/test installs it)");
        self.child = Some(child);
        let port = self.port;
        wait_until("mosquitto to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stops the broker gracefully (it saves its persistence file).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "TERM");
            let _ = child.wait();
        }
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is read or answered.
    pub fn pause(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "STOP");
        }
    }

    /// Lets a paused broker go on (SIGCONT).
    pub fn unpause(&self) {
        if let Some(child) = &self.child {
            signal(child.id(), "CONT");
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Publishes each payload at QoS 1 and returns once the broker acked all of them.
pub fn publish(port: u16, topic: &str, payloads: &[Vec<u8>]) {
    let id = format!("test-publisher-{}", free_port());
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_max_packet_size(64 << 20, 64 << 20);
    let (client, mut connection) = Client::new(options, payloads.len() + 10);
    for payload in payloads {
        client
            .publish(topic, QoS::AtLeastOnce, false, payload.clone())
            .expect("queue publish");
    }
    let mut acked = 0;
    let start = Instant::now();
    for notification in connection.iter() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "publish timed out"
        );
        match notification {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked += 1;
                if acked == payloads.len() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => panic!("publish failed: {e}"),
        }
    }
    let _ = client.disconnect();
    for notification in connection.iter() {
        if matches!(
            notification,
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_)
        ) {
            break;
        }
    }
}

pub fn topic() -> String {
    format!("qscloud/app/reload/{TENANT}")
}

/// The built `reload-butler` binary running `run` with a config written for the test.
pub struct Daemon {
    pub dir: TempDir,
    pub admin_port: u16,
    child: Option<Child>,
    run_count: usize,
    /// Environment variables the daemon gets besides the test's own.
    env: Vec<(String, String)>,
    /// A command the daemon runs under (e.g. `prlimit --nofile=…`), exec'ing it.
    pub wrapper: Vec<String>,
}

impl Daemon {
    /// A config for a plain broker on `broker_port`; `extra` YAML is appended under `mqtt:`.
    pub fn config_for(broker_url: &str, admin_port: u16, state: &Path, mqtt_extra: &str) -> String {
        format!(
            "mqtt:\n  url: {broker_url}\n  client_id: rb-test-{admin_port}\n  keep_alive: 5s\n{mqtt_extra}\
             poll: {{enabled: false}}\nenrich: {{enabled: false}}\n\
             state: {{path: {}}}\nadmin: {{listen: '127.0.0.1:{admin_port}'}}\n\
             tenants:\n  - {{id: {TENANT}, url: 'https://acme.eu.qlikcloud.com'}}\n",
            state.display()
        )
    }

    pub fn start(broker_port: u16) -> Daemon {
        Self::start_with(|admin, state| {
            Self::config_for(&format!("mqtt://127.0.0.1:{broker_port}"), admin, state, "")
        })
    }

    pub fn start_with(config: impl FnOnce(u16, &Path) -> String) -> Daemon {
        Self::start_with_env(&[], config)
    }

    /// Like [`Daemon::start_with`], with extra environment variables (for `${VAR}` in the config).
    pub fn start_with_env(
        env: &[(&str, &str)],
        config: impl FnOnce(u16, &Path) -> String,
    ) -> Daemon {
        Self::launch(env, &[], config)
    }

    /// Like [`Daemon::start_with`], run under `wrapper` (a command that execs its arguments).
    pub fn start_wrapped(wrapper: &[&str], config: impl FnOnce(u16, &Path) -> String) -> Daemon {
        Self::launch(&[], wrapper, config)
    }

    fn launch(
        env: &[(&str, &str)],
        wrapper: &[&str],
        config: impl FnOnce(u16, &Path) -> String,
    ) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let admin_port = free_port();
        let text = config(admin_port, &dir.path().join("state.db"));
        std::fs::write(dir.path().join("config.yaml"), text).expect("write config");
        let mut daemon = Daemon {
            dir,
            admin_port,
            child: None,
            run_count: 0,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            wrapper: wrapper.iter().map(|w| (*w).to_owned()).collect(),
        };
        daemon.resume();
        daemon
    }

    pub fn resume(&mut self) {
        self.run_count += 1;
        let log = std::fs::File::create(self.log_path()).expect("log file");
        let binary = env!("CARGO_BIN_EXE_reload-butler");
        let mut command = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .arg("-v")
            .arg("run")
            .env_remove("RUST_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("reload-butler starts");
        self.child = Some(child);
    }

    /// The running daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("daemon-{}.log", self.run_count))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.db")
    }

    /// Waits until the daemon is connected and its subscription is acknowledged.
    pub fn wait_subscribed(&self) {
        wait_until("the daemon to subscribe", Duration::from_secs(20), || {
            self.log().contains("subscribed")
        });
    }

    pub fn http_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.admin_port, path)
    }

    /// One counter or gauge from /metrics (the full series text, labels included).
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.http_get("/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn wait_metric(&self, series: &str, at_least: f64) {
        wait_until(
            &format!("{series} >= {at_least}"),
            Duration::from_secs(30),
            || self.metric(series).is_some_and(|v| v >= at_least),
        );
    }

    pub fn wait_metric_eq(&self, series: &str, value: f64) {
        wait_until(
            &format!("{series} == {value}"),
            Duration::from_secs(30),
            || self.metric(series) == Some(value),
        );
    }

    pub fn sigterm(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigkill(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Rows of a query on the state store, as text columns.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        query(&self.state_path(), sql)
    }

    pub fn job_count(&self) -> usize {
        self.query("SELECT count(*) FROM jobs")[0][0]
            .parse()
            .expect("count")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn query(db: &Path, sql: &str) -> Vec<Vec<String>> {
    let conn = rusqlite::Connection::open(db).expect("open state db");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    let mut stmt = conn.prepare(sql).expect("prepare");
    let columns = stmt.column_count();
    stmt.query_map([], |row| {
        (0..columns)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => String::new(),
                    rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                    rusqlite::types::ValueRef::Real(f) => f.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    rusqlite::types::ValueRef::Blob(b) => format!("<{} bytes>", b.len()),
                })
            })
            .collect()
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// A minimal HTTP/1.1 GET on loopback: status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Runs `promtool check metrics` (Debian package `prometheus`; `PROMTOOL` overrides the path)
/// on a `/metrics` body, and fails the test with promtool's words unless it accepts it.
pub fn promtool_check(exposition: &str) {
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{promtool:?}: {e} (install the Debian package `prometheus`, or set PROMTOOL)")
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
