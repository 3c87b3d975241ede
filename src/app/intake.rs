//! The MQTT half of `run`: the (embedded) broker, the subscriber, and the ingest thread that
//! commits and acks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::{RunError, DISCONNECT_BOUND};
use crate::config::{Config, MqttConfig, MqttEndpoint};
use crate::metrics::Metrics;
use crate::mqtt::subscriber;
use crate::pipeline::{run_batches, Ingest, Rules};
use crate::store::IngestStore;

/// How long shutdown waits for the ingest thread to commit what it holds.
const DRAIN_BOUND: Duration = Duration::from_secs(15);

pub(super) struct MqttIntake {
    client: rumqttc::AsyncClient,
    task: tokio::task::JoinHandle<()>,
    intake: subscriber::Intake,
    stopping: Arc<AtomicBool>,
    pipeline: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl MqttIntake {
    pub(super) async fn start(
        mqtt: &MqttConfig,
        store: IngestStore,
        config: &Config,
        metrics: &Arc<Metrics>,
        jobs_committed: Arc<tokio::sync::Notify>,
        failing: Arc<crate::pipeline::FailingApps>,
        shutdown: watch::Receiver<bool>,
    ) -> Result<MqttIntake, RunError> {
        if let MqttEndpoint::Embedded { port } = mqtt.endpoint {
            tokio::task::spawn_blocking(move || crate::mqtt::embedded::start(port)).await??;
        }
        let (client, eventloop) = subscriber::connect(mqtt)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let intake: subscriber::Intake = Arc::new(Mutex::new(Some(tx)));
        let task = tokio::spawn(subscriber::run(
            eventloop,
            client.clone(),
            mqtt.subscription(),
            intake.clone(),
            metrics.clone(),
            shutdown,
        ));
        let stopping = Arc::new(AtomicBool::new(false));
        let ingest = Ingest::new(
            store,
            Rules::from_config(config),
            metrics.clone(),
            jobs_committed,
            failing,
        );
        let pipeline = {
            let stopping = stopping.clone();
            let client = client.clone();
            let runtime = tokio::runtime::Handle::current();
            std::thread::Builder::new()
                .name("ingest".into())
                .spawn(move || {
                    run_batches(
                        ingest,
                        rx,
                        |publish| {
                            if let Err(error) = runtime.block_on(client.ack(publish)) {
                                tracing::warn!(%error, "ack not queued; the broker will redeliver");
                            }
                        },
                        &stopping,
                    );
                })
                .map_err(RunError::Thread)?
        };
        Ok(MqttIntake {
            client,
            task,
            intake,
            stopping,
            pipeline: Mutex::new(Some(pipeline)),
        })
    }

    /// Stops taking messages and lets the ingest thread commit and ack what it holds (bounded).
    pub(super) async fn drain(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        if let Ok(mut sender) = self.intake.lock() {
            sender.take();
        }
        let Some(pipeline) = self.pipeline.lock().ok().and_then(|mut p| p.take()) else {
            return;
        };
        let joined = tokio::time::timeout(
            DRAIN_BOUND,
            tokio::task::spawn_blocking(move || pipeline.join()),
        )
        .await;
        if joined.is_err() {
            tracing::warn!(bound = ?DRAIN_BOUND, "ingest did not finish in time; unacked messages will be redelivered");
        }
    }

    /// Sends the acks still queued and the MQTT disconnect (bounded).
    pub(super) async fn disconnect(self) {
        let _ = tokio::time::timeout(DISCONNECT_BOUND, self.client.disconnect()).await;
        let _ = tokio::time::timeout(DISCONNECT_BOUND, self.task).await;
    }
}
