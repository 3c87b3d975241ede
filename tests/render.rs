//! Rendering: golden files of the stock templates × fixture events × enrichment levels, hostile
//! content that must never break a payload, and every documented field filled.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a panic fails the test"
)]

use std::path::{Path, PathBuf};

use reload_butler::config::{Config, Env};
use reload_butler::notify::Payload;
use reload_butler::qlik::event::EventKind;
use reload_butler::qlik::event::{decode, ReloadEvent};
use reload_butler::qlik::model::Enrichment;
use reload_butler::render::context::{self, AlertInput, Contexts};
use reload_butler::render::limits::{
    SLACK_FIELD_CHARS, SLACK_HEADER_CHARS, SLACK_MAX_BLOCKS, SLACK_SECTION_CHARS, TEAMS_MAX_BYTES,
};
use reload_butler::render::{sample, Kind, Rendered, Renderer};
use serde_json::Value;

const CONFIG: &str = r#"
timezone: Europe/Stockholm
poll: {enabled: false}
enrich: {enabled: false}
tenants:
  - id: xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct
    comment: Production EU
    url: https://acme-analytics.eu.qlikcloud.com
links:
  - {id: runbook, text: Runbook, url: "https://wiki.acme.com/qlik-runbook?team=bi&lang=en"}
destinations:
  - {name: ops-email, type: email, from: "Qlik alerts <qlik@acme.com>", recipients: [ops@acme.com], smtp: {host: smtp.acme.com}}
  - {name: data-slack, type: slack, webhook_url: "https://hooks.slack.com/services/T0/B0/x"}
  - {name: ops-teams, type: teams, webhook_url: "https://x.logic.azure.com/workflows/y"}
  - {name: slack-basic, type: slack, format: basic, webhook_url: "https://hooks.slack.com/services/T0/B0/y"}
  - {name: teams-basic, type: teams, format: basic, webhook_url: "https://x.logic.azure.com/workflows/z"}
  - {name: pagerduty, type: webhook, url: "https://events.pagerduty.com/v2/enqueue", template: "stock:pagerduty", vars: {routing_key: R0UT1NGKEY}}
  - {name: google-chat, type: webhook, url: "https://chat.googleapis.com/v1/spaces/S/messages?key=k", template: "stock:google-chat"}
"#;

fn config(yaml: &str) -> Config {
    Config::from_yaml(yaml, Path::new("render-test.yaml"), &Env::new()).expect("test config")
}

fn fixture_event(name: &str) -> ReloadEvent {
    let path = format!(
        "{}/tests/fixtures/events/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    decode(&std::fs::read(&path).expect("fixture")).expect("decodes")
}

fn input<'a>(
    config: &'a Config,
    event: &'a ReloadEvent,
    enrichment: &'a Enrichment,
) -> AlertInput<'a> {
    AlertInput {
        event,
        enrichment,
        tenant: config.tenants.iter().find(|t| t.id == event.tenant_id),
        links: &config.links,
        timezone: config.timezone.as_ref(),
        remembered_name: None,
    }
}

fn partial() -> Enrichment {
    let full = sample::enrichment();
    Enrichment {
        app: full.app,
        owner: full.owner,
        failures: vec![reload_butler::qlik::model::LookupFailure {
            lookup: "script_log".into(),
            error: "404 Not Found".into(),
        }],
        ..Enrichment::default()
    }
}

/// Compares `text` with the golden file, or writes it when UPDATE_GOLDEN is set.
fn golden(name: &str, text: &str) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", name]
        .iter()
        .collect();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
        std::fs::write(&path, text).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert!(
        expected == text,
        "{} differs from the rendered output (UPDATE_GOLDEN=1 to accept):\n{text}",
        path.display()
    );
}

#[test]
fn stock_templates_match_their_golden_files() {
    let config = config(CONFIG);
    let renderer = Renderer::new(&config).expect("templates compile");
    let cases = [
        (
            "legacy-full",
            "app-reload-finished-error.json",
            sample::enrichment(),
        ),
        (
            "hybrid-full",
            "app-reload-finished-error.hybrid-UNCONFIRMED.json",
            sample::enrichment(),
        ),
        (
            "cloudevents-full",
            "app-reload-finished-error.cloudevents.json",
            sample::enrichment(),
        ),
        (
            "reload-finished-full",
            "reload-finished-failed.json",
            sample::enrichment(),
        ),
        (
            "legacy-partial",
            "app-reload-finished-error.json",
            partial(),
        ),
        (
            "legacy-none",
            "app-reload-finished-error.json",
            Enrichment::default(),
        ),
        (
            "reload-finished-none",
            "reload-finished-failed.json",
            Enrichment::default(),
        ),
        (
            "automation-full",
            "automation-run-ended-failed.json",
            sample::automation().1,
        ),
        (
            "automation-none",
            "automation-run-ended-failed.json",
            Enrichment::default(),
        ),
    ];
    for (case, file, enrichment) in cases {
        let event = fixture_event(file);
        let input = input(&config, &event, &enrichment);
        for (i, d) in renderer.destinations().iter().enumerate() {
            kept_as_rendered_is_what_the_full_path_makes(&renderer, i, &input, case);
            match renderer
                .render(i, &input)
                .unwrap_or_else(|e| panic!("{case}/{}: {e}", d.name))
            {
                Rendered::Email {
                    subject,
                    html,
                    text,
                } => {
                    golden(&format!("{case}.{}.html", d.name), &html);
                    golden(
                        &format!("{case}.{}.txt", d.name),
                        &format!("Subject: {subject}\n\n{text}"),
                    );
                }
                Rendered::Slack(payload) | Rendered::Teams(payload) => {
                    let pretty = serde_json::to_string_pretty(&payload).expect("json");
                    golden(&format!("{case}.{}.json", d.name), &format!("{pretty}\n"));
                }
                Rendered::ChatText { .. } => panic!("render gives chat messages as trees"),
                Rendered::Webhook(body) => {
                    assert!(!body.contains("R0UT1NGKEY"), "vars are filled in when sent");
                    let shown = reload_butler::render::vars::shown(&body);
                    golden(&format!("{case}.{}.json", d.name), &format!("{shown}\n"));
                }
            }
        }
    }
}

/// The routing path keeps a stock JSON chat message as its rendered text: the same message
/// and the same stored payload as rendering, fitting and encoding the tree.
fn kept_as_rendered_is_what_the_full_path_makes(
    renderer: &Renderer,
    i: usize,
    input: &AlertInput,
    case: &str,
) {
    let d = &renderer.destinations()[i];
    let shared = renderer
        .render_shared(i, &mut Contexts::new(input))
        .unwrap_or_else(|e| panic!("{case}/{}: {e}", d.name));
    let kind = match input.event.kind {
        EventKind::AutomationRun => Kind::Automation,
        EventKind::EngineAttempt | EventKind::FinalOutcome => Kind::Alert,
    };
    let (full, _) = renderer
        .render_kind(i, kind, &context::build(input, &d.name, d.script_log))
        .unwrap_or_else(|e| panic!("{case}/{}: {e}", d.name));
    // `format: basic` destinations send the JSON template for automation runs.
    let json_chat = match d.name.as_str() {
        "data-slack" | "ops-teams" => true,
        "slack-basic" | "teams-basic" => kind == Kind::Automation,
        _ => false,
    };
    assert_eq!(
        matches!(shared, Rendered::ChatText { .. }),
        json_chat,
        "{case}/{}: kept as rendered",
        d.name
    );
    let to = if matches!(full, Rendered::Email { .. }) {
        "ops@acme.com"
    } else {
        ""
    };
    assert_eq!(
        Payload::decode(&Payload::encode_for(&shared, to)).expect("stored payload decodes"),
        Payload::to(&full, to),
        "{case}/{}",
        d.name
    );
    assert_eq!(shared.tree(), full, "{case}/{}", d.name);
}

fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

fn check_slack(payload: &Value) {
    let blocks = payload["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= SLACK_MAX_BLOCKS);
    for block in blocks {
        match block["type"].as_str() {
            Some("header") => assert!(
                block["text"]["text"].as_str().expect("t").chars().count() <= SLACK_HEADER_CHARS
            ),
            Some("section") => {
                if let Some(t) = block["text"]["text"].as_str() {
                    assert!(t.chars().count() <= SLACK_SECTION_CHARS && !t.is_empty());
                }
                for f in block["fields"].as_array().into_iter().flatten() {
                    let t = f["text"].as_str().expect("field text");
                    assert!(t.chars().count() <= SLACK_FIELD_CHARS && !t.is_empty());
                }
            }
            _ => {}
        }
    }
}

#[test]
fn hostile_content_never_breaks_a_payload() {
    let config = config(CONFIG);
    let renderer = Renderer::new(&config).expect("templates compile");
    let (event, enrichment) = sample::hostile();
    let input = input(&config, &event, &enrichment);
    for (i, d) in renderer.destinations().iter().enumerate() {
        match renderer
            .render(i, &input)
            .unwrap_or_else(|e| panic!("{}: {e}", d.name))
        {
            Rendered::Email {
                subject,
                html,
                text,
            } => {
                assert!(
                    !subject.contains('\n') && !subject.contains('\r'),
                    "subject is one line"
                );
                assert!(
                    !subject.contains("&lt;") && !subject.contains("&quot;"),
                    "subject is plain text: {subject}"
                );
                assert!(
                    subject.contains("<script>"),
                    "subject shows the text literally"
                );
                assert!(!html.contains("<script>alert"), "HTML escapes values");
                assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
                assert!(
                    html.contains("{{appName}}"),
                    "a value is never rendered as a template"
                );
                assert!(
                    text.contains("<script>alert(1)</script>"),
                    "text body is literal"
                );
            }
            Rendered::Slack(payload) => {
                let serialized = serde_json::to_string(&payload).expect("json");
                assert!(serde_json::from_str::<Value>(&serialized).is_ok());
                check_slack(&payload);
                let mut all = Vec::new();
                strings(&payload, &mut all);
                let joined = all.join("\n");
                assert!(
                    !joined.contains("<script>"),
                    "Slack texts carry & < > as entities"
                );
                assert!(joined.contains("&lt;script&gt;"));
                assert!(
                    joined.contains("Q\"uote\\back"),
                    "quotes and backslashes arrive intact"
                );
            }
            Rendered::Webhook(body) => check_webhook(&d.name, &body),
            Rendered::Teams(payload) => {
                let bytes = serde_json::to_vec(&payload).expect("json");
                assert!(bytes.len() <= TEAMS_MAX_BYTES, "{} bytes", bytes.len());
                let mut all = Vec::new();
                strings(&payload, &mut all);
                // Markdown escapes (`\<`) take the meaning away; the text is all there.
                assert!(
                    all.iter()
                        .any(|s| s.replace('\\', "").contains("<script>alert(1)</script>")),
                    "Teams text is literal"
                );
            }
            Rendered::ChatText { .. } => panic!("render gives chat messages as trees"),
        }
    }
}

/// The stock webhook bodies with the hostile sample: JSON, PagerDuty's required fields within
/// its limits, and Google Chat's card texts with `<` `>` `&` as entities (they read HTML).
fn check_webhook(name: &str, body: &str) {
    let payload: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut all = Vec::new();
    strings(&payload, &mut all);
    assert!(
        all.iter().any(|s| s.contains("Q\"uote\\back")),
        "{name}: quotes and backslashes arrive intact"
    );
    // A value from Qlik never poses as a webhook variable: only the template's own stays.
    let own = usize::from(name == "pagerduty");
    assert_eq!(body.matches('\u{e000}').count(), own, "{name}");
    match name {
        "pagerduty" => {
            assert_eq!(payload["event_action"], "trigger");
            assert_eq!(payload["routing_key"], "\u{e000}routing_key\u{e001}");
            let summary = payload["payload"]["summary"].as_str().expect("summary");
            assert!(
                summary.chars().count() <= 1024,
                "{}",
                summary.chars().count()
            );
            assert!(
                summary.ends_with('…'),
                "the hostile message is cut: {summary}"
            );
            for key in ["source", "severity"] {
                assert!(
                    !payload["payload"][key].as_str().expect(key).is_empty(),
                    "{key}"
                );
            }
            assert_eq!(payload["payload"]["severity"], "error");
            let dedup = payload["dedup_key"].as_str().expect("dedup_key");
            assert!(dedup.starts_with("reload-butler/"), "{dedup}");
        }
        "google-chat" => {
            // Google Chat refuses messages over 32,000 bytes.
            assert!(body.len() <= 32_000, "{} bytes", body.len());
            let widgets = &payload["cardsV2"][0]["card"]["sections"];
            let texts = serde_json::to_string(widgets).expect("json")
                + payload["text"].as_str().expect("text");
            assert!(!texts.contains("<script>"), "card texts carry entities");
            assert!(texts.contains("&lt;script&gt;"), "{texts}");
        }
        other => panic!("no check for {other}"),
    }
}

/// Every field of docs/templates.md, in a text template; none may render empty for the full
/// fixture with full enrichment.
const FIELDS: &[&str] = &[
    "tenantId",
    "tenantComment",
    "tenantUrl",
    "userId",
    "appId",
    "appName",
    "appDescription",
    "appUrl",
    "appHasSectionAccess",
    "appIsPublished",
    "appThumbnail",
    "appOwnerName",
    "appOwnerUserId",
    "appOwnerPicture",
    "appOwnerEmail",
    "reloadTrigger",
    "source",
    "eventType",
    "eventTypeVersion",
    "endedWithMemoryConstraint",
    "isDirectQueryMode",
    "isPartialReload",
    "isSessionApp",
    "isSkipStore",
    "reloadId",
    "rowLimit",
    "status",
    "usageDuration",
    "peakMemoryBytes",
    "sizeMemoryBytes",
    "appFileSize",
    "errorCode",
    "errorMessage",
    "logMessage",
    "executionDuration.hours",
    "executionDuration.minutes",
    "executionDuration.seconds",
    "executionStartTime.startTimeUTC",
    "executionStartTime.startTimeLocal1",
    "executionStartTime.startTimeLocal2",
    "executionStartTime.startTimeLocal3",
    "executionStartTime.startTimeLocal4",
    "executionStartTime.startTimeLocal5",
    "executionStopTime.stopTimeUTC",
    "executionStopTime.stopTimeLocal1",
    "executionStopTime.stopTimeLocal2",
    "executionStopTime.stopTimeLocal3",
    "executionStopTime.stopTimeLocal4",
    "executionStopTime.stopTimeLocal5",
    "executionStatusText",
    "scriptLogSize",
    "scriptLogSizeRows",
    "scriptLogSizeCharacters",
    "scriptLogHead",
    "scriptLogTail",
    "scriptLogHeadCount",
    "scriptLogTailCount",
    "qlikSenseQMC",
    "qlikSenseHub",
    "spaceId",
    "spaceName",
    "spaceType",
    "destinationName",
    "eventId",
    "eventTime",
    "failure",
    "appTags.[0]",
    "engineErrors.[0]",
    "genericUrls.[0].id",
    "genericUrls.[0].linkText",
    "genericUrls.[0].url",
    "buttons.[0].text",
    "buttons.[0].url",
];

#[test]
fn every_documented_field_is_filled_for_the_full_fixture() {
    let template: String = FIELDS
        .iter()
        .map(|f| format!("{f}=[{{{{{f}}}}}]\n"))
        .collect();
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("all-fields.txt.hbs");
    std::fs::write(&path, &template).expect("write template");
    let yaml = format!(
        "{CONFIG}  - {{name: all, type: email, from: a@acme.com, recipients: [b@acme.com], smtp: {{host: h.acme.com}}, text_template: '{}', subject: '{{{{appName}}}}'}}\n",
        path.display()
    );
    let config = config(&yaml);
    let renderer = Renderer::new(&config).expect("templates compile");
    let event = fixture_event("app-reload-finished-error.json");
    let enrichment = sample::enrichment();
    let Rendered::Email { text, .. } = renderer
        .render_for("all", &input(&config, &event, &enrichment))
        .expect("renders")
    else {
        panic!("email expected");
    };
    for field in FIELDS {
        let at = text
            .find(&format!("{field}=["))
            .unwrap_or_else(|| panic!("{field} missing"));
        let value = &text[at + field.len() + 2..];
        assert!(!value.starts_with(']'), "{field} is empty");
        assert!(
            !value.starts_with("null") && !value.starts_with("undefined"),
            "{field}: {value}"
        );
    }
    // Missing sources render empty, never "null".
    let none = Enrichment::default();
    let Rendered::Email { text, .. } = renderer
        .render_for("all", &input(&config, &event, &none))
        .expect("renders")
    else {
        panic!("email expected");
    };
    assert!(text.contains("appOwnerName=[]"));
    assert!(
        !text.contains("null") && !text.contains("undefined"),
        "{text}"
    );
}

#[test]
fn a_broken_template_names_its_file_and_line() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("broken.json.hbs");
    std::fs::write(&path, "{\n  \"text\": \"{{#if appName}}x\"\n}\n").expect("write");
    let yaml = format!("{CONFIG}  - {{name: broken, type: slack, webhook_url: 'https://h.example.com/x', template: '{}'}}\n", path.display());
    let problems = Renderer::new(&config(&yaml)).err().expect("compile error");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "destinations[7].template");
    assert!(
        problems[0]
            .message
            .contains(&format!("{}:", path.display())),
        "{}",
        problems[0].message
    );

    std::fs::write(&path, "{\"text\": \"{{appName}}\",}").expect("write");
    let renderer = Renderer::new(&config(&yaml)).expect("compiles");
    let event = fixture_event("app-reload-finished-error.json");
    let enrichment = Enrichment::default();
    let err = renderer
        .render_for(
            "broken",
            &input(&renderer_config(&yaml), &event, &enrichment),
        )
        .expect_err("invalid JSON");
    assert!(
        err.to_string().contains("did not produce valid JSON"),
        "{err}"
    );
}

fn renderer_config(yaml: &str) -> Config {
    config(yaml)
}

/// A template written the way Butler's stock Slack templates are: triple-stash everywhere,
/// dotted paths, `{{#each genericUrls}}`, and `eq`. It must render valid JSON here too.
const BUTLER_STYLE: &str = r#"{
  "blocks": [
    { "type": "header", "text": { "type": "plain_text", "text": "Qlik Sense Cloud app reload failed" } },
    { "type": "section", "text": { "type": "mrkdwn", "text": "*App*: {{{appName}}}\n*Tenant*: {{tenantId}}\n*Duration*: {{executionDuration.hours}}:{{executionDuration.minutes}}:{{executionDuration.seconds}}\n*Log*: {{{logMessage}}}" } },
    { "type": "actions", "elements": [
      {{#each genericUrls}}{{#if (eq id "runbook")}}{ "type": "button", "text": { "type": "plain_text", "text": "{{linkText}}" }, "url": "{{{url}}}" }{{/if}}{{/each}}
    ] }
  ]
}"#;

#[test]
fn a_butler_style_template_renders_valid_json_with_hostile_values() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("butler.json.hbs");
    std::fs::write(&path, BUTLER_STYLE).expect("write");
    let yaml = format!("{CONFIG}  - {{name: butler, type: slack, webhook_url: 'https://h.example.com/x', template: '{}'}}\n", path.display());
    let config = config(&yaml);
    let renderer = Renderer::new(&config).expect("compiles");
    let (event, enrichment) = sample::hostile();
    let Rendered::Slack(payload) = renderer
        .render_for("butler", &input(&config, &event, &enrichment))
        .expect("renders")
    else {
        panic!("slack expected");
    };
    check_slack(&payload);
    let button = &payload["blocks"][2]["elements"][0];
    assert_eq!(button["text"]["text"], "Runbook");
    assert_eq!(
        button["url"], "https://wiki.acme.com/qlik-runbook?team=bi&lang=en",
        "URLs keep their &"
    );
    let text = payload["blocks"][1]["text"]["text"].as_str().expect("text");
    assert!(
        text.contains("Q\"uote\\back") && text.contains("&lt;script&gt;"),
        "{text}"
    );
}

#[test]
fn a_plain_text_webhook_gets_values_as_they_are() {
    let yaml = format!(
        "{CONFIG}  - {{name: pager-sms, type: webhook, url: 'https://sms.acme.com/send', content_type: text/plain, template: '{}'}}\n",
        {
            let path = std::env::temp_dir().join(format!("rb-plain-{}.hbs", std::process::id()));
            std::fs::write(&path, "{{appName}} failed: {{truncate errorMessage 20}}").expect("write");
            path.display().to_string()
        }
    );
    let config = config(&yaml);
    let renderer = Renderer::new(&config).expect("templates compile");
    let (event, enrichment) = sample::hostile();
    let Rendered::Webhook(body) = renderer
        .render_for("pager-sms", &input(&config, &event, &enrichment))
        .expect("renders")
    else {
        panic!("a webhook body");
    };
    assert!(
        body.starts_with("Q\"uote\\back"),
        "no JSON escaping: {body}"
    );
    assert!(
        body.contains("<script>alert(1)</script>"),
        "no HTML escaping: {body}"
    );
    assert!(
        !body.contains('\u{e000}'),
        "placeholder marks are taken out of Qlik values"
    );
    assert!(body.ends_with('…'), "{body}");
}
