//! Everything that knows Qlik Cloud's wire formats.

pub mod event;
pub mod model;
