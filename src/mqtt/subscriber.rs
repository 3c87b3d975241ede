//! The daemon's MQTT side: one persistent session at QoS 1 with manual acks. It forwards each
//! message to the ingest pipeline and never acks itself: the pipeline acks after its commit.
//! It reconnects with capped, jittered backoff and subscribes again after every connect.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, Publish, QoS, SubscribeReasonCode};
use tokio::sync::{mpsc::UnboundedSender, watch};

use super::{client_options, MqttError};
use crate::backoff::Backoff;
use crate::config::MqttConfig;
use crate::metrics::{inc, Metrics};
use crate::pipeline::Message;

/// Capacity of rumqttc's request channel (acks and subscribes on their way to the broker).
const REQUEST_CAPACITY: usize = 1024;

impl Message for Publish {
    fn topic(&self) -> &str {
        // MQTT topics are UTF-8 by the protocol; rumqttc has already checked.
        &self.topic
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }
}

/// Where received messages go. The daemon takes the sender out at shutdown to stop intake;
/// messages that arrive after that are left unacked, so the broker delivers them again later.
pub type Intake = Arc<Mutex<Option<UnboundedSender<Publish>>>>;

/// Creates the client (for acks and disconnect) and the event loop to hand to [`run`].
pub fn connect(config: &MqttConfig) -> Result<(AsyncClient, EventLoop), MqttError> {
    let mut options = client_options(config)?;
    options.set_manual_acks(true);
    Ok(AsyncClient::new(options, REQUEST_CAPACITY))
}

/// Drives the connection until a requested disconnect went out, or `shutdown` is set while the
/// connection is down.
pub async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscription: String,
    intake: Intake,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                metrics.mqtt_connected.store(true, Ordering::Relaxed);
                inc(&metrics.mqtt_connects);
                backoff.reset();
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                if let Err(error) = client.try_subscribe(subscription.clone(), QoS::AtLeastOnce) {
                    tracing::error!(%error, topic = %subscription, "cannot queue the subscription");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack.return_codes.contains(&SubscribeReasonCode::Failure) {
                    tracing::error!(topic = %subscription, "the broker refused the subscription (check its ACL)");
                } else {
                    metrics.mqtt_subscribed.store(true, Ordering::Relaxed);
                    tracing::info!(topic = %subscription, "subscribed");
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                inc(&metrics.received);
                let sender = intake.lock().map(|guard| guard.clone()).ok().flatten();
                if let Some(sender) = sender {
                    // A closed pipeline means shutdown; the message stays unacked.
                    let _ = sender.send(publish);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                tracing::info!("disconnected from the MQTT broker");
                break;
            }
            Ok(_) => {}
            Err(error) => {
                let was_connected = metrics.mqtt_connected.swap(false, Ordering::Relaxed);
                metrics.mqtt_subscribed.store(false, Ordering::Relaxed);
                if *shutdown.borrow() {
                    break;
                }
                let delay = backoff.next_delay();
                if was_connected {
                    tracing::warn!(%error, retry_in = ?delay, "lost the MQTT connection; reconnecting");
                } else {
                    tracing::warn!(%error, retry_in = ?delay, "cannot connect to the MQTT broker");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    metrics.mqtt_connected.store(false, Ordering::Relaxed);
    metrics.mqtt_subscribed.store(false, Ordering::Relaxed);
}
