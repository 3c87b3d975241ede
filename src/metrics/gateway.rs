//! The gateway's metrics.

use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64};

use super::text::{counter, gauge, histogram, labelled};
use super::{GatewayOutcome, Histogram, LabelledCounter, LATENCY_BOUNDS};

/// The gateway's metrics (`reload-butler gateway`); one instance shared by its tasks.
pub struct GatewayMetrics {
    pub requests: LabelledCounter<GatewayOutcome>,
    /// From handing a message to the publisher to the broker's PUBACK, accepted requests only.
    pub publish_seconds: Histogram,
    pub mqtt_connected: AtomicBool,
    pub mqtt_connects: AtomicU64,
    /// Connections closed at once because `gateway.max_connections` were open.
    pub connections_refused: AtomicU64,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            requests: LabelledCounter::default(),
            publish_seconds: Histogram::new(LATENCY_BOUNDS),
            mqtt_connected: AtomicBool::new(false),
            mqtt_connects: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
        }
    }
}

impl GatewayMetrics {
    /// The Prometheus text exposition of the gateway's metrics; `body_bytes` are the body
    /// bytes being read now.
    pub fn render(&self, body_bytes: usize) -> String {
        let mut out = String::with_capacity(1024);
        labelled(
            &mut out,
            "gateway_requests_total",
            "Webhook requests answered by the gateway, by outcome.",
            &self.requests,
        );
        histogram(
            &mut out,
            "gateway_publish_duration_seconds",
            "From publishing an accepted webhook body to the broker's PUBACK.",
            &self.publish_seconds,
        );
        gauge(
            &mut out,
            "gateway_mqtt_connected",
            "1 while the gateway is connected to the MQTT broker.",
            &self.mqtt_connected,
        );
        counter(
            &mut out,
            "gateway_mqtt_connects_total",
            "Successful MQTT connections of the gateway (the first and every reconnect).",
            &self.mqtt_connects,
        );
        counter(
            &mut out,
            "gateway_connections_refused_total",
            "Connections closed at once because gateway.max_connections were open.",
            &self.connections_refused,
        );
        let _ = writeln!(
            out,
            "# HELP reload_butler_gateway_body_bytes_in_flight Body bytes of requests being read now.\n# TYPE reload_butler_gateway_body_bytes_in_flight gauge\nreload_butler_gateway_body_bytes_in_flight {body_bytes}"
        );
        out
    }
}
