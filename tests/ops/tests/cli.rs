//! The `osbs` binary against the real RabbitMQ and Redis, without builds: the git hook's
//! messages, cancel of a queued build, replay's selection, the queue readings, following
//! and re-reading logs (live, kept, trimmed), and the dispatcher's refusals.

use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use osbs_common::Store;
use osbs_common::bus::{Bus, Outgoing, protobuf_properties};
use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::{Created, LogEntry};
use osbs_ops_tests::{Kind, Options, World, expect_exit, git};
use osbs_proto::v1::{BuildJob, BuildState, Target, Trigger};
use osbs_proto::{Message, StateEvent, names};
use std::time::Duration;

/// A queued build record, as the dispatcher would write it.
async fn queued_build(store: &Store, repo: &str) -> BuildJob {
    let job = BuildJob {
        build_id: uuid::Uuid::now_v7().to_string(),
        repo: repo.into(),
        namespace: "container".into(),
        git_url: format!("file:///srv/git/container/{repo}.git"),
        commit: "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into(),
        branch: "main".into(),
        target: Some(Target {
            name: "main-container-candidate".into(),
            ..Default::default()
        }),
        trigger: Trigger::Request as i32,
        submitter: "jdoe".into(),
        attempt: 1,
        ..Default::default()
    };
    let created = store
        .create(
            &job,
            &job.build_id,
            osbs_common::telemetry::now_ms(),
            "test",
            &[],
        )
        .await
        .unwrap();
    assert!(matches!(created, Created::New(_)));
    job
}

/// Walks build `id` through `states` as the services would, `fields` set with the last.
async fn move_to(world: &World, id: &str, states: &[BuildState], fields: Vec<(&str, String)>) {
    let bus = world.bus().await;
    for (index, state) in states.iter().enumerate() {
        let fields = if index + 1 == states.len() {
            fields.clone()
        } else {
            Vec::new()
        };
        let change = StateChange::new(id, *state, "test", "test").with_fields(fields);
        let changed = state::change(&world.store, &bus, change).await;
        assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    }
    bus.close().await;
}

/// Puts `job` in `osbs.jobs.dead` the way a worker dead-letters it.
async fn dead_job(bus: &Bus, job: &BuildJob, reason: &str) {
    let mut headers = FieldTable::default();
    for (name, value) in [
        (names::HEADER_DEAD_REASON, reason),
        (names::HEADER_DEAD_QUEUE, names::QUEUE_JOBS),
        (names::HEADER_DEAD_EXCHANGE, names::EXCHANGE_INTERNAL),
        (names::HEADER_DEAD_ROUTING_KEY, names::ROUTING_JOB),
        (names::HEADER_DEAD_AT, "2025-01-15T10:22:03.000+00:00"),
    ] {
        headers.insert(
            name.into(),
            AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
        );
    }
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_DEAD,
        routing_key: names::QUEUE_JOBS,
        body: &job.encode_to_vec(),
        properties: protobuf_properties(names::TYPE_BUILD_JOB)
            .with_headers(headers)
            .with_priority(9),
        mandatory: true,
    })
    .await
    .unwrap();
}

/// Takes every message of `queue` (acked): bodies with their headers.
async fn drain(bus: &Bus, queue: &str) -> Vec<(Vec<u8>, lapin::BasicProperties)> {
    let channel = bus.channel().await.unwrap();
    let mut taken = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions::default())
        .await
        .unwrap()
    {
        message.ack(BasicAckOptions::default()).await.unwrap();
        taken.push((message.data.clone(), message.properties.clone()));
    }
    taken
}

/// A queue of the test's own bound to the state events.
async fn state_events(bus: &Bus, world: &World) -> String {
    let queue = format!("test.state-events.{}", world.tag);
    bus.listen_to_state_events(&queue).await.unwrap();
    queue
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_hook_announces_each_new_commit_oldest_first() {
    let world = World::new(Options::default()).await;
    let bus = world.bus().await;
    let name = format!("hook-{}", world.tag);
    let repo = world.repo(&name, "main", "FROM scratch\n");
    let first = git(&repo.checkout, &["rev-parse", "HEAD"])
        .trim()
        .to_owned();
    let second = repo.commit("README", "one\n", "Add a README");
    let third = repo.commit("README", "one\ntwo\n", "Extend the README\n\nWith a body.");
    git(&repo.checkout, &["tag", "v1"]);
    let pushed = repo.push(&["main", "v1"]);
    assert!(
        String::from_utf8_lossy(&pushed.stderr).contains(&format!("announced {name} {third}")),
        "{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    // A branch with no commit of its own, and a deleted branch, announce nothing.
    git(&repo.checkout, &["branch", "f41"]);
    repo.push(&["f41"]);
    repo.push(&[":f41"]);

    let messages = drain(&bus, names::QUEUE_EVENTS).await;
    let bodies: Vec<osbs_dispatcher::CommitV1Body> = messages
        .iter()
        .map(|(body, _)| serde_json::from_slice(body).expect("a CommitV1 body"))
        .collect();
    let revs: Vec<&str> = bodies.iter().map(|body| body.commit.rev.as_str()).collect();
    assert_eq!(
        revs,
        [first.as_str(), &second, &third],
        "one message per commit, oldest first"
    );
    let last = &bodies[2];
    assert_eq!(last.agent, "jdoe", "the pusher is GL_USER");
    assert_eq!(last.commit.repo, name);
    assert_eq!(last.commit.namespace.as_deref(), Some("container"));
    assert_eq!(last.commit.branch, "main");
    assert_eq!(last.commit.summary, "Extend the README");
    assert_eq!(last.commit.message, "Extend the README\n\nWith a body.\n");
    assert_eq!(last.commit.stats.total.additions, Some(1.0));
    assert!(last.commit.patch.contains("+two"), "{}", last.commit.patch);
    assert!(
        last.commit
            .path
            .ends_with(&format!("container/{name}.git/"))
    );
    let properties = &messages[2].1;
    assert_eq!(
        properties.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(properties.delivery_mode(), &Some(2));
    let headers = properties.headers().as_ref().unwrap().inner();
    assert_eq!(
        headers.get("fedora_messaging_schema"),
        Some(&AMQPValue::LongString(LongString::from(
            names::SCHEMA_GIT_RECEIVE.as_bytes().to_vec()
        )))
    );
    assert!(headers.contains_key(format!("fedora_messaging_container_{name}").as_str()));
    assert!(headers.contains_key("sent-at"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_queued_build_and_of_a_finished_one() {
    let world = World::new(Options::default()).await;
    let bus = world.bus().await;
    let events = state_events(&bus, &world).await;
    let job = queued_build(&world.store, "cancel-me").await;

    let output = world.osbs(None, &["cancel", &job.build_id]).await;
    let stdout = expect_exit(&output, 0, "cancel of a queued build");
    assert!(stdout.contains("canceled"), "{stdout}");
    let record = world.record(&job.build_id).await;
    assert_eq!(record.state, BuildState::Canceled);
    let history = world.store.history(&job.build_id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.from.as_str(), last.to.as_str()),
        ("queued", "canceled")
    );
    assert_eq!(last.reason, "canceled by ops-tester");
    // Followers of its (empty) log stop at once.
    let log = world
        .store
        .read_log(&job.build_id, "0", 10, None)
        .await
        .unwrap();
    assert!(matches!(log.last(), Some(LogEntry::End { state, .. }) if state == "canceled"));
    // Outside listeners hear of it.
    let heard = drain(&bus, &events).await;
    let change = StateEvent::from_json(&heard.last().unwrap().0).unwrap();
    assert_eq!(change.build_id, job.build_id);
    assert_eq!(change.new_state, BuildState::Canceled);

    let again = world.osbs(None, &["cancel", &job.build_id]).await;
    expect_exit(&again, 3, "cancel of a canceled build");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already canceled"));
    let unknown = world.osbs(None, &["cancel", "no-such-build"]).await;
    expect_exit(&unknown, 3, "cancel of an unknown build");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("osbs list"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_takes_back_only_what_is_selected() {
    let world = World::new(Options::default()).await;
    let bus = world.bus().await;
    let registry_down = queued_build(&world.store, "replay-a").await;
    let engine_gone = queued_build(&world.store, "replay-b").await;
    let built_since = queued_build(&world.store, "replay-c").await;
    for job in [&registry_down, &engine_gone] {
        move_to(
            &world,
            &job.build_id,
            &[BuildState::Running, BuildState::Failed],
            vec![("attempts", "1".into())],
        )
        .await;
    }
    move_to(
        &world,
        &built_since.build_id,
        &[
            BuildState::Running,
            BuildState::Pushing,
            BuildState::Complete,
        ],
        vec![],
    )
    .await;
    dead_job(
        &bus,
        &registry_down,
        "push to 127.0.0.1:5999 failed: registry unreachable",
    )
    .await;
    dead_job(&bus, &engine_gone, "the Docker Engine went away").await;
    dead_job(&bus, &built_since, "registry unreachable").await;
    // A refused event: RabbitMQ's own dead-lettering format has no x-osbs headers.
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_DEAD,
        routing_key: names::QUEUE_EVENTS,
        body: b"{not json",
        properties: lapin::BasicProperties::default().with_message_id("event-1".into()),
        mandatory: true,
    })
    .await
    .unwrap();

    // Dry run: everything listed, nothing touched.
    let output = world.osbs(None, &["replay", "--dry-run", "--all"]).await;
    let listed = expect_exit(&output, 0, "replay --dry-run --all");
    for id in [
        &registry_down.build_id,
        &engine_gone.build_id,
        &built_since.build_id,
    ] {
        assert!(listed.contains(id.as_str()), "{listed}");
    }
    assert!(
        listed.contains("event-1") && listed.contains("registry unreachable"),
        "{listed}"
    );
    assert!(
        listed.contains("2025-01-15T10:22:03"),
        "dead-at shown:\n{listed}"
    );
    let depth = |queue: &'static str| {
        let bus = &bus;
        async move { bus.queue_depth(queue).await.unwrap().messages }
    };
    assert_eq!(depth("osbs.jobs.dead").await, 3);
    assert_eq!(depth("osbs.events.dead").await, 1);
    assert_eq!(
        world.record(&registry_down.build_id).await.state,
        BuildState::Failed
    );

    // By reason: the failed build goes back; the one built since stays, with a note.
    let output = world
        .osbs(
            None,
            &[
                "--json",
                "replay",
                "--queue",
                "jobs",
                "--reason-contains",
                "REGISTRY",
            ],
        )
        .await;
    let stdout = expect_exit(&output, 3, "replay with one skipped message");
    let outcomes: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let actions: Vec<(&str, &str)> = outcomes
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["build_id"].as_str().unwrap(),
                o["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (registry_down.build_id.as_str(), "replayed"),
            (built_since.build_id.as_str(), "skipped")
        ]
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("not replayed"));

    let record = world.record(&registry_down.build_id).await;
    assert_eq!(record.state, BuildState::Queued);
    let history = world.store.history(&registry_down.build_id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!((last.from.as_str(), last.to.as_str()), ("failed", "queued"));
    assert_eq!(last.reason, "replayed by ops-tester");
    let jobs = drain(&bus, names::QUEUE_JOBS).await;
    assert_eq!(jobs.len(), 1, "republished to osbs/job");
    let (body, properties) = &jobs[0];
    let replayed = BuildJob::decode(body.as_slice()).unwrap();
    assert_eq!(
        replayed.build_id, registry_down.build_id,
        "the build keeps its id"
    );
    assert_eq!(replayed.attempt, 2);
    assert_eq!(properties.priority(), &Some(9), "its priority kept");
    let headers = properties.headers().as_ref().unwrap().inner();
    assert!(!headers.contains_key(names::HEADER_DEAD_REASON));
    assert!(headers.contains_key("x-osbs-replayed-by"));

    // The rest is still dead, untouched and in order.
    let left = drain(&bus, "osbs.jobs.dead").await;
    let ids: Vec<String> = left
        .iter()
        .map(|(body, _)| BuildJob::decode(body.as_slice()).unwrap().build_id)
        .collect();
    assert_eq!(
        ids,
        [engine_gone.build_id.clone(), built_since.build_id.clone()]
    );
    assert_eq!(depth("osbs.events.dead").await, 1);
    assert_eq!(
        world.record(&engine_gone.build_id).await.state,
        BuildState::Failed
    );

    let output = world.osbs(None, &["replay", "no-such-id"]).await;
    let stdout = expect_exit(&output, 0, "replay of nothing");
    assert!(
        stdout.contains("no dead-lettered message matches"),
        "{stdout}"
    );
    let output = world.osbs(None, &["replay"]).await;
    expect_exit(&output, 2, "replay without a selection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_reads_depth_and_consumers() {
    let world = World::new(Options::default()).await;
    let bus = world.bus().await;
    for _ in 0..3 {
        bus.publish_job(&BuildJob::default(), 0).await.unwrap();
    }
    let output = world
        .osbs(None, &["--json", "queue", "--interval", "0.3"])
        .await;
    let stdout = expect_exit(&output, 0, "queue");
    let queues: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let jobs = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|queue| queue["queue"] == "osbs.jobs")
        .unwrap();
    assert_eq!(jobs["messages"], 3);
    assert_eq!(jobs["consumers"], 0);
    assert_eq!(jobs["net_per_second"], 0.0);
    let output = world.osbs(None, &["queue", "--interval", "0"]).await;
    let table = expect_exit(&output, 0, "queue as a table");
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("osbs.jobs ") && line.contains(" 3 ")),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_logs_follows_live_and_rereads_what_is_kept() {
    let world = World::new(Options::default()).await;
    let job = queued_build(&world.store, "logs").await;
    let id = job.build_id.clone();

    // Live: the CLI starts before the first line and stops at the end entry.
    let follower = {
        let mut command = tokio::process::Command::new(&osbs_ops_tests::bins().osbs);
        command
            .args(["watch-logs", &id])
            .envs(world.env_vars())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().unwrap()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    move_to(&world, &id, &[BuildState::Running], vec![]).await;
    for batch in 0..3 {
        let lines: Vec<String> = (0..5).map(|n| format!("step {batch}.{n}")).collect();
        world.store.append_log(&id, &lines).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    move_to(
        &world,
        &id,
        &[BuildState::Pushing, BuildState::Complete],
        vec![
            ("nvr", "logs-1.0-1".into()),
            ("pullspecs", r#"["127.0.0.1:5000/logs:1.0-1"]"#.into()),
        ],
    )
    .await;
    world
        .store
        .end_log(&id, BuildState::Complete)
        .await
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), follower.wait_with_output())
        .await
        .expect("watch-logs stops at the end entry")
        .unwrap();
    let stdout = expect_exit(&output, 0, "watch-logs of a completing build");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "step 0.0");
    assert_eq!(lines[14], "step 2.4");
    assert!(
        stdout.contains("pullspec  127.0.0.1:5000/logs:1.0-1"),
        "{stdout}"
    );

    // After the end: the same lines again, as JSON lines for scripts.
    let output = world.osbs(None, &["--json", "watch-logs", &id]).await;
    let stdout = expect_exit(&output, 0, "watch-logs --json after the end");
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["line"], "step 0.0");
    let end: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(end["end"]["state"], "complete");

    // A failed build: its reason, exit 1.
    let failed = queued_build(&world.store, "logs-failed").await;
    move_to(
        &world,
        &failed.build_id,
        &[BuildState::Running, BuildState::Failed],
        vec![("error", "Dockerfile has no FROM".into())],
    )
    .await;
    world
        .store
        .end_log(&failed.build_id, BuildState::Failed)
        .await
        .unwrap();
    let output = world.osbs(None, &["watch-logs", &failed.build_id]).await;
    expect_exit(&output, 1, "watch-logs of a failed build");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("ended failed: Dockerfile has no FROM")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_live_log_is_read_from_the_complete_file() {
    let world = World::new(Options::default()).await;
    // A store with the smallest cap: the stream keeps about 100 of 1000 lines.
    let mut redis = world.env.redis.clone();
    redis.log_max_lines = 100;
    let store = Store::connect(&redis).await.unwrap();
    let job = queued_build(&store, "trimmed").await;
    let id = job.build_id.clone();
    move_to(&world, &id, &[BuildState::Running], vec![]).await;
    let lines: Vec<String> = (1..=1000).map(|n| format!("line {n}")).collect();
    for chunk in lines.chunks(50) {
        store.append_log(&id, chunk).await.unwrap();
    }
    store.end_log(&id, BuildState::Failed).await.unwrap();
    move_to(
        &world,
        &id,
        &[BuildState::Failed],
        vec![("error", "boom".into())],
    )
    .await;
    let kept = store.read_log(&id, "0", 2000, None).await.unwrap();
    assert!(
        kept.len() < 500,
        "the stream was trimmed ({} entries)",
        kept.len()
    );

    // No file: what is left, and a note saying where the complete log would be.
    let output = world.osbs(None, &["watch-logs", &id]).await;
    let stdout = expect_exit(&output, 1, "watch-logs of a trimmed log without its file");
    assert!(!stdout.contains("line 1\n") && stdout.contains("line 1000\n"));
    assert!(String::from_utf8_lossy(&output.stderr).contains("lost its first"));

    // The worker's file: every line.
    let file = world
        .dir
        .path()
        .join("artifacts")
        .join(&id)
        .join("build.log");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let output = world.osbs(None, &["watch-logs", &id]).await;
    let stdout = expect_exit(&output, 1, "watch-logs of a trimmed log with its file");
    let printed: Vec<&str> = stdout.lines().take(1000).collect();
    assert_eq!(
        printed,
        lines.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_list_show_records() {
    let world = World::new(Options::default()).await;
    let old = queued_build(&world.store, "listed-a").await;
    let new = queued_build(&world.store, "listed-b").await;
    move_to(
        &world,
        &old.build_id,
        &[BuildState::Running, BuildState::Failed],
        vec![("error", "no space left".into())],
    )
    .await;
    let output = world.osbs(None, &["--json", "status", &old.build_id]).await;
    let status: serde_json::Value =
        serde_json::from_str(&expect_exit(&output, 0, "status --json")).unwrap();
    assert_eq!(status["state"], "failed");
    assert_eq!(status["error"], "no space left");
    assert_eq!(status["history"].as_array().unwrap().len(), 3);
    let output = world.osbs(None, &["--json", "list"]).await;
    let listed: serde_json::Value = serde_json::from_str(&expect_exit(&output, 0, "list")).unwrap();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [new.build_id.as_str(), old.build_id.as_str()],
        "newest first"
    );
    let output = world
        .osbs(None, &["list", "--state", "failed", "--since", "1h"])
        .await;
    let table = expect_exit(&output, 0, "list --state failed");
    assert!(
        table.contains(&old.build_id) && !table.contains(&new.build_id),
        "{table}"
    );
    let output = world.osbs(None, &["list", "--since", "2999-01-01"]).await;
    let table = expect_exit(&output, 0, "list --since the future");
    assert_eq!(table.lines().count(), 1, "only the header: {table}");
    let output = world.osbs(None, &["list", "--state", "done"]).await;
    expect_exit(&output, 2, "an unknown state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_build_reports_the_dispatchers_refusal_and_its_absence() {
    let world = World::new(Options::default()).await;
    let commit = "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce";
    let outside = [
        "container-build",
        "--git-url",
        "https://evil.example.com/container/httpd.git",
        "--branch",
        "main",
        "--commit",
        commit,
    ];
    // No dispatcher: a clear timeout.
    let output = tokio::process::Command::new(&osbs_ops_tests::bins().osbs)
        .args(outside)
        .envs(world.env_vars())
        .env("OSBS_CLI__RECORD_TIMEOUT_SECS", "2")
        .output()
        .await
        .unwrap();
    expect_exit(&output, 5, "container-build with no dispatcher");
    assert!(String::from_utf8_lossy(&output.stderr).contains("is osbs-dispatcher running?"));

    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let output = world.osbs(None, &outside).await;
    expect_exit(&output, 3, "container-build from a disallowed git host");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the dispatcher refused the build request"),
        "{stderr}"
    );
    assert!(stderr.contains("evil.example.com"), "{stderr}");

    let output = world
        .osbs(
            None,
            &[
                "container-build",
                "--isolated",
                "--build-release",
                "7",
                "--git-url",
                "x",
            ],
        )
        .await;
    expect_exit(&output, 3, "an isolated build with a bad release");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--build-release \"7\""));
    let output = world
        .osbs(None, &["container-build", "--scratch", "--isolated"])
        .await;
    expect_exit(&output, 2, "scratch and isolated together");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_sends_results_and_events_back_where_they_came_from() {
    let world = World::new(Options::default()).await;
    let bus = world.bus().await;
    let job = queued_build(&world.store, "replay-result").await;
    move_to(
        &world,
        &job.build_id,
        &[
            BuildState::Running,
            BuildState::Pushing,
            BuildState::Complete,
            BuildState::ImportFailed,
        ],
        vec![("error", "Fault 1000: hub offline".into())],
    )
    .await;
    let result = osbs_proto::v1::BuildResult {
        build_id: job.build_id.clone(),
        state: BuildState::Complete as i32,
        job: Some(job.clone()),
        ..Default::default()
    };
    let dead_headers = |queue: &str, exchange: &str, key: &str, reason: &str| {
        let mut headers = FieldTable::default();
        for (name, value) in [
            (names::HEADER_DEAD_REASON, reason),
            (names::HEADER_DEAD_QUEUE, queue),
            (names::HEADER_DEAD_EXCHANGE, exchange),
            (names::HEADER_DEAD_ROUTING_KEY, key),
        ] {
            headers.insert(
                name.into(),
                AMQPValue::LongString(LongString::from(value.as_bytes().to_vec())),
            );
        }
        headers
    };
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_DEAD,
        routing_key: names::QUEUE_RESULTS,
        body: &result.encode_to_vec(),
        properties: protobuf_properties(names::TYPE_BUILD_RESULT).with_headers(dead_headers(
            names::QUEUE_RESULTS,
            names::EXCHANGE_INTERNAL,
            "build.complete",
            "Fault 1000: hub offline",
        )),
        mandatory: true,
    })
    .await
    .unwrap();
    let event_key = format!("{}.{}", world.amqp.topic_prefix, names::TOPIC_GIT_RECEIVE);
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_DEAD,
        routing_key: names::QUEUE_EVENTS,
        body: br#"{"agent": "jdoe"}"#,
        properties: lapin::BasicProperties::default()
            .with_message_id("event-2".into())
            .with_headers(dead_headers(
                names::QUEUE_EVENTS,
                names::EXCHANGE_TOPIC,
                &event_key,
                "commit: missing field",
            )),
        mandatory: true,
    })
    .await
    .unwrap();

    let output = world
        .osbs(None, &["replay", &job.build_id, "event-2"])
        .await;
    let stdout = expect_exit(&output, 0, "replay of a result and an event");
    assert_eq!(stdout.matches("replayed").count(), 2, "{stdout}");
    let results = drain(&bus, names::QUEUE_RESULTS).await;
    assert_eq!(results.len(), 1);
    let replayed = osbs_proto::v1::BuildResult::decode(results[0].0.as_slice()).unwrap();
    assert_eq!(
        replayed.build_id, job.build_id,
        "the result goes back to the bridge as it was"
    );
    let events = drain(&bus, names::QUEUE_EVENTS).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, br#"{"agent": "jdoe"}"#);
    assert_eq!(
        events[0].1.message_id().as_ref().unwrap().as_str(),
        "event-2"
    );
    for queue in ["osbs.results.dead", "osbs.events.dead"] {
        assert_eq!(bus.queue_depth(queue).await.unwrap().messages, 0, "{queue}");
    }
    // The record is the bridge's to move: replay did not touch it.
    assert_eq!(
        world.record(&job.build_id).await.state,
        BuildState::ImportFailed
    );
}
