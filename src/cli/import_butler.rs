//! `import-butler FILE`: reads a Butler config and prints the equivalent reload-butler config for
//! the Qlik Cloud parts, with a comment on every setting it could not carry over. Secrets are
//! not copied: each becomes a `${VAR}` reference, so the new file can live in version control.

use std::fmt::Write;
use std::path::Path;

use serde_yaml_ng::Value;

use super::exit::{Exit, Outcome};

/// The value at a dotted path, if any.
fn at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(root, |v, key| v.get(key))
}

fn text(root: &Value, path: &str) -> Option<String> {
    match at(root, path)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn flag(root: &Value, path: &str) -> bool {
    matches!(at(root, path), Some(Value::Bool(true)))
}

fn number(root: &Value, path: &str) -> Option<u64> {
    at(root, path).and_then(Value::as_u64)
}

/// A YAML scalar that is always read back as the same text (JSON strings are valid YAML).
fn q(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Butler's `fromAddress` as a mailbox lettre parses (config checks `from` with it): a display
/// name with specials such as `(` is quoted, `"Qlik Sense (no-reply)" <a@acme.com>`.
fn mailbox_text(from: &str) -> String {
    if from.parse::<lettre::message::Mailbox>().is_ok() {
        return from.to_owned();
    }
    match from.rsplit_once('<') {
        Some((name, rest)) if !name.trim().is_empty() && !name.contains('"') => {
            format!("\"{}\" <{rest}", name.trim())
        }
        _ => from.to_owned(),
    }
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items.iter().map(|i| q(i)).collect::<Vec<_>>().join(", ")
    )
}

/// The emails of a Butler `user: [{email: ...}]` list.
fn emails(root: &Value, path: &str) -> Vec<String> {
    at(root, path)
        .and_then(Value::as_sequence)
        .map(|users| {
            users
                .iter()
                .filter_map(|u| u.get("email").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn strings(root: &Value, path: &str) -> Vec<String> {
    at(root, path)
        .and_then(Value::as_sequence)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub fn command(path: &Path) -> Outcome {
    let source = std::fs::read_to_string(path)
        .map_err(|error| Exit::config(format!("cannot read {}: {error}", path.display())))?;
    let yaml = convert(&source)
        .map_err(|message| Exit::config(format!("{}: {message}", path.display())))?;
    print!("{yaml}");
    Ok(())
}

/// The reload-butler config for a Butler config's text.
pub fn convert(source: &str) -> Result<String, String> {
    let root: Value =
        serde_yaml_ng::from_str(source).map_err(|e| format!("not valid YAML: {e}"))?;
    let b = root
        .get("Butler")
        .ok_or("no top-level `Butler:` section; is this a Butler config?")?;
    let tenant = "qlikSenseCloud.event.mqtt.tenant";
    let alert = format!("{tenant}.alert");
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "# reload-butler configuration imported from a Butler config."
    );
    let _ = writeln!(
        w,
        "# Secrets were not copied: set the environment variables named below."
    );
    let _ = writeln!(w, "# Reference: docs/configuration.md; check it with `reload-butler check --config <this file>`.\n");

    let broker = "mqttConfig.qlikSenseCloud.event.mqttForward";
    let host = text(b, &format!("{broker}.broker.host")).unwrap_or_else(|| "127.0.0.1".into());
    let port = number(b, &format!("{broker}.broker.port")).unwrap_or(1883);
    let scheme = if port == 8883 { "mqtts" } else { "mqtt" };
    let _ = writeln!(w, "mqtt:");
    if scheme == "mqtts" {
        let _ = writeln!(
            w,
            "  # Butler did not say whether the broker uses TLS; port 8883 usually does."
        );
    }
    let _ = writeln!(w, "  url: {}", q(&format!("{scheme}://{host}:{port}")));
    let _ = writeln!(w, "  client_id: reload-butler-1");
    if let Some(user) = text(b, &format!("{broker}.broker.username")) {
        let _ = writeln!(w, "  username: {}", q(&user));
        let _ = writeln!(w, "  password: \"${{MQTT_PASSWORD}}\"        # Butler had it in mqttForward.broker.password");
    }
    let topic = text(b, &format!("{broker}.topic.subscriptionRoot"))
        .unwrap_or_else(|| "qscloud/app/reload/#".into());
    let _ = writeln!(w, "  topic: {}", q(&topic));
    let _ = writeln!(w, "  persistent_session: true\n");

    let _ = writeln!(w, "poll:\n  enabled: true\n  interval: 5m\n");
    let basic_only = ["teams", "slack"].iter().any(|k| {
        flag(
            b,
            &format!("{alert}.{k}Notification.reloadAppFailure.basicContentOnly"),
        )
    });
    let _ = writeln!(w, "enrich:");
    if basic_only {
        let _ = writeln!(w, "  # Butler's basicContentOnly was set; here enrichment is one switch for all destinations.");
    }
    let _ = writeln!(w, "  enabled: {}\n", !basic_only);

    let _ = writeln!(w, "tenants:");
    let id = text(b, &format!("{tenant}.id")).unwrap_or_else(|| "<tenant id>".into());
    if id.contains('.') {
        let _ = writeln!(w, "  # Butler's tenant.id looks like a host name: use the tenant id as events carry it (32 characters).");
    }
    let _ = writeln!(w, "  - id: {}", q(&id));
    if let Some(comment) = text(b, &format!("{tenant}.comment")) {
        let _ = writeln!(w, "    comment: {}", q(&comment));
    }
    let url = text(b, &format!("{tenant}.tenantUrl"))
        .unwrap_or_else(|| "https://<tenant>.<region>.qlikcloud.com".into());
    let _ = writeln!(w, "    url: {}", q(&url));
    let _ = writeln!(
        w,
        "    auth:\n      api_key: \"${{QLIK_API_KEY}}\"       # Butler's auth.jwt.token"
    );
    let (qmc, hub) = (
        text(b, &format!("{tenant}.qlikSenseUrls.qmc")),
        text(b, &format!("{tenant}.qlikSenseUrls.hub")),
    );
    if qmc.is_some() || hub.is_some() {
        let _ = writeln!(w, "    links:");
        for (key, value) in [("qmc", qmc), ("hub", hub)] {
            if let Some(value) = value {
                let _ = writeln!(w, "      {key}: {}", q(&value));
            }
        }
    }
    let links = at(b, "genericUrls")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    if !links.is_empty() {
        let _ = writeln!(w, "\nlinks:");
        for link in &links {
            let get = |k: &str| {
                link.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let _ = writeln!(
                w,
                "  - {{id: {}, text: {}, url: {}}}",
                q(&get("id")),
                q(&get("linkText")),
                q(&get("url"))
            );
        }
    }
    let _ = writeln!(w, "\ngateway:                                   # `reload-butler gateway`, replacing Butler's cloud function");
    let prefix = text(b, &format!("{broker}.topic.appReload"))
        .unwrap_or_else(|| "qscloud/app/reload".into());
    let _ = writeln!(w, "  topic_prefix: {}", q(&prefix));
    let _ = writeln!(
        w,
        "  secrets: [\"${{QLIK_WEBHOOK_SECRET:-}}\"]   # the webhook's secret in Qlik Cloud"
    );
    let _ = writeln!(w, "\ndestinations:");
    let mut any = false;
    any |= email(w, b, &format!("{alert}.emailNotification.reloadAppFailure"));
    any |= chat(
        w,
        b,
        &format!("{alert}.slackNotification.reloadAppFailure"),
        "slack",
    );
    any |= chat(
        w,
        b,
        &format!("{alert}.teamsNotification.reloadAppFailure"),
        "teams",
    );
    if !any {
        let _ = writeln!(
            w,
            "  []   # Butler had no Qlik Cloud reload-failure alerts configured"
        );
    }
    Ok(out)
}

/// Keys every destination shares: tags, rate limit, script log lines.
fn common(w: &mut String, b: &Value, base: &str) {
    if flag(b, &format!("{base}.alertEnableByTag.enable")) {
        if let Some(tag) = text(b, &format!("{base}.alertEnableByTag.tag")) {
            let _ = writeln!(w, "    only_apps_tagged: [{}]", q(&tag));
        }
    }
    let rate = number(b, &format!("{base}.rateLimit")).unwrap_or(300);
    let _ = writeln!(w, "    rate_limit: {rate}s");
    let head = number(b, &format!("{base}.headScriptLogLines")).unwrap_or(15);
    let tail = number(b, &format!("{base}.tailScriptLogLines")).unwrap_or(25);
    let _ = writeln!(w, "    script_log: {{head: {head}, tail: {tail}}}");
}

/// A template path carried over only if the file is there; else a comment (and the stock one).
fn template(w: &mut String, key: &str, path: Option<String>) {
    match path {
        Some(p) if Path::new(&p).is_file() => {
            let _ = writeln!(w, "    {key}: {}", q(&p));
        }
        Some(p) => {
            let _ = writeln!(w, "    # {key}: {}   # Butler's template, not found here: copy it over and uncomment (stock template until then)", q(&p));
        }
        None => {}
    }
}

fn email(w: &mut String, b: &Value, base: &str) -> bool {
    if at(b, base).is_none() {
        return false;
    }
    let _ = writeln!(w, "  - name: email");
    let _ = writeln!(
        w,
        "    type: email\n    enabled: {}",
        flag(b, &format!("{base}.enable"))
    );
    common(w, b, base);
    let smtp = "emailNotification.smtp";
    let security = if flag(b, &format!("{smtp}.secure")) {
        "tls"
    } else if flag(b, &format!("{smtp}.tls.ignoreTLS")) {
        "none"
    } else {
        "starttls"
    };
    let host = text(b, &format!("{smtp}.host")).unwrap_or_else(|| "<smtp host>".into());
    let port = number(b, &format!("{smtp}.port")).unwrap_or(587);
    let _ = writeln!(
        w,
        "    smtp:\n      host: {}\n      port: {port}\n      security: {security}",
        q(&host)
    );
    if flag(b, &format!("{smtp}.auth.enable")) {
        if let Some(user) = text(b, &format!("{smtp}.auth.user")) {
            let _ = writeln!(w, "      username: {}", q(&user));
        }
        let _ = writeln!(w, "      password: \"${{SMTP_PASSWORD}}\"   # Butler's emailNotification.smtp.auth.password");
    }
    if let Some(false) = at(b, &format!("{smtp}.tls.rejectUnauthorized")).and_then(Value::as_bool) {
        let _ = writeln!(w, "      # Butler accepted any certificate (rejectUnauthorized: false); here set ca_file to the relay's CA instead.");
    }
    let from = text(b, &format!("{base}.fromAddress")).unwrap_or_else(|| "<from address>".into());
    let _ = writeln!(w, "    from: {}", q(&mailbox_text(&from)));
    if let Some(subject) = text(b, &format!("{base}.subject")) {
        if subject.contains("taskName") {
            let _ = writeln!(w, "    # Butler's subject used {{{{taskName}}}}, a client-managed field; {{{{appName}}}} is the Qlik Cloud one.");
        }
        let _ = writeln!(
            w,
            "    subject: {}",
            q(&subject.replace("{{taskName}}", "{{appName}}"))
        );
    }
    let html = match (
        text(b, &format!("{base}.bodyFileDirectory")),
        text(b, &format!("{base}.htmlTemplateFile")),
    ) {
        (Some(dir), Some(file)) => Some(format!("{}/{file}.handlebars", dir.trim_end_matches('/'))),
        _ => None,
    };
    template(w, "html_template", html);
    if let Some(priority) = text(b, &format!("{base}.priority")) {
        let _ = writeln!(w, "    priority: {}", q(&priority.to_ascii_lowercase()));
    }
    let _ = writeln!(
        w,
        "    recipients: {}",
        list(&strings(b, &format!("{base}.recipients")))
    );
    let owner = format!("{base}.appOwnerAlert");
    let _ = writeln!(
        w,
        "    app_owner:\n      enabled: {}\n      include_all: {}\n      include: {}\n      exclude: {}",
        flag(b, &format!("{owner}.enable")),
        at(b, &format!("{owner}.includeOwner.includeAll")).and_then(Value::as_bool).unwrap_or(true),
        list(&emails(b, &format!("{owner}.includeOwner.user"))),
        list(&emails(b, &format!("{owner}.excludeOwner.user"))),
    );
    true
}

fn chat(w: &mut String, b: &Value, base: &str, kind: &str) -> bool {
    if at(b, base).is_none() {
        return false;
    }
    let var = if kind == "slack" {
        "SLACK_WEBHOOK_URL"
    } else {
        "TEAMS_WEBHOOK_URL"
    };
    let _ = writeln!(w, "  - name: {kind}");
    let _ = writeln!(
        w,
        "    type: {kind}\n    enabled: {}",
        flag(b, &format!("{base}.enable"))
    );
    common(w, b, base);
    let _ = writeln!(w, "    webhook_url: \"${{{var}}}\"   # Butler's webhookURL");
    if kind == "teams"
        && text(b, &format!("{base}.webhookURL")).is_some_and(|u| u.contains("webhook.office.com"))
    {
        let _ = writeln!(w, "    # Butler used an Office 365 connector URL; those are retired: create a Teams Workflows webhook.");
    }
    let format = match text(b, &format!("{base}.messageType")).as_deref() {
        Some("basic") => "basic",
        _ => "formatted",
    };
    let _ = writeln!(w, "    format: {format}");
    if let Some(basic) = text(b, &format!("{base}.basicMsgTemplate")) {
        let _ = writeln!(w, "    basic_text: {}", q(&basic));
    }
    template(w, "template", text(b, &format!("{base}.templateFile")));
    if kind == "slack" {
        for (key, butler) in [
            ("channel", "channel"),
            ("username", "fromUser"),
            ("icon_emoji", "iconEmoji"),
        ] {
            if let Some(value) = text(b, &format!("{base}.{butler}")) {
                let _ = writeln!(
                    w,
                    "    {key}: {}   # honoured by legacy webhooks only",
                    q(&value)
                );
            }
        }
    }
    true
}
