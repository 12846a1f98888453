//! Integration-test support: an in-process dispatcher on its own RabbitMQ vhost and Redis
//! prefix, the shared event fixtures as AMQP messages, and readers for what it produced (jobs,
//! dead letters, state changes, metrics).

#![allow(dead_code)] // each test binary uses its own part of this module

pub mod distgit;

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use osbs_common::bus::{Bus, Outgoing};
use osbs_common::store::Store;
use osbs_dispatcher::{Config, DispatcherConfig, Running};
use osbs_proto::StateEvent;
use osbs_proto::names;
use osbs_proto::v1::BuildJob;
use osbs_testkit::TestEnv;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// How long to wait for the dispatcher before a test fails (generous: CI machines are slow).
pub const PATIENCE: Duration = Duration::from_secs(60);

pub const REV: &str = "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce";

/// The event fixtures (see osbs-testkit).
pub fn fixtures_dir() -> PathBuf {
    osbs_testkit::event_fixtures_dir()
}

/// One fedora-messaging event to publish on `amq.topic`.
#[derive(Debug, Clone)]
pub struct Event {
    pub routing_key: String,
    pub content_encoding: Option<String>,
    pub message_id: Option<String>,
    pub headers: Map<String, Value>,
    pub body: Vec<u8>,
}

impl Event {
    /// A good fixture (`git-receive-v1.json`...) with its properties and headers.
    pub fn fixture(name: &str) -> Event {
        let path = fixtures_dir().join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
        let value: Value = serde_json::from_str(&text).unwrap();
        let properties = &value["properties"];
        Event {
            routing_key: value["routing_key"].as_str().unwrap().to_owned(),
            content_encoding: properties["content_encoding"].as_str().map(str::to_owned),
            message_id: properties["message_id"].as_str().map(str::to_owned),
            headers: value["headers"].as_object().cloned().unwrap_or_default(),
            body: serde_json::to_vec(&value["body"]).unwrap(),
        }
    }

    /// The body as JSON, to edit.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// This event with another body and a fresh message id (a different message).
    pub fn with_json(&self, body: &Value) -> Event {
        Event {
            body: serde_json::to_vec(body).unwrap(),
            message_id: Some(uuid::Uuid::new_v4().to_string()),
            ..self.clone()
        }
    }

    /// This event as a new message (same body, fresh message id): a republish.
    pub fn republished(&self) -> Event {
        Event {
            message_id: Some(uuid::Uuid::new_v4().to_string()),
            ..self.clone()
        }
    }

    /// The push of `git-receive-v1.json` for another commit (and repository/branch).
    pub fn push(repo: &str, branch: &str, rev: &str) -> Event {
        let fixture = Event::fixture("git-receive-v1.json");
        let mut body = fixture.json();
        body["commit"]["repo"] = Value::from(repo);
        body["commit"]["branch"] = Value::from(branch);
        body["commit"]["rev"] = Value::from(rev);
        fixture.with_json(&body)
    }

    fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (name, value) in &self.headers {
            headers.insert(name.as_str().into(), json_to_amqp(value));
        }
        let mut properties = BasicProperties::default()
            .with_content_type(names::CONTENT_TYPE_JSON.into())
            .with_delivery_mode(2)
            .with_headers(headers);
        if let Some(encoding) = &self.content_encoding {
            properties = properties.with_content_encoding(encoding.as_str().into());
        }
        if let Some(id) = &self.message_id {
            properties = properties.with_message_id(id.as_str().into());
        }
        properties
    }
}

fn json_to_amqp(value: &Value) -> AMQPValue {
    match value {
        Value::Bool(flag) => AMQPValue::Boolean(*flag),
        Value::Number(number) if number.is_i64() => {
            AMQPValue::LongLongInt(number.as_i64().unwrap())
        }
        Value::Number(number) => AMQPValue::Double(number.as_f64().unwrap()),
        Value::String(text) => AMQPValue::LongString(LongString::from(text.as_bytes().to_vec())),
        other => AMQPValue::LongString(LongString::from(other.to_string().into_bytes())),
    }
}

/// A pseudo-random 40-hex commit id, distinct per `seed`.
pub fn rev(seed: u64) -> String {
    format!("{seed:040x}")
}

/// A running dispatcher in its own vhost and Redis prefix, plus a client to observe it.
// Fields drop in order: the connections before the vhost they live in.
pub struct Harness {
    pub config: Config,
    pub bus: Arc<Bus>,
    pub store: Store,
    pub dist_git: tempfile::TempDir,
    channel: Channel,
    shutdown: CancellationToken,
    running: tokio::sync::Mutex<Option<Running>>,
    pub http_addr: std::net::SocketAddr,
    pub env: TestEnv,
}

impl Harness {
    /// Starts a dispatcher with the default routing (plus a local dist-git base for pushes).
    pub async fn start() -> Harness {
        Harness::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut DispatcherConfig)) -> Harness {
        let env = TestEnv::new();
        let dist_git = tempfile::tempdir().unwrap();
        let base = format!("file://{}", dist_git.path().display());
        let mut dispatcher = DispatcherConfig {
            http_listen: "127.0.0.1:0".parse().unwrap(),
            prefetch: 16,
            retry_delay_ms: 200,
            shutdown_grace_secs: 10,
            git_clone_base: base.clone(),
            // The fixtures name commits of repositories that do not exist: these tests trust
            // the event (tests/distgit.rs checks pushes against real repositories).
            resolve_push_tip: false,
            ..DispatcherConfig::default()
        };
        dispatcher.allowed_git_urls.push(base);
        edit(&mut dispatcher);
        let config = Config {
            amqp: env.amqp.clone(),
            redis: env.redis.clone(),
            dispatcher,
            ..Config::default()
        };
        osbs_common::telemetry::init(&config.telemetry);
        let shutdown = CancellationToken::new();
        let running = osbs_dispatcher::start(config.clone(), shutdown.clone())
            .await
            .expect("the dispatcher starts");
        let bus = Arc::new(Bus::connect(&env.amqp, "dispatcher-test").await.unwrap());
        let channel = bus.channel().await.unwrap();
        let store = Store::connect(&env.redis).await.unwrap();
        Harness {
            http_addr: running.http_addr,
            env,
            config,
            bus,
            store,
            dist_git,
            channel,
            shutdown,
            running: tokio::sync::Mutex::new(Some(running)),
        }
    }

    /// Publishes `event` on `amq.topic` as a fedora-messaging publisher would.
    pub async fn publish(&self, event: &Event) {
        publish(&self.bus, event).await;
    }

    /// Binds a fresh queue to the state events (`<prefix>.osbs.build.state.change`).
    pub async fn watch_state_changes(&self) -> String {
        let name = format!("test.changes.{}", uuid::Uuid::new_v4().simple());
        self.bus.listen_to_state_events(&name).await.unwrap();
        name
    }

    /// Takes every message now in `queue`.
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let mut taken = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            taken.push(message.delivery);
        }
        taken
    }

    /// Every job on `osbs.jobs`, in the order a worker would get them, with its priority.
    pub async fn jobs(&self) -> Vec<(BuildJob, u8)> {
        self.drain(names::QUEUE_JOBS)
            .await
            .into_iter()
            .map(|delivery| {
                let priority = delivery.properties.priority().unwrap_or(0);
                let job =
                    osbs_common::bus::decode::<BuildJob>(&delivery, names::TYPE_BUILD_JOB).unwrap();
                (job, priority)
            })
            .collect()
    }

    /// Every state change published so far on a queue from [`Harness::watch_state_changes`].
    pub async fn state_changes(&self, queue: &str) -> Vec<StateEvent> {
        self.drain(queue)
            .await
            .into_iter()
            .map(|delivery| StateEvent::from_json(&delivery.data).unwrap())
            .collect()
    }

    /// Dead letters on `osbs.events.dead`: (reason header, body).
    pub async fn dead_letters(&self) -> Vec<(String, Vec<u8>)> {
        self.drain(&names::dead_queue(names::QUEUE_EVENTS))
            .await
            .into_iter()
            .map(|delivery| {
                let reason = osbs_common::bus::header_string(
                    &delivery.properties,
                    names::HEADER_DEAD_REASON,
                )
                .unwrap_or_default();
                (reason, delivery.data)
            })
            .collect()
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        http_get(self.http_addr, "/metrics").await.1
    }

    /// A counter's value from `/metrics` (`name` with its labels, as exposed).
    pub async fn counter(&self, series: &str) -> u64 {
        counter_in(&self.metrics().await, series)
    }

    /// Waits until the dispatcher has settled `count` events in all (any outcome).
    pub async fn wait_for_events(&self, count: u64) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let text = self.metrics().await;
            let settled: u64 = ["enqueued", "duplicate", "resumed", "ignored", "refused"]
                .iter()
                .map(|outcome| {
                    counter_in(
                        &text,
                        &format!("osbs_dispatcher_events_total{{outcome=\"{outcome}\"}}"),
                    )
                })
                .sum();
            if settled >= count {
                assert_eq!(
                    settled, count,
                    "more events settled than published:\n{text}"
                );
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the dispatcher settled {settled} of {count} events in {PATIENCE:?}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the dispatcher as SIGTERM would and waits for it (the vhost and keys stay until
    /// the harness is dropped).
    pub async fn stop(&self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.lock().await.take() {
            running.wait().await.unwrap();
        }
    }
}

/// Publishes `event` on `amq.topic` as a fedora-messaging publisher would.
pub async fn publish(bus: &Bus, event: &Event) {
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_TOPIC,
        routing_key: &event.routing_key,
        body: &event.body,
        properties: event.properties(),
        mandatory: true,
    })
    .await
    .expect("the event is routed to osbs.events");
}

/// Takes every message now in `queue`.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<lapin::message::Delivery> {
    let mut taken = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        message
            .delivery
            .ack(BasicAckOptions::default())
            .await
            .unwrap();
        taken.push(message.delivery);
    }
    taken
}

/// Every job now on `osbs.jobs`, in the order a worker would get them, with its priority.
pub async fn jobs(channel: &Channel) -> Vec<(BuildJob, u8)> {
    drain(channel, names::QUEUE_JOBS)
        .await
        .into_iter()
        .map(|delivery| {
            let priority = delivery.properties.priority().unwrap_or(0);
            let job =
                osbs_common::bus::decode::<BuildJob>(&delivery, names::TYPE_BUILD_JOB).unwrap();
            (job, priority)
        })
        .collect()
}

pub fn counter_in(metrics: &str, series: &str) -> u64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// A bare-bones HTTP/1.1 GET (the two endpoints answer small bodies): (status, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}
