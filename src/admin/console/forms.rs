//! The console's other pages: silences (list, add, end early), health, and the login form.

use maud::{html, Markup};

use super::health::Health;
use super::pages::{csrf, layout, time};
use super::View;
use crate::silence::describe;
use crate::store::StoredSilence;

/// What the add form was given, to show it again with its error.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(super) struct SilenceForm {
    #[serde(default)]
    pub(super) csrf: String,
    #[serde(default)]
    pub(super) app: String,
    #[serde(default)]
    pub(super) tenant: String,
    #[serde(default)]
    pub(super) space: String,
    #[serde(default)]
    pub(super) tag: String,
    #[serde(default)]
    pub(super) error_code: String,
    #[serde(default, rename = "for")]
    pub(super) duration: String,
    #[serde(default)]
    pub(super) until: String,
    #[serde(default)]
    pub(super) comment: String,
    #[serde(default)]
    pub(super) resend: Option<String>,
}

impl SilenceForm {
    /// The request for [`crate::silence::add`]: empty fields are not given.
    pub(super) fn request(&self) -> crate::silence::NewSilence {
        let given = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        crate::silence::NewSilence {
            app: given(&self.app),
            tenant: given(&self.tenant),
            space: given(&self.space),
            tag: given(&self.tag),
            error_code: given(&self.error_code),
            duration: given(&self.duration),
            until: given(&self.until),
            comment: self.comment.trim().to_owned(),
            resend: self.resend.is_some(),
        }
    }
}

fn field(id: &str, label: &str, value: &str, hint: &str) -> Markup {
    html! {
        div.field {
            label for={"s-" (id)} { (label) }
            input id={"s-" (id)} name=(id) type="text" value=(value) aria-describedby={"s-" (id) "-hint"};
            small id={"s-" (id) "-hint"} { (hint) }
        }
    }
}

/// The silences in force (or still to come), each with an End button, and the add form.
pub(super) fn silences(
    view: &View,
    list: &[StoredSilence],
    form: &SilenceForm,
    error: Option<&str>,
) -> Markup {
    let body = html! {
        section aria-labelledby="active" {
            h2 id="active" { "In force or still to come" }
            @if list.is_empty() {
                p.empty { "No ad-hoc silence. (Silences from the config file are not listed here.)" }
            } @else {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Silences" } th scope="col" { "From" } th scope="col" { "Until" } th scope="col" { "Why" } th scope="col" { "Action" } } }
                    tbody {
                        @for s in list {
                            tr {
                                td data-label="#" { (s.id) }
                                td data-label="Silences" { (describe(&s.matcher)) @if s.resend { br; small { "resends what it held back when it ends" } } }
                                td data-label="From" { (time(s.starts_at)) }
                                td data-label="Until" { (time(s.ends_at)) }
                                td data-label="Why" { (s.comment) }
                                td data-label="Action" {
                                    form.inline method="post" action={"/console/silences/" (s.id) "/end"} {
                                        (csrf(view))
                                        button type="submit" aria-label={"End silence " (s.id) " now"} { "End now" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="add" {
            h2 id="add" { "Add a silence" }
            @if let Some(error) = error { p.error role="alert" { (error) } }
            form.stack method="post" action="/console/silences" {
                (csrf(view))
                fieldset {
                    legend { "Which alerts (every filter given must match; at least one)" }
                    (field("app", "App id", &form.app, "e.g. 0b4ea2b8-…"))
                    (field("tenant", "Tenant id", &form.tenant, ""))
                    (field("space", "Space id", &form.space, ""))
                    (field("tag", "App tag", &form.tag, "alerts of apps with this tag"))
                    (field("error_code", "Error code", &form.error_code, "e.g. EngineReloadScriptError"))
                }
                fieldset {
                    legend { "How long (one of them)" }
                    (field("for", "For", &form.duration, "e.g. 2h, 1d, 30m"))
                    (field("until", "Until", &form.until, "RFC 3339, e.g. 2026-12-24T08:00:00+01:00"))
                }
                div.field {
                    label for="s-comment" { "Comment" }
                    input id="s-comment" name="comment" type="text" value=(form.comment);
                }
                div.check {
                    input id="s-resend" name="resend" type="checkbox" value="1" checked[form.resend.is_some()];
                    label for="s-resend" { "When it ends, send the alerts it held back" }
                }
                button type="submit" { "Add silence" }
            }
        }
    };
    layout(view, "Silences", body)
}

fn at(ms: Option<i64>) -> String {
    ms.map_or_else(|| "never (since start)".to_owned(), time)
}

fn yes(ok: bool, good: &str, bad: &str) -> Markup {
    html! { span class={"badge " (if ok { "delivered" } else { "dead" })} { (if ok { good } else { bad }) } }
}

/// The broker, the store, each tenant's API and each destination.
pub(super) fn health(view: &View, h: &Health) -> Markup {
    let body = html! {
        section aria-labelledby="broker" {
            h2 id="broker" { "Broker and state store" }
            dl.facts {
                dt { "MQTT broker" }
                dd {
                    @if h.broker.used {
                        (yes(h.broker.connected, "connected", "disconnected")) " "
                        (yes(h.broker.subscribed, "subscribed", "not subscribed"))
                        " " small { (h.broker.connects) " connections since start" }
                    } @else { "not used (polling only)" }
                }
                dt { "State store" }
                dd { (yes(h.store.open && h.store.writable, "open, taking writes", "not writable")) " " small { (h.store.pending) " deliveries waiting" } }
            }
        }
        section aria-labelledby="tenants" {
            h2 id="tenants" { "Qlik Cloud tenants" }
            table {
                thead { tr { th scope="col" { "Tenant" } th scope="col" { "Last answer" } th scope="col" { "429s" } th scope="col" { "Paused" } th scope="col" { "Budget left" } } }
                tbody {
                    @for t in &h.tenants {
                        tr {
                            td data-label="Tenant" { (t.id) }
                            td data-label="Last answer" {
                                @if !t.client { "no API client (no credentials, or enrichment and poll off)" }
                                @else if let Some(outcome) = t.last_outcome { (yes(outcome == "ok", outcome, outcome)) " " small { (at(t.last_answer_at)) } }
                                @else { "no request yet" }
                            }
                            td data-label="429s" { (t.rate_limited) }
                            td data-label="Paused" { (t.paused_seconds) " s" }
                            td data-label="Budget left" { @if let Some(left) = t.budget_left { (left) } @else { "–" } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="destinations" {
            h2 id="destinations" { "Destinations" }
            table {
                thead { tr { th scope="col" { "Destination" } th scope="col" { "Last success" } th scope="col" { "Last failure" } } }
                tbody {
                    @for d in &h.destinations {
                        tr {
                            td data-label="Destination" { (d.name) }
                            td data-label="Last success" { (at(d.last_success_at)) }
                            td data-label="Last failure" {
                                (at(d.last_failure_at))
                                @if let Some(why) = &d.last_failure { br; span.reason { (why) } }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(view, "Health", body)
}

/// The login form (`admin.token`); `next` is where to go after it.
pub(super) fn login(view: &View, next: &str, error: Option<&str>) -> Markup {
    let body = html! {
        p { "This console needs the admin token (" code { "admin.token" } " in the configuration)." }
        @if let Some(error) = error { p.error role="alert" { (error) } }
        form.stack method="post" action="/console/login" {
            input type="hidden" name="next" value=(next);
            div.field {
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
            }
            button type="submit" { "Log in" }
        }
    };
    layout(view, "Log in", body)
}
