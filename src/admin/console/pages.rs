//! The console's pages as HTML (maud: compiled, every value escaped): the layout, the overview,
//! the alert list and one alert. Forms and the health page are in `forms.rs`.

use maud::{html, Markup, DOCTYPE};

use super::View;
use crate::notify::Payload;
use crate::store::{AlertFilter, AlertRow, DeliveryRow, FailingApp};

/// The outbox states, as the outcome filter offers them.
pub(super) const OUTCOMES: &[&str] = &[
    "delivered",
    "pending",
    "held",
    "suppressed",
    "silenced",
    "digested",
    "dead",
];

/// A unix-ms time as `2026-12-02 22:14:03 UTC`.
pub(super) fn time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

fn stamp(ms: i64) -> Markup {
    let iso = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    html! { time datetime=(iso) { (time(ms)) } }
}

/// Every page: header with the navigation, the title, `body`.
pub(super) fn layout(view: &View, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · reload-butler" }
                link rel="stylesheet" href="/console/style.css";
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header {
                    nav aria-label="Console" {
                        span.brand { "reload-butler" }
                        a href="/" { "Overview" }
                        a href="/console/alerts" { "Alerts" }
                        a href="/console/silences" { "Silences" }
                        a href="/console/health" { "Health" }
                        @if view.logged_in {
                            form.inline method="post" action="/console/logout" {
                                (csrf(view))
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub(super) fn csrf(view: &View) -> Markup {
    html! { input type="hidden" name="csrf" value=(view.csrf); }
}

fn app_label(name: Option<&str>, id: &str) -> Markup {
    html! {
        @match name {
            Some(name) => { strong { (name) } br; small.id { (id) } },
            None => { small.id { (id) } },
        }
    }
}

/// What became of one delivery, in words: the outcome, then when and why.
fn outcome(d: &DeliveryRow) -> Markup {
    let reason = d.last_error.as_deref().or(d.detail.as_deref());
    html! {
        span class={"badge " (d.state)} { (d.state) }
        " "
        @match d.state.as_str() {
            "delivered" => { small { (stamp(d.updated_at)) } },
            "pending" if d.attempts == 0 => { small { "first attempt at " (stamp(d.next_attempt_at)) } },
            "pending" => {
                small { "attempt " (d.attempts + 1) " at " (stamp(d.next_attempt_at)) }
                @if let Some(error) = &d.last_error { br; span.reason { "last failure: " (error) } }
            },
            "held" => { small { "held for its digest window until " (stamp(d.next_attempt_at)) } },
            "dead" => {
                small { "after " (d.attempts) @if d.attempts == 1 { " attempt, " } @else { " attempts, " } (stamp(d.updated_at)) }
                @if let Some(why) = reason { br; span.reason { (why) } }
            },
            _ => { @if let Some(why) = &d.detail { br; span.reason { (why) } } },
        }
    }
}

fn destination(d: &DeliveryRow) -> Markup {
    html! {
        (d.destination)
        @if !d.recipient.is_empty() { br; small { (d.recipient) } }
    }
}

/// The overview: failing apps, dead deliveries with their Resend buttons, the latest alerts.
pub(super) fn overview(
    view: &View,
    failing: &[FailingApp],
    dead: &[(AlertRow, bool)],
    latest: &[AlertRow],
) -> Markup {
    let body = html! {
        section aria-labelledby="failing" {
            h2 id="failing" { "Failing apps now" }
            @if failing.is_empty() {
                p.empty { "No app is failing: every app's last known reload succeeded." }
            } @else {
                table {
                    thead { tr { th scope="col" { "App" } th scope="col" { "Tenant" } th scope="col" { "Failing since" } th scope="col" { "Failures in a row" } th scope="col" { "Last error" } } }
                    tbody {
                        @for f in failing {
                            tr {
                                td data-label="App" { (app_label(f.app_name.as_deref(), &f.app_id)) }
                                td data-label="Tenant" { (f.tenant_id) }
                                td data-label="Failing since" { (stamp(f.since)) }
                                td data-label="Failures in a row" { (f.failures) }
                                td data-label="Last error" {
                                    @if let Some(code) = &f.last_error_code { code { (code) } " " }
                                    @if let Some(error) = &f.last_error { span.reason { (error) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="dead" {
            h2 id="dead" { "Dead deliveries" }
            @if dead.is_empty() {
                p.empty { "None: every alert was delivered or is still being tried." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Alert" } th scope="col" { "App" } th scope="col" { "Destination" } th scope="col" { "Why" } th scope="col" { "Action" } } }
                    tbody {
                        @for (alert, resendable) in dead {
                            @for d in &alert.deliveries {
                                tr {
                                    td data-label="Alert" { a href={"/console/alerts/" (alert.id)} { "#" (alert.id) } br; small { (stamp(alert.created_at)) } }
                                    td data-label="App" { (app_label(alert.app_name.as_deref(), &alert.app_id)) }
                                    td data-label="Destination" { (destination(d)) }
                                    td data-label="Why" { (outcome(d)) }
                                    td data-label="Action" { (resend_form(view, d, *resendable)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="latest" {
            h2 id="latest" { "Latest alerts" }
            (alert_table(view, latest))
            p { a href="/console/alerts" { "All recent alerts, with filters" } }
        }
    };
    layout(view, "Overview", body)
}

/// The Resend button of a dead delivery (a form POST with the CSRF token).
pub(super) fn resend_form(view: &View, d: &DeliveryRow, resendable: bool) -> Markup {
    html! {
        @if resendable {
            form.inline method="post" action={"/console/deliveries/" (d.id) "/resend"} {
                (csrf(view))
                button type="submit" id={"resend-" (d.id)} aria-label={"Resend alert to " (d.destination)} { "Resend" }
            }
        } @else {
            small { "nothing to resend (no message was rendered)" }
        }
    }
}

fn alert_table(view: &View, alerts: &[AlertRow]) -> Markup {
    html! {
        @if alerts.is_empty() {
            p.empty { "No alerts match." }
        } @else {
            table {
                thead { tr { th scope="col" { "Alert" } th scope="col" { "App" } th scope="col" { "Tenant" } th scope="col" { "What" } th scope="col" { "Destinations" } } }
                tbody {
                    @for a in alerts {
                        tr {
                            td data-label="Alert" { a href={"/console/alerts/" (a.id)} { "#" (a.id) } br; small { (stamp(a.created_at)) } }
                            td data-label="App" { (app_label(a.app_name.as_deref(), &a.app_id)) }
                            td data-label="Tenant" { (a.tenant_id) }
                            td data-label="What" { (a.failure) @if let Some(code) = &a.error_code { br; code { (code) } } }
                            td data-label="Destinations" {
                                @if a.deliveries.is_empty() { small { "not routed to any destination (yet)" } }
                                ul.deliveries {
                                    @for d in &a.deliveries {
                                        li { strong { (destination(d)) } ": " (outcome(d))
                                            @if d.state == "dead" { " " (resend_form(view, d, true)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Recent alerts, filtered by a plain GET form.
pub(super) fn alerts(view: &View, filter: &AlertFilter, found: &[AlertRow]) -> Markup {
    let selected = |value: &Option<String>, option: &str| value.as_deref() == Some(option);
    let body = html! {
        form.filters method="get" action="/console/alerts" role="search" aria-label="Filter alerts" {
            label for="f-tenant" { "Tenant" }
            select id="f-tenant" name="tenant" {
                option value="" { "any" }
                @for t in &view.facts.tenants { option value=(t) selected[selected(&filter.tenant, t)] { (t) } }
            }
            label for="f-app" { "App (id or name)" }
            input id="f-app" name="app" type="text" value=[filter.app.as_deref()];
            label for="f-destination" { "Destination" }
            select id="f-destination" name="destination" {
                option value="" { "any" }
                @for d in &view.facts.destinations { option value=(d) selected[selected(&filter.destination, d)] { (d) } }
            }
            label for="f-outcome" { "Outcome" }
            select id="f-outcome" name="outcome" {
                option value="" { "any" }
                @for o in OUTCOMES { option value=(o) selected[selected(&filter.outcome, o)] { (o) } }
            }
            button type="submit" { "Filter" }
        }
        p { (found.len()) " alerts, newest first (at most " (crate::store::ALERTS_MAX) ")." }
        (alert_table(view, found))
    };
    layout(view, "Recent alerts", body)
}

/// One alert: its facts, then each delivery with its outcome and its payload as rendered.
pub(super) fn alert(view: &View, a: &AlertRow) -> Markup {
    let body = html! {
        dl.facts {
            dt { "App" } dd { (app_label(a.app_name.as_deref(), &a.app_id)) }
            dt { "Tenant" } dd { (a.tenant_id) }
            dt { "What" } dd { (a.failure) " (" (a.kind) ")" }
            dt { "Reload" } dd { code { (a.reload_id) } }
            dt { "Received" } dd { (stamp(a.created_at)) }
            @if let Some(code) = &a.error_code { dt { "Error code" } dd { code { (code) } } }
            @if let Some(message) = &a.error_message { dt { "Error" } dd.reason { (message) } }
        }
        @if a.deliveries.is_empty() { p.empty { "Not routed to any destination (yet)." } }
        @for d in &a.deliveries {
            section.delivery aria-labelledby={"d-" (d.id)} {
                h2 id={"d-" (d.id)} { (d.destination) @if !d.recipient.is_empty() { " → " (d.recipient) } }
                p { (outcome(d)) @if d.state == "dead" { " " (resend_form(view, d, d.payload.is_some())) } }
                (payload(d.payload.as_deref()))
            }
        }
    };
    layout(view, &format!("Alert #{}", a.id), body)
}

/// A stored payload as sent: an email's subject and bodies, a chat message's JSON. Never
/// where it went (webhook URLs live in the config, not here).
fn payload(stored: Option<&str>) -> Markup {
    let Some(stored) = stored else {
        return html! { p.empty { "No message was rendered for this destination." } };
    };
    match serde_json::from_str::<Payload>(stored) {
        Ok(Payload::Email {
            to,
            subject,
            html,
            text,
        }) => html! {
            dl.facts { dt { "To" } dd { (to) } dt { "Subject" } dd { (subject) } }
            h3 { "Text body" }
            pre { (text) }
            details { summary { "HTML body (source)" } pre { (html) } }
        },
        Ok(Payload::Slack { body } | Payload::Teams { body }) => html! {
            h3 { "Message as posted (JSON)" }
            pre { (serde_json::to_string_pretty(&body).unwrap_or_default()) }
        },
        Ok(Payload::Webhook { body }) => html! {
            h3 { "Body as sent (variables shown by name)" }
            pre { (crate::render::vars::shown(&body)) }
        },
        Err(_) => html! { p.empty { "The stored message does not decode." } },
    }
}

/// A short page: a message and the way back.
pub(super) fn message(view: &View, title: &str, text: &str, back: &str) -> Markup {
    layout(
        view,
        title,
        html! { p.message role="status" { (text) } p { a href=(back) { "Back" } } },
    )
}
