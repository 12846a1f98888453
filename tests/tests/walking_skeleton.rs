//! Issue 2's walking skeleton, all real but Koji: a dist-git push (the post-receive hook
//! publishes `git.receive` on `amq.topic`) → dispatcher → worker (Docker build, push) →
//! koji-bridge → the Koji hub double; the record reads `imported` with the image digest, the
//! image pulled by digest runs, and the hub holds exactly one build with a docker-image
//! output whose size and checksum match the uploaded file.

use osbs_e2e::{Cluster, TARGET, file_sha256};
use osbs_proto::BuildState;
use osbs_testkit::run;
use std::time::Duration;

const DOCKERFILE: &str = r#"FROM 127.0.0.1:5000/osbs/busybox:latest
LABEL com.redhat.component="e2e-container" \
      name="e2e/hello" \
      version="1.0"
COPY greeting.txt /greeting.txt
RUN echo "and a RUN step" >> /greeting.txt
CMD ["cat", "/greeting.txt"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_becomes_a_running_image_and_one_koji_build() {
    let cluster = Cluster::start().await;
    let repo = cluster.dist_git_repo("e2e-hello");
    let rev = repo.commit_and_push(
        &[
            ("Dockerfile", DOCKERFILE.as_bytes()),
            ("greeting.txt", b"hello from the walking skeleton\n"),
        ],
        "First image",
    );

    let id = cluster
        .wait_for_build_of("e2e-hello", Duration::from_secs(30))
        .await;
    let record = cluster
        .wait_for_state(
            &id,
            &[
                BuildState::Imported,
                BuildState::Failed,
                BuildState::ImportFailed,
            ],
            Duration::from_secs(240),
        )
        .await;
    assert_eq!(
        record.state,
        BuildState::Imported,
        "build ended {}: {}\n{}",
        record.state,
        record.error(),
        cluster.logs()
    );
    assert_eq!(record.job.commit, rev);
    assert_eq!(record.job.target.as_ref().unwrap().name, TARGET);
    let digest = record.digest().to_owned();
    assert!(digest.starts_with("sha256:"), "record digest {digest:?}");

    // The image, pulled from the registry by digest, runs and prints what the Dockerfile put in.
    let repository = format!("127.0.0.1:5000/{}/e2e/hello", cluster.registry_namespace);
    let by_digest = format!("{repository}@{digest}");
    run(&["docker", "pull", "--quiet", &by_digest]);
    let printed = run(&["docker", "run", "--rm", &by_digest]);
    assert_eq!(
        printed, "hello from the walking skeleton\nand a RUN step\n",
        "output of {by_digest}"
    );
    assert!(
        record
            .pullspecs()
            .iter()
            .any(|pullspec| pullspec.starts_with(&repository)),
        "pullspecs {:?}",
        record.pullspecs()
    );

    // Koji: exactly one build, with this NVR and a docker-image output matching the upload.
    let builds = cluster.hub.builds();
    assert_eq!(builds.len(), 1, "hub builds: {builds:#?}");
    let build = &builds[0];
    assert_eq!(build.nvr(), record.nvr(), "hub NVR vs record NVR");
    assert_eq!(build.name, "e2e-container");
    assert_eq!(build.version, "1.0");
    assert_eq!(build.release, "1");
    assert_eq!(
        build.source.as_deref(),
        Some(format!("{}#{rev}", record.job.git_url).as_str())
    );
    let image = build
        .archives
        .iter()
        .find(|archive| archive.btype == "image")
        .unwrap_or_else(|| panic!("no docker-image output in {:#?}", build.archives));
    let stored = std::fs::metadata(&image.path)
        .expect("the uploaded image archive")
        .len();
    assert_eq!(image.size, stored, "recorded size vs the uploaded file");
    assert_eq!(image.checksum_type, 2, "sha256");
    assert_eq!(
        image.checksum,
        file_sha256(&image.path),
        "recorded checksum vs the uploaded file"
    );
    assert!(!build.logs.is_empty(), "the build log reached Koji");
    assert!(
        cluster.hub.tagged(TARGET).contains(&build.nvr()),
        "tagged into {TARGET}: {:?}",
        cluster.hub.tagged(TARGET)
    );
    assert_eq!(record.field("koji_build_id"), build.id.to_string());

    // The archive Koji keeps is a real image: `docker load` gives back the same image id.
    // (`docker load` names the image by id, or by its tags when the archive has some.)
    let loaded = run(&["docker", "load", "--input", image.path.to_str().unwrap()]);
    let image_id = record_image_id(&cluster, &id).await;
    let named = loaded
        .lines()
        .find_map(|line| line.strip_prefix("Loaded image: "))
        .map(|reference| {
            run(&[
                "docker", "image", "inspect", "--format", "{{.Id}}", reference,
            ])
        });
    let loaded_id = named.unwrap_or_else(|| loaded.clone());
    assert!(
        loaded_id.contains(image_id.trim_start_matches("sha256:")),
        "docker load said {loaded:?} ({loaded_id:?}), expected image {image_id}"
    );
}

/// The image id the worker reported, from the result the bridge imported.
async fn record_image_id(cluster: &Cluster, id: &str) -> String {
    let record = cluster.store.require(id).await.expect("record");
    let from_record = record.field("image_id").to_owned();
    if !from_record.is_empty() {
        return from_record;
    }
    let extra = cluster.hub.builds()[0]
        .archives
        .iter()
        .find(|a| a.btype == "image")
        .unwrap()
        .extra
        .clone();
    extra["docker"]["id"]
        .as_str()
        .expect("extra.docker.id")
        .to_owned()
}
