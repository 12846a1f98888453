//! What the operators' views of the broker share (`osbs queue`, `osbs replay`, the web view):
//! the queues OSBS declares, their depth, consumers and net rate read with passive declares
//! (the management API is not required), and the dead letters read from their headers —
//! peeked without losing one.

use crate::bus::{Bus, BusError, header_string};
use lapin::BasicProperties;
use lapin::types::AMQPValue;
use osbs_proto::v1::{BuildJob, BuildResult, BuildState};
use osbs_proto::{Message, names};
use serde::Serialize;
use std::time::Duration;

/// The queues OSBS declares, in the order a message travels, then their dead-letter queues.
pub fn queues() -> Vec<String> {
    let mut all: Vec<String> = [
        names::QUEUE_EVENTS,
        names::QUEUE_JOBS,
        names::QUEUE_JOB_LEASES,
        names::QUEUE_RESULTS,
    ]
    .map(str::to_owned)
    .to_vec();
    all.extend(DeadQueue::ALL.map(DeadQueue::dead));
    all
}

/// One queue's reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    pub messages: u32,
    pub consumers: u32,
    /// Net change in messages per second over the sampling interval (negative: draining);
    /// `None` without a second sample.
    pub net_per_second: Option<f64>,
}

/// Net messages per second between two depth readings `interval` apart.
pub fn net_rate(before: u32, after: u32, interval: Duration) -> Option<f64> {
    let seconds = interval.as_secs_f64();
    (seconds > 0.0).then(|| (f64::from(after) - f64::from(before)) / seconds)
}

/// Reads every queue once: messages and consumers, no rate. The arch jobs queues
/// (`osbs.jobs.<arch>` and its dead queue, DESIGN.md "Architectures") follow for each arch
/// whose queue exists (a worker serving it, or an orchestrator, declared it).
pub async fn read_once(bus: &Bus) -> Result<Vec<QueueStats>, BusError> {
    let mut stats = Vec::new();
    for queue in queues() {
        let depth = bus.queue_depth(&queue).await?;
        stats.push(QueueStats {
            queue,
            messages: depth.messages,
            consumers: depth.consumers,
            net_per_second: None,
        });
    }
    for arch in osbs_proto::arch::KNOWN {
        let queue = names::jobs_queue(arch.koji);
        // A passive declare of a queue nobody declared fails: that arch has no queue.
        let Ok(depth) = bus.queue_depth(&queue).await else {
            continue;
        };
        let dead = names::dead_queue(&queue);
        let dead_depth = bus.queue_depth(&dead).await?;
        stats.push(QueueStats {
            queue,
            messages: depth.messages,
            consumers: depth.consumers,
            net_per_second: None,
        });
        stats.push(QueueStats {
            queue: dead,
            messages: dead_depth.messages,
            consumers: dead_depth.consumers,
            net_per_second: None,
        });
    }
    Ok(stats)
}

/// `after` with each queue's net rate since `before`, read `interval` earlier.
pub fn with_rates(
    before: &[QueueStats],
    after: Vec<QueueStats>,
    interval: Duration,
) -> Vec<QueueStats> {
    after
        .into_iter()
        .map(|mut stat| {
            stat.net_per_second = before
                .iter()
                .find(|old| old.queue == stat.queue)
                .and_then(|old| net_rate(old.messages, stat.messages, interval));
            stat
        })
        .collect()
}

/// Reads every queue, twice `interval` apart when `interval` is not zero.
pub async fn read(bus: &Bus, interval: Duration) -> Result<Vec<QueueStats>, BusError> {
    let first = read_once(bus).await?;
    if interval.is_zero() {
        return Ok(first);
    }
    tokio::time::sleep(interval).await;
    let second = read_once(bus).await?;
    Ok(with_rates(&first, second, interval))
}

/// A dead-letter queue OSBS fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadQueue {
    /// `osbs.jobs.dead`: jobs that failed for an infrastructure reason.
    Jobs,
    /// `osbs.results.dead`: results the koji-bridge could not import.
    Results,
    /// `osbs.events.dead`: events the dispatcher refused.
    Events,
    /// `osbs.jobs.<arch>.dead` (Koji's arch name, one of `osbs_proto::arch::KNOWN`): arch
    /// jobs of multi-arch builds that failed for an infrastructure reason (DESIGN.md
    /// "Architectures"). Only there once a worker or an orchestrator declared that arch's
    /// queues.
    ArchJobs(&'static str),
}

/// Shown and read as its short name (`jobs`, `jobs.aarch64`...), as `--queue` takes it.
impl Serialize for DeadQueue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name())
    }
}

impl DeadQueue {
    /// The dead queues every deployment has (declared with the topology).
    pub const ALL: [DeadQueue; 3] = [DeadQueue::Jobs, DeadQueue::Results, DeadQueue::Events];

    /// [`DeadQueue::ALL`], then the arch jobs' dead queue of every arch OSBS knows (which
    /// exist only where that arch was served or orchestrated: readers skip the others).
    pub fn every() -> Vec<DeadQueue> {
        let mut all = DeadQueue::ALL.to_vec();
        all.extend(
            osbs_proto::arch::KNOWN
                .iter()
                .map(|arch| DeadQueue::ArchJobs(arch.koji)),
        );
        all
    }

    /// `jobs`, `results`, `events` or `jobs.<arch>`.
    pub fn name(self) -> String {
        match self {
            DeadQueue::Jobs => "jobs".to_owned(),
            DeadQueue::Results => "results".to_owned(),
            DeadQueue::Events => "events".to_owned(),
            DeadQueue::ArchJobs(arch) => format!("jobs.{arch}"),
        }
    }

    /// The dead queue from its short name (`jobs.<arch>` in either arch naming).
    pub fn parse(text: &str) -> Result<DeadQueue, String> {
        if let Some(arch) = text.strip_prefix("jobs.") {
            return osbs_proto::arch::lookup(arch)
                .map(|arch| DeadQueue::ArchJobs(arch.koji))
                .ok_or_else(|| format!("{arch:?} is not an architecture OSBS knows"));
        }
        DeadQueue::ALL
            .into_iter()
            .find(|queue| queue.name() == text)
            .ok_or_else(|| {
                format!(
                    "{text:?} is not a dead-letter queue: say jobs, jobs.<arch>, results or events"
                )
            })
    }

    /// The queue its messages were refused on.
    pub fn source(self) -> String {
        match self {
            DeadQueue::Jobs => names::QUEUE_JOBS.to_owned(),
            DeadQueue::Results => names::QUEUE_RESULTS.to_owned(),
            DeadQueue::Events => names::QUEUE_EVENTS.to_owned(),
            DeadQueue::ArchJobs(arch) => names::jobs_queue(arch),
        }
    }

    pub fn dead(self) -> String {
        names::dead_queue(&self.source())
    }

    /// Whether it holds `BuildJob`s (the build's own, or arch jobs).
    pub fn holds_jobs(self) -> bool {
        matches!(self, DeadQueue::Jobs | DeadQueue::ArchJobs(_))
    }

    /// Whether the queue may be missing (an arch nobody served): a passive declare of it
    /// failing means "no such queue", not a broker failure.
    pub fn optional(self) -> bool {
        matches!(self, DeadQueue::ArchJobs(_))
    }
}

/// What people need to know of one dead message: a pure view of its headers and body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadMessage {
    pub queue: DeadQueue,
    /// The build a job or result belongs to.
    pub build_id: Option<String>,
    pub message_id: Option<String>,
    pub reason: String,
    pub dead_at: String,
    /// Where it goes back to, when known.
    pub exchange: Option<String>,
    pub routing_key: Option<String>,
}

impl DeadMessage {
    /// Reads a dead message: the `x-osbs-*` headers the bus adds, else RabbitMQ's own
    /// `x-death` (a message dead-lettered by the broker), else what the body says.
    pub fn read(queue: DeadQueue, properties: &BasicProperties, body: &[u8]) -> DeadMessage {
        let header = |name: &str| header_string(properties, name).filter(|value| !value.is_empty());
        let death = first_death(properties);
        let (build_id, body_routing_key) = match queue {
            DeadQueue::Jobs => (
                BuildJob::decode(body).ok().map(|job| job.build_id),
                Some(names::ROUTING_JOB.to_owned()),
            ),
            DeadQueue::ArchJobs(arch) => (
                BuildJob::decode(body).ok().map(|job| job.build_id),
                Some(names::job_routing_key(arch)),
            ),
            DeadQueue::Results => match BuildResult::decode(body) {
                Ok(result) => {
                    let state = BuildState::try_from(result.state).unwrap_or(BuildState::Failed);
                    (Some(result.build_id), Some(names::state_routing_key(state)))
                }
                Err(_) => (None, None),
            },
            DeadQueue::Events => (None, None),
        };
        let exchange = header(names::HEADER_DEAD_EXCHANGE)
            .or_else(|| death.as_ref().map(|(exchange, _)| exchange.clone()))
            .or_else(|| (queue != DeadQueue::Events).then(|| names::EXCHANGE_INTERNAL.to_owned()));
        let routing_key = header(names::HEADER_DEAD_ROUTING_KEY)
            .or_else(|| death.and_then(|(_, key)| key))
            .or(body_routing_key);
        DeadMessage {
            queue,
            build_id: build_id.filter(|id| !id.is_empty()),
            message_id: properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            reason: header(names::HEADER_DEAD_REASON)
                .unwrap_or_else(|| "(dead-lettered by RabbitMQ: no reason recorded)".into()),
            dead_at: header(names::HEADER_DEAD_AT).unwrap_or_default(),
            exchange,
            routing_key,
        }
    }

    /// The id people select it by: the build id, else the message id.
    pub fn id(&self) -> &str {
        self.build_id
            .as_deref()
            .or(self.message_id.as_deref())
            .unwrap_or("")
    }
}

/// Exchange and first routing key of the first `x-death` entry, if any.
fn first_death(properties: &BasicProperties) -> Option<(String, Option<String>)> {
    let headers = properties.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(death) = deaths.as_slice().first()? else {
        return None;
    };
    let text = |value: &AMQPValue| match value {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.as_str().to_owned()),
        _ => None,
    };
    let exchange = death.inner().get("exchange").and_then(text)?;
    let key = match death.inner().get("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(text),
        _ => None,
    };
    Some((exchange, key))
}

/// Reads up to `limit` messages of `queue`'s dead queue and puts every one back: they are
/// taken with basic.get and held unacked (so none is handed out twice), then returned by
/// closing the channel, which puts them back at their original positions. Not with a nack:
/// on a quorum queue a nack-requeue counts towards the delivery limit (20 by default since
/// RabbitMQ 4.0) and a dead queue has nowhere to send a message past it, so a view peeking
/// every few seconds would drop dead letters. RabbitMQ 3.10 counts a return by a channel's
/// closing too (seen by tests/ops/tests/cluster.rs) but sets no limit unless a policy does:
/// OPERATIONS.md says to set none on the dead queues. Nothing is removed. A replay running at the same moment sees fewer messages until the peek
/// returns them (milliseconds).
pub async fn peek_dead(
    bus: &Bus,
    queue: DeadQueue,
    limit: usize,
) -> Result<Vec<DeadMessage>, BusError> {
    let dead = queue.dead();
    let depth = match bus.queue_depth(&dead).await {
        Ok(depth) => depth.messages as usize,
        // An arch nobody served has no dead queue: nothing to show.
        Err(_) if queue.optional() => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let channel = bus.channel().await?;
    let mut views = Vec::new();
    let mut failure = None;
    for _ in 0..depth.min(limit) {
        match bus.get_one(&channel, &dead).await {
            Ok(Some(message)) => {
                views.push(DeadMessage::read(queue, &message.properties, &message.data))
            }
            Ok(None) => break,
            Err(error) => {
                failure = Some(error);
                break;
            }
        }
    }
    let _ = channel
        .close(200, "peek done: returning the messages".into())
        .await;
    match failure {
        Some(error) => Err(error),
        None => Ok(views),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldTable, LongString};

    #[test]
    fn rates() {
        assert_eq!(net_rate(10, 4, Duration::from_secs(2)), Some(-3.0));
        assert_eq!(net_rate(0, 5, Duration::from_millis(500)), Some(10.0));
        assert_eq!(net_rate(1, 1, Duration::ZERO), None);
        let stat = |queue: &str, messages| QueueStats {
            queue: queue.into(),
            messages,
            consumers: 1,
            net_per_second: None,
        };
        let rated = with_rates(
            &[stat("a", 10)],
            vec![stat("a", 4), stat("b", 1)],
            Duration::from_secs(2),
        );
        assert_eq!(rated[0].net_per_second, Some(-3.0));
        assert_eq!(rated[1].net_per_second, None, "no earlier reading of b");
    }

    #[test]
    fn every_declared_queue_is_listed() {
        let all = queues();
        assert_eq!(all.len(), 7);
        assert!(all.contains(&"osbs.jobs.dead".to_owned()));
        assert_eq!(DeadQueue::parse("results"), Ok(DeadQueue::Results));
        assert!(
            DeadQueue::parse("dead")
                .unwrap_err()
                .contains("jobs, jobs.<arch>, results or events")
        );
        let table = [
            ("jobs.aarch64", Ok(DeadQueue::ArchJobs("aarch64"))),
            ("jobs.arm64", Ok(DeadQueue::ArchJobs("aarch64"))),
            ("jobs", Ok(DeadQueue::Jobs)),
            ("jobs.mips", Err(())),
        ];
        for (text, expected) in table {
            assert_eq!(DeadQueue::parse(text).map_err(|_| ()), expected, "{text}");
        }
        let arm = DeadQueue::ArchJobs("aarch64");
        assert_eq!(arm.dead(), "osbs.jobs.aarch64.dead");
        assert_eq!(arm.name(), "jobs.aarch64");
        assert_eq!(serde_json::to_value(arm).unwrap(), "jobs.aarch64");
        assert_eq!(serde_json::to_value(DeadQueue::Jobs).unwrap(), "jobs");
        let every = DeadQueue::every();
        assert_eq!(every[..3], DeadQueue::ALL);
        assert!(every.contains(&DeadQueue::ArchJobs("s390x")));
    }

    #[test]
    fn reads_the_reason_the_bus_wrote() {
        let mut table = FieldTable::default();
        table.insert(
            "x-osbs-reason".into(),
            AMQPValue::LongString(LongString::from(b"registry refused the push".to_vec())),
        );
        let properties = BasicProperties::default().with_headers(table);
        let job = BuildJob {
            build_id: "b1".into(),
            ..Default::default()
        };
        let view = DeadMessage::read(DeadQueue::Jobs, &properties, &job.encode_to_vec());
        assert_eq!(view.reason, "registry refused the push");
        assert_eq!(view.id(), "b1");
        let arm = BuildJob {
            arch: "aarch64".into(),
            ..job
        };
        let view = DeadMessage::read(
            DeadQueue::ArchJobs("aarch64"),
            &BasicProperties::default(),
            &arm.encode_to_vec(),
        );
        assert_eq!(view.id(), "b1");
        assert_eq!(view.routing_key.as_deref(), Some("job.aarch64"));
        assert_eq!(view.exchange.as_deref(), Some("osbs"));
    }
}
