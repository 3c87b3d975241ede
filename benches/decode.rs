//! Hot path of ingest: decoding each envelope, and judging (decode + filter) an event that is
//! dropped — the fate of most of a tenant's events.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::collections::HashSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reload_butler::domain::Failure;
use reload_butler::pipeline::{judge, Rules, Verdict};
use reload_butler::qlik::event::decode;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (label, name) in [
        ("legacy", "app-reload-finished-error.json"),
        (
            "hybrid",
            "app-reload-finished-error.hybrid-UNCONFIRMED.json",
        ),
        ("cloudevents", "app-reload-finished-error.cloudevents.json"),
        ("reload_finished", "reload-finished-failed.json"),
    ] {
        let payload = fixture(name);
        group.throughput(Throughput::Elements(1));
        group.bench_function(label, |b| {
            b.iter(|| decode(black_box(&payload)).map(|e| e.failure()))
        });
    }
    group.finish();
}

fn judging(c: &mut Criterion) {
    let rules = Rules {
        monitored_tenants: HashSet::from(["xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct".to_owned()]),
        alert_on: vec![Failure::ReloadFailed, Failure::EngineAttemptFailed],
        include_session_apps: false,
        include_automation_test_runs: false,
        recovery: false,
    };
    let ok = fixture("app-reload-finished-ok.json");
    let failed = fixture("reload-finished-failed.json");
    let mut group = c.benchmark_group("judge");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ok_event_dropped", |b| {
        b.iter(|| matches!(judge(black_box(&ok), &rules), Verdict::Drop { .. }))
    });
    group.bench_function("failure_kept", |b| {
        b.iter(|| matches!(judge(black_box(&failed), &rules), Verdict::Alert { .. }))
    });
    group.finish();
}

criterion_group!(benches, decoding, judging);
criterion_main!(benches);
