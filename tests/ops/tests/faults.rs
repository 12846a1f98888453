//! Faults the system rides out by itself, on the real services: a registry that stops for
//! 20 s in the middle of a build, a Koji hub that stops for 20 s while the build's import is
//! due, a Redis emptied in the middle of a build. Each test breaks a private instance of its
//! own (never the shared registry on :5000 or Redis on :6379; the hub double is the test's).

use osbs_ops_tests::{Kind, Options, PrivateRedis, PrivateRegistry, World, http_body, wait_for};
use osbs_proto::v1::BuildState;
use std::time::Duration;

const BUILD_LIMIT: Duration = Duration::from_secs(240);

/// The id of the one build of repository `repo`, once recorded.
async fn build_of(world: &World, repo: &str) -> String {
    wait_for(
        Duration::from_secs(60),
        &format!("the build of {repo} to be recorded"),
        || async move {
            world
                .builds()
                .await
                .into_iter()
                .find(|record| record.job.repo == repo)
                .map(|record| record.id)
        },
    )
    .await
}

/// Koji builds of package `name` on the world's hub double.
fn koji_builds(world: &World, name: &str) -> usize {
    world
        .hub
        .builds()
        .into_iter()
        .filter(|build| build.name == name)
        .count()
}

/// The record once `imported`; past the limit, fails showing the record, its history and
/// the services' logs.
async fn imported_or_explain(world: &World, id: &str) -> osbs_common::store::BuildRecord {
    let deadline = tokio::time::Instant::now() + BUILD_LIMIT;
    loop {
        let record = world.store.get(id).await.ok().flatten();
        if let Some(record) = &record
            && record.state == BuildState::Imported
        {
            return record.clone();
        }
        if tokio::time::Instant::now() > deadline {
            let history = world.store.history(id).await.unwrap_or_default();
            panic!(
                "build {id} not imported: {record:#?}\n{history:#?}\n{}",
                world.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn dead_jobs_and_results(world: &World) -> (u32, u32) {
    let bus = world.bus().await;
    let jobs = bus.queue_depth("osbs.jobs.dead").await.unwrap().messages;
    let results = bus.queue_depth("osbs.results.dead").await.unwrap().messages;
    (jobs, results)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_stopped_for_20_seconds_mid_build_is_ridden_out() {
    let mut registry = PrivateRegistry::start().await;
    let world = World::new(Options {
        registry: Some(registry.address()),
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let worker = world.spawn(Kind::Worker).await;
    let name = format!("outage-{}", world.tag);
    world
        .repo(
            &name,
            "main",
            &world.dockerfile(&name, "sleep 2 && echo ridden out > /outage.txt"),
        )
        .push(&["main"]);
    let id = build_of(&world, &name).await;
    world
        .wait_state(&id, &[BuildState::Running], BUILD_LIMIT)
        .await;
    registry.down().await;
    let stopped = tokio::time::Instant::now();
    // The push meets the outage: the build goes back to `queued`, its job to a retry queue.
    let retried = wait_for(Duration::from_secs(90), "a retry in the history", || {
        let world = &world;
        let id = &id;
        async move {
            world
                .store
                .history(id)
                .await
                .ok()?
                .into_iter()
                .find(|entry| {
                    entry.to == "queued" && entry.reason.contains("transient registry failure")
                })
        }
    })
    .await;
    assert!(retried.reason.contains("retry 1 in 5 s"), "{retried:?}");
    // The outage lasts 20 s in all, whatever the build did meanwhile.
    tokio::time::sleep_until(stopped + Duration::from_secs(20)).await;
    registry.up().await;

    let record = world
        .wait_state(&id, &[BuildState::Imported], BUILD_LIMIT)
        .await;
    assert!(
        record
            .pullspecs()
            .iter()
            .any(|pullspec| pullspec.starts_with(&registry.address())),
        "{:?}",
        record.pullspecs()
    );
    assert_eq!(koji_builds(&world, &name), 1, "one Koji build");
    assert_eq!(
        dead_jobs_and_results(&world).await,
        (0, 0),
        "no operator action needed"
    );
    let history = world.store.history(&id).await.unwrap();
    let retries = history
        .iter()
        .filter(|entry| entry.reason.contains("transient registry failure"))
        .count();
    assert!(retries >= 1, "{history:#?}");
    // The build log keeps every attempt and says each retry.
    let log = std::fs::read_to_string(record.field("log_path")).expect("the build log");
    assert_eq!(
        log.matches("transient registry failure: retry").count(),
        retries,
        "{log}"
    );
    let metrics = http_body(worker.http_port, "/metrics")
        .await
        .unwrap_or_default();
    let counted = metrics
        .lines()
        .find(|line| line.starts_with("osbs_worker_retries_total{reason=\"registry\"}"))
        .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert_eq!(counted as usize, retries, "{metrics}");
    world.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_emptied_mid_build_loses_no_build() {
    let redis = PrivateRedis::start().await;
    let world = World::new(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("emptied-{}", world.tag);
    world
        .repo(
            &name,
            "main",
            &world.dockerfile(&name, "sleep 4 && echo kept > /kept.txt"),
        )
        .push(&["main"]);
    let id = build_of(&world, &name).await;
    world
        .wait_state(&id, &[BuildState::Running], BUILD_LIMIT)
        .await;
    redis.flush();
    assert!(world.store.get(&id).await.unwrap().is_none(), "emptied");

    let record = imported_or_explain(&world, &id).await;
    assert!(record.koji_build_id().is_some(), "{record:?}");
    let history = world.store.history(&id).await.unwrap();
    assert!(
        history
            .iter()
            .any(|entry| entry.reason.contains("Redis had lost the record")),
        "{history:#?}"
    );
    assert_eq!(koji_builds(&world, &name), 1, "imported exactly once");
    assert_eq!(dead_jobs_and_results(&world).await, (0, 0));
    world.assert_no_secrets();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_koji_hub_stopped_for_20_seconds_at_import_time_is_ridden_out() {
    // Quick retries of 2 s: the outage outlasts them, so the result goes through the retry
    // queues.
    let mut world = World::new(Options {
        koji_retry_secs: Some(2),
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("hubdown-{}", world.tag);
    world
        .repo(
            &name,
            "main",
            &world.dockerfile(&name, "sleep 2 && echo hub down > /hub.txt"),
        )
        .push(&["main"]);
    let id = build_of(&world, &name).await;
    // The release is reserved on the hub (CGInitBuild) before the build step, whose `sleep`
    // keeps the import seconds away: stopping the hub then cannot come too late. (Waiting for
    // `pushing` could: a small image is pushed faster than the record is polled.)
    let hub = &world.hub;
    wait_for(
        BUILD_LIMIT,
        "the worker to reserve the release (CGInitBuild)",
        || async move { (hub.call_count("CGInitBuild") >= 1).then_some(()) },
    )
    .await;
    world.hub.stop().await;
    let stopped = tokio::time::Instant::now();
    world
        .wait_state(&id, &[BuildState::Complete], BUILD_LIMIT)
        .await;
    let counted = |metrics: String| {
        metrics
            .lines()
            .find(|line| line.starts_with("osbs_koji_bridge_retries_total{reason=\"koji\"}"))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let port = bridge.http_port;
    wait_for(
        Duration::from_secs(60),
        "a result in a retry queue",
        || async move {
            let metrics = http_body(port, "/metrics").await.unwrap_or_default();
            (counted(metrics) >= 1.0).then_some(())
        },
    )
    .await;
    tokio::time::sleep_until(stopped + Duration::from_secs(20)).await;
    world
        .hub
        .start()
        .await
        .expect("the hub double starts again");

    let record = imported_or_explain(&world, &id).await;
    assert!(record.koji_build_id().is_some(), "{record:?}");
    assert_eq!(koji_builds(&world, &name), 1, "imported exactly once");
    assert_eq!(
        dead_jobs_and_results(&world).await,
        (0, 0),
        "no operator action needed"
    );
    world.assert_no_secrets();
}
