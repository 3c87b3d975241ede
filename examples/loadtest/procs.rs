//! The processes of a load test: mosquitto, the reload-butler daemon (with what /proc says about
//! it), an MQTT publisher and a bare subscriber for the baseline.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const TENANT: &str = "xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct";

pub fn topic() -> String {
    format!("qscloud/app/reload/{TENANT}")
}

pub fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

/// Polls `done` every `every` until it holds; `Err` after `timeout`.
pub async fn wait_for(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > timeout {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(every).await;
    }
    Ok(())
}

/// A mosquitto broker on a free loopback port, in memory, with room for a whole flood queued,
/// and `set_tcp_nodelay true`: with mosquitto's default, the first message after a SUBACK waits
/// ~40 ms for the subscriber's delayed ACK (Nagle), which measured the broker, not the daemon.
pub struct Broker {
    pub port: u16,
    child: Child,
    _dir: TempDir,
}

impl Broker {
    pub fn start() -> Result<Broker, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = free_port()?;
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\n\
                 log_dest none\nset_tcp_nodelay true\nlistener {port} 127.0.0.1\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let binary = std::env::var_os("MOSQUITTO").unwrap_or_else(|| "/usr/sbin/mosquitto".into());
        let child = Command::new(&binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", Path::new(&binary).display()))?;
        let broker = Broker {
            port,
            child,
            _dir: dir,
        };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err("mosquitto did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon binary: `--binary`, else `reload-butler` next to this example's target dir, built
/// first (same profile) when it is missing or older than this example.
pub fn daemon_binary(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return path
            .exists()
            .then_some(path.clone())
            .ok_or_else(|| format!("--binary {}: no such file", path.display()));
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("cannot locate the target dir")?;
    let binary = profile_dir.join("reload-butler");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&binary).is_none() || modified(&binary) < modified(&exe) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--bin", "reload-butler", "--manifest-path"]);
        build.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"));
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        eprintln!("building {} first", binary.display());
        let status = build.status().map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() || !binary.exists() {
            return Err(format!("cargo build of {} failed", binary.display()));
        }
    }
    Ok(binary)
}

/// `--state`: the PostgreSQL database every daemon of the run uses instead of a SQLite file.
pub static STATE_URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The tables of reload-butler's PostgreSQL schema: dropped before each daemon starts, so each
/// scenario starts from a fresh state as with SQLite (the daemon migrates anew).
const TABLES: &str = "outbox, jobs, dedupe_keys, dead_letters, rate_limits, poll_watermarks, \
                      silences, failing_apps, app_names, leases, schema_version";

async fn empty_database(url: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("--state: cannot connect: {e}"))?;
    let connection = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {TABLES} CASCADE; DROP FUNCTION IF EXISTS rb_now_ms()"
        ))
        .await
        .map_err(|e| format!("--state: cannot empty the database: {e}"))?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

/// `reload-butler run` with a generated config and a temp state dir.
pub struct Daemon {
    pub admin_port: u16,
    pub pid: u32,
    child: Child,
    log: PathBuf,
    /// When the process was spawned.
    pub spawned: Instant,
    _dir: TempDir,
}

impl Daemon {
    /// Writes the config made by `config(admin_port, state)` and spawns the daemon. `state` is
    /// the value of the config's `state:` key: a fresh SQLite file in a temp dir, or (with
    /// `--state postgres://…`) that database, emptied of reload-butler's tables first.
    pub fn spawn(
        binary: &Path,
        config: impl FnOnce(u16, &str) -> String,
    ) -> Result<Daemon, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let admin_port = free_port()?;
        let path = dir.path().join("config.yaml");
        let state = match STATE_URL.get() {
            Some(url) => {
                tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(empty_database(url))
                })?;
                format!("{{url: '{url}'}}")
            }
            None => format!("{{path: '{}'}}", dir.path().join("state.db").display()),
        };
        std::fs::write(&path, config(admin_port, &state)).map_err(|e| e.to_string())?;
        let log = dir.path().join("daemon.log");
        let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let spawned = Instant::now();
        let child = Command::new(binary)
            .arg("--config")
            .arg(&path)
            .args(["--log-format", "text", "run"])
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("{}: {e}", binary.display()))?;
        Ok(Daemon {
            admin_port,
            pid: child.id(),
            child,
            log,
            spawned,
            _dir: dir,
        })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The daemon's log lines so far at ERROR and at WARN. The daemon is started with
    /// `--log-format text` (time, level, ...); a `--binary` wrapper that asks for JSON lines is
    /// read by their `"level"` field, so neither format counts as silence.
    pub fn errors_and_warnings(&self) -> (usize, usize) {
        let log = self.log();
        let at = |level: &str| {
            let json = format!("\"level\":\"{level}\"");
            log.lines()
                .filter(|line| {
                    line.split_whitespace().nth(1) == Some(level) || line.contains(&json)
                })
                .count()
        };
        (at("ERROR"), at("WARN"))
    }

    /// Waits for the "subscribed" log line; returns the time since spawn.
    pub async fn wait_subscribed(&mut self) -> Result<Duration, String> {
        let start = Instant::now();
        loop {
            if self.log().contains("subscribed") {
                return Ok(self.spawned.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the daemon exited ({status}):\n{}", self.log()));
            }
            if start.elapsed() > Duration::from_secs(20) {
                return Err(format!(
                    "the daemon did not subscribe within 20 s:\n{}",
                    self.log()
                ));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
    pub fn status_kib(&self, field: &str) -> Result<u64, String> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .map_err(|e| format!("/proc/{}/status: {e}", self.pid))?;
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| format!("no {field} in /proc/{}/status", self.pid))
    }

    /// User + system CPU time so far, in milliseconds.
    pub fn cpu_ms(&self) -> Result<f64, String> {
        self.cpu_split_ms().map(|(user, system)| user + system)
    }

    /// User and system (kernel) CPU time so far, in milliseconds.
    pub fn cpu_split_ms(&self) -> Result<(f64, f64), String> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map_err(|e| format!("/proc/{}/stat: {e}", self.pid))?;
        // Fields after the command name (which may hold spaces) start at field 3 (state).
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
        // utime is field 14, stime 15: indices 11 and 12 after the state (field 3).
        match (ticks(11), ticks(12)) {
            (Some(u), Some(s)) => {
                let ms = 1000.0 / clock_ticks();
                Ok((u * ms, s * ms))
            }
            _ => Err(format!("cannot read /proc/{}/stat", self.pid)),
        }
    }

    /// One series of /metrics (the full series text, labels included).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let body = http_get(self.admin_port, "/metrics").await?;
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// SIGTERM, then waits up to 10 s (then kills).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A minimal HTTP/1.1 GET on loopback: the body of a 200.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    let get = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(5), get)
        .await
        .ok()?
}

fn options(name: &str, port: u16) -> MqttOptions {
    let mut options = MqttOptions::new(format!("{name}-{}", std::process::id()), "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    options.set_keep_alive(Duration::from_secs(30));
    options
}

/// A connected QoS 1 publisher whose event loop runs in a task; counts PUBACKs.
pub struct Publisher {
    client: AsyncClient,
    pub acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(port: u16) -> Result<Publisher, String> {
        let (client, mut eventloop) = AsyncClient::new(options("loadtest-pub", port), 1024);
        let acked = Arc::new(AtomicU64::new(0));
        let (connected_tx, connected) = tokio::sync::oneshot::channel();
        let counter = acked.clone();
        let task = tokio::spawn(async move {
            let mut connected_tx = Some(connected_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        if let Some(tx) = connected_tx.take() {
                            let _ = tx.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        eprintln!("publisher: {error}");
                        return;
                    }
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), connected)
            .await
            .map_err(|_| "the publisher did not connect within 10 s".to_owned())?
            .map_err(|_| "the publisher's connection failed".to_owned())?;
        Ok(Publisher {
            client,
            acked,
            task,
        })
    }

    pub async fn publish(&self, payload: Vec<u8>) -> Result<(), String> {
        self.client
            .publish(topic(), QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| format!("publish: {e}"))
    }

    /// Publishes all, then waits for every PUBACK; returns the time from first publish to last
    /// PUBACK.
    pub async fn publish_all(
        &self,
        payloads: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let target = self.acked.load(Ordering::Relaxed) + payloads.len() as u64;
        for payload in payloads {
            self.publish(payload).await?;
        }
        let acked = self.acked.clone();
        wait_for("every PUBACK", timeout, Duration::from_millis(2), || {
            acked.load(Ordering::Relaxed) >= target
        })
        .await?;
        Ok(start.elapsed())
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A bare rumqttc subscriber (QoS 1, acks as rumqttc does by default) on its own thread and
/// runtime: what a do-nothing consumer of the same flood achieves. Counts the messages received
/// and notes when the first came and when the count reached `expect`.
pub struct BareSubscriber {
    pub received: Arc<AtomicU64>,
    pub first_at: Arc<std::sync::Mutex<Option<Instant>>>,
    pub done_at: Arc<std::sync::Mutex<Option<Instant>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// How a [`BareSubscriber`] connects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// A clean session that subscribes, as for a live flood.
    Clean,
    /// Creates the persistent session `name` (subscribes), for messages queued while away.
    Create,
    /// Resumes the persistent session `name`: the broker delivers what it queued.
    Resume,
}

impl BareSubscriber {
    pub fn start(port: u16, expect: u64) -> Result<BareSubscriber, String> {
        BareSubscriber::start_session(port, expect, "loadtest-bare", Session::Clean)
    }

    pub fn start_session(
        port: u16,
        expect: u64,
        name: &str,
        session: Session,
    ) -> Result<BareSubscriber, String> {
        let received = Arc::new(AtomicU64::new(0));
        let first_at = Arc::new(std::sync::Mutex::new(None));
        let done_at = Arc::new(std::sync::Mutex::new(None));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (count, first, done) = (received.clone(), first_at.clone(), done_at.clone());
        let mut options = options(name, port);
        options.set_clean_session(session == Session::Clean);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let (client, mut eventloop) = AsyncClient::new(options, 1024);
                if session != Session::Resume {
                    let _ = client.subscribe(topic(), QoS::AtLeastOnce).await;
                }
                loop {
                    tokio::select! {
                        event = eventloop.poll() => match event {
                            Ok(Event::Incoming(Packet::SubAck(_))) => { let _ = ready_tx.send(()); }
                            Ok(Event::Incoming(Packet::ConnAck(_))) if session == Session::Resume => {
                                let _ = ready_tx.send(());
                            }
                            Ok(Event::Incoming(Packet::Publish(_))) => {
                                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                                if n == 1 {
                                    if let Ok(mut f) = first.lock() { *f = Some(Instant::now()); }
                                }
                                if n == expect {
                                    if let Ok(mut d) = done.lock() { *d = Some(Instant::now()); }
                                }
                            }
                            Ok(_) => {}
                            Err(error) => { eprintln!("bare subscriber: {error}"); return; }
                        },
                        _ = &mut stopped => {
                            // A clean disconnect keeps a persistent session on the broker.
                            let _ = client.disconnect().await;
                            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                                while eventloop.poll().await.is_ok() {}
                            })
                            .await;
                            return;
                        }
                    }
                }
            });
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| "the bare subscriber did not subscribe within 10 s".to_owned())?;
        Ok(BareSubscriber {
            received,
            first_at,
            done_at,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// When the first message came and when the `expect`-th did, once it did.
    pub fn span(&self) -> Option<(Instant, Instant)> {
        let first = self.first_at.lock().ok().and_then(|f| *f)?;
        let done = self.done_at.lock().ok().and_then(|d| *d)?;
        Some((first, done))
    }
}

impl Drop for BareSubscriber {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Appends a line to stderr right away (progress while a long scenario runs).
pub fn progress(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "loadtest: {text}");
}
