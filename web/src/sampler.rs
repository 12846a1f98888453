//! The queue sampler: every `queue_refresh_secs` it reads each queue with a passive declare
//! (depth, consumers, net rate since the previous reading) and peeks the dead letters, and
//! keeps the latest [`QueueSnapshot`] for the pages. One reader whatever the number of
//! browsers: pages never touch the broker themselves.

use osbs_common::Bus;
use osbs_common::config::AmqpConfig;
use osbs_common::queues::{self, DeadMessage, DeadQueue, QueueStats};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The latest reading of the broker.
#[derive(Debug, Clone, Default)]
pub struct QueueSnapshot {
    /// When it was read; `None` before the first reading.
    pub read_at_ms: Option<i64>,
    pub queues: Vec<QueueStats>,
    /// Dead letters of every dead queue, oldest first per queue.
    pub dead: Vec<DeadMessage>,
    /// Why the last reading failed (the previous figures stay shown).
    pub error: Option<String>,
}

/// Shared between the sampler and the pages.
pub type Shared = Arc<RwLock<QueueSnapshot>>;

/// Reads the broker until `shutdown`; connects (and reconnects) by itself, so the pages of
/// builds keep working while RabbitMQ is away.
pub async fn run(
    amqp: AmqpConfig,
    every: Duration,
    dead_shown: usize,
    shared: Shared,
    shutdown: CancellationToken,
) {
    let mut bus: Option<Bus> = None;
    let mut previous: Option<(tokio::time::Instant, Vec<QueueStats>)> = None;
    loop {
        if bus.is_none() {
            match Bus::connect(&amqp, "osbs-web").await {
                Ok(connected) => bus = Some(connected),
                Err(error) => record_error(&shared, format!("cannot read the queues: {error}")),
            }
        }
        if let Some(connected) = &bus {
            match read(connected, dead_shown).await {
                Ok((stats, dead)) => {
                    let now = tokio::time::Instant::now();
                    let stats = match &previous {
                        Some((at, before)) => queues::with_rates(before, stats, now - *at),
                        None => stats,
                    };
                    previous = Some((now, stats.clone()));
                    let mut snapshot = shared.write().expect("queue snapshot lock");
                    *snapshot = QueueSnapshot {
                        read_at_ms: Some(osbs_common::telemetry::now_ms()),
                        queues: stats,
                        dead,
                        error: None,
                    };
                }
                Err(error) => {
                    record_error(&shared, format!("cannot read the queues: {error}"));
                    connected.close().await;
                    bus = None;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(every) => {}
        }
    }
    if let Some(connected) = bus {
        connected.close().await;
    }
}

async fn read(
    bus: &Bus,
    dead_shown: usize,
) -> Result<(Vec<QueueStats>, Vec<DeadMessage>), osbs_common::BusError> {
    let stats = queues::read_once(bus).await?;
    let mut dead = Vec::new();
    // The arch jobs' dead queues too: a multi-arch build's dead letters are there.
    for queue in DeadQueue::every() {
        dead.extend(queues::peek_dead(bus, queue, dead_shown).await?);
    }
    Ok((stats, dead))
}

fn record_error(shared: &Shared, error: String) {
    tracing::warn!(error = %error, "queue reading failed; showing the previous one");
    shared.write().expect("queue snapshot lock").error = Some(error);
}
