//! Silences, the concept in one place: which alerts a silence covers and when it is in force
//! (`rules.rs`, pure), and the one validation that creates an ad-hoc silence (`add.rs`, shared by
//! the CLI and `POST /silences`).
//!
//! The edges that carry silences in and out live with their layer: the `silences:` config list
//! (`config/silences.rs`), their table (`store/silences.rs`), `silence add|list|remove`
//! (`cli/silence.rs`) and the admin endpoint (`admin/silences.rs`). Routing applies them
//! (`pipeline/route.rs`).

mod add;
mod rules;

pub use add::{add, describe, AddError, Invalid, NewSilence, ValidSilence, MAX_LENGTH};
pub use rules::{in_force, matches, SilenceKey};
