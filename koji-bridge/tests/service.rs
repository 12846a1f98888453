//! The bridge service against the real RabbitMQ, Redis and registry, and the Koji hub
//! double: imports recorded and published, exactly once across duplicates and two bridges,
//! recovery from a lost answer and an offline hub, refusals recorded and dead-lettered,
//! refunds, scratch builds, bundles, an outcome recorded but not announced, a refused tagging
//! recorded with the Koji build and a replay that only tags.

mod support;

use lapin::options::BasicAckOptions;
use osbs_common::bus::{self, Bus};
use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::Store;
use osbs_koji_hub::RunningHub;
use osbs_proto::StateEvent;
use osbs_proto::names;
use osbs_proto::v1::{BuildResult, BuildState, KojiReservation};
use osbs_testkit::TestEnv;
use std::time::Duration;
use support::{
    Bridge, PACKAGE, TARGET, bridge_config, eventually, hub, koji_config, publish, record_complete,
    reserve, result, temp_dir,
};

const WAIT: Duration = Duration::from_secs(60);

/// A queue receiving every state event.
async fn state_changes(bus: &Bus) -> (lapin::Channel, String) {
    let queue = format!("test.state-events.{}", uuid::Uuid::new_v4().simple());
    bus.listen_to_state_events(&queue).await.unwrap();
    (bus.channel().await.unwrap(), queue)
}

/// Whether an event is one the bridge announces (the tests' own setup announces others).
fn from_the_bridge(event: &StateEvent) -> bool {
    matches!(
        event.new_state,
        BuildState::Imported | BuildState::ImportFailed
    )
}

/// The next state event the bridge announced.
async fn next_change(bus: &Bus, channel: &lapin::Channel, queue: &str) -> StateEvent {
    for _ in 0..600 {
        if let Some(message) = bus.get_one(channel, queue).await.unwrap() {
            message
                .delivery
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
            let event = StateEvent::from_json(&message.delivery.data).unwrap();
            if from_the_bridge(&event) {
                return event;
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no state change published");
}

async fn state_of(store: &Store, id: &str) -> BuildState {
    store.require(id).await.unwrap().state
}

async fn wait_state(store: &Store, id: &str, state: BuildState) {
    eventually(&format!("build {id} {state}"), WAIT, || async {
        state_of(store, id).await == state
    })
    .await;
}

/// The results queue holds nothing, ready or unacked: every copy taken was also acked
/// (AMQP's own count would miss a copy a bridge still holds).
async fn results_settled(env: &TestEnv) -> bool {
    let vhost = env.vhost.clone();
    tokio::task::spawn_blocking(move || {
        osbs_testkit::queue_counts(None, &vhost, names::QUEUE_RESULTS).settled()
    })
    .await
    .unwrap()
}

/// `koji` serving `/metrics` on a port of its own, and that port.
fn with_metrics(
    mut koji: osbs_koji_bridge::config::KojiSection,
) -> (osbs_koji_bridge::config::KojiSection, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    koji.http_listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    (koji, port)
}

/// The bridge's `retries` counter for `reason` (0 before it serves).
async fn retries(port: u16, reason: &str) -> u64 {
    let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await else {
        return 0;
    };
    let series = format!("osbs_koji_bridge_retries_total{{reason=\"{reason}\"}}");
    response
        .text()
        .await
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(&series)?.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Imports `result` through a running bridge, the record and reservation set up as the
/// dispatcher and worker do.
async fn setup(
    hub: &RunningHub,
    id: &str,
    release: &str,
    artifacts: &std::path::Path,
) -> BuildResult {
    let mut result = result(id, (PACKAGE, "1.0", release), artifacts).await;
    result.koji_reservation = Some(reserve(hub, (PACKAGE, "1.0", release)).await);
    result
}

#[tokio::test]
async fn a_complete_build_is_imported_tagged_recorded_and_loadable() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let (channel, changes) = state_changes(&bus).await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));

    let result = setup(&hub, "b-import-1", "1", &artifacts).await;
    record_complete(&store, &bus, &result).await;
    publish(&bus, &result).await;

    wait_state(&store, "b-import-1", BuildState::Imported).await;
    let record = store.require("b-import-1").await.unwrap();
    let koji_build_id = result.koji_reservation.as_ref().unwrap().build_id;
    assert_eq!(record.field("koji_build_id"), koji_build_id.to_string());
    assert_eq!(record.field("koji_import"), "hub");
    assert_eq!(record.field("koji_tag"), TARGET);
    assert_eq!(
        record.digest(),
        "sha256:recorded-digest",
        "the worker's fields are kept"
    );

    let change = next_change(&bus, &channel, &changes).await;
    assert_eq!(change.build_id, "b-import-1");
    assert_eq!(change.new_state, BuildState::Imported);
    assert_eq!(change.old_state, BuildState::Complete);
    assert_eq!(change.koji_build_id, Some(koji_build_id));

    let nvr = format!("{PACKAGE}-1.0-1");
    let builds = hub.builds();
    assert_eq!(builds.len(), 1);
    let build = &builds[0];
    assert_eq!(
        (build.id, build.state, build.nvr()),
        (koji_build_id, 1, nvr.clone())
    );
    assert_eq!(hub.tagged(TARGET), vec![nvr.clone()]);
    assert_eq!(build.logs.len(), 1);
    let metadata: serde_json::Value =
        serde_json::from_str(build.metadata.as_deref().unwrap()).unwrap();
    assert_eq!(metadata["build"]["extra"]["osbs_build_id"], "b-import-1");
    let archive = &build.archives[0];
    assert_eq!(archive.type_name, "tar");
    assert_eq!(archive.btype, "image");
    assert_eq!(archive.components, 1);
    let bytes = std::fs::read(&archive.path).unwrap();
    assert_eq!(archive.size, bytes.len() as u64);
    assert_eq!(
        archive.checksum,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes))
    );
    assert_eq!(
        metadata["output"][1]["extra"]["docker"]["id"],
        serde_json::json!(support::pushed_image().await.image_id)
    );

    // The archive is what `docker load` takes: the image comes back under its tag.
    let tag = format!("{}:b-import-1", support::pushed_image().await.repository);
    let loaded = osbs_testkit::run(&["docker", "load", "-i", archive.path.to_str().unwrap()]);
    assert!(loaded.contains(&tag), "{loaded}");
    let id = osbs_testkit::run(&["docker", "image", "inspect", "--format", "{{.Id}}", &tag]);
    assert_eq!(id.trim(), support::pushed_image().await.image_id);
    osbs_testkit::run(&["docker", "rmi", &tag]);

    bridge.stop().await;
}

#[tokio::test]
async fn duplicates_and_two_bridges_give_one_koji_build() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let (channel, changes) = state_changes(&bus).await;
    let first = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));
    let second = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));

    let result = setup(&hub, "b-dup-1", "1", &artifacts).await;
    record_complete(&store, &bus, &result).await;
    for _ in 0..3 {
        publish(&bus, &result).await;
    }
    wait_state(&store, "b-dup-1", BuildState::Imported).await;
    // Copies taken while the import ran wait for its lock, then find it done: every copy is
    // acked, not only taken.
    eventually("every copy handled", WAIT, || results_settled(&env)).await;
    // Another copy much later (a replay) is acknowledged without touching Koji.
    let calls = hub.calls().len();
    publish(&bus, &result).await;
    eventually("the replay handled", WAIT, || results_settled(&env)).await;

    assert_eq!(hub.builds().len(), 1, "one Koji build");
    assert_eq!(hub.call_count("CGImport"), 1, "imported once");
    assert_eq!(hub.calls().len(), calls, "the replay asked nothing of Koji");
    assert_eq!(
        bus.queue_depth(&names::dead_queue(names::QUEUE_RESULTS))
            .await
            .unwrap()
            .messages,
        0,
        "no error storm"
    );
    let change = next_change(&bus, &channel, &changes).await;
    assert_eq!(change.new_state, BuildState::Imported);
    // Every copy was acked after its state change (if any) was confirmed: what is not in the
    // queue now was never published.
    let mut more = Vec::new();
    while let Some(message) = bus.get_one(&channel, &changes).await.unwrap() {
        more.push(StateEvent::from_json(&message.delivery.data).unwrap());
    }
    assert!(
        !more.iter().any(from_the_bridge),
        "one state change: {more:?}"
    );
    first.stop().await;
    second.stop().await;
}

#[tokio::test]
async fn a_lost_cgimport_answer_an_offline_hub_and_a_cut_upload_are_recovered() {
    let env = TestEnv::new();
    let mut hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let (koji, metrics) = with_metrics(koji_config(Some(&hub), &artifacts));
    let bridge = Bridge::start(bridge_config(&env, koji, &artifacts));

    // CGImport happens, but its answer never reaches the bridge.
    let lost = setup(&hub, "b-lost-1", "1", &artifacts).await;
    record_complete(&store, &bus, &lost).await;
    hub.lose_next_response("CGImport");
    publish(&bus, &lost).await;
    wait_state(&store, "b-lost-1", BuildState::Imported).await;
    assert_eq!(hub.call_count("CGImport"), 1);
    assert_eq!(hub.builds().iter().filter(|b| b.state == 1).count(), 1);

    // The hub is offline, then down mid-upload: the import waits and resumes.
    let offline = setup(&hub, "b-offline-1", "2", &artifacts).await;
    record_complete(&store, &bus, &offline).await;
    hub.set_offline(true);
    hub.drop_upload_at(20_000);
    let retried = retries(metrics, "koji import").await;
    publish(&bus, &offline).await;
    eventually(
        "the import retried against the offline hub",
        WAIT,
        || async { retries(metrics, "koji import").await >= retried + 2 },
    )
    .await;
    assert_eq!(state_of(&store, "b-offline-1").await, BuildState::Complete);
    hub.set_offline(false);
    eventually("the upload cut", WAIT, || async {
        hub.uploaded_files().iter().any(|(_, size)| *size == 20_000)
    })
    .await;
    hub.restart().await.unwrap();
    wait_state(&store, "b-offline-1", BuildState::Imported).await;
    assert_eq!(hub.builds().iter().filter(|b| b.state == 1).count(), 2);
    assert_eq!(
        bus.queue_depth(&names::dead_queue(names::QUEUE_RESULTS))
            .await
            .unwrap()
            .messages,
        0
    );
    bridge.stop().await;
}

#[tokio::test]
async fn koji_refusals_are_recorded_and_dead_lettered_and_the_bridge_goes_on() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let (channel, changes) = state_changes(&bus).await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));

    // The hub refuses: the reservation's token is not this one.
    let mut refused = setup(&hub, "b-refused-1", "1", &artifacts).await;
    let build_id = refused.koji_reservation.as_ref().unwrap().build_id;
    refused.koji_reservation = Some(KojiReservation {
        build_id,
        token: "not-the-token".into(),
    });
    record_complete(&store, &bus, &refused).await;
    publish(&bus, &refused).await;
    wait_state(&store, "b-refused-1", BuildState::ImportFailed).await;
    let fault = format!("Fault 1000: Token doesn't match build ID {build_id}");
    let record = store.require("b-refused-1").await.unwrap();
    assert!(record.error().contains(&fault), "{}", record.error());
    let change = next_change(&bus, &channel, &changes).await;
    assert_eq!(change.new_state, BuildState::ImportFailed);
    assert!(change.reason.contains(&fault), "{}", change.reason);
    let dead_channel = bus.channel().await.unwrap();
    let mut dead = None;
    for _ in 0..100 {
        dead = bus
            .get_one(&dead_channel, &names::dead_queue(names::QUEUE_RESULTS))
            .await
            .unwrap();
        if dead.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead = dead.expect("the refused result is dead-lettered");
    let reason = bus::header_string(&dead.delivery.properties, names::HEADER_DEAD_REASON).unwrap();
    assert!(reason.contains(&fault), "{reason}");

    // Refused before anything is uploaded: a '-' in the release.
    let dash = result("b-dash-1", (PACKAGE, "1.0", "2-1"), &artifacts).await;
    record_complete(&store, &bus, &dash).await;
    publish(&bus, &dash).await;
    wait_state(&store, "b-dash-1", BuildState::ImportFailed).await;
    let record = store.require("b-dash-1").await.unwrap();
    assert!(
        record.error().contains("contains '-'"),
        "{}",
        record.error()
    );

    // And the bridge goes on: the next good build imports.
    let good = setup(&hub, "b-good-1", "3", &artifacts).await;
    record_complete(&store, &bus, &good).await;
    publish(&bus, &good).await;
    wait_state(&store, "b-good-1", BuildState::Imported).await;
    assert_eq!(hub.builds().iter().filter(|b| b.state == 1).count(), 1);
    bridge.stop().await;
}

#[tokio::test]
async fn refunds_scratch_builds_and_other_messages() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));

    let mut failed = setup(&hub, "b-failed-1", "1", &artifacts).await;
    failed.state = BuildState::Failed as i32;
    failed.error = "Dockerfile has no FROM".into();
    let mut canceled = setup(&hub, "b-canceled-1", "2", &artifacts).await;
    canceled.state = BuildState::Canceled as i32;
    let mut scratch = result("b-scratch-1", (PACKAGE, "1.0", "3"), &artifacts).await;
    scratch
        .job
        .as_mut()
        .unwrap()
        .options
        .as_mut()
        .unwrap()
        .scratch = true;
    record_complete(&store, &bus, &scratch).await;
    for result in [&failed, &canceled, &scratch] {
        publish(&bus, result).await;
    }
    // Something that is not a BuildResult on the results queue is left alone.
    bus.publish(bus::Outgoing {
        exchange: names::EXCHANGE_INTERNAL,
        routing_key: "build.complete",
        body: b"{}",
        properties: bus::protobuf_properties("NotABuildResult"),
        mandatory: true,
    })
    .await
    .unwrap();
    // Garbage claiming to be a BuildResult is dead-lettered.
    bus.publish(bus::Outgoing {
        exchange: names::EXCHANGE_INTERNAL,
        routing_key: "build.failed",
        body: b"\xff\xff\xff",
        properties: bus::protobuf_properties(names::TYPE_BUILD_RESULT),
        mandatory: true,
    })
    .await
    .unwrap();

    let state_in_koji = |nvr: String| {
        let hub = &hub;
        async move { hub.build(&nvr).map(|build| build.state) }
    };
    eventually("refunds", WAIT, || async {
        state_in_koji(format!("{PACKAGE}-1.0-1")).await == Some(3)
            && state_in_koji(format!("{PACKAGE}-1.0-2")).await == Some(4)
    })
    .await;
    eventually("the scratch build noted", WAIT, || async {
        let record = store.require("b-scratch-1").await.unwrap();
        !record.field("koji_note").is_empty()
    })
    .await;
    assert_eq!(state_of(&store, "b-scratch-1").await, BuildState::Complete);
    assert!(
        hub.build(&format!("{PACKAGE}-1.0-3")).is_none(),
        "scratch builds never reach Koji"
    );
    eventually("the garbage dead-lettered", WAIT, || async {
        bus.queue_depth(&names::dead_queue(names::QUEUE_RESULTS))
            .await
            .unwrap()
            .messages
            == 1
            && bus
                .queue_depth(names::QUEUE_RESULTS)
                .await
                .unwrap()
                .messages
                == 0
    })
    .await;

    // A refund delivered again changes nothing and is no error.
    publish(&bus, &failed).await;
    eventually("the copy handled", WAIT, || results_settled(&env)).await;
    assert_eq!(
        bus.queue_depth(&names::dead_queue(names::QUEUE_RESULTS))
            .await
            .unwrap()
            .messages,
        1
    );
    bridge.stop().await;
}

#[tokio::test]
async fn without_a_hub_the_bridge_writes_bundles() {
    let env = TestEnv::new();
    let (_dir, artifacts) = temp_dir();
    let (_bundles, bundle_dir) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(None, &bundle_dir),
        &artifacts,
    ));

    let result = result("b-bundle-1", (PACKAGE, "1.0", "1"), &artifacts).await;
    record_complete(&store, &bus, &result).await;
    publish(&bus, &result).await;
    publish(&bus, &result).await;
    wait_state(&store, "b-bundle-1", BuildState::Imported).await;
    let record = store.require("b-bundle-1").await.unwrap();
    assert_eq!(record.field("koji_import"), "bundle");
    let dir = bundle_dir.join(format!("{PACKAGE}-1.0-1"));
    assert_eq!(record.field("koji_bundle"), dir.display().to_string());
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    for output in metadata["output"].as_array().unwrap() {
        let file = std::fs::read(dir.join(output["filename"].as_str().unwrap())).unwrap();
        assert_eq!(output["filesize"], serde_json::json!(file.len()));
        assert_eq!(
            output["checksum"],
            serde_json::json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&file)))
        );
    }
    assert_eq!(metadata["output"].as_array().unwrap().len(), 2);
    eventually("both copies handled", WAIT, || async {
        bus.queue_depth(names::QUEUE_RESULTS)
            .await
            .unwrap()
            .messages
            == 0
    })
    .await;
    let entries: Vec<_> = std::fs::read_dir(&bundle_dir).unwrap().collect();
    assert_eq!(entries.len(), 1, "one bundle, no partial left");
    bridge.stop().await;
}

#[tokio::test]
async fn a_result_ahead_of_its_record_is_recorded_once_the_record_catches_up() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let (koji, metrics) = with_metrics(koji_config(Some(&hub), &artifacts));
    let bridge = Bridge::start(bridge_config(&env, koji, &artifacts));

    let result = setup(&hub, "b-early-1", "1", &artifacts).await;
    // The record is still `pushing`: the worker's last transition is on its way.
    let job = result.job.clone().unwrap();
    store
        .create(&job, "idem-early", 1, "test", &[])
        .await
        .unwrap();
    for state in [BuildState::Running, BuildState::Pushing] {
        let change = StateChange::new("b-early-1", state, "test", "test");
        let changed = state::change(&store, &bus, change).await;
        assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    }
    publish(&bus, &result).await;
    eventually("the Koji import", WAIT, || async {
        hub.builds().iter().any(|build| build.state == 1)
    })
    .await;
    eventually("the record refused to move from pushing", WAIT, || async {
        retries(metrics, "record behind").await >= 1
    })
    .await;
    assert_eq!(
        state_of(&store, "b-early-1").await,
        BuildState::Pushing,
        "not recorded over"
    );
    let change = StateChange::new("b-early-1", BuildState::Complete, "test", "test");
    let changed = state::change(&store, &bus, change).await;
    assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    wait_state(&store, "b-early-1", BuildState::Imported).await;
    assert_eq!(
        hub.call_count("CGImport"),
        1,
        "the later attempt only records"
    );
    bridge.stop().await;
}

#[tokio::test]
async fn an_outcome_recorded_but_not_announced_is_announced_on_redelivery() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let (channel, changes) = state_changes(&bus).await;
    let result = setup(&hub, "b-unannounced-1", "1", &artifacts).await;
    record_complete(&store, &bus, &result).await;
    // What a bridge that died after recording `imported` and before its announcement was
    // confirmed leaves behind: the record, the history entry, an unpublished marker. (Its
    // announcement went where nobody listens.)
    let mut elsewhere = env.amqp.clone();
    elsewhere.topic_prefix = "nobody.listens".into();
    let lost = Bus::connect(&elsewhere, "crashed-bridge").await.unwrap();
    let reason = "imported into Koji as osbs-test-image-1.0-1 (build 77)";
    let change = StateChange::new("b-unannounced-1", BuildState::Imported, reason, "crashed")
        .with_fields(vec![("koji_build_id", "77".into())]);
    let changed = state::change(&store, &lost, change).await;
    assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    let marker = osbs_common::store::ImportMarker {
        kind: "hub".into(),
        koji_build_id: 77,
        nvr: format!("{PACKAGE}-1.0-1"),
        tag: TARGET.into(),
        dir: String::new(),
        published: false,
    };
    store.mark_import("b-unannounced-1", &marker).await.unwrap();

    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));
    publish(&bus, &result).await;
    let change = next_change(&bus, &channel, &changes).await;
    assert_eq!(
        (change.old_state, change.new_state, change.reason.as_str()),
        (BuildState::Complete, BuildState::Imported, reason),
        "the recorded change, as recorded"
    );
    assert_eq!(change.koji_build_id, Some(77));
    eventually("the marker published", WAIT, || async {
        store
            .import_marker("b-unannounced-1")
            .await
            .unwrap()
            .is_some_and(|marker| marker.published)
    })
    .await;
    assert_eq!(hub.call_count("CGImport"), 0, "Koji is not asked again");
    assert_eq!(
        store.history("b-unannounced-1").await.unwrap().len(),
        5,
        "nothing recorded twice"
    );
    bridge.stop().await;
}

/// Takes the one dead-lettered result of `build_id` (waiting for it).
async fn take_dead_result(bus: &Bus, build_id: &str) -> BuildResult {
    use osbs_proto::Message;
    let channel = bus.channel().await.unwrap();
    let dead_queue = names::dead_queue(names::QUEUE_RESULTS);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(message) = bus.get_one(&channel, &dead_queue).await.unwrap() {
            message.ack(BasicAckOptions::default()).await.unwrap();
            let result = BuildResult::decode(message.delivery.data.as_slice()).unwrap();
            if result.build_id == build_id {
                return result;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{build_id} never reached the dead queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// CGImport succeeds but tagging is refused (the tag needs a permission the bridge's user
/// lacks; a target Koji does not have): the record says what Koji holds — its build id and
/// the NVR — and the replay of the dead-lettered result, once the cause is fixed, only tags.
#[tokio::test]
async fn a_refused_tagging_records_the_koji_build_and_a_replay_only_tags() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));
    assert!(hub.edit_tag(TARGET, |tag| tag.perm = Some("release-eng".into())));

    let result = setup(&hub, "b-untagged-1", "1", &artifacts).await;
    let koji_build_id = result.koji_reservation.as_ref().unwrap().build_id;
    let nvr = format!("{PACKAGE}-1.0-1");
    record_complete(&store, &bus, &result).await;
    publish(&bus, &result).await;
    wait_state(&store, "b-untagged-1", BuildState::ImportFailed).await;
    let record = store.require("b-untagged-1").await.unwrap();
    assert_eq!(record.field("koji_build_id"), koji_build_id.to_string());
    assert_eq!(record.field("koji_import"), "hub");
    assert_eq!(record.nvr(), nvr);
    assert!(
        record.error().starts_with(&format!(
            "imported into Koji as {nvr} (build {koji_build_id}) but not tagged: "
        )) && record
            .error()
            .contains("tag requires release-eng permission"),
        "{}",
        record.error()
    );
    assert_eq!(hub.build(&nvr).unwrap().state, 1, "COMPLETE in Koji");
    assert!(hub.tagged(TARGET).is_empty());
    assert_eq!(hub.call_count("CGImport"), 1);

    // Fixed, then replayed (the dead-lettered result republished, as `osbs replay` does).
    let dead = take_dead_result(&bus, "b-untagged-1").await;
    assert!(hub.edit_tag(TARGET, |tag| tag.perm = None));
    publish(&bus, &dead).await;
    wait_state(&store, "b-untagged-1", BuildState::Imported).await;
    assert_eq!(hub.call_count("CGImport"), 1, "no second import");
    assert_eq!(hub.tagged(TARGET), vec![nvr.clone()]);
    let record = store.require("b-untagged-1").await.unwrap();
    assert_eq!(record.field("koji_tag"), TARGET);
    assert_eq!(record.error(), "");

    // A target Koji does not have: imported, not tagged, and the record says so.
    let mut lost = setup(&hub, "b-untagged-2", "2", &artifacts).await;
    lost.job.as_mut().unwrap().target.as_mut().unwrap().name = "no-such-candidate".into();
    record_complete(&store, &bus, &lost).await;
    publish(&bus, &lost).await;
    wait_state(&store, "b-untagged-2", BuildState::ImportFailed).await;
    let record = store.require("b-untagged-2").await.unwrap();
    let id = lost.koji_reservation.as_ref().unwrap().build_id;
    assert_eq!(record.field("koji_build_id"), id.to_string());
    assert!(
        record
            .error()
            .contains("Koji has no build target no-such-candidate"),
        "{}",
        record.error()
    );
    assert_eq!(hub.call_count("CGImport"), 2);
    bridge.stop().await;
}

#[tokio::test]
async fn a_record_redis_lost_is_re_created_from_the_result_and_imported_once() {
    let env = TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));
    // No record at all: what a Redis that restarted empty leaves of a finished build.
    let result = setup(&hub, "b-lost-1", "1", &artifacts).await;
    publish(&bus, &result).await;
    eventually("the record re-created and imported", WAIT, || async {
        matches!(
            store.get("b-lost-1").await,
            Ok(Some(record)) if record.state == BuildState::Imported
        )
    })
    .await;
    let record = store.require("b-lost-1").await.unwrap();
    assert_eq!(record.job.repo, result.job.as_ref().unwrap().repo);
    assert_eq!(record.nvr(), format!("{PACKAGE}-1.0-1"));
    assert!(record.koji_build_id().is_some());
    let history = store.history("b-lost-1").await.unwrap();
    assert_eq!(history[0].to, "complete", "{history:#?}");
    assert_eq!(
        history[0].reason,
        osbs_koji_bridge::service::RESTORED,
        "{history:#?}"
    );
    assert_eq!(history.last().unwrap().to, "imported");
    assert_eq!(hub.call_count("CGImport"), 1);
    bridge.stop().await;
}
