//! `check`'s template stage and the `render` command: render alerts without sending them.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{load, EXIT_CONFIG, EXIT_RUNTIME};
use crate::config::{Config, Problem};
use crate::qlik::event::{decode, ReloadEvent};
use crate::qlik::model::Enrichment;
use crate::render::context::AlertInput;
use crate::render::{context, notice, sample, uses, Kind, RenderError, Rendered, Renderer};

/// Compiles every template and renders each destination with the sample failure and with its
/// hostile twin; every failure is a problem naming the destination.
pub fn check_templates(config: &Config) -> Vec<Problem> {
    let renderer = match Renderer::new(config) {
        Ok(renderer) => renderer,
        Err(problems) => return problems,
    };
    let normal = (sample::event(), sample::enrichment());
    let hostile = sample::hostile();
    let mut problems = Vec::new();
    for (i, d) in renderer.destinations().iter().enumerate() {
        for (label, (event, enrichment)) in [
            ("the sample failure", &normal),
            ("hostile sample text", &hostile),
        ] {
            let input = AlertInput::for_sample(config, event, enrichment);
            if let Err(error) = renderer.render(i, &input) {
                problems.push(Problem {
                    path: format!("destinations[{i}]"),
                    message: format!("`{}` cannot render {label}: {error}", d.name),
                });
                break;
            }
        }
        if let Some((what, error)) = notice_error(config, &renderer, i, [&normal, &hostile]) {
            problems.push(Problem {
                path: format!("destinations[{i}]"),
                message: format!("`{}` cannot render {what}: {error}", d.name),
            });
        }
    }
    problems
}

/// Renders destination `i`'s digest (of 60 sample alerts, normal and hostile) and its recovery
/// notices with its own templates; the first error, if any.
fn notice_error(
    config: &Config,
    renderer: &Renderer,
    i: usize,
    samples: [&(ReloadEvent, Enrichment); 2],
) -> Option<(&'static str, RenderError)> {
    let d = &renderer.destinations()[i];
    let contexts: Vec<serde_json::Value> = samples
        .iter()
        .map(|(event, enrichment)| {
            let input = AlertInput::for_sample(config, event, enrichment);
            context::build(&input, &d.name, d.script_log)
        })
        .collect();
    let items: Vec<serde_json::Value> = contexts
        .iter()
        .cycle()
        .take(60)
        .map(notice::digest_item)
        .collect();
    let now = chrono::Utc::now();
    let digest = notice::Digest {
        items: &items,
        threshold: 5,
        window: std::time::Duration::from_secs(30),
        first_at: now,
        last_at: now,
        timezone: config.timezone,
    };
    let digest_error = uses(d, Kind::Digest)
        .then(|| renderer.render_kind(i, Kind::Digest, &digest.context(60, &d.name)))
        .and_then(Result::err);
    if let Some(error) = digest_error {
        return Some(("a sample digest", error));
    }
    let recovery = notice::Recovery {
        failing_since: now - chrono::Duration::hours(2),
        recovered_at: now,
        failures: 3,
        timezone: config.timezone,
    };
    for mut ctx in contexts.into_iter().filter(|_| uses(d, Kind::Recovery)) {
        recovery.extend(&mut ctx);
        if let Err(error) = renderer.render_kind(i, Kind::Recovery, &ctx) {
            return Some(("a sample recovery notice", error));
        }
    }
    None
}

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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
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
            eprintln!(
                "note: cannot start the async runtime ({error}); rendering from the event alone"
            );
            Enrichment::default()
        }
        (Ok(None), _) => {
            eprintln!("note: enrichment is off or the tenant has no credentials; rendering from the event alone");
            Enrichment::default()
        }
    }
}

/// `render --event FILE`: prints what each destination (or one) would get.
pub fn render_command(
    config_path: &Path,
    event_path: &Path,
    only: Option<&str>,
    offline: bool,
) -> ExitCode {
    let config = match load(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let bytes = match std::fs::read(event_path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", event_path.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let event = match decode(&bytes) {
        Ok(event) => event,
        Err(error) => {
            eprintln!(
                "error: {} is not a usable reload event: {error}",
                event_path.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let renderer = match Renderer::new(&config) {
        Ok(renderer) => renderer,
        Err(problems) => {
            for problem in problems {
                eprintln!("error: {problem}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
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
            Err(error) => {
                eprintln!("error: {}: {error}", d.name);
                failed = true;
            }
        }
    }
    if let Some(name) = only.filter(|n| !renderer.destinations().iter().any(|d| d.name == *n)) {
        eprintln!("error: no destination named `{name}`");
        return ExitCode::from(EXIT_CONFIG);
    }
    if failed {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}
