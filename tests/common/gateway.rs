//! Harness for `reload-butler gateway`: the real binary with a config written for the test,
//! raw HTTP/1.1 requests (so a test controls every header and byte of the body), signing, and
//! an MQTT subscriber that records what the broker delivers.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};
use tempfile::TempDir;

use super::{free_port, http_get, signal, wait_until};

/// The secret of the worked example in the shared fixtures (`qlik/webhook.md`).
pub const SECRET: &str = "qlik-webhook-secret-0123456789abcdef";
/// Its signature of `webhook-example-body.json`.
pub const EXAMPLE_SIGNATURE: &str =
    "d0236b256d79a11858500ed81ffa9123575d9fa57fc110f1c42240bfcf55c717";
pub const PATH: &str = "/qlik/webhook";

/// Lowercase hex HMAC-SHA256 of `body` with `secret`, as Qlik Cloud signs.
pub fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The built binary running `gateway`.
pub struct Gateway {
    pub dir: TempDir,
    pub port: u16,
    child: Option<Child>,
}

impl Gateway {
    /// A config for a plain broker; `gateway_extra` lines are appended under `gateway:`.
    pub fn config(broker_port: u16, port: u16, gateway_extra: &str) -> String {
        format!(
            "mqtt:\n  url: mqtt://127.0.0.1:{broker_port}\n  client_id: gw-test-{port}\n  keep_alive: 5s\n\
             gateway:\n  listen: '127.0.0.1:{port}'\n  secrets: [{SECRET}]\n{gateway_extra}"
        )
    }

    /// Starts with [`Gateway::config`] and waits until it is connected to the broker.
    pub fn start(broker_port: u16, gateway_extra: &str) -> Gateway {
        let gateway = Self::start_with(|port, _| Self::config(broker_port, port, gateway_extra));
        gateway.wait_ready();
        gateway
    }

    /// Starts with the config `text(port, dir)` and waits until it listens.
    pub fn start_with(text: impl FnOnce(u16, &Path) -> String) -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let config = text(port, dir.path());
        std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_reload-butler"))
            .arg("--config")
            .arg(dir.path().join("config.yaml"))
            .arg("-v")
            .arg("gateway")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("reload-butler starts");
        let gateway = Gateway {
            dir,
            port,
            child: Some(child),
        };
        wait_until("the gateway to listen", Duration::from_secs(20), || {
            gateway.log().contains("gateway listening")
        });
        gateway
    }

    pub fn wait_ready(&self) {
        wait_until("/readyz 200", Duration::from_secs(20), || {
            self.get("/readyz").map(|r| r.0) == Some(200)
        });
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.port, path)
    }

    /// The gateway's resident memory, in bytes (VmRSS of /proc).
    pub fn rss(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS")
            * 1024
    }

    /// One series of /metrics (labels included), e.g. `..._requests_total{outcome="accepted"}`.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics")?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    pub fn outcome(&self, outcome: &str) -> f64 {
        let series = format!("reload_butler_gateway_requests_total{{outcome=\"{outcome}\"}}");
        self.metric(&series).unwrap_or(-1.0)
    }

    /// POSTs `body` to the webhook path, signed with `secret`.
    pub fn post_signed(&self, body: &[u8], secret: &str) -> Answer {
        let signature = sign(secret, body);
        self.post(
            PATH,
            &[
                ("Content-Type", "application/json"),
                ("Qlik-Signature", &signature),
            ],
            body,
        )
    }

    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        let mut head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = self.connect();
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(body).expect("write body");
        read_answer(&mut stream)
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to the gateway");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .expect("write timeout");
        stream
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
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `gateway` with `config` until it exits (it must, within 20 s): status and stderr.
pub fn exit_of(config: &str) -> (ExitStatus, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, config).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_reload-butler"))
        .arg("--config")
        .arg(&path)
        .arg("gateway")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("reload-butler starts");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the gateway did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    (status, stderr)
}

/// An HTTP answer: status, raw head (lowercase for header look-ups) and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    }
}

/// Reads an answer: the head, then the body as far as the server sends it before closing.
pub fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => data.extend_from_slice(&buf[..n]),
            // A reset after the answer arrived (the server closed with our body unread).
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !data.is_empty() => break,
            Err(e) => panic!(
                "reading the answer: {e} (got so far: {:?})",
                String::from_utf8_lossy(&data)
            ),
        }
        if let Some(answer) = parse(&data) {
            let length: usize = answer
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(usize::MAX);
            if answer.body.len() >= length {
                return answer;
            }
        }
    }
    parse(&data).unwrap_or_else(|| panic!("no HTTP answer in {:?}", String::from_utf8_lossy(&data)))
}

fn parse(data: &[u8]) -> Option<Answer> {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some(Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: body.to_owned(),
    })
}

/// A received message: topic and payload.
pub type Message = (String, Vec<u8>);

/// An MQTT subscriber in its own thread (rumqttc's blocking client runs its own runtime),
/// recording every message; it subscribes again after a reconnect.
pub struct Subscriber {
    messages: Arc<Mutex<Vec<Message>>>,
    client: Client,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Subscriber {
    /// Returns once the subscription to `filter` is acknowledged.
    pub fn start(broker_port: u16, filter: &str) -> Subscriber {
        let mut options = MqttOptions::new(
            format!("test-sub-{}", free_port()),
            "127.0.0.1",
            broker_port,
        );
        options.set_max_packet_size(64 << 20, 64 << 20);
        let (client, mut connection) = Client::new(options, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, subscribed) = mpsc::channel();
        let thread = {
            let (client, messages, stop, filter) = (
                client.clone(),
                messages.clone(),
                stop.clone(),
                filter.to_owned(),
            );
            std::thread::spawn(move || {
                for notification in connection.iter() {
                    match notification {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = client.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            let _ = ready.send(());
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let message = (p.topic.clone(), p.payload.to_vec());
                            messages.lock().expect("lock").push(message);
                        }
                        Ok(Event::Outgoing(Outgoing::Disconnect)) => break,
                        Ok(_) => {}
                        Err(_) if stop.load(Ordering::Relaxed) => break,
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            })
        };
        subscribed
            .recv_timeout(Duration::from_secs(10))
            .expect("the test subscription is acknowledged");
        Subscriber {
            messages,
            client,
            stop,
            thread: Some(thread),
        }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("lock").clone()
    }

    /// Waits until at least `n` messages arrived.
    pub fn wait_for(&self, n: usize) -> Vec<Message> {
        wait_until(&format!("{n} messages"), Duration::from_secs(30), || {
            self.messages.lock().expect("lock").len() >= n
        });
        self.messages()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
