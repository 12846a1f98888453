//! Koji with the real binaries: a build Koji imported but would not tag is recorded with
//! Koji's build id, `osbs status` says so, and `osbs replay` only tags it once fixed;
//! without a hub, releases are unique per component-version across repositories.

use osbs_ops_tests::{DEST_TAG, Kind, Options, World, expect_exit};
use osbs_proto::v1::BuildState;
use std::time::Duration;

const BUILD_LIMIT: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_import_is_recorded_and_its_replay_only_tags() {
    let world = World::new(Options {
        koji_tag_mode: "task".into(),
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("untagged-{}", world.tag);
    world
        .repo(&name, "main", &world.dockerfile(&name, "echo x > /x.txt"))
        .push(&["main"]);
    let id = osbs_ops_tests::wait_for(Duration::from_secs(60), "the build recorded", || {
        let world = &world;
        let name = &name;
        async move {
            world
                .builds()
                .await
                .into_iter()
                .find(|record| &record.job.repo == name)
                .map(|record| record.id)
        }
    })
    .await;

    // The package is not on the destination tag's list: imported, then tagging refused.
    let record = world
        .wait_state(&id, &[BuildState::ImportFailed], BUILD_LIMIT)
        .await;
    let nvr = format!("{name}-1.0-1");
    let koji = world.hub.build(&nvr).expect("Koji holds the build");
    assert_eq!(koji.state, 1, "COMPLETE in Koji");
    assert_eq!(record.field("koji_build_id"), koji.id.to_string());
    assert_eq!(record.nvr(), nvr);
    assert!(
        record
            .error()
            .contains(&format!("Package {name} not in list")),
        "{}",
        record.error()
    );
    let output = world.osbs(None, &["status", &id]).await;
    let status = expect_exit(&output, 0, "status");
    assert!(
        status.contains(&format!(
            "{}  (in Koji as {nvr}, not tagged through target main-container-candidate",
            koji.id
        )),
        "{status}"
    );
    assert_eq!(world.hub.call_count("CGImport"), 1);

    // Fixed by an admin, then replayed: tagged, not imported again.
    assert!(world.hub.edit_tag(DEST_TAG, |tag| {
        tag.packages.insert(name.clone());
    }));
    let bus = world.bus().await;
    osbs_ops_tests::wait_for(Duration::from_secs(30), "the dead result", || {
        let bus = &bus;
        async move {
            (bus.queue_depth("osbs.results.dead").await.ok()?.messages == 1).then_some(())
        }
    })
    .await;
    let output = world.osbs(None, &["replay", &id]).await;
    let stdout = expect_exit(&output, 0, "replay");
    assert!(stdout.contains("replayed"), "{stdout}");
    let record = world
        .wait_state(&id, &[BuildState::Imported], BUILD_LIMIT)
        .await;
    assert_eq!(record.field("koji_tag"), DEST_TAG);
    assert_eq!(world.hub.call_count("CGImport"), 1, "no second import");
    assert_eq!(world.hub.tagged(DEST_TAG), vec![nvr]);
}

/// Without a hub, two repositories whose Dockerfiles share a component and version get
/// releases 1 and 2, and both bundles are written (a shared release 1 made the second
/// import fail: "a release must not be imported twice").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_hub_two_repositories_sharing_a_component_get_releases_1_and_2() {
    let world = World::new(Options {
        no_hub: true,
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let component = format!("shared-{}", world.tag);
    let mut nvrs = Vec::new();
    for repo in ["shared-a", "shared-b"] {
        let name = format!("{repo}-{}", world.tag);
        let dockerfile = format!(
            "FROM {}\nLABEL com.redhat.component=\"{component}\" name=\"{name}\" version=\"1.0\"\nRUN echo {repo} > /r.txt\n",
            osbs_ops_tests::BASE_IMAGE
        );
        world.repo(&name, "main", &dockerfile).push(&["main"]);
        let id = osbs_ops_tests::wait_for(Duration::from_secs(60), "the build recorded", || {
            let world = &world;
            let name = &name;
            async move {
                world
                    .builds()
                    .await
                    .into_iter()
                    .find(|record| &record.job.repo == name)
                    .map(|record| record.id)
            }
        })
        .await;
        let record = world
            .wait_state(
                &id,
                &[BuildState::Imported, BuildState::ImportFailed],
                BUILD_LIMIT,
            )
            .await;
        assert_eq!(
            record.state,
            BuildState::Imported,
            "{}\n{}",
            record.error(),
            world.logs()
        );
        assert_eq!(record.field("koji_import"), "bundle");
        nvrs.push(record.nvr().to_owned());
    }
    assert_eq!(
        nvrs,
        [format!("{component}-1.0-1"), format!("{component}-1.0-2")]
    );
    for nvr in &nvrs {
        let bundle = world.dir.path().join("bundles").join(nvr);
        assert!(
            bundle.join("metadata.json").is_file(),
            "{}",
            bundle.display()
        );
    }
    assert!(world.hub.builds().is_empty(), "no hub was asked");
}
