//! Console sessions and the checks on every form POST.
//!
//! A session is a random 256-bit id in an `HttpOnly; SameSite=Strict` cookie, kept in memory
//! with its expiry and its CSRF token (another 256 random bits, put in a hidden field of every
//! form and compared in constant time). With `admin.token` a session starts at the login form;
//! on a loopback `listen` without one, at the first page. A restart ends every session.
//!
//! A POST is refused when its `Origin` (when sent) does not name the host and port of its
//! `Host` header (http, or https through a TLS proxy that passes `Host` on), or when
//! `Sec-Fetch-Site` (when sent) says another site or origin sent it, whatever its token.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

/// The session cookie's name.
pub(super) const COOKIE: &str = "rb_console";
/// How long a session lasts from login (or its first page, on loopback).
pub(super) const TTL: Duration = Duration::from_secs(8 * 3600);
/// Most sessions kept at once; beyond it the one closest to its end is dropped.
const MAX_SESSIONS: usize = 1024;

/// One visitor's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    pub(super) id: String,
    pub(super) csrf: String,
}

struct Entry {
    csrf: String,
    expires: Instant,
}

/// Failed logins allowed per [`LOGIN_WINDOW`], from all clients together; beyond them every
/// login is refused until the window ends (a guessed token cannot be tried fast).
const LOGIN_FAILURES: u32 = 10;
const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// The sessions in force, in memory, and the recent failed logins.
#[derive(Default)]
pub(super) struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
    failures: Mutex<Option<(Instant, u32)>>,
}

/// 32 random bytes (the thread's CSPRNG), as hex.
fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// A new session, in force for [`TTL`].
    pub(super) fn start(&self) -> Session {
        let session = Session {
            id: random_hex(),
            csrf: random_hex(),
        };
        let now = Instant::now();
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_SESSIONS {
            map.retain(|_, e| e.expires > now);
        }
        if map.len() >= MAX_SESSIONS {
            let soonest = map
                .iter()
                .min_by_key(|(_, e)| e.expires)
                .map(|(id, _)| id.clone());
            if let Some(id) = soonest {
                map.remove(&id);
            }
        }
        map.insert(
            session.id.clone(),
            Entry {
                csrf: session.csrf.clone(),
                expires: now + TTL,
            },
        );
        session
    }

    /// The session whose id the request's cookie carries, if it is in force.
    pub(super) fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers)?;
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = map.get(id)?;
        if entry.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some(Session {
            id: id.to_owned(),
            csrf: entry.csrf.clone(),
        })
    }

    /// Whether a login may be tried now (fewer than [`LOGIN_FAILURES`] failed in the window).
    pub(super) fn login_allowed(&self) -> bool {
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *failures {
            Some((since, count)) => since.elapsed() >= LOGIN_WINDOW || count < LOGIN_FAILURES,
            None => true,
        }
    }

    /// Counts a failed login.
    pub(super) fn login_failed(&self) {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *failures = match *failures {
            Some((since, count)) if since.elapsed() < LOGIN_WINDOW => Some((since, count + 1)),
            _ => Some((Instant::now(), 1)),
        };
    }

    pub(super) fn end(&self, id: &str) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(id);
    }
}

/// The `Set-Cookie` value that starts `session` in the browser.
pub(super) fn set_cookie(session: &Session) -> String {
    format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        session.id,
        TTL.as_secs()
    )
}

/// The `Set-Cookie` value that ends the session in the browser.
pub(super) fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The value of our cookie in the request's `Cookie` headers.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// Why a form POST was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(super) enum Forged {
    #[error("the form came from another site (Origin is not this console)")]
    ForeignOrigin,
    #[error("the form came from another site (Sec-Fetch-Site)")]
    CrossSite,
    #[error(
        "the form's CSRF token is missing or not this session's; reload the page and try again"
    )]
    BadToken,
    #[error("no session: reload the page (and log in) and try again")]
    NoSession,
}

impl Forged {
    /// A bounded label for the log.
    pub(super) fn reason(self) -> &'static str {
        match self {
            Self::ForeignOrigin => "foreign_origin",
            Self::CrossSite => "cross_site",
            Self::BadToken => "bad_csrf_token",
            Self::NoSession => "no_session",
        }
    }
}

/// `Origin` and `Sec-Fetch-Site`, when the browser sends them, say this origin sent the form.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), Forged> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if !matches!(site, "same-origin" | "none") {
            return Err(Forged::CrossSite);
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        let ours = text(header::HOST).is_some_and(|host| origin_is(origin, host));
        if !ours {
            return Err(Forged::ForeignOrigin);
        }
    }
    Ok(())
}

/// Whether `origin` (`http://host:port`) names the authority of the `Host` header.
fn origin_is(origin: &str, host: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let (Ok(a), Ok(b)) = (
        axum::http::uri::Authority::from_str(authority),
        axum::http::uri::Authority::from_str(host),
    ) else {
        return false;
    };
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    matches!(scheme, "http" | "https")
        && a.host().eq_ignore_ascii_case(b.host())
        && a.port_u16().unwrap_or(default) == b.port_u16().unwrap_or(default)
}

/// A form POST: from this origin, in a session, with the session's CSRF token.
pub(super) fn check_form(
    headers: &HeaderMap,
    session: Option<&Session>,
    csrf: &str,
) -> Result<(), Forged> {
    same_origin(headers)?;
    let session = session.ok_or(Forged::NoSession)?;
    if equal_in_constant_time(session.csrf.as_bytes(), csrf.as_bytes()) {
        Ok(())
    } else {
        Err(Forged::BadToken)
    }
}

/// Byte strings compared without an early exit (the length is not secret: always 64).
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    header::HeaderName::from_static(k),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn a_session_is_found_by_its_cookie_and_ends() {
        let sessions = Sessions::default();
        let s = sessions.start();
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let cookie = format!("other=1; {COOKIE}={}", s.id);
        let found = sessions.find(&headers(&[("cookie", &cookie)]));
        assert_eq!(found.as_ref(), Some(&s));
        assert_eq!(
            sessions.find(&headers(&[("cookie", "rb_console=nope")])),
            None
        );
        assert_eq!(sessions.find(&HeaderMap::new()), None);
        sessions.end(&s.id);
        assert_eq!(sessions.find(&headers(&[("cookie", &cookie)])), None);
        let set = set_cookie(&s);
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(set.contains("Max-Age=28800"), "{set}");
    }

    #[test]
    fn failed_logins_are_limited() {
        let sessions = Sessions::default();
        for _ in 0..LOGIN_FAILURES {
            assert!(sessions.login_allowed());
            sessions.login_failed();
        }
        assert!(
            !sessions.login_allowed(),
            "the next one waits for the window"
        );
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::default();
        let first = sessions.start();
        for _ in 0..MAX_SESSIONS {
            sessions.start();
        }
        let map = sessions.map.lock().unwrap();
        assert_eq!(map.len(), MAX_SESSIONS);
        assert!(!map.contains_key(&first.id), "the oldest went first");
    }

    #[test]
    fn forms_need_this_origin_and_the_sessions_token() {
        let sessions = Sessions::default();
        let s = sessions.start();
        let host = ("host", "127.0.0.1:9090");
        let ok = |h: &[(&'static str, &str)], token: &str| check_form(&headers(h), Some(&s), token);
        assert_eq!(ok(&[host], &s.csrf), Ok(()));
        assert_eq!(
            ok(
                &[
                    host,
                    ("origin", "http://127.0.0.1:9090"),
                    ("sec-fetch-site", "same-origin")
                ],
                &s.csrf
            ),
            Ok(())
        );
        assert_eq!(ok(&[host], "wrong"), Err(Forged::BadToken));
        assert_eq!(ok(&[host], ""), Err(Forged::BadToken));
        assert_eq!(ok(&[host], &s.csrf[..63]), Err(Forged::BadToken));
        for origin in [
            "http://127.0.0.1:9091",
            "http://evil.example",
            "null",
            "https://127.0.0.1",
        ] {
            assert_eq!(
                ok(&[host, ("origin", origin)], &s.csrf),
                Err(Forged::ForeignOrigin),
                "{origin}"
            );
        }
        for site in ["same-site", "cross-site"] {
            assert_eq!(
                ok(&[host, ("sec-fetch-site", site)], &s.csrf),
                Err(Forged::CrossSite)
            );
        }
        assert_eq!(
            check_form(&headers(&[host]), None, &s.csrf),
            Err(Forged::NoSession)
        );
        assert!(origin_is("http://localhost", "localhost:80"));
        assert!(origin_is("http://LocalHost:9090", "localhost:9090"));
        assert!(!origin_is("ftp://localhost:9090", "localhost:9090"));
    }
}
