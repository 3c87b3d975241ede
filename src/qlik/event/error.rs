//! Why a payload is not an event we can use, and what becomes of it: a dead letter (it cannot
//! be parsed) or a drop with a reason (a type or value we do not alert on).

use crate::metrics::{DeadLetterReason, DropReason, Label};

/// Why a payload is not an event we can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("not a JSON object")]
    NotAnObject,
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` should be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}` has the unknown value `{value}`")]
    UnknownValue { field: &'static str, value: String },
    #[error("event type `{0}` is not one reload-butler alerts on")]
    UnknownEventType(String),
}

/// What becomes of a payload that is not a usable event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// It cannot be parsed as an event of a type we alert on: kept for an admin to look at.
    DeadLetter(DeadLetterReason),
    /// A well-formed event of a type or with a value we do not alert on: dropped, counted.
    Drop(DropReason),
}

impl DecodeError {
    /// Dead letter or drop, with its bounded label (metrics and the dead-letter table).
    pub fn disposal(&self) -> Disposal {
        match self {
            Self::InvalidJson(_) => Disposal::DeadLetter(DeadLetterReason::InvalidJson),
            Self::NotAnObject => Disposal::DeadLetter(DeadLetterReason::NotAnObject),
            Self::MissingField(_) => Disposal::DeadLetter(DeadLetterReason::MissingField),
            Self::WrongType { .. } => Disposal::DeadLetter(DeadLetterReason::WrongType),
            Self::UnknownValue { .. } => Disposal::Drop(DropReason::UnknownValue),
            Self::UnknownEventType(_) => Disposal::Drop(DropReason::UnknownEventType),
        }
    }

    /// The label's text (a dead letter's `reason`, or the drop reason).
    pub fn reason(&self) -> &'static str {
        match self.disposal() {
            Disposal::DeadLetter(reason) => reason.as_str(),
            Disposal::Drop(reason) => reason.as_str(),
        }
    }
}
