//! Dispatcher benchmark (not a test): events per second from `amq.topic` to a confirmed job on
//! `osbs.jobs`, against the ceiling of the same broker measured in the same run, and the
//! dispatcher's memory while a backlog waits in `osbs.events`.
//!
//! ```text
//! cargo run --release -p osbs-dispatcher --example dispatcher-bench -- [EVENTS] [PREFETCH...]
//! ```
//! (defaults: 100000 events, prefetch 64 and 256). Needs RabbitMQ and Redis on loopback; uses
//! its own vhost and Redis prefix (osbs-testkit) and removes them at the end.
//!
//! Method, for each prefetch:
//! 1. ceiling: EVENTS pushes wait in `osbs.events` (through `amq.topic`, as the dispatcher's
//!    do); a minimal lapin loop consumes them with that prefetch and, for each delivery
//!    concurrently, publishes it as a job (DESIGN.md's properties) to a second queue
//!    (declared like `osbs.jobs`) and a `queued` state event of the real size, with its
//!    fedora-messaging headers, to `amq.topic`, waits for both confirms, then acks — the
//!    broker work the contract asks for per event, and nothing else (`OSBS_BENCH_CEILING_LIKE`
//!    below: the same loop with bare messages, or some of the contract's). Measured
//!    twice: acking each delivery alone, and acking each batch of finished deliveries with
//!    one `multiple` ack (as the dispatcher does, `[dispatcher] ack_runs`);
//!    (`OSBS_BENCH_SKIP_CEILING=1`: not measured, to iterate on the dispatcher's CPU per event);
//! 2. dispatcher: EVENTS `git.receive` pushes (one per repository, fedora-messaging headers)
//!    wait in `osbs.events`; the dispatcher starts as a separate process (this program with
//!    `--serve`, which calls `osbs_dispatcher::run` like the binary) and the clock runs until
//!    `osbs.jobs` holds EVENTS jobs. Its RSS is sampled from /proc every 100 ms meanwhile
//!    (`OSBS_BENCH_ACK_RUNS=false`: the dispatcher acks each event alone;
//!    `OSBS_DISPATCHER__RUNTIME_THREADS=0`: its runtime has a thread per core, not one;
//!    `OSBS_BENCH_WRAP="valgrind --tool=callgrind"`: it runs under that command);
//! 3. latency: with nothing waiting, pushes are published at a steady 100 per second for
//!    `OSBS_BENCH_LATENCY_SECS` (default 20) seconds, and each one's latency runs from its
//!    publish to its job's delivery to a consumer of `osbs.jobs` (the job is delivered only
//!    once the broker has taken it, i.e. after its confirm): p50, p99, max.

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use osbs_common::bus::{Bus, Outgoing};
use osbs_dispatcher::Config;
use osbs_proto::names;
use osbs_testkit::TestEnv;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        serve(&args[1]);
        return;
    }
    let runtime = osbs_common::service::runtime(None).expect("tokio runtime");
    let events: usize = args
        .first()
        .map_or(100_000, |n| n.parse().expect("EVENTS is a number"));
    let prefetches: Vec<u16> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|p| p.parse().expect("PREFETCH is a number"))
            .collect()
    } else {
        vec![64, 256]
    };
    runtime.block_on(bench(events, &prefetches));
}

/// The dispatcher process: the library's `run` on the runtime its configuration asks for, as
/// `osbs-dispatcher --config` does (the file plus `OSBS_…` variables).
fn serve(config_path: &str) {
    let config: Config =
        osbs_common::config::load(Some(std::path::Path::new(config_path))).expect("config");
    let runtime = osbs_common::service::runtime(config.dispatcher.threads()).expect("runtime");
    runtime.block_on(async {
        osbs_dispatcher::run(config, osbs_common::shutdown::on_signal())
            .await
            .expect("dispatcher")
    });
}

async fn bench(events: usize, prefetches: &[u16]) {
    println!(
        "events: {events}, prefetch: {prefetches:?}, cores: {}",
        cores()
    );
    for &prefetch in prefetches {
        let env = TestEnv::new();
        // OSBS_BENCH_SKIP_CEILING=1: the dispatcher alone (its CPU per event, while iterating).
        let (ceiling_multi, ceiling_multi_cpu, ceiling, ceiling_cpu) =
            if std::env::var("OSBS_BENCH_SKIP_CEILING").is_ok_and(|value| value == "1") {
                (
                    f64::NAN,
                    String::from("skipped"),
                    f64::NAN,
                    String::from("skipped"),
                )
            } else {
                let (multi, multi_cpu) = ceiling(&env, events, prefetch, Acks::Multiple).await;
                let (each, each_cpu) = ceiling(&env, events, prefetch, Acks::Each).await;
                (multi, multi_cpu, each, each_cpu)
            };
        let (rate, rss, dispatcher_cpu) = dispatcher(&env, events, prefetch).await;
        println!("  ceiling loop with {}", Like::from_env().label());
        println!("  CPU ms per 1000 events, ceiling loop:  {ceiling_cpu}");
        println!("  CPU ms per 1000 events, ceiling loop, multiple acks: {ceiling_multi_cpu}");
        println!("  CPU ms per 1000 events, dispatcher:    {dispatcher_cpu}");
        println!(
            "prefetch {prefetch}: ceiling {ceiling:.0}/s (multiple acks {ceiling_multi:.0}/s), dispatcher {rate:.0}/s = {:.0}% of the ceiling ({:.0}% of the one with multiple acks)",
            100.0 * rate / ceiling,
            100.0 * rate / ceiling_multi,
        );
        // RSS when 0%, 10%, ... 100% of the jobs were out (the rest still waiting).
        let deciles: Vec<String> = (0..=10)
            .filter_map(|decile| {
                rss.iter()
                    .find(|(done, _)| *done >= decile * events / 10)
                    .map(|(_, mib)| format!("{mib:.1}"))
            })
            .collect();
        println!(
            "  dispatcher RSS MiB at 0%, 10%, ... 100% done: {} ({} samples)",
            deciles.join(" "),
            rss.len()
        );
    }
    let seconds: u64 = std::env::var("OSBS_BENCH_LATENCY_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20);
    let latencies = latency(&TestEnv::new(), 100, seconds).await;
    println!(
        "latency at 100 events/s for {seconds} s ({} events), publish → job delivered: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        percentile(&latencies, 100.0),
    );
}

/// The `p`th percentile of `values` (sorted), in milliseconds.
fn percentile(values: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1].as_secs_f64() * 1000.0
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A push event body of realistic size (the CommitV1 fixture's shape).
fn push_body(index: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "agent": "jdoe",
        "commit": {
            "name": "Jane Doe", "email": "jdoe@example.com", "username": "jdoe",
            "summary": "Bump", "message": "Bump\n",
            "stats": {"files": {"Dockerfile": {"additions": 1, "deletions": 1, "lines": 2}},
                      "total": {"additions": 1, "deletions": 1, "lines": 2, "files": 1}},
            "rev": format!("{:040x}", index + 1),
            "path": format!("/srv/git/repositories/container/bench-{index}.git/"),
            "repo": format!("bench-{index}"), "namespace": "container", "branch": "f41",
            "patch": "diff --git a/Dockerfile b/Dockerfile\n--- a/Dockerfile\n+++ b/Dockerfile\n@@ -1 +1 @@\n-LABEL version=\"1\"\n+LABEL version=\"2\"\n",
            "date": "2025-01-15T11:21:40+01:00",
            "url": format!("https://src.fedoraproject.org/container/bench-{index}/c/{:040x}", index + 1),
            "seen": false
        }
    }))
    .expect("json")
}

fn push_properties(index: usize) -> BasicProperties {
    let text = |value: &str| AMQPValue::LongString(LongString::from(value.as_bytes().to_vec()));
    let mut headers = FieldTable::default();
    headers.insert(
        "fedora_messaging_schema".into(),
        text(names::SCHEMA_GIT_RECEIVE),
    );
    headers.insert(
        "sent-at".into(),
        text(&osbs_proto::external::iso8601(
            osbs_common::telemetry::now_ms(),
        )),
    );
    headers.insert(
        "fedora_messaging_severity".into(),
        AMQPValue::LongLongInt(20),
    );
    BasicProperties::default()
        .with_content_type(names::CONTENT_TYPE_JSON.into())
        .with_content_encoding("utf-8".into())
        .with_delivery_mode(2)
        .with_message_id(format!("bench-{index}").into())
        .with_headers(headers)
}

/// Publishes `count` messages with pipelined confirms.
async fn fill(bus: &Bus, count: usize, exchange: &str, routing_key: &str) {
    futures::stream::iter(0..count)
        .map(|index| async move {
            let body = push_body(index);
            bus.publish(Outgoing {
                exchange,
                routing_key,
                body: &body,
                properties: push_properties(index),
                mandatory: true,
            })
            .await
            .expect("publish");
        })
        .buffer_unordered(512)
        .collect::<Vec<()>>()
        .await;
}

/// A `queued` state event as the dispatcher announces it (fedora-messaging JSON, its size).
const STATE_EVENT: &str = r#"{"build_id":"5f0c3a3e9d1b4c7a8e2f6a1b3c5d7e9f","repo":"bench-1","namespace":"container","branch":"f41","commit":"0000000000000000000000000000000000000001","target":"f41-container-candidate","old_state":null,"new_state":"queued","at":"2026-12-07T04:00:00.000Z","owner":"jdoe","reason":"","component":null,"url":"https://src.fedoraproject.org/container/bench-1.git#0000000000000000000000000000000000000001","scratch":false,"trigger":"push"}"#;

/// Which of the contract's messages the ceiling loop handles (`OSBS_BENCH_CEILING_LIKE`, a
/// comma list; default `events,job,state`, all of them; `none`: bare messages, the loop's
/// figure before 2026-12-08). The contract's messages cost the broker more than bare ones
/// (headers and properties to parse and store); a dispatcher cannot send less than them.
#[derive(Debug, Clone, Copy, Default)]
struct Like {
    /// `events`: consume `osbs.events` (declared by the topology, single active consumer,
    /// dead-lettering), its backlog published through `amq.topic` with fedora-messaging
    /// headers.
    events: bool,
    /// `job`: the job's properties as DESIGN.md defines them (`type`, `content_type`), not
    /// the `message_id` the dispatcher adds to name a dead-lettered job.
    job: bool,
    /// `state`: the state event's properties (fedora-messaging headers, message id).
    state: bool,
}

impl Like {
    fn from_env() -> Like {
        let list =
            std::env::var("OSBS_BENCH_CEILING_LIKE").unwrap_or_else(|_| "events,job,state".into());
        let has = |name: &str| list.split(',').any(|item| item.trim() == name);
        Like {
            events: has("events"),
            job: has("job"),
            state: has("state"),
        }
    }

    /// How the ceiling's lines name it.
    fn label(self) -> &'static str {
        match (self.events, self.job, self.state) {
            (true, true, true) => "the contract's messages",
            (false, false, false) => "bare messages",
            _ => "some of the contract's messages",
        }
    }
}

/// A job's properties as DESIGN.md asks for them: persistent, its message type and content
/// type, and the priority every job on the priority queue has.
fn contract_job_properties() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(names::CONTENT_TYPE_PROTOBUF.into())
        .with_type(names::TYPE_BUILD_JOB.into())
        .with_priority(0)
}

/// Properties of a state event as `Bus::announce` makes them.
fn state_event_properties() -> BasicProperties {
    // The headers depend only on these (STATE_EVENT's owner, repo and state).
    let event = osbs_proto::external::StateEvent {
        build_id: String::new(),
        nvr: String::new(),
        old_state: osbs_proto::v1::BuildState::Unspecified,
        new_state: osbs_proto::v1::BuildState::Queued,
        reason: String::new(),
        pullspecs: Vec::new(),
        owner: "jdoe".into(),
        repo: "bench-1".into(),
        namespace: None,
        component: None,
        url: None,
        branch: String::new(),
        target: String::new(),
        koji_build_id: None,
        at: String::new(),
    };
    let mut headers = FieldTable::default();
    for (name, value) in event.headers(osbs_common::telemetry::now_ms()) {
        let value = match value {
            osbs_proto::external::HeaderValue::Text(text) => {
                AMQPValue::LongString(LongString::from(text.into_bytes()))
            }
            osbs_proto::external::HeaderValue::Int(number) => AMQPValue::LongLongInt(number),
            osbs_proto::external::HeaderValue::Bool(flag) => AMQPValue::Boolean(flag),
        };
        headers.insert(name.into(), value);
    }
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(names::CONTENT_TYPE_JSON.into())
        .with_content_encoding("utf-8".into())
        .with_message_id(uuid::Uuid::new_v4().to_string().into())
        .with_headers(headers)
}

/// How the ceiling loop acks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acks {
    /// One `basic.ack` per delivery, as soon as its publishes are confirmed.
    Each,
    /// One `basic.ack` with `multiple` for the run of deliveries finished at once (as the
    /// dispatcher does): the delivery tags of a channel count up from 1, and the run acked is
    /// the contiguous one from the lowest unacked tag.
    Multiple,
}

/// The minimal consume → publish-with-confirm → ack loop; (messages per second, CPU spent).
async fn ceiling(env: &TestEnv, events: usize, prefetch: u16, acks: Acks) -> (f64, String) {
    let connection = Connection::connect(env.amqp.url.expose(), ConnectionProperties::default())
        .await
        .expect("connect");
    let setup = connection.create_channel().await.expect("channel");
    // The destination is declared like osbs.jobs (a priority queue): the same broker work as
    // enqueueing a job.
    let mut priority = FieldTable::default();
    priority.insert(
        "x-max-priority".into(),
        AMQPValue::ShortShortUInt(osbs_common::bus::MAX_PRIORITY),
    );
    for (queue, arguments) in [("bench.in", FieldTable::default()), ("bench.out", priority)] {
        setup
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .expect("declare");
    }
    let bus = Bus::connect(&env.amqp, "bench").await.expect("bus");
    let like = Like::from_env();
    // `events`: the backlog waits in `osbs.events`, published through `amq.topic` (as the
    // dispatcher's); otherwise in a plain queue, published to it directly.
    let source = if like.events {
        bus.declare_topology().await.expect("topology");
        let routing_key = format!("{}.{}", env.amqp.topic_prefix, names::TOPIC_GIT_RECEIVE);
        fill(&bus, events, names::EXCHANGE_TOPIC, &routing_key).await;
        names::QUEUE_EVENTS
    } else {
        fill(&bus, events, "", "bench.in").await;
        "bench.in"
    };

    let consumer_channel = connection.create_channel().await.expect("channel");
    consumer_channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .expect("qos");
    let publisher = connection.create_channel().await.expect("channel");
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm");
    let mut consumer = consumer_channel
        .basic_consume(
            source.into(),
            "ceiling".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let state_key = names::external_state_routing_key(&env.amqp.topic_prefix);
    let before = Cpu::now(None);
    let started = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    let mut done = 0;
    let mut finished_acks = std::collections::HashMap::new();
    let mut next_tag = 1;
    while done < events {
        tokio::select! {
            Some(delivery) = consumer.next() => {
                let delivery = delivery.expect("delivery");
                let publisher = publisher.clone();
                let state_key = state_key.clone();
                running.spawn(async move {
                    let job_properties = if like.job {
                        contract_job_properties()
                    } else {
                        BasicProperties::default().with_delivery_mode(2).with_priority(0)
                    };
                    let job = publisher.basic_publish(
                        "".into(),
                        "bench.out".into(),
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        &delivery.data,
                        job_properties,
                    );
                    let event_properties = if like.state {
                        state_event_properties()
                    } else {
                        BasicProperties::default().with_delivery_mode(2)
                    };
                    let event = publisher.basic_publish(
                        names::EXCHANGE_TOPIC.into(),
                        state_key.as_str().into(),
                        BasicPublishOptions::default(),
                        STATE_EVENT.as_bytes(),
                        event_properties,
                    );
                    let (job, event) = futures::join!(job, event);
                    let (job, event) = (job.expect("publish"), event.expect("publish"));
                    let (job, event) = futures::join!(job, event);
                    job.expect("confirm");
                    event.expect("confirm");
                    if acks == Acks::Each {
                        delivery.ack(BasicAckOptions::default()).await.expect("ack");
                    }
                    (delivery.delivery_tag, delivery.acker)
                });
            }
            Some(finished) = running.join_next() => {
                let mut finished = vec![finished.expect("task")];
                if acks == Acks::Multiple {
                    while let Some(more) = running.try_join_next() {
                        finished.push(more.expect("task"));
                    }
                }
                done += finished.len();
                if acks == Acks::Multiple {
                    finished_acks.extend(finished);
                    let mut last = None;
                    while let Some(acker) = finished_acks.remove(&next_tag) {
                        last = Some(acker);
                        next_tag += 1;
                    }
                    if let Some(acker) = last {
                        acker.ack(BasicAckOptions { multiple: true }).await.expect("ack");
                    }
                }
            }
        }
    }
    let rate = events as f64 / started.elapsed().as_secs_f64();
    let cpu = Cpu::now(None).since(&before, events);
    for queue in [source, "bench.out"] {
        let _ = setup
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
    bus.close().await;
    (rate, cpu)
}

/// The dispatcher draining `events` waiting pushes; (events per second, RSS samples in MiB
/// with the number of jobs out at the time, CPU spent).
async fn dispatcher(
    env: &TestEnv,
    events: usize,
    prefetch: u16,
) -> (f64, Vec<(usize, f64)>, String) {
    let bus = Bus::connect(&env.amqp, "bench").await.expect("bus");
    bus.declare_topology().await.expect("topology");
    let routing_key = format!("{}.{}", env.amqp.topic_prefix, names::TOPIC_GIT_RECEIVE);
    fill(&bus, events, names::EXCHANGE_TOPIC, &routing_key).await;
    let waiting = bus.queue_depth(names::QUEUE_EVENTS).await.expect("depth");
    assert_eq!(
        waiting.messages as usize, events,
        "the backlog waits in osbs.events"
    );

    let (mut child, pid, _dir) = spawn_dispatcher(env, prefetch);
    let before = Cpu::now(Some(pid));
    let started = Instant::now();
    let mut rss = Vec::new();
    // One channel for the whole run: opening one per look would load the broker.
    let watcher = bus.channel().await.expect("channel");
    loop {
        let jobs = watcher
            .queue_declare(
                names::QUEUE_JOBS.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("depth")
            .message_count();
        if jobs as usize >= events {
            break;
        }
        if let Some(mib) = rss_mib(pid) {
            rss.push((jobs as usize, mib));
        }
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the dispatcher died"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let cpu = Cpu::now(Some(pid)).since(&before, events);
    if let Some(mib) = rss_mib(pid) {
        rss.push((events, mib));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait().await;
    bus.close().await;
    // The clock includes the process start (connect, topology): a fraction of a second.
    (events as f64 / elapsed.as_secs_f64(), rss, cpu)
}

/// The dispatcher as its own process (this program with `--serve`) on `env`; (process, pid,
/// the directory of its configuration, kept while it runs).
fn spawn_dispatcher(
    env: &TestEnv,
    prefetch: u16,
) -> (tokio::process::Child, u32, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("osbs.toml");
    std::fs::write(
        &config,
        // The pushes name commits of no repository: the dispatcher trusts them (its bus and
        // Redis path is measured here; the dist-git check costs one `git ls-remote` per push,
        // docs/BENCHMARKS.md).
        format!(
            "[dispatcher]\nhttp_listen = \"127.0.0.1:0\"\nprefetch = {prefetch}\nresolve_push_tip = false\nack_runs = {}\n",
            // OSBS_BENCH_ACK_RUNS=false: each event acked alone (to measure what runs save).
            std::env::var("OSBS_BENCH_ACK_RUNS").map_or(true, |value| value != "false"),
        ),
    )
    .expect("config file");
    // OSBS_BENCH_WRAP: a command the process runs under (e.g. `valgrind --tool=callgrind`),
    // words split on whitespace, to count its instructions per event.
    let wrap = std::env::var("OSBS_BENCH_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let own = std::env::current_exe().expect("own path");
    let mut command = match words.next() {
        Some(program) => {
            let mut command = tokio::process::Command::new(program);
            command.args(words).arg(&own);
            command
        }
        None => tokio::process::Command::new(&own),
    };
    let child = command
        .arg("--serve")
        .arg(&config)
        .envs(env.env_vars())
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the dispatcher");
    let pid = child.id().expect("pid");
    (child, pid, dir)
}

/// Pushes published at `rate` per second for `seconds` to a running dispatcher with nothing
/// waiting; each one's time from its publish to its job's delivery on `osbs.jobs`, sorted.
async fn latency(env: &TestEnv, rate: u64, seconds: u64) -> Vec<Duration> {
    let bus = std::sync::Arc::new(Bus::connect(&env.amqp, "bench").await.expect("bus"));
    bus.declare_topology().await.expect("topology");
    let (mut child, _pid, _dir) = spawn_dispatcher(env, 64);
    let channel = bus.channel().await.expect("channel");
    // The clock starts only once the dispatcher consumes: no event waits for its start.
    while bus
        .queue_depth(names::QUEUE_EVENTS)
        .await
        .expect("depth")
        .consumers
        == 0
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut jobs = channel
        .basic_consume(
            names::QUEUE_JOBS.into(),
            "latency".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let count = (rate * seconds) as usize;
    let sent = std::sync::Arc::new(std::sync::Mutex::new(vec![None; count]));
    let routing_key = format!("{}.{}", env.amqp.topic_prefix, names::TOPIC_GIT_RECEIVE);
    let publisher = {
        let (bus, sent) = (bus.clone(), sent.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            for index in 0..count {
                tick.tick().await;
                sent.lock().expect("lock")[index] = Some(Instant::now());
                let body = push_body(index);
                bus.publish(Outgoing {
                    exchange: names::EXCHANGE_TOPIC,
                    routing_key: &routing_key,
                    body: &body,
                    properties: push_properties(index),
                    mandatory: true,
                })
                .await
                .expect("publish");
            }
        })
    };
    let mut latencies = Vec::with_capacity(count);
    while latencies.len() < count {
        let delivery = tokio::time::timeout(Duration::from_secs(30), jobs.next())
            .await
            .expect("a job within 30 s")
            .expect("consumer")
            .expect("delivery");
        let arrived = Instant::now();
        let job = <osbs_proto::BuildJob as osbs_proto::Message>::decode(delivery.data.as_slice())
            .expect("a BuildJob");
        let index: usize = job.repo["bench-".len()..].parse().expect("bench repo");
        let sent_at = sent.lock().expect("lock")[index].expect("published");
        latencies.push(arrived - sent_at);
    }
    publisher.await.expect("publisher");
    let _ = child.start_kill();
    let _ = child.wait().await;
    if let Ok(bus) = std::sync::Arc::try_unwrap(bus) {
        bus.close().await;
    }
    latencies.sort();
    latencies
}

/// CPU time (clock ticks) of the broker, Redis, this program and the dispatcher process, to
/// show where a run's time goes.
#[derive(Debug, Clone, Copy, Default)]
struct Cpu {
    broker: u64,
    redis: u64,
    bench: u64,
    dispatcher: u64,
}

impl Cpu {
    fn now(dispatcher: Option<u32>) -> Cpu {
        let mut cpu = Cpu {
            bench: ticks("self").unwrap_or(0),
            dispatcher: dispatcher
                .and_then(|pid| ticks(&pid.to_string()))
                .unwrap_or(0),
            ..Cpu::default()
        };
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            match comm.trim() {
                "beam.smp" => cpu.broker += ticks(&pid).unwrap_or(0),
                "redis-server" => cpu.redis += ticks(&pid).unwrap_or(0),
                _ => {}
            }
        }
        cpu
    }

    /// Milliseconds per 1000 events since `before` (Linux clock ticks are 10 ms).
    fn since(&self, before: &Cpu, events: usize) -> String {
        let per_thousand =
            |now: u64, then: u64| (now.saturating_sub(then) * 10) as f64 * 1000.0 / events as f64;
        format!(
            "broker {:.0}, redis {:.0}, dispatcher process {:.0}, bench process {:.0}",
            per_thousand(self.broker, before.broker),
            per_thousand(self.redis, before.redis),
            per_thousand(self.dispatcher, before.dispatcher),
            per_thousand(self.bench, before.bench),
        )
    }
}

/// utime + stime of a process, in clock ticks.
fn ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
