//! The life of jobs around the build: cancel (queued and running), releases of concurrent
//! builds, long builds held by leases (and a worker killed with SIGKILL past that point),
//! draining on SIGTERM, infrastructure failures dead-lettered, an end recorded but not
//! published, the engine missing at start, `/healthz` and `/metrics`.

mod support;

use osbs_common::bus::Bus;
use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::{LogEntry, field};
use osbs_proto::v1::{BuildResult, BuildState};
use osbs_proto::{Message, names};
use std::time::Duration;
use support::*;

/// Waits until build `id`'s live log (the Redis stream) has a line starting with `needle`.
async fn wait_live_log(harness: &Harness, id: &str, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let entries = harness
            .store
            .read_log(id, "0", 100_000, None)
            .await
            .unwrap();
        let found = entries
            .iter()
            .any(|entry| matches!(entry, LogEntry::Line { text, .. } if text.starts_with(needle)));
        if found {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{id}'s live log never showed {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sleeping_dockerfile(name: &str, marker: &str, seconds: u32) -> String {
    format!(
        "FROM {}\nRUN echo {marker} && sleep {seconds}\nLABEL com.redhat.component={name} name={name} version=1\n",
        busybox_base()
    )
}

/// Containers still running a command that mentions `marker`.
fn containers_running(marker: &str) -> usize {
    osbs_testkit::run(&["docker", "ps", "--no-trunc", "--format", "{{.Command}}"])
        .lines()
        .filter(|command| command.contains(marker))
        .count()
}

async fn metrics(worker: &RunningWorker) -> String {
    reqwest::get(format!("http://{}/metrics", worker.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_queued_and_of_a_running_build() {
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let health = reqwest::get(format!("http://{}/healthz", worker.http))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let name = format!("cancel-{}", harness.tag);
    let marker = format!("running-{}", harness.tag);
    let (url, commit) = harness.repo(
        "cancel",
        &[(
            "Dockerfile",
            sleeping_dockerfile(&name, &marker, 313).as_bytes(),
        )],
    );
    let running = harness.job("cancel", &url, &commit);
    harness.submit(&running).await;
    wait_live_log(&harness, &running.build_id, &marker).await;
    assert_eq!(
        containers_running(&marker),
        1,
        "the build's RUN container runs"
    );

    // A second job waits behind it (one slot), and is canceled while queued, as `osbs
    // cancel` does.
    let queued = harness.job("cancel", &url, &commit);
    harness.submit(&queued).await;
    let cancel = StateChange::new(
        &queued.build_id,
        BuildState::Canceled,
        "canceled by packager",
        "test",
    );
    let changed = state::change(&harness.store, &harness.bus, cancel).await;
    assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    harness
        .store
        .request_cancel(&queued.build_id)
        .await
        .unwrap();

    harness
        .store
        .request_cancel(&running.build_id)
        .await
        .unwrap();
    let record = harness.wait_final(&running.build_id).await;
    assert_eq!(record.state, BuildState::Canceled);
    assert_eq!(
        containers_running(&marker),
        0,
        "the build's container was stopped"
    );
    let log = harness.log(&running.build_id);
    assert!(
        log.lines().last().unwrap().contains("build canceled"),
        "{log}"
    );
    let results = harness.results().await;
    assert_eq!(results.len(), 1, "only the running build has a result");
    assert_eq!(results[0].build_id, running.build_id);
    assert_eq!(results[0].state, BuildState::Canceled as i32);

    // The queued one is taken, skipped and acked: it never runs.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !metrics(&worker)
        .await
        .contains("reason=\"canceled before it started\"} 1")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the canceled job was never skipped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let history = harness.store.history(&queued.build_id).await.unwrap();
    assert!(
        history.iter().all(|entry| entry.to != "running"),
        "{history:?}"
    );
    assert_eq!(
        harness
            .bus
            .queue_depth(names::QUEUE_JOBS)
            .await
            .unwrap()
            .messages,
        0
    );
    let text = metrics(&worker).await;
    assert!(
        text.contains("osbs_worker_step_seconds_count{step=\"source\"}"),
        "{text}"
    );
    assert!(
        text.contains("osbs_worker_builds_total{state=\"canceled\"} 1"),
        "{text}"
    );
    worker.stop().await;
}

/// Two concurrent builds of one name-version never get the same release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_builds_of_one_version_get_distinct_releases() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| config.worker.concurrency = 2)
        .await;
    let name = format!("same-{}", harness.tag);
    let dockerfile = format!(
        "FROM {base}\nRUN sleep 1\nLABEL com.redhat.component={name} name={name} version=7\n"
    );
    let mut ids = Vec::new();
    for repo in ["same-a", "same-b"] {
        let (url, commit) = harness.repo(repo, &[("Dockerfile", dockerfile.as_bytes())]);
        let job = harness.job(repo, &url, &commit);
        harness.submit(&job).await;
        ids.push(job.build_id);
    }
    let mut nvrs = Vec::new();
    for id in &ids {
        let record = harness.wait_final(id).await;
        assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
        nvrs.push(record.nvr().to_owned());
    }
    nvrs.sort();
    assert_eq!(nvrs, vec![format!("{name}-7-1"), format!("{name}-7-2")]);
    // Both ran at once: their running periods overlap.
    let spans: Vec<(i64, i64)> = {
        let mut spans = Vec::new();
        for id in &ids {
            let history = harness.store.history(id).await.unwrap();
            let start = history.iter().find(|e| e.to == "running").unwrap().at_ms;
            let end = history.iter().find(|e| e.to == "complete").unwrap().at_ms;
            spans.push((start, end));
        }
        spans
    };
    assert!(
        spans[0].0 < spans[1].1 && spans[1].0 < spans[0].1,
        "not concurrent: {spans:?}"
    );
    // Releases are held only while builds run.
    let held = osbs_worker::adapters::redis::held_releases(&harness.store, &name, "7")
        .await
        .unwrap();
    assert!(held.is_empty(), "{held:?}");
    worker.stop().await;
}

/// The reservation itself, hammered: many concurrent holders of one name-version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_reservations_are_unique_under_contention() {
    let harness = Harness::new().await;
    let tasks: Vec<_> = (0..24)
        .map(|_| {
            let store = harness.store.clone();
            tokio::spawn(async move {
                osbs_worker::adapters::redis::reserve_release(
                    &store,
                    "app",
                    "1.0",
                    "3.fc41",
                    Duration::from_secs(60),
                )
                .await
                .unwrap()
                .unwrap()
            })
        })
        .collect();
    let mut releases = Vec::new();
    for task in tasks {
        releases.push(task.await.unwrap());
    }
    releases.sort_by(|a, b| osbs_worker::release::compare(a, b));
    let expected: Vec<String> = (3..27).map(|n| format!("{n}.fc41")).collect();
    assert_eq!(releases, expected);
}

/// A build longer than `lease_after` is held by leases and completes exactly once; its
/// stale lease copies come back and are skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_build_is_held_by_leases_and_completes_once() {
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| {
            config.worker.lease_after_secs = 2;
            config.worker.lease_ttl_secs = 3;
        })
        .await;
    let name = format!("long-{}", harness.tag);
    let (url, commit) = harness.repo(
        "long",
        &[(
            "Dockerfile",
            sleeping_dockerfile(&name, "long-build", 6).as_bytes(),
        )],
    );
    let job = harness.job("long", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    assert_eq!(record.attempts(), 1);
    assert!(harness.log(&job.build_id).contains("held by a lease"));
    // Every lease copy expires back into osbs.jobs and is skipped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let leases = harness
            .bus
            .queue_depth(names::QUEUE_JOB_LEASES)
            .await
            .unwrap()
            .messages;
        let jobs = harness
            .bus
            .queue_depth(names::QUEUE_JOBS)
            .await
            .unwrap()
            .messages;
        if leases == 0
            && jobs == 0
            && metrics(&worker)
                .await
                .contains("reason=\"already finished\"")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leases never drained"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let results = harness.results().await;
    assert_eq!(results.len(), 1, "one build, one result");
    let history = harness.store.history(&job.build_id).await.unwrap();
    assert_eq!(
        history.iter().filter(|e| e.to == "running").count(),
        1,
        "{history:?}"
    );
    worker.stop().await;
}

/// A worker killed with SIGKILL after its build went on a lease: the lease brings the job
/// back and another worker takes the build over and completes it, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_past_the_lease_point_is_taken_over() {
    let harness = Harness::new().await;
    let config = harness.config();
    let file = harness.dir.path().join("worker.toml");
    std::fs::write(
        &file,
        format!(
            "[amqp]\nurl = \"{}\"\n[redis]\nkey_prefix = \"{}\"\n[storage]\nartifacts_dir = \"{}\"\n[worker]\nhttp_listen = \"127.0.0.1:0\"\nallowed_git_urls = [\"{}\"]\nwork_dir = \"{}\"\nlease_after_secs = 1\nlease_ttl_secs = 4\nheartbeat_secs = 1\nheartbeat_stale_secs = 3\n",
            harness.env.amqp.url.expose(),
            harness.env.redis.key_prefix,
            config.storage.artifacts_dir.display(),
            config.worker.allowed_git_urls[0],
            config.worker.work_dir.display(),
        ),
    )
    .unwrap();
    let mut doomed = std::process::Command::new(env!("CARGO_BIN_EXE_osbs-worker"))
        .args(["--config", file.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let name = format!("killed-{}", harness.tag);
    let marker = format!("killed-{}", harness.tag);
    let (url, commit) = harness.repo(
        "killed",
        &[(
            "Dockerfile",
            sleeping_dockerfile(&name, &marker, 5).as_bytes(),
        )],
    );
    let job = harness.job("killed", &url, &commit);
    harness.submit(&job).await;
    wait_live_log(
        &harness,
        &job.build_id,
        "osbs: long build: its job is now held by a lease",
    )
    .await;
    doomed.kill().unwrap();
    doomed.wait().unwrap();

    let survivor = harness
        .start_worker(|config| {
            config.worker.lease_after_secs = 1;
            config.worker.lease_ttl_secs = 4;
        })
        .await;
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    assert_eq!(record.attempts(), 2, "taken over once");
    let history = harness.store.history(&job.build_id).await.unwrap();
    let takeover = history
        .iter()
        .find(|e| e.from == "running" && e.to == "running")
        .expect("a takeover");
    assert!(takeover.reason.contains("taken over"), "{takeover:?}");
    let results = harness.results().await;
    let complete: Vec<_> = results
        .iter()
        .filter(|r| r.build_id == job.build_id)
        .collect();
    assert_eq!(complete.len(), 1, "one result");
    assert_eq!(complete[0].state, BuildState::Complete as i32);
    assert_eq!(containers_running(&marker), 0);
    survivor.stop().await;
}

/// SIGTERM: a build that can finish within the grace period finishes; one that cannot is
/// handed back to the queue (`running → queued`) and another worker builds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_or_hands_back() {
    let harness = Harness::new().await;
    let name = format!("drain-{}", harness.tag);

    let patient = harness
        .start_worker(|config| config.worker.drain_grace_secs = 120)
        .await;
    let quick_marker = format!("quick-{}", harness.tag);
    let (url, commit) = harness.repo(
        "drain-quick",
        &[(
            "Dockerfile",
            sleeping_dockerfile(&name, &quick_marker, 2).as_bytes(),
        )],
    );
    let quick = harness.job("drain-quick", &url, &commit);
    harness.submit(&quick).await;
    wait_live_log(&harness, &quick.build_id, &quick_marker).await;
    patient.stop().await;
    let record = harness.store.get(&quick.build_id).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        BuildState::Complete,
        "finished during the drain: {:?}",
        record.fields
    );

    let hasty = harness
        .start_worker(|config| config.worker.drain_grace_secs = 1)
        .await;
    let slow_marker = format!("slow-{}", harness.tag);
    let (url, commit) = harness.repo(
        "drain-slow",
        &[(
            "Dockerfile",
            sleeping_dockerfile(&name, &slow_marker, 6).as_bytes(),
        )],
    );
    let slow = harness.job("drain-slow", &url, &commit);
    harness.submit(&slow).await;
    wait_live_log(&harness, &slow.build_id, &slow_marker).await;
    hasty.stop().await;
    let record = harness.store.get(&slow.build_id).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        BuildState::Queued,
        "handed back: {:?}",
        record.fields
    );
    assert_eq!(
        containers_running(&slow_marker),
        0,
        "its container was stopped"
    );
    let successor = harness.start_worker(|_| {}).await;
    let record = harness.wait_final(&slow.build_id).await;
    let history: Vec<String> = harness
        .store
        .history(&slow.build_id)
        .await
        .unwrap()
        .iter()
        .map(|e| format!("{}>{}", e.from, e.to))
        .collect();
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    assert_eq!(record.attempts(), 2, "{history:?}");
    assert_eq!(
        history,
        [
            "",
            "queued>running",
            "running>queued",
            "queued>running",
            "running>pushing",
            "pushing>complete"
        ]
        .map(|s| if s.is_empty() {
            ">queued".to_owned()
        } else {
            s.to_owned()
        })
    );
    successor.stop().await;
}

/// A registry that cannot be reached fails the build after the retries and dead-letters the
/// job for a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_fails_and_dead_letters_the_job() {
    let base = busybox_base();
    let harness = Harness::new().await;
    // No retry window: the failure stands at once, as past the window of a long outage.
    let worker = harness
        .start_worker(|config| config.worker.retry_window_secs = 0)
        .await;
    let name = format!("noregistry-{}", harness.tag);
    let dockerfile =
        format!("FROM {base}\nLABEL com.redhat.component={name} name={name} version=1 release=4\n");
    let (url, commit) = harness.repo("noregistry", &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job("noregistry", &url, &commit);
    job.target.as_mut().unwrap().registry = "127.0.0.1:5999".into();
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let results = harness.results().await;
    let error = assert_failed_with(
        &record,
        &harness.log(&job.build_id),
        &results[0],
        "127.0.0.1:5999",
    );
    let dead = harness
        .wait_messages(&names::dead_queue(names::QUEUE_JOBS), 1)
        .await;
    let reason =
        osbs_common::bus::header_string(&dead[0].delivery.properties, names::HEADER_DEAD_REASON)
            .unwrap();
    assert_eq!(reason, error);
    worker.stop().await;
}

/// A registry that is down is retried: the record goes back to `queued`, the job through
/// the 5 s retry queue and back to the worker, which tries again and waits longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_down_is_retried_through_the_retry_queues() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let name = format!("retried-{}", harness.tag);
    let dockerfile =
        format!("FROM {base}\nLABEL com.redhat.component={name} name={name} version=1 release=5\n");
    let (url, commit) = harness.repo("retried", &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job("retried", &url, &commit);
    job.target.as_mut().unwrap().registry = "127.0.0.1:5999".into();
    harness.submit(&job).await;
    let store = &harness.store;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(120);
    let retries = loop {
        let history = store.history(&job.build_id).await.unwrap();
        let retries: Vec<String> = history
            .iter()
            .filter(|entry| {
                entry.to == "queued" && entry.reason.contains("transient registry failure")
            })
            .map(|entry| entry.reason.clone())
            .collect();
        if retries.len() >= 2 {
            break retries;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no second retry: {history:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(retries[0].contains("retry 1 in 5 s"), "{retries:?}");
    assert!(retries[1].contains("retry 2 in 10 s"), "{retries:?}");
    assert!(retries[0].contains("127.0.0.1:5999"), "{retries:?}");
    let log = harness.log(&job.build_id);
    assert!(
        log.contains("transient registry failure: retry 1 in 5 s"),
        "{log}"
    );
    assert!(
        log.contains("transient registry failure: retry 2 in 10 s"),
        "{log}"
    );
    worker.stop().await;
}

/// A worker that recorded a build's end and died before its state event and result went out:
/// the job's next delivery announces the end as recorded and publishes the kept result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_recorded_but_not_published_goes_out_with_the_next_delivery() {
    let harness = Harness::new().await;
    let job = harness.job("unpublished", "file:///nowhere.git", &"a".repeat(40));
    let id = job.build_id.as_str();
    let now = osbs_common::telemetry::now_ms();
    harness
        .store
        .create(&job, id, now, "test", &[])
        .await
        .unwrap();
    let result = BuildResult {
        build_id: id.to_owned(),
        state: BuildState::Complete as i32,
        job: Some(job.clone()),
        finished_at_ms: now,
        ..BuildResult::default()
    };
    harness
        .store
        .keep_result(id, &result.encode_to_vec())
        .await
        .unwrap();
    // The dead worker's announcements went where nobody listens.
    let mut elsewhere = harness.env.amqp.clone();
    elsewhere.topic_prefix = "nobody.listens".into();
    let lost = Bus::connect(&elsewhere, "dead-worker").await.unwrap();
    for (state, fields) in [
        (BuildState::Running, vec![]),
        (BuildState::Pushing, vec![]),
        (
            BuildState::Complete,
            vec![(field::RESULT_PUBLISHED, "0".to_owned())],
        ),
    ] {
        let change = StateChange::new(id, state, "by the dead worker", "dead").with_fields(fields);
        let changed = state::change(&harness.store, &lost, change).await;
        assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    }

    let worker = harness.start_worker(|_| {}).await;
    harness.bus.publish_job(&job, 5).await.unwrap();
    harness.wait_final(id).await;
    let events = harness.state_events().await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (
            events[0].old_state,
            events[0].new_state,
            events[0].reason.as_str()
        ),
        (
            BuildState::Pushing,
            BuildState::Complete,
            "by the dead worker"
        ),
        "the end as recorded"
    );
    let results = harness.results().await;
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].build_id, id);
    assert_eq!(harness.store.history(id).await.unwrap().len(), 4);
    worker.stop().await;
}

/// Without a Docker Engine the worker refuses to start and says how to fix it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_engine_is_a_clear_error_at_start() {
    let harness = Harness::new().await;
    std::fs::write(harness.dir.path().join("empty.toml"), "").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_osbs-worker"))
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("OSBS_AMQP__URL", harness.env.amqp.url.expose())
        .env("OSBS_REDIS__KEY_PREFIX", &harness.env.redis.key_prefix)
        .env("OSBS_WORKER__HTTP_LISTEN", "127.0.0.1:0")
        .env("OSBS_CONFIG", harness.dir.path().join("empty.toml"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot reach the Docker Engine at unix:///nonexistent/docker.sock")
            && stderr.contains("Start dockerd"),
        "{stderr}"
    );
}

/// With a Koji hub, the release comes from `getNextRelease` and is reserved with
/// `CGInitBuild` (exactly that release; the reservation travels in the result); a release
/// Koji already has fails the build with the hub's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koji_reserves_exactly_the_release_built() {
    use osbs_koji::{AuthMethod, KojiAuth};
    use osbs_koji_hub::{HubConfig, KojiHub, TargetSpec, UserSpec};
    let base = busybox_base();
    let harness = Harness::new().await;
    let password = format!("pw-{}", harness.tag);
    let hub = KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", Some(&password))],
        content_generators: vec![("osbs".into(), vec!["osbs".into()])],
        // The worker looks the job's target up before it reserves anything.
        targets: vec![TargetSpec::named("main-container-candidate", &[])],
        ..HubConfig::default()
    })
    .await
    .unwrap();
    let hub_url = hub.url.clone();
    let worker = harness
        .start_worker(|config| {
            config.koji = osbs_koji::KojiConfig {
                hub_url,
                auth: KojiAuth {
                    method: AuthMethod::Password,
                    user: "osbs".into(),
                    password: osbs_common::config::Secret::new(password.clone()),
                    ..KojiAuth::default()
                },
                ..osbs_koji::KojiConfig::default()
            };
        })
        .await;
    let name = format!("koji-{}", harness.tag);
    let dockerfile =
        format!("FROM {base}\nLABEL com.redhat.component={name} name={name} version=5\n");
    let (url, commit) = harness.repo("koji", &[("Dockerfile", dockerfile.as_bytes())]);
    let mut reserved = Vec::new();
    for _ in 0..2 {
        let job = harness.job("koji", &url, &commit);
        harness.submit(&job).await;
        let record = harness.wait_final(&job.build_id).await;
        assert_eq!(
            record.state,
            BuildState::Complete,
            "{:?}\n{}",
            record.fields,
            harness.log(&job.build_id)
        );
        let results = harness.results().await;
        let reservation = results[0]
            .koji_reservation
            .clone()
            .expect("a Koji reservation");
        let build = hub
            .build(record.nvr())
            .expect("the NVR is reserved in Koji");
        assert_eq!(build.id, reservation.build_id);
        assert_eq!(build.state, 0, "BUILDING until the bridge imports it");
        reserved.push(record.nvr().to_owned());
    }
    assert_eq!(reserved, [format!("{name}-5-1"), format!("{name}-5-2")]);

    let fixed =
        format!("FROM {base}\nLABEL com.redhat.component={name} name={name} version=5 release=1\n");
    let (url, commit) = harness.repo("koji-fixed", &[("Dockerfile", fixed.as_bytes())]);
    let job = harness.job("koji-fixed", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let results = harness.results().await;
    assert_failed_with(
        &record,
        &harness.log(&job.build_id),
        &results[0],
        "Build is already reserved",
    );
    worker.stop().await;
}

/// A build past its time limit fails with the limit in its reason, and its container stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn build_past_its_time_limit_fails() {
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| config.worker.build_timeout_secs = 3)
        .await;
    let name = format!("timeout-{}", harness.tag);
    let marker = format!("endless-{}", harness.tag);
    let (url, commit) = harness.repo(
        "timeout",
        &[(
            "Dockerfile",
            sleeping_dockerfile(&name, &marker, 300).as_bytes(),
        )],
    );
    let job = harness.job("timeout", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let results = harness.results().await;
    assert_failed_with(
        &record,
        &harness.log(&job.build_id),
        &results[0],
        "the build ran longer than its limit of 3 s",
    );
    assert_eq!(containers_running(&marker), 0);
    worker.stop().await;
}
