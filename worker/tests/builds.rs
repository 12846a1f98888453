//! Builds against the real Docker Engine and registry, driven through real `BuildJob`s.

mod support;

use osbs_proto::v1::BuildState;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_build_is_pushed() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let name = format!("simple-{}", harness.tag);
    let dockerfile = format!(
        "FROM {base}\nLABEL com.redhat.component={name}-container name={name} version=1.0\nRUN echo hello > /hello\n"
    );
    let (url, commit) = harness.repo("simple", &[("Dockerfile", dockerfile.as_bytes())]);
    let job = harness.job("simple", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    println!("{}", harness.log(&job.build_id));
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    worker.stop().await;
}
