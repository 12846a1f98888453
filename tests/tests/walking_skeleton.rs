//! Issue 2's walking skeleton, all real but Koji: a dist-git push (the post-receive hook
//! publishes `git.receive` on `amq.topic`) → dispatcher → worker (Docker build, push) →
//! koji-bridge → the Koji hub double; the record reads `imported` with the image digest, the
//! image pulled by digest runs, and the hub holds exactly one build with a docker-image
//! output whose size and checksum match the uploaded file and which is the image the worker
//! pushed; no secret reached any service's or the CLI's output.

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
    assert_eq!(
        record.job.submitter, "packager",
        "the pusher, from the hook's agent"
    );
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
    assert_eq!(
        build.extra["submitter"], "packager",
        "Koji names the pusher"
    );
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

    // The archive Koji keeps is the image the worker pushed: `docker load` of it gives the
    // image whose config the registry holds under the record's digest, and Koji's metadata
    // names that image.
    let pushed = pushed_image_id(&cluster.registry_namespace, &digest).await;
    let loaded = run(&["docker", "load", "--input", image.path.to_str().unwrap()]);
    let named = loaded
        .lines()
        .find_map(|line| line.strip_prefix("Loaded image: "))
        .map(|reference| {
            run(&[
                "docker", "image", "inspect", "--format", "{{.Id}}", reference,
            ])
        });
    let loaded_id = named.unwrap_or_else(|| loaded.clone());
    assert_eq!(
        loaded_id
            .trim()
            .trim_start_matches("Loaded image ID: ")
            .trim(),
        pushed,
        "docker load said {loaded:?}: the Koji archive is not the pushed image {by_digest}"
    );
    assert_eq!(
        image.extra["docker"]["id"], pushed,
        "Koji's extra.docker.id vs the pushed image"
    );

    cluster.assert_no_secrets();
}

/// The image id (config digest) of the manifest `digest` of `e2e/hello` in the registry.
async fn pushed_image_id(namespace: &str, digest: &str) -> String {
    let url = format!("http://127.0.0.1:5000/v2/{namespace}/e2e/hello/manifests/{digest}");
    let manifest: serde_json::Value = reqwest::Client::new()
        .get(&url)
        .header(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
        .json()
        .await
        .unwrap_or_else(|error| panic!("the manifest at {url}: {error}"));
    manifest["config"]["digest"]
        .as_str()
        .unwrap_or_else(|| panic!("no config digest in {manifest}"))
        .to_owned()
}
