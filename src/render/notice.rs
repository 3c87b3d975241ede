//! Messages other than one alert: storm digests (many failures in one message) and recovery
//! notices (an app that alerted reloads successfully again). Both never fail to render: a broken
//! template falls back to the stock one, and that to a single line.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::context::local_formats;
use super::escape::{self, single_line};
use super::{Kind, Rendered, Renderer};
use crate::config::DestinationKind;
use crate::zone::Zone;

/// The fields of an alert's context that a digest lists for it.
const ITEM_KEYS: &[&str] = &[
    "tenantId",
    "tenantComment",
    "appId",
    "alertKind",
    "appName",
    "appUrl",
    "spaceId",
    "spaceName",
    "appOwnerName",
    "appOwnerUserId",
    "appOwnerEmail",
    "reloadId",
    "errorCode",
    "errorMessage",
    "executionStatusText",
    "executionStopTime",
];
/// An item's error message is cut here: a digest is a list, the alert itself has the details.
const ITEM_MESSAGE_CHARS: usize = 300;
/// Most items a chat digest tries to list before it measures; fewer when they do not fit.
const SLACK_MAX_ITEMS: usize = 45;
const TEAMS_MAX_ITEMS: usize = 60;

/// What a digest lists of one alert, taken from the alert's own template context.
pub fn digest_item(alert_ctx: &Value) -> Value {
    let mut item = Map::new();
    for key in ITEM_KEYS {
        item.insert((*key).to_owned(), alert_ctx[*key].clone());
    }
    if let Some(Value::String(message)) = item.get_mut("errorMessage") {
        if let Some((at, _)) = message.char_indices().nth(ITEM_MESSAGE_CHARS) {
            message.truncate(at);
            message.push('…');
        }
    }
    Value::Object(item)
}

/// One digest: the alerts it stands for and the window they arrived in.
pub struct Digest<'a> {
    pub items: &'a [Value],
    pub threshold: usize,
    pub window: Duration,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub timezone: Option<&'a Zone>,
}

impl Digest<'_> {
    /// The template context listing the first `shown` items.
    pub fn context(&self, shown: usize, destination: &str) -> Value {
        let shown = shown.min(self.items.len());
        json!({
            "destinationName": destination,
            "count": self.items.len(),
            "shown": shown,
            "more": self.items.len() - shown,
            "threshold": self.threshold,
            "windowSeconds": self.window.as_secs(),
            "windowStart": local(self.first_at, self.timezone),
            "windowEnd": local(self.last_at, self.timezone),
            "alerts": &self.items[..shown],
        })
    }
}

/// What a recovery notice says beyond the app: how long it failed and how often.
pub struct Recovery {
    pub failing_since: DateTime<Utc>,
    pub recovered_at: DateTime<Utc>,
    pub failures: u64,
    pub timezone: Option<Zone>,
}

impl Recovery {
    /// Adds the recovery fields to the context built from the successful reload's event.
    pub fn extend(&self, ctx: &mut Value) {
        let failing = (self.recovered_at - self.failing_since)
            .to_std()
            .unwrap_or_default();
        if let Some(map) = ctx.as_object_mut() {
            map.insert(
                "failingSince".into(),
                json!(local(self.failing_since, self.timezone.as_ref())),
            );
            map.insert(
                "failingSinceUTC".into(),
                json!(self
                    .failing_since
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
            map.insert("failingFor".into(), json!(human(failing)));
            map.insert("failingForSeconds".into(), json!(failing.as_secs()));
            map.insert("failures".into(), json!(self.failures));
            map.insert("failuresPlural".into(), json!(self.failures != 1));
            map.insert(
                "recoveredAt".into(),
                json!(local(self.recovered_at, self.timezone.as_ref())),
            );
        }
    }
}

impl Renderer {
    /// The digest for destination `i`. Email lists every alert; Slack and Teams list as many as
    /// fit in one message uncut, and the template says "and N more" for the rest.
    pub fn render_digest(&self, i: usize, digest: &Digest) -> Rendered {
        let d = &self.destinations[i];
        let mut shown = match d.kind {
            DestinationKind::Email(_) | DestinationKind::Webhook(_) => digest.items.len(),
            DestinationKind::Slack(_) => digest.items.len().min(SLACK_MAX_ITEMS),
            DestinationKind::Teams(_) => digest.items.len().min(TEAMS_MAX_ITEMS),
        };
        loop {
            let ctx = digest.context(shown, &d.name);
            match self.render_kind(i, Kind::Digest, &ctx) {
                Ok((rendered, 0)) => return rendered,
                // Cut to fit: list fewer, so nothing is cut mid-item.
                Ok((rendered, _)) if shown <= 1 => return rendered,
                Ok(_) => shown = (shown * 3 / 4).min(shown - 1),
                Err(error) => {
                    tracing::warn!(destination = %d.name, %error, "the digest template failed; sending the stock digest instead");
                    let line = format!("⚠️ {} Qlik Cloud reloads failed", digest.items.len());
                    return self.stock_or_line(i, Kind::Digest, &ctx, &line);
                }
            }
        }
    }

    /// The recovery notice for destination `i`, from the successful reload's context with the
    /// [`Recovery`] fields added.
    pub fn render_recovery(&self, i: usize, ctx: &Value) -> Rendered {
        let d = &self.destinations[i];
        match self.render_kind(i, Kind::Recovery, ctx) {
            Ok((rendered, _)) => rendered,
            Err(error) => {
                tracing::warn!(destination = %d.name, %error, "the recovery template failed; sending the stock one instead");
                let app = ctx["appName"]
                    .as_str()
                    .or(ctx["appId"].as_str())
                    .unwrap_or_default();
                let what = match ctx["alertKind"].as_str() {
                    Some("automation") => "Qlik Automate run",
                    _ => "Qlik Cloud reload",
                };
                let line = format!("✅ {what} recovered: \"{app}\"");
                self.stock_or_line(i, Kind::Recovery, ctx, &line)
            }
        }
    }

    /// A notice about reload-butler's own set-up (a tenant's credential), no template
    /// involved: for email the headline is the subject and the text the body; chat gets the
    /// text as one message.
    pub fn render_service_notice(&self, i: usize, headline: &str, text: &str) -> Rendered {
        match &self.destinations[i].kind {
            DestinationKind::Email(_) => Rendered::Email {
                subject: single_line(&format!("⚠️ {headline}")),
                html: format!("<p>{}</p>", escape::html(text)),
                text: text.to_owned(),
            },
            _ => self.one_line(i, &format!("⚠️ {text}"), &json!({})),
        }
    }

    pub(super) fn stock_or_line(&self, i: usize, kind: Kind, ctx: &Value, line: &str) -> Rendered {
        // No stock template fits a webhook's service: the line it is.
        if matches!(self.destinations[i].kind, DestinationKind::Webhook(_)) {
            return self.one_line(i, line, ctx);
        }
        match self.render_stock(i, kind, ctx) {
            Ok((rendered, _)) => rendered,
            Err(error) => {
                tracing::error!(%error, "a stock template failed; sending one line");
                self.one_line(i, line, ctx)
            }
        }
    }
}

fn local(t: DateTime<Utc>, tz: Option<&Zone>) -> String {
    let [first, ..] = local_formats(t, tz);
    first
}

/// `3d 4h`, `2h 13m`, `5m 10s`, `12s`: the two largest units.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes, seconds) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_keep_two_units() {
        assert_eq!(human(Duration::from_secs(12)), "12s");
        assert_eq!(human(Duration::from_secs(310)), "5m 10s");
        assert_eq!(human(Duration::from_secs(2 * 3600 + 13 * 60 + 5)), "2h 13m");
        assert_eq!(
            human(Duration::from_secs(3 * 86_400 + 4 * 3600 + 59)),
            "3d 4h"
        );
    }

    #[test]
    fn digest_items_cut_long_messages() {
        let ctx = json!({"appName": "A", "errorMessage": "x".repeat(1000), "other": 1});
        let item = digest_item(&ctx);
        assert_eq!(item["appName"], "A");
        assert_eq!(
            item["errorMessage"].as_str().map(|m| m.chars().count()),
            Some(301)
        );
        assert!(item.get("other").is_none());
        assert!(item["appId"].is_null());
    }
}
