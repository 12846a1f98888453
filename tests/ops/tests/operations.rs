//! Operating OSBS with the real binaries: submitting from a checkout, scaling, crashes,
//! cancel, replay, broker restarts.

use osbs_ops_tests::{Kind, Options, World, expect_exit};
use osbs_proto::v1::BuildState;
use std::time::Duration;

const BUILD_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_build_from_a_dist_git_checkout() {
    let world = World::new(Options::default()).await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _worker = world.spawn(Kind::Worker).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let name = format!("cb-{}", world.tag);
    let repo = world.repo(
        &name,
        "main",
        &world.dockerfile(&name, "echo built by ops > /ops.txt"),
    );
    let checkout = Some(repo.checkout.as_path());

    // Unpushed: refused as fedpkg does, saying what to do.
    let output = world.osbs(checkout, &["container-build"]).await;
    expect_exit(&output, 3, "an unpushed commit");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("git push origin main"), "{stderr}");

    // The push: the hook announces the commit and the dispatcher builds it.
    let pushed = repo.push(&["main"]);
    let hook_said = String::from_utf8_lossy(&pushed.stderr);
    assert!(
        hook_said.contains(&format!("announced {name}")),
        "{hook_said}"
    );

    // Dirty: refused.
    std::fs::write(repo.checkout.join("Dockerfile"), "FROM nothing\n").unwrap();
    let output = world.osbs(checkout, &["container-build"]).await;
    expect_exit(&output, 3, "a dirty checkout");
    assert!(String::from_utf8_lossy(&output.stderr).contains("uncommitted changes"));
    osbs_ops_tests::git(&repo.checkout, &["checkout", "--", "Dockerfile"]);

    // A scratch build from the checkout: followed to its end, exit 0, pullspec printed.
    let output = world
        .osbs(checkout, &["container-build", "--scratch"])
        .await;
    let stdout = expect_exit(
        &output,
        0,
        &format!("container-build --scratch\n{}", world.logs()),
    );
    let scratch_id = stdout
        .split_whitespace()
        .nth(1)
        .expect("`build <id> ...` first")
        .to_owned();
    assert!(stdout.contains("pullspec  127.0.0.1:5000/"), "{stdout}");
    assert!(
        stdout.contains("RUN echo built by ops"),
        "the log is followed:\n{stdout}"
    );
    let scratch = world.record(&scratch_id).await;
    assert_eq!(
        scratch.state,
        BuildState::Complete,
        "scratch builds are not imported"
    );
    assert!(scratch.job.options.as_ref().unwrap().scratch);

    // The same commit without --scratch is the push's build: one build, found by the CLI.
    let output = world.osbs(checkout, &["--json", "container-build"]).await;
    let stdout = expect_exit(&output, 0, "container-build of the pushed commit");
    let answer: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let id = answer["id"].as_str().unwrap().to_owned();
    assert_ne!(id, scratch_id);
    assert_eq!(
        answer["trigger"], "push",
        "the push's build answers the request"
    );
    let record = world
        .wait_state(&id, &[BuildState::Imported], BUILD_LIMIT)
        .await;
    let nvr = record.nvr().to_owned();
    let koji: Vec<_> = world
        .hub
        .builds()
        .into_iter()
        .filter(|b| b.name == name)
        .collect();
    assert_eq!(koji.len(), 1, "one Koji build for the two asks: {koji:?}");
    assert_eq!(koji[0].nvr(), nvr);

    // watch-logs after the end, status and list.
    let output = world.osbs(None, &["watch-logs", &id]).await;
    let log = expect_exit(&output, 0, "watch-logs of an imported build");
    assert!(log.contains("RUN echo built by ops"), "{log}");
    assert!(
        log.contains(&format!("build {id} imported: {nvr}")),
        "{log}"
    );
    let output = world.osbs(None, &["status", &id]).await;
    let status = expect_exit(&output, 0, "status");
    for expected in [
        &format!("build {id}  imported"),
        &nvr,
        "→ running",
        "→ imported",
    ] {
        assert!(status.contains(expected), "{expected:?} not in\n{status}");
    }
    let output = world
        .osbs(None, &["list", "--repo", &name, "--state", "imported"])
        .await;
    let list = expect_exit(&output, 0, "list");
    assert!(list.contains(&id) && !list.contains(&scratch_id), "{list}");
}

/// Ids of the builds of repository `repo`, waiting until there are `count`.
async fn builds_of(world: &World, repo: &str, count: usize) -> Vec<String> {
    osbs_ops_tests::wait_for(
        Duration::from_secs(60),
        &format!("{count} builds of {repo} to be recorded"),
        || async move {
            let ids: Vec<String> = world
                .builds()
                .await
                .into_iter()
                .filter(|record| record.job.repo == repo)
                .map(|record| record.id)
                .collect();
            (ids.len() >= count).then_some(ids)
        },
    )
    .await
}

/// How many times build `id` was started (`→ running` transitions).
async fn starts(world: &World, id: &str) -> usize {
    world
        .store
        .history(id)
        .await
        .unwrap()
        .iter()
        .filter(|entry| entry.to == "running")
        .count()
}

/// Tags of `repository` in the registry at `registry`.
async fn registry_tags(registry: &str, repository: &str) -> Vec<String> {
    let port: u16 = registry.rsplit_once(':').unwrap().1.parse().unwrap();
    let body = osbs_ops_tests::http_body(port, &format!("/v2/{repository}/tags/list"))
        .await
        .unwrap_or_default();
    let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    value["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|tag| tag.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A repository with one branch per build (`f1`…`fN`, each with a commit of its own) on top
/// of `main`: one push of them all makes N builds, one per branch (and target).
fn branches(
    world: &World,
    name: &str,
    run: &str,
    first: usize,
    last: usize,
) -> osbs_ops_tests::Repo {
    let repo = world.repo(name, "main", &world.dockerfile(name, run));
    add_branches(&repo, first, last);
    repo
}

fn add_branches(repo: &osbs_ops_tests::Repo, first: usize, last: usize) {
    for n in first..=last {
        osbs_ops_tests::git(
            &repo.checkout,
            &["checkout", "-q", "-b", &format!("f{n}"), "main"],
        );
        repo.commit("branch.txt", &format!("f{n}\n"), &format!("Branch f{n}"));
    }
    osbs_ops_tests::git(&repo.checkout, &["checkout", "-q", "main"]);
}

fn refspecs(first: usize, last: usize) -> Vec<String> {
    (first..=last).map(|n| format!("f{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_from_one_to_three_workers_runs_every_job_once() {
    const JOBS: usize = 30;
    let world = World::new(Options::default()).await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let first = world.spawn(Kind::Worker).await;
    let name = format!("scale-{}", world.tag);
    let repo = branches(&world, &name, "echo scaled > /scaled.txt", 1, JOBS);
    let mut all = vec!["main".to_owned()];
    all.extend(refspecs(1, JOBS));
    repo.push(&all.iter().map(String::as_str).collect::<Vec<_>>());
    let ids = builds_of(&world, &name, JOBS).await;
    assert_eq!(
        ids.len(),
        JOBS,
        "main's commit is on every branch: only the branches build"
    );

    // The jobs wait for the one worker; two more join.
    let output = world
        .osbs(None, &["--json", "queue", "--interval", "0"])
        .await;
    let queues: serde_json::Value =
        serde_json::from_str(&expect_exit(&output, 0, "queue")).unwrap();
    let waiting = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|queue| queue["queue"] == "osbs.jobs")
        .unwrap()["messages"]
        .as_u64()
        .unwrap();
    assert!(
        waiting >= 10,
        "jobs should be waiting for workers, {waiting} are"
    );
    let second = world.spawn(Kind::Worker).await;
    let third = world.spawn(Kind::Worker).await;
    let output = world
        .osbs(None, &["--json", "queue", "--interval", "0"])
        .await;
    let queues: serde_json::Value =
        serde_json::from_str(&expect_exit(&output, 0, "queue")).unwrap();
    let consumers = queues
        .as_array()
        .unwrap()
        .iter()
        .find(|queue| queue["queue"] == "osbs.jobs")
        .unwrap()["consumers"]
        .as_u64()
        .unwrap();
    assert_eq!(consumers, 3, "three workers consume osbs.jobs");

    for id in &ids {
        world
            .wait_state(id, &[BuildState::Imported], Duration::from_secs(420))
            .await;
    }
    let mut workers = std::collections::BTreeSet::new();
    let mut nvrs = std::collections::BTreeSet::new();
    for id in &ids {
        assert_eq!(starts(&world, id).await, 1, "build {id} ran more than once");
        let record = world.record(id).await;
        assert_eq!(record.attempts(), 1, "build {id}");
        workers.insert(record.field("worker").split('/').next().unwrap().to_owned());
        nvrs.insert(record.nvr().to_owned());
    }
    assert!(workers.len() >= 2, "the new workers took jobs: {workers:?}");
    assert_eq!(nvrs.len(), JOBS, "one NVR per build");
    let koji: Vec<String> = world
        .hub
        .builds()
        .into_iter()
        .filter(|build| build.name == name)
        .map(|build| build.nvr())
        .collect();
    assert_eq!(koji.len(), JOBS, "one Koji build per build");
    assert_eq!(
        koji.into_iter().collect::<std::collections::BTreeSet<_>>(),
        nvrs
    );
    osbs_ops_tests::wait_settled(
        None,
        &world.env.vhost,
        &[
            "osbs.jobs",
            "osbs.jobs.dead",
            "osbs.results",
            "osbs.results.dead",
        ],
    )
    .await;
    // Each worker counted its builds on /metrics.
    let metrics = osbs_ops_tests::http_body(second.http_port, "/metrics")
        .await
        .unwrap();
    assert!(
        metrics.contains("osbs_worker_builds_total{state=\"running\"}"),
        "{metrics}"
    );
    for worker in [first, second, third] {
        assert!(worker.terminate(Duration::from_secs(40)).await.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_build_loses_nothing_and_builds_once() {
    let world = World::new(Options::default()).await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let doomed = world.spawn(Kind::Worker).await;
    let name = format!("kill-{}", world.tag);
    let repo = world.repo(
        &name,
        "main",
        &world.dockerfile(&name, "sleep 6 && echo slow"),
    );
    repo.push(&["main"]);
    let id = builds_of(&world, &name, 1).await.remove(0);
    let store = &world.store;
    let build_id = id.as_str();
    osbs_ops_tests::wait_for(Duration::from_secs(120), "the build to reach its RUN step", || async move {
        let lines = store.read_log(build_id, "0", 10_000, None).await.ok()?;
        lines
            .iter()
            .any(|entry| matches!(entry, osbs_common::store::LogEntry::Line { text, .. } if text.contains("sleep 6")))
            .then_some(())
    })
    .await;
    doomed.kill9().await;

    let _survivor = world.spawn(Kind::Worker).await;
    let record = world
        .wait_state(&id, &[BuildState::Imported], BUILD_LIMIT)
        .await;
    assert_eq!(record.attempts(), 2, "taken over once");
    let history = world.store.history(&id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|entry| entry.reason.contains("taken over")),
        "{history:?}"
    );
    let koji: Vec<_> = world
        .hub
        .builds()
        .into_iter()
        .filter(|b| b.name == name)
        .collect();
    assert_eq!(koji.len(), 1, "one Koji build");
    assert_eq!(koji[0].nvr(), record.nvr());
    // One image: one push, so one unique tag beside the version tags.
    let repository = format!("osbs-ops-{}/{name}", world.tag);
    let tags = registry_tags(&world.registry, &repository).await;
    let unique: Vec<_> = tags
        .iter()
        .filter(|tag| tag.contains("-candidate-"))
        .collect();
    assert_eq!(unique.len(), 1, "one image pushed: {tags:?}");
    osbs_ops_tests::wait_settled(None, &world.env.vhost, &["osbs.jobs", "osbs.jobs.dead"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_of_a_queued_and_of_a_running_build() {
    let world = World::new(Options::default()).await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let slow = format!("slow-{}", world.tag);
    let waiting = format!("waiting-{}", world.tag);
    let after = format!("after-{}", world.tag);
    world
        .repo(&slow, "main", &world.dockerfile(&slow, "sleep 60"))
        .push(&["main"]);
    let slow_id = builds_of(&world, &slow, 1).await.remove(0);
    world
        .wait_state(&slow_id, &[BuildState::Running], BUILD_LIMIT)
        .await;
    world
        .repo(&waiting, "main", &world.dockerfile(&waiting, "true"))
        .push(&["main"]);
    let waiting_id = builds_of(&world, &waiting, 1).await.remove(0);
    assert_eq!(world.record(&waiting_id).await.state, BuildState::Queued);

    // Queued: canceled at once.
    let output = world.osbs(None, &["cancel", &waiting_id]).await;
    expect_exit(&output, 0, "cancel of the queued build");
    assert_eq!(world.record(&waiting_id).await.state, BuildState::Canceled);

    // Running: its worker stops it; `osbs cancel` waits for that.
    let output = world.osbs(None, &["cancel", &slow_id]).await;
    let stdout = expect_exit(
        &output,
        0,
        &format!("cancel of the running build\n{}", world.logs()),
    );
    assert!(
        stdout.contains(&format!("build {slow_id} canceled")),
        "{stdout}"
    );
    let record = world.record(&slow_id).await;
    assert_eq!(record.state, BuildState::Canceled);
    let output = world.osbs(None, &["watch-logs", &slow_id]).await;
    expect_exit(&output, 1, "watch-logs of a canceled build");
    assert!(String::from_utf8_lossy(&output.stdout).contains("cancel requested"));
    let output = world.osbs(None, &["cancel", &slow_id]).await;
    expect_exit(&output, 3, "cancel of a finished build");

    // The worker goes on with the next job and never starts the canceled one.
    world
        .repo(&after, "main", &world.dockerfile(&after, "true"))
        .push(&["main"]);
    let after_id = builds_of(&world, &after, 1).await.remove(0);
    world
        .wait_state(&after_id, &[BuildState::Imported], BUILD_LIMIT)
        .await;
    assert_eq!(
        starts(&world, &waiting_id).await,
        0,
        "the canceled job never ran"
    );
    assert_eq!(world.record(&waiting_id).await.state, BuildState::Canceled);
    // The running build had reserved its release in Koji (CGInitBuild, before building): the
    // bridge refunds the reservation as CANCELED. The queued one never reserved anything.
    const KOJI_CANCELED: i64 = 4;
    let hub = &world.hub;
    let slow_name = slow.as_str();
    let refunded = osbs_ops_tests::wait_for(
        BUILD_LIMIT,
        "the canceled build's Koji reservation refunded as CANCELED",
        || async move {
            let reservations: Vec<_> = hub
                .builds()
                .into_iter()
                .filter(|build| build.name == slow_name)
                .collect();
            (reservations.len() == 1 && reservations[0].state == KOJI_CANCELED)
                .then_some(reservations)
        },
    )
    .await;
    assert_eq!(refunded[0].nvr(), record.nvr(), "the canceled build's NVR");
    assert!(
        hub.builds().iter().all(|build| build.name != waiting),
        "the queued build never reserved a release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_dead_lettered_job_after_its_cause_is_fixed() {
    let mut registry = osbs_ops_tests::PrivateRegistry::start().await;
    // No retry window: the outage outlasts the retries at once, as a long one would.
    let world = World::new(Options {
        registry: Some(registry.address()),
        retry_window_secs: Some(0),
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    registry.down().await;
    let name = format!("replay-{}", world.tag);
    world
        .repo(
            &name,
            "main",
            &world.dockerfile(&name, "echo replayed > /r.txt"),
        )
        .push(&["main"]);
    let id = builds_of(&world, &name, 1).await.remove(0);
    let failed = world
        .wait_state(&id, &[BuildState::Failed], BUILD_LIMIT)
        .await;
    let bus = world.bus().await;
    osbs_ops_tests::wait_for(Duration::from_secs(30), "the job in osbs.jobs.dead", || {
        let bus = &bus;
        async move { (bus.queue_depth("osbs.jobs.dead").await.ok()?.messages == 1).then_some(()) }
    })
    .await;

    let output = world.osbs(None, &["replay", "--dry-run", "--all"]).await;
    let listed = expect_exit(&output, 0, "replay --dry-run");
    assert!(
        listed.contains(&id) && listed.contains("osbs.jobs.dead"),
        "{listed}"
    );
    assert!(
        listed.contains(&failed.error()[..20.min(failed.error().len())]),
        "{listed}"
    );
    assert_eq!(
        world.record(&id).await.state,
        BuildState::Failed,
        "a dry run changes nothing"
    );

    registry.up().await;
    let output = world.osbs(None, &["replay", &id]).await;
    let stdout = expect_exit(&output, 0, "replay");
    assert!(stdout.contains("replayed"), "{stdout}");
    let record = world
        .wait_state(&id, &[BuildState::Imported], BUILD_LIMIT)
        .await;
    assert_eq!(record.id, id, "the replayed build keeps its id");
    assert!(
        record
            .pullspecs()
            .iter()
            .any(|p| p.starts_with(&registry.address()))
    );
    let history = world.store.history(&id).await.unwrap();
    let replayed = history
        .iter()
        .position(|entry| entry.from == "failed" && entry.to == "queued")
        .expect("failed → queued in the history");
    assert_eq!(history[replayed].reason, "replayed by ops-tester");
    assert!(
        history[..replayed]
            .iter()
            .any(|entry| entry.to == "running"),
        "history kept"
    );
    assert_eq!(
        record.attempts(),
        2,
        "one failed run, one replayed: {history:#?}"
    );
    assert_eq!(bus.queue_depth("osbs.jobs.dead").await.unwrap().messages, 0);
    let koji: Vec<_> = world
        .hub
        .builds()
        .into_iter()
        .filter(|b| b.name == name)
        .collect();
    assert_eq!(koji.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_restart_loses_nothing_and_builds_nothing_twice() {
    let rabbit = osbs_ops_tests::PrivateRabbit::start().await;
    let world = World::new(Options {
        amqp: Some(rabbit.amqp()),
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _workers = [
        world.spawn(Kind::Worker).await,
        world.spawn(Kind::Worker).await,
    ];
    let name = format!("restart-{}", world.tag);
    let repo = branches(&world, &name, "sleep 2", 1, 5);
    let mut first = vec!["main".to_owned()];
    first.extend(refspecs(1, 5));
    repo.push(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let ids = builds_of(&world, &name, 5).await;
    let store = &world.store;
    let first_ids = &ids;
    osbs_ops_tests::wait_for(BUILD_LIMIT, "a build to run", || async move {
        for id in first_ids {
            if store.get(id).await.ok()??.state == BuildState::Running {
                return Some(());
            }
        }
        None
    })
    .await;

    rabbit.down().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbit.up().await;

    // Events keep arriving after the restart.
    add_branches(&repo, 6, 8);
    repo.push(
        &refspecs(6, 8)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let ids = builds_of(&world, &name, 8).await;
    assert_eq!(ids.len(), 8, "every event made its build");
    for id in &ids {
        world
            .wait_state(id, &[BuildState::Imported], Duration::from_secs(300))
            .await;
    }
    for id in &ids {
        assert_eq!(
            starts(&world, id).await,
            1,
            "build {id} ran twice\n{}",
            world.logs()
        );
    }
    let koji: Vec<_> = world
        .hub
        .builds()
        .into_iter()
        .filter(|b| b.name == name)
        .collect();
    assert_eq!(koji.len(), 8, "one Koji build each");
    let repository = format!("osbs-ops-{}/{name}", world.tag);
    let tags = registry_tags(&world.registry, &repository).await;
    let unique = tags
        .iter()
        .filter(|tag| tag.contains("-candidate-"))
        .count();
    assert_eq!(unique, 8, "one image pushed per build: {tags:?}");
    osbs_ops_tests::wait_settled(
        Some(&rabbit.node),
        "/",
        &[
            "osbs.events",
            "osbs.jobs",
            "osbs.results",
            "osbs.jobs.dead",
            "osbs.results.dead",
            "osbs.events.dead",
        ],
    )
    .await;
}
