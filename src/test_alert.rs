//! `test-alert`: renders the sample failure and really sends it through each enabled
//! destination (or one), straight through the senders, without the outbox.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{load, EXIT_CONFIG, EXIT_RUNTIME};
use crate::config::{Config, DestinationKind};
use crate::notify::{Notifier, Payload, SendError, SendMeta};
use crate::pipeline::gate;
use crate::render::context::AlertInput;
use crate::render::{sample, Rendered, Renderer};

pub fn command(config_path: &Path, only: Option<&str>) -> ExitCode {
    let config = match load(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let renderer = match Renderer::new(&config) {
        Ok(renderer) => renderer,
        Err(problems) => {
            problems.iter().for_each(|p| eprintln!("error: {p}"));
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(name) = only.filter(|n| !config.destinations.iter().any(|d| d.name == *n)) {
        eprintln!("error: no destination named `{name}`");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    if runtime.block_on(send_all(&config, &renderer, only)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}

/// Sends to each chosen destination; true when every send succeeded.
async fn send_all(config: &Config, renderer: &Renderer, only: Option<&str>) -> bool {
    let event = sample::event();
    let enrichment = sample::enrichment();
    let input = AlertInput::for_sample(config, &event, &enrichment);
    let mut all_ok = true;
    for (i, d) in config.destinations.iter().enumerate() {
        let chosen = match only {
            Some(name) => d.name == name,
            None => d.enabled,
        };
        if !chosen {
            continue;
        }
        let notifier = match Notifier::for_destination(d, config.delivery.dry_run_dir.as_deref()) {
            Ok(notifier) => notifier,
            Err(error) => {
                println!("{}: cannot set up: {error}", d.name);
                all_ok = false;
                continue;
            }
        };
        let payloads = match (renderer.render(i, &input), &d.kind) {
            (
                Ok(Rendered::Email {
                    subject,
                    html,
                    text,
                }),
                DestinationKind::Email(email),
            ) => {
                // The sample's owner is fictional: only the configured recipients get the test.
                gate::email_recipients(email, None)
                    .into_iter()
                    .map(|to| Payload::Email {
                        to,
                        subject: subject.clone(),
                        html: html.clone(),
                        text: text.clone(),
                    })
                    .collect()
            }
            (Ok(Rendered::Slack(body)), _) => vec![Payload::Slack { body }],
            (Ok(Rendered::Teams(body)), _) => vec![Payload::Teams { body }],
            (Ok(Rendered::Email { .. }), _) => Vec::new(),
            (Err(error), _) => {
                println!("{}: cannot render: {error}", d.name);
                all_ok = false;
                continue;
            }
        };
        let meta = SendMeta {
            destination: &d.name,
            app_id: &event.app_id,
            reload_id: &event.reload_id,
            job_id: 0,
        };
        for payload in payloads {
            let to = match &payload {
                Payload::Email { to, .. } => format!(" → {to}"),
                _ => String::new(),
            };
            match notifier.send(&payload, &meta).await {
                Ok(receipt) => println!("{}{to}: delivered ({})", d.name, receipt.detail),
                Err(SendError::Transient { reason, .. }) => {
                    println!("{}{to}: failed, would be retried: {reason}", d.name);
                    all_ok = false;
                }
                Err(SendError::Permanent { reason }) => {
                    println!("{}{to}: refused: {reason}", d.name);
                    all_ok = false;
                }
            }
        }
    }
    all_ok
}
