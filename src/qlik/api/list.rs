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

/// `links`: read leniently, so that a `next` without `href` (or of another shape) ends the
/// paging instead of failing the page.
#[derive(Deserialize)]
struct Links {
    #[serde(default)]
    next: Option<serde_json::Value>,
}

impl Links {
    fn next_href(&self) -> Option<&str> {
        self.next
            .as_ref()?
            .get("href")?
            .as_str()
            .filter(|h| !h.is_empty())
    }
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
        tenant_id: &str,
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
            let next = page
                .links
                .as_ref()
                .and_then(Links::next_href)
                .map(str::to_owned);
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
            let Some(next) = next.filter(|_| !older) else {
                break;
            };
            // The next page must be on this tenant: the bearer token goes with it.
            match next_page(&first, tenant_id, &next) {
                Ok(next) => url = next.to_string(),
                Err(why) => {
                    tracing::warn!(
                        tenant_id = %tenant_id,
                        next = ?next.chars().take(200).collect::<String>(),
                        why,
                        "the Reloads API's next page is not on this tenant; the poll stops paging here and looks again at the next interval"
                    );
                    break;
                }
            }
        }
        Ok(found)
    }
}

/// Where the next page is, when it is this tenant's: a path or URL on the tenant's own host, or
/// on its other host name `<tenantId>.<region domain>` (Qlik answers with either). Anything
/// else is refused with the reason: the API credential would go with the request.
fn next_page(
    first: &reqwest::Url,
    tenant_id: &str,
    href: &str,
) -> Result<reqwest::Url, &'static str> {
    let next = first.join(href).map_err(|_| "not a URL")?;
    if next.scheme() != first.scheme() {
        return Err("another scheme");
    }
    if next.port_or_known_default() != first.port_or_known_default() {
        return Err("another port");
    }
    let (Some(host), Some(own)) = (next.host_str(), first.host_str()) else {
        return Err("no host");
    };
    if host.eq_ignore_ascii_case(own) {
        return Ok(next);
    }
    let region = own.split_once('.').map(|(_, region)| region);
    match (host.split_once('.'), region) {
        (Some((label, rest)), Some(region))
            if label.eq_ignore_ascii_case(tenant_id) && rest.eq_ignore_ascii_case(region) =>
        {
            Ok(next)
        }
        _ => Err("another host"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_pages_stay_on_the_tenant() {
        let first = reqwest::Url::parse("https://acme.eu.qlikcloud.com/api/v1/reloads?limit=100")
            .expect("url");
        let tenant = "xqFQ0k66vSR8f9G7J-vYtHZQkiYrCpct";
        let ok = |href: &str| next_page(&first, tenant, href).map(|u| u.to_string());
        assert_eq!(
            ok("https://acme.eu.qlikcloud.com/api/v1/reloads?next=abc"),
            Ok("https://acme.eu.qlikcloud.com/api/v1/reloads?next=abc".to_owned())
        );
        assert_eq!(
            ok("/api/v1/reloads?next=abc"),
            Ok("https://acme.eu.qlikcloud.com/api/v1/reloads?next=abc".to_owned())
        );
        assert_eq!(
            ok("https://xqfq0k66vsr8f9g7j-vythzqkiyrcpct.eu.qlikcloud.com/api/v1/reloads?next=abc"),
            Ok(
                "https://xqfq0k66vsr8f9g7j-vythzqkiyrcpct.eu.qlikcloud.com/api/v1/reloads?next=abc"
                    .to_owned()
            ),
            "the tenant's other host name"
        );
        assert_eq!(
            ok("https://evil.example/api/v1/reloads"),
            Err("another host")
        );
        assert_eq!(
            ok("https://other.eu.qlikcloud.com/api/v1/reloads"),
            Err("another host")
        );
        assert_eq!(
            ok("https://xqfq0k66vsr8f9g7j-vythzqkiyrcpct.us.qlikcloud.com/x"),
            Err("another host"),
            "another region"
        );
        assert_eq!(ok("http://acme.eu.qlikcloud.com/x"), Err("another scheme"));
        assert_eq!(
            ok("https://acme.eu.qlikcloud.com:8443/x"),
            Err("another port")
        );
    }

    #[test]
    fn a_next_link_without_href_ends_the_paging() {
        let page: Page =
            serde_json::from_str(r#"{"data":[],"links":{"self":{"href":"x"},"next":{}}}"#)
                .expect("the page parses");
        assert_eq!(page.links.as_ref().and_then(Links::next_href), None);
        let page: Page =
            serde_json::from_str(r#"{"data":[],"links":{"next":null}}"#).expect("parses");
        assert_eq!(page.links.as_ref().and_then(Links::next_href), None);
    }
}
