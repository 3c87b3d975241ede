//! From committed job to outbox rows, top to bottom: enrich → archive the script log → per
//! destination: gate on tags → recipients → render → outbox row (the store applies the rate
//! limit in the same transaction that records the rows).

use std::collections::HashMap;
use std::sync::Arc;

use super::gate;
use crate::config::ScriptLogLines;
use crate::config::{Config, DestinationConfig, DestinationKind};
use crate::matcher::{Facts, Space};
use crate::metrics::Metrics;
use crate::notify::Payload;
use crate::qlik::api::QlikClient;
use crate::qlik::enrich::enrich;
use crate::qlik::event::{EventKind, ReloadEvent};
use crate::qlik::model::Enrichment;
use crate::render::context::{self, AlertInput, Contexts};
use crate::render::notice;
use crate::render::{Rendered, Renderer};
use crate::silence::{in_force, matches, SilenceKey};
use crate::store::{JobKind, JobRow, NewDelivery, NewState, SharedStore};

/// Digest items and recovery notices carry no script log.
const NO_SCRIPT_LOG: ScriptLogLines = ScriptLogLines { head: 0, tail: 0 };

pub struct Router {
    pub config: Arc<Config>,
    pub renderer: Arc<Renderer>,
    /// Tenant id → its API client (tenants with credentials, when enrichment is on).
    pub clients: HashMap<String, Arc<QlikClient>>,
    pub store: SharedStore,
    pub metrics: Arc<Metrics>,
}

impl Router {
    /// The outbox rows for one job. Never fails: what cannot be sent is recorded with a reason.
    pub async fn deliveries(&self, job: &JobRow) -> Vec<NewDelivery> {
        match job.kind {
            JobKind::Failure { streak } => self.alert_deliveries(job, streak).await,
            JobKind::Recovery {
                failing_since,
                failures,
            } => self.recovery_deliveries(job, failing_since, failures).await,
        }
    }

    /// `streak`: this failure's place in the app's run of failures (0: not counted).
    async fn alert_deliveries(&self, job: &JobRow, streak: u64) -> Vec<NewDelivery> {
        let event = &job.event;
        let enrichment = match self.clients.get(&event.tenant_id) {
            Some(client) => enrich(client, event, &self.metrics).await,
            None => Enrichment::default(),
        };
        self.archive(event, &enrichment);
        let remembered = self.remembered_name(event, &enrichment).await;
        let mut input = AlertInput::new(&self.config, event, &enrichment);
        input.remembered_name = remembered.as_deref();
        // An automation has no tags (known, not unknown): `only_apps_tagged` destinations do
        // not get its alerts, `skip_apps_tagged` ones do.
        let tags = match event.kind {
            EventKind::AutomationRun => Some(&[][..]),
            EventKind::EngineAttempt | EventKind::FinalOutcome => {
                enrichment.item.as_ref().map(|i| i.tags.as_slice())
            }
        };
        let facts = alert_facts(event, &enrichment, tags);
        if let Some((reason, resend_key)) = self.silenced(&facts).await {
            return self
                .config
                .destinations
                .iter()
                .filter(|d| d.enabled)
                .map(|d| {
                    let mut row = row(
                        d,
                        "",
                        String::new(),
                        NewState::Silenced(reason.clone()),
                        None,
                    );
                    row.silence_key = resend_key.clone();
                    row
                })
                .collect();
        }
        let owner_email = enrichment.owner.as_ref().and_then(|o| o.email.as_deref());
        // What a storm digest would list for this alert, when some destination groups.
        let mut contexts = Contexts::new(&input);
        let digest_item = self
            .config
            .destinations
            .iter()
            .any(|d| d.enabled && d.grouping.is_some())
            .then(|| notice::digest_item(contexts.for_destination("", NO_SCRIPT_LOG)).to_string());
        let mut out = Vec::new();
        for (i, d) in self.config.destinations.iter().enumerate() {
            if !d.enabled {
                continue;
            }
            if let Err(reason) = gate::allows(d, &facts, streak) {
                out.push(row(
                    d,
                    "",
                    String::new(),
                    NewState::Suppressed(reason),
                    None,
                ));
                continue;
            }
            let rendered = match self.renderer.render_shared(i, &mut contexts) {
                Ok(rendered) => rendered,
                Err(error) => {
                    tracing::warn!(destination = %d.name, job_id = job.id, %error, "the template failed for this alert; sending the built-in message instead");
                    self.renderer.render_fallback(i, &input)
                }
            };
            let mut rows = self.rows_for(d, event, rendered, owner_email);
            if let (Some(grouping), Some(item)) = (d.grouping, &digest_item) {
                for row in rows.iter_mut().filter(|r| r.state == NewState::Pending) {
                    row.hold = Some((crate::domain::millis(grouping.window), Some(item.clone())));
                }
            }
            out.extend(rows);
        }
        out
    }

    /// The last name an event carried for the app, when neither the API nor this event names
    /// it (a `reload.finished` while the API is down). A store error only costs the name.
    async fn remembered_name(
        &self,
        event: &ReloadEvent,
        enrichment: &Enrichment,
    ) -> Option<String> {
        let named = event.app_name.is_some()
            || enrichment.app.as_ref().is_some_and(|a| a.name.is_some())
            || enrichment
                .automation
                .as_ref()
                .is_some_and(|a| a.name.is_some());
        if named {
            return None;
        }
        let (tenant, app) = (event.tenant_id.clone(), event.app_id.clone());
        match self.store.app_name(&tenant, &app).await {
            Ok(name) => name,
            Err(error) => {
                tracing::warn!(app_id = ?event.app_id, %error, "cannot read the remembered app name; the alert names the app by its id");
                None
            }
        }
    }

    /// Recovery notices: for each destination with `notify_recovery` that told someone about
    /// this app failing, one message to each of them. No enrichment: the event says enough.
    async fn recovery_deliveries(
        &self,
        job: &JobRow,
        failing_since: i64,
        failures: u64,
    ) -> Vec<NewDelivery> {
        let event = &job.event;
        let enrichment = Enrichment::default();
        let remembered = self.remembered_name(event, &enrichment).await;
        let mut input = AlertInput::new(&self.config, event, &enrichment);
        input.remembered_name = remembered.as_deref();
        let facts = notice::Recovery {
            failing_since: chrono::DateTime::from_timestamp_millis(failing_since)
                .unwrap_or_default(),
            recovered_at: event
                .end_time
                .or(event.event_time)
                .unwrap_or_else(chrono::Utc::now),
            failures,
            timezone: self.config.timezone.clone(),
        };
        let mut out = Vec::new();
        for (i, d) in self.config.destinations.iter().enumerate() {
            if !d.enabled || !d.notify_recovery {
                continue;
            }
            let (tenant, app, name) = (
                event.tenant_id.clone(),
                event.app_id.clone(),
                d.name.clone(),
            );
            let told = self
                .store
                .alerted_recipients(&tenant, &app, &name, failing_since)
                .await;
            let recipients = match told {
                Ok(recipients) => recipients,
                Err(error) => {
                    tracing::warn!(destination = %d.name, job_id = job.id, %error, "cannot tell who was alerted; no recovery notice");
                    continue;
                }
            };
            if recipients.is_empty() {
                tracing::debug!(destination = %d.name, app_id = %event.app_id, "nobody here was alerted about this app; no recovery notice");
                continue;
            }
            let mut ctx = context::build(&input, &d.name, NO_SCRIPT_LOG);
            facts.extend(&mut ctx);
            let rendered = self.renderer.render_recovery(i, &ctx);
            for to in recipients {
                let mut row = row(
                    d,
                    &to,
                    Payload::encode_for(&rendered, &to),
                    NewState::Pending,
                    None,
                );
                // Behind a digest still gathering, never ahead of it.
                row.hold = d.grouping.map(|_| (0, None));
                out.push(row);
            }
        }
        out
    }

    /// The silence covering this alert now, if any (config first, then `silence add` ones): why,
    /// and its key when it resends what it silenced.
    async fn silenced(&self, facts: &Facts<'_>) -> Option<(String, Option<String>)> {
        let now = chrono::Utc::now();
        for (i, s) in self.config.silences.iter().enumerate() {
            if in_force(s, now, self.config.timezone.as_ref()) && matches(&s.matcher, facts) {
                let key = s
                    .resend_after_silence
                    .then(|| SilenceKey::Config(i).to_string());
                return Some((format!("silenced by config: {}", s.comment), key));
            }
        }
        // Matched without the comments (up to 1,000 silences of up to 1,000 characters each);
        // only the covering silence's comment is read.
        let filters = match self.store.silence_filters().await {
            Ok(filters) => filters,
            Err(error) => {
                // Unknown silences must not swallow an alert.
                tracing::warn!(%error, "cannot read silences; alerting");
                return None;
            }
        };
        let found = filters.into_iter().find(|f| matches(&f.matcher, facts))?;
        let id = found.id;
        let comment = match self.store.silence_comment(id).await {
            Ok(comment) => comment,
            Err(error) => {
                tracing::warn!(%error, silence = id, "cannot read a silence's comment");
                String::new()
            }
        };
        let key = found.resend.then(|| SilenceKey::Stored(id).to_string());
        Some((format!("silenced by silence {id}: {comment}"), key))
    }

    fn rows_for(
        &self,
        d: &DestinationConfig,
        event: &ReloadEvent,
        rendered: Rendered,
        owner_email: Option<&str>,
    ) -> Vec<NewDelivery> {
        let window = (!d.rate_limit.is_zero()).then_some(crate::domain::millis(d.rate_limit));
        let limit = |recipient: Option<&str>| {
            window.map(|w| (gate::rate_key(&d.name, &event.app_id, recipient), w))
        };
        match (&rendered, &d.kind) {
            (Rendered::Email { .. }, DestinationKind::Email(email)) => {
                if email.app_owner.enabled && owner_email.is_none() {
                    tracing::info!(destination = %d.name, app_id = %event.app_id, "the app owner has no known email address; not mailed");
                }
                let recipients = gate::email_recipients(email, owner_email);
                if recipients.is_empty() {
                    return vec![row(
                        d,
                        "",
                        String::new(),
                        NewState::Dead("no recipients".into()),
                        None,
                    )];
                }
                recipients
                    .into_iter()
                    .map(|to| {
                        let payload = Payload::encode_for(&rendered, &to);
                        let rate = limit(Some(&to));
                        row(d, &to, payload, NewState::Pending, rate)
                    })
                    .collect()
            }
            (
                Rendered::Slack(_)
                | Rendered::Teams(_)
                | Rendered::Webhook(_)
                | Rendered::ChatText { .. },
                _,
            ) => vec![row(
                d,
                "",
                Payload::encode_for(&rendered, ""),
                NewState::Pending,
                limit(None),
            )],
            (Rendered::Email { .. }, _) => vec![row(
                d,
                "",
                String::new(),
                NewState::Dead("rendered an email for a chat destination".into()),
                None,
            )],
        }
    }

    fn archive(&self, event: &ReloadEvent, enrichment: &Enrichment) {
        let archive = &self.config.script_log_archive;
        if let (true, Some(log)) = (archive.enabled, enrichment.script_log.as_deref()) {
            match crate::archive::archive_script_log(&archive.dir, event, log) {
                Ok(path) => tracing::debug!(path = %path.display(), "script log archived"),
                Err(error) => {
                    tracing::warn!(%error, dir = %archive.dir.display(), "cannot archive the script log")
                }
            }
        }
    }
}

/// What routing and silences can match this alert against (see `crate::matcher` for what an
/// unknown fact does).
fn alert_facts<'a>(
    event: &'a ReloadEvent,
    enrichment: &'a Enrichment,
    tags: Option<&'a [String]>,
) -> Facts<'a> {
    let app = enrichment.app.as_ref();
    let automation = enrichment.automation.as_ref();
    let space_id = event
        .space_id
        .as_deref()
        .or(app.and_then(|a| a.space_id.as_deref()))
        .or(enrichment.item.as_ref().and_then(|i| i.space_id.as_deref()))
        .or(automation.and_then(|a| a.space_id.as_deref()))
        .filter(|id| !id.is_empty());
    let space = match space_id {
        Some(id) => Some(Space {
            id: Some(id),
            name: enrichment
                .space
                .as_ref()
                .filter(|s| s.id == id)
                .and_then(|s| s.name.as_deref()),
        }),
        // The app (or automation) answered and names no space: a personal space.
        None if app.is_some() || automation.is_some() => Some(Space {
            id: None,
            name: None,
        }),
        None => None,
    };
    let owner_id = event
        .owner_id
        .as_deref()
        .or(app.and_then(|a| a.owner_id.as_deref()))
        .or(automation.and_then(|a| a.owner_id.as_deref()))
        .filter(|id| !id.is_empty());
    let owner_email = enrichment
        .owner
        .as_ref()
        .filter(|o| owner_id.is_none_or(|id| o.id == id))
        .and_then(|o| o.email.as_deref());
    Facts {
        tenant: &event.tenant_id,
        space,
        app_id: &event.app_id,
        app_name: event
            .app_name
            .as_deref()
            .or(app.and_then(|a| a.name.as_deref()))
            .or(automation.and_then(|a| a.name.as_deref())),
        tags,
        owner_id,
        owner_email,
        // Known to be none for an automation (no engine error code) and for a reload the
        // Reloads API answered about without one.
        error_code: match event.kind {
            EventKind::AutomationRun => Some(""),
            EventKind::EngineAttempt | EventKind::FinalOutcome => {
                event.error_code.as_deref().or(enrichment
                    .reload
                    .as_ref()
                    .map(|r| r.error_code.as_deref().unwrap_or_default()))
            }
        },
        kind: match event.kind {
            EventKind::AutomationRun => crate::domain::AlertKind::Automation,
            EventKind::EngineAttempt | EventKind::FinalOutcome => crate::domain::AlertKind::Reload,
        },
    }
}

fn row(
    d: &DestinationConfig,
    recipient: &str,
    payload: String,
    state: NewState,
    rate_limit: Option<(String, i64)>,
) -> NewDelivery {
    NewDelivery {
        destination: d.name.clone(),
        recipient: recipient.to_owned(),
        payload,
        state,
        rate_limit,
        hold: None,
        silence_key: None,
    }
}
