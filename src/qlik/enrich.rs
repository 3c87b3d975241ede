//! Enrichment: what the Qlik Cloud REST API adds to a failed reload's event. The look-ups run
//! concurrently; each one that fails is logged, counted and recorded, and the alert goes out
//! with the rest (design §5: enrichment failures never block an alert).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use super::api::{within, ApiError, QlikClient};
use super::event::{EventKind, ReloadEvent};
use super::model::{AppInfo, Enrichment, ItemInfo, LookupFailure, SpaceInfo, UserInfo};
use crate::config::{Config, EnrichConfig, Problem, TenantConfig};
use crate::metrics::{Label, Lookup, Metrics};

/// The client of `tenant`, or `None` when the tenant has no credentials (enrichment is then
/// off for it). Whether enrichment is enabled at all is the caller's decision: the
/// reconciliation poll needs the client either way.
pub fn client_for(
    tenant: &TenantConfig,
    enrich: &EnrichConfig,
    metrics: Arc<Metrics>,
) -> Result<Option<QlikClient>, ApiError> {
    match &tenant.auth {
        Some(auth) => QlikClient::new(&tenant.url, auth, enrich, metrics)
            .map(|client| Some(client.with_rate_limit(&tenant.id, tenant.rate_limit))),
        None => Ok(None),
    }
}

/// The client of every tenant with credentials, by tenant id: what `run` enriches and polls
/// with (when either is enabled), and what `check` builds to find what would stop `run`.
/// Building touches no network; each client that cannot be built is a problem at its tenant's
/// key path.
pub fn clients_for(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<HashMap<String, Arc<QlikClient>>, Vec<Problem>> {
    let mut clients = HashMap::new();
    let mut problems = Vec::new();
    if !(config.enrich.enabled || config.poll.enabled) {
        return Ok(clients);
    }
    for (index, tenant) in config.tenants.iter().enumerate() {
        match client_for(tenant, &config.enrich, metrics.clone()) {
            Ok(Some(client)) => {
                clients.insert(tenant.id.clone(), Arc::new(client));
            }
            Ok(None) => {}
            Err(error) => problems.push(Problem {
                path: format!("tenants[{index}]"),
                message: error.to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(clients)
    } else {
        Err(problems)
    }
}

/// Everything the API can tell about `event`'s reload. Never fails: a failed look-up leaves its
/// part `None` and adds an entry to `failures`. Takes at most `enrich.timeout` in all, waits for
/// the tenant's budget included: what is not known by then stays `None`.
pub async fn enrich(client: &QlikClient, event: &ReloadEvent, metrics: &Metrics) -> Enrichment {
    if event.kind == EventKind::AutomationRun {
        let deadline = tokio::time::Instant::now() + client.timeout();
        return within(deadline, enrich_automation(client, event, metrics)).await;
    }
    // The user who triggered the reload, when it is not the owner (for a schedule it often is).
    let trigger_user =
        non_empty(&event.user_id).filter(|id| non_empty(&event.owner_id) != Some(*id));
    // `reload.finished` carries the reload's outcome itself: no `GET /reloads/{id}` for it.
    let reload_lookup = event.kind != EventKind::FinalOutcome;
    let deadline = tokio::time::Instant::now() + client.timeout();
    let (reload, script_log, (app, item, owner, space), user) = within(deadline, async {
        tokio::join!(
            maybe(reload_lookup.then(|| client.reload(&event.reload_id))),
            client.script_log(&event.app_id, &event.reload_id),
            app_side(client, event),
            maybe(trigger_user.map(|id| client.user(id))),
        )
    })
    .await;
    let mut record = Recorder {
        event,
        metrics,
        failures: Vec::new(),
    };
    let owner = record.keep(Lookup::Owner, owner);
    let user = match user {
        Some(result) => record.keep(Lookup::User, Some(result)),
        None => owner
            .clone()
            .filter(|o| non_empty(&event.user_id) == Some(o.id.as_str())),
    };
    Enrichment {
        reload: record.keep(Lookup::Reload, reload),
        app: record.keep(Lookup::App, Some(app)),
        item: record.keep(Lookup::Item, Some(item)),
        owner,
        user,
        space: record.keep(Lookup::Space, space),
        script_log: record.keep(Lookup::ScriptLog, Some(script_log)),
        automation: None,
        failures: record.failures,
    }
}

/// An automation run: the automation (`GET /api/v1/automations/{id}`: name, owner), its owner,
/// the user who ran it and its space (for `spaceName` and routing by space). No reload, app or
/// script log look-ups.
async fn enrich_automation(
    client: &QlikClient,
    event: &ReloadEvent,
    metrics: &Metrics,
) -> Enrichment {
    let mut record = Recorder {
        event,
        metrics,
        failures: Vec::new(),
    };
    let automation = record.keep(
        Lookup::Automation,
        Some(client.automation(&event.app_id).await),
    );
    let owner_id = non_empty(&event.owner_id)
        .or_else(|| automation.as_ref().and_then(|a| non_empty(&a.owner_id)));
    let runner = non_empty(&event.user_id).filter(|id| owner_id != Some(*id));
    let space_id = non_empty(&event.space_id)
        .or_else(|| automation.as_ref().and_then(|a| non_empty(&a.space_id)));
    let (owner, user, space) = tokio::join!(
        maybe(owner_id.map(|id| client.user(id))),
        maybe(runner.map(|id| client.user(id))),
        maybe(space_id.map(|id| client.space(id))),
    );
    let owner = record.keep(Lookup::Owner, owner);
    let space = record.keep(Lookup::Space, space);
    let user = match user {
        Some(result) => record.keep(Lookup::User, Some(result)),
        None => owner
            .clone()
            .filter(|o| non_empty(&event.user_id) == Some(o.id.as_str())),
    };
    Enrichment {
        automation,
        owner,
        user,
        space,
        failures: record.failures,
        ..Enrichment::default()
    }
}

/// Turns look-up results into parts, logging, counting and listing each failure.
struct Recorder<'a> {
    event: &'a ReloadEvent,
    metrics: &'a Metrics,
    failures: Vec<LookupFailure>,
}

impl Recorder<'_> {
    /// `None` means there was nothing to look up.
    fn keep<T>(&mut self, lookup: Lookup, result: Option<Part<T>>) -> Option<T> {
        match result? {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(
                    app_id = %self.event.app_id,
                    reload_id = %self.event.reload_id,
                    %lookup,
                    error = %error,
                    "enrichment look-up failed; the alert goes out without it"
                );
                self.metrics.enrich_failures.inc(lookup);
                self.failures.push(LookupFailure {
                    lookup: lookup.as_str().to_owned(),
                    error: error.to_string(),
                });
                None
            }
        }
    }
}

type Part<T> = Result<T, ApiError>;

/// App and item, and the owner and space: straight away when the event names them, else from
/// the app's (or item's) answer. `None` for owner or space means there was nothing to look up
/// (a personal app has no space).
async fn app_side(
    client: &QlikClient,
    event: &ReloadEvent,
) -> (
    Part<AppInfo>,
    Part<ItemInfo>,
    Option<Part<UserInfo>>,
    Option<Part<SpaceInfo>>,
) {
    let owner_id = non_empty(&event.owner_id);
    let space_id = non_empty(&event.space_id);
    let (app, item, owner, space) = tokio::join!(
        client.app(&event.app_id),
        client.app_item(&event.app_id),
        maybe(owner_id.map(|id| client.user(id))),
        maybe(space_id.map(|id| client.space(id))),
    );
    let app_info = app.as_ref().ok();
    let later_owner = match owner {
        Some(_) => None,
        None => app_info.and_then(|a| non_empty(&a.owner_id)),
    };
    let later_space = match space {
        Some(_) => None,
        None => app_info
            .and_then(|a| non_empty(&a.space_id))
            .or_else(|| item.as_ref().ok().and_then(|i| non_empty(&i.space_id))),
    };
    let (later_owner, later_space) = tokio::join!(
        maybe(later_owner.map(|id| client.user(id))),
        maybe(later_space.map(|id| client.space(id))),
    );
    (app, item, owner.or(later_owner), space.or(later_space))
}

async fn maybe<F: Future>(future: Option<F>) -> Option<F::Output> {
    match future {
        Some(future) => Some(future.await),
        None => None,
    }
}

fn non_empty(id: &Option<String>) -> Option<&str> {
    id.as_deref().filter(|id| !id.is_empty())
}
