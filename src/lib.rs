//! reload-butler: alerts on failed Qlik Cloud app reloads. The map of the crate and the
//! invariants every change must keep are in ARCHITECTURE.md.

pub mod admin;
pub mod app;
pub mod archive;
pub mod backoff;
pub mod cli;
pub mod config;
pub mod credential_watch;
pub mod domain;
pub mod gateway;
pub mod http;
pub mod listener;
pub mod matcher;
pub mod memory;
pub mod metrics;
pub mod mqtt;
pub mod notify;
pub mod oauth;
pub mod outbox;
pub mod pipeline;
pub mod poll;
pub mod qlik;
pub mod render;
pub mod silence;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod zone;
