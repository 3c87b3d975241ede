//! The wire types of [`super::decode`]: the union of the three envelopes, read from the payload
//! without building a `serde_json::Value` tree (see the parent module).

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One JSON value as far as the decoder cares: its kind, and its content when it is a scalar.
/// Arrays and objects are skipped (`IgnoredAny`) without building anything.
#[derive(Debug, Default)]
pub(super) enum Loose<'a> {
    #[default]
    Absent,
    Null,
    /// Borrowed from the payload unless the JSON string held escapes.
    Text(Cow<'a, str>),
    Bool(bool),
    /// serde_json hands non-negative integers over as `u64`, negative ones as `i64`, others as
    /// `f64`, as it does when building a `Value`; the `as_*` readers match `Value`'s.
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    Other,
}

impl Loose<'_> {
    pub(super) fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            _ => None,
        }
    }

    pub(super) fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub(super) fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Unsigned(n) => Some(*n),
            Self::Signed(n) => u64::try_from(*n).ok(),
            _ => None,
        }
    }

    pub(super) fn as_i64(&self) -> Option<i64> {
        match self {
            Self::Unsigned(n) => i64::try_from(*n).ok(),
            Self::Signed(n) => Some(*n),
            _ => None,
        }
    }

    pub(super) fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Unsigned(n) => Some(*n as f64),
            Self::Signed(n) => Some(*n as f64),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Loose<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LooseVisitor)
    }
}

struct LooseVisitor;

impl<'de> Visitor<'de> for LooseVisitor {
    type Value = Loose<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Loose::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Loose::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Loose::Unsigned(n))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Loose::Signed(n))
    }

    fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
        Ok(Loose::Float(f))
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Loose::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Loose::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
        Ok(Loose::Text(Cow::Owned(text)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Loose::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Loose::Other)
    }
}

/// A value that we read into when it is an object, and otherwise only note the presence of.
#[derive(Debug, Default)]
pub(super) enum Obj<T> {
    #[default]
    Absent,
    Object(T),
    /// Present but not an object (null included), skipped.
    Other,
}

/// An object whose fields we read; the rest of its keys are skipped.
trait Fields<'de>: Sized {
    fn visit<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl<'de, T: Fields<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ObjVisitor(std::marker::PhantomData))
    }
}

struct ObjVisitor<T>(std::marker::PhantomData<T>);

/// Every scalar answers `$value`: the visitor only cares about one kind of container.
macro_rules! any_scalar_is {
    ($value:expr) => {
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($value)
        }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($value)
        }
    };
}

impl<'de, T: Fields<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    any_scalar_is!(Obj::Other);

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Obj::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::visit(map).map(Obj::Object)
    }
}

/// `data.errors` / `data.warnings`: the items of an array, built as `Value`s (they have no
/// published schema); anything else is skipped and reads as an empty list.
#[derive(Debug, Default)]
pub(super) struct List(pub(super) Vec<Value>);

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor)
    }
}

struct ListVisitor;

impl<'de> Visitor<'de> for ListVisitor {
    type Value = List;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    any_scalar_is!(List::default());

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| List::default())
    }
}

/// Declares an object's fields (Rust name, type, JSON key) and reads them from a JSON object.
///
/// A key given twice: the last one wins, as it did when the payload was parsed into a
/// `serde_json::Value` (and as in `JSON.parse`, so in Butler). serde's derive would instead
/// reject the whole payload (`duplicate field`), turning an event that raised an alert before
/// into a dead letter; keeping the last value never loses an alert the previous decoder raised.
macro_rules! fields {
    ($(#[$meta:meta])* struct $name:ident, keys $key:ident { $($field:ident: $ty:ty = $json:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Default)]
        pub(super) struct $name<'a> {
            $(pub(super) $field: $ty,)*
        }

        #[allow(non_camel_case_types)] // one variant per field, named like it
        #[derive(Deserialize)]
        #[serde(field_identifier)]
        enum $key {
            $(#[serde(rename = $json)] $field,)*
            #[serde(other)]
            Other,
        }

        impl<'de> Fields<'de> for $name<'de> {
            fn visit<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
                let mut fields = Self::default();
                while let Some(key) = map.next_key::<$key>()? {
                    match key {
                        $($key::$field => fields.$field = map.next_value()?,)*
                        $key::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(fields)
            }
        }
    };
}

fields! {
    /// The top level of all three envelopes: legacy (`eventType`, `eventId`, `extensions`),
    /// CloudEvents 1.0 (`type`, `id`, `tenantid`, ...) and the hybrid of the two.
    struct Envelope, keys EnvelopeKey {
        r#type: Loose<'a> = "type",
        event_type: Loose<'a> = "eventType",
        id: Loose<'a> = "id",
        event_id: Loose<'a> = "eventId",
        event_id_upper: Loose<'a> = "eventID",
        event_type_version: Loose<'a> = "eventTypeVersion",
        source: Loose<'a> = "source",
        time: Loose<'a> = "time",
        event_time: Loose<'a> = "eventTime",
        tenantid: Loose<'a> = "tenantid",
        toplevelresourceid: Loose<'a> = "toplevelresourceid",
        ownerid: Loose<'a> = "ownerid",
        userid: Loose<'a> = "userid",
        spaceid: Loose<'a> = "spaceid",
        extensions: Obj<Extensions<'a>> = "extensions",
        data: Obj<Data<'a>> = "data",
    }
}

fields! {
    /// `extensions` of the legacy envelope.
    struct Extensions, keys ExtensionsKey {
        tenant_id: Loose<'a> = "tenantId",
        top_level_resource_id: Loose<'a> = "topLevelResourceId",
        owner_id: Loose<'a> = "ownerId",
        user_id: Loose<'a> = "userId",
        space_id: Loose<'a> = "spaceId",
    }
}

fields! {
    /// `data` of the three event types.
    struct Data, keys DataKey {
        tenant_id: Loose<'a> = "tenantId",
        app_id: Loose<'a> = "appId",
        reload_id: Loose<'a> = "reloadId",
        id: Loose<'a> = "id",
        status: Loose<'a> = "status",
        succeeded: Loose<'a> = "succeeded",
        duration: Loose<'a> = "duration",
        duration_seconds: Loose<'a> = "durationSeconds",
        start_time: Loose<'a> = "startTime",
        end_time: Loose<'a> = "endTime",
        last_reload_time: Loose<'a> = "lastReloadTime",
        user_id: Loose<'a> = "userId",
        name: Loose<'a> = "name",
        r#type: Loose<'a> = "type",
        error_code: Loose<'a> = "errorCode",
        error_message: Loose<'a> = "errorMessage",
        is_session_app: Loose<'a> = "isSessionApp",
        is_partial_reload: Loose<'a> = "isPartialReload",
        partial: Loose<'a> = "partial",
        is_skip_store: Loose<'a> = "isSkipStore",
        is_direct_query_mode: Loose<'a> = "isDirectQueryMode",
        ended_with_memory_constraint: Loose<'a> = "endedWithMemoryConstraint",
        row_limit: Loose<'a> = "rowLimit",
        peak_memory_bytes: Loose<'a> = "peakMemoryBytes",
        size: Obj<Size<'a>> = "size",
        usage: Loose<'a> = "usage",
        app_usage: Loose<'a> = "appUsage",
        errors: List = "errors",
        warnings: List = "warnings",
        resource_type: Loose<'a> = "resourceType",
        resource_id: Loose<'a> = "resourceId",
        weight: Loose<'a> = "weight",
        // automation.run.ended (a run object)
        title: Loose<'a> = "title",
        context: Loose<'a> = "context",
        executed_by_id: Loose<'a> = "executedById",
        stop_time: Loose<'a> = "stopTime",
        test_run: Loose<'a> = "testRun",
        is_test_run: Loose<'a> = "isTestRun",
        automation_id: Loose<'a> = "automationId",
        owner_id: Loose<'a> = "ownerId",
        space_id: Loose<'a> = "spaceId",
        error: List = "error",
    }
}

fields! {
    /// `data.size`.
    struct Size, keys SizeKey {
        memory: Loose<'a> = "memory",
    }
}
