//! `tenants[].rate_limit`: the client-side request budget of a tenant's credential.

use super::reader::Section;

/// `tenants[].rate_limit`: REST requests the daemon allows itself per tenant credential, a token
/// bucket of `burst` requests refilled at `per_minute`. The defaults are Qlik's tier 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantRateLimit {
    pub per_minute: u32,
    pub burst: u32,
}

impl Default for TenantRateLimit {
    fn default() -> Self {
        Self {
            per_minute: 1_000,
            burst: 5_000,
        }
    }
}

pub(super) fn read_rate_limit(s: &Section) -> TenantRateLimit {
    let default = TenantRateLimit::default();
    let limit = TenantRateLimit {
        per_minute: s.or("per_minute", default.per_minute),
        burst: s.or("burst", default.burst),
    };
    for (key, value) in [("per_minute", limit.per_minute), ("burst", limit.burst)] {
        if value == 0 {
            s.problem(key, "must be at least 1");
        }
    }
    limit
}
