//! `check`: the configuration as `run` would load it, every template compiled and rendered
//! with a sample and a hostile failure; every problem reported, nothing sent.

use std::path::Path;

use super::exit::{load, plural, problems, Outcome};
use crate::config::{Config, Problem};
use crate::qlik::event::ReloadEvent;
use crate::qlik::model::Enrichment;
use crate::render::context::{self, AlertInput};
use crate::render::{notice, sample, uses, Kind, RenderError, Renderer};

pub fn command(path: &Path) -> Outcome {
    let config = load(path)?;
    let found = all_problems(&config);
    if !found.is_empty() {
        return Err(problems(path, &found));
    }
    for warning in crate::app::startup_warnings(&config) {
        eprintln!("warning: {}: {warning}", path.display());
    }
    let enabled = config.destinations.iter().filter(|d| d.enabled).count();
    println!(
        "{}: OK ({} tenant{}, {} destination{} of which {} enabled)",
        path.display(),
        config.tenants.len(),
        plural(config.tenants.len()),
        config.destinations.len(),
        plural(config.destinations.len()),
        enabled
    );
    Ok(())
}

/// What `run` and `gateway` build at start-up (TLS files, senders, API clients), then the
/// templates: a config with no problem here starts.
pub(super) fn all_problems(config: &Config) -> Vec<Problem> {
    let mut found = crate::app::startup_problems(config);
    found.extend(state_problems(config));
    found.extend(crate::gateway::config_problems(config));
    found.extend(check_templates(config));
    found
}

/// With `state.url`, `run` connects to PostgreSQL first: so does `check`, changing nothing.
fn state_problems(config: &Config) -> Vec<Problem> {
    let Some(url) = &config.state.url else {
        return Vec::new();
    };
    let probed = match super::exit::current_thread_runtime() {
        Ok(runtime) => runtime.block_on(crate::store::pg::PgStore::probe(
            url.expose(),
            config.state.ca_file.as_deref(),
        )),
        Err(exit) => Err(crate::store::StoreError::Task(exit.message)),
    };
    match probed {
        Ok(()) => Vec::new(),
        Err(error) => vec![Problem {
            path: "state.url".to_owned(),
            message: format!("cannot use the PostgreSQL database: {error}"),
        }],
    }
}

/// Compiles every template and renders each destination with the sample failure and with its
/// hostile twin; every failure is a problem naming the destination.
fn check_templates(config: &Config) -> Vec<Problem> {
    let renderer = match Renderer::new(config) {
        Ok(renderer) => renderer,
        Err(problems) => return problems,
    };
    let normal = (sample::event(), sample::enrichment());
    let hostile = sample::hostile();
    let automation = sample::automation();
    let hostile_automation = sample::hostile_automation();
    let mut problems = Vec::new();
    for (i, d) in renderer.destinations().iter().enumerate() {
        for (label, (event, enrichment)) in [
            ("the sample failure", &normal),
            ("hostile sample text", &hostile),
            ("the sample automation failure", &automation),
            ("hostile sample automation text", &hostile_automation),
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
        timezone: config.timezone.as_ref(),
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
        timezone: config.timezone.clone(),
    };
    for mut ctx in contexts.into_iter().filter(|_| uses(d, Kind::Recovery)) {
        recovery.extend(&mut ctx);
        if let Err(error) = renderer.render_kind(i, Kind::Recovery, &ctx) {
            return Some(("a sample recovery notice", error));
        }
    }
    None
}
