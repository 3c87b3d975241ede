//! The web console on the admin endpoint: `GET /` and `/console/…`, server-rendered HTML that
//! works without JavaScript (`pages.rs`, `forms.rs`, one embedded `style.css`), the form
//! actions (`actions.rs`: resend a dead delivery, add or end a silence, log in and out), and the
//! JSON endpoints behind it (`api.rs`, guarded like the silence endpoints).
//!
//! Who may see it follows [`Access`]: with `admin.token`, a session from the login form
//! (`session.rs`); without one on a loopback `listen`, any local client whose `Host` names
//! loopback (a session starts at the first page, for the CSRF token); any other `listen`
//! without a token: refused. A visitor without a session gets the login form, never data.

mod actions;
mod api;
mod forms;
mod health;
mod pages;
mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::Markup;
use tokio::sync::Notify;

use super::access::{names_loopback, Access, Denied};
use crate::metrics::Metrics;
use crate::store::{AlertFilter, SharedStore, StoreError};
use session::{Session, Sessions};

/// Largest form: a silence with a long comment.
const MAX_BODY: usize = 16 * 1024;
/// What the overview lists at most.
const OVERVIEW_DEAD: usize = 50;
const OVERVIEW_LATEST: usize = 10;
const LIST_ALERTS: usize = 100;

/// No script, no frames, no other origins: pages are plain HTML and our stylesheet.
const CSP: &str = "default-src 'none'; style-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What the configuration says that the pages show: tenant ids, enabled destination names.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub tenants: Vec<String>,
    pub destinations: Vec<String>,
    /// Whether the daemon uses MQTT at all.
    pub mqtt_expected: bool,
}

#[derive(Clone)]
pub(super) struct Console {
    store: SharedStore,
    access: Arc<Access>,
    sessions: Arc<Sessions>,
    metrics: Arc<Metrics>,
    facts: Arc<Facts>,
    /// Wakes the outbox workers after a resend.
    outbox_wake: Arc<Notify>,
}

/// What every page needs of its visitor and the configuration.
pub(super) struct View {
    csrf: String,
    /// A token session (shows "Log out").
    logged_in: bool,
    facts: Arc<Facts>,
}

impl Console {
    fn view(&self, session: Option<&Session>) -> View {
        View {
            csrf: session.map(|s| s.csrf.clone()).unwrap_or_default(),
            logged_in: session.is_some() && matches!(*self.access, Access::Token(_)),
            facts: self.facts.clone(),
        }
    }
}

/// The console's routes: the pages behind [`gate`], login and the stylesheet open, the JSON
/// endpoints behind the silence endpoints' guard.
pub(super) fn router(
    store: SharedStore,
    access: Arc<Access>,
    metrics: Arc<Metrics>,
    facts: Facts,
    outbox_wake: Arc<Notify>,
) -> Router {
    let console = Console {
        store,
        access: access.clone(),
        sessions: Arc::new(Sessions::default()),
        metrics,
        facts: Arc::new(facts),
        outbox_wake,
    };
    let pages = Router::new()
        .route("/", get(overview))
        .route("/console/alerts", get(alerts))
        .route("/console/alerts/{id}", get(alert))
        .route(
            "/console/silences",
            get(silences).post(actions::add_silence),
        )
        .route("/console/silences/{id}/end", post(actions::end_silence))
        .route("/console/health", get(health_page))
        .route("/console/deliveries/{id}/resend", post(actions::resend))
        .route("/console/logout", post(actions::logout))
        .route_layer(middleware::from_fn_with_state(console.clone(), gate));
    Router::new()
        .merge(pages)
        .route(
            "/console/login",
            get(actions::login_form).post(actions::login),
        )
        .route("/console/style.css", get(style))
        .merge(api::router(access))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(console)
}

/// An HTML answer, never cached, never framed.
pub(super) fn page(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// `303 See Other` to a path of ours.
pub(super) fn see_other(path: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(path) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn peer(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

/// Lets a request through to a page only as [`Access`] allows, with its session.
async fn gate(State(console): State<Console>, mut request: Request, next: Next) -> Response {
    let refuse = |denied: Denied, request: &Request| {
        tracing::warn!(reason = denied.reason(), method = %request.method(), path = request.uri().path(), peer = peer(request), "console request refused");
        let text = denied.to_string();
        page(
            StatusCode::FORBIDDEN,
            pages::message(&console.view(None), "Refused", &text, "/"),
        )
    };
    let found = console.sessions.find(request.headers());
    let (session, started) = match (console.access.as_ref(), found) {
        (Access::Refused, _) => return refuse(Denied::NoToken, &request),
        (Access::Loopback, found) => {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            if !host.is_some_and(names_loopback) {
                return refuse(Denied::ForeignHost, &request);
            }
            match found {
                Some(session) => (session, false),
                None => (console.sessions.start(), true),
            }
        }
        (Access::Token(_), Some(session)) => (session, false),
        (Access::Token(_), None) => {
            let next = match (request.method(), request.uri().path_and_query()) {
                (&Method::GET, Some(pq)) => pq.as_str().to_owned(),
                _ => "/".to_owned(),
            };
            let view = console.view(None);
            return page(StatusCode::UNAUTHORIZED, forms::login(&view, &next, None));
        }
    };
    request.extensions_mut().insert(session.clone());
    let mut response = next.run(request).await;
    if started {
        if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&session)) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// A state store failure, as a page.
fn store_failed(console: &Console, error: StoreError) -> Response {
    tracing::error!(%error, "console request failed in the state store");
    let text = format!("The state store failed: {error}");
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(&console.view(None), "State store error", &text, "/"),
    )
}

async fn overview(State(c): State<Console>, Extension(session): Extension<Session>) -> Response {
    let found = tokio::try_join!(
        c.store.failing_now(),
        c.store.dead_deliveries(OVERVIEW_DEAD),
        c.store.alerts(AlertFilter::default(), OVERVIEW_LATEST),
    );
    match found {
        Ok((failing, dead, latest)) => page(
            StatusCode::OK,
            pages::overview(&c.view(Some(&session)), &failing, &dead, &latest),
        ),
        Err(e) => store_failed(&c, e),
    }
}

/// The alert list's GET form; empty fields match everything.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct FilterQuery {
    tenant: Option<String>,
    app: Option<String>,
    destination: Option<String>,
    outcome: Option<String>,
    limit: Option<usize>,
}

impl FilterQuery {
    pub(super) fn filter(&self) -> AlertFilter {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        AlertFilter {
            tenant: given(&self.tenant),
            app: given(&self.app),
            destination: given(&self.destination),
            outcome: given(&self.outcome),
        }
    }
}

async fn alerts(
    State(c): State<Console>,
    Extension(session): Extension<Session>,
    query: Result<Query<FilterQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    let filter = query.filter();
    let limit = query.limit.unwrap_or(LIST_ALERTS);
    let wanted = filter.clone();
    match c.store.alerts(wanted, limit).await {
        Ok(found) => page(
            StatusCode::OK,
            pages::alerts(&c.view(Some(&session)), &filter, &found),
        ),
        Err(e) => store_failed(&c, e),
    }
}

async fn alert(
    State(c): State<Console>,
    Extension(session): Extension<Session>,
    id: Result<Path<i64>, PathRejection>,
) -> Response {
    let view = c.view(Some(&session));
    let Ok(Path(id)) = id else {
        return page(
            StatusCode::NOT_FOUND,
            pages::message(&view, "No such alert", "An alert id is a number.", "/"),
        );
    };
    match c.store.alert(id).await {
        Ok(Some(found)) => page(StatusCode::OK, pages::alert(&view, &found)),
        Ok(None) => page(
            StatusCode::NOT_FOUND,
            pages::message(
                &view,
                "No such alert",
                &format!("There is no alert #{id} (past delivery.retention, or never)."),
                "/console/alerts",
            ),
        ),
        Err(e) => store_failed(&c, e),
    }
}

async fn silences(State(c): State<Console>, Extension(session): Extension<Session>) -> Response {
    match c.store.silences(false).await {
        Ok(list) => page(
            StatusCode::OK,
            forms::silences(
                &c.view(Some(&session)),
                &list,
                &forms::SilenceForm::default(),
                None,
            ),
        ),
        Err(e) => store_failed(&c, e),
    }
}

async fn health_page(State(c): State<Console>, Extension(session): Extension<Session>) -> Response {
    match c.store.last_delivered().await {
        Ok(delivered) => {
            let health = health::snapshot(&c.metrics, &c.facts, &delivered);
            page(
                StatusCode::OK,
                forms::health(&c.view(Some(&session)), &health),
            )
        }
        Err(e) => store_failed(&c, e),
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
        .into_response()
}
