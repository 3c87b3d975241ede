//! `GET /api/v1/reloads`: the reloads that ended in failure, newest first, page by page — what
//! the reconciliation poll asks.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{ApiError, QlikClient};
use crate::qlik::model::{ReloadInfo, ReloadSummary};

pub(super) const LIST: &str = "GET /api/v1/reloads";
/// Reloads asked for per page (the API's maximum).
const PAGE: u32 = 100;

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<serde_json::Value>,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Deserialize)]
struct Links {
    next: Option<Href>,
}

#[derive(Deserialize)]
struct Href {
    href: String,
}

/// One item of the list: the reload's fields plus its ids.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    app_id: String,
    #[serde(flatten)]
    reload: super::wire::Reload,
}

impl QlikClient {
    /// Reloads with one of `statuses` (`FAILED`, `EXCEEDED_LIMIT`, `CANCELED`), newest first,
    /// until one was created before `created_after` or `max_pages` pages were read. Items that
    /// do not parse are skipped, not fatal.
    pub async fn failed_reloads(
        &self,
        statuses: &[&str],
        created_after: DateTime<Utc>,
        max_pages: usize,
    ) -> Result<Vec<ReloadSummary>, ApiError> {
        let filter = statuses
            .iter()
            .map(|s| format!("status eq \"{s}\""))
            .collect::<Vec<_>>()
            .join(" or ");
        let first = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/reloads", self.base),
            &[
                ("limit", PAGE.to_string()),
                ("log", "false".to_owned()),
                ("sort", "-creationTime".to_owned()),
                ("filter", filter),
            ],
        )
        .map_err(|_| ApiError::BadTenantUrl {
            url: self.base.clone(),
        })?;
        let mut url = first.to_string();
        let mut found = Vec::new();
        for _ in 0..max_pages {
            let page: Page = self.get_json(LIST, &url).await?;
            let mut older = false;
            for value in page.data {
                let Ok(item) = serde_json::from_value::<Item>(value) else {
                    continue;
                };
                let info = ReloadInfo::from(item.reload);
                if info.creation_time.is_some_and(|t| t < created_after) {
                    older = true;
                    continue;
                }
                found.push(ReloadSummary {
                    id: item.id,
                    app_id: item.app_id,
                    info,
                });
            }
            match page.links.and_then(|l| l.next) {
                // The next page must be on this tenant: the bearer token goes with it.
                Some(next) if !older && next.href.starts_with(&format!("{}/", self.base)) => {
                    url = next.href;
                }
                _ => break,
            }
        }
        Ok(found)
    }
}
