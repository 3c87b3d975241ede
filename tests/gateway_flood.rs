//! A flood of unauthenticated bodies that stall at the gateway: memory stays bounded by the body
//! budget, signed webhooks are still answered meanwhile, and the memory is given back after.
//! Connections over `gateway.max_connections` are closed at once and counted.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::gateway::{Gateway, PATH, SECRET};
use common::*;

const MIB: u64 = 1 << 20;
/// Bodies that each stop one byte short of their Content-Length (the flood).
const FLOOD: usize = 600;

#[test]
fn stalled_large_bodies_hold_bounded_memory_and_signed_webhooks_still_pass() {
    let broker = Broker::start();
    let gateway = Gateway::start(broker.port, "  max_body: 1MiB\n  body_budget: 16MiB\n");
    let body = fixture("webhook-example-body.json");
    assert_eq!(gateway.post_signed(&body, SECRET).status, 200);
    let baseline = gateway.rss();

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| {
            let (stop, written, port) = (stop.clone(), written.clone(), gateway.port);
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream
                    .set_write_timeout(Some(Duration::from_secs(20)))
                    .unwrap();
                let length = MIB - 1;
                let head = format!(
                    "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
                     Qlik-Signature: {}\r\nContent-Length: {length}\r\n\r\n",
                    "ab".repeat(32)
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&vec![b' '; (length - 1) as usize]);
                written.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        })
        .collect();
    wait_until("the flood is written", Duration::from_secs(60), || {
        written.load(Ordering::SeqCst) == FLOOD
    });

    let during = gateway.rss();
    let grown = during.saturating_sub(baseline);
    // The bodies alone would take 600 MiB. Held: the 16 MiB budget, each connection's free
    // 16 KiB and its connection state, and what the allocator keeps of refused bodies.
    assert!(
        grown < 96 * MIB,
        "{FLOOD} stalled 1 MiB bodies grew the gateway by {} MiB (budget 16 MiB)",
        grown / MIB
    );
    assert!(
        gateway.outcome("busy") >= 1.0,
        "bodies over the budget were refused"
    );
    let held = gateway
        .metric("reload_butler_gateway_body_bytes_in_flight")
        .unwrap();
    assert!(
        held > 0.0 && held <= (16 * MIB) as f64 + (FLOOD as f64) * 16384.0,
        "{held}"
    );
    // A signed webhook still gets through: its few KB are within its free allowance.
    let answer = gateway.post_signed(&body, SECRET);
    assert_eq!(answer.status, 200, "{}", answer.body);

    stop.store(true, Ordering::SeqCst);
    for thread in flood {
        thread.join().unwrap();
    }
    wait_until("no body in flight", Duration::from_secs(40), || {
        gateway.metric("reload_butler_gateway_body_bytes_in_flight") == Some(0.0)
    });
    wait_until("the memory given back", Duration::from_secs(30), || {
        gateway.rss() < baseline + 16 * MIB
    });
}

#[test]
fn connections_over_the_cap_are_closed_at_once() {
    let broker = Broker::start();
    let gateway = Gateway::start(broker.port, "  max_connections: 20\n");
    let held: Vec<TcpStream> = (0..20).map(|_| gateway.connect()).collect();
    // Generous bounds: each probe may wait out its 5 s read timeout on a loaded machine.
    wait_until("20 connections held", Duration::from_secs(40), || {
        // Each /metrics request needs a slot: the 21st connection is the probe.
        gateway.get("/healthz").is_none()
    });
    let mut extra = gateway.connect();
    let mut byte = [0u8; 1];
    assert!(
        matches!(extra.read(&mut byte), Ok(0) | Err(_)),
        "the connection over the cap is closed"
    );
    drop(held);
    wait_until("slots free again", Duration::from_secs(40), || {
        gateway.get("/healthz").map(|r| r.0) == Some(200)
    });
    assert!(
        gateway
            .metric("reload_butler_gateway_connections_refused_total")
            .unwrap()
            >= 2.0
    );
}
