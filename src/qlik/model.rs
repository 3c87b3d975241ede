//! What enrichment learns about a failed reload from the Qlik Cloud REST API, already reduced to
//! what alerts use. Every part is optional: a look-up that failed leaves its part `None`, and the
//! alert still goes out with what the event carried.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrichment {
    /// `GET /api/v1/reloads/{reloadId}`.
    pub reload: Option<ReloadInfo>,
    /// `GET /api/v1/apps/{appId}`.
    pub app: Option<AppInfo>,
    /// `GET /api/v1/items?resourceType=app&resourceId={appId}`.
    pub item: Option<ItemInfo>,
    /// `GET /api/v1/users/{ownerId}`.
    pub owner: Option<UserInfo>,
    /// `GET /api/v1/users/{userId}`: the user who triggered the reload (the owner's answer when
    /// it is the same user).
    #[serde(default)]
    pub user: Option<UserInfo>,
    /// `GET /api/v1/spaces/{spaceId}`; `None` for personal spaces.
    pub space: Option<SpaceInfo>,
    /// `GET /api/v1/apps/{appId}/reloads/logs/{reloadId}`: the full script log, line endings as
    /// Qlik sent them (CRLF).
    pub script_log: Option<String>,
    /// `GET /api/v1/automations/{automationId}`, for an automation run.
    #[serde(default)]
    pub automation: Option<AutomationInfo>,
    /// Look-ups that failed, for logs and metrics.
    pub failures: Vec<LookupFailure>,
}

/// What an automation alert uses of `GET /api/v1/automations/{id}` (`@qlik/api`
/// `AutomationDetailResponseObject`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AutomationInfo {
    pub name: Option<String>,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    pub space_id: Option<String>,
    /// `manual`, `scheduled`, `triggered` or `webhook`.
    pub run_mode: Option<String>,
    /// `available`, `unavailable` or `disabled`.
    pub state: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReloadInfo {
    /// `QUEUED`, `RELOADING`, `SUCCEEDED`, `FAILED`, `CANCELED`, `EXCEEDED_LIMIT`, ...
    pub status: Option<String>,
    /// What started it (`type`): hub, chronos, external, automations, data-refresh, choreographer.
    pub trigger: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// The reload's short log (a summary since Feb 2026), shown verbatim.
    pub log: Option<String>,
    pub user_id: Option<String>,
    pub partial: Option<bool>,
    pub creation_time: Option<DateTime<Utc>>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    /// `resourceType`: the service that started it (`reload-tasks`, `api`, `automate`, ...).
    #[serde(default)]
    pub resource_type: Option<String>,
    /// `resourceId`: the id there (the reload task's id for `reload-tasks`).
    #[serde(default)]
    pub resource_id: Option<String>,
    /// `weight`: queue priority, 1–10.
    #[serde(default)]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppInfo {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Often a path relative to the tenant (`/api/v1/apps/.../thumb.png`), or empty.
    pub thumbnail: Option<String>,
    pub has_section_access: Option<bool>,
    /// Non-empty when the app is published (`published` means something else in Qlik Cloud).
    pub publish_time: Option<String>,
    pub owner_id: Option<String>,
    pub space_id: Option<String>,
    pub usage: Option<String>,
    pub is_direct_query_mode: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemInfo {
    /// Tag names of the app (`meta.tags[].name`).
    pub tags: Vec<String>,
    /// Bytes on disk (`resourceSize.appFile`).
    pub app_file_size: Option<u64>,
    /// Bytes in memory (`resourceSize.appMemory`).
    pub app_memory_size: Option<u64>,
    pub space_id: Option<String>,
    /// `links.open.href`: the hub URL of the app.
    pub open_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub picture: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpaceInfo {
    pub id: String,
    pub name: Option<String>,
    /// `shared`, `managed` or `data`.
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupFailure {
    /// `reload`, `app`, `item`, `owner`, `user`, `space` or `script_log`.
    pub lookup: String,
    pub error: String,
}

/// One reload from the Reloads list (the reconciliation poll).
#[derive(Debug, Clone, PartialEq)]
pub struct ReloadSummary {
    pub id: String,
    pub app_id: String,
    pub info: ReloadInfo,
}
