//! The sample failure that `check` renders every template with, and a hostile twin whose every
//! text holds what breaks payloads (quotes, backslashes, control characters, markup, emoji, a
//! 2 MB script log), so a template that cannot survive it fails before the first real alert.

use crate::qlik::event::{decode, ReloadEvent};
use crate::qlik::model::{
    AppInfo, AutomationInfo, Enrichment, ItemInfo, ReloadInfo, SpaceInfo, UserInfo,
};

const EVENT: &[u8] = include_bytes!("../../tests/fixtures/events/app-reload-finished-error.json");
const AUTOMATION_EVENT: &[u8] =
    include_bytes!("../../tests/fixtures/events/automation-run-ended-failed.json");
const SCRIPT_LOG: &str = "2025-03-14 06:12:31 0000  Execution started.\r\n\
2025-03-14 06:12:31 0000  Qlik Sense Server Version 14.212.9\r\n\
2025-03-14 06:12:31 0000  ReloadID: 67d3c8f1a2b4c5d6e7f80912\r\n\
2025-03-14 06:12:32      0014  Characters:\r\n\
2025-03-14 06:12:32      0015  Load Chr(RecNo()+Ord('A')-1) as Alpha, RecNo() as Num autogenerate 26\r\n\
2025-03-14 06:12:32            26 lines fetched\r\n\
2025-03-14 06:12:39      0042  ThisFailsForSure\r\n\
2025-03-14 06:12:39      Error: Unknown statement: ThisFailsForSure\r\n\
2025-03-14 06:12:39      Execution Failed\r\n\
2025-03-14 06:12:40      Execution finished.\r\n";

/// A text holding everything that breaks JSON, HTML, Slack mrkdwn or email headers.
pub const HOSTILE: &str = "Q\"uote\\back\nnew\r\nline\ttab\u{0}\u{7}\u{1b} <script>alert(1)</script> & &amp; {{appName}} ``` *bold* 🚀 \u{202e}gnp.exe\u{202c} \u{2066}שלום\u{2069} <!channel> [click me](http://evil.example/phish) ![x](http://evil.example/x.png) Sales](http://evil.example/phish) [Q1 <http://evil.example/auto> \u{E000}routing_key\u{E001}";

/// An owner address as the users API could return it, with a CRLF and a mailto query.
pub const HOSTILE_EMAIL: &str =
    "jane@example.com?body=phish&cc=all@acme.com\r\nBcc: x@evil.example";

/// The sample failure: the fixture event with a complete enrichment.
pub fn event() -> ReloadEvent {
    // The fixture is part of the binary and decodes (tests/decode.rs); a failure here is a bug.
    match decode(EVENT) {
        Ok(event) => event,
        Err(error) => unreachable!("built-in sample event does not decode: {error}"),
    }
}

pub fn enrichment() -> Enrichment {
    Enrichment {
        reload: Some(ReloadInfo {
            status: Some("FAILED".into()),
            trigger: Some("chronos".into()),
            error_code: Some("EngineReloadScriptError".into()),
            error_message: Some("error in app script or datasource".into()),
            log: Some("ReloadID: 67d3c8f1a2b4c5d6e7f80912\r\nStarted loading data\r\nThe following error occurred:\r\nUnknown statement: ThisFailsForSure\r\n".into()),
            user_id: Some("6601a9b8c7d6e5f4a3b2c1d0".into()),
            partial: Some(false),
            creation_time: None,
            start_time: "2025-03-14T06:12:31.904Z".parse().ok(),
            end_time: "2025-03-14T06:12:40.322Z".parse().ok(),
            resource_type: Some("reload-tasks".into()),
            resource_id: Some("67d3c8f1a2b4c5d6e7f80aa1".into()),
            weight: Some(1),
        }),
        app: Some(AppInfo {
            name: Some("Sales Dashboard <EU> & \"Nordics\"".into()),
            description: Some("Daily sales KPIs for EU region".into()),
            thumbnail: Some("/api/v1/apps/8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43/media/content/default/thumb.png".into()),
            has_section_access: Some(false),
            publish_time: Some(String::new()),
            owner_id: Some("65f1c2d3e4a5b6c7d8e9f012".into()),
            space_id: Some("6628d931342648bd8b3de5af".into()),
            usage: Some("ANALYTICS".into()),
            is_direct_query_mode: Some(false),
        }),
        item: Some(ItemInfo {
            tags: vec!["finance".into(), "alert-owner".into()],
            app_file_size: Some(41_943_040),
            app_memory_size: Some(183_500_800),
            space_id: Some("6628d931342648bd8b3de5af".into()),
            open_url: None,
        }),
        owner: Some(UserInfo {
            id: "65f1c2d3e4a5b6c7d8e9f012".into(),
            name: Some("Jane Doe".into()),
            email: Some("jane.doe@example.com".into()),
            picture: Some("https://s.gravatar.com/avatar/0c1d2e3f4a5b6c7d8e9f?s=480".into()),
        }),
        user: Some(UserInfo {
            id: "6601a9b8c7d6e5f4a3b2c1d0".into(),
            name: Some("Sam Scheduler".into()),
            email: Some("sam.scheduler@example.com".into()),
            picture: None,
        }),
        space: Some(SpaceInfo {
            id: "6628d931342648bd8b3de5af".into(),
            name: Some("Finance EU".into()),
            kind: Some("shared".into()),
        }),
        script_log: Some(SCRIPT_LOG.into()),
        automation: None,
        failures: Vec::new(),
    }
}

/// The sample with every text field replaced by [`HOSTILE`] and a 2 MB script log.
pub fn hostile() -> (ReloadEvent, Enrichment) {
    let mut event = event();
    event.app_name = Some(HOSTILE.into());
    event.error_code = Some(HOSTILE.into());
    event.error_message = Some(HOSTILE.repeat(200));
    event.errors = vec![serde_json::json!({"qDescription": HOSTILE})];
    event.warnings = vec![serde_json::json!({"qDescription": HOSTILE}), HOSTILE.into()];
    let mut enrichment = enrichment();
    if let Some(reload) = enrichment.reload.as_mut() {
        reload.log = Some(HOSTILE.repeat(500));
        reload.trigger = Some(HOSTILE.into());
    }
    if let Some(app) = enrichment.app.as_mut() {
        app.name = Some(HOSTILE.into());
    }
    if let Some(owner) = enrichment.owner.as_mut() {
        owner.name = Some(HOSTILE.into());
        owner.email = Some(HOSTILE_EMAIL.into());
    }
    if let Some(space) = enrichment.space.as_mut() {
        space.name = Some(HOSTILE.into());
    }
    if let Some(item) = enrichment.item.as_mut() {
        item.tags = vec![HOSTILE.into(), "<b>".into()];
    }
    let line = format!("{HOSTILE} {}\r\n", "x".repeat(200));
    enrichment.script_log = Some(line.repeat(2 * 1024 * 1024 / line.len() + 1));
    (event, enrichment)
}

/// The sample automation failure (a Qlik Automate run), with what the API adds.
pub fn automation() -> (ReloadEvent, Enrichment) {
    let event = match decode(AUTOMATION_EVENT) {
        Ok(event) => event,
        Err(error) => unreachable!("built-in sample automation event does not decode: {error}"),
    };
    let full = enrichment();
    let enrichment = Enrichment {
        automation: Some(AutomationInfo {
            name: Some("Nightly CRM export".into()),
            description: Some("Pushes yesterday's opportunities to the CRM".into()),
            owner_id: Some("65f1c2d3e4a5b6c7d8e9f012".into()),
            space_id: Some("6628d931342648bd8b3de5af".into()),
            run_mode: Some("scheduled".into()),
            state: Some("available".into()),
        }),
        owner: full.owner,
        user: full.user,
        ..Enrichment::default()
    };
    (event, enrichment)
}

/// The automation sample with every text replaced by [`HOSTILE`].
pub fn hostile_automation() -> (ReloadEvent, Enrichment) {
    let (mut event, mut enrichment) = automation();
    event.app_name = Some(HOSTILE.into());
    event.trigger = Some(HOSTILE.into());
    event.errors = vec![serde_json::json!({"message": HOSTILE.repeat(200)})];
    if let Some(automation) = enrichment.automation.as_mut() {
        automation.name = Some(HOSTILE.into());
        automation.description = Some(HOSTILE.into());
    }
    for user in [enrichment.owner.as_mut(), enrichment.user.as_mut()]
        .into_iter()
        .flatten()
    {
        user.name = Some(HOSTILE.into());
        user.email = Some(HOSTILE_EMAIL.into());
    }
    (event, enrichment)
}
