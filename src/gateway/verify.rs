//! `Qlik-Signature`: the hex HMAC-SHA256 of the raw request body, keyed with the webhook secret
//! (no prefix, no timestamp). Pure: no I/O, no logging.
//!
//! Several secrets may be configured during a rotation; a body verifies when any of them signed
//! it. Each comparison is constant-time (`Mac::verify_slice`) and every secret is tried whatever
//! the outcome, so the answer's timing says nothing about the signature or about which secret
//! matched.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Length of an HMAC-SHA256 digest in bytes (64 hex characters).
const DIGEST_LEN: usize = 32;

/// Why a request's signature was not accepted. The HTTP answer is the same 401 for each; the
/// distinction is for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Qlik-Signature header")]
    Missing,
    #[error("the Qlik-Signature header is not 64 hex characters")]
    Malformed,
    #[error("the signature does not match the body with any configured secret")]
    Mismatch,
}

impl SignatureError {
    /// A bounded label for logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing_signature",
            Self::Malformed => "malformed_signature",
            Self::Mismatch => "bad_signature",
        }
    }
}

/// Checks signatures against the configured secrets. The keyed HMAC states are built once.
#[derive(Clone)]
pub struct Verifier {
    keys: Vec<HmacSha256>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier {{ secrets: {} }}", self.keys.len())
    }
}

impl Verifier {
    pub fn new(secrets: &[Secret]) -> Self {
        let keys = secrets
            .iter()
            // HMAC takes a key of any length, so this never drops a secret.
            .filter_map(|secret| HmacSha256::new_from_slice(secret.expose().as_bytes()).ok())
            .collect();
        Self { keys }
    }

    pub fn secrets(&self) -> usize {
        self.keys.len()
    }

    /// Checks a parsed signature against `body`. Returns which secret signed it (0-based, in
    /// configuration order), for the log during a rotation.
    pub fn verify(&self, body: &[u8], signature: &Signature) -> Result<usize, SignatureError> {
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            let mut mac = key.clone();
            mac.update(body);
            if mac.verify_slice(&signature.0).is_ok() && matched.is_none() {
                matched = Some(index);
            }
        }
        matched.ok_or(SignatureError::Mismatch)
    }
}

/// A `Qlik-Signature` value that has the shape of a digest: 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature([u8; DIGEST_LEN]);

impl Signature {
    /// Parses the header value, if any: either case, surrounding whitespace ignored. Done before
    /// the body is read, so a request without a usable signature costs nothing more.
    pub fn parse(header: Option<&[u8]>) -> Result<Signature, SignatureError> {
        let text = header.map(<[u8]>::trim_ascii).unwrap_or_default();
        if text.is_empty() {
            return Err(SignatureError::Missing);
        }
        let mut digest = [0u8; DIGEST_LEN];
        hex::decode_to_slice(text, &mut digest).map_err(|_| SignatureError::Malformed)?;
        Ok(Signature(digest))
    }
}

/// At most the first 8 hex characters of a header value, for logs; anything else shows as `-`.
pub fn log_prefix(header: Option<&[u8]>) -> String {
    let text = header.map(<[u8]>::trim_ascii).unwrap_or_default();
    let prefix: String = text
        .iter()
        .take(8)
        .take_while(|b| b.is_ascii_hexdigit())
        .map(|&b| char::from(b))
        .collect();
    if prefix.is_empty() {
        "-".to_owned()
    } else {
        prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of the shared fixtures (`qlik/webhook.md`).
    const BODY: &[u8] = include_bytes!("../../tests/fixtures/events/webhook-example-body.json");
    const SECRET: &str = "qlik-webhook-secret-0123456789abcdef";
    const SIGNATURE: &str = "d0236b256d79a11858500ed81ffa9123575d9fa57fc110f1c42240bfcf55c717";

    fn verifier(secrets: &[&str]) -> Verifier {
        Verifier::new(&secrets.iter().map(|s| Secret::new(*s)).collect::<Vec<_>>())
    }

    /// What the gateway does: parse the header, then verify the body.
    trait Check {
        fn check(&self, body: &[u8], header: Option<&[u8]>) -> Result<usize, SignatureError>;
    }

    impl Check for Verifier {
        fn check(&self, body: &[u8], header: Option<&[u8]>) -> Result<usize, SignatureError> {
            self.verify(body, &Signature::parse(header)?)
        }
    }

    #[test]
    fn the_worked_example_verifies() {
        assert_eq!(BODY.len(), 1062, "the fixture's exact bytes");
        let v = verifier(&[SECRET]);
        assert_eq!(v.check(BODY, Some(SIGNATURE.as_bytes())), Ok(0));
    }

    #[test]
    fn uppercase_hex_and_surrounding_whitespace_verify() {
        let v = verifier(&[SECRET]);
        let upper = SIGNATURE.to_ascii_uppercase();
        assert_eq!(v.check(BODY, Some(upper.as_bytes())), Ok(0));
        let padded = format!(" {SIGNATURE}\t");
        assert_eq!(v.check(BODY, Some(padded.as_bytes())), Ok(0));
    }

    #[test]
    fn a_trailing_newline_in_the_body_fails() {
        let v = verifier(&[SECRET]);
        let mut body = BODY.to_vec();
        body.push(b'\n');
        assert_eq!(
            v.check(&body, Some(SIGNATURE.as_bytes())),
            Err(SignatureError::Mismatch)
        );
        // The fixture's negative control is the right signature for that body.
        let control = "b06eccde1acf6dd16a8ee5d04c70c1d7d1e20c435e868c5a8df6bead1597ba06";
        assert_eq!(v.check(&body, Some(control.as_bytes())), Ok(0));
    }

    #[test]
    fn the_second_secret_of_a_rotation_pair_verifies() {
        let v = verifier(&["an-older-secret-that-is-long-enough-000", SECRET]);
        assert_eq!(v.check(BODY, Some(SIGNATURE.as_bytes())), Ok(1));
        let other = verifier(&["an-older-secret-that-is-long-enough-000"]);
        assert_eq!(
            other.check(BODY, Some(SIGNATURE.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn empty_or_garbage_headers_fail() {
        let v = verifier(&[SECRET]);
        assert_eq!(v.check(BODY, None), Err(SignatureError::Missing));
        assert_eq!(v.check(BODY, Some(b"")), Err(SignatureError::Missing));
        assert_eq!(v.check(BODY, Some(b"   ")), Err(SignatureError::Missing));
        for garbage in [
            &b"not hex at all"[..],
            &SIGNATURE.as_bytes()[..63],
            &SIGNATURE.as_bytes()[..62],
            b"sha256=d0236b256d79a11858500ed81ffa9123575d9fa57fc110f1c42240bfcf55c717",
            b"0CNrJW15oRhYUA7YH/qRI1ddn6V/wRDxxCJAv89Vxxc=",
            b"\xff\xfe",
        ] {
            assert_eq!(
                v.check(BODY, Some(garbage)),
                Err(SignatureError::Malformed),
                "{}",
                String::from_utf8_lossy(garbage)
            );
        }
        let extra = format!("{SIGNATURE}00");
        assert_eq!(
            v.check(BODY, Some(extra.as_bytes())),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn no_secret_verifies_nothing() {
        let v = verifier(&[]);
        assert_eq!(
            v.check(BODY, Some(SIGNATURE.as_bytes())),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn logs_see_at_most_eight_hex_characters() {
        assert_eq!(log_prefix(Some(SIGNATURE.as_bytes())), "d0236b25");
        assert_eq!(log_prefix(Some(b"  abc")), "abc");
        assert_eq!(log_prefix(Some(b"<script>")), "-");
        assert_eq!(log_prefix(None), "-");
    }
}
