//! The service: connects, declares the topology, serves `/healthz` and `/metrics`, and
//! consumes `osbs.events` with `prefetch` deliveries in hand, handled concurrently except that
//! events of one repository branch (one lane) are handled one after the other, in queue
//! order — coalescing needs to see a branch's pushes oldest first.

use crate::acks::Acks;
use crate::config::{Config, Routing};
use crate::decide::{self, Decision, Incoming};
use crate::dispatch::Dispatcher;
use crate::distgit::DistGit;
use crate::error::Error;
use lapin::types::AMQPValue;
use osbs_common::bus::{self, Bus, Delivery};
use osbs_common::http::{self, Health, Metrics};
use osbs_common::store::Store;
use osbs_proto::names;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

/// A started dispatcher.
#[derive(Debug)]
pub struct Running {
    /// Where `/healthz` and `/metrics` answer (useful with port 0).
    pub http_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Running {
    /// Waits until the dispatcher has stopped (after `shutdown`).
    pub async fn wait(self) -> Result<(), Error> {
        self.task
            .await
            .map_err(|error| Error::Task(error.to_string()))
    }
}

/// Runs the dispatcher until `shutdown` is cancelled, then lets the events in hand finish
/// (up to `shutdown_grace_secs`; unfinished ones go back to the queue unacked).
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Error> {
    start(config, shutdown).await?.wait().await
}

/// Starts the dispatcher and returns once it consumes.
pub async fn start(config: Config, shutdown: CancellationToken) -> Result<Running, Error> {
    let routing = Arc::new(Routing::new(&config.dispatcher)?);
    tracing::info!(config = %osbs_common::config::effective(&config), "osbs-dispatcher starting");
    let bus = Arc::new(Bus::connect(&config.amqp, "dispatcher").await?);
    bus.declare_topology().await?;
    let store = Store::connect(&config.redis).await?;
    let metrics = Metrics::new("dispatcher");
    let health = Health::default();
    let settings = &config.dispatcher;
    let http_addr = http::serve(
        settings.http_listen,
        health.clone(),
        metrics.clone(),
        shutdown.clone(),
    )
    .await?;
    let prefetch = settings.prefetch.max(1);
    let subscription = bus.consume(names::QUEUE_EVENTS, prefetch).await?;
    let mut dispatcher = Dispatcher::new(
        bus.clone(),
        store,
        metrics.clone(),
        Duration::from_millis(settings.retry_delay_ms),
    );
    if settings.resolve_push_tip {
        let timeout = Duration::from_secs(settings.git_timeout_secs.max(1));
        dispatcher = dispatcher.with_dist_git(DistGit::new(timeout));
    }
    let acks = settings.ack_runs.then(Acks::start);
    if let Some(acks) = &acks {
        dispatcher = dispatcher.with_acks(acks.clone());
    }
    let dispatcher = Arc::new(dispatcher);
    health.set_ready(true, "consuming osbs.events");
    tracing::info!(%http_addr, prefetch, queue = names::QUEUE_EVENTS, "osbs-dispatcher ready");
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    let lanes = Lanes::default();
    let task = tokio::spawn(async move {
        bus::serve(
            subscription,
            usize::from(prefetch),
            shutdown,
            grace,
            move |delivery| {
                // Runs in delivery order: the delivery enters the ack window, the event is
                // decided and takes its place in its lane.
                if let Some(acks) = &acks {
                    acks.register(&delivery);
                }
                let now_ms = osbs_common::telemetry::now_ms();
                let headers = headers_json(&delivery);
                if let Some(lag) = decide::lag_seconds(&headers, now_ms) {
                    metrics.observe_lag(names::QUEUE_EVENTS, lag);
                }
                let decision = decide_delivery(&delivery, &headers, &routing, now_ms);
                let turn = match &decision {
                    Decision::Enqueue(plan) => Some(lanes.enter(&plan.lane)),
                    _ => None,
                };
                let dispatcher = dispatcher.clone();
                // Boxed: the handler's future is large, and a task's future is moved whole
                // into its cell and out of it again (several copies of it per event).
                Box::pin(async move {
                    let _done = match turn {
                        Some(turn) => Some(turn.wait().await),
                        None => None,
                    };
                    dispatcher.handle(delivery, decision).await;
                })
            },
        )
        .await;
        health.set_ready(false, "stopped");
        bus.close().await;
        tracing::info!("osbs-dispatcher stopped");
    });
    Ok(Running { http_addr, task })
}

fn decide_delivery(
    delivery: &Delivery,
    headers: &Map<String, Value>,
    routing: &Routing,
    now_ms: i64,
) -> Decision {
    let properties = &delivery.properties;
    decide::decide(
        &Incoming {
            routing_key: delivery.routing_key.as_str(),
            content_encoding: properties.content_encoding().as_ref().map(|e| e.as_str()),
            message_id: properties.message_id().as_ref().map(|id| id.as_str()),
            headers,
            body: &delivery.data,
        },
        routing,
        now_ms,
    )
}

/// AMQP headers as JSON values (what fedora-messaging's header schema is written against).
pub fn headers_json(delivery: &Delivery) -> Map<String, Value> {
    delivery
        .properties
        .headers()
        .as_ref()
        .map(|table| {
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), amqp_to_json(value)))
                .collect()
        })
        .unwrap_or_default()
}

fn amqp_to_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(value) => Value::Bool(*value),
        AMQPValue::ShortShortInt(value) => Value::from(*value),
        AMQPValue::ShortShortUInt(value) => Value::from(*value),
        AMQPValue::ShortInt(value) => Value::from(*value),
        AMQPValue::ShortUInt(value) => Value::from(*value),
        AMQPValue::LongInt(value) => Value::from(*value),
        AMQPValue::LongUInt(value) => Value::from(*value),
        AMQPValue::LongLongInt(value) => Value::from(*value),
        AMQPValue::Float(value) => Value::from(f64::from(*value)),
        AMQPValue::Double(value) => Value::from(*value),
        AMQPValue::DecimalValue(decimal) => {
            Value::from(f64::from(decimal.value) / 10f64.powi(i32::from(decimal.scale)))
        }
        AMQPValue::ShortString(value) => Value::String(value.as_str().to_owned()),
        AMQPValue::LongString(value) => {
            Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::FieldArray(values) => {
            Value::Array(values.as_slice().iter().map(amqp_to_json).collect())
        }
        AMQPValue::Timestamp(value) => Value::from(*value),
        AMQPValue::FieldTable(table) => Value::Object(
            table
                .inner()
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), amqp_to_json(value)))
                .collect(),
        ),
        AMQPValue::ByteArray(bytes) => {
            Value::String(String::from_utf8_lossy(bytes.as_slice()).into_owned())
        }
        AMQPValue::Void => Value::Null,
    }
}

/// Per-lane ordering: each event of a lane waits for the one before it to finish. The map
/// holds, per lane, the "done" token of its latest event; tokens of finished events are
/// pruned as the map grows.
#[derive(Debug, Default, Clone)]
struct Lanes {
    latest: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

/// An event's place in its lane.
#[derive(Debug)]
struct Turn {
    previous: Option<CancellationToken>,
    done: DropGuard,
}

impl Turn {
    /// Waits for the previous event of the lane; the returned guard marks this one done when
    /// dropped (also when its task is aborted).
    async fn wait(self) -> DropGuard {
        if let Some(previous) = self.previous {
            previous.cancelled().await;
        }
        self.done
    }
}

impl Lanes {
    fn enter(&self, lane: &str) -> Turn {
        let done = CancellationToken::new();
        let mut latest = self.latest.lock().expect("lanes lock");
        if latest.len() > 1024 {
            latest.retain(|_, token| !token.is_cancelled());
        }
        let previous = latest
            .insert(lane.to_owned(), done.clone())
            .filter(|token| !token.is_cancelled());
        Turn {
            previous,
            done: done.drop_guard(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lane_runs_in_order_and_lanes_run_side_by_side() {
        let lanes = Lanes::default();
        let first = lanes.enter("container/httpd\nf41");
        let second = lanes.enter("container/httpd\nf41");
        let other = lanes.enter("container/nginx\nf41");
        let second = tokio::spawn(second.wait());
        // Another lane does not wait for the first event.
        drop(other.wait().await);
        tokio::task::yield_now().await;
        assert!(
            !second.is_finished(),
            "waits for the first event of its lane"
        );
        let first_done = first.wait().await;
        drop(first_done);
        drop(second.await.unwrap());
        // A lane whose events all finished starts at once.
        drop(lanes.enter("container/httpd\nf41").wait().await);
    }

    #[test]
    fn amqp_headers_become_json() {
        use lapin::types::{FieldArray, LongString};
        assert_eq!(
            amqp_to_json(&AMQPValue::LongString(LongString::from(
                "2025-01-15".as_bytes().to_vec()
            ))),
            Value::from("2025-01-15")
        );
        assert_eq!(amqp_to_json(&AMQPValue::LongLongInt(20)), Value::from(20));
        assert_eq!(amqp_to_json(&AMQPValue::Boolean(true)), Value::Bool(true));
        assert_eq!(
            amqp_to_json(&AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::ShortShortUInt(1)
            ]))),
            serde_json::json!([1])
        );
    }
}
