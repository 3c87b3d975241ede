//! MQTT: connection options shared by the daemon's subscriber and the gateway's publisher.

pub mod embedded;
mod options;
pub mod publisher;
pub mod subscriber;

pub use options::{client_options, MqttError};
