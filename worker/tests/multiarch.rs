//! Multi-arch builds end to end (DESIGN.md "Architectures"), on the real RabbitMQ, Redis,
//! Docker Engine and registry: one worker serving x86_64 and aarch64 (arm64 emulated by
//! qemu-user-static through binfmt_misc, as `deploy/setup.sh` registers it) builds a target
//! of both arches from the multi-arch busybox base of `deploy/base-image.sh ensure-multi`.

mod support;

use osbs_common::store::LogEntry;
use osbs_proto::names;
use osbs_proto::v1::{BuildState, Target};
use std::time::Duration;
use support::*;

const LIST_TYPES: &str = "application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

fn both_arches(target: &mut Option<Target>) {
    target.as_mut().unwrap().arches = vec!["x86_64".into(), "aarch64".into()];
}

async fn emulating_worker(harness: &Harness) -> RunningWorker {
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    harness
        .start_worker(|config| {
            config.worker.arches = vec!["x86_64".into(), "aarch64".into()];
        })
        .await
}

async fn metrics(worker: &RunningWorker) -> String {
    reqwest::get(format!("http://{}/metrics", worker.http))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// A copy of the build of `job` left `running` with every part of `parts` recorded and its
/// list never pushed, and one of its arch jobs redelivered; returns its id.
async fn orphaned_build(
    harness: &Harness,
    job: &osbs_proto::v1::BuildJob,
    parts: &[osbs_proto::v1::ArchBuild],
) -> String {
    use osbs_proto::Message;
    let id = format!("{}-orphan", job.build_id);
    let orphan = osbs_proto::v1::BuildJob {
        build_id: id.clone(),
        ..job.clone()
    };
    let now = osbs_common::telemetry::now_ms();
    harness
        .store
        .create(&orphan, &id, now, "test", &[])
        .await
        .unwrap();
    let change = osbs_common::state::StateChange::new(&id, BuildState::Running, "test", "test")
        .only_from(&[BuildState::Queued]);
    osbs_common::state::change(&harness.store, &harness.bus, change)
        .await
        .unwrap();
    let nvr = orphan.nvr.clone().unwrap();
    let nvr_text = format!("{}-{}-{}", nvr.name, nvr.version, nvr.release);
    harness
        .store
        .set_fields(&id, &[("nvr", nvr_text)])
        .await
        .unwrap();
    for part in parts {
        harness
            .store
            .record_arch_part(&id, &part.arch, &part.encode_to_vec(), &orphan.arches)
            .await
            .unwrap();
    }
    let redelivered = osbs_proto::v1::BuildJob {
        arch: "x86_64".into(),
        ..orphan
    };
    harness.bus.publish_job(&redelivered, 0).await.unwrap();
    id
}

fn repository_of(job: &osbs_proto::v1::BuildJob, name: &str) -> String {
    let target = job.target.as_ref().unwrap();
    format!("{}/{name}", target.registry_namespace)
}

/// What `RUN uname -m > /uname-m` left in the image at `digest`.
async fn uname_in(path: &str, digest: &str) -> String {
    let image = pushed_image(&format!("{}/{path}", osbs_testkit::REGISTRY), digest).await;
    image
        .layers
        .iter()
        .flatten()
        .find(|(name, _)| name == "uname-m")
        .map(|(_, content)| String::from_utf8_lossy(content).trim().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_of_two_arches_ends_in_one_manifest_list() {
    let harness = Harness::new().await;
    let worker = emulating_worker(&harness).await;
    let name = format!("multi-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nRUN uname -m > /uname-m\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(&name, &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    assert_eq!(record.field("arches"), "x86_64,aarch64");
    assert!(
        log.contains("aarch64: arch job published on osbs.jobs.aarch64"),
        "{log}"
    );
    assert!(
        log.contains("pushed the manifest list of x86_64, aarch64"),
        "{log}"
    );
    let arch_log = std::fs::read_to_string(
        harness
            .artifacts_dir()
            .join(&job.build_id)
            .join("aarch64")
            .join("build.log"),
    )
    .unwrap();
    assert!(
        arch_log.contains("building for aarch64 (linux/arm64)"),
        "{arch_log}"
    );

    // One result, with both parts; its image is the list.
    let results = harness.results().await;
    assert_eq!(results.len(), 1, "{results:?}");
    let result = &results[0];
    assert_eq!(result.state, BuildState::Complete as i32);
    let parts: Vec<&str> = result
        .arches
        .iter()
        .map(|part| part.arch.as_str())
        .collect();
    assert_eq!(parts, ["x86_64", "aarch64"]);
    // The result's timings are the assembly's; each part's, its arch's steps.
    let steps: Vec<&str> = result
        .timings
        .iter()
        .map(|timing| timing.step.as_str())
        .collect();
    assert_eq!(steps, ["assemble"]);
    for part in &result.arches {
        let steps: Vec<&str> = part
            .timings
            .iter()
            .map(|timing| timing.step.as_str())
            .collect();
        assert_eq!(
            steps,
            [
                "source",
                "base_image",
                "dockerfile",
                "build",
                "inspect",
                "squash_push"
            ],
            "{}",
            part.arch
        );
    }
    assert!(log.contains("step assemble done in"), "{log}");
    let image = result.image.as_ref().unwrap();
    assert_eq!(
        image.digests[0].media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    assert_eq!(
        image.tags[..3],
        ["1-1".to_owned(), "1".into(), "latest".into()]
    );
    assert_eq!(image.tags.len(), 4);
    let nvr = result.nvr.as_ref().unwrap();
    assert_eq!(nvr.release, "1");

    // The registry holds the list under every tag, naming an amd64 and an arm64 image.
    let path = repository_of(&job, &name);
    for tag in &image.tags {
        let list: serde_json::Value = serde_json::from_slice(
            &registry_get(&format!("{path}/manifests/{tag}"), LIST_TYPES).await,
        )
        .unwrap();
        let platforms: Vec<&str> = list["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(platforms, ["amd64", "arm64"], "{tag}: {list}");
    }
    let mut unames = Vec::new();
    for part in &result.arches {
        let digest = &part.image.as_ref().unwrap().digests[0].digest;
        unames.push(uname_in(&path, digest).await);
        let tags = &part.image.as_ref().unwrap().tags;
        assert_eq!(tags.len(), 1, "{tags:?}");
        assert!(tags[0].ends_with(&format!("-{}", part.arch)), "{tags:?}");
    }
    assert_eq!(unames, ["x86_64", "aarch64"], "RUN ran once per arch");
    let configs: Vec<(&str, &str)> = result
        .arches
        .iter()
        .map(|part| {
            let image = part.image.as_ref().unwrap();
            (part.arch.as_str(), image.architecture.as_str())
        })
        .collect();
    assert_eq!(configs, [("x86_64", "amd64"), ("aarch64", "arm64")]);
    let arm = result.arches[1].image.as_ref().unwrap();
    let pushed = pushed_image(
        &format!("{}/{path}", osbs_testkit::REGISTRY),
        &arm.digests[0].digest,
    )
    .await;
    assert_eq!(pushed.config["architecture"], "arm64");
    assert_eq!(
        pushed.config["variant"], "v8",
        "the squash wrote the arch's platform"
    );
    let list: serde_json::Value = serde_json::from_slice(
        &registry_get(
            &format!("{path}/manifests/{}", image.digests[0].digest),
            LIST_TYPES,
        )
        .await,
    )
    .unwrap();
    assert_eq!(list["manifests"][1]["platform"]["variant"], "v8", "{list}");
    assert_eq!(
        list["manifests"][1]["digest"].as_str(),
        Some(arm.digests[0].digest.as_str())
    );

    // A replayed (or redelivered) arch job of the finished build does not build again.
    let again = osbs_proto::v1::BuildJob {
        arch: "aarch64".into(),
        ..result.job.clone().unwrap()
    };
    assert_eq!(again.arches, ["x86_64", "aarch64"]);
    harness.bus.publish_job(&again, 0).await.unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while !metrics(&worker)
        .await
        .contains("reason=\"the build is not running\"")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the arch job was never judged"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(harness.results().await.is_empty(), "no second result");
    let after = harness.store.get(&job.build_id).await.unwrap().unwrap();
    assert_eq!(after.state, BuildState::Complete);

    // An arch job that finds every part recorded and its build still running (its last
    // arch's worker died before assembling) assembles the build without building.
    let orphan = orphaned_build(&harness, &result.job.clone().unwrap(), &result.arches).await;
    let record = harness.wait_final(&orphan).await;
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    let results = harness.results().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].build_id, orphan);
    assert_eq!(
        results[0].arches, result.arches,
        "the recorded parts, not new builds"
    );
    let list = results[0].image.as_ref().unwrap();
    assert_eq!(
        list.digests[0].digest, image.digests[0].digest,
        "the same list"
    );
    worker.stop().await;
}

/// A base image per arch (DESIGN.md "Architectures", base images): `FROM scratch` and the
/// arch's rootfs tarball from the lookaside, picked by `ARG TARGETARCH` (a platform build
/// argument OSBS passes, as BuildKit defines it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_image_from_scratch_takes_each_arch_s_rootfs_from_the_lookaside() {
    use std::io::Write;
    let harness = Harness::new().await;
    let worker = emulating_worker(&harness).await;
    let name = format!("multi-base-{}", harness.tag);
    let marker = |arch: &str| format!("etc/osbs-rootfs-{arch}");
    let mut sources = String::new();
    for arch in ["amd64", "arm64"] {
        let marker_file = harness.dir.path().join(format!("marker-{arch}"));
        std::fs::write(&marker_file, format!("{arch} {}\n", harness.tag)).unwrap();
        let extra = [(marker(arch), marker_file.as_path())];
        let extra: Vec<(&str, &std::path::Path)> = extra
            .iter()
            .map(|(path, file)| (path.as_str(), *file))
            .collect();
        let tar = match arch {
            "amd64" => osbs_testkit::busybox_rootfs_tar(&extra),
            _ => osbs_testkit::arm64_busybox_rootfs_tar(&extra),
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        let rootfs = gz.finish().unwrap();
        let file = format!("rootfs-{arch}.tar.gz");
        let hash = sha512_hex(&rootfs);
        harness.files.put(
            &format!("/repo/pkgs/container/{name}/{file}/sha512/{hash}/{file}"),
            rootfs,
        );
        sources.push_str(&format!("SHA512 ({file}) = {hash}\n"));
    }
    let dockerfile = format!(
        "FROM scratch\nARG TARGETARCH\nADD rootfs-${{TARGETARCH}}.tar.gz /\nRUN uname -m > /uname-m\nLABEL com.redhat.component={name}-container name={name} version=1\nCMD [\"/bin/sh\"]\n"
    );
    let (url, commit) = harness.repo(
        &name,
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("sources", sources.as_bytes()),
        ],
    );
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    for (arch, oci) in [("x86_64", "amd64"), ("aarch64", "arm64")] {
        let arch_log = std::fs::read_to_string(
            harness
                .artifacts_dir()
                .join(&job.build_id)
                .join(arch)
                .join("build.log"),
        )
        .unwrap();
        // Every arch job downloads every file of `sources`; the Dockerfile takes its own.
        for file in ["rootfs-amd64.tar.gz", "rootfs-arm64.tar.gz"] {
            assert!(
                arch_log.contains(&format!("downloaded {file}")),
                "{arch_log}"
            );
        }
        assert!(
            arch_log.contains(&format!("build arguments: TARGETARCH={oci}\n")),
            "only the declared platform ARG is passed: {arch_log}"
        );
        assert!(!arch_log.contains("were not consumed"), "{arch_log}");
    }

    let results = harness.results().await;
    assert_eq!(results.len(), 1, "{results:?}");
    let result = &results[0];
    let image = result.image.as_ref().unwrap();
    assert_eq!(
        image.digests[0].media_type,
        "application/vnd.docker.distribution.manifest.list.v2+json"
    );
    let path = repository_of(&job, &name);
    let list: serde_json::Value = serde_json::from_slice(
        &registry_get(
            &format!("{path}/manifests/{}", image.digests[0].digest),
            LIST_TYPES,
        )
        .await,
    )
    .unwrap();
    let platforms: Vec<&str> = list["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"], "{list}");

    let mut unames = Vec::new();
    for (part, (own, other)) in result
        .arches
        .iter()
        .zip([("amd64", "arm64"), ("arm64", "amd64")])
    {
        let digest = &part.image.as_ref().unwrap().digests[0].digest;
        let repository = format!("{}/{path}", osbs_testkit::REGISTRY);
        let pushed = pushed_image(&repository, digest).await;
        assert_eq!(pushed.config["architecture"], own, "{}", part.arch);
        assert_eq!(
            pushed.layers.len(),
            1,
            "{}: a base image is one layer",
            part.arch
        );
        let names: Vec<&str> = pushed.layers[0]
            .iter()
            .map(|(path, _)| path.as_str())
            .collect();
        let content = pushed.layers[0]
            .iter()
            .find(|(path, _)| *path == marker(own))
            .map(|(_, content)| String::from_utf8_lossy(content).into_owned());
        assert_eq!(
            content,
            Some(format!("{own} {}\n", harness.tag)),
            "{}: {names:?}",
            part.arch
        );
        assert!(!names.contains(&marker(other).as_str()), "{}", part.arch);
        unames.push(uname_in(&path, digest).await);
        // The image runs as its platform (arm64 under qemu), from its own busybox.
        let platform = format!("linux/{own}");
        let ran = osbs_testkit::run(&[
            "docker",
            "run",
            "--rm",
            "--platform",
            &platform,
            &format!("{repository}@{digest}"),
            "uname",
            "-m",
        ]);
        assert_eq!(ran.trim(), part.arch, "docker run --platform {platform}");
    }
    assert_eq!(
        unames,
        ["x86_64", "aarch64"],
        "RUN ran in each arch's rootfs"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_arch_failing_fails_the_build_and_pushes_no_list() {
    let harness = Harness::new().await;
    let worker = emulating_worker(&harness).await;
    let name = format!("multi-fail-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nRUN test \"$(uname -m)\" = x86_64\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(&name, &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(record.state, BuildState::Failed, "{:?}", record.fields);
    let error = record.field("error");
    assert!(error.starts_with("aarch64: "), "{error}");
    assert_eq!(record.field("cancel_requested"), "1");
    let results = harness.results().await;
    let failed: Vec<_> = results
        .iter()
        .filter(|result| result.state == BuildState::Failed as i32)
        .collect();
    assert_eq!(failed.len(), 1, "{results:?}");
    assert!(failed[0].error.starts_with("aarch64: "));
    assert!(
        results
            .iter()
            .all(|result| result.state != BuildState::Complete as i32),
        "{results:?}"
    );
    // No list: the build's tags were never pushed.
    let path = repository_of(&job, &name);
    let response = reqwest::Client::new()
        .get(format!(
            "http://{}/v2/{path}/manifests/1-1",
            osbs_testkit::REGISTRY
        ))
        .header("accept", LIST_TYPES)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    // Nothing waits in the arch queues once both arch jobs ended.
    for arch in ["x86_64", "aarch64"] {
        let depth = harness
            .bus
            .queue_depth(&names::jobs_queue(arch))
            .await
            .unwrap();
        assert_eq!(depth.messages, 0, "{arch}");
    }
    worker.stop().await;
}

/// Waits until the live log `stream` (a build's, or `<id>:<arch>`) has a line starting with
/// `needle` (a hang detector, not a timing).
async fn wait_live_log(harness: &Harness, stream: &str, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let entries = harness
            .store
            .read_log(stream, "0", 100_000, None)
            .await
            .unwrap();
        if entries
            .iter()
            .any(|entry| matches!(entry, LogEntry::Line { text, .. } if text.starts_with(needle)))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stream} never showed {needle:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn containers_running(marker: &str) -> usize {
    osbs_testkit::run(&["docker", "ps", "--no-trunc", "--format", "{{.Command}}"])
        .lines()
        .filter(|command| command.contains(marker))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arch_jobs_of_a_stopping_worker_go_back_to_their_queues() {
    let harness = Harness::new().await;
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    let hasty = harness
        .start_worker(|config| {
            config.worker.arches = vec!["x86_64".into(), "aarch64".into()];
            config.worker.drain_grace_secs = 1;
        })
        .await;
    let name = format!("multi-drain-{}", harness.tag);
    let marker = format!("slow-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nRUN echo {marker} && sleep 8\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(&name, &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    for arch in ["x86_64", "aarch64"] {
        let stream = osbs_common::store::log::stream(&job.build_id, arch);
        wait_live_log(&harness, &stream, &marker).await;
    }
    hasty.stop().await;
    let record = harness.store.get(&job.build_id).await.unwrap().unwrap();
    assert_eq!(
        record.state,
        BuildState::Running,
        "the build runs on in its arch jobs: {:?}",
        record.fields
    );
    assert_eq!(
        containers_running(&marker),
        0,
        "the arch builds were stopped"
    );
    for arch in ["x86_64", "aarch64"] {
        let depth = harness
            .bus
            .queue_depth(&names::jobs_queue(arch))
            .await
            .unwrap();
        assert_eq!(depth.messages, 1, "{arch}'s job is back in its queue");
    }
    let successor = emulating_worker(&harness).await;
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    let results = harness.results().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].arches.len(), 2);
    successor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scratch_build_gets_an_oci_index_under_its_unique_tag_only() {
    let harness = Harness::new().await;
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    let worker = harness
        .start_worker(|config| {
            config.worker.arches = vec!["x86_64".into(), "aarch64".into()];
            config.worker.manifest_list = "oci".into();
        })
        .await;
    let name = format!("multi-oci-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nRUN uname -m > /uname-m\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(&name, &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    job.options.as_mut().unwrap().scratch = true;
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    let results = harness.results().await;
    let image = results[0].image.as_ref().unwrap();
    assert_eq!(
        image.digests[0].media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        image.tags.len(),
        1,
        "scratch: the unique tag only: {:?}",
        image.tags
    );
    let path = repository_of(&job, &name);
    let list: serde_json::Value = serde_json::from_slice(
        &registry_get(&format!("{path}/manifests/{}", image.tags[0]), LIST_TYPES).await,
    )
    .unwrap();
    assert_eq!(list["mediaType"], "application/vnd.oci.image.index.v1+json");
    assert_eq!(list["manifests"].as_array().unwrap().len(), 2);
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_yaml_narrowing_to_one_served_arch_builds_in_place() {
    let harness = Harness::new().await;
    let worker = emulating_worker(&harness).await;
    let name = format!("multi-only-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nRUN uname -m > /uname-m\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(
        &name,
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("container.yaml", b"platforms:\n  only: aarch64\n"),
        ],
    );
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    assert_eq!(record.field("arches"), "", "no arch jobs: built in place");
    assert!(log.contains("building for aarch64 (linux/arm64)"), "{log}");
    let results = harness.results().await;
    assert!(results[0].arches.is_empty());
    let image = results[0].image.as_ref().unwrap();
    assert_eq!(image.architecture, "arm64");
    let path = repository_of(&job, &name);
    assert_eq!(uname_in(&path, &image.digests[0].digest).await, "aarch64");
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_arch_job_is_held_by_a_lease_on_its_arch_s_lease_queue() {
    let harness = Harness::new().await;
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    let worker = harness
        .start_worker(|config| {
            config.worker.arches = vec!["x86_64".into(), "aarch64".into()];
            config.worker.lease_after_secs = 1;
            config.worker.lease_ttl_secs = 60;
        })
        .await;
    let name = format!("multi-lease-{}", harness.tag);
    let marker = format!("long-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nRUN echo {marker} && sleep 4\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(&name, &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    let lease_queue = names::job_lease_queue("aarch64");
    assert_eq!(lease_queue, "osbs.jobs.aarch64.lease");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while harness
        .bus
        .queue_depth(&lease_queue)
        .await
        .unwrap()
        .messages
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no lease in {lease_queue}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(record.state, BuildState::Complete, "{:?}", record.fields);
    let arch_log = harness
        .store
        .read_log(
            &osbs_common::store::log::stream(&job.build_id, "aarch64"),
            "0",
            100_000,
            None,
        )
        .await
        .unwrap();
    assert!(
        arch_log.iter().any(|entry| matches!(entry, LogEntry::Line { text, .. } if text.contains("now held by a lease"))),
        "{arch_log:?}"
    );
    assert_eq!(
        harness
            .bus
            .queue_depth(names::QUEUE_JOB_LEASES)
            .await
            .unwrap()
            .messages,
        0,
        "no arch job's lease in the build jobs' lease queue"
    );
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arch_no_worker_serves_fails_the_build_before_any_arch_job() {
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| {
            config.worker.arches = vec!["x86_64".into()];
            config.worker.arch_consumer_wait_secs = 2;
        })
        .await;
    let name = format!("multi-unserved-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(&name, &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Failed,
        "{:?}\n{log}",
        record.fields
    );
    assert_eq!(
        record.field("error"),
        "aarch64: no worker serves this arch (osbs.jobs.aarch64 has no consumer); start a worker with arches including aarch64 and replay the build"
    );
    assert_eq!(record.field("blame"), "infrastructure", "for a replay");
    assert_eq!(record.field("arches"), "", "never orchestrated");
    assert!(
        log.contains("no worker serves aarch64 yet: waiting up to 2 s for one"),
        "{log}"
    );
    assert!(!log.contains("arch job published"), "{log}");
    for arch in ["x86_64", "aarch64"] {
        let depth = harness
            .bus
            .queue_depth(&names::jobs_queue(arch))
            .await
            .unwrap();
        assert_eq!(depth.messages, 0, "no arch job of {arch}");
    }
    // The build's own job waits in osbs.jobs.dead for `osbs replay`; one failed result went
    // out (the bridge refunds a reservation on it).
    let dead = harness
        .wait_messages(&names::dead_queue(names::QUEUE_JOBS), 1)
        .await;
    let dead_job =
        <osbs_proto::v1::BuildJob as osbs_proto::Message>::decode(dead[0].delivery.data.as_slice())
            .unwrap();
    assert_eq!(
        (dead_job.build_id.as_str(), dead_job.arch.as_str()),
        (job.build_id.as_str(), "")
    );
    let results = harness.results().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].state, BuildState::Failed as i32);
    assert_eq!(results[0].error, record.field("error"));
    worker.stop().await;
}

/// A worker of an arch that comes (back) while the orchestrator waits: a blip fails nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arch_worker_starting_within_the_wait_builds_the_build() {
    let harness = Harness::new().await;
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    let orchestrator = harness
        .start_worker(|config| {
            config.worker.arches = vec!["x86_64".into()];
            config.worker.arch_consumer_wait_secs = 600;
        })
        .await;
    let name = format!("multi-blip-{}", harness.tag);
    let dockerfile = format!(
        "FROM {}\nRUN uname -m > /uname-m\nLABEL com.redhat.component={name}-container name={name} version=1\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let (url, commit) = harness.repo(&name, &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job(&name, &url, &commit);
    both_arches(&mut job.target);
    harness.submit(&job).await;
    wait_live_log(
        &harness,
        &job.build_id,
        "osbs: no worker serves aarch64 yet: waiting up to 600 s",
    )
    .await;
    let arm = harness
        .start_worker(|config| {
            config.worker.arches = vec!["aarch64".into()];
        })
        .await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    assert!(log.contains("every arch has a worker now"), "{log}");
    let results = harness.results().await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].arches.len(), 2);
    arm.stop().await;
    orchestrator.stop().await;
}
