//! A Qlik Cloud REST API that enforces a rate limit the way Qlik documents it
//! (qlik.dev/apis/rest/rate-limiting): a budget of `burst` requests refilled at `per_minute`;
//! beyond it 429 with `Retry-After` and Qlik's error body, and *every* request is then refused
//! until that time has passed. Answers come from tests/fixtures/api/, each app with its own
//! name (`Storm app <appId>`) so an alert shows whether the name was looked up.
//!
//! Pure (no server): the tests serve it through wiremock (`qlik.rs`), the load test through
//! axum (`examples/loadtest/fakes.rs`, which includes this file).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The name the fake gives app `id`.
pub fn storm_app_name(id: &str) -> String {
    format!("Storm app {id}")
}

/// Qlik's published tier-1 budget: 1,000 a minute over a 5-minute window.
pub const TIER_1: Limit = Limit {
    burst: 5_000,
    per_minute: 1_000,
    retry_after: None,
};

#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub burst: u32,
    pub per_minute: u32,
    /// Seconds a 429 blocks every request; `None`: until the budget has a request again.
    pub retry_after: Option<u64>,
}

/// What the fake was asked and answered.
#[derive(Default)]
pub struct Load {
    pub requests: AtomicU64,
    pub rate_limited: AtomicU64,
    pub reloads: AtomicU64,
    pub apps: AtomicU64,
    pub items: AtomicU64,
    pub logs: AtomicU64,
}

impl Load {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One answer: status, `Retry-After` (for a 429), content type and body.
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub content_type: &'static str,
    pub body: String,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    blocked_until: Option<Instant>,
}

pub struct BudgetedQlik {
    limit: Limit,
    bucket: Mutex<Bucket>,
    pub load: Load,
    reload: String,
    app: serde_json::Value,
    items: serde_json::Value,
    user: String,
    space: String,
    log: String,
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/api/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn json(name: &str) -> serde_json::Value {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

impl BudgetedQlik {
    pub fn new(limit: Limit) -> BudgetedQlik {
        BudgetedQlik {
            limit,
            bucket: Mutex::new(Bucket {
                tokens: f64::from(limit.burst),
                at: Instant::now(),
                blocked_until: None,
            }),
            load: Load::default(),
            reload: fixture("reload-get-failed.json"),
            app: json("app-get.json"),
            items: json("items-app.json"),
            user: fixture("user-get.json"),
            space: fixture("space-get.json"),
            log: fixture("reload-log-failed.txt"),
        }
    }

    /// `Err(seconds)` when the request is refused with 429.
    fn admit(&self) -> Result<(), u64> {
        let mut b = self.bucket.lock().unwrap();
        let now = Instant::now();
        let per_second = f64::from(self.limit.per_minute) / 60.0;
        if let Some(until) = b.blocked_until.filter(|u| *u > now) {
            return Err((until - now).as_secs_f64().ceil().max(1.0) as u64);
        }
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_second).min(f64::from(self.limit.burst));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Ok(());
        }
        let wait = self
            .limit
            .retry_after
            .unwrap_or_else(|| ((1.0 - b.tokens) / per_second).ceil().max(1.0) as u64);
        b.blocked_until = Some(now + Duration::from_secs(wait));
        Err(wait)
    }

    /// The answer to `GET path?query`.
    pub fn answer(&self, method: &str, path: &str, query: &str) -> Answer {
        let load = &self.load;
        load.requests.fetch_add(1, Ordering::Relaxed);
        if let Err(wait) = self.admit() {
            load.rate_limited.fetch_add(1, Ordering::Relaxed);
            let body = serde_json::json!({"errors": [{
                "code": "HTTP-429",
                "title": "API rate limit reached.",
                "detail": format!("You need to wait {wait} seconds until limit is lifted."),
            }]});
            return Answer {
                status: 429,
                retry_after: Some(wait),
                content_type: "application/json",
                body: body.to_string(),
            };
        }
        let ok = |content_type, body: String| Answer {
            status: 200,
            retry_after: None,
            content_type,
            body,
        };
        if method != "GET" {
            return Answer {
                status: 405,
                retry_after: None,
                content_type: "text/plain",
                body: String::new(),
            };
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["api", "v1", "reloads", _] => {
                load.reloads.fetch_add(1, Ordering::Relaxed);
                ok("application/json", self.reload.clone())
            }
            ["api", "v1", "apps", id] => {
                load.apps.fetch_add(1, Ordering::Relaxed);
                let mut app = self.app.clone();
                app["attributes"]["id"] = (*id).into();
                app["attributes"]["name"] = storm_app_name(id).into();
                ok("application/json", app.to_string())
            }
            ["api", "v1", "items"] => {
                load.items.fetch_add(1, Ordering::Relaxed);
                let id = query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("resourceId="))
                    .unwrap_or_default();
                let mut items = self.items.clone();
                items["data"][0]["resourceId"] = id.into();
                items["data"][0]["name"] = storm_app_name(id).into();
                ok("application/json", items.to_string())
            }
            ["api", "v1", "users", _] => ok("application/json", self.user.clone()),
            ["api", "v1", "spaces", _] => ok("application/json", self.space.clone()),
            ["api", "v1", "apps", _, "reloads", "logs", _] => {
                load.logs.fetch_add(1, Ordering::Relaxed);
                ok("text/plain; charset=UTF-8", self.log.clone())
            }
            _ => Answer {
                status: 404,
                retry_after: None,
                content_type: "application/json",
                body: String::new(),
            },
        }
    }
}
