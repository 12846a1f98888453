//! The AMQP adapter (lapin): the topology of DESIGN.md, confirmed publishing, consuming with
//! manual acks and prefetch, dead-lettering with a reason, connection recovery.
//!
//! Rules every service gets from here:
//! - every message is persistent and every publish waits for the broker's confirm; a message
//!   that no queue takes (returned) is an error, not a silent drop — except state events
//!   ([`Bus::announce`]), which no one need be listening to;
//! - deliveries are acked by the caller, after the work is recorded ([`ack`]);
//! - a refused delivery is republished to `osbs.dlx` with its reason in a header and only then
//!   acked ([`Bus::dead_letter`]);
//! - a message whose handling met a transient outage waits in a retry queue and comes back
//!   by itself ([`Bus::retry_later`], [`crate::retry`]);
//! - the connection recovers by itself (lapin's auto-recover with a backon policy), on the
//!   next node of a cluster (`[amqp] urls`, [`crate::failover`]) when its node is gone; a
//!   publish that fails during recovery waits for it and is retried.

use crate::announcement::Announcement;
use crate::config::{AmqpConfig, QueueType};
use crate::failover;
use crate::retry::RetryState;
use backon::ExponentialBuilder;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use osbs_proto::Message;
use osbs_proto::external::HeaderValue;
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildResult, BuildState};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use lapin::message::{BasicGetMessage, Delivery};

/// Highest job priority; explicit requests use it, automatic rebuilds use 0.
pub const MAX_PRIORITY: u8 = 9;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error(
        "cannot reach RabbitMQ at {url}: {source}. Is it running? Start it with `rabbitmq-server -detached` (or set OSBS_AMQP__URL)"
    )]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error(transparent)]
    Nodes(#[from] failover::NodesError),
    #[error("AMQP {operation} failed: {source}")]
    Amqp {
        operation: String,
        #[source]
        source: lapin::Error,
    },
    #[error(
        "RabbitMQ refused (nack) the message for exchange {exchange:?}, routing key {routing_key:?}"
    )]
    Nacked {
        exchange: String,
        routing_key: String,
    },
    #[error(
        "publishing to exchange {exchange:?}, routing key {routing_key:?} failed {attempts} times; last: {last_failure}"
    )]
    GaveUp {
        exchange: String,
        routing_key: String,
        attempts: usize,
        last_failure: String,
    },
    #[error(
        "no queue is bound to exchange {exchange:?} with routing key {routing_key:?}: the message was returned (declare the topology first)"
    )]
    Unroutable {
        exchange: String,
        routing_key: String,
    },
}

fn amqp(operation: impl Into<String>) -> impl FnOnce(lapin::Error) -> BusError {
    let operation = operation.into();
    move |source| BusError::Amqp { operation, source }
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub properties: BasicProperties,
    /// Fail when no queue takes it (everything internal); off for fan-out to outside listeners.
    pub mandatory: bool,
}

/// A connection with a confirm-mode channel for publishing. Share it with an `Arc`.
#[derive(Debug)]
pub struct Bus {
    connection: Connection,
    /// Replaced by a fresh one when the broker nacks on it ([`Bus::renew_publisher`]).
    publisher: std::sync::Mutex<Arc<Channel>>,
    config: AmqpConfig,
}

/// How long a replaced publisher channel stays open for the confirms still due on it.
const RETIRED_CHANNEL_GRACE: Duration = Duration::from_secs(30);

impl Bus {
    /// Connects, retrying with backoff for `connect_timeout_secs`, with auto-recovery on.
    /// With several URLs (a cluster's nodes, `[amqp] urls`), the first connection and every
    /// reconnection try them in turn ([`crate::failover`]): a service whose node died goes
    /// on with a node still up, no operator.
    pub async fn connect(config: &AmqpConfig, service: &str) -> Result<Bus, BusError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(LongString::from(format!(
                "osbs-{service}@{}",
                crate::telemetry::hostname()
            )))
            .enable_auto_recover()
            .with_backoff(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(usize::MAX),
            );
        let shown = config.masked_urls();
        let nodes = Arc::new(failover::Nodes::new(&config.broker_urls())?);
        let timeout = Duration::from_secs(config.connect_timeout_secs);
        let connection = crate::connect::until_reachable("RabbitMQ", &shown, timeout, || {
            connect_to_nodes(nodes.clone(), properties.clone())
        })
        .await
        .map_err(|source| BusError::Connect {
            url: shown.clone(),
            source,
        })?;
        let publisher = open_publisher(&connection).await?;
        Ok(Bus {
            connection,
            publisher: std::sync::Mutex::new(Arc::new(publisher)),
            config: config.clone(),
        })
    }

    /// The channel publishes go on now.
    fn publisher(&self) -> Arc<Channel> {
        Arc::clone(&self.publisher.lock().expect("publisher lock"))
    }

    /// Puts a fresh publisher channel in place of `nacked`, unless another publish did
    /// already. RabbitMQ 3.10 can leave a channel that published to a quorum queue while its
    /// leader was being elected (a node lost, the connection recovered on another at once)
    /// nacking every later publish to that queue, for good, while a new channel's publish is
    /// confirmed (seen in the cluster test: nine minutes of nacks). The old channel is closed
    /// once the confirms still due on it have had time to come.
    async fn renew_publisher(&self, nacked: &Channel) {
        let fresh = match open_publisher(&self.connection).await {
            Ok(fresh) => fresh,
            Err(error) => {
                tracing::warn!(%error, "cannot open a fresh publisher channel; keeping the one the broker nacked on");
                return;
            }
        };
        let retired = {
            let mut publisher = self.publisher.lock().expect("publisher lock");
            if publisher.id() == nacked.id() {
                std::mem::replace(&mut *publisher, Arc::new(fresh))
            } else {
                Arc::new(fresh)
            }
        };
        tracing::info!(
            channel = retired.id(),
            "publisher channel renewed after a nack"
        );
        tokio::spawn(async move {
            tokio::time::sleep(RETIRED_CHANNEL_GRACE).await;
            let _ = retired.close(200, "renewed after a nack".into()).await;
        });
    }

    pub fn config(&self) -> &AmqpConfig {
        &self.config
    }

    /// Closes the connection (unacked deliveries go back to their queues).
    pub async fn close(&self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }

    /// Declares every exchange, queue and binding of DESIGN.md. Idempotent: every service
    /// calls it at start, so that no message is published before its queue exists.
    pub async fn declare_topology(&self) -> Result<(), BusError> {
        let exchanges = [names::EXCHANGE_INTERNAL, names::EXCHANGE_DEAD];
        self.declare(&exchanges, topology(&self.config)).await
    }

    /// Declares only what a producer of events needs so that none is lost before a
    /// dispatcher ever ran: `osbs.events`, bound to its topics on `amq.topic`, and its dead
    /// queue. A few round trips instead of the whole topology's thirty, for the git hook,
    /// which a push waits for (issue 13).
    pub async fn declare_events_queue(&self) -> Result<(), BusError> {
        let dead = names::dead_queue(names::QUEUE_EVENTS);
        let plans = topology(&self.config)
            .into_iter()
            .filter(|plan| plan.name == names::QUEUE_EVENTS || plan.name == dead)
            .collect();
        self.declare(&[names::EXCHANGE_DEAD], plans).await
    }

    /// Declares the arch jobs queue of `arch` and its lease, retry and dead queues
    /// (`osbs.jobs.<arch>`, DESIGN.md "Architectures"). Idempotent: a worker serving `arch`
    /// declares them before it consumes, an orchestrator before it publishes arch jobs (so
    /// that they wait for a worker of that arch rather than being unroutable).
    pub async fn declare_arch_queues(&self, arch: &str) -> Result<(), BusError> {
        self.declare(&[], jobs_topology(&self.config, arch)).await
    }

    /// Declares `exchanges` (durable topic exchanges), then `plans`, on a channel of their own.
    async fn declare(&self, exchanges: &[&str], plans: Vec<QueuePlan>) -> Result<(), BusError> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(amqp("channel.open"))?;
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for exchange in exchanges {
            channel
                .exchange_declare(
                    (*exchange).into(),
                    ExchangeKind::Topic,
                    durable,
                    FieldTable::default(),
                )
                .await
                .map_err(amqp(format!("exchange.declare {exchange}")))?;
        }
        self.declare_plans(&channel, plans).await?;
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    async fn declare_plans(
        &self,
        channel: &Channel,
        plans: Vec<QueuePlan>,
    ) -> Result<(), BusError> {
        for plan in plans {
            channel
                .queue_declare(
                    plan.name.as_str().into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..Default::default()
                    },
                    plan.arguments,
                )
                .await
                .map_err(amqp(format!("queue.declare {}", plan.name)))?;
            for (exchange, key) in plan.bindings {
                channel
                    .queue_bind(
                        plan.name.as_str().into(),
                        exchange.as_str().into(),
                        key.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(amqp(format!("queue.bind {} {exchange}/{key}", plan.name)))?;
            }
        }
        Ok(())
    }

    /// Publishes and waits for the broker's confirm, across connection recovery.
    pub async fn publish(&self, message: Outgoing<'_>) -> Result<(), BusError> {
        let properties = &message.properties;
        self.publish_made(&message, || properties.clone()).await
    }

    /// [`Bus::publish`] with the properties made by `properties` for each attempt, instead of
    /// `message.properties` copied: the caller gives its first properties without a copy kept
    /// for a retry that seldom comes.
    async fn publish_made(
        &self,
        message: &Outgoing<'_>,
        mut properties: impl FnMut() -> BasicProperties,
    ) -> Result<(), BusError> {
        const ATTEMPTS: usize = 5;
        let mut last_failure = String::new();
        for _ in 0..ATTEMPTS {
            let publisher = self.publisher();
            match self.publish_once(&publisher, message, properties()).await {
                Ok(()) => return Ok(()),
                Err(BusError::Amqp { operation, source }) => {
                    tracing::warn!(error = %source, exchange = message.exchange, routing_key = message.routing_key, "publish failed; waiting for the connection to recover");
                    last_failure = format!("{operation}: {source}");
                    if let Err(source) = publisher.wait_for_recovery(source).await {
                        return Err(BusError::Amqp { operation, source });
                    }
                }
                Err(BusError::Nacked { .. }) => {
                    last_failure = "nacked by the broker".into();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    self.renew_publisher(&publisher).await;
                }
                Err(other) => return Err(other),
            }
        }
        Err(BusError::GaveUp {
            exchange: message.exchange.into(),
            routing_key: message.routing_key.into(),
            attempts: ATTEMPTS,
            last_failure,
        })
    }

    async fn publish_once(
        &self,
        publisher: &Channel,
        message: &Outgoing<'_>,
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        let confirm = publisher
            .basic_publish(
                message.exchange.into(),
                message.routing_key.into(),
                BasicPublishOptions {
                    mandatory: message.mandatory,
                    ..Default::default()
                },
                message.body,
                properties,
            )
            .await
            .map_err(amqp("basic.publish"))?
            .await
            .map_err(amqp("publisher confirm"))?;
        match confirm {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(BusError::Unroutable {
                exchange: message.exchange.into(),
                routing_key: message.routing_key.into(),
            }),
            Confirmation::Nack(_) => Err(BusError::Nacked {
                exchange: message.exchange.into(),
                routing_key: message.routing_key.into(),
            }),
        }
    }

    /// Enqueues a job on `osbs.jobs` (an arch job, whose `arch` is set, on
    /// `osbs.jobs.<arch>`). `priority` 0 (automatic) to [`MAX_PRIORITY`] (explicit).
    pub async fn publish_job(&self, job: &BuildJob, priority: u8) -> Result<(), BusError> {
        let body = job.encode_to_vec();
        let properties =
            protobuf_properties(names::TYPE_BUILD_JOB).with_priority(priority.min(MAX_PRIORITY));
        self.publish(Outgoing {
            exchange: names::EXCHANGE_INTERNAL,
            routing_key: &names::job_routing_key(&job.arch),
            body: &body,
            properties,
            mandatory: true,
        })
        .await
    }

    /// Publishes a finished build (`build.complete|failed|canceled`) for the koji-bridge. Its
    /// state event is the state change's ([`crate::state::change`]), not this.
    pub async fn publish_result(&self, result: &BuildResult) -> Result<(), BusError> {
        let state = BuildState::try_from(result.state).unwrap_or(BuildState::Failed);
        let body = result.encode_to_vec();
        self.publish(Outgoing {
            exchange: names::EXCHANGE_INTERNAL,
            routing_key: &names::state_routing_key(state),
            body: &body,
            // When it was sent: the koji-bridge's lag metric.
            properties: protobuf_properties(names::TYPE_BUILD_RESULT)
                .with_timestamp(u64::try_from(crate::telemetry::now_ms() / 1000).unwrap_or(0)),
            mandatory: true,
        })
        .await
    }

    /// Announces a recorded state change: its fedora-messaging JSON event on `amq.topic`
    /// (`<prefix>.osbs.build.state.change`), the only place state changes are published,
    /// confirmed by the broker. No queue need be listening.
    pub async fn announce(&self, announcement: &Announcement) -> Result<(), BusError> {
        let event = announcement.event();
        let sent_at_ms = crate::telemetry::now_ms();
        let message_id = uuid::Uuid::new_v4().to_string();
        // Every attempt sends the same message (its id, its `sent-at`); the first takes the
        // properties made here, a retry makes them again.
        let properties = || {
            let mut headers = FieldTable::default();
            for (name, value) in event.headers(sent_at_ms) {
                let value = match value {
                    HeaderValue::Text(text) => long_string(&text),
                    HeaderValue::Int(number) => AMQPValue::LongLongInt(number),
                    HeaderValue::Bool(flag) => AMQPValue::Boolean(flag),
                };
                headers.insert(name.into(), value);
            }
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type(names::CONTENT_TYPE_JSON.into())
                .with_content_encoding("utf-8".into())
                .with_message_id(message_id.as_str().into())
                .with_headers(headers)
        };
        let body = event.to_json();
        let message = Outgoing {
            exchange: names::EXCHANGE_TOPIC,
            routing_key: &names::external_state_routing_key(&self.config.topic_prefix),
            body: &body,
            // Not sent: `properties` makes them for each attempt.
            properties: BasicProperties::default(),
            mandatory: false,
        };
        self.publish_made(&message, properties).await
    }

    /// Declares `queue` (not durable) and binds it to the state events, for OSBS's own
    /// listeners; read each body with [`osbs_proto::StateEvent::from_json`].
    pub async fn listen_to_state_events(&self, queue: &str) -> Result<(), BusError> {
        let channel = self.channel().await?;
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!("queue.declare {queue}")))?;
        let routing_key = names::external_state_routing_key(&self.config.topic_prefix);
        channel
            .queue_bind(
                queue.into(),
                names::EXCHANGE_TOPIC.into(),
                routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!(
                "queue.bind {queue} {}",
                names::EXCHANGE_TOPIC
            )))?;
        let _ = channel.close(200, "bound".into()).await;
        Ok(())
    }

    /// Starts consuming `queue` on a channel of its own with `prefetch` unacked deliveries.
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BusError> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(amqp("channel.open"))?;
        channel
            .basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await
            .map_err(amqp("basic.qos"))?;
        let tag = format!(
            "osbs-{}-{}",
            crate::telemetry::hostname(),
            uuid::Uuid::new_v4().simple()
        );
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!("basic.consume {queue}")))?;
        Ok(Subscription {
            channel,
            consumer,
            tag,
            queue: queue.to_owned(),
        })
    }

    /// Moves a delivery to `osbs.dlx` (routing key = `queue`, so it lands in `<queue>.dead`)
    /// with `reason` in the `x-osbs-reason` header, waits for the confirm, then acks it.
    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        queue: &str,
        reason: &str,
    ) -> Result<(), BusError> {
        let dead = Dead {
            queue,
            original_exchange: delivery.exchange.as_str(),
            original_routing_key: delivery.routing_key.as_str(),
            reason,
        };
        self.dead_letter_copy(&delivery.data, &delivery.properties, dead)
            .await?;
        ack(delivery).await;
        Ok(())
    }

    /// Publishes a copy of a message to `<queue>.dead` (for one no longer held as a
    /// delivery: a leased job), with the dead-letter headers of `dead`.
    pub async fn dead_letter_copy(
        &self,
        body: &[u8],
        properties: &BasicProperties,
        dead: Dead<'_>,
    ) -> Result<(), BusError> {
        let mut headers = without_retry_state(properties.headers().clone());
        for (name, value) in [
            (names::HEADER_DEAD_REASON, one_line(dead.reason, 4000)),
            (names::HEADER_DEAD_QUEUE, dead.queue.to_owned()),
            (
                names::HEADER_DEAD_EXCHANGE,
                dead.original_exchange.to_owned(),
            ),
            (
                names::HEADER_DEAD_ROUTING_KEY,
                dead.original_routing_key.to_owned(),
            ),
            (
                names::HEADER_DEAD_AT,
                osbs_proto::external::iso8601(crate::telemetry::now_ms()),
            ),
        ] {
            headers.insert(name.into(), long_string(&value));
        }
        let copy = properties.clone().with_headers(headers);
        self.publish_persistent(names::EXCHANGE_DEAD, dead.queue, body, copy)
            .await
    }

    /// Puts a message aside for `delay` (one of `names::RETRY_DELAYS_SECS`) in the retry queue
    /// of `queue`, with `state` in its headers; it dead-letters back into `queue` when the
    /// delay is over. Confirmed; the caller acks the original delivery only after this.
    pub async fn retry_later(
        &self,
        queue: &str,
        body: &[u8],
        properties: &BasicProperties,
        delay: Duration,
        state: RetryState,
    ) -> Result<(), BusError> {
        let mut headers = without_retry_state(properties.headers().clone());
        headers.insert(
            names::HEADER_RETRIES.into(),
            long_string(&state.retries.to_string()),
        );
        headers.insert(
            names::HEADER_FAILING_SINCE.into(),
            long_string(&state.failing_since_ms.to_string()),
        );
        let retry_queue = names::retry_queue(queue, delay.as_secs());
        let copy = properties.clone().with_headers(headers);
        // The default exchange routes by queue name: no binding to declare.
        self.publish_persistent("", &retry_queue, body, copy).await
    }

    /// Publishes `body` persistent and mandatory, confirmed.
    async fn publish_persistent(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), BusError> {
        self.publish(Outgoing {
            exchange,
            routing_key,
            body,
            properties: properties.with_delivery_mode(2),
            mandatory: true,
        })
        .await
    }

    /// Message and consumer counts of a queue (passive declare).
    pub async fn queue_depth(&self, queue: &str) -> Result<QueueDepth, BusError> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(amqp("channel.open"))?;
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!("queue.declare passive {queue}")))?;
        let _ = channel.close(200, "depth read".into()).await;
        Ok(QueueDepth {
            messages: declared.message_count(),
            consumers: declared.consumer_count(),
        })
    }

    /// Takes one message from `queue` without a consumer (replay, tests); the caller acks.
    pub async fn get_one(
        &self,
        channel: &Channel,
        queue: &str,
    ) -> Result<Option<BasicGetMessage>, BusError> {
        channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .map_err(amqp(format!("basic.get {queue}")))
    }

    /// A plain channel, for callers that need one of their own (replay's basic.get).
    pub async fn channel(&self) -> Result<Channel, BusError> {
        self.connection
            .create_channel()
            .await
            .map_err(amqp("channel.open"))
    }
}

/// A channel in confirm mode, for publishing.
async fn open_publisher(connection: &Connection) -> Result<Channel, BusError> {
    let channel = connection
        .create_channel()
        .await
        .map_err(amqp("channel.open"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(amqp("confirm.select"))?;
    Ok(channel)
}

/// One connection whose TCP dialer walks the nodes in [`failover::Nodes::order`]; lapin
/// calls the dialer again for each reconnection of its auto-recovery, so the connection
/// comes back on whichever node answers. The handshake's login and vhost are the first
/// URL's (the URLs were checked to share them).
async fn connect_to_nodes(
    nodes: Arc<failover::Nodes>,
    properties: ConnectionProperties,
) -> Result<Connection, lapin::Error> {
    use lapin::tcp::{AMQPUriTcpExt, OwnedTLSConfig};
    let runtime = lapin::runtime::default_runtime()?;
    let first = nodes.first().clone();
    let dial = async move |_uri, runtime| {
        let mut last_failure = None;
        for index in nodes.order() {
            match nodes
                .uri(index)
                .connect_with_config_async(OwnedTLSConfig::default().as_ref(), &runtime)
                .await
            {
                Ok(stream) => {
                    if nodes.len() > 1 {
                        tracing::info!(node = nodes.shown(index), "connected to RabbitMQ node");
                    }
                    nodes.connected(index);
                    return Ok(stream);
                }
                Err(error) => {
                    if nodes.len() > 1 {
                        tracing::warn!(node = nodes.shown(index), error = %error, "RabbitMQ node not reachable; trying the next");
                    }
                    last_failure = Some(error);
                }
            }
        }
        Err(lapin::Error::from(last_failure.unwrap_or_else(|| {
            std::io::Error::other("no RabbitMQ node configured")
        })))
    };
    Connection::connector(first, runtime, dial, properties).await
}

/// Acks a delivery. A failure means the channel was lost: the broker will redeliver it, and
/// every handler is idempotent, so it is logged, not raised.
pub async fn ack(delivery: &Delivery) {
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        tracing::warn!(error = %error, "ack failed (channel lost); the message will be redelivered");
    }
}

/// Returns a delivery to its queue (a transient failure: Redis down, a publish that failed).
pub async fn requeue(delivery: &Delivery) {
    if let Err(error) = delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
    {
        tracing::warn!(error = %error, "nack failed (channel lost); the message will be redelivered");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepth {
    pub messages: u32,
    pub consumers: u32,
}

/// Where a dead letter came from and why it is dead.
#[derive(Debug, Clone, Copy)]
pub struct Dead<'a> {
    /// The queue it was refused on: it goes to `<queue>.dead`.
    pub queue: &'a str,
    /// Where `osbs replay` sends it back.
    pub original_exchange: &'a str,
    pub original_routing_key: &'a str,
    pub reason: &'a str,
}

/// A consumer on its own channel.
#[derive(Debug)]
pub struct Subscription {
    channel: Channel,
    consumer: lapin::Consumer,
    tag: String,
    queue: String,
}

impl Subscription {
    /// The next delivery; waits through connection recovery. `None` once the consumer is
    /// cancelled or the connection is lost for good.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            match self.consumer.next().await? {
                Ok(delivery) => return Some(delivery),
                Err(error) => {
                    tracing::warn!(queue = %self.queue, error = %error, "consumer interrupted; waiting for the connection to recover");
                    if let Err(error) = self.channel.wait_for_recovery(error).await {
                        tracing::error!(queue = %self.queue, error = %error, "consumer lost and not recoverable");
                        return None;
                    }
                }
            }
        }
    }

    /// Stops new deliveries; the ones in hand can still be acked.
    pub async fn cancel(&self) {
        let _ = self
            .channel
            .basic_cancel(self.tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }

    /// Closes the channel: every unacked delivery goes back to the queue.
    pub async fn close(&self) {
        let _ = self.channel.close(200, "closing".into()).await;
    }

    pub fn queue(&self) -> &str {
        &self.queue
    }
}

/// Runs `handle` on every delivery of `subscription`, at most `concurrency` at a time, until
/// `shutdown`. Then it stops taking deliveries and gives the handlers in flight `grace` to
/// finish; any still running are dropped unacked, so the broker redelivers their messages.
pub async fn serve<F, Fut>(
    mut subscription: Subscription,
    concurrency: usize,
    shutdown: CancellationToken,
    grace: Duration,
    handle: F,
) where
    F: Fn(Delivery) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let concurrency = concurrency.max(1);
    let mut running = JoinSet::new();
    loop {
        if running.len() >= concurrency {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = running.join_next() => continue,
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = running.join_next(), if !running.is_empty() => {}
            delivery = subscription.next() => match delivery {
                Some(delivery) => {
                    running.spawn(handle(delivery));
                }
                None => break,
            },
        }
    }
    subscription.cancel().await;
    if !running.is_empty() {
        tracing::info!(queue = %subscription.queue, in_flight = running.len(), ?grace, "waiting for work in hand");
        let drained = tokio::time::timeout(grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(queue = %subscription.queue, left = running.len(), "grace period over: unfinished messages go back to the queue");
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
    }
    subscription.close().await;
}

/// AMQP properties of an internal protobuf message of type `kind`: persistent, the `type` and
/// `content_type` DESIGN.md asks for, and a message id that names it among dead letters.
/// Nothing no one reads: the broker parses and stores every property of every message (a
/// job's `app_id`, `message_id` and `timestamp` together cost it 14–21 ms per 1,000 events,
/// issue 13); results alone carry a `timestamp`, for the koji-bridge.
pub fn protobuf_properties(kind: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(names::CONTENT_TYPE_PROTOBUF.into())
        .with_type(kind.into())
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
}

/// A header as a string, whatever AMQP type carries it.
pub fn header_string(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        other => Some(format!("{other:?}")),
    }
}

/// The earlier failures a message carries (none when it never went through a retry queue).
pub fn retry_state(properties: &BasicProperties) -> RetryState {
    let number = |name| header_string(properties, name).and_then(|text| text.parse().ok());
    RetryState {
        retries: number(names::HEADER_RETRIES).map_or(0, |n: i64| u32::try_from(n).unwrap_or(0)),
        failing_since_ms: number(names::HEADER_FAILING_SINCE).unwrap_or(0),
    }
}

/// Headers without the retry state: a dead letter replayed later starts a fresh window.
fn without_retry_state(headers: Option<FieldTable>) -> FieldTable {
    let mut kept = FieldTable::default();
    for (name, value) in headers.unwrap_or_default().inner() {
        if name.as_str() != names::HEADER_RETRIES && name.as_str() != names::HEADER_FAILING_SINCE {
            kept.insert(name.clone(), value.clone());
        }
    }
    kept
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()))
}

/// Collapses a reason onto one line and bounds its length (headers and log lines).
pub use osbs_proto::text::one_line;

/// One queue to declare: name, arguments, bindings (exchange, routing key).
#[derive(Debug)]
struct QueuePlan {
    name: String,
    arguments: FieldTable,
    bindings: Vec<(String, String)>,
}

/// The queues of DESIGN.md, as pure data.
fn topology(config: &AmqpConfig) -> Vec<QueuePlan> {
    let internal = names::EXCHANGE_INTERNAL.to_owned();
    let prefix = &config.topic_prefix;
    let mut plans = vec![QueuePlan {
        name: names::QUEUE_EVENTS.into(),
        // One active dispatcher at a time: coalescing ("the newest commit of a branch
        // wins") needs the events of a branch handled in the order they were sent; more
        // dispatcher replicas are hot standbys.
        arguments: {
            let mut arguments = base(config, Some((names::EXCHANGE_DEAD, names::QUEUE_EVENTS)));
            arguments.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
            arguments
        },
        bindings: vec![
            (
                names::EXCHANGE_TOPIC.into(),
                format!("{prefix}.{}", names::TOPIC_GIT_RECEIVE),
            ),
            (
                names::EXCHANGE_TOPIC.into(),
                format!("{prefix}.{}", names::TOPIC_BUILD_REQUEST),
            ),
        ],
    }];
    plans.extend(jobs_topology(config, ""));
    plans.push(QueuePlan {
        name: names::QUEUE_RESULTS.into(),
        arguments: base(config, Some((names::EXCHANGE_DEAD, names::QUEUE_RESULTS))),
        bindings: [
            BuildState::Complete,
            BuildState::Failed,
            BuildState::Canceled,
        ]
        .into_iter()
        .map(|state| (internal.clone(), names::state_routing_key(state)))
        .collect(),
    });
    plans.extend(retry_queues(config, names::QUEUE_RESULTS));
    for queue in [names::QUEUE_EVENTS, names::QUEUE_RESULTS] {
        plans.push(dead_queue(config, queue));
    }
    plans
}

/// The queue arguments every queue has (its type) and, when given, where it dead-letters.
fn base(config: &AmqpConfig, dead_letter_to: Option<(&str, &str)>) -> FieldTable {
    let mut arguments = FieldTable::default();
    let kind = match config.queue_type {
        QueueType::Classic => "classic",
        QueueType::Quorum => "quorum",
    };
    arguments.insert("x-queue-type".into(), long_string(kind));
    if let Some((exchange, key)) = dead_letter_to {
        arguments.insert("x-dead-letter-exchange".into(), long_string(exchange));
        arguments.insert("x-dead-letter-routing-key".into(), long_string(key));
    }
    arguments
}

/// A jobs queue and its company: `osbs.jobs` (`arch` empty) or an arch's `osbs.jobs.<arch>`
/// (DESIGN.md "Architectures"), each with its lease queue, retry queues and dead queue.
fn jobs_topology(config: &AmqpConfig, arch: &str) -> Vec<QueuePlan> {
    let internal = names::EXCHANGE_INTERNAL.to_owned();
    let queue = names::jobs_queue(arch);
    let routing_key = names::job_routing_key(arch);
    let mut arguments = base(config, Some((names::EXCHANGE_DEAD, &queue)));
    if config.queue_type == QueueType::Classic {
        arguments.insert(
            "x-max-priority".into(),
            AMQPValue::ShortShortUInt(MAX_PRIORITY),
        );
    }
    let mut plans = vec![
        QueuePlan {
            name: queue.clone(),
            arguments,
            bindings: vec![(internal.clone(), routing_key.clone())],
        },
        QueuePlan {
            // No consumer: lease copies wait here and expire back into the jobs queue.
            name: names::job_lease_queue(arch),
            arguments: base(config, Some((names::EXCHANGE_INTERNAL, &routing_key))),
            bindings: vec![(internal, names::job_lease_routing_key(arch))],
        },
    ];
    plans.extend(retry_queues(config, &queue));
    plans.push(dead_queue(config, &queue));
    plans
}

/// Retry queues: no consumer; each message waits the queue's delay, then dead-letters
/// through the default exchange straight back into the queue it came from.
fn retry_queues(config: &AmqpConfig, queue: &str) -> Vec<QueuePlan> {
    names::RETRY_DELAYS_SECS
        .into_iter()
        .map(|delay| {
            let mut arguments = base(config, Some(("", queue)));
            arguments.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::try_from(delay * 1000).unwrap_or(i64::MAX)),
            );
            QueuePlan {
                name: names::retry_queue(queue, delay),
                arguments,
                bindings: Vec::new(),
            }
        })
        .collect()
}

fn dead_queue(config: &AmqpConfig, queue: &str) -> QueuePlan {
    QueuePlan {
        name: names::dead_queue(queue),
        arguments: base(config, None),
        bindings: vec![(names::EXCHANGE_DEAD.into(), queue.into())],
    }
}

/// Decodes a protobuf delivery, checking its `type` property when there is one.
pub fn decode<M: Message + Default>(delivery: &Delivery, expected_type: &str) -> Result<M, String> {
    if let Some(kind) = delivery.properties.kind()
        && kind.as_str() != expected_type
    {
        return Err(format!(
            "message of type {:?} where {expected_type} was expected",
            kind.as_str()
        ));
    }
    M::decode(delivery.data.as_slice())
        .map_err(|error| format!("not a valid {expected_type} protobuf: {error}"))
}

/// The AMQP `type` of a delivery, if set.
pub fn kind_of(delivery: &Delivery) -> Option<String> {
    delivery
        .properties
        .kind()
        .as_ref()
        .map(|kind| kind.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_has_a_dead_letter_queue_for_each_consumed_queue() {
        let plans = topology(&AmqpConfig::default());
        let names: Vec<_> = plans.iter().map(|plan| plan.name.as_str()).collect();
        for queue in ["osbs.events", "osbs.jobs", "osbs.results"] {
            assert!(names.contains(&queue));
            assert!(names.contains(&format!("{queue}.dead").as_str()));
        }
        let events = &plans[0];
        assert!(events.bindings.contains(&(
            "amq.topic".into(),
            "org.fedoraproject.prod.git.receive".into()
        )));
    }

    #[test]
    fn every_retry_delay_has_a_queue_that_leads_back() {
        let plans = topology(&AmqpConfig::default());
        for queue in ["osbs.jobs", "osbs.results"] {
            for delay in names::RETRY_DELAYS_SECS {
                let name = names::retry_queue(queue, delay);
                let plan = plans
                    .iter()
                    .find(|plan| plan.name == name)
                    .unwrap_or_else(|| panic!("{name} declared"));
                let arguments = plan.arguments.inner();
                assert_eq!(
                    arguments.get("x-message-ttl"),
                    Some(&AMQPValue::LongLongInt((delay * 1000) as i64))
                );
                assert_eq!(
                    arguments.get("x-dead-letter-routing-key"),
                    Some(&long_string(queue))
                );
                assert_eq!(
                    arguments.get("x-dead-letter-exchange"),
                    Some(&long_string(""))
                );
            }
        }
    }

    #[test]
    fn an_arch_has_the_queues_of_osbs_jobs() {
        let config = AmqpConfig::default();
        let shared: Vec<String> = jobs_topology(&config, "")
            .iter()
            .map(|plan| plan.name.replacen("osbs.jobs", "osbs.jobs.aarch64", 1))
            .collect();
        let plans = jobs_topology(&config, "aarch64");
        let arch: Vec<&str> = plans.iter().map(|plan| plan.name.as_str()).collect();
        assert_eq!(arch, shared);
        assert!(arch.contains(&"osbs.jobs.aarch64.retry.5s"));
        assert!(arch.contains(&"osbs.jobs.aarch64.dead"));
        let queue = &plans[0];
        assert_eq!(queue.bindings, vec![("osbs".into(), "job.aarch64".into())]);
        let lease = &plans[1];
        assert_eq!(lease.name, "osbs.jobs.aarch64.lease");
        assert_eq!(
            lease.arguments.inner().get("x-dead-letter-routing-key"),
            Some(&long_string("job.aarch64"))
        );
        assert_eq!(
            plans.last().unwrap().bindings,
            vec![("osbs.dlx".into(), "osbs.jobs.aarch64".into())]
        );
    }

    #[test]
    fn retry_state_round_trips_and_is_dropped_from_dead_letters() {
        let mut headers = FieldTable::default();
        headers.insert(names::HEADER_RETRIES.into(), long_string("3"));
        headers.insert(names::HEADER_FAILING_SINCE.into(), long_string("1700"));
        headers.insert("x-other".into(), long_string("kept"));
        let properties = BasicProperties::default().with_headers(headers.clone());
        assert_eq!(
            retry_state(&properties),
            RetryState {
                retries: 3,
                failing_since_ms: 1700
            }
        );
        assert_eq!(
            retry_state(&BasicProperties::default()),
            RetryState::default()
        );
        let kept = without_retry_state(Some(headers));
        assert_eq!(kept.inner().len(), 1);
        assert!(kept.inner().contains_key("x-other"));
    }
}
