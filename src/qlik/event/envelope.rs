//! What the gateway reads of a signed body, whatever its event type: the tenant it names (for
//! the topic and `allowed_tenants`) and, for the log, its id and type. And CloudEvents *binary*
//! mode (attributes in `ce-*` headers, the body is `data`) turned into the structured event the
//! daemon decodes.
//!
//! The gateway no longer judges the event: every signed JSON object naming its tenant is
//! published (design §9.1), so a Qlik webhook is never answered 4xx for an event type or a
//! value the daemon does not alert on, and is never disabled for it.

use serde_json::{Map, Value};

use super::wire::{Envelope, Extensions, Obj};
use super::{optional, required, DecodeError};

/// What the gateway needs of an event to publish it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    pub tenant_id: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
}

/// The tenant (`tenantid`, `extensions.tenantId` or `data.tenantId`), id and type of any JSON
/// object. Errors: not JSON, not an object, or no tenant named (as text).
pub fn routing(payload: &[u8]) -> Result<Routing, DecodeError> {
    let text = std::str::from_utf8(payload).map_err(|e| {
        DecodeError::InvalidJson(format!("invalid UTF-8 at byte {}", e.valid_up_to()))
    })?;
    let root = match serde_json::from_str::<Obj<Envelope>>(text) {
        Ok(Obj::Object(root)) => root,
        Ok(_) => return Err(DecodeError::NotAnObject),
        Err(e) => return Err(DecodeError::InvalidJson(e.to_string())),
    };
    let ext = match &root.extensions {
        Obj::Object(ext) => ext,
        Obj::Absent | Obj::Other => &Extensions::default(),
    };
    let data_tenant = match &root.data {
        Obj::Object(data) => &data.tenant_id,
        Obj::Absent | Obj::Other => &super::wire::Loose::Absent,
    };
    let tenant_id = required("tenantid", &[&root.tenantid, &ext.tenant_id, data_tenant])?;
    Ok(Routing {
        tenant_id: tenant_id.to_owned(),
        event_id: optional(&[&root.id, &root.event_id, &root.event_id_upper]),
        event_type: optional(&[&root.r#type, &root.event_type]),
    })
}

/// The CloudEvents header prefix of the HTTP binding's binary mode.
pub const BINARY_PREFIX: &str = "ce-";

/// The structured (JSON) form of a binary-mode CloudEvent: each `ce-<name>` header becomes the
/// attribute `<name>` (values percent-decoded, as the HTTP binding encodes them), the body
/// becomes `data` (it must be JSON; an empty body means no `data`), and the request's content
/// type becomes `datacontenttype` unless a header set it.
pub fn structured_from_binary<'h>(
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<u8>, DecodeError> {
    let mut event = Map::new();
    for (name, value) in headers {
        let Some(attribute) = name.strip_prefix(BINARY_PREFIX) else {
            continue;
        };
        if attribute.is_empty() || attribute == "data" {
            continue;
        }
        let value = percent_encoding::percent_decode(value).decode_utf8_lossy();
        event.insert(attribute.to_owned(), Value::String(value.into_owned()));
    }
    if !event.contains_key("datacontenttype") {
        if let Some(content_type) = content_type {
            event.insert("datacontenttype".into(), content_type.into());
        }
    }
    if !body.iter().all(u8::is_ascii_whitespace) {
        let data: Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        event.insert("data".into(), data);
    }
    serde_json::to_vec(&Value::Object(event)).map_err(|e| DecodeError::InvalidJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_object_naming_its_tenant_routes() {
        let cloud =
            routing(br#"{"type":"com.qlik.v1.app.data.updated","id":"e1","tenantid":"T1"}"#)
                .expect("routes");
        assert_eq!(cloud.tenant_id, "T1");
        assert_eq!(
            cloud.event_type.as_deref(),
            Some("com.qlik.v1.app.data.updated")
        );
        let legacy =
            routing(br#"{"eventType":"x","extensions":{"tenantId":"T2"}}"#).expect("routes");
        assert_eq!((legacy.tenant_id.as_str(), legacy.event_id), ("T2", None));
        assert_eq!(
            routing(br#"{"hello":"world"}"#),
            Err(DecodeError::MissingField("tenantid"))
        );
        assert_eq!(routing(b"[1]"), Err(DecodeError::NotAnObject));
        assert!(matches!(routing(b"{no"), Err(DecodeError::InvalidJson(_))));
        assert!(matches!(
            routing(br#"{"tenantid":7}"#),
            Err(DecodeError::WrongType {
                field: "tenantid",
                ..
            })
        ));
    }

    #[test]
    fn binary_mode_becomes_the_structured_event() {
        let headers: [(&str, &[u8]); 5] = [
            ("ce-specversion", b"1.0"),
            ("ce-type", b"com.qlik.v1.reload.finished"),
            ("ce-tenantid", b"T1"),
            ("ce-subject", b"caf%C3%A9"),
            ("qlik-signature", b"abc"),
        ];
        let out = structured_from_binary(headers, Some("application/json"), br#"{"id":"r1"}"#)
            .expect("structured");
        let value: Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(value["type"], "com.qlik.v1.reload.finished");
        assert_eq!(value["subject"], "café");
        assert_eq!(value["datacontenttype"], "application/json");
        assert_eq!(value["data"]["id"], "r1");
        assert!(value.get("qlik-signature").is_none() && value.get("signature").is_none());
        assert_eq!(routing(&out).expect("routes").tenant_id, "T1");
        assert!(structured_from_binary(headers, None, b"{not json").is_err());
        let empty = structured_from_binary(headers, None, b"").expect("no data");
        assert!(serde_json::from_slice::<Value>(&empty)
            .expect("json")
            .get("data")
            .is_none());
    }
}
