//! What the Qlik Cloud clients count beyond each request's outcome: requests by endpoint and
//! outcome, and per tenant credential the request budget left, 429s received, time paused, and
//! the credential's health (refusals, the watch's verdict, the API key's expiry).
//! Tenant ids come from the configuration, so the series are bounded.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::labels::{Label, QlikEndpoint, QlikOutcome};
use super::text::label_value;

/// The budget of one tenant credential as the client last saw it.
#[derive(Default)]
pub struct TenantBudget {
    /// Whole requests left in the client-side budget.
    pub left: AtomicU64,
    /// 429 answers received.
    pub rate_limited: AtomicU64,
    /// Milliseconds every request to the tenant was held by a 429's `Retry-After`.
    pub paused_ms: AtomicU64,
    /// Requests Qlik finally refused with 401 (or whose OAuth token was refused).
    pub refused: AtomicU64,
    /// The credential watch found a problem (refused, expired, revoked, expiring soon).
    pub credential_problem: AtomicBool,
    /// When the API key expires (unix seconds); 0 when not known.
    pub key_expiry: AtomicU64,
    /// The last answer (unix ms, 0 before the first) and its outcome: for the console.
    last_answer_ms: AtomicU64,
    last_outcome: AtomicUsize,
}

impl TenantBudget {
    /// Records the outcome of an answer (or a request that got none) received now.
    pub fn answered(&self, outcome: QlikOutcome) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_outcome.store(outcome.index(), Ordering::Relaxed);
        self.last_answer_ms.store(now, Ordering::Relaxed);
    }

    /// When the tenant last answered (unix ms) and how, if it ever did.
    pub fn last_answer(&self) -> Option<(u64, QlikOutcome)> {
        let at = self.last_answer_ms.load(Ordering::Relaxed);
        let outcome = QlikOutcome::ALL.get(self.last_outcome.load(Ordering::Relaxed))?;
        (at > 0).then_some((at, *outcome))
    }
}

pub struct QlikMetrics {
    by_endpoint: Box<[AtomicU64]>,
    tenants: Mutex<BTreeMap<String, Arc<TenantBudget>>>,
}

impl Default for QlikMetrics {
    fn default() -> Self {
        let cells = QlikEndpoint::ALL.len() * QlikOutcome::ALL.len();
        Self {
            by_endpoint: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            tenants: Mutex::new(BTreeMap::new()),
        }
    }
}

impl QlikMetrics {
    fn cell(endpoint: QlikEndpoint, outcome: QlikOutcome) -> usize {
        endpoint.index() * QlikOutcome::ALL.len() + outcome.index()
    }

    pub fn request(&self, endpoint: QlikEndpoint, outcome: QlikOutcome) {
        if let Some(count) = self.by_endpoint.get(Self::cell(endpoint, outcome)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn requests(&self, endpoint: QlikEndpoint, outcome: QlikOutcome) -> u64 {
        self.by_endpoint
            .get(Self::cell(endpoint, outcome))
            .map_or(0, |count| count.load(Ordering::Relaxed))
    }

    /// The budget gauges of `tenant`, created at zero on first use.
    pub fn tenant(&self, tenant: &str) -> Arc<TenantBudget> {
        let mut tenants = self
            .tenants
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tenants.entry(tenant.to_owned()).or_default().clone()
    }

    /// The budget gauges of `tenant` if a client uses them (not created).
    pub fn known_tenant(&self, tenant: &str) -> Option<Arc<TenantBudget>> {
        self.tenants.lock().ok()?.get(tenant).cloned()
    }

    pub(super) fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP reload_butler_qlik_endpoint_requests_total Qlik Cloud REST requests (each attempt), by endpoint and outcome.\n\
             # TYPE reload_butler_qlik_endpoint_requests_total counter"
        );
        for endpoint in QlikEndpoint::ALL {
            for outcome in QlikOutcome::ALL {
                let _ = writeln!(
                    out,
                    "reload_butler_qlik_endpoint_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {}",
                    self.requests(*endpoint, *outcome)
                );
            }
        }
        let tenants: Vec<(String, Arc<TenantBudget>)> = self
            .tenants
            .lock()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        type Read = fn(&TenantBudget) -> String;
        let families: [(&str, &str, &str, Read); 6] = [
            (
                "qlik_budget_remaining",
                "gauge",
                "Requests left in the client-side budget (tenants[].rate_limit) of the tenant's credential.",
                |b| b.left.load(Ordering::Relaxed).to_string(),
            ),
            (
                "qlik_rate_limited_total",
                "counter",
                "429 answers from the tenant (each pauses every request to it for its Retry-After).",
                |b| b.rate_limited.load(Ordering::Relaxed).to_string(),
            ),
            (
                "qlik_paused_seconds_total",
                "counter",
                "Time every request to the tenant was held by a 429's Retry-After.",
                |b| (b.paused_ms.load(Ordering::Relaxed) as f64 / 1000.0).to_string(),
            ),
            (
                "qlik_credential_refused_total",
                "counter",
                "Requests Qlik Cloud refused with 401 after any token renewal (or whose OAuth token it refused).",
                |b| b.refused.load(Ordering::Relaxed).to_string(),
            ),
            (
                "qlik_credential_ok",
                "gauge",
                "0 while the credential watch finds the tenant's credential refused, expired, revoked or expiring within 30 days.",
                |b| u8::from(!b.credential_problem.load(Ordering::Relaxed)).to_string(),
            ),
            (
                "qlik_api_key_expiry_timestamp_seconds",
                "gauge",
                "When the tenant's API key expires (unix time); 0 when not known.",
                |b| b.key_expiry.load(Ordering::Relaxed).to_string(),
            ),
        ];
        for (name, kind, help, read) in families {
            let _ = writeln!(
                out,
                "# HELP reload_butler_{name} {help}\n# TYPE reload_butler_{name} {kind}"
            );
            for (tenant, budget) in &tenants {
                let _ = writeln!(
                    out,
                    "reload_butler_{name}{{tenant=\"{}\"}} {}",
                    label_value(tenant),
                    read(budget)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_keeps_its_last_answer_and_unknown_tenants_are_not_created() {
        let metrics = QlikMetrics::default();
        assert!(metrics.known_tenant("t1").is_none());
        let budget = metrics.tenant("t1");
        assert_eq!(budget.last_answer(), None);
        budget.answered(QlikOutcome::RateLimited);
        budget.answered(QlikOutcome::Ok);
        let (at, outcome) = budget.last_answer().unwrap();
        assert_eq!(outcome, QlikOutcome::Ok);
        assert!(at > 1_700_000_000_000, "{at}");
        assert!(metrics.known_tenant("t1").is_some());
        assert!(metrics.known_tenant("t2").is_none());
    }

    #[test]
    fn counts_by_endpoint_and_outcome_and_shows_tenants() {
        let metrics = QlikMetrics::default();
        metrics.request(QlikEndpoint::App, QlikOutcome::RateLimited);
        metrics.request(QlikEndpoint::App, QlikOutcome::Ok);
        metrics.request(QlikEndpoint::App, QlikOutcome::Ok);
        assert_eq!(metrics.requests(QlikEndpoint::App, QlikOutcome::Ok), 2);
        assert_eq!(metrics.requests(QlikEndpoint::Item, QlikOutcome::Ok), 0);
        metrics
            .tenant("t1")
            .paused_ms
            .store(13_000, Ordering::Relaxed);
        let mut out = String::new();
        metrics.render(&mut out);
        assert!(out.contains(
            "reload_butler_qlik_endpoint_requests_total{endpoint=\"app\",outcome=\"ok\"} 2\n"
        ));
        assert!(out.contains("reload_butler_qlik_paused_seconds_total{tenant=\"t1\"} 13\n"));
        assert!(out.contains("reload_butler_qlik_budget_remaining{tenant=\"t1\"} 0\n"));
    }
}
