//! Counters and gauges served on `/metrics` in the Prometheus text format. Every label value is
//! from a fixed list, so the number of series is bounded whatever arrives.

mod gateway;
mod labels;
mod qlik;
mod text;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

pub use self::gateway::GatewayMetrics;
pub use self::labels::{
    AlertOutcome, DeadLetterReason, DropReason, GatewayOutcome, Label, Lookup, QlikEndpoint,
    QlikOutcome,
};
pub use self::qlik::{QlikMetrics, TenantBudget};
use self::text::{counter, gauge, histogram, label_value, labelled};

/// A counter split by one label; each value of `L` has its own series.
pub struct LabelledCounter<L: Label> {
    counts: Box<[AtomicU64]>,
    label: std::marker::PhantomData<L>,
}

impl<L: Label> Default for LabelledCounter<L> {
    fn default() -> Self {
        Self {
            counts: L::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            label: std::marker::PhantomData,
        }
    }
}

impl<L: Label> LabelledCounter<L> {
    pub fn inc(&self, value: L) {
        if let Some(count) = self.counts.get(value.index()) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn get(&self, value: L) -> u64 {
        self.counts
            .get(value.index())
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }
}

/// A histogram with fixed buckets (seconds).
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    /// Sum in microseconds, to keep it an integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

const DELIVERY_BOUNDS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

const LATENCY_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The daemon's metrics; one instance shared by every task.
pub struct Metrics {
    pub received: AtomicU64,
    pub decoded: AtomicU64,
    pub dropped: LabelledCounter<DropReason>,
    pub duplicates: AtomicU64,
    pub jobs_committed: AtomicU64,
    pub dead_letters: LabelledCounter<DeadLetterReason>,
    pub store_errors: AtomicU64,
    pub mqtt_connected: AtomicBool,
    pub mqtt_connects: AtomicU64,
    /// The subscription is acknowledged on the current connection.
    pub mqtt_subscribed: AtomicBool,
    pub store_open: AtomicBool,
    /// Writers (ingest, router, each outbox worker) whose last state store write failed; the
    /// store counts as writable when there are none (see `store::health`).
    pub store_writers_failing: AtomicU64,
    pub qlik_requests: LabelledCounter<QlikOutcome>,
    pub qlik_request_seconds: Histogram,
    /// Requests by endpoint, and each tenant's budget, 429s and pauses.
    pub qlik: QlikMetrics,
    pub enrich_failures: LabelledCounter<Lookup>,
    /// Alerts by (destination, outcome); destinations come from the config, so the series are
    /// bounded.
    alerts: Mutex<BTreeMap<(String, AlertOutcome), u64>>,
    pub outbox_pending: AtomicU64,
    /// Failures the reconciliation poll found that no event had brought.
    pub poll_found: AtomicU64,
    pub poll_errors: AtomicU64,
    /// Failing apps that reloaded successfully (recovery jobs recorded).
    pub recoveries: AtomicU64,
    /// Storm digests sent in place of single alerts.
    pub digests: AtomicU64,
    pub delivery_seconds: Histogram,
    /// Admin endpoint connections closed because the cap was reached.
    pub admin_connections_refused: AtomicU64,
    /// Admin endpoint requests that ran past their bound (answered 408).
    pub admin_requests_timed_out: AtomicU64,
    /// Each destination's last success and failure since start, for the console.
    destinations: Mutex<BTreeMap<String, DestinationHealth>>,
}

/// A destination's last delivery and last failed attempt (unix ms), since start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DestinationHealth {
    pub last_success: Option<i64>,
    /// When, and the service's answer.
    pub last_failure: Option<(i64, String)>,
}

impl Metrics {
    /// No writer's last state store write failed.
    pub fn store_writable(&self) -> bool {
        self.store_writers_failing.load(Ordering::Relaxed) == 0
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            received: AtomicU64::new(0),
            decoded: AtomicU64::new(0),
            dropped: LabelledCounter::default(),
            duplicates: AtomicU64::new(0),
            jobs_committed: AtomicU64::new(0),
            dead_letters: LabelledCounter::default(),
            store_errors: AtomicU64::new(0),
            mqtt_connected: AtomicBool::new(false),
            mqtt_connects: AtomicU64::new(0),
            mqtt_subscribed: AtomicBool::new(false),
            store_open: AtomicBool::new(false),
            store_writers_failing: AtomicU64::new(0),
            qlik_requests: LabelledCounter::default(),
            qlik_request_seconds: Histogram::new(LATENCY_BOUNDS),
            qlik: QlikMetrics::default(),
            enrich_failures: LabelledCounter::default(),
            alerts: Mutex::new(BTreeMap::new()),
            outbox_pending: AtomicU64::new(0),
            poll_found: AtomicU64::new(0),
            recoveries: AtomicU64::new(0),
            digests: AtomicU64::new(0),
            poll_errors: AtomicU64::new(0),
            delivery_seconds: Histogram::new(DELIVERY_BOUNDS),
            admin_connections_refused: AtomicU64::new(0),
            admin_requests_timed_out: AtomicU64::new(0),
            destinations: Mutex::new(BTreeMap::new()),
        }
    }
}

pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Shows every (destination, outcome) series from the start, at zero.
    pub fn register_destinations<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        if let Ok(mut alerts) = self.alerts.lock() {
            for name in names {
                for outcome in AlertOutcome::ALL {
                    alerts.entry((name.to_owned(), *outcome)).or_insert(0);
                }
            }
        }
    }

    /// Notes a delivery (`Ok`) or a failed attempt with the service's answer, now.
    pub fn destination_attempt(&self, destination: &str, result: Result<(), &str>) {
        let now = chrono::Utc::now().timestamp_millis();
        if let Ok(mut all) = self.destinations.lock() {
            let health = all.entry(destination.to_owned()).or_default();
            match result {
                Ok(()) => health.last_success = Some(now),
                Err(reason) => health.last_failure = Some((now, reason.to_owned())),
            }
        }
    }

    /// What [`Metrics::destination_attempt`] noted, by destination.
    pub fn destination_health(&self) -> BTreeMap<String, DestinationHealth> {
        self.destinations
            .lock()
            .map(|all| all.clone())
            .unwrap_or_default()
    }

    /// Counts one alert outcome of a destination.
    pub fn alert(&self, destination: &str, outcome: AlertOutcome) {
        self.alerts_n(destination, outcome, 1);
    }

    /// Counts `n` alerts with the same outcome at once.
    pub fn alerts_n(&self, destination: &str, outcome: AlertOutcome, n: u64) {
        if let Ok(mut alerts) = self.alerts.lock() {
            *alerts.entry((destination.to_owned(), outcome)).or_insert(0) += n;
        }
    }

    pub fn alert_count(&self, destination: &str, outcome: AlertOutcome) -> u64 {
        self.alerts
            .lock()
            .ok()
            .and_then(|a| a.get(&(destination.to_owned(), outcome)).copied())
            .unwrap_or(0)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        counter(
            &mut out,
            "events_received_total",
            "MQTT messages received (redeliveries included).",
            &self.received,
        );
        counter(
            &mut out,
            "events_decoded_total",
            "Messages decoded as Qlik reload events.",
            &self.decoded,
        );
        labelled(
            &mut out,
            "events_dropped_total",
            "Decoded events that need no alert, by reason.",
            &self.dropped,
        );
        counter(
            &mut out,
            "events_duplicate_total",
            "Failure events already seen (same event id or reload id).",
            &self.duplicates,
        );
        counter(
            &mut out,
            "jobs_committed_total",
            "Alert jobs committed to the state store.",
            &self.jobs_committed,
        );
        labelled(
            &mut out,
            "dead_letters_total",
            "Payloads kept in the dead-letter table, by reason.",
            &self.dead_letters,
        );
        counter(
            &mut out,
            "store_errors_total",
            "Failed state store writes (ingest, routing, outcomes; each is retried with backoff).",
            &self.store_errors,
        );
        counter(
            &mut out,
            "poll_found_total",
            "Failures found by the reconciliation poll that no event had brought.",
            &self.poll_found,
        );
        counter(
            &mut out,
            "recoveries_total",
            "Apps that alerted reloaded successfully again (recovery recorded).",
            &self.recoveries,
        );
        counter(
            &mut out,
            "digests_total",
            "Storm digests sent in place of single alerts (each listed alert counts as `digested`).",
            &self.digests,
        );
        counter(
            &mut out,
            "poll_errors_total",
            "Reconciliation polls of a tenant that failed (retried at the next interval).",
            &self.poll_errors,
        );
        counter(
            &mut out,
            "mqtt_connects_total",
            "Successful MQTT connections (the first and every reconnect).",
            &self.mqtt_connects,
        );
        gauge(
            &mut out,
            "mqtt_connected",
            "1 while connected to the MQTT broker.",
            &self.mqtt_connected,
        );
        gauge(
            &mut out,
            "store_open",
            "1 while the state store is open.",
            &self.store_open,
        );
        gauge(
            &mut out,
            "store_writable",
            "0 while writes to the state store fail (a full disk, for one).",
            &AtomicBool::new(self.store_writable()),
        );
        labelled(
            &mut out,
            "qlik_requests_total",
            "Qlik Cloud REST requests (each attempt), by outcome.",
            &self.qlik_requests,
        );
        histogram(
            &mut out,
            "qlik_request_duration_seconds",
            "Qlik Cloud REST request latency.",
            &self.qlik_request_seconds,
        );
        self.qlik.render(&mut out);
        labelled(
            &mut out,
            "enrich_failures_total",
            "Enrichment look-ups that failed (the alert goes out without them), by look-up.",
            &self.enrich_failures,
        );
        let _ = writeln!(
            out,
            "# HELP reload_butler_alerts_total Alerts by destination and outcome.\n# TYPE reload_butler_alerts_total counter"
        );
        if let Ok(alerts) = self.alerts.lock() {
            for ((destination, outcome), count) in alerts.iter() {
                let _ = writeln!(
                    out,
                    "reload_butler_alerts_total{{destination=\"{}\",outcome=\"{outcome}\"}} {count}",
                    label_value(destination)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP reload_butler_outbox_pending Deliveries waiting to be sent.\n# TYPE reload_butler_outbox_pending gauge\nreload_butler_outbox_pending {}",
            self.outbox_pending.load(Ordering::Relaxed)
        );
        histogram(
            &mut out,
            "delivery_duration_seconds",
            "From the job's commit to the delivery's success.",
            &self.delivery_seconds,
        );
        counter(
            &mut out,
            "admin_connections_refused_total",
            "Admin endpoint connections closed at once because 64 were open.",
            &self.admin_connections_refused,
        );
        counter(
            &mut out,
            "admin_requests_timed_out_total",
            "Admin endpoint requests answered 408 after running past their bound.",
            &self.admin_requests_timed_out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_keeps_its_last_success_and_last_failure() {
        let metrics = Metrics::default();
        assert!(metrics.destination_health().is_empty());
        metrics.destination_attempt("chat", Err("HTTP 503"));
        metrics.destination_attempt("chat", Ok(()));
        metrics.destination_attempt("chat", Err("HTTP 404 no_service"));
        let health = metrics.destination_health();
        let chat = &health["chat"];
        assert!(chat.last_success.is_some());
        assert_eq!(
            chat.last_failure.as_ref().map(|(_, why)| why.as_str()),
            Some("HTTP 404 no_service")
        );
        assert_eq!(health.len(), 1);
    }
}
