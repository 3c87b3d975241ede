//! `test-alert`: renders the sample failure and really sends it through each enabled
//! destination (or one), straight through the senders, without the outbox.

use std::path::Path;

use super::exit::{current_thread_runtime, load, Code, Exit, Outcome};
use crate::config::{Config, DestinationKind};
use crate::notify::{Notifier, Payload, SendError, SendMeta};
use crate::pipeline::gate;
use crate::render::context::AlertInput;
use crate::render::{sample, Rendered, Renderer};

pub fn command(config_path: &Path, only: Option<&str>) -> Outcome {
    let config = load(config_path)?;
    let renderer = Renderer::new(&config).map_err(|problems| Exit::each(&problems))?;
    if let Some(name) = only.filter(|n| !config.destinations.iter().any(|d| d.name == *n)) {
        return Err(Exit::config(format!("no destination named `{name}`")));
    }
    if current_thread_runtime()?.block_on(send_all(&config, &renderer, only)) {
        Ok(())
    } else {
        Err(Exit::said(Code::Runtime))
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
            (
                Ok(
                    rendered @ (Rendered::Slack(_)
                    | Rendered::Teams(_)
                    | Rendered::Webhook(_)
                    | Rendered::ChatText { .. }),
                ),
                _,
            ) => vec![Payload::to(&rendered, "")],
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
