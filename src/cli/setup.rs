//! `setup webhook`: creates the tenant's Qlik Cloud webhook for the gateway, or brings the one
//! already there (found by its URL) up to date: the event types `alert_on` needs, enabled, a
//! secret. The secret is generated once, written to a file only its owner can read, and never
//! printed; a second run reuses it, so running the command again changes nothing.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rand::distr::{Alphanumeric, SampleString};

use super::exit::{current_thread_runtime, load, Exit, Outcome};
use crate::config::{Config, TenantConfig};
use crate::metrics::Metrics;
use crate::qlik::api::{ApiError, QlikClient, WantedWebhook};

/// Where the secret goes when `--secret-file` is not given.
pub const DEFAULT_SECRET_FILE: &str = "qlik-webhook-secret";
/// Qlik Cloud takes webhook secrets of 32 to 64 characters.
const SECRET_LENGTH: std::ops::RangeInclusive<usize> = 32..=64;
const GENERATED_LENGTH: usize = 48;
const NAME: &str = "reload-butler";
const DESCRIPTION: &str = "Reload and automation failures to reload-butler's gateway (managed by `reload-butler setup webhook`)";

pub fn webhook(config_path: &Path, tenant: &str, url: Option<&str>, secret_file: &Path) -> Outcome {
    let config = load(config_path)?;
    let tenant = config
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .ok_or_else(|| Exit::config(format!("no tenant `{tenant}` in tenants:")))?;
    let url = webhook_url(&config, url)?;
    let event_types = event_types(&config);
    let (secret, generated) = secret(secret_file)?;
    let client = client(&config, tenant)?;
    let wanted = WantedWebhook {
        name: NAME,
        description: DESCRIPTION,
        url: &url,
        event_types: &event_types,
        secret: &secret,
        enabled: true,
        level: "tenant",
        enable_cloud_event_delivery: true,
    };
    let done = current_thread_runtime()?.block_on(async {
        let existing = client.webhooks_for(&url).await?;
        match existing.first() {
            None => client
                .create_webhook(&wanted)
                .await
                .map(|w| ("created", w.id, existing.len())),
            Some(found) => client
                .update_webhook(&found.id, &wanted)
                .await
                .map(|()| ("updated", found.id.clone(), existing.len())),
        }
    });
    let (what, id, found) = done.map_err(|e| Exit::runtime(explain(&e)))?;
    println!(
        "{what} webhook {id} on tenant {} for {url}: enabled, events {}",
        tenant.id,
        event_types.join(", ")
    );
    if found > 1 {
        println!(
            "note: {} more webhooks have this URL; each sends every event (the daemon alerts once), delete the extra ones in the management console",
            found - 1
        );
    }
    let file = secret_file.display();
    if generated {
        println!("the webhook's secret was generated and written to {file} (mode 0600)");
    } else {
        println!("the webhook's secret is the one in {file}");
    }
    if config.gateway.secrets.iter().any(|s| s.expose() == secret) {
        println!("gateway.secrets already has it: nothing else to do");
    } else {
        println!(
            "put it in gateway.secrets, e.g. secrets: [\"${{QLIK_WEBHOOK_SECRET}}\"] with QLIK_WEBHOOK_SECRET=\"$(cat {file})\" in the gateway's environment, and restart the gateway"
        );
    }
    Ok(())
}

/// `--url`, else `gateway.public_url`.
fn webhook_url(config: &Config, url: Option<&str>) -> Result<String, Exit> {
    let url = match url {
        Some(text) => crate::config::http_url(text)
            .map_err(|why| Exit::config(format!("--url: {why}")))?,
        None => config.gateway.public_url.clone().ok_or_else(|| {
            Exit::config(
                "give --url, or set gateway.public_url: the URL Qlik Cloud calls, e.g. https://alerts.acme.com/qlik/webhook",
            )
        })?,
    };
    if url.scheme() != "https" {
        return Err(Exit::config(
            "the webhook URL must be https://: Qlik Cloud calls webhooks over HTTPS only",
        ));
    }
    Ok(url.to_string())
}

/// The event types `alert_on` needs, each once, in a stable order.
pub fn event_types(config: &Config) -> Vec<String> {
    let mut types: Vec<String> = config
        .alert_on
        .iter()
        .map(|f| f.event_type().to_owned())
        .collect();
    types.sort();
    types.dedup();
    types
}

/// The secret in `file` when it holds one Qlik accepts, else a new one written there.
fn secret(file: &Path) -> Result<(String, bool), Exit> {
    if let Ok(text) = std::fs::read_to_string(file) {
        let text = text.trim().to_owned();
        if SECRET_LENGTH.contains(&text.chars().count()) {
            return Ok((text, false));
        }
        return Err(Exit::config(format!(
            "{} does not hold a webhook secret of 32 to 64 characters; remove it to have one generated",
            file.display()
        )));
    }
    let secret = Alphanumeric.sample_string(&mut rand::rng(), GENERATED_LENGTH);
    write_private(file, &secret).map_err(|e| {
        Exit::runtime(format!(
            "cannot write the secret to {}: {e}",
            file.display()
        ))
    })?;
    Ok((secret, true))
}

/// Writes `text` to a new file readable by its owner alone.
fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(file)?;
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.sync_all()
}

/// The tenant's REST client; a tenant without credentials cannot be set up.
pub fn client(config: &Config, tenant: &TenantConfig) -> Result<QlikClient, Exit> {
    let auth = tenant.auth.as_ref().ok_or_else(|| {
        Exit::config(format!(
            "tenants[{}] has no auth: give it an API key or an OAuth client",
            tenant.id
        ))
    })?;
    QlikClient::new(
        &tenant.url,
        auth,
        &config.enrich,
        Arc::new(Metrics::default()),
    )
    .map_err(|e| Exit::runtime(e.to_string()))
}

/// An API error with what to do about it.
pub fn explain(error: &ApiError) -> String {
    let hint = match error.status() {
        Some(401) => "; the API key or OAuth client is refused: check tenants[].auth",
        Some(403) => {
            "; the credential may not manage the tenant's webhooks: it needs the TenantAdmin role"
        }
        Some(404) => "; is tenants[].url the tenant's own URL?",
        _ => "",
    };
    format!("{error}{hint}")
}
