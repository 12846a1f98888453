//! Releases as Koji and atomic-reactor derive them, end to end on the real services: after an
//! isolated build `1.0-18.1` the next normal build is `1.0-19` (not the hub's `19.1`); a
//! build whose Koji target is missing is refused before any release is reserved; without a
//! hub, two repositories sharing a component and version get releases 1 and 2 (and a third
//! that sets release 2 by hand is refused before it builds).

mod support;

use osbs_koji::{AuthMethod, KojiAuth};
use osbs_koji_hub::{HubConfig, KojiHub, RunningHub, TargetSpec, UserSpec};
use osbs_proto::v1::{BuildJob, BuildOptions, BuildState};
use support::*;

/// The target every harness job names.
const TARGET: &str = "main-container-candidate";

async fn hub_with(targets: Vec<TargetSpec>, password: &str) -> RunningHub {
    KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", Some(password))],
        content_generators: vec![("osbs".into(), vec!["osbs".into()])],
        targets,
        ..HubConfig::default()
    })
    .await
    .unwrap()
}

async fn worker_on(harness: &Harness, hub: &RunningHub, password: &str) -> RunningWorker {
    let hub_url = hub.url.clone();
    let password = password.to_owned();
    harness
        .start_worker(|config| {
            config.koji = osbs_koji::KojiConfig {
                hub_url,
                auth: KojiAuth {
                    method: AuthMethod::Password,
                    user: "osbs".into(),
                    password: osbs_common::config::Secret::new(password),
                    ..KojiAuth::default()
                },
                ..osbs_koji::KojiConfig::default()
            };
        })
        .await
}

fn with_options(mut job: BuildJob, isolated: bool, release: &str) -> BuildJob {
    job.options = Some(BuildOptions {
        isolated,
        release: release.into(),
        ..BuildOptions::default()
    });
    job
}

async fn build(harness: &Harness, job: &BuildJob) -> osbs_common::store::BuildRecord {
    harness.submit(job).await;
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{}",
        record.fields,
        harness.log(&job.build_id)
    );
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_isolated_build_the_next_normal_build_drops_its_suffix() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let password = format!("pw-{}", harness.tag);
    let hub = hub_with(vec![TargetSpec::named(TARGET, &[])], &password).await;
    let worker = worker_on(&harness, &hub, &password).await;
    let name = format!("isolated-{}", harness.tag);
    let dockerfile =
        format!("FROM {base}\nLABEL com.redhat.component={name} name={name} version=1.0\n");
    let (url, commit) = harness.repo("isolated", &[("Dockerfile", dockerfile.as_bytes())]);

    let normal = with_options(harness.job("isolated", &url, &commit), false, "18");
    assert_eq!(
        build(&harness, &normal).await.nvr(),
        format!("{name}-1.0-18")
    );
    let isolated = with_options(harness.job("isolated", &url, &commit), true, "18.1");
    assert_eq!(
        build(&harness, &isolated).await.nvr(),
        format!("{name}-1.0-18.1")
    );
    // Both imported (COMPLETE), as the bridge leaves them: the hub now answers 19.1.
    for release in ["18", "18.1"] {
        assert!(hub.set_build_state(&format!("{name}-1.0-{release}"), 1));
    }
    let next = harness.job("isolated", &url, &commit);
    let record = build(&harness, &next).await;
    assert_eq!(record.nvr(), format!("{name}-1.0-19"));
    let log = harness.log(&next.build_id);
    assert!(
        log.contains("Koji's next release for") && log.contains("is 19.1; building 19"),
        "{log}"
    );
    let reserved = hub.build(record.nvr()).expect("1.0-19 is reserved in Koji");
    assert_eq!(reserved.state, 0, "BUILDING until the bridge imports it");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_target_is_refused_before_any_release_is_reserved() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let password = format!("pw-{}", harness.tag);
    let hub = hub_with(Vec::new(), &password).await;
    let worker = worker_on(&harness, &hub, &password).await;
    let name = format!("notarget-{}", harness.tag);
    let dockerfile =
        format!("FROM {base}\nLABEL com.redhat.component={name} name={name} version=1.0\n");
    let (url, commit) = harness.repo("notarget", &[("Dockerfile", dockerfile.as_bytes())]);
    let job = harness.job("notarget", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let results = harness.results().await;
    assert_failed_with(
        &record,
        &harness.log(&job.build_id),
        &results[0],
        &format!("Koji has no build target {TARGET}"),
    );
    assert_eq!(record.nvr(), "", "no NVR recorded");
    assert!(results[0].koji_reservation.is_none());
    assert_eq!(hub.call_count("getBuildTarget"), 1);
    assert_eq!(hub.call_count("getNextRelease"), 0, "no release derived");
    assert_eq!(hub.call_count("CGInitBuild"), 0, "no NVR reserved");
    assert!(hub.builds().is_empty());
    assert!(
        harness
            .store
            .held_releases(&name, "1.0")
            .await
            .unwrap()
            .is_empty()
    );
    let log = harness.log(&job.build_id);
    assert!(!log.contains("step source"), "nothing fetched: {log}");
    assert!(!log.contains("step build"), "nothing built: {log}");
    // The packager's (or the configuration's) to fix: the job is done, not dead-lettered.
    assert_eq!(
        harness
            .bus
            .queue_depth(&osbs_proto::names::dead_queue(
                osbs_proto::names::QUEUE_JOBS
            ))
            .await
            .unwrap()
            .messages,
        0
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_hub_two_repositories_sharing_a_component_get_releases_1_and_2() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let component = format!("shared-{}", harness.tag);
    let mut nvrs = Vec::new();
    for repo in ["shared-a", "shared-b"] {
        // Another `name`: another registry repository, the same Koji name-version.
        let dockerfile = format!(
            "FROM {base}\nLABEL com.redhat.component={component} name={repo}-{} version=1.0\n",
            harness.tag
        );
        let (url, commit) = harness.repo(repo, &[("Dockerfile", dockerfile.as_bytes())]);
        let job = harness.job(repo, &url, &commit);
        nvrs.push(build(&harness, &job).await.nvr().to_owned());
    }
    assert_eq!(
        nvrs,
        [format!("{component}-1.0-1"), format!("{component}-1.0-2")]
    );
    assert_eq!(
        harness
            .store
            .recorded_releases(&component, "1.0")
            .await
            .unwrap()
            .len(),
        2
    );

    // A third repository that sets release 2 by hand is refused before it builds.
    let dockerfile = format!(
        "FROM {base}\nLABEL com.redhat.component={component} name=shared-c-{} version=1.0 release=2\n",
        harness.tag
    );
    let (url, commit) = harness.repo("shared-c", &[("Dockerfile", dockerfile.as_bytes())]);
    let job = harness.job("shared-c", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let results = harness.results().await;
    assert_failed_with(
        &record,
        &harness.log(&job.build_id),
        results.last().unwrap(),
        &format!("{component}-1.0-2 was pushed by an earlier build"),
    );
    assert!(!harness.log(&job.build_id).contains("step build"));
    worker.stop().await;
}
