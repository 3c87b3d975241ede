//! `render --event FILE`: what each destination would get for one event; sends nothing.

use std::path::Path;

use super::exit::{current_thread_runtime, load, Code, Exit, Outcome};
use crate::config::Config;
use crate::qlik::event::{decode, ReloadEvent};
use crate::qlik::model::Enrichment;
use crate::render::context::AlertInput;
use crate::render::{Rendered, Renderer};

/// Enrichment for `render` from the tenant's API, or none (with a note saying why).
fn enrich_online(config: &Config, event: &ReloadEvent) -> Enrichment {
    let tenant = config.tenants.iter().find(|t| t.id == event.tenant_id);
    let client = match tenant {
        Some(tenant) if config.enrich.enabled => {
            let metrics = std::sync::Arc::new(crate::metrics::Metrics::default());
            crate::qlik::enrich::client_for(tenant, &config.enrich, metrics)
        }
        _ => Ok(None),
    };
    let runtime = current_thread_runtime();
    match (client, runtime) {
        (Ok(Some(client)), Ok(runtime)) => {
            let metrics = crate::metrics::Metrics::default();
            let enrichment =
                runtime.block_on(crate::qlik::enrich::enrich(&client, event, &metrics));
            for failure in &enrichment.failures {
                eprintln!(
                    "note: look-up `{}` failed: {}",
                    failure.lookup, failure.error
                );
            }
            enrichment
        }
        (Err(error), _) => {
            eprintln!(
                "note: cannot reach the Qlik Cloud API ({error}); rendering from the event alone"
            );
            Enrichment::default()
        }
        (_, Err(error)) => {
            eprintln!("note: {error}; rendering from the event alone");
            Enrichment::default()
        }
        (Ok(None), _) => {
            eprintln!("note: enrichment is off or the tenant has no credentials; rendering from the event alone");
            Enrichment::default()
        }
    }
}

/// `render --event FILE`: prints what each destination (or one) would get.
pub fn command(
    config_path: &Path,
    event_path: &Path,
    only: Option<&str>,
    offline: bool,
) -> Outcome {
    let config = load(config_path)?;
    let bytes = std::fs::read(event_path)
        .map_err(|error| Exit::config(format!("cannot read {}: {error}", event_path.display())))?;
    let event = decode(&bytes).map_err(|error| {
        Exit::config(format!(
            "{} is not an event reload-butler alerts on: {error}",
            event_path.display()
        ))
    })?;
    let renderer = Renderer::new(&config).map_err(|problems| Exit::each(&problems))?;
    if let Some(name) = only.filter(|n| !renderer.destinations().iter().any(|d| d.name == *n)) {
        return Err(Exit::config(format!("no destination named `{name}`")));
    }
    if !config.tenants.iter().any(|t| t.id == event.tenant_id) {
        eprintln!(
            "warning: tenant {} is not in `tenants:`; the daemon would drop this event",
            event.tenant_id
        );
    }
    let enrichment = if offline {
        Enrichment::default()
    } else {
        enrich_online(&config, &event)
    };
    let input = AlertInput::new(&config, &event, &enrichment);
    let mut failed = false;
    for (i, d) in renderer.destinations().iter().enumerate() {
        if only.is_some_and(|name| name != d.name) {
            continue;
        }
        println!("===== {} =====", d.name);
        match renderer.render(i, &input) {
            Ok(Rendered::Email {
                subject,
                html,
                text,
            }) => {
                println!(
                    "Subject: {subject}\n\n----- text -----\n{text}\n----- html -----\n{html}"
                );
            }
            Ok(Rendered::Slack(payload) | Rendered::Teams(payload)) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&payload).unwrap_or_default()
                );
            }
            Ok(Rendered::Webhook(body)) => println!("{}", crate::render::vars::shown(&body)),
            Ok(Rendered::ChatText { body, .. }) => println!("{}", body.json()),
            Err(error) => {
                eprintln!("error: {}: {error}", d.name);
                failed = true;
            }
        }
    }
    if failed {
        Err(Exit::said(Code::Runtime))
    } else {
        Ok(())
    }
}
