//! Qlik Cloud REST answers as they come over the wire, and their reduction to the model types.
//! Read leniently, like events: a missing optional field, or one of an unexpected type, leaves
//! that part empty instead of losing the whole answer. Field reference: shared fixtures
//! `qlik/rest-api.md`.

use chrono::{DateTime, Utc};
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use crate::qlik::model::{AppInfo, AutomationInfo, ItemInfo, ReloadInfo, SpaceInfo, UserInfo};

/// `Some(value)` when the field has the expected type, `None` otherwise.
fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).ok())
}

/// Qlik sends `""` for "none" (personal space, unpublished app).
fn text(value: Option<String>) -> Option<String> {
    value.filter(|s| !s.is_empty())
}

/// `GET /api/v1/reloads/{reloadId}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Reload {
    #[serde(default, deserialize_with = "lenient")]
    status: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    trigger: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    error_code: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    error_message: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    log: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    partial: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    creation_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient")]
    start_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient")]
    end_time: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient")]
    resource_type: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    resource_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    weight: Option<i64>,
}

impl From<Reload> for ReloadInfo {
    fn from(r: Reload) -> Self {
        ReloadInfo {
            status: text(r.status),
            trigger: text(r.trigger),
            error_code: text(r.error_code),
            error_message: text(r.error_message),
            log: text(r.log),
            user_id: text(r.user_id),
            partial: r.partial,
            creation_time: r.creation_time,
            start_time: r.start_time,
            end_time: r.end_time,
            resource_type: text(r.resource_type),
            resource_id: text(r.resource_id),
            weight: r.weight,
        }
    }
}

/// `GET /api/v1/apps/{appId}`: everything we use is under `attributes`.
#[derive(Deserialize)]
pub(super) struct App {
    #[serde(default, deserialize_with = "lenient")]
    attributes: Option<AppAttributes>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppAttributes {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    thumbnail: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    has_section_access: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    publish_time: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    owner_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    space_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    usage: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    is_direct_query_mode: Option<bool>,
}

impl From<App> for AppInfo {
    fn from(app: App) -> Self {
        let Some(a) = app.attributes else {
            return AppInfo::default();
        };
        AppInfo {
            name: text(a.name),
            description: text(a.description),
            thumbnail: text(a.thumbnail),
            has_section_access: a.has_section_access,
            publish_time: text(a.publish_time),
            owner_id: text(a.owner_id),
            space_id: text(a.space_id),
            usage: text(a.usage),
            is_direct_query_mode: a.is_direct_query_mode,
        }
    }
}

/// `GET /api/v1/automations/{id}` (`@qlik/api` `AutomationDetailResponseObject`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Automation {
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    description: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    owner_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    space_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    run_mode: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    state: Option<String>,
}

impl From<Automation> for AutomationInfo {
    fn from(a: Automation) -> Self {
        AutomationInfo {
            name: text(a.name),
            description: text(a.description),
            owner_id: text(a.owner_id),
            space_id: text(a.space_id),
            run_mode: text(a.run_mode),
            state: text(a.state),
        }
    }
}

/// `GET /api/v1/items?resourceType=app&resourceId=...`.
#[derive(Deserialize)]
pub(super) struct Items {
    #[serde(default)]
    pub(super) data: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Item {
    #[serde(default, deserialize_with = "lenient")]
    pub(super) resource_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    space_id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    meta: Option<ItemMeta>,
    #[serde(default, deserialize_with = "lenient")]
    resource_size: Option<ResourceSize>,
    #[serde(default, deserialize_with = "lenient")]
    links: Option<ItemLinks>,
}

#[derive(Deserialize)]
struct ItemMeta {
    #[serde(default)]
    tags: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceSize {
    #[serde(default, deserialize_with = "lenient")]
    app_file: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    app_memory: Option<u64>,
}

#[derive(Deserialize)]
struct ItemLinks {
    #[serde(default)]
    open: Option<Value>,
}

impl From<Item> for ItemInfo {
    fn from(item: Item) -> Self {
        let size = item.resource_size;
        ItemInfo {
            tags: item
                .meta
                .map(|m| m.tags)
                .unwrap_or_default()
                .iter()
                .filter_map(|tag| tag.get("name")?.as_str())
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect(),
            app_file_size: size.as_ref().and_then(|s| s.app_file),
            app_memory_size: size.as_ref().and_then(|s| s.app_memory),
            space_id: text(item.space_id),
            open_url: item
                .links
                .and_then(|l| l.open)
                .and_then(|open| Some(open.get("href")?.as_str()?.to_owned()))
                .filter(|s| !s.is_empty()),
        }
    }
}

/// `GET /api/v1/users/{userId}`.
#[derive(Deserialize)]
pub(super) struct User {
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    email: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    picture: Option<String>,
}

impl User {
    /// `asked_for` stands in when the answer omits the id.
    pub(super) fn into_info(self, asked_for: &str) -> UserInfo {
        UserInfo {
            id: text(self.id).unwrap_or_else(|| asked_for.to_owned()),
            name: text(self.name),
            email: text(self.email),
            picture: text(self.picture),
        }
    }
}

/// `GET /api/v1/spaces/{spaceId}`.
#[derive(Deserialize)]
pub(super) struct Space {
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    name: Option<String>,
    #[serde(rename = "type", default, deserialize_with = "lenient")]
    kind: Option<String>,
}

impl Space {
    pub(super) fn into_info(self, asked_for: &str) -> SpaceInfo {
        SpaceInfo {
            id: text(self.id).unwrap_or_else(|| asked_for.to_owned()),
            name: text(self.name),
            kind: text(self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_costs_only_that_field() {
        let reload: Reload = serde_json::from_str(
            r#"{"status":"FAILED","partial":"no","endTime":42,"errorCode":null,"unknown":{}}"#,
        )
        .unwrap();
        let info = ReloadInfo::from(reload);
        assert_eq!(info.status.as_deref(), Some("FAILED"));
        assert_eq!(
            (info.partial, info.end_time, info.error_code),
            (None, None, None)
        );
    }

    #[test]
    fn empty_strings_mean_none() {
        let app: App =
            serde_json::from_str(r#"{"attributes":{"name":"A","spaceId":"","publishTime":""}}"#)
                .unwrap();
        let info = AppInfo::from(app);
        assert_eq!(info.name.as_deref(), Some("A"));
        assert_eq!((info.space_id, info.publish_time), (None, None));
    }

    #[test]
    fn an_item_without_meta_or_size_still_converts() {
        let items: Items = serde_json::from_str(r#"{"data":[{"resourceId":"a"}]}"#).unwrap();
        let item = items.data.into_iter().next().unwrap();
        assert_eq!(item.resource_id.as_deref(), Some("a"));
        assert_eq!(ItemInfo::from(item), ItemInfo::default());
    }
}
