//! Alert content: building the template context, rendering each stock template, and escaping a
//! 1 MB script log for a JSON destination.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use reload_butler::config::{Config, Env, ScriptLogLines};
use reload_butler::render::context::{build, AlertInput};
use reload_butler::render::escape::{json_string_body, slack_entities};
use reload_butler::render::{sample, Renderer};

const CONFIG: &str = "
timezone: Europe/Stockholm
poll: {enabled: false}
enrich: {enabled: false}
tenants: [{id: xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct, comment: Production EU, url: 'https://acme.eu.qlikcloud.com'}]
links: [{id: runbook, text: Runbook, url: 'https://wiki.acme.com/runbook'}]
destinations:
  - {name: email, type: email, from: a@acme.com, recipients: [b@acme.com], smtp: {host: smtp.acme.com}}
  - {name: slack, type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x'}
  - {name: teams, type: teams, webhook_url: 'https://x.logic.azure.com/workflows/y'}
";

fn rendering(c: &mut Criterion) {
    let config = match Config::from_yaml(CONFIG, Path::new("bench.yaml"), &Env::new()) {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    };
    let renderer = match Renderer::new(&config) {
        Ok(renderer) => renderer,
        Err(problems) => panic!("{problems:?}"),
    };
    let event = sample::event();
    let enrichment = sample::enrichment();
    let input = AlertInput {
        event: &event,
        enrichment: &enrichment,
        tenant: config.tenants.first(),
        links: &config.links,
        timezone: config.timezone.as_ref(),
        remembered_name: None,
    };
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("context", |b| {
        b.iter(|| {
            build(
                black_box(&input),
                "slack",
                ScriptLogLines { head: 15, tail: 25 },
            )
        })
    });
    for (i, name) in ["email", "slack", "teams"].iter().enumerate() {
        group.bench_function(*name, |b| b.iter(|| renderer.render(i, black_box(&input))));
    }
    group.finish();

    let log: String = "2025-03-14 06:12:39      Error: Unknown statement \"x\" <y> & z\\\r\n"
        .repeat(1024 * 1024 / 64);
    let mut group = c.benchmark_group("escape");
    group.throughput(Throughput::Bytes(log.len() as u64));
    group.bench_function("slack_1mb", |b| {
        b.iter(|| json_string_body(&slack_entities(black_box(&log))).into_owned())
    });
    group.bench_function("json_1mb", |b| {
        b.iter(|| json_string_body(black_box(&log)).into_owned())
    });
    group.finish();
}

criterion_group!(benches, rendering);
criterion_main!(benches);
