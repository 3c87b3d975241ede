//! End-to-end load test of `reload-butler run` with real parts on loopback: mosquitto, the
//! release (or any) binary, a local Qlik Cloud REST API answering with the fixture answers,
//! Slack and Teams fakes, and optionally the tests' SMTP server.
//!
//! ```text
//! cargo run --release --example loadtest -- --scenario all
//! cargo run --release --example loadtest -- --scenario storm --events 1000
//! cargo run --release --example loadtest -- --scenario storm-rate-limited --events 1000
//! cargo run --release --example loadtest -- --scenario storm --state postgres://rb@127.0.0.1/rb
//! ```
//!
//! Scenarios: `idle` (start to subscribed, RSS), `single` (publish → Slack latency at 4/s and
//! 50/s), `storm` (N distinct failures at once, Slack + Teams), `storm-email` (the same, plus
//! email to two recipients), `storm-rate-limited` (N failures of 0.3 N apps against a Qlik fake
//! enforcing Qlik's tier-1 budget, then a tight one; see `storm_limited.rs`), `flood` (N
//! successful-reload events, against a bare subscriber).
//! Prints a table; exits 1 only if a scenario could not run. No figure is enforced here: the
//! targets are printed beside the figures, see docs/performance.md.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod fakes;
mod procs;
mod scenarios;
mod storm_limited;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Scenario {
    Idle,
    Single,
    Storm,
    StormEmail,
    StormRateLimited,
    Flood,
    All,
}

#[derive(Parser, Debug)]
#[command(about = "End-to-end load test of reload-butler on loopback")]
struct Args {
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Events per scenario (default: single 40 at 4/s and 200 at 50/s, storm 1000, flood 50000).
    #[arg(long)]
    events: Option<usize>,
    /// The reload-butler binary (default: the one next to this example, built if stale).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Seconds between start and the idle RSS reading.
    #[arg(long, default_value_t = 5)]
    idle_secs: u64,
    /// Seconds of quiet after a storm before the RSS reading.
    #[arg(long, default_value_t = 30)]
    settle_secs: u64,
    /// `postgres://…`: run every daemon on this PostgreSQL database (`state.url`) instead of a
    /// SQLite file. Its reload-butler tables are dropped before each daemon starts. Plain
    /// connections only (`sslmode=disable`): a load test runs on loopback.
    #[arg(long, value_name = "URL")]
    state: Option<String>,
    /// Recipients of the email destination in `storm-email`.
    #[arg(long, default_value_t = 2)]
    recipients: usize,
    /// Failures delivered before a storm's measurement starts, so that the measured storm runs
    /// on a database (and WAL file) that has already grown, as a daemon's does after a while.
    #[arg(long, default_value_t = 0)]
    warm_up: usize,
}

/// One line of the results table.
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub value: String,
    /// The target from the issue, and Butler's figure, where there is one.
    pub target: &'static str,
    pub butler: &'static str,
}

impl Row {
    pub fn new(scenario: &'static str, figure: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            scenario,
            figure: figure.into(),
            value: value.into(),
            target: "",
            butler: "",
        }
    }

    pub fn vs(mut self, target: &'static str, butler: &'static str) -> Row {
        self.target = target;
        self.butler = butler;
        self
    }
}

fn print_table(rows: &[Row]) {
    let header = [
        "scenario",
        "figure",
        "measured",
        "target",
        "Butler (Node.js)",
    ];
    let cells: Vec<[&str; 5]> = rows
        .iter()
        .map(|r| [r.scenario, &r.figure, &r.value, r.target, r.butler])
        .collect();
    let width = |i: usize| {
        cells
            .iter()
            .map(|c| c[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..5).map(width).collect();
    let line = |c: [&str; 5]| {
        let padded: Vec<String> = c
            .iter()
            .zip(&widths)
            .map(|(text, w)| format!("{text:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(header);
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for c in cells {
        line(c);
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("loadtest: no runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let binary = match procs::daemon_binary(args.binary.clone()) {
        Ok(binary) => binary,
        Err(error) => {
            eprintln!("loadtest: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(url) = &args.state {
        if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
            eprintln!("loadtest: --state takes a postgres:// URL");
            return ExitCode::FAILURE;
        }
        let _ = procs::STATE_URL.set(url.clone());
    }
    let run = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    let settings = scenarios::Settings {
        binary,
        events: args.events,
        idle_secs: args.idle_secs,
        settle_secs: args.settle_secs,
        recipients: args.recipients,
        warm_up: args.warm_up,
    };
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    runtime.block_on(async {
        type Outcome = Result<Vec<Row>, String>;
        let mut record = |name: &str, outcome: Outcome| match outcome {
            Ok(mut r) => rows.append(&mut r),
            Err(error) => {
                eprintln!("loadtest: scenario {name} could not run: {error}");
                failed.push(name.to_owned());
            }
        };
        if run(Scenario::Idle) {
            record("idle", scenarios::idle(&settings).await);
        }
        if run(Scenario::Single) {
            record("single", scenarios::single(&settings).await);
        }
        if run(Scenario::Storm) {
            record("storm", scenarios::storm(&settings, false).await);
        }
        if run(Scenario::StormEmail) {
            record("storm-email", scenarios::storm(&settings, true).await);
        }
        if run(Scenario::StormRateLimited) {
            record(
                "storm-rate-limited",
                storm_limited::storm_rate_limited(&settings).await,
            );
        }
        if run(Scenario::Flood) {
            record("flood", scenarios::flood(&settings).await);
        }
    });
    println!();
    print_table(&rows);
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("loadtest: could not run: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
