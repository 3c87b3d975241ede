//! A real PostgreSQL server for the tests (Debian's `postgresql`; scripts/test installs it), on a
//! free loopback port with its data and socket in a temp dir. As root it runs as the `postgres`
//! user. A watchdog shell stops the server when the test process is gone, so a server shared by
//! a test binary ([`Postgres::shared`]) never outlives it; each test takes its own database.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use super::{free_port, wait_until};

pub struct Postgres {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Serves TLS (with the test PKI's server certificate) as well as plain connections.
    tls: bool,
}

/// A PostgreSQL program: on PATH, else in Debian's versioned directory.
fn binary(name: &str) -> PathBuf {
    let on_path = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(path) = on_path.filter(|p| p.is_file()) {
        return path;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!("{name} not found: install the Debian package postgresql (scripts/test does)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when we are root.
fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// A server of this test binary's own, started at the first call.
    pub fn shared() -> &'static Postgres {
        static SERVER: OnceLock<Postgres> = OnceLock::new();
        SERVER.get_or_init(Postgres::start)
    }

    /// A server of the caller's own (to stop and start again).
    pub fn start() -> Postgres {
        Self::start_with(None)
    }

    /// A server of the caller's own that also offers TLS with `pki`'s server certificate.
    pub fn start_tls(pki: &super::TestPki) -> Postgres {
        Self::start_with(Some(pki))
    }

    fn start_with(pki: Option<&super::TestPki>) -> Postgres {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(pki) = pki {
            std::fs::copy(&pki.server_cert, dir.path().join("server.crt")).expect("copy cert");
            let key = dir.path().join("server.key");
            std::fs::copy(&pki.server_key, &key).expect("copy key");
            // The server refuses a key that others can read.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown the temp dir to postgres");
        }
        let data = dir.path().join("data");
        let out = as_postgres(&binary("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("initdb runs (Debian package postgresql)");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Postgres {
            port: free_port(),
            dir,
            child: None,
            tls: pki.is_some(),
        };
        server.resume();
        server
    }

    /// Starts the server (again) on the same port and data.
    pub fn resume(&mut self) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("postgres.log");
        let tls = if self.tls {
            format!(
                "-c ssl=on -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
                self.dir.path().display()
            )
        } else {
            String::new()
        };
        // The watchdog: when the test process is gone, the server is stopped.
        let script = format!(
            "{} -D {} -p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 {tls} >>{} 2>&1 & pg=$!; \
             while [ -d /proc/{} ] && kill -0 $pg 2>/dev/null; do sleep 0.2; done; kill -INT $pg 2>/dev/null; wait $pg",
            binary("postgres").display(),
            data.display(),
            self.port,
            self.dir.path().display(),
            log.display(),
            std::process::id()
        );
        let child = as_postgres(Path::new("/bin/sh"))
            .arg("-c")
            .arg(script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        self.child = Some(child);
        let port = self.port;
        wait_until("postgres to take queries", Duration::from_secs(30), || {
            Command::new(binary("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success())
        });
    }

    /// Stops the server at once (`immediate`: like a crash; it recovers from its WAL at the
    /// next start), and waits until it is gone.
    pub fn stop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_postgres(&binary("pg_ctl"))
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// A new, empty database; returns its URL.
    pub fn database(&self) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "rb_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// Runs `sql` in `database`; the rows, tab-separated columns as text.
    pub fn psql(&self, database: &str, sql: &str) -> Vec<Vec<String>> {
        let out = Command::new(binary("psql"))
            .env("PGSSLMODE", "disable")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-d",
                database,
                "-At",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("psql runs (Debian package postgresql-client)");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// Runs `sql` in the database of `url` (from [`Postgres::database`]).
    pub fn query(&self, url: &str, sql: &str) -> Vec<Vec<String>> {
        let database = url
            .rsplit('/')
            .next()
            .and_then(|tail| tail.split('?').next())
            .expect("a database in the URL");
        self.psql(database, sql)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}
