//! What `setup webhook` and `doctor` ask Qlik Cloud: who the credential is
//! (`GET /api/v1/users/me`), its API key (`GET /api/v1/api-keys/{id}`), and the Webhooks API
//! (list by URL, create, update with a JSON Patch, recent deliveries). Shapes from `@qlik/api`
//! (users, api-keys, webhooks).

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::{Deserialize, Serialize};

use super::{decode_json, segment, ApiError, QlikClient, JSON_LIMIT};

const ME: &str = "GET /api/v1/users/me";
const API_KEY: &str = "GET /api/v1/api-keys/{id}";
const WEBHOOKS: &str = "GET /api/v1/webhooks";
const CREATE: &str = "POST /api/v1/webhooks";
const UPDATE: &str = "PATCH /api/v1/webhooks/{id}";
const DELIVERIES: &str = "GET /api/v1/webhooks/{id}/deliveries";
/// Recent deliveries `doctor` looks at.
const RECENT: u32 = 20;

/// The user a credential acts as.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "assignedRoles")]
    assigned_roles: Vec<Role>,
}

#[derive(Debug, Clone, Deserialize)]
struct Role {
    name: String,
}

impl Me {
    /// Whether the user has the role `name` (e.g. `TenantAdmin`).
    pub fn has_role(&self, name: &str) -> bool {
        self.assigned_roles.iter().any(|r| r.name == name)
    }
}

/// An API key's state.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiKey {
    /// `active`, `expired` or `revoked`.
    pub status: String,
    pub expiry: Option<DateTime<Utc>>,
}

/// A webhook as Qlik lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub url: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub event_types: Vec<String>,
    #[serde(default)]
    pub disabled_reason: Option<String>,
}

/// The webhook `setup webhook` wants: created as is, or patched into an existing one.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WantedWebhook<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub url: &'a str,
    pub event_types: &'a [String],
    pub secret: &'a str,
    pub enabled: bool,
    pub level: &'static str,
    pub enable_cloud_event_delivery: bool,
}

/// One delivery of a webhook.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    #[serde(default)]
    pub event_type: String,
    /// `success` or `fail`.
    pub status: String,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub triggered_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub response: Option<DeliveryResponse>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryResponse {
    pub status_code: Option<u16>,
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

/// One JSON Patch operation (RFC 6902), as the Webhooks API takes them.
#[derive(Serialize)]
struct Patch {
    op: &'static str,
    path: &'static str,
    value: serde_json::Value,
}

impl QlikClient {
    pub async fn me(&self) -> Result<Me, ApiError> {
        self.get_json(ME, &format!("{}/api/v1/users/me", self.base))
            .await
    }

    pub async fn api_key(&self, id: &str) -> Result<ApiKey, ApiError> {
        let url = format!("{}/api/v1/api-keys/{}", self.base, segment(API_KEY, id)?);
        self.get_json(API_KEY, &url).await
    }

    /// The tenant's webhooks whose URL is `url` exactly.
    pub async fn webhooks_for(&self, url: &str) -> Result<Vec<Webhook>, ApiError> {
        let list = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/webhooks", self.base),
            &[("url", url), ("limit", "100")],
        )
        .map_err(|_| ApiError::BadTenantUrl {
            url: self.base.clone(),
        })?;
        let page: List<Webhook> = self.get_json(WEBHOOKS, list.as_str()).await?;
        Ok(page.data.into_iter().filter(|w| w.url == url).collect())
    }

    pub async fn create_webhook(&self, wanted: &WantedWebhook<'_>) -> Result<Webhook, ApiError> {
        let url = format!("{}/api/v1/webhooks", self.base);
        let body = self
            .fetch(CREATE, JSON_LIMIT, |http| {
                http.post(&url)
                    .header(ACCEPT, "application/json")
                    .json(wanted)
            })
            .await?;
        decode_json(CREATE, body)
    }

    /// Replaces the fields `setup webhook` owns on webhook `id` (Qlik answers 204).
    pub async fn update_webhook(
        &self,
        id: &str,
        wanted: &WantedWebhook<'_>,
    ) -> Result<(), ApiError> {
        let url = format!("{}/api/v1/webhooks/{}", self.base, segment(UPDATE, id)?);
        let replace = |path, value| Patch {
            op: "replace",
            path,
            value,
        };
        let patch = [
            replace("/name", wanted.name.into()),
            replace("/description", wanted.description.into()),
            replace("/eventTypes", wanted.event_types.into()),
            replace("/secret", wanted.secret.into()),
            replace("/enabled", wanted.enabled.into()),
        ];
        let body = serde_json::to_vec(&patch).map_err(|e| ApiError::Decode {
            call: UPDATE,
            message: e.to_string(),
        })?;
        self.fetch(UPDATE, JSON_LIMIT, |http| {
            http.patch(&url)
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone())
        })
        .await?;
        Ok(())
    }

    /// The webhook's latest deliveries, newest first.
    pub async fn webhook_deliveries(&self, id: &str) -> Result<Vec<Delivery>, ApiError> {
        let url = reqwest::Url::parse_with_params(
            &format!(
                "{}/api/v1/webhooks/{}/deliveries",
                self.base,
                segment(DELIVERIES, id)?
            ),
            &[
                ("limit", RECENT.to_string()),
                ("sort", "-triggeredAt".to_owned()),
            ],
        )
        .map_err(|_| ApiError::BadTenantUrl {
            url: self.base.clone(),
        })?;
        let page: List<Delivery> = self.get_json(DELIVERIES, url.as_str()).await?;
        Ok(page.data)
    }
}
