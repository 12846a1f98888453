//! The bus and the store against the real RabbitMQ and Redis: confirmed publishing, consuming,
//! dead-lettering with a reason, idempotent records and the state machine, live logs.

use osbs_common::bus::{self, Bus};
use osbs_common::store::{Change, Created, LogEntry, Store};
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

#[tokio::test]
async fn records_are_idempotent_and_follow_the_state_machine() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let created = store
        .create(&job("b1"), "key-1", 1_000, "test", &[])
        .await
        .unwrap();
    assert_eq!(created, Created::New("b1".into()));
    let again = store
        .create(&job("b2"), "key-1", 2_000, "test", &[])
        .await
        .unwrap();
    assert_eq!(again, Created::Existing("b1".into()));
    assert!(store.get("b2").await.unwrap().is_none());

    let record = store.require("b1").await.unwrap();
    assert_eq!(record.state, BuildState::Queued);
    assert_eq!(record.job.repo, "httpd");

    let refused = store
        .transition("b1", BuildState::Complete, Change::default())
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("is queued"), "{refused}");

    store
        .transition(
            "b1",
            BuildState::Running,
            Change {
                reason: "picked",
                by: "w1",
                fields: vec![("worker", "w1".into())],
            },
        )
        .await
        .unwrap();
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

    let listed = store.list(&Default::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(store.require("missing").await.is_err());
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
async fn a_lock_is_renewed_and_released_only_by_its_holder() {
    use redis::AsyncCommands;
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let key = store.key(&["test-lock"]);
    let mut redis = store.connection();
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg("holder")
        .arg("NX")
        .arg("PX")
        .arg(1_000)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(set.as_deref(), Some("OK"));
    let ttl = Duration::from_secs(60);
    assert!(!store.renew_lock(&key, "someone-else", ttl).await.unwrap());
    assert!(store.renew_lock(&key, "holder", ttl).await.unwrap());
    let remaining: i64 = redis.pttl(&key).await.unwrap();
    assert!(
        remaining > 1_000,
        "renewed to about 60 s, has {remaining} ms"
    );
    store.release_lock(&key, "someone-else").await.unwrap();
    let held: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(
        held.as_deref(),
        Some("holder"),
        "a stranger cannot release it"
    );
    store.release_lock(&key, "holder").await.unwrap();
    let held: Option<String> = redis.get(&key).await.unwrap();
    assert_eq!(held, None);
    assert!(!store.renew_lock(&key, "holder", ttl).await.unwrap());
}
