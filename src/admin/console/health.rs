//! The health the console shows (and `GET /status` answers): the broker and the state store
//! from the metrics, each tenant's API from its budget gauges (last answer, 429s, budget left),
//! each destination's last success and failure (since start, in memory; the last delivery also
//! from the outbox, so it survives a restart).

use std::sync::atomic::Ordering;

use crate::metrics::{Label, Metrics};

use super::Facts;

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Health {
    pub(super) broker: Broker,
    pub(super) store: StoreHealth,
    pub(super) tenants: Vec<TenantHealth>,
    pub(super) destinations: Vec<DestinationView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Broker {
    /// `mqtt` is configured (else the daemon only polls).
    pub(super) used: bool,
    pub(super) connected: bool,
    pub(super) subscribed: bool,
    pub(super) connects: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct StoreHealth {
    pub(super) open: bool,
    pub(super) writable: bool,
    /// Deliveries waiting to be sent (held ones included).
    pub(super) pending: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct TenantHealth {
    pub(super) id: String,
    /// Whether the daemon has a client for the tenant (enrichment or the poll).
    pub(super) client: bool,
    pub(super) last_answer_at: Option<i64>,
    /// `ok`, `rate_limited`, `unauthorized`, `timeout`, ... (the `qlik_requests_total` outcomes).
    pub(super) last_outcome: Option<&'static str>,
    pub(super) rate_limited: u64,
    pub(super) paused_seconds: f64,
    /// Requests left in the client-side budget (`tenants[].rate_limit`).
    pub(super) budget_left: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct DestinationView {
    pub(super) name: String,
    pub(super) last_success_at: Option<i64>,
    pub(super) last_failure_at: Option<i64>,
    /// The service's answer to the last failed attempt.
    pub(super) last_failure: Option<String>,
}

/// The health now; `delivered` is each destination's last delivery in the outbox.
pub(super) fn snapshot(metrics: &Metrics, facts: &Facts, delivered: &[(String, i64)]) -> Health {
    let memory = metrics.destination_health();
    let destinations = facts
        .destinations
        .iter()
        .map(|name| {
            let noted = memory.get(name);
            let stored = delivered.iter().find(|(d, _)| d == name).map(|(_, at)| *at);
            let failure = noted.and_then(|h| h.last_failure.clone());
            DestinationView {
                name: name.clone(),
                last_success_at: noted.and_then(|h| h.last_success).max(stored),
                last_failure_at: failure.as_ref().map(|(at, _)| *at),
                last_failure: failure.map(|(_, why)| why),
            }
        })
        .collect();
    let tenants = facts
        .tenants
        .iter()
        .map(|id| {
            let budget = metrics.qlik.known_tenant(id);
            let last = budget.as_ref().and_then(|b| b.last_answer());
            TenantHealth {
                id: id.clone(),
                client: budget.is_some(),
                last_answer_at: last.map(|(at, _)| i64::try_from(at).unwrap_or(i64::MAX)),
                last_outcome: last.map(|(_, outcome)| outcome.as_str()),
                rate_limited: budget
                    .as_ref()
                    .map_or(0, |b| b.rate_limited.load(Ordering::Relaxed)),
                paused_seconds: budget
                    .as_ref()
                    .map_or(0.0, |b| b.paused_ms.load(Ordering::Relaxed) as f64 / 1000.0),
                budget_left: budget.map(|b| b.left.load(Ordering::Relaxed)),
            }
        })
        .collect();
    Health {
        broker: Broker {
            used: facts.mqtt_expected,
            connected: metrics.mqtt_connected.load(Ordering::Relaxed),
            subscribed: metrics.mqtt_subscribed.load(Ordering::Relaxed),
            connects: metrics.mqtt_connects.load(Ordering::Relaxed),
        },
        store: StoreHealth {
            open: metrics.store_open.load(Ordering::Relaxed),
            writable: metrics.store_writable(),
            pending: metrics.outbox_pending.load(Ordering::Relaxed),
        },
        tenants,
        destinations,
    }
}
