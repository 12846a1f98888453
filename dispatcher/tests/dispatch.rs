//! The dispatcher against the real RabbitMQ and Redis: fixtures in, records, jobs, dead letters
//! and state changes out; de-duplication, coalescing, priorities and crash recovery.

mod support;

use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::{Tip, field};
use osbs_dispatcher::Routing;
use osbs_dispatcher::decide::{Decision, Incoming, decide};
use osbs_proto::names;
use osbs_proto::v1::{BuildState, Trigger};
use serde_json::json;
use support::{Event, Harness, REV, fixtures_dir, rev};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_fixtures_are_recorded_and_enqueued() {
    let harness = Harness::start().await;
    let changes = harness.watch_state_changes().await;
    for name in [
        "git-receive-v1.json",
        "git-receive-legacy-fedmsg.json",
        "build-request-v1.json",
    ] {
        harness.publish(&Event::fixture(name)).await;
    }
    harness.wait_for_events(3).await;
    assert_eq!(
        harness
            .counter("osbs_dispatcher_events_total{outcome=\"enqueued\"}")
            .await,
        3
    );

    let jobs = harness.jobs().await;
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    let (request, priority) = &jobs[0];
    assert_eq!(
        request.trigger,
        Trigger::Request as i32,
        "the request waits first in osbs.jobs"
    );
    assert_eq!(*priority, osbs_common::bus::MAX_PRIORITY);
    let push = jobs
        .iter()
        .map(|(job, _)| job)
        .find(|job| job.repo == "httpd" && job.trigger == Trigger::Push as i32)
        .expect("the CommitV1 push");
    assert_eq!(push.commit, REV);
    assert_eq!(
        push.git_url,
        format!(
            "file://{}/container/httpd.git",
            harness.dist_git.path().display()
        )
    );
    assert_eq!(
        push.target.as_ref().unwrap().name,
        "f41-container-candidate"
    );
    assert_eq!(
        push.target.as_ref().unwrap().base_registry,
        "127.0.0.1:5000"
    );
    assert_eq!(push.submitter, "jdoe");
    assert_eq!(push.event_id, "6b1c2f0e-7a0e-4c55-9d8f-2a4b1f0c9e31");
    let legacy = jobs
        .iter()
        .map(|(job, _)| job)
        .find(|job| job.repo == "cockpit")
        .expect("the legacy push");
    assert_eq!(legacy.namespace, "docker");
    assert_eq!(legacy.target.as_ref().unwrap().name, "f41-docker-candidate");

    for (job, _) in &jobs {
        let record = harness.store.require(&job.build_id).await.unwrap();
        assert_eq!(record.state, BuildState::Queued);
        assert_eq!(&record.job, job, "the record holds the job as enqueued");
        assert_eq!(record.field(field::ENQUEUED), "1");
        let history = harness.store.history(&job.build_id).await.unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].to, "queued");
        assert_eq!(job.build_id.len(), osbs_dispatcher::build_id::LENGTH);
    }
    let outcome = harness
        .store
        .request_outcome("req-2f1c")
        .await
        .unwrap()
        .expect("the request's outcome is recorded");
    assert_eq!(outcome.outcome, "enqueued");
    assert_eq!(outcome.build_id.as_deref(), Some(request.build_id.as_str()));

    let changes = harness.state_changes(&changes).await;
    assert_eq!(changes.len(), 3);
    assert!(
        changes
            .iter()
            .all(|change| change.new_state == BuildState::Queued)
    );
    harness.stop().await;
}

/// What each bad fixture's dead letter must say (the file name says what is wrong).
const BAD: &[(&str, &str)] = &[
    ("body-not-an-object.json", "JSON object"),
    ("commit-without-rev.json", "commit.rev is missing"),
    ("not-utf8.raw", "UTF-8"),
    ("repo-path-traversal.json", "../../etc"),
    ("request-disallowed-git-host.json", "allowed dist-git host"),
    ("request-isolated-bad-release.json", "\"one\""),
    ("request-isolated-without-release.json", "opts.release"),
    ("request-scratch-and-isolated.json", "exclude each other"),
    ("request-src-without-commit.json", "has no commit"),
    ("request-unknown-option.json", "make_it_fast"),
    ("rev-shell-injection.json", "not a commit id"),
    ("truncated-json.raw", "not valid JSON"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_fixture_is_dead_lettered_and_the_events_behind_it_still_flow() {
    let harness = Harness::start().await;
    let mut files: Vec<_> = std::fs::read_dir(fixtures_dir().join("bad"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap() != "README.md")
        .collect();
    files.sort();
    assert_eq!(files.len(), BAD.len(), "a reason for every file of bad/");
    let good = Event::fixture("git-receive-v1.json");
    let request = Event::fixture("build-request-v1.json");
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let template = if name.starts_with("request-") {
            &request
        } else {
            &good
        };
        let event = Event {
            body: std::fs::read(path).unwrap(),
            message_id: Some(format!("bad-{name}")),
            ..template.clone()
        };
        harness.publish(&event).await;
    }
    // A good event behind all of them.
    harness.publish(&good).await;
    harness.wait_for_events(files.len() as u64 + 1).await;

    let dead = harness.dead_letters().await;
    assert_eq!(dead.len(), files.len());
    for (path, (file, expected)) in files.iter().zip(BAD) {
        let body = std::fs::read(path).unwrap();
        let (reason, _) = dead
            .iter()
            .find(|(_, dead_body)| *dead_body == body)
            .unwrap_or_else(|| panic!("{file} was not dead-lettered with its body intact"));
        assert!(reason.contains(expected), "{file}: {reason}");
    }
    assert_eq!(
        harness
            .counter("osbs_dispatcher_dead_letters_total{queue=\"osbs.events\"}")
            .await,
        files.len() as u64
    );
    let jobs = harness.jobs().await;
    assert_eq!(jobs.len(), 1, "the good event behind the bad ones is built");
    assert_eq!(jobs[0].0.commit, REV);
    // Refused requests leave an answer for their requester where they have a request id.
    let (status, _) = support::http_get(harness.http_addr, "/healthz").await;
    assert_eq!(status, 200, "still healthy after refusing");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_for_what_is_not_configured_are_acked_and_counted() {
    let harness = Harness::start_with(|config| config.repos_deny = vec!["secret".into()]).await;
    let v1 = Event::fixture("git-receive-v1.json");
    let mut rpms = v1.json();
    rpms["commit"]["namespace"] = json!("rpms");
    let mut private = v1.json();
    private["commit"]["branch"] = json!("private-jdoe");
    let mut denied = v1.json();
    denied["commit"]["repo"] = json!("secret");
    for body in [&rpms, &private, &denied] {
        harness.publish(&v1.with_json(body)).await;
    }
    let mut request = Event::fixture("build-request-v1.json");
    let mut body = request.json();
    body["src"] = json!(format!("https://src.fedoraproject.org/rpms/bash.git#{REV}"));
    body["request_id"] = json!("req-rpms");
    request = request.with_json(&body);
    harness.publish(&request).await;
    harness.wait_for_events(4).await;

    for reason in [
        "namespace_not_served",
        "branch_not_automatic",
        "repo_not_allowed",
    ] {
        assert!(
            harness
                .counter(&format!(
                    "osbs_dispatcher_ignored_total{{reason=\"{reason}\"}}"
                ))
                .await
                >= 1,
            "{reason}"
        );
    }
    assert!(harness.jobs().await.is_empty());
    assert!(
        harness.dead_letters().await.is_empty(),
        "ignoring is not an error"
    );
    let outcome = harness
        .store
        .request_outcome("req-rpms")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.outcome, "ignored");
    assert!(outcome.reason.contains("rpms"), "{}", outcome.reason);
    harness.stop().await;
}

fn request_for(push: &Event, request_id: &str) -> Event {
    let body = push.json();
    let commit = &body["commit"];
    let request = json!({
        "request_id": request_id,
        "user": "rel-eng",
        "src": format!("https://src.fedoraproject.org/{}/{}.git#{}", commit["namespace"].as_str().unwrap(), commit["repo"].as_str().unwrap(), commit["rev"].as_str().unwrap()),
        "target": format!("{}-container-candidate", commit["branch"].as_str().unwrap()),
        "opts": {"git_branch": commit["branch"], "scratch": false, "isolated": false},
    });
    Event::fixture("build-request-v1.json").with_json(&request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_asked_for_many_times_is_built_once() {
    let harness = Harness::start().await;
    let push = Event::fixture("git-receive-v1.json");
    harness.publish(&push).await; // the push
    harness.publish(&push).await; // redelivered: the same message id
    harness.publish(&push.republished()).await; // republished: a new message id
    harness.publish(&request_for(&push, "req-same")).await; // and asked for explicitly
    harness.wait_for_events(4).await;

    let jobs = harness.jobs().await;
    assert_eq!(jobs.len(), 1, "one job: {jobs:?}");
    let build_id = &jobs[0].0.build_id;
    assert_eq!(
        harness
            .counter("osbs_dispatcher_events_total{outcome=\"duplicate\"}")
            .await,
        3
    );
    let outcome = harness
        .store
        .request_outcome("req-same")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.outcome, "duplicate");
    assert_eq!(
        outcome.build_id.as_ref(),
        Some(build_id),
        "the answer names the build"
    );
    let builds = harness
        .store
        .list(&osbs_common::store::ListFilter::default())
        .await
        .unwrap();
    assert_eq!(builds.len(), 1);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_request_rebuilds_a_failed_build_and_a_push_does_not() {
    let harness = Harness::start().await;
    let push = Event::fixture("git-receive-v1.json");
    harness.publish(&push).await;
    harness.wait_for_events(1).await;
    let first = harness.jobs().await.remove(0).0.build_id;
    // A worker takes it and it fails (infrastructure trouble).
    for state in [BuildState::Running, BuildState::Failed] {
        let change = StateChange::new(&first, state, "test", "test");
        let changed = state::change(&harness.store, &harness.bus, change).await;
        assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    }

    harness.publish(&push.republished()).await;
    harness.wait_for_events(2).await;
    assert!(
        harness.jobs().await.is_empty(),
        "a push names the failed build"
    );

    let request = request_for(&push, "req-retry");
    harness.publish(&request).await;
    harness.wait_for_events(3).await;
    let rebuilt = harness.jobs().await;
    assert_eq!(rebuilt.len(), 1, "the request builds again");
    let second = &rebuilt[0].0.build_id;
    assert_ne!(second, &first);
    assert_eq!(rebuilt[0].0.commit, REV);
    let outcome = harness
        .store
        .request_outcome("req-retry")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.outcome, "enqueued");
    assert_eq!(outcome.build_id.as_ref(), Some(second));

    // The same request redelivered, and asked again while the rebuild waits: the rebuild.
    harness.publish(&request).await;
    harness.publish(&request_for(&push, "req-again")).await;
    harness.wait_for_events(5).await;
    assert!(harness.jobs().await.is_empty());
    let again = harness
        .store
        .request_outcome("req-again")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.build_id.as_ref(), Some(second));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_of_one_branch_coalesce_to_the_newest() {
    let harness = Harness::start().await;
    let changes = harness.watch_state_changes().await;
    // The hook sends one message per commit, oldest first; no worker runs.
    let revs = [rev(1), rev(2), rev(3)];
    for commit in &revs {
        harness.publish(&Event::push("httpd", "f41", commit)).await;
    }
    // Another branch is not touched.
    harness.publish(&Event::push("httpd", "f42", &rev(4))).await;
    harness.wait_for_events(4).await;

    let jobs = harness.jobs().await;
    let ids: Vec<String> = jobs
        .iter()
        .filter(|(job, _)| job.branch == "f41")
        .map(|(job, _)| job.build_id.clone())
        .collect();
    assert_eq!(ids.len(), 3);
    let mut records = Vec::new();
    for id in &ids {
        records.push(harness.store.require(id).await.unwrap());
    }
    records.sort_by_key(|record| record.job.commit.clone());
    let states: Vec<BuildState> = records.iter().map(|record| record.state).collect();
    assert_eq!(
        states,
        [
            BuildState::Superseded,
            BuildState::Superseded,
            BuildState::Queued
        ],
        "only the newest commit builds"
    );
    assert_eq!(records[2].job.commit, revs[2]);
    assert_eq!(records[0].field(field::SUPERSEDED_BY), records[1].id);
    assert_eq!(records[1].field(field::SUPERSEDED_BY), records[2].id);
    let f42 = jobs.iter().find(|(job, _)| job.branch == "f42").unwrap();
    assert_eq!(
        harness.store.require(&f42.0.build_id).await.unwrap().state,
        BuildState::Queued
    );

    let changes = harness.state_changes(&changes).await;
    let superseded: Vec<_> = changes
        .iter()
        .filter(|change| change.new_state == BuildState::Superseded)
        .collect();
    assert_eq!(superseded.len(), 2, "{changes:?}");
    assert!(
        superseded
            .iter()
            .all(|change| change.old_state == BuildState::Queued
                && change.reason.contains("superseded by"))
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_build_is_not_superseded() {
    let harness = Harness::start().await;
    harness.publish(&Event::push("httpd", "f41", &rev(1))).await;
    harness.wait_for_events(1).await;
    let first = harness.jobs().await.remove(0).0.build_id;
    // A worker picked it up before the next push arrived: the worker wins.
    let change = StateChange::new(&first, BuildState::Running, "test", "test");
    let changed = state::change(&harness.store, &harness.bus, change).await;
    assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    harness.publish(&Event::push("httpd", "f41", &rev(2))).await;
    harness.wait_for_events(2).await;
    assert_eq!(
        harness.store.require(&first).await.unwrap().state,
        BuildState::Running
    );
    let second = harness.jobs().await.remove(0).0.build_id;
    assert_eq!(
        harness.store.require(&second).await.unwrap().state,
        BuildState::Queued
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_requests_are_taken_before_waiting_pushes() {
    let harness = Harness::start().await;
    for (index, repo) in ["alpha", "beta", "gamma"].iter().enumerate() {
        harness
            .publish(&Event::push(repo, "f41", &rev(index as u64 + 10)))
            .await;
    }
    let mut request = Event::fixture("build-request-v1.json").json();
    request["src"] = json!(format!(
        "https://src.fedoraproject.org/container/delta.git#{}",
        rev(20)
    ));
    harness
        .publish(&Event::fixture("build-request-v1.json").with_json(&request))
        .await;
    harness.wait_for_events(4).await;
    let jobs = harness.jobs().await;
    let order: Vec<(&str, u8)> = jobs
        .iter()
        .map(|(job, priority)| (job.repo.as_str(), *priority))
        .collect();
    assert_eq!(order.len(), 4);
    assert_eq!(
        order[0],
        ("delta", osbs_common::bus::MAX_PRIORITY),
        "{order:?}"
    );
    assert!(order[1..].iter().all(|(_, priority)| *priority == 0));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_job_was_never_enqueued_is_finished_on_redelivery() {
    let harness = Harness::start().await;
    let event = Event::fixture("git-receive-v1.json");
    // The state a crash between `store.create` and the publish leaves behind.
    let routing = Routing::new(&harness.config.dispatcher).unwrap();
    let Decision::Enqueue(plan) = decide(
        &Incoming {
            routing_key: &event.routing_key,
            content_encoding: event.content_encoding.as_deref(),
            message_id: event.message_id.as_deref(),
            headers: &event.headers,
            body: &event.body,
        },
        &routing,
        osbs_common::telemetry::now_ms(),
    ) else {
        panic!("the fixture is a job");
    };
    let mut job = plan.job.clone();
    job.build_id = osbs_dispatcher::build_id::new();
    harness
        .store
        .create(&job, &plan.idempotency_key, 1, "crashed", &[])
        .await
        .unwrap();

    let changes = harness.watch_state_changes().await;
    harness.publish(&event).await;
    harness.wait_for_events(1).await;
    assert_eq!(
        harness
            .counter("osbs_dispatcher_events_total{outcome=\"resumed\"}")
            .await,
        1
    );
    let jobs = harness.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0].0.build_id, job.build_id,
        "the recorded build, not a new one"
    );
    let record = harness.store.require(&job.build_id).await.unwrap();
    assert_eq!(record.field(field::ENQUEUED), "1");
    let announced = harness.state_changes(&changes).await;
    assert_eq!(
        announced.len(),
        1,
        "the creation the crash left unannounced"
    );
    assert_eq!(
        (announced[0].build_id.as_str(), announced[0].new_state),
        (job.build_id.as_str(), BuildState::Queued)
    );
    // Delivered once more: finished now, nothing new.
    harness.publish(&event).await;
    harness.wait_for_events(2).await;
    assert!(harness.jobs().await.is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_branch_tip_only_moves_forward() {
    let harness = Harness::start().await;
    let records = &harness.store;
    let key = "container/httpd:f41:f41-container-candidate";
    let (older, newer, newest) = (
        osbs_dispatcher::build_id::new(),
        osbs_dispatcher::build_id::new(),
        osbs_dispatcher::build_id::new(),
    );
    assert_eq!(
        records.advance_tip(key, &newer).await.unwrap(),
        Tip::Advanced { previous: None }
    );
    assert_eq!(
        records.advance_tip(key, &older).await.unwrap(),
        Tip::Behind {
            newer: newer.clone()
        },
        "an older build handled late does not take the tip back"
    );
    assert_eq!(
        records.advance_tip(key, &newest).await.unwrap(),
        Tip::Advanced {
            previous: Some(newer.clone())
        }
    );
    assert_eq!(
        records.advance_tip(key, &newest).await.unwrap(),
        Tip::Current {
            previous: Some(newer)
        },
        "a redelivery finds what it superseded"
    );
    harness.stop().await;
}

/// An event in hand when the dispatcher is told to stop (SIGTERM), which cannot finish
/// within the grace, goes back to `osbs.events` — neither acked nor lost — and the next
/// dispatcher finishes its build, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_hand_at_stop_goes_back_to_the_queue_and_is_built_once() {
    let harness = Harness::start_with(|dispatcher| {
        // A failed dispatch waits this long in hand before it requeues its event.
        dispatcher.retry_delay_ms = 600_000;
        dispatcher.shutdown_grace_secs = 1;
    })
    .await;
    // osbs.jobs takes no job: the event's dispatch fails and the event stays in hand.
    harness.env.set_queue_policy(
        "refuse-jobs",
        "^osbs\\.jobs$",
        r#"{"max-length":0,"overflow":"reject-publish"}"#,
    );
    harness
        .publish(&Event::fixture("git-receive-v1.json"))
        .await;
    eventually("the dispatch to fail once", || async {
        harness
            .counter("osbs_dispatcher_events_total{outcome=\"requeued\"}")
            .await
            == 1
    })
    .await;
    let held = harness.env.queue_counts(names::QUEUE_EVENTS);
    assert_eq!((held.ready, held.unacked), (0, 1), "the event is in hand");
    let recorded = harness.store.list(&Default::default()).await.unwrap();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let id = recorded[0].id.clone();
    assert_ne!(recorded[0].field(field::ENQUEUED), "1");

    harness.stop().await;
    eventually("the event back in the queue, nobody consuming", || async {
        let back = harness.env.queue_counts(names::QUEUE_EVENTS);
        (back.ready, back.unacked, back.consumers) == (1, 0, 0)
    })
    .await;

    harness.env.clear_policy("refuse-jobs");
    let mut config = harness.config.clone();
    config.dispatcher.retry_delay_ms = 200;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let next = osbs_dispatcher::start(config, shutdown.clone())
        .await
        .expect("the next dispatcher starts");
    let metrics = next.http_addr;
    eventually("the next dispatcher to finish the event", || async {
        harness.env.queue_counts(names::QUEUE_EVENTS).settled()
    })
    .await;
    let resumed = support::counter_in(
        &support::http_get(metrics, "/metrics").await.1,
        "osbs_dispatcher_events_total{outcome=\"resumed\"}",
    );
    assert_eq!(resumed, 1, "the interrupted dispatch was finished");
    let jobs = harness.jobs().await;
    assert_eq!(jobs.len(), 1, "one job: {jobs:?}");
    assert_eq!(jobs[0].0.build_id, id);
    let record = harness.store.require(&id).await.unwrap();
    assert_eq!(record.state, BuildState::Queued);
    assert_eq!(record.field(field::ENQUEUED), "1");
    assert_eq!(
        harness.store.list(&Default::default()).await.unwrap().len(),
        1
    );
    shutdown.cancel();
    next.wait().await.unwrap();
}

/// Polls `check` until it holds; fails the test after [`support::PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {:?} for {what}",
            support::PATIENCE
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
