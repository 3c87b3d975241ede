//! The Qlik Cloud REST client of one tenant: the look-ups enrichment needs, with the retry
//! policy of `retry.rs`, the tenant's request budget of `budget.rs`, single-flight caching of
//! what rarely changes (`cache.rs`), and answers reduced to the model types. Wire structs stay
//! in `wire.rs`; nothing outside this module sees Qlik's JSON.

mod admin;
mod budget;
mod cache;
mod error;
mod list;
mod retry;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use serde::de::DeserializeOwned;

pub use self::admin::{ApiKey, Delivery, Me, WantedWebhook, Webhook};
pub use self::budget::within;
pub use self::error::ApiError;

use self::budget::{Budget, Priority};
use self::cache::{Cached, CAPACITY};
use super::auth::Credentials;
use super::model::{AppInfo, AutomationInfo, ItemInfo, ReloadInfo, SpaceInfo, UserInfo};
use crate::config::{EnrichConfig, TenantAuth, TenantRateLimit};
use crate::http::{error_chain, Body};
use crate::metrics::{Metrics, QlikEndpoint, TenantBudget};

/// Script logs are cut here: a runaway log must not take the daemon's memory with it.
pub const SCRIPT_LOG_LIMIT: usize = 32 * 1024 * 1024;
/// JSON answers we use are a few KiB; anything past this is not an answer we understand.
const JSON_LIMIT: usize = 8 * 1024 * 1024;
/// Longest id accepted in a path; Qlik's are 24 or 36 characters.
const ID_MAX: usize = 128;

const RELOAD: &str = "GET /api/v1/reloads/{reloadId}";
const APP: &str = "GET /api/v1/apps/{appId}";
const ITEM: &str = "GET /api/v1/items?resourceType=app";
const USER: &str = "GET /api/v1/users/{userId}";
const SPACE: &str = "GET /api/v1/spaces/{spaceId}";
const AUTOMATION: &str = "GET /api/v1/automations/{id}";
const SCRIPT_LOG: &str = "GET /api/v1/apps/{appId}/reloads/logs/{reloadId}";

/// The metric label of a call.
fn endpoint(call: &'static str) -> QlikEndpoint {
    match call {
        RELOAD => QlikEndpoint::Reload,
        list::LIST => QlikEndpoint::Reloads,
        APP => QlikEndpoint::App,
        ITEM => QlikEndpoint::Item,
        USER => QlikEndpoint::User,
        SPACE => QlikEndpoint::Space,
        SCRIPT_LOG => QlikEndpoint::ScriptLog,
        _ => QlikEndpoint::Other,
    }
}

/// Names first: in a storm the app's name and item are what an alert needs most.
fn priority(call: &'static str) -> Priority {
    match call {
        APP | ITEM => Priority::Name,
        _ => Priority::Other,
    }
}

/// One per tenant. Holds one connection pool; cheap to share behind an `Arc`.
pub struct QlikClient {
    http: reqwest::Client,
    base: String,
    auth: Credentials,
    metrics: Arc<Metrics>,
    budget: Budget,
    timeout: Duration,
    apps: Cached<AppInfo>,
    items: Cached<ItemInfo>,
    users: Cached<UserInfo>,
    spaces: Cached<SpaceInfo>,
    automations: Cached<AutomationInfo>,
}

impl std::fmt::Debug for QlikClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QlikClient")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl QlikClient {
    /// `tenant_url` is the tenant's url (`https://acme.eu.qlikcloud.com`), as config checked
    /// it: http(s), a host, no query or fragment. Every request is bounded by
    /// `enrich.timeout`; look-ups are cached for `enrich.cache_ttl`. The request budget is
    /// Qlik's tier 1 until [`QlikClient::with_rate_limit`] sets the tenant's.
    pub fn new(
        tenant_url: &url::Url,
        auth: &TenantAuth,
        enrich: &EnrichConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self, ApiError> {
        crate::tls::ensure_crypto_provider();
        // Paths are appended to the base as text.
        let base = tenant_url.as_str().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .user_agent(concat!("reload-butler/", env!("CARGO_PKG_VERSION")))
            .timeout(enrich.timeout)
            .pool_idle_timeout(crate::http::IDLE_CONNECTION)
            .build()
            .map_err(|e| ApiError::Client(error_chain(&e)))?;
        let ttl = enrich.cache_ttl;
        Ok(Self {
            http,
            auth: Credentials::new(auth, &base),
            base,
            metrics,
            budget: Budget::new(TenantRateLimit::default(), Arc::default()),
            timeout: enrich.timeout,
            apps: Cached::new(ttl, CAPACITY),
            items: Cached::new(ttl, CAPACITY),
            users: Cached::new(ttl, CAPACITY),
            spaces: Cached::new(ttl, CAPACITY),
            automations: Cached::new(ttl, CAPACITY),
        })
    }

    /// The tenant's `rate_limit`, its gauges shown under `tenant` on `/metrics`.
    pub fn with_rate_limit(mut self, tenant: &str, limit: TenantRateLimit) -> Self {
        let gauges: Arc<TenantBudget> = self.metrics.qlik.tenant(tenant);
        self.budget = Budget::new(limit, gauges);
        self
    }

    /// Requests Qlik refused this credential so far (final 401s, refused OAuth tokens).
    pub fn refusals(&self) -> u64 {
        self.budget.refusals()
    }

    /// `enrich.timeout`: how long one alert's enrichment may take in all.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The reload's status, trigger, error and short log. Never cached: it is what just failed.
    pub async fn reload(&self, reload_id: &str) -> Result<ReloadInfo, ApiError> {
        let url = format!(
            "{}/api/v1/reloads/{}",
            self.base,
            segment(RELOAD, reload_id)?
        );
        Ok(self.get_json::<wire::Reload>(RELOAD, &url).await?.into())
    }

    pub async fn app(&self, app_id: &str) -> Result<AppInfo, ApiError> {
        segment(APP, app_id)?;
        let url = format!("{}/api/v1/apps/{app_id}", self.base);
        self.apps
            .get_with(app_id, || async {
                Ok(AppInfo::from(self.get_json::<wire::App>(APP, &url).await?))
            })
            .await
    }

    /// The app's item: tags, file size, space, hub link.
    pub async fn app_item(&self, app_id: &str) -> Result<ItemInfo, ApiError> {
        segment(ITEM, app_id)?;
        self.items
            .get_with(app_id, || self.fetch_item(app_id))
            .await
    }

    async fn fetch_item(&self, app_id: &str) -> Result<ItemInfo, ApiError> {
        let query = [
            ("resourceType", "app"),
            ("resourceId", app_id),
            ("noActions", "true"),
        ];
        let url = format!("{}/api/v1/items", self.base);
        let body = self
            .fetch(ITEM, JSON_LIMIT, |http| {
                http.get(&url)
                    .query(&query)
                    .header(ACCEPT, "application/json")
            })
            .await?;
        let items: wire::Items = decode_json(ITEM, body)?;
        let item = items
            .data
            .into_iter()
            .find(|item| item.resource_id.as_deref() == Some(app_id))
            .ok_or(ApiError::NoItem { call: ITEM })?;
        Ok(ItemInfo::from(item))
    }

    pub async fn user(&self, user_id: &str) -> Result<UserInfo, ApiError> {
        segment(USER, user_id)?;
        let url = format!("{}/api/v1/users/{user_id}", self.base);
        self.users
            .get_with(user_id, || async {
                let user = self.get_json::<wire::User>(USER, &url).await?;
                Ok(user.into_info(user_id))
            })
            .await
    }

    /// An automation's name, owner and space (Qlik Automate), cached.
    pub async fn automation(&self, id: &str) -> Result<AutomationInfo, ApiError> {
        segment(AUTOMATION, id)?;
        let url = format!("{}/api/v1/automations/{id}", self.base);
        self.automations
            .get_with(id, || async {
                Ok(AutomationInfo::from(
                    self.get_json::<wire::Automation>(AUTOMATION, &url).await?,
                ))
            })
            .await
    }

    pub async fn space(&self, space_id: &str) -> Result<SpaceInfo, ApiError> {
        segment(SPACE, space_id)?;
        let url = format!("{}/api/v1/spaces/{space_id}", self.base);
        self.spaces
            .get_with(space_id, || async {
                let space = self.get_json::<wire::Space>(SPACE, &url).await?;
                Ok(space.into_info(space_id))
            })
            .await
    }

    /// The full script log (text/plain, CRLF as Qlik sent it). A log over [`SCRIPT_LOG_LIMIT`]
    /// keeps its first 32 MiB and ends with a marker line saying it was cut.
    pub async fn script_log(&self, app_id: &str, reload_id: &str) -> Result<String, ApiError> {
        let url = format!(
            "{}/api/v1/apps/{}/reloads/logs/{}",
            self.base,
            segment(SCRIPT_LOG, app_id)?,
            segment(SCRIPT_LOG, reload_id)?
        );
        let body = self
            .fetch(SCRIPT_LOG, SCRIPT_LOG_LIMIT, |http| {
                http.get(&url).header(ACCEPT, "text/plain")
            })
            .await?;
        Ok(log_text(body))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        call: &'static str,
        url: &str,
    ) -> Result<T, ApiError> {
        let body = self
            .fetch(call, JSON_LIMIT, |http| {
                http.get(url).header(ACCEPT, "application/json")
            })
            .await?;
        decode_json(call, body)
    }
}

fn decode_json<T: DeserializeOwned>(call: &'static str, body: Body) -> Result<T, ApiError> {
    if body.truncated {
        let message = format!("answer larger than {JSON_LIMIT} bytes");
        return Err(ApiError::Decode { call, message });
    }
    serde_json::from_slice(&body.bytes).map_err(|e| ApiError::Decode {
        call,
        message: e.to_string(),
    })
}

/// The log as text; a cut log loses at most a split last character and gains a marker line.
fn log_text(body: Body) -> String {
    let mut bytes = body.bytes;
    if body.truncated {
        if let Err(e) = std::str::from_utf8(&bytes) {
            if e.error_len().is_none() {
                bytes.truncate(e.valid_up_to());
            }
        }
    }
    let mut text = String::from_utf8(bytes)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    if body.truncated {
        text.push_str(&format!(
            "\r\n[reload-butler: script log cut here, only its first {} MiB were kept]\r\n",
            SCRIPT_LOG_LIMIT / (1024 * 1024)
        ));
    }
    text
}

/// An id from outside, checked before it goes into a path: `../x`, `a/b` or `%2e` could
/// otherwise point the request (and its bearer token) at another endpoint.
fn segment<'a>(call: &'static str, id: &'a str) -> Result<&'a str, ApiError> {
    let valid = !id.is_empty()
        && id.len() <= ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(id)
    } else {
        Err(ApiError::InvalidId {
            call,
            id: id.chars().take(ID_MAX).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_change_the_path_are_refused() {
        for id in [
            "", "..", "../../x", "a/b", "%2e%2e", "a?b", "a#b", "a b", "ä",
        ] {
            assert!(segment(APP, id).is_err(), "{id:?}");
        }
        assert!(segment(APP, &"a".repeat(ID_MAX + 1)).is_err());
        for id in [
            "8b3f6f2e-4c1a-4f7e-9a7d-2f0c5e1b9d43",
            "67d3c8f1a2b4c5d6e7f80912",
        ] {
            assert_eq!(segment(APP, id).unwrap(), id);
        }
    }

    #[test]
    fn a_cut_log_ends_with_the_marker_and_no_half_character() {
        let body = Body {
            bytes: "ab\u{e9}".as_bytes()[..3].to_vec(),
            truncated: true,
        };
        let text = log_text(body);
        assert!(text.starts_with("ab\r\n[reload-butler: script log cut here"));
        let whole = Body {
            bytes: b"line 1\r\nline 2\r\n".to_vec(),
            truncated: false,
        };
        assert_eq!(log_text(whole), "line 1\r\nline 2\r\n");
    }
}
