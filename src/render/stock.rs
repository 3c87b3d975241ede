//! The stock templates, built into the binary: a destination whose template key is unset uses
//! these. The same files ship in `templates/` for users to copy and edit.

pub const EMAIL_HTML: (&str, &str) = (
    "templates/email/reload-failed.html.hbs",
    include_str!("../../templates/email/reload-failed.html.hbs"),
);
pub const EMAIL_TEXT: (&str, &str) = (
    "templates/email/reload-failed.txt.hbs",
    include_str!("../../templates/email/reload-failed.txt.hbs"),
);
pub const SLACK: (&str, &str) = (
    "templates/slack/reload-failed.json.hbs",
    include_str!("../../templates/slack/reload-failed.json.hbs"),
);
pub const TEAMS: (&str, &str) = (
    "templates/teams/reload-failed.json.hbs",
    include_str!("../../templates/teams/reload-failed.json.hbs"),
);

/// The stock templates of a notice kind (digest, recovery, automation alert) for every destination type.
#[derive(Clone, Copy)]
pub struct NoticeStock {
    pub subject: &'static str,
    pub email_html: (&'static str, &'static str),
    pub email_text: (&'static str, &'static str),
    pub slack: (&'static str, &'static str),
    pub teams: (&'static str, &'static str),
}

pub const DIGEST: NoticeStock = NoticeStock {
    subject: crate::config::DIGEST_SUBJECT,
    email_html: (
        "templates/email/digest.html.hbs",
        include_str!("../../templates/email/digest.html.hbs"),
    ),
    email_text: (
        "templates/email/digest.txt.hbs",
        include_str!("../../templates/email/digest.txt.hbs"),
    ),
    slack: (
        "templates/slack/digest.json.hbs",
        include_str!("../../templates/slack/digest.json.hbs"),
    ),
    teams: (
        "templates/teams/digest.json.hbs",
        include_str!("../../templates/teams/digest.json.hbs"),
    ),
};

pub const RECOVERY: NoticeStock = NoticeStock {
    subject: crate::config::RECOVERY_SUBJECT,
    email_html: (
        "templates/email/recovered.html.hbs",
        include_str!("../../templates/email/recovered.html.hbs"),
    ),
    email_text: (
        "templates/email/recovered.txt.hbs",
        include_str!("../../templates/email/recovered.txt.hbs"),
    ),
    slack: (
        "templates/slack/recovered.json.hbs",
        include_str!("../../templates/slack/recovered.json.hbs"),
    ),
    teams: (
        "templates/teams/recovered.json.hbs",
        include_str!("../../templates/teams/recovered.json.hbs"),
    ),
};

pub const AUTOMATION: NoticeStock = NoticeStock {
    subject: crate::config::AUTOMATION_SUBJECT,
    email_html: (
        "templates/email/automation-failed.html.hbs",
        include_str!("../../templates/email/automation-failed.html.hbs"),
    ),
    email_text: (
        "templates/email/automation-failed.txt.hbs",
        include_str!("../../templates/email/automation-failed.txt.hbs"),
    ),
    slack: (
        "templates/slack/automation-failed.json.hbs",
        include_str!("../../templates/slack/automation-failed.json.hbs"),
    ),
    teams: (
        "templates/teams/automation-failed.json.hbs",
        include_str!("../../templates/teams/automation-failed.json.hbs"),
    ),
};

/// The built-in webhook templates, by the name a template key gives them (`stock:NAME`).
const WEBHOOK: &[(&str, (&str, &str))] = &[
    (
        "pagerduty",
        (
            "templates/webhook/pagerduty.json.hbs",
            include_str!("../../templates/webhook/pagerduty.json.hbs"),
        ),
    ),
    (
        "pagerduty-recovered",
        (
            "templates/webhook/pagerduty-recovered.json.hbs",
            include_str!("../../templates/webhook/pagerduty-recovered.json.hbs"),
        ),
    ),
    (
        "google-chat",
        (
            "templates/webhook/google-chat.json.hbs",
            include_str!("../../templates/webhook/google-chat.json.hbs"),
        ),
    ),
    (
        "google-chat-recovered",
        (
            "templates/webhook/google-chat-recovered.json.hbs",
            include_str!("../../templates/webhook/google-chat-recovered.json.hbs"),
        ),
    ),
];

/// The built-in webhook template `name` (its shipped path and text).
pub fn webhook(name: &str) -> Option<(&'static str, &'static str)> {
    WEBHOOK.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// Every stock template of a destination's own (not the webhooks'), for tests that go through
/// all of them.
#[cfg(test)]
pub fn all() -> Vec<(&'static str, &'static str)> {
    let mut all = vec![EMAIL_HTML, EMAIL_TEXT, SLACK, TEAMS];
    for notice in [DIGEST, RECOVERY, AUTOMATION] {
        all.extend([
            notice.email_html,
            notice.email_text,
            notice.slack,
            notice.teams,
        ]);
    }
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_stock_webhook_name_the_config_accepts_is_built_in() {
        for name in crate::config::STOCK_WEBHOOK_TEMPLATES {
            assert!(super::webhook(name).is_some(), "{name}");
        }
        assert_eq!(
            super::WEBHOOK.len(),
            crate::config::STOCK_WEBHOOK_TEMPLATES.len()
        );
    }
}
