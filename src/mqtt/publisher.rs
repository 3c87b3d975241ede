//! The gateway's MQTT side: one clean-session connection that publishes at QoS 1 and tells each
//! caller when the broker acknowledged *its* message.
//!
//! One task owns the rumqttc client and event loop. Callers send a request with a oneshot
//! responder over a bounded channel. rumqttc reports `Outgoing::Publish(pkid)` in the order the
//! publishes were queued, then `Incoming::PubAck(pkid)`: so a FIFO of waiting responders turns
//! into a map by packet id, and each PUBACK answers its own caller.
//!
//! On a connection error every waiting caller gets an error, and the client and event loop are
//! dropped and built afresh (after capped, jittered backoff). rumqttc would otherwise keep the
//! unacked publishes and retransmit them on reconnect, emitting `Outgoing::Publish` events no
//! caller is waiting for and shifting the FIFO. While disconnected, requests fail at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

use super::{client_options, MqttError};
use crate::backoff::Backoff;
use crate::config::MqttConfig;
use crate::metrics::{inc, GatewayMetrics};

/// How long a caller waits for the broker's PUBACK (a publish slot included).
pub const ACK_BOUND: Duration = Duration::from_secs(5);
/// rumqttc's window of unacknowledged publishes.
const INFLIGHT: u16 = 100;
/// Publishes in flight at once, below [`INFLIGHT`] so rumqttc never has to hold one back or
/// reuse a packet id that is still waiting for its ack.
const CONCURRENCY: usize = 64;
/// How long shutdown waits for the MQTT disconnect to go out.
const DISCONNECT_BOUND: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the MQTT broker")]
    NotConnected,
    #[error("the MQTT connection was lost before the broker acknowledged the message")]
    ConnectionLost,
    #[error("the broker did not acknowledge the message within {0:?}")]
    Timeout(Duration),
    #[error("the publisher has stopped")]
    Stopped,
}

/// One caller's message, with the slot it holds until the broker answered.
struct Request {
    topic: String,
    payload: Vec<u8>,
    waiter: Waiter,
}

struct Waiter {
    respond: oneshot::Sender<Result<(), PublishError>>,
    _slot: OwnedSemaphorePermit,
}

impl Waiter {
    fn answer(self, result: Result<(), PublishError>) {
        // The caller may have given up (timeout); then nobody needs the answer.
        let _ = self.respond.send(result);
    }
}

/// A handle to the publishing task; cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    requests: mpsc::Sender<Request>,
    slots: Arc<Semaphore>,
    metrics: Arc<GatewayMetrics>,
}

impl Publisher {
    /// Builds the options (reading TLS files now, so a bad file fails start-up) and spawns the
    /// task, which connects at once and runs until `shutdown` is set.
    pub fn start(
        config: &MqttConfig,
        metrics: Arc<GatewayMetrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<(Publisher, tokio::task::JoinHandle<()>), MqttError> {
        let mut config = config.clone();
        config.client_id = format!("{}-gateway", config.client_id);
        config.persistent_session = false;
        let mut options = client_options(&config)?;
        options.set_inflight(INFLIGHT);
        let (requests, receiver) = mpsc::channel(CONCURRENCY);
        let task = tokio::spawn(run(options, receiver, metrics.clone(), shutdown));
        let publisher = Publisher {
            requests,
            slots: Arc::new(Semaphore::new(CONCURRENCY)),
            metrics,
        };
        Ok((publisher, task))
    }

    pub fn is_connected(&self) -> bool {
        self.metrics.mqtt_connected.load(Ordering::Relaxed)
    }

    /// Publishes `payload` at QoS 1 and returns once the broker acknowledged it, or with an
    /// error within [`ACK_BOUND`]. An error does not prove the broker lacks the message (its
    /// ack may have been lost); the sender's retry makes it at-least-once.
    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> Result<(), PublishError> {
        if !self.is_connected() {
            return Err(PublishError::NotConnected);
        }
        let exchange = async {
            let slot = self
                .slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| PublishError::Stopped)?;
            let (respond, answer) = oneshot::channel();
            let waiter = Waiter {
                respond,
                _slot: slot,
            };
            let request = Request {
                topic,
                payload,
                waiter,
            };
            self.requests
                .send(request)
                .await
                .map_err(|_| PublishError::Stopped)?;
            answer.await.map_err(|_| PublishError::Stopped)?
        };
        tokio::time::timeout(ACK_BOUND, exchange)
            .await
            .map_err(|_| PublishError::Timeout(ACK_BOUND))?
    }
}

/// Callers waiting on one connection: queued (no packet id yet, in queue order) and in flight.
#[derive(Default)]
struct Waiting {
    queued: VecDeque<Waiter>,
    in_flight: HashMap<u16, Waiter>,
}

impl Waiting {
    fn fail_all(&mut self, error: &PublishError) {
        for waiter in self.queued.drain(..) {
            waiter.answer(Err(error.clone()));
        }
        for (_, waiter) in self.in_flight.drain() {
            waiter.answer(Err(error.clone()));
        }
    }
}

/// How one connection ended.
enum End {
    Failed(String),
    Shutdown,
}

async fn run(
    options: MqttOptions,
    mut requests: mpsc::Receiver<Request>,
    metrics: Arc<GatewayMetrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let end = connection(
            &options,
            &mut requests,
            &metrics,
            &mut backoff,
            &mut shutdown,
        )
        .await;
        let was_connected = metrics.mqtt_connected.swap(false, Ordering::Relaxed);
        let error = match end {
            End::Shutdown => break,
            End::Failed(error) => error,
        };
        let delay = backoff.next_delay();
        if was_connected {
            tracing::warn!(%error, retry_in = ?delay, "gateway lost the MQTT connection; reconnecting");
        } else {
            tracing::warn!(%error, retry_in = ?delay, "gateway cannot connect to the MQTT broker");
        }
        let pause = tokio::time::sleep(delay);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                request = requests.recv() => match request {
                    Some(request) => request.waiter.answer(Err(PublishError::NotConnected)),
                    None => return,
                },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// One client and event loop, from connect to the first error (or shutdown).
async fn connection(
    options: &MqttOptions,
    requests: &mut mpsc::Receiver<Request>,
    metrics: &GatewayMetrics,
    backoff: &mut Backoff,
    shutdown: &mut watch::Receiver<bool>,
) -> End {
    // Room for every publish slot plus the disconnect, so `try_publish` never finds it full.
    let (client, mut eventloop) = AsyncClient::new(options.clone(), CONCURRENCY + 4);
    let mut waiting = Waiting::default();
    let mut connected = false;
    let end = loop {
        tokio::select! {
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    metrics.mqtt_connected.store(true, Ordering::Relaxed);
                    inc(&metrics.mqtt_connects);
                    backoff.reset();
                    tracing::info!(client_id = %options.client_id(), "gateway connected to the MQTT broker");
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => match waiting.queued.pop_front() {
                    Some(waiter) => {
                        waiting.in_flight.insert(pkid, waiter);
                    }
                    None => break End::Failed(format!("publish {pkid} sent that nobody queued")),
                },
                Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => {
                    // Cannot happen below the in-flight window; start afresh rather than guess.
                    break End::Failed(format!("packet id {pkid} collided"));
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some(waiter) = waiting.in_flight.remove(&ack.pkid) {
                        waiter.answer(Ok(()));
                    }
                }
                Ok(_) => {}
                Err(error) => break End::Failed(error.to_string()),
            },
            request = requests.recv() => match request {
                Some(request) if connected => {
                    match client.try_publish(request.topic, QoS::AtLeastOnce, false, request.payload) {
                        Ok(()) => waiting.queued.push_back(request.waiter),
                        Err(error) => {
                            tracing::error!(%error, "cannot queue a publish");
                            request.waiter.answer(Err(PublishError::NotConnected));
                        }
                    }
                }
                Some(request) => request.waiter.answer(Err(PublishError::NotConnected)),
                None => break End::Shutdown,
            },
            _ = shutdown.wait_for(|stop| *stop) => break End::Shutdown,
        }
    };
    let reason = match &end {
        End::Shutdown => PublishError::Stopped,
        End::Failed(_) => PublishError::ConnectionLost,
    };
    waiting.fail_all(&reason);
    if matches!(end, End::Shutdown) && connected {
        disconnect(&client, &mut eventloop).await;
    }
    end
}

/// Sends DISCONNECT and drives the event loop until it went out, bounded.
async fn disconnect(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop) {
    if client.try_disconnect().is_err() {
        return;
    }
    let started = Instant::now();
    let _ = tokio::time::timeout(DISCONNECT_BOUND, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    tracing::info!(took = ?started.elapsed(), "gateway disconnected from the MQTT broker");
}
