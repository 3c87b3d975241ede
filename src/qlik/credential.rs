//! The health of a tenant's credential, judged the same way by `doctor` and by the daemon's
//! watch: does Qlik accept it (`GET /api/v1/users/me`), and when does its API key expire (the
//! key's own record, `GET /api/v1/api-keys/{id}`, when the key names its id; else the key's
//! `exp` claim).

use base64::Engine as _;
use chrono::{DateTime, Utc};

use super::api::{ApiError, QlikClient};

/// An API key expiring sooner than this is a problem to fix now.
pub const EXPIRY_WARNING: chrono::Duration = chrono::Duration::days(30);

/// What is wrong with a tenant's credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialProblem {
    /// Qlik answered 401: the key or OAuth client is refused.
    Refused,
    /// The API key is `expired` or `revoked` by Qlik's own record.
    Inactive(String),
    Expired(DateTime<Utc>),
    /// Expires within [`EXPIRY_WARNING`].
    Expiring(DateTime<Utc>),
}

impl CredentialProblem {
    /// A bounded label, for metrics and the once-a-day notice key.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Inactive(_) => "inactive",
            Self::Expired(_) => "expired",
            Self::Expiring(_) => "expiring",
        }
    }

    /// What is wrong and what to do, in one sentence.
    pub fn describe(&self, now: DateTime<Utc>) -> String {
        match self {
            Self::Refused => "Qlik Cloud refuses the credential (HTTP 401): create a new API key or OAuth client secret for tenants[].auth".into(),
            Self::Inactive(status) => {
                format!("the API key is {status}: create a new API key for tenants[].auth.api_key")
            }
            Self::Expired(at) => format!(
                "the API key expired on {}: create a new API key for tenants[].auth.api_key",
                at.format("%Y-%m-%d")
            ),
            Self::Expiring(at) => format!(
                "the API key expires on {}, in {} days: create a new API key for tenants[].auth.api_key before then",
                at.format("%Y-%m-%d"),
                (*at - now).num_days()
            ),
        }
    }
}

/// An API key's state as far as it can be learnt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Expired or revoked by Qlik's record of the key.
    Inactive(String),
    /// Active (or not known otherwise); its expiry when known.
    Expires(Option<DateTime<Utc>>),
}

impl KeyState {
    /// The problem, if the key has one at `now`.
    pub fn problem(&self, now: DateTime<Utc>) -> Option<CredentialProblem> {
        match self {
            Self::Inactive(status) => Some(CredentialProblem::Inactive(status.clone())),
            Self::Expires(Some(at)) if *at <= now => Some(CredentialProblem::Expired(*at)),
            Self::Expires(Some(at)) if *at - now < EXPIRY_WARNING => {
                Some(CredentialProblem::Expiring(*at))
            }
            Self::Expires(_) => None,
        }
    }
}

/// The key's state: from Qlik's record of it when the key names its id and the record can be
/// read, else from the key's own `exp` claim.
pub async fn key_state(api: &QlikClient, key: &str) -> KeyState {
    let claims = jwt_claims(key);
    let id = claims
        .as_ref()
        .and_then(|c| c["jti"].as_str().map(str::to_owned));
    let record = match &id {
        Some(id) => api.api_key(id).await.ok(),
        None => None,
    };
    if let Some(record) = &record {
        if record.status != "active" {
            return KeyState::Inactive(record.status.clone());
        }
    }
    let expiry = record.and_then(|r| r.expiry).or_else(|| {
        claims
            .as_ref()
            .and_then(|c| c["exp"].as_i64())
            .and_then(|exp| DateTime::<Utc>::from_timestamp(exp, 0))
    });
    KeyState::Expires(expiry)
}

/// Whether a failed call says the credential is refused (rather than Qlik being unreachable).
pub fn refused(error: &ApiError) -> bool {
    error.status() == Some(401)
}

/// The claims of a JWT, read without checking its signature (Qlik checks it; only the key's id
/// and expiry are wanted).
fn jwt_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_claims_and_expiry() {
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"jti":"k1","exp":1900000000}"#);
        let claims = jwt_claims(&format!("eyJhbGciOiJFUzM4NCJ9.{payload}.sig")).unwrap();
        assert_eq!(claims["jti"], "k1");
        assert!(jwt_claims("not-a-jwt").is_none());
        let now = Utc::now();
        let soon = now + chrono::Duration::days(10);
        assert_eq!(
            KeyState::Expires(Some(soon)).problem(now),
            Some(CredentialProblem::Expiring(soon))
        );
        let text = CredentialProblem::Expiring(soon).describe(now);
        assert!(
            text.contains("in 9 days") || text.contains("in 10 days"),
            "{text}"
        );
        let past = now - chrono::Duration::days(1);
        assert_eq!(
            KeyState::Expires(Some(past)).problem(now),
            Some(CredentialProblem::Expired(past))
        );
        assert_eq!(
            KeyState::Expires(Some(now + chrono::Duration::days(90))).problem(now),
            None
        );
        assert_eq!(KeyState::Expires(None).problem(now), None);
        assert_eq!(
            KeyState::Inactive("revoked".into()).problem(now),
            Some(CredentialProblem::Inactive("revoked".into()))
        );
    }
}
