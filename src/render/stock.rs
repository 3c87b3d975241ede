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
