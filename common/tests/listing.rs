//! The listing index on the real Redis: a page of builds newest first, every filter and their
//! intersection, state changes moving a build between state sets, and records made before
//! the index picked up by `index_listing`.

use osbs_common::state::{self, StateChange};
use osbs_common::store::{ListQuery, Store};
use osbs_common::{Bus, Changed};
use osbs_proto::v1::{BuildJob, BuildState, Target};
use osbs_testkit::TestEnv;

fn job(id: &str, repo: &str, branch: &str, submitter: &str) -> BuildJob {
    BuildJob {
        build_id: id.into(),
        repo: repo.into(),
        namespace: "container".into(),
        branch: branch.into(),
        submitter: submitter.into(),
        target: Some(Target {
            name: format!("{branch}-container-candidate"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ids(page: &osbs_common::store::ListPage) -> Vec<&str> {
    page.records
        .iter()
        .map(|record| record.id.as_str())
        .collect()
}

#[tokio::test]
async fn pages_of_builds_filtered_through_the_index() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    let builds = [
        ("b1", "httpd", "f41", "jdoe"),
        ("b2", "httpd", "f42", "ann"),
        ("b3", "nginx", "f41", "jdoe"),
        ("b4", "httpd", "f41", "ann"),
    ];
    for (at, (id, repo, branch, submitter)) in builds.into_iter().enumerate() {
        let created = store
            .create(
                &job(id, repo, branch, submitter),
                id,
                1_000 + at as i64,
                "test",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(created.build_id(), id);
    }
    let page = |query: ListQuery| {
        let store = store.clone();
        let limit = if query.limit == 0 { 10 } else { query.limit };
        async move {
            store
                .list_page(&ListQuery { limit, ..query })
                .await
                .unwrap()
        }
    };
    let all = page(ListQuery::default()).await;
    assert_eq!((all.total, ids(&all)), (4, vec!["b4", "b3", "b2", "b1"]));
    let second = page(ListQuery {
        offset: 1,
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!((second.total, ids(&second)), (4, vec!["b3", "b2"]));
    let httpd_f41 = page(ListQuery {
        repo: Some("httpd".into()),
        branch: Some("f41".into()),
        ..Default::default()
    })
    .await;
    assert_eq!((httpd_f41.total, ids(&httpd_f41)), (2, vec!["b4", "b1"]));
    let by_target = page(ListQuery {
        target: Some("f42-container-candidate".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&by_target), ["b2"]);
    let ann = page(ListQuery {
        submitter: Some("ann".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&ann), ["b4", "b2"]);

    // A state change moves the build from one state set to the other.
    let change = StateChange::new("b1", BuildState::Running, "started", "test");
    assert!(matches!(
        state::change(&store, &bus, change).await.unwrap(),
        Changed::Done(_)
    ));
    let running = page(ListQuery {
        state: Some(BuildState::Running),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&running), ["b1"]);
    let queued = page(ListQuery {
        state: Some(BuildState::Queued),
        ..Default::default()
    })
    .await;
    assert_eq!((queued.total, ids(&queued)), (3, vec!["b4", "b3", "b2"]));
    let none = page(ListQuery {
        repo: Some("nope".into()),
        ..Default::default()
    })
    .await;
    assert_eq!((none.total, none.records.len()), (0, 0));

    // A record Redis lost, brought back by a worker (`recreate`), joins the sets too.
    let lost = job("b5", "httpd", "f42", "ann");
    assert!(
        store
            .recreate(&lost, BuildState::Failed, "record lost", "test", 9_000, &[])
            .await
            .unwrap()
    );
    let failed = page(ListQuery {
        state: Some(BuildState::Failed),
        repo: Some("httpd".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&failed), ["b5"]);

    // Records from before the index: only in `<prefix>:builds`. Indexing adds them, once.
    let prefix = &env.redis.key_prefix;
    let by_keys = osbs_testkit::run(&[
        "redis-cli",
        "--scan",
        "--pattern",
        &format!("{prefix}:builds:by:*"),
    ]);
    let mut command = vec!["redis-cli", "DEL"];
    command.extend(by_keys.lines());
    osbs_testkit::run(&command);
    assert_eq!(
        page(ListQuery {
            repo: Some("httpd".into()),
            ..Default::default()
        })
        .await
        .total,
        0
    );
    assert_eq!(store.index_listing().await.unwrap(), 5);
    assert_eq!(store.index_listing().await.unwrap(), 0, "done once");
    let httpd = page(ListQuery {
        repo: Some("httpd".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&httpd), ["b5", "b4", "b2", "b1"]);
    let running = page(ListQuery {
        state: Some(BuildState::Running),
        ..Default::default()
    })
    .await;
    assert_eq!(ids(&running), ["b1"]);
    bus.close().await;
}
