//! The bus and the store against the real RabbitMQ and Redis: confirmed publishing, consuming,
//! dead-lettering with a reason, idempotent records, the one state-change path (compare-and-
//! set, history, one announcement on `amq.topic`), live logs, locks.

use lapin::options::{BasicAckOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use osbs_common::bus::{self, Bus};
use osbs_common::failover;
use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::{Created, Lock, LogCursor, LogEntry, PartRecorded, Store, field};
use osbs_proto::StateEvent;
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildState, Target};
use osbs_testkit::TestEnv;
use std::time::Duration;

fn job(id: &str) -> BuildJob {
    BuildJob {
        build_id: id.into(),
        repo: "httpd".into(),
        namespace: "container".into(),
        branch: "f41".into(),
        commit: "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into(),
        submitter: "jdoe".into(),
        target: Some(Target {
            name: "f41-container-candidate".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the git hook declares (the events queue alone) keeps a push for a dispatcher that
/// never ran, and the services' whole topology, declared after, agrees with it.
#[tokio::test]
async fn the_events_queue_alone_keeps_a_push_until_a_dispatcher_comes() {
    let env = TestEnv::new();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_events_queue().await.unwrap();
    let topic = format!("{}.{}", env.amqp.topic_prefix, names::TOPIC_GIT_RECEIVE);
    bus.publish(bus::Outgoing {
        exchange: names::EXCHANGE_TOPIC,
        routing_key: &topic,
        body: b"{}",
        properties: lapin::BasicProperties::default(),
        mandatory: true,
    })
    .await
    .unwrap();
    let depth = bus.queue_depth(names::QUEUE_EVENTS).await.unwrap();
    assert_eq!(depth.messages, 1);
    assert!(
        bus.queue_depth(names::QUEUE_JOBS).await.is_err(),
        "only the events queue and its dead queue are declared"
    );
    bus.queue_depth(&names::dead_queue(names::QUEUE_EVENTS))
        .await
        .unwrap();
    bus.declare_topology().await.unwrap();
    let depth = bus.queue_depth(names::QUEUE_EVENTS).await.unwrap();
    assert_eq!(depth.messages, 1, "the push is still there");
}

/// A connection asks for a short heartbeat ([`failover::HEARTBEAT_SECS`]) and the broker
/// agrees to it: a node lost without a word (killed mid-frame, cut off) is noticed within
/// seconds, not after the broker's default 60 s twice over.
#[tokio::test]
async fn a_connection_is_held_to_a_short_heartbeat() {
    let env = TestEnv::new();
    let who = format!("heartbeat-{}", uuid::Uuid::new_v4().simple());
    let _bus = Bus::connect(&env.amqp, &who).await.unwrap();
    let listing = osbs_testkit::run(&[
        "rabbitmqctl",
        "list_connections",
        "--no-table-headers",
        "--quiet",
        "timeout",
        "client_properties",
    ]);
    let line = listing
        .lines()
        .find(|line| line.contains(&format!("osbs-{who}@")))
        .unwrap_or_else(|| panic!("the broker lists the connection:\n{listing}"));
    assert_eq!(
        line.split_whitespace().next(),
        Some(failover::HEARTBEAT_SECS.to_string().as_str()),
        "{line}"
    );
}

/// A publish the broker nacks (here a full queue that rejects publishes) is retried on a
/// fresh channel and finally reported; the bus goes on publishing and being confirmed. (The
/// nacks this guards against in production: a channel RabbitMQ 3.10 leaves nacking every
/// publish to a quorum queue after its leader's node was lost.)
#[tokio::test]
async fn a_nacked_publish_is_reported_and_the_bus_goes_on_confirming() {
    let env = TestEnv::new();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    let full = format!("full-{}", uuid::Uuid::new_v4().simple());
    let open = format!("open-{}", uuid::Uuid::new_v4().simple());
    let channel = bus.channel().await.unwrap();
    let mut arguments = FieldTable::default();
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    arguments.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    for (queue, arguments) in [(&full, arguments), (&open, FieldTable::default())] {
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    auto_delete: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .unwrap();
    }
    let message = |queue| bus::Outgoing {
        exchange: "",
        routing_key: queue,
        body: b"x",
        properties: lapin::BasicProperties::default(),
        mandatory: true,
    };
    let refused = bus.publish(message(&full)).await.unwrap_err().to_string();
    assert!(refused.contains("nacked by the broker"), "{refused}");
    for _ in 0..3 {
        bus.publish(message(&open)).await.unwrap();
    }
    assert_eq!(bus.queue_depth(&open).await.unwrap().messages, 3);
}

#[tokio::test]
async fn jobs_travel_and_refused_messages_are_dead_lettered_with_their_reason() {
    let env = TestEnv::new();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    // Declaring twice is harmless: every service does it at start.
    bus.declare_topology().await.unwrap();

    bus.publish_job(&job("b-low"), 0).await.unwrap();
    bus.publish_job(&job("b-high"), 9).await.unwrap();
    let depth = bus.queue_depth(names::QUEUE_JOBS).await.unwrap();
    assert_eq!(depth.messages, 2);

    let mut subscription = bus.consume(names::QUEUE_JOBS, 1).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .unwrap()
        .unwrap();
    let decoded: BuildJob = bus::decode(&first, names::TYPE_BUILD_JOB).unwrap();
    assert_eq!(decoded.build_id, "b-high", "explicit requests go first");
    bus.dead_letter(&first, names::QUEUE_JOBS, "bad thing\nhappened")
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), subscription.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        bus::decode::<BuildJob>(&second, names::TYPE_BUILD_JOB)
            .unwrap()
            .build_id,
        "b-low"
    );
    bus::ack(&second).await;
    subscription.cancel().await;

    let channel = bus.channel().await.unwrap();
    let dead = bus
        .get_one(&channel, &names::dead_queue(names::QUEUE_JOBS))
        .await
        .unwrap()
        .expect("a dead letter");
    assert_eq!(
        bus::header_string(&dead.delivery.properties, names::HEADER_DEAD_REASON).as_deref(),
        Some("bad thing | happened")
    );
    assert_eq!(
        bus::header_string(&dead.delivery.properties, names::HEADER_DEAD_ROUTING_KEY).as_deref(),
        Some("job")
    );
    let decoded: BuildJob = bus::decode(&dead.delivery, names::TYPE_BUILD_JOB).unwrap();
    assert_eq!(decoded.build_id, "b-high");
    assert_eq!(
        bus.queue_depth(names::QUEUE_JOBS).await.unwrap().messages,
        0
    );
    bus.close().await;
}

/// Takes every message now in `queue` (acked).
async fn drain(bus: &Bus, queue: &str) -> Vec<lapin::message::Delivery> {
    let channel = bus.channel().await.unwrap();
    let mut taken = Vec::new();
    while let Some(message) = bus.get_one(&channel, queue).await.unwrap() {
        message.ack(BasicAckOptions::default()).await.unwrap();
        taken.push(message.delivery);
    }
    taken
}

/// A queue taking everything published on the internal exchange.
async fn everything_internal(bus: &Bus) -> String {
    let channel = bus.channel().await.unwrap();
    let queue = "test.everything-internal";
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.into(),
            names::EXCHANGE_INTERNAL.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    queue.to_owned()
}

#[tokio::test]
async fn records_are_idempotent_and_follow_the_state_machine() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    let created = store
        .create(&job("b1"), "key-1", 1_000, "test", &[])
        .await
        .unwrap();
    assert!(matches!(&created, Created::New(recorded) if recorded.build_id() == "b1"));
    let Created::New(recorded) = created else {
        unreachable!()
    };
    assert_eq!(recorded.event().old_state, BuildState::Unspecified);
    assert_eq!(recorded.event().new_state, BuildState::Queued);
    let again = store
        .create(&job("b2"), "key-1", 2_000, "test", &[])
        .await
        .unwrap();
    assert_eq!(again, Created::Existing("b1".into()));
    assert!(store.get("b2").await.unwrap().is_none());

    let record = store.require("b1").await.unwrap();
    assert_eq!(record.state, BuildState::Queued);
    assert_eq!(record.job.repo, "httpd");

    let refused = state::change(
        &store,
        &bus,
        StateChange::new("b1", BuildState::Complete, "", "test"),
    )
    .await
    .unwrap();
    assert!(matches!(refused, Changed::Refused(record) if record.state == BuildState::Queued));

    let change = StateChange::new("b1", BuildState::Running, "picked", "w1")
        .with_fields(vec![(field::WORKER, "w1".into())]);
    let Changed::Done(moved) = state::change(&store, &bus, change).await.unwrap() else {
        panic!("queued → running is allowed");
    };
    assert_eq!(
        (moved.from, moved.to),
        (BuildState::Queued, BuildState::Running)
    );
    assert_eq!(moved.record.field(field::WORKER), "w1");
    let record = store.require("b1").await.unwrap();
    assert_eq!(record.state, BuildState::Running);
    assert_eq!(record.field("worker"), "w1");
    let history = store.history("b1").await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|entry| entry.to.as_str())
            .collect::<Vec<_>>(),
        vec!["queued", "running"]
    );
    assert_eq!(
        (history[1].reason.as_str(), history[1].by.as_str()),
        ("picked", "w1")
    );

    let listed = store.list(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(store.require("missing").await.is_err());
    let state_field = store
        .set_fields("b1", &[(field::STATE, "complete".into())])
        .await
        .unwrap_err();
    assert!(
        state_field
            .to_string()
            .contains("changes only with its state"),
        "{state_field}"
    );
    assert_eq!(
        store.require("b1").await.unwrap().state,
        BuildState::Running
    );
}

#[tokio::test]
async fn a_state_change_is_compared_recorded_and_announced_once_on_amq_topic_only() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    bus.listen_to_state_events("test.state-events")
        .await
        .unwrap();
    let internal = everything_internal(&bus).await;
    store
        .create(&job("b1"), "key-1", 1_000, "dispatcher", &[])
        .await
        .unwrap();

    // An illegal move and a stale `from` are refused: nothing written, nothing announced.
    let illegal = StateChange::new("b1", BuildState::Imported, "no", "test");
    let stale = StateChange::new("b1", BuildState::Canceled, "no", "test")
        .only_from(&[BuildState::Running]);
    for change in [illegal, stale] {
        let to = change.to;
        let outcome = state::change(&store, &bus, change).await.unwrap();
        assert!(
            matches!(&outcome, Changed::Refused(record) if record.state == BuildState::Queued),
            "to {to}: {outcome:?}"
        );
    }
    let missing = StateChange::new("nobody", BuildState::Running, "", "test");
    assert!(matches!(
        state::change(&store, &bus, missing).await.unwrap(),
        Changed::Missing
    ));
    assert_eq!(store.history("b1").await.unwrap().len(), 1);

    let canceled = StateChange::new("b1", BuildState::Canceled, "canceled by jdoe", "jdoe")
        .only_from(&[BuildState::Queued])
        .with_fields(vec![(field::CANCEL_REQUESTED, "1".into())]);
    let outcome = state::change(&store, &bus, canceled).await.unwrap();
    assert!(matches!(outcome, Changed::Done(_)), "{outcome:?}");
    // Two services racing: the second finds it moved.
    let late =
        StateChange::new("b1", BuildState::Running, "", "w").only_from(&[BuildState::Queued]);
    assert!(matches!(
        state::change(&store, &bus, late).await.unwrap(),
        Changed::Refused(record) if record.state == BuildState::Canceled
    ));

    let events = drain(&bus, "test.state-events").await;
    assert_eq!(events.len(), 1, "one announcement for one change");
    let delivery = &events[0];
    assert_eq!(delivery.exchange.as_str(), names::EXCHANGE_TOPIC);
    assert_eq!(
        delivery.routing_key.as_str(),
        names::external_state_routing_key(&env.amqp.topic_prefix)
    );
    let event = StateEvent::from_json(&delivery.data).unwrap();
    let entry = store.history("b1").await.unwrap().pop().unwrap();
    assert_eq!(
        (event.build_id.as_str(), event.old_state, event.new_state),
        ("b1", BuildState::Queued, BuildState::Canceled)
    );
    assert_eq!(event.reason, "canceled by jdoe");
    assert_eq!(event.at, osbs_proto::external::iso8601(entry.at_ms));
    assert_eq!(
        (event.owner.as_str(), event.repo.as_str()),
        ("jdoe", "httpd")
    );
    let headers = delivery.properties.headers().as_ref().unwrap().inner();
    assert_eq!(
        bus::header_string(&delivery.properties, "fedora_messaging_schema").as_deref(),
        Some(names::SCHEMA_STATE_CHANGE)
    );
    assert_eq!(
        headers.get("fedora_messaging_user_jdoe"),
        Some(&AMQPValue::Boolean(true))
    );
    assert_eq!(
        headers.get("fedora_messaging_container_httpd"),
        Some(&AMQPValue::Boolean(true))
    );
    // The internal queue does hear the internal exchange: a job reaches it, and only that.
    bus.publish_job(&job("b2"), 0).await.unwrap();
    let internal = drain(&bus, &internal).await;
    assert_eq!(
        internal
            .iter()
            .map(|delivery| bus::kind_of(delivery).unwrap_or_default())
            .collect::<Vec<_>>(),
        vec![names::TYPE_BUILD_JOB],
        "nothing on the `osbs` exchange for a state change"
    );

    // A change recorded whose announcement may be lost is announced again from the record.
    let recorded = store
        .recorded_announcement("b1", BuildState::Canceled)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(recorded.event(), &event);
    bus.announce(&recorded).await.unwrap();
    let again = drain(&bus, "test.state-events").await;
    assert_eq!(StateEvent::from_json(&again[0].data).unwrap(), event);
    assert!(
        store
            .recorded_announcement("b1", BuildState::Running)
            .await
            .unwrap()
            .is_none()
    );
    bus.close().await;
}

#[tokio::test]
async fn live_logs_are_followed_to_their_end() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    store
        .append_log(
            "b1",
            &["Step 1/2 : FROM x".into(), "Step 2/2 : RUN y".into()],
        )
        .await
        .unwrap();
    store.end_log("b1", BuildState::Complete).await.unwrap();
    let entries = store.read_log("b1", "0", 100, None).await.unwrap();
    assert_eq!(entries.len(), 3);
    assert!(matches!(&entries[0], LogEntry::Line { text, .. } if text == "Step 1/2 : FROM x"));
    assert!(matches!(&entries[2], LogEntry::End { state, .. } if state == "complete"));
    let LogEntry::End { id, .. } = &entries[2] else {
        unreachable!()
    };
    let after = store
        .read_log("b1", id, 10, Some(Duration::from_millis(100)))
        .await
        .unwrap();
    assert!(after.is_empty());
}

#[tokio::test]
async fn each_arch_job_has_its_own_live_log_beside_the_builds() {
    use redis::AsyncCommands;
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    store
        .append_log("b2", &["orchestrating".into()])
        .await
        .unwrap();
    store
        .append_log(
            &osbs_common::store::log::stream("b2", "x86_64"),
            &["x86 line".into()],
        )
        .await
        .unwrap();
    store
        .append_log(
            &osbs_common::store::log::stream("b2", "aarch64"),
            &["arm line 1".into(), "arm line 2".into()],
        )
        .await
        .unwrap();
    store
        .end_log(
            &osbs_common::store::log::stream("b2", "aarch64"),
            BuildState::Complete,
        )
        .await
        .unwrap();

    // Seen from outside, as an operator would: one stream per arch, named after it.
    let mut redis = redis::Client::open(env.redis.url.expose())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let prefix = &env.redis.key_prefix;
    let len: usize = redis
        .xlen(format!("{prefix}:log:b2:aarch64"))
        .await
        .unwrap();
    assert_eq!(len, 3);
    let len: usize = redis.xlen(format!("{prefix}:log:b2")).await.unwrap();
    assert_eq!(
        len, 1,
        "the build's own log holds none of the arches' lines"
    );

    let own = store.read_log("b2", "0", 10, None).await.unwrap();
    assert!(matches!(&own[..], [LogEntry::Line { text, .. }] if text == "orchestrating"));
    let arm = store
        .read_arch_log("b2", Some("aarch64"), "0", 10, None)
        .await
        .unwrap();
    assert_eq!(arm.len(), 3);
    assert!(matches!(&arm[2], LogEntry::End { state, .. } if state == "complete"));

    // All three at once, each from its own cursor.
    let cursor = |arch: Option<&str>, after: &str| LogCursor {
        arch: arch.map(str::to_owned),
        after: after.to_owned(),
    };
    let LogEntry::Line { id: first_arm, .. } = &arm[0] else {
        unreachable!()
    };
    let all = store
        .read_logs(
            "b2",
            &[
                cursor(None, "0"),
                cursor(Some("x86_64"), "0"),
                cursor(Some("aarch64"), first_arm),
            ],
            100,
            None,
        )
        .await
        .unwrap();
    let seen: Vec<(Option<&str>, &str)> = all
        .iter()
        .map(|(arch, entry)| {
            let text = match entry {
                LogEntry::Line { text, .. } => text.as_str(),
                LogEntry::End { .. } => "<end>",
            };
            (arch.as_deref(), text)
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (None, "orchestrating"),
            (Some("x86_64"), "x86 line"),
            (Some("aarch64"), "arm line 2"),
            (Some("aarch64"), "<end>"),
        ]
    );
    assert_eq!(
        store
            .arch_log_lines_dropped("b2", Some("aarch64"))
            .await
            .unwrap(),
        0
    );
    // Nothing new anywhere: a blocking read waits and comes back empty.
    let last = |arch: Option<&str>| {
        all.iter()
            .rev()
            .find(|(a, _)| a.as_deref() == arch)
            .map(|(_, entry)| match entry {
                LogEntry::Line { id, .. } | LogEntry::End { id, .. } => id.clone(),
            })
            .unwrap()
    };
    let none = store
        .read_logs(
            "b2",
            &[
                cursor(None, &last(None)),
                cursor(Some("aarch64"), &last(Some("aarch64"))),
            ],
            10,
            Some(Duration::from_millis(100)),
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_lock_is_renewed_and_released_only_by_its_holder() {
    use redis::AsyncCommands;
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    // Observed from outside, as an operator would.
    let mut redis = redis::Client::open(env.redis.url.expose())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!("{}:owner:b1", env.redis.key_prefix);
    let lock = Lock::BuildOwner("b1");
    let short = Duration::from_secs(1);
    assert!(store.take_lock(lock, "holder", short).await.unwrap());
    assert!(
        !store.take_lock(lock, "someone-else", short).await.unwrap(),
        "held"
    );
    let ttl = Duration::from_secs(60);
    assert!(!store.renew_lock(lock, "someone-else", ttl).await.unwrap());
    assert!(store.renew_lock(lock, "holder", ttl).await.unwrap());
    let remaining: i64 = redis.pttl(&key).await.unwrap();
    assert!(
        remaining > 1_000,
        "renewed to about 60 s, has {remaining} ms"
    );
    store.release_lock(lock, "someone-else").await.unwrap();
    let held: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(
        held.as_deref(),
        Some("holder"),
        "a stranger cannot release it"
    );
    store.release_lock(lock, "holder").await.unwrap();
    let held: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(held, None);
    assert!(!store.renew_lock(lock, "holder", ttl).await.unwrap());
    assert!(
        store
            .take_lock(Lock::KojiImport("b1"), "bridge", short)
            .await
            .unwrap(),
        "another lock of the same build is another key"
    );
}

#[tokio::test]
async fn arch_parts_complete_their_set_exactly_once() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let arches = vec!["x86_64".to_owned(), "aarch64".to_owned()];
    assert!(!store.arches_complete("m1", &arches).await.unwrap());
    let first = store
        .record_arch_part("m1", "aarch64", b"arm part", &arches)
        .await
        .unwrap();
    assert_eq!(first, PartRecorded::Waiting);
    let again = store
        .record_arch_part("m1", "aarch64", b"other bytes", &arches)
        .await
        .unwrap();
    assert_eq!(again, PartRecorded::AlreadyRecorded { complete: false });
    assert_eq!(
        store.arch_part("m1", "aarch64").await.unwrap().as_deref(),
        Some(&b"arm part"[..]),
        "a redelivered arch job does not overwrite its part"
    );
    let last = store
        .record_arch_part("m1", "x86_64", b"x86 part", &arches)
        .await
        .unwrap();
    assert_eq!(last, PartRecorded::Completed);
    assert!(store.arches_complete("m1", &arches).await.unwrap());
    let late = store
        .record_arch_part("m1", "x86_64", b"x86 part", &arches)
        .await
        .unwrap();
    assert_eq!(late, PartRecorded::AlreadyRecorded { complete: true });

    // Concurrent last parts: exactly one completes the set.
    let arches: Vec<String> = (0..8).map(|n| format!("a{n}")).collect();
    let results = futures::future::join_all(arches.iter().map(|arch| {
        let (store, arches) = (store.clone(), arches.clone());
        async move {
            store
                .record_arch_part("m2", arch, arch.as_bytes(), &arches)
                .await
                .unwrap()
        }
    }))
    .await;
    let completed = results
        .iter()
        .filter(|outcome| **outcome == PartRecorded::Completed)
        .count();
    assert_eq!(completed, 1, "{results:?}");

    store
        .clear_arch_parts("m1", &["x86_64".to_owned(), "aarch64".to_owned()])
        .await
        .unwrap();
    assert_eq!(store.arch_part("m1", "x86_64").await.unwrap(), None);
    assert!(
        !store
            .arches_complete("m1", &["x86_64".to_owned()])
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_arch_job_has_its_own_live_log() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let arm = osbs_common::store::log::stream("b7", "aarch64");
    assert_eq!(arm, "b7:aarch64");
    assert_eq!(osbs_common::store::log::stream("b7", ""), "b7");
    store.append_log(&arm, &["aarch64".into()]).await.unwrap();
    store
        .append_log("b7", &["orchestrating".into()])
        .await
        .unwrap();
    let build = store.read_log("b7", "0", 10, None).await.unwrap();
    let arch = store.read_log(&arm, "0", 10, None).await.unwrap();
    assert!(matches!(&build[..], [LogEntry::Line { text, .. }] if text == "orchestrating"));
    assert!(matches!(&arch[..], [LogEntry::Line { text, .. }] if text == "aarch64"));
}

#[tokio::test]
async fn arch_queues_are_declared_on_demand_and_listed_once_they_exist() {
    let env = TestEnv::new();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    let listed = |stats: &[osbs_common::queues::QueueStats]| -> Vec<String> {
        stats.iter().map(|stat| stat.queue.clone()).collect()
    };
    let before = osbs_common::queues::read_once(&bus).await.unwrap();
    assert!(!listed(&before).contains(&"osbs.jobs.aarch64".to_owned()));
    bus.declare_arch_queues("aarch64").await.unwrap();
    let mut arm = job("b-arm");
    arm.arch = "aarch64".into();
    bus.publish_job(&arm, 0).await.unwrap();
    assert_eq!(
        bus.queue_depth(names::QUEUE_JOBS).await.unwrap().messages,
        0
    );
    let after = osbs_common::queues::read_once(&bus).await.unwrap();
    let names_after = listed(&after);
    assert!(
        names_after.contains(&"osbs.jobs.aarch64.dead".to_owned()),
        "{names_after:?}"
    );
    assert!(!names_after.contains(&"osbs.jobs.s390x".to_owned()));
    let depth = after
        .iter()
        .find(|stat| stat.queue == "osbs.jobs.aarch64")
        .unwrap();
    assert_eq!(
        depth.messages, 1,
        "an arch job goes to its arch's queue only"
    );
}
