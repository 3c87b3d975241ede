//! Typed settings from single YAML values: text, secrets, URLs, mailboxes, paths, numbers,
//! durations, sizes, addresses, time zones, lists and keywords, each with a human reason when
//! the value does not fit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_yaml_ng::Value;

use super::secret::Secret;
use crate::domain::Keyword;

pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Conversion of one YAML value into a typed setting, with a human reason on failure.
///
/// Scalars are lenient across text and numbers because environment overrides always arrive as
/// text (`RELOAD_BUTLER__ADMIN__LISTEN`, `RELOAD_BUTLER__DELIVERY__RETRY_MAX=90s`).
pub trait FromYaml: Sized {
    fn from_yaml(value: &Value) -> Result<Self, String>;
}

fn scalar_text(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected text, found {}", kind(other))),
    }
}

impl FromYaml for String {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        scalar_text(value)
    }
}

impl FromYaml for Secret {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        // The value itself never goes into the reason.
        scalar_text(value)
            .map(Secret::new)
            .map_err(|_| format!("expected text, found {}", kind(value)))
    }
}

impl FromYaml for url::Url {
    /// An http:// or https:// URL with a host (plain http for proxies and tests): the only
    /// kind the config holds besides the MQTT broker's, which has its own syntax.
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let text = scalar_text(value)?;
        http_url(text.trim())
            .map_err(|why| format!("expected an https:// url, found `{}` ({why})", text.trim()))
    }
}

/// `text` as an http(s) URL with a host; the reason is fixed text, never a part of `text`.
pub fn http_url(text: &str) -> Result<url::Url, &'static str> {
    let url = url::Url::parse(text).map_err(|e| match e {
        url::ParseError::RelativeUrlWithoutBase => "no https:// in front",
        url::ParseError::InvalidDomainCharacter | url::ParseError::IdnaError => {
            "the host has a character hosts cannot have"
        }
        url::ParseError::EmptyHost => "no host",
        url::ParseError::InvalidPort => "the port is not a number up to 65535",
        _ => "not a URL",
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("only http:// and https:// are supported");
    }
    if !url.has_host() {
        return Err("no host");
    }
    Ok(url)
}

impl FromYaml for lettre::message::Mailbox {
    /// `alerts@acme.com` or `Qlik Cloud alerts <alerts@acme.com>`, as lettre will send it.
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let text = scalar_text(value)?;
        text.trim().parse().map_err(|e| {
            format!(
                "`{}` is not a mailbox such as `alerts@acme.com` or `Alerts <alerts@acme.com>` ({e})",
                text.trim()
            )
        })
    }
}

impl FromYaml for PathBuf {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        scalar_text(value).map(PathBuf::from)
    }
}

impl FromYaml for bool {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s == "true" => Ok(true),
            Value::String(s) if s == "false" => Ok(false),
            other => Err(format!("expected true or false, found {}", kind(other))),
        }
    }
}

macro_rules! from_yaml_int {
    ($($t:ty),*) => {$(
        impl FromYaml for $t {
            fn from_yaml(value: &Value) -> Result<Self, String> {
                let text = scalar_text(value)?;
                text.trim().parse::<$t>().map_err(|_| {
                    format!("expected a whole number from {} to {}, found `{text}`", <$t>::MIN, <$t>::MAX)
                })
            }
        }
    )*};
}
from_yaml_int!(u16, u32, u64, usize);

impl FromYaml for Duration {
    /// Human durations: `90s`, `5m`, `1h 30m`, `30d`; `0` means zero.
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let text = scalar_text(value)?;
        let text = text.trim();
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        let duration = humantime::parse_duration(text).map_err(|_| {
            format!("expected a duration such as `90s`, `5m` or `1h`, found `{text}`")
        })?;
        if duration > MAX_DURATION {
            return Err(format!("expected at most 100y, found `{text}`"));
        }
        Ok(duration)
    }
}

/// The longest duration any key accepts: longer is a typo, and would overflow the store's
/// millisecond arithmetic (which saturates anyway, see `domain::millis`).
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600); // humantime's `100y`

/// A size in bytes: `1MiB`, `512KiB`, `2MB`, or a plain number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromYaml for ByteSize {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let text = scalar_text(value)?;
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1_000,
            "kib" => 1 << 10,
            "mb" => 1_000_000,
            "mib" => 1 << 20,
            "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            _ => {
                return Err(format!(
                    "expected a size such as `1MiB` or `512KiB`, found `{text}`"
                ))
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .map(ByteSize)
            .ok_or_else(|| format!("expected a size such as `1MiB` or `512KiB`, found `{text}`"))
    }
}

impl FromYaml for SocketAddr {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let text = scalar_text(value)?;
        text.trim().parse().map_err(|_| {
            format!("expected an address and port such as `127.0.0.1:9090`, found `{text}`")
        })
    }
}

impl FromYaml for crate::zone::Zone {
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let text = scalar_text(value)?;
        crate::zone::Zone::named(text.trim()).ok_or_else(|| {
            format!("unknown time zone `{text}` (use an IANA name such as `Europe/Stockholm`)")
        })
    }
}

impl<T: FromYaml> FromYaml for Vec<T> {
    /// A list; text is read as a YAML flow list so that environment overrides can set lists
    /// (`RELOAD_BUTLER__ALERT_ON='[reload_failed]'`).
    fn from_yaml(value: &Value) -> Result<Self, String> {
        match value {
            Value::Sequence(seq) => seq
                .iter()
                .enumerate()
                .map(|(i, v)| T::from_yaml(v).map_err(|why| format!("item {i}: {why}")))
                .collect(),
            Value::String(text) => match serde_yaml_ng::from_str::<Value>(text) {
                Ok(parsed @ Value::Sequence(_)) => Self::from_yaml(&parsed),
                _ => Err(format!("expected a list, found `{text}`")),
            },
            other => Err(format!("expected a list, found {}", kind(other))),
        }
    }
}

impl<T: Keyword> FromYaml for T {
    /// One of the enum's words; the error lists them all.
    fn from_yaml(value: &Value) -> Result<Self, String> {
        let text = scalar_text(value)?;
        T::from_word(text.trim()).ok_or_else(|| {
            format!(
                "expected one of {}, found `{}`",
                T::WORDS.join(", "),
                text.trim()
            )
        })
    }
}
