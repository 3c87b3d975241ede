//! Everything that knows Qlik Cloud's wire formats.

mod answer;
pub mod api;
pub mod auth;
pub mod credential;
pub mod enrich;
pub mod event;
pub mod model;
