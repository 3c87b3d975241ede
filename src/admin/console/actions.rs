//! The console's form actions. Each POST is checked first, by extracting its form as
//! [`Checked`] (`session::check_form`: this origin, this session's CSRF token), then does one thing and answers `303 See Other` to the page that
//! shows the result, or a page saying why not.

use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Form;
use chrono::Utc;

use super::session::{self, Forged, Session};
use super::{forms, page, pages, see_other, store_failed, Console};
use crate::admin::access::Access;
use crate::silence::{self, AddError};
use crate::store::Resend;

/// A form whose only field is the CSRF token.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Plain {
    #[serde(default)]
    csrf: String,
}

/// A form that carries the CSRF token.
pub(super) trait Csrf {
    fn csrf(&self) -> &str;
}

impl Csrf for Plain {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl Csrf for forms::SilenceForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// A form POST that passed [`session::check_form`] (this origin, this session's token): the
/// only way an action gets its form, so none can forget the check. A form that does not
/// decode counts as one without a token.
pub(super) struct Checked<T> {
    session: Session,
    form: T,
}

impl<T> FromRequest<Console> for Checked<T>
where
    T: serde::de::DeserializeOwned + Default + Csrf + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, console: &Console) -> Result<Self, Response> {
        let session = request.extensions().get::<Session>().cloned();
        let headers = request.headers().clone();
        let path = request.uri().path().to_owned();
        let form = Form::<T>::from_request(request, console)
            .await
            .map(|Form(f)| f)
            .unwrap_or_default();
        match session::check_form(&headers, session.as_ref(), form.csrf()) {
            Ok(()) => match session {
                Some(session) => Ok(Checked { session, form }),
                None => Err(forged(console, Forged::NoSession, &path)),
            },
            Err(why) => Err(forged(console, why, &path)),
        }
    }
}

fn forged(c: &Console, why: Forged, path: &str) -> Response {
    tracing::warn!(reason = why.reason(), path, "console form refused");
    page(
        StatusCode::FORBIDDEN,
        pages::message(&c.view(None), "Refused", &why.to_string(), "/"),
    )
}

pub(super) async fn resend(
    State(c): State<Console>,
    id: Result<Path<i64>, PathRejection>,
    Checked { session, .. }: Checked<Plain>,
) -> Response {
    let view = c.view(Some(&session));
    let Ok(Path(id)) = id else {
        return page(
            StatusCode::NOT_FOUND,
            pages::message(&view, "No such delivery", "A delivery id is a number.", "/"),
        );
    };
    match c.store.resend_dead(id).await {
        Ok(Resend::Queued {
            job_id,
            destination,
        }) => {
            tracing::info!(
                delivery = id,
                job_id,
                %destination,
                "dead delivery put back in the outbox from the console"
            );
            c.outbox_wake.notify_waiters();
            see_other(&format!("/console/alerts/{job_id}"))
        }
        Ok(Resend::NotDead { state }) => page(
            StatusCode::CONFLICT,
            pages::message(
                &view,
                "Not resent",
                &format!("Delivery {id} is no longer dead (it is {state}): nothing was sent again."),
                "/",
            ),
        ),
        Ok(Resend::NothingToSend) => page(
            StatusCode::CONFLICT,
            pages::message(
                &view,
                "Not resent",
                &format!("Delivery {id} died before a message was rendered: there is nothing to send. Its reason says what to fix."),
                "/",
            ),
        ),
        Ok(Resend::Unknown) => page(
            StatusCode::NOT_FOUND,
            pages::message(
                &view,
                "No such delivery",
                &format!("There is no delivery {id}."),
                "/",
            ),
        ),
        Err(e) => store_failed(&c, e),
    }
}

pub(super) async fn add_silence(
    State(c): State<Console>,
    Checked { session, form }: Checked<forms::SilenceForm>,
) -> Response {
    let request = form.request();
    let added = silence::add(&c.store, request, Utc::now()).await;
    let added = match c.store.silences(false).await {
        Ok(list) => Ok((added, list)),
        Err(e) => Err(e),
    };
    let view = c.view(Some(&session));
    let refused = |status, list: &[_], why: &str| {
        page(status, forms::silences(&view, list, &form, Some(why)))
    };
    match added {
        Ok((Ok(added), _)) => {
            tracing::info!(
                id = added.id,
                filters = %silence::describe(&added.matcher),
                comment = ?added.comment,
                "silence added through the console"
            );
            see_other("/console/silences")
        }
        Ok((Err(AddError::Invalid(why)), list)) => {
            refused(StatusCode::BAD_REQUEST, &list, &why.to_string())
        }
        Ok((Err(too_many @ AddError::TooMany), list)) => {
            refused(StatusCode::CONFLICT, &list, &too_many.to_string())
        }
        Ok((Err(AddError::Store(e)), _)) | Err(e) => store_failed(&c, e),
    }
}

pub(super) async fn end_silence(
    State(c): State<Console>,
    id: Result<Path<i64>, PathRejection>,
    // Checked on extraction; the form has nothing else.
    _checked: Checked<Plain>,
) -> Response {
    let Ok(Path(id)) = id else {
        return see_other("/console/silences");
    };
    match c.store.end_silence(id).await {
        Ok(ended) => {
            if ended {
                tracing::info!(id, "silence ended early through the console");
            }
            see_other("/console/silences")
        }
        Err(e) => store_failed(&c, e),
    }
}

pub(super) async fn logout(
    State(c): State<Console>,
    Checked { session, .. }: Checked<Plain>,
) -> Response {
    c.sessions.end(&session.id);
    let mut response = see_other("/");
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// Where to go after logging in: a path of ours, else the overview.
fn next_path(next: &str) -> &str {
    let ours = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if ours {
        next
    } else {
        "/"
    }
}

pub(super) async fn login_form(State(c): State<Console>, headers: HeaderMap) -> Response {
    if !matches!(*c.access, Access::Token(_)) || c.sessions.find(&headers).is_some() {
        return see_other("/");
    }
    page(StatusCode::OK, forms::login(&c.view(None), "/", None))
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct Login {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
}

pub(super) async fn login(
    State(c): State<Console>,
    headers: HeaderMap,
    form: Result<Form<Login>, FormRejection>,
) -> Response {
    let Access::Token(check) = c.access.as_ref() else {
        return see_other("/");
    };
    if let Err(why) = session::same_origin(&headers) {
        return forged(&c, why, "/console/login");
    }
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let next = next_path(&form.next).to_owned();
    if !c.sessions.login_allowed() {
        tracing::warn!(reason = "too_many_failures", "console login refused");
        return page(
            StatusCode::TOO_MANY_REQUESTS,
            forms::login(
                &c.view(None),
                &next,
                Some("Too many wrong tokens in the last minute: wait a minute and try again."),
            ),
        );
    }
    if !check.matches(form.token.trim().as_bytes()) {
        c.sessions.login_failed();
        tracing::warn!(reason = "wrong_token", "console login refused");
        return page(
            StatusCode::UNAUTHORIZED,
            forms::login(&c.view(None), &next, Some("That is not the admin token.")),
        );
    }
    let session = c.sessions.start();
    tracing::info!("console login");
    let mut response = see_other(&next);
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&session)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_goes_only_to_paths_of_ours() {
        assert_eq!(next_path("/console/alerts?app=x"), "/console/alerts?app=x");
        assert_eq!(next_path("//evil.example/"), "/");
        assert_eq!(next_path("https://evil.example/"), "/");
        assert_eq!(next_path("/\\evil.example"), "/");
        assert_eq!(next_path(""), "/");
    }
}
