//! At run time, the blind spots `doctor` checks once: a tenant's credential that Qlik refuses
//! (401), or an API key that is revoked, expired or expiring within 30 days. Each finding is a
//! warning log line, the tenant's `reload_butler_qlik_credential_ok` gauge at 0 (and its API
//! key's expiry in `reload_butler_qlik_api_key_expiry_timestamp_seconds`), and one notice to the
//! email, Slack and Teams destinations, at most once a day per tenant and problem (the state
//! store keeps the day, so a restart does not repeat it).
//!
//! Each tenant is checked at start and every [`FULL_CHECK_EVERY`]; sooner (at most every
//! [`RECHECK_AFTER_REFUSAL`]) when its client saw Qlik refuse a request since the last check.
//! A check that cannot reach Qlik changes nothing: the network is not the credential.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{watch, Notify};

use crate::config::{Config, DestinationKind, TenantAuth, TenantConfig};
use crate::metrics::Metrics;
use crate::notify::Payload;
use crate::pipeline::gate;
use crate::qlik::api::QlikClient;
use crate::qlik::credential::{key_state, refused, CredentialProblem, KeyState};
use crate::render::Renderer;
use crate::store::{NewDelivery, NewNotice, NewState, SharedStore};

/// How often each tenant's credential is checked when nothing looks wrong.
const FULL_CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);
/// The soonest a new refusal brings the next check.
const RECHECK_AFTER_REFUSAL: Duration = Duration::from_secs(300);
/// How often the watch looks at the clients' refusal counts.
const TICK: Duration = Duration::from_secs(60);
/// The same notice (tenant and problem) goes out at most this often.
const NOTICE_EVERY: Duration = Duration::from_secs(24 * 3600);

pub struct CredentialWatch {
    pub config: Arc<Config>,
    pub renderer: Arc<Renderer>,
    /// Tenant id → its API client.
    pub clients: HashMap<String, Arc<QlikClient>>,
    pub store: SharedStore,
    pub metrics: Arc<Metrics>,
    /// Woken when a notice is recorded, so the outbox sends it now.
    pub outbox_wake: Arc<Notify>,
}

/// What the watch remembers of one tenant between ticks.
struct Seen {
    checked_at: Instant,
    refusals: u64,
}

impl CredentialWatch {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut seen: HashMap<String, Seen> = HashMap::new();
        loop {
            for tenant in &self.config.tenants {
                let Some(api) = self.clients.get(&tenant.id) else {
                    continue;
                };
                let due = seen.get(&tenant.id).is_none_or(|s| {
                    let since = s.checked_at.elapsed();
                    since >= FULL_CHECK_EVERY
                        || (api.refusals() > s.refusals && since >= RECHECK_AFTER_REFUSAL)
                });
                if due {
                    self.check(tenant, api).await;
                    let refusals = api.refusals();
                    let checked_at = Instant::now();
                    seen.insert(
                        tenant.id.clone(),
                        Seen {
                            checked_at,
                            refusals,
                        },
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
    }

    async fn check(&self, tenant: &TenantConfig, api: &QlikClient) {
        let now = Utc::now();
        let gauges = self.metrics.qlik.tenant(&tenant.id);
        let problem = match api.me().await {
            Err(error) if refused(&error) => Some(CredentialProblem::Refused),
            Err(error) => {
                tracing::debug!(tenant = %tenant.id, %error, "credential check: Qlik Cloud did not answer; trying again later");
                return;
            }
            Ok(_) => match &tenant.auth {
                Some(TenantAuth::ApiKey(key)) => {
                    let state = key_state(api, key.expose()).await;
                    if let KeyState::Expires(Some(at)) = &state {
                        let at = at.timestamp().max(0) as u64;
                        gauges.key_expiry.store(at, Ordering::Relaxed);
                    }
                    state.problem(now)
                }
                _ => None,
            },
        };
        gauges
            .credential_problem
            .store(problem.is_some(), Ordering::Relaxed);
        let Some(problem) = problem else {
            tracing::debug!(tenant = %tenant.id, "credential check: fine");
            return;
        };
        let what = problem.describe(now);
        tracing::warn!(tenant = %tenant.id, problem = problem.label(), "{what}");
        self.notify(tenant, &problem, now).await;
    }

    /// Records the notice for every email, Slack and Teams destination, unless it went out
    /// within the day.
    async fn notify(&self, tenant: &TenantConfig, problem: &CredentialProblem, now: DateTime<Utc>) {
        let text = notice_text(tenant, problem, now);
        let deliveries = self.deliveries(&headline(tenant, problem), &text);
        if deliveries.is_empty() {
            return;
        }
        let label = match problem {
            CredentialProblem::Refused => "credential_refused",
            CredentialProblem::Inactive(_) => "credential_inactive",
            CredentialProblem::Expired(_) => "credential_expired",
            CredentialProblem::Expiring(_) => "credential_expiring",
        };
        let key = format!("credential:{}:{}", problem.label(), tenant.id);
        let tenant_id = tenant.id.clone();
        let every_ms = crate::domain::millis(NOTICE_EVERY);
        let recorded = self
            .store
            .raise_notice(
                NewNotice {
                    tenant: tenant_id,
                    label,
                    key,
                    every_ms,
                },
                deliveries,
            )
            .await;
        match recorded {
            Ok(true) => {
                tracing::info!(tenant = %tenant.id, problem = problem.label(), "credential notice recorded for the destinations");
                self.outbox_wake.notify_waiters();
            }
            Ok(false) => {
                tracing::info!(tenant = %tenant.id, problem = problem.label(), "credential notice already sent within the day");
            }
            Err(error) => {
                tracing::warn!(tenant = %tenant.id, %error, "cannot record the credential notice; trying again at the next check");
            }
        }
    }

    /// One pending row per email recipient (the configured ones: an app owner has nothing to
    /// do with a credential) and per Slack or Teams destination.
    fn deliveries(&self, headline: &str, text: &str) -> Vec<NewDelivery> {
        let mut out = Vec::new();
        for (i, d) in self.config.destinations.iter().enumerate() {
            if !d.enabled {
                continue;
            }
            let row = |recipient: &str, payload: Payload| NewDelivery {
                destination: d.name.clone(),
                recipient: recipient.to_owned(),
                payload: payload.encode(),
                state: NewState::Pending,
                rate_limit: None,
                hold: None,
                silence_key: None,
            };
            match &d.kind {
                DestinationKind::Email(email) => {
                    let rendered = self.renderer.render_service_notice(i, headline, text);
                    for to in gate::email_recipients(email, None) {
                        out.push(row(&to, Payload::to(&rendered, &to)));
                    }
                }
                DestinationKind::Slack(_) | DestinationKind::Teams(_) => {
                    let rendered = self.renderer.render_service_notice(i, headline, text);
                    out.push(row("", Payload::to(&rendered, "")));
                }
                // A webhook's service (a pager, a ticket system) expects its template's shape;
                // a notice about reload-butler's own set-up would page someone with a bad body.
                DestinationKind::Webhook(_) => {}
            }
        }
        out
    }
}

fn tenant_name(tenant: &TenantConfig) -> String {
    match tenant.comment.trim() {
        "" => tenant.id.clone(),
        comment => format!("{} ({comment})", tenant.id),
    }
}

/// The notice's subject line.
fn headline(tenant: &TenantConfig, problem: &CredentialProblem) -> String {
    let what = match problem {
        CredentialProblem::Refused => "Qlik Cloud refuses the credential",
        CredentialProblem::Inactive(_) => "the Qlik Cloud API key is revoked",
        CredentialProblem::Expired(_) => "the Qlik Cloud API key has expired",
        CredentialProblem::Expiring(_) => "the Qlik Cloud API key expires soon",
    };
    format!("reload-butler: {what} for tenant {}", tenant_name(tenant))
}

/// What is wrong, what to do, and what it costs meanwhile.
fn notice_text(tenant: &TenantConfig, problem: &CredentialProblem, now: DateTime<Utc>) -> String {
    let cost = match problem {
        CredentialProblem::Expiring(_) => "After that, alerts",
        _ => "Until then, alerts",
    };
    format!(
        "reload-butler, tenant {}: {}. {cost} go out without what the Qlik Cloud API adds (app and space names, owner, script log), and the reconciliation poll cannot find missed failures.",
        tenant_name(tenant),
        problem.describe(now)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_says_what_is_wrong_and_what_it_costs() {
        let tenant = TenantConfig {
            id: "t1".into(),
            comment: "production".into(),
            url: url::Url::parse("https://acme.eu.qlikcloud.com").unwrap(),
            auth: None,
            qmc_url: None,
            hub_url: None,
            rate_limit: crate::config::TenantRateLimit::default(),
        };
        let now = Utc::now();
        let soon = CredentialProblem::Expiring(now + chrono::Duration::days(12));
        let text = notice_text(&tenant, &soon, now);
        assert!(text.contains("t1 (production)"), "{text}");
        assert!(text.contains("expires on"), "{text}");
        assert!(text.contains("After that, alerts"), "{text}");
        assert_eq!(
            headline(&tenant, &CredentialProblem::Refused),
            "reload-butler: Qlik Cloud refuses the credential for tenant t1 (production)"
        );
    }
}
