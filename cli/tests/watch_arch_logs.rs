//! `osbs watch-logs` of a multi-arch build against the real Redis (and RabbitMQ for the
//! build's state changes): the build's own log and every arch log the record lists,
//! followed together in the order written, to the build's end; `--arch` follows one.

use osbs_cli::logs::{follow_many, prefixed};
use osbs_cli::progress::Progress;
use osbs_common::bus::Bus;
use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::Store;
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
        target: Some(Target {
            name: "f41-container-candidate".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn move_to(store: &Store, bus: &Bus, id: &str, states: &[BuildState]) {
    for state in states {
        let changed = state::change(store, bus, StateChange::new(id, *state, "test", "test")).await;
        assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    }
}

/// Follows `id` (`only`: one arch) to its end; its lines as `osbs watch-logs` prints them.
async fn follow(store: &Store, id: &str, only: Option<&str>) -> Vec<String> {
    let mut lines = Vec::new();
    let followed = tokio::time::timeout(
        Duration::from_secs(30),
        follow_many(
            store,
            id,
            only,
            Duration::from_secs(60),
            &Progress::new(false),
            &mut |arch, line| lines.push(prefixed(arch, line)),
        ),
    )
    .await
    .expect("the follower stops once the build and its logs ended")
    .expect("followed to the end");
    assert!(followed.record.state.is_final());
    lines
}

#[tokio::test]
async fn every_arch_log_is_followed_with_the_builds_own() {
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    let id = "b-arches";
    store
        .create(&job(id), "idem-b-arches", 1, "test", &[])
        .await
        .unwrap();

    // Following starts before anything is written, and before the arches are known.
    let build = async {
        move_to(&store, &bus, id, &[BuildState::Running]).await;
        store
            .append_log(id, &["cloning".into(), "arches: x86_64 aarch64".into()])
            .await
            .unwrap();
        store
            .set_fields(id, &[("arches", "x86_64 aarch64".into())])
            .await
            .unwrap();
        // The first arch line a millisecond later at least: lines of one millisecond in two
        // streams have no order between them.
        tokio::time::sleep(Duration::from_millis(5)).await;
        for step in 1..=3 {
            for arch in ["x86_64", "aarch64"] {
                store
                    .append_log(
                        &osbs_common::store::log::stream(id, arch),
                        &[format!("step {step}")],
                    )
                    .await
                    .unwrap();
                // Distinct times: the follower orders lines by when they were written.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        store.end_log(id, BuildState::Running).await.unwrap();
        for arch in ["x86_64", "aarch64"] {
            store
                .end_log(
                    &osbs_common::store::log::stream(id, arch),
                    BuildState::Complete,
                )
                .await
                .unwrap();
        }
        move_to(
            &store,
            &bus,
            id,
            &[BuildState::Pushing, BuildState::Complete],
        )
        .await;
    };
    let (lines, ()) = tokio::join!(follow(&store, id, None), build);
    assert_eq!(
        lines,
        vec![
            "cloning",
            "arches: x86_64 aarch64",
            "x86_64: step 1",
            "aarch64: step 1",
            "x86_64: step 2",
            "aarch64: step 2",
            "x86_64: step 3",
            "aarch64: step 3",
        ]
    );

    // Over: the same again at once, and `--arch aarch64` follows that arch alone.
    assert_eq!(follow(&store, id, None).await, lines);
    let one = follow(&store, id, Some("aarch64")).await;
    assert_eq!(
        one,
        vec!["aarch64: step 1", "aarch64: step 2", "aarch64: step 3"]
    );
    bus.close().await;
}
