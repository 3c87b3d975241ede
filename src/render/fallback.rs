//! The last-resort messages: what a destination sends when its own template fails, built from
//! the stock templates or with no template at all.

use serde_json::Value;

use super::chat::{basic_slack, basic_teams};
use super::context::{self, AlertInput};
use super::escape::{self, single_line, slack_entities, teams_markdown};
use super::templates::{Part, TemplateId};
use super::{alert_kind, limits, webhook, Kind, Rendered, Renderer};
use crate::config::DestinationKind;

impl Renderer {
    /// What destination `i` sends when its own template fails for an alert: the stock email
    /// templates, or the built-in basic Slack/Teams message (no template involved). An alert is
    /// never lost to a template bug.
    pub fn render_fallback(&self, i: usize, input: &AlertInput) -> Rendered {
        let d = &self.destinations[i];
        let ctx = context::build(input, &d.name, d.script_log);
        let app = ctx["appName"]
            .as_str()
            .or(ctx["appId"].as_str())
            .unwrap_or_default()
            .to_owned();
        if alert_kind(input) == Kind::Automation {
            let line = format!("Qlik Automate run failed: \"{app}\"");
            return self.stock_or_line(i, Kind::Automation, &ctx, &line);
        }
        let line = format!("Qlik Cloud reload failed: \"{app}\"");
        match &d.kind {
            DestinationKind::Email(_) => Rendered::Email {
                subject: single_line(&format!("❌ {line}")),
                html: self
                    .templates
                    .render(TemplateId::Fallback(Part::Html), &ctx)
                    .unwrap_or_else(|_| format!("<p>{}</p>", escape::html(&line))),
                text: self
                    .templates
                    .render(TemplateId::Fallback(Part::Text), &ctx)
                    .unwrap_or_else(|_| line.clone()),
            },
            _ => self.one_line(i, &line, &ctx),
        }
    }

    /// A message of one line (and the context's buttons), no template involved: the last resort.
    pub fn one_line(&self, i: usize, line: &str, ctx: &Value) -> Rendered {
        match &self.destinations[i].kind {
            DestinationKind::Email(_) => Rendered::Email {
                subject: single_line(line),
                html: format!("<p>{}</p>", escape::html(line)),
                text: line.to_owned(),
            },
            DestinationKind::Slack(_) => {
                let mut payload = basic_slack(&slack_entities(line), ctx);
                let _ = limits::fit_slack(&mut payload);
                Rendered::Slack(payload)
            }
            DestinationKind::Teams(_) => {
                let mut payload = basic_teams(&teams_markdown(line), ctx);
                let _ = limits::fit_teams(&mut payload);
                Rendered::Teams(payload)
            }
            DestinationKind::Webhook(w) => Rendered::Webhook(webhook::one_line(line, w)),
        }
    }
}
