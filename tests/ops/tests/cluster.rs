//! The production shape of the broker (issue 17): a three-node RabbitMQ cluster on loopback
//! with quorum queues, and the node leading `osbs.jobs` killed with `kill -9` during a
//! burst of 100 pushes; every build is still imported once, with no operator. Also: `osbs
//! replay --dry-run` leaves a quorum dead queue's letters in place (peeked, never nacked).

use osbs_common::bus::{Dead, protobuf_properties};
use osbs_common::store::BuildRecord;
use osbs_ops_tests::cluster::PrivateCluster;
use osbs_ops_tests::{Kind, Options, Service, World, expect_exit, wait_for};
use osbs_proto::v1::{BuildJob, BuildState};
use osbs_proto::{Message, names};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Every state a build of this test can end in.
const ENDS: [BuildState; 5] = [
    BuildState::Imported,
    BuildState::ImportFailed,
    BuildState::Failed,
    BuildState::Canceled,
    BuildState::Superseded,
];

/// 100 pushes (one commit on each of 100 branches) to a dispatcher, two workers and the
/// bridge, all given the three nodes' URLs; once 5 builds are imported the node leading
/// `osbs.jobs` is killed with `kill -9`. The quorum queues elect new leaders on the two nodes
/// left, every service reconnects to one of them by itself, and every build ends `imported`
/// as exactly one Koji build, with nothing dead-lettered and nothing left in a queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_leading_the_jobs_killed_mid_burst_loses_no_build() {
    const PUSHES: usize = 100;
    const KILL_AFTER_IMPORTS: usize = 5;
    let started = Instant::now();
    let cluster = PrivateCluster::start().await;
    let cluster_up = started.elapsed();
    let mut world = World::new(Options {
        amqp: Some(cluster.amqp()),
        ..Options::default()
    })
    .await;
    // The test's own connection declares the queues; their leaders are elected then.
    let bus = world.bus().await;
    let leader = cluster.leader(names::QUEUE_JOBS).await;
    // The services are given the leader's node first, so that the kill takes the node every
    // one of them is connected to: each must reconnect to another by itself.
    let leader_url = cluster.node(&leader).amqp().url;
    world.amqp.urls.retain(|url| url != &leader_url);
    world.amqp.urls.insert(0, leader_url.clone());
    world.amqp.url = leader_url.clone();
    let services = [
        world.spawn(Kind::Dispatcher).await,
        world.spawn(Kind::Worker).await,
        world.spawn(Kind::Worker).await,
        world.spawn(Kind::Bridge).await,
    ];

    let name = format!("cluster-{}", world.tag);
    let pushed_at = push_branches(&world, &name, PUSHES);

    let hub = &world.hub;
    let name_ref = name.as_str();
    let imported_at_kill = wait_for(
        Duration::from_secs(300),
        "the first builds imported",
        || async move {
            let imported = hub.builds().iter().filter(|b| b.name == name_ref).count();
            (imported >= KILL_AFTER_IMPORTS).then_some(imported)
        },
    )
    .await;
    cluster.node(&leader).kill9();
    let killed_at = Instant::now();
    assert!(
        imported_at_kill < PUSHES,
        "the node was not killed mid-burst: {imported_at_kill} builds already imported"
    );

    wait_reconnected(&services).await;
    let reconnected = killed_at.elapsed();

    let records = all_ended(&world, &name, PUSHES).await;
    let ended_after_push = pushed_at.elapsed();
    let after_kill = killed_at.elapsed();
    let new_leader = cluster.leader(names::QUEUE_JOBS).await;

    assert_imported_once(&world, &records, PUSHES);
    cluster
        .wait_settled(&[
            names::QUEUE_EVENTS,
            names::QUEUE_JOBS,
            names::QUEUE_RESULTS,
            "osbs.events.dead",
            "osbs.jobs.dead",
            "osbs.results.dead",
        ])
        .await;
    for dead in ["osbs.events.dead", "osbs.jobs.dead", "osbs.results.dead"] {
        let depth = bus.queue_depth(dead).await.expect("dead letters").messages;
        assert_eq!(depth, 0, "nothing dead-lettered in {dead}");
    }
    // No operator: the services that lost their node are the same processes, still up,
    // each connected again to a node still running.
    assert_moved_off(services, &leader_url.masked());
    eprintln!(
        "cluster: up in {cluster_up:?}; {PUSHES} pushes; {leader} (leading osbs.jobs, every service on it) killed at {imported_at_kill} imports, {:?} after the push; new leader {new_leader}; all 4 services connected to another node within {reconnected:?}; all {PUSHES} builds imported once {after_kill:?} after the kill, {ended_after_push:?} after the push",
        killed_at.duration_since(pushed_at),
    );
}

/// Repository `name` with branches `f1`…`fN`, one commit each, pushed at once: the burst.
fn push_branches(world: &World, name: &str, count: usize) -> Instant {
    let repo = world.repo(name, "main", &world.dockerfile(name, "true"));
    osbs_ops_tests::many_branches(&repo, count);
    let mut refspecs = vec!["main".to_owned()];
    refspecs.extend((1..=count).map(|n| format!("f{n}")));
    let pushed_at = Instant::now();
    repo.push(&refspecs.iter().map(String::as_str).collect::<Vec<_>>());
    pushed_at
}

/// Waits until every service logged a second connection (the first was to the killed node).
/// On a timeout it names the services still waiting, with the end of each one's log: what
/// its bus was doing is the first thing to know.
async fn wait_reconnected(services: &[Service]) {
    const LIMIT: Duration = Duration::from_secs(60);
    let deadline = Instant::now() + LIMIT;
    loop {
        let waiting: Vec<&Service> = services
            .iter()
            .filter(|service| connections(&service.log_text()).len() < 2)
            .collect();
        if waiting.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = waiting
                .iter()
                .map(|service| format!("{:?}:\n{}", service.kind, tail(&service.log_text(), 40)))
                .collect();
            panic!(
                "timed out after {LIMIT:?} waiting for every service to connect to another node; still waiting:\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The lines of a service's log that say which node it connected to, in order.
fn connections(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("connected to RabbitMQ node"))
        .collect()
}

/// The last `count` lines of `text`.
fn tail(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The records of repository `name` once there are `count` and each has ended.
async fn all_ended(world: &World, name: &str, count: usize) -> Vec<BuildRecord> {
    wait_for(
        Duration::from_secs(900),
        "every build to end",
        || async move {
            let records: Vec<_> = world
                .builds()
                .await
                .into_iter()
                .filter(|r| r.job.repo == name)
                .collect();
            (records.len() >= count && records.iter().all(|r| ENDS.contains(&r.state)))
                .then_some(records)
        },
    )
    .await
}

/// One record per push, each `imported`, as exactly one COMPLETE Koji build: the one its
/// record names.
fn assert_imported_once(world: &World, records: &[BuildRecord], count: usize) {
    let branches: BTreeSet<&str> = records.iter().map(|r| r.job.branch.as_str()).collect();
    assert_eq!(
        (records.len(), branches.len()),
        (count, count),
        "one build per push\n{}",
        world.logs()
    );
    let not_imported: Vec<_> = records
        .iter()
        .filter(|r| r.state != BuildState::Imported)
        .map(|r| format!("{} {}: {}", r.id, r.state, r.error()))
        .collect();
    assert!(
        not_imported.is_empty(),
        "builds not imported: {not_imported:?}\n{}",
        world.logs()
    );
    let name = &records[0].job.repo;
    let mut koji_per_nvr: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for build in world.hub.builds().into_iter().filter(|b| &b.name == name) {
        if build.state == 1 {
            koji_per_nvr.entry(build.nvr()).or_default().push(build.id);
        }
    }
    assert_eq!(koji_per_nvr.len(), count, "one Koji build per OSBS build");
    for record in records {
        let ids = koji_per_nvr.get(record.nvr());
        assert_eq!(
            ids.map(|ids| ids.iter().map(i64::to_string).collect::<Vec<_>>()),
            Some(vec![record.field("koji_build_id").to_owned()]),
            "{}: its Koji build",
            record.id
        );
    }
}

/// Every service still runs, and its connections went from `killed_url` to another node.
fn assert_moved_off(services: [Service; 4], killed_url: &str) {
    for mut service in services {
        let log = service.log_text();
        assert!(
            service
                .child
                .try_wait()
                .expect("the service's status")
                .is_none(),
            "a service exited:\n{log}"
        );
        let connections = connections(&log);
        assert!(
            connections.len() >= 2
                && connections
                    .first()
                    .is_some_and(|line| line.contains(killed_url))
                && connections
                    .last()
                    .is_some_and(|line| !line.contains(killed_url)),
            "{:?} did not move from {killed_url} to another node: {connections:?}",
            service.kind
        );
    }
}

/// `x-delivery-count` of a quorum queue's message: how many times the broker counted it as
/// returned (absent before the first).
fn delivery_count(properties: &lapin::BasicProperties) -> i64 {
    use lapin::types::AMQPValue;
    let headers = properties.headers().clone().unwrap_or_default();
    match headers.inner().get("x-delivery-count") {
        None => 0,
        Some(AMQPValue::LongLongInt(count)) => *count,
        Some(AMQPValue::LongInt(count)) => i64::from(*count),
        Some(AMQPValue::LongUInt(count)) => i64::from(*count),
        Some(other) => panic!("x-delivery-count of an unexpected type: {other:?}"),
    }
}

/// `osbs replay --dry-run` (three times) and a replay that skips the message, on a quorum
/// dead queue: the dead letter stays, unchanged. They return what they peeked by closing
/// their channel, as the web view does, never by a nack. What the broker counts for that:
/// RabbitMQ 3.10 counts a return by a channel's closing as a delivery too (this test prints
/// it), so on 3.x no `delivery-limit` policy may be set on the dead queues (OPERATIONS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_dry_run_leaves_a_quorum_dead_letter_in_place() {
    let world = World::new(Options {
        quorum: true,
        ..Options::default()
    })
    .await;
    let bus = world.bus().await;
    let job = BuildJob {
        build_id: format!("replay-quorum-{}", world.tag),
        ..BuildJob::default()
    };
    let body = job.encode_to_vec();
    bus.dead_letter_copy(
        &body,
        &protobuf_properties(names::TYPE_BUILD_JOB),
        Dead {
            queue: names::QUEUE_JOBS,
            original_exchange: names::EXCHANGE_INTERNAL,
            original_routing_key: names::ROUTING_JOB,
            reason: "registry unreachable",
        },
    )
    .await
    .expect("a dead letter");
    let dead = names::dead_queue(names::QUEUE_JOBS);
    for _ in 0..3 {
        let output = world.osbs(None, &["replay", "--dry-run", "--all"]).await;
        let listed = expect_exit(&output, 0, "replay --dry-run --all");
        assert!(listed.contains(&job.build_id), "{listed}");
        // What the closed channel returns is back in the queue a moment after the CLI exits.
        let (bus, dead) = (&bus, &dead);
        osbs_ops_tests::wait_for(
            Duration::from_secs(10),
            "the dry run to leave the dead letter in place",
            || async move {
                let depth = bus.queue_depth(dead).await.expect("depth").messages;
                (depth == 1).then_some(())
            },
        )
        .await;
    }
    // A real replay that skips it (no record): it stays too.
    let output = world.osbs(None, &["replay", &job.build_id]).await;
    let said = expect_exit(&output, 3, "replay of a build without a record");
    assert!(said.contains("skipped"), "{said}");

    let channel = bus.channel().await.expect("a channel");
    let message = bus
        .get_one(&channel, &dead)
        .await
        .expect("basic.get")
        .expect("the dead letter is still there");
    assert_eq!(message.data, body, "the same message");
    assert!(
        osbs_common::bus::header_string(&message.properties, names::HEADER_DEAD_REASON)
            .is_some_and(|reason| reason == "registry unreachable"),
        "its reason kept"
    );
    eprintln!(
        "replay on a quorum dead queue: 4 reads, x-delivery-count {} on this broker",
        delivery_count(&message.properties)
    );
    message.ack(Default::default()).await.expect("ack");
}
