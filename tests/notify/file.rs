//! `delivery.dry_run_dir`: files instead of sends, with names that stay inside the directory.

use reload_butler::config::{DestinationKind, SmtpSecurity};
use reload_butler::notify::{Notifier, Payload, SendMeta};
use serde_json::json;

use super::{destination, email_config, mail, slack_config};

#[tokio::test]
async fn dry_run_writes_eml_and_json_files_with_safe_names() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("dry-run");
    let meta = SendMeta {
        destination: "ops email",
        app_id: "../../x",
        reload_id: "r1",
        job_id: 7,
    };

    let email = DestinationKind::Email(Box::new(email_config(25, SmtpSecurity::None, None, None)));
    let file = Notifier::for_destination(&destination(email), Some(&dir)).expect("file");
    assert!(matches!(file, Notifier::File(_)));
    let receipt = file
        .send(&mail("Ops <ops@acme.com>"), &meta)
        .await
        .expect("written");
    let slack = Notifier::for_destination(
        &destination(slack_config("https://hooks.example/x".into())),
        Some(&dir),
    )
    .expect("file");
    let body = json!({"text": "ok \"quoted\"", "blocks": [{"type": "divider"}]});
    slack
        .send(&Payload::Slack { body: body.clone() }, &meta)
        .await
        .expect("written");
    let teams = Payload::Teams { body: json!({}) };
    assert!(!slack
        .send(&teams, &meta)
        .await
        .expect_err("kind")
        .is_transient());

    let outside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(outside, vec!["dry-run"], "nothing escaped the directory");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let eml = names.iter().find(|n| n.ends_with(".eml")).expect("an .eml");
    assert!(
        eml.ends_with("_ops_email_.._.._x_r1_Ops__ops@acme.com_.eml"),
        "{eml}"
    );
    assert!(
        receipt.detail.starts_with("wrote ") && receipt.detail.ends_with(eml.as_str()),
        "{receipt:?}"
    );
    let text = std::fs::read_to_string(dir.join(eml)).unwrap();
    for expected in [
        "\r\nX-Priority: 1\r\n",
        "\r\nImportance: high\r\n",
        "multipart/alternative",
        "Subject: =?utf-8?",
    ] {
        assert!(text.contains(expected), "{expected} in {text}");
    }
    let json_name = names
        .iter()
        .find(|n| n.ends_with("_ops_email_.._.._x_r1.json"))
        .expect("a .json");
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(json_name)).unwrap()).unwrap();
    assert_eq!(written, body);
}

#[tokio::test]
async fn dry_run_writes_a_webhook_body_with_its_vars_by_name() {
    let root = tempfile::tempdir().unwrap();
    let yaml = "poll: {enabled: false}\nenrich: {enabled: false}\n\
                tenants: [{id: t, url: 'https://t.example.com'}]\n\
                destinations:\n  - {name: pd, type: webhook, url: 'https://events.example/v2', template: 'stock:pagerduty', vars: {routing_key: s3cret-r0uting}}\n";
    let config = reload_butler::config::Config::from_yaml(
        yaml,
        std::path::Path::new("t.yaml"),
        &reload_butler::config::Env::new(),
    )
    .expect("config");
    let file = Notifier::for_destination(&config.destinations[0], Some(root.path())).expect("file");
    let meta = SendMeta {
        destination: "pd",
        app_id: "a1",
        reload_id: "r1",
        job_id: 1,
    };
    let body = format!(
        "{{\"routing_key\":\"{}\",\"event_action\":\"trigger\"}}",
        reload_butler::render::vars::placeholder("routing_key")
    );
    file.send(&Payload::Webhook { body }, &meta)
        .await
        .expect("written");
    let names: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].extension().and_then(|e| e.to_str()), Some("json"));
    let text = std::fs::read_to_string(&names[0]).unwrap();
    assert!(
        text.contains("\"routing_key\": \"<vars.routing_key>\""),
        "{text}"
    );
    assert!(
        !text.contains("s3cret-r0uting") && !text.contains('\u{e000}'),
        "{text}"
    );
}
