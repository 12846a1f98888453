//! Builds through real `BuildJob`s, against the real Docker Engine, registry, RabbitMQ and
//! Redis: what lands in the registry is read back and checked.

mod support;

use osbs_proto::v1::{BuildJob, BuildOptions, BuildState};
use support::*;

/// `FROM scratch` + `ADD rootfs.tar.gz /`, the rootfs coming from the lookaside cache
/// (`SHA512 (file) = hash` form, Fedora layout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_image_from_scratch_with_lookaside_rootfs() {
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let name = format!("base-{}", harness.tag);
    let marker = format!("made from the lookaside {}", harness.tag);
    let marker_file = harness.dir.path().join("marker");
    std::fs::write(&marker_file, &marker).unwrap();
    let rootfs = {
        use std::io::Write;
        let tar = osbs_testkit::busybox_rootfs_tar(&[("etc/marker", &marker_file)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    };
    let hash = sha512_hex(&rootfs);
    harness.files.put(
        &format!("/repo/pkgs/container/base-image/rootfs.tar.gz/sha512/{hash}/rootfs.tar.gz"),
        rootfs.clone(),
    );
    let dockerfile = format!(
        "FROM scratch\nADD rootfs.tar.gz /\nLABEL com.redhat.component={name}-container name={name} version=41\nCMD [\"/bin/sh\"]\n"
    );
    let sources = format!("SHA512 (rootfs.tar.gz) = {hash}\n");
    let (url, commit) = harness.repo(
        "base-image",
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("sources", sources.as_bytes()),
        ],
    );
    let job = harness.job("base-image", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    assert!(log.contains("downloaded rootfs.tar.gz"), "{log}");
    // Beside its engine (root, overlay2) the worker squashes from the engine's layer store.
    assert!(
        log.contains("layers read from the engine's layer store in /"),
        "{log}"
    );
    // Koji's build name is the component; the `name` label names the repository.
    assert_eq!(record.nvr(), format!("{name}-container-41-1"));

    let repository = format!(
        "{}/{name}",
        job.target
            .as_ref()
            .map(|t| format!("{}/{}", t.registry, t.registry_namespace))
            .unwrap()
    );
    let image = pushed_image(&repository, "41-1").await;
    assert_eq!(image.layers.len(), 1, "a base image is one layer");
    assert!(
        image.layers[0]
            .iter()
            .any(|(path, content)| path == "etc/marker" && content == marker.as_bytes())
    );
    let output = osbs_testkit::run(&[
        "docker",
        "run",
        "--rm",
        &format!("{repository}@{}", record.digest()),
        "cat",
        "/etc/marker",
    ]);
    assert_eq!(output.trim(), marker);
    worker.stop().await;
}

/// The per-arch base image Dockerfile (`ARG TARGETARCH`, `ADD rootfs-${TARGETARCH}.tar.gz /`)
/// builds single-arch too: the build passes the platform ARGs it declares, for its arch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_image_picks_its_rootfs_by_the_target_arch_single_arch_too() {
    use std::io::Write;
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let name = format!("base-arch-{}", harness.tag);
    let marker_file = harness.dir.path().join("marker");
    std::fs::write(&marker_file, "amd64").unwrap();
    let rootfs = {
        let tar = osbs_testkit::busybox_rootfs_tar(&[("etc/marker", &marker_file)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    };
    let hash = sha512_hex(&rootfs);
    let file = "rootfs-amd64.tar.gz";
    harness.files.put(
        &format!("/repo/pkgs/container/{name}/{file}/sha512/{hash}/{file}"),
        rootfs,
    );
    let dockerfile = format!(
        "ARG TARGETPLATFORM\nFROM scratch\nARG TARGETARCH\nADD rootfs-${{TARGETARCH}}.tar.gz /\nLABEL com.redhat.component={name}-container name={name} version=1\n"
    );
    let sources = format!("SHA512 ({file}) = {hash}\n");
    let (url, commit) = harness.repo(
        &name,
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("sources", sources.as_bytes()),
        ],
    );
    let job = harness.job(&name, &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    assert!(
        log.contains("build arguments: TARGETARCH=amd64 TARGETPLATFORM=linux/amd64\n"),
        "{log}"
    );
    assert!(!log.contains("were not consumed"), "{log}");
    let repository = format!(
        "{}/{name}",
        job.target
            .as_ref()
            .map(|t| format!("{}/{}", t.registry, t.registry_namespace))
            .unwrap()
    );
    let image = pushed_image(&repository, "1-1").await;
    assert_eq!(image.layers.len(), 1, "a base image is one layer");
    assert!(
        image.layers[0]
            .iter()
            .any(|(path, content)| path == "etc/marker" && content == b"amd64")
    );
    worker.stop().await;
}

/// The old `md5  file` sources form with the old lookaside layout (no hash type segment).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sources_and_lookaside_layout() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let legacy = harness
        .files
        .url("/pkgs/{repo}/{filename}/{hash}/{filename}");
    let worker = harness
        .start_worker(|config| config.worker.lookaside_url = legacy)
        .await;
    let name = format!("legacy-{}", harness.tag);
    let payload = format!("payload of {}", harness.tag);
    let md5 = md5_hex(payload.as_bytes());
    harness.files.put(
        &format!("/pkgs/legacy/payload.txt/{md5}/payload.txt"),
        payload.clone(),
    );
    let dockerfile = format!(
        "FROM {base}\nCOPY payload.txt /payload.txt\nLABEL com.redhat.component={name} name={name} version=2\n"
    );
    let sources = format!("{md5}  payload.txt\n");
    let (url, commit) = harness.repo(
        "legacy",
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("sources", sources.as_bytes()),
        ],
    );
    let job = harness.job("legacy", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{}",
        record.fields,
        harness.log(&job.build_id)
    );
    let pullspec = record
        .pullspecs()
        .into_iter()
        .find(|spec| spec.contains('@'))
        .unwrap();
    let output = osbs_testkit::run(&["docker", "run", "--rm", &pullspec, "cat", "/payload.txt"]);
    assert_eq!(output, payload);
    worker.stop().await;
}

/// A multi-stage build: only the final stage is the image; its parent and the builder
/// stage's are both pinned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_stage_build() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let name = format!("multi-{}", harness.tag);
    let dockerfile = format!(
        "# escape=\\\nARG BASE={base}\nFROM ${{BASE}} AS builder\nRUN echo built-in-stage-one > /artifact \\\n && echo more >> /artifact\n\nFROM builder AS middle\nRUN echo middle > /middle\n\nFROM {base}\nCOPY --from=middle /artifact /artifact\nLABEL com.redhat.component={name} \\\n      name={name} version=3.1\nCMD [\"cat\", \"/artifact\"]\n"
    );
    let (url, commit) = harness.repo("multi", &[("Dockerfile", dockerfile.as_bytes())]);
    let job = harness.job("multi", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    let pullspec = record
        .pullspecs()
        .into_iter()
        .find(|spec| spec.contains('@'))
        .unwrap();
    let output = osbs_testkit::run(&["docker", "run", "--rm", &pullspec]);
    assert_eq!(output, "built-in-stage-one\nmore\n");
    let final_dockerfile = std::fs::read_to_string(
        harness
            .artifacts_dir()
            .join(&job.build_id)
            .join("Dockerfile"),
    )
    .unwrap();
    assert!(
        final_dockerfile.contains("FROM 127.0.0.1:5000/osbs-worker-test/busybox@sha256:"),
        "{final_dockerfile}"
    );
    assert!(
        final_dockerfile.contains("FROM builder AS middle"),
        "{final_dockerfile}"
    );
    assert!(!final_dockerfile.contains("${BASE}"), "{final_dockerfile}");
    worker.stop().await;
}

/// The engine keeps a build's step containers (`rm=false`) and the worker removes them: each
/// committed step's beside the build, the last after the result. A build whose every
/// instruction names a marker (ENV, WORKDIR, COPY, two RUNs, CMD) leaves no container that
/// names it once it is complete, and its image holds what every step made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_complete_build_leaves_no_step_container() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let name = format!("steps-{}", harness.tag);
    let mark = format!("mark{}", harness.tag.replace('-', ""));
    let dockerfile = format!(
        "FROM {base}\nENV M_{mark}=1\nWORKDIR /{mark}\nCOPY {mark}.txt /{mark}/copied\nRUN echo {mark} > /{mark}/run\nRUN echo {mark}-2 >> /{mark}/run\nLABEL com.redhat.component={name} name={name} version=1\nCMD [\"cat\", \"/{mark}/run\", \"/{mark}/copied\"]\n"
    );
    let copied = format!("{mark}.txt");
    let (url, commit) = harness.repo(
        "steps",
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            (&copied, b"copied\n"),
        ],
    );
    let job = harness.job("steps", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(record.state, BuildState::Complete, "{log}");
    let steps = log.matches("Running in ").count();
    assert!(steps >= 5, "a container per step: {steps}\n{log}");
    let mut left = Vec::new();
    for _ in 0..100 {
        left = osbs_testkit::containers_mentioning(&mark);
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(left.is_empty(), "step containers left: {left:?}");
    let pullspec = record
        .pullspecs()
        .into_iter()
        .find(|spec| spec.contains('@'))
        .unwrap();
    let output = osbs_testkit::run(&["docker", "run", "--rm", &pullspec]);
    assert_eq!(output, format!("{mark}\n{mark}-2\ncopied\n"));
    worker.stop().await;
}

/// Installs a signed rpm from an injected yum repo on a target that requires signed
/// content; then checks the image in the registry: labels, the Dockerfile in
/// /root/buildinfo, no repo file in any layer, the base layers unchanged plus one; and the
/// published BuildResult.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn yum_repo_signed_install_and_the_image_in_the_registry() {
    let base = rpm_base();
    let rpms = test_rpms();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| {
            config.worker.vendor = "OSBS tests".into();
            config.worker.distribution_scope = "public".into();
        })
        .await;
    let requested = serve_yum_repo(&harness.files, "requested", &rpms.file_name, &rpms.signed);
    let name = format!("yum-{}", harness.tag);
    let dockerfile = format!(
        "FROM {base}\nUSER nobody\nRUN id -u > /tmp/uid || true\nUSER root\n{}LABEL com.redhat.component={name} name={name} version=1.0 distribution-scope=private\nUSER nobody\n",
        install_from_repo_step(&rpms.file_name)
    );
    let (url, commit) = harness.repo("yum", &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job("yum", &url, &commit);
    job.options = Some(BuildOptions {
        yum_repourls: vec![requested.clone()],
        ..BuildOptions::default()
    });
    job.target.as_mut().unwrap().signing_key_ids = vec![rpms.key_id[8..].to_owned()];
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );

    let results = harness.results().await;
    let result = results
        .iter()
        .find(|r| r.build_id == job.build_id)
        .expect("a result");
    assert_eq!(result.state, BuildState::Complete as i32);
    let hello = result
        .components
        .iter()
        .find(|rpm| rpm.name == "hello-osbs")
        .expect("the installed rpm");
    assert_eq!(hello.signature, rpms.key_id);
    assert_eq!(
        (
            hello.version.as_str(),
            hello.release.as_str(),
            hello.arch.as_str()
        ),
        ("1.0", "1", "noarch")
    );
    assert_eq!(result.yum_repourls, vec![requested.clone()]);
    let image = result.image.as_ref().unwrap();
    assert_eq!(image.tags.len(), 4, "{:?}", image.tags);
    assert!(
        image.tags.iter().any(|tag| tag == "1.0-1") && image.tags.iter().any(|tag| tag == "latest")
    );
    assert!(image.parent_id.starts_with("sha256:"));
    assert!(image.config_json.contains("\"rootfs\""));
    assert_eq!(image.digests[0].digest, record.digest());
    let log_file = &result.logs[0];
    assert_eq!(log_file.name, "build.log");
    let on_disk = std::fs::read(&log_file.path).unwrap();
    assert_eq!(on_disk.len() as i64, log_file.size);
    assert_eq!(log_file.sha256, {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&on_disk))
    });
    let steps: Vec<&str> = result.timings.iter().map(|t| t.step.as_str()).collect();
    for step in [
        "source",
        "base_image",
        "release",
        "dockerfile",
        "build",
        "inspect",
        "squash_push",
    ] {
        assert!(steps.contains(&step), "{steps:?}");
    }

    let repository = &image.repositories[0];
    let pushed = pushed_image(repository, &image.digests[0].digest).await;
    let labels = &pushed.config["config"]["Labels"];
    for (label, expected) in [
        ("name", name.as_str()),
        ("version", "1.0"),
        ("release", "1"),
        ("vcs-type", "git"),
        ("vcs-ref", commit.as_str()),
        ("vendor", "OSBS tests"),
        ("distribution-scope", "private"),
        ("architecture", "x86_64"),
    ] {
        assert_eq!(labels[label], expected, "label {label}: {labels}");
    }
    assert!(labels["build-date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        pushed.config["config"]["User"], "nobody",
        "the image keeps its USER"
    );
    let base_image = pushed_image("127.0.0.1:5000/osbs-worker-test/rpm-base", "1").await;
    assert_eq!(
        pushed.layer_digests.len(),
        base_image.layer_digests.len() + 1
    );
    assert_eq!(
        &pushed.layer_digests[..base_image.layer_digests.len()],
        &base_image.layer_digests[..]
    );
    let buildinfo = format!("root/buildinfo/Dockerfile-{name}-1.0-1");
    let final_dockerfile = std::fs::read(
        harness
            .artifacts_dir()
            .join(&job.build_id)
            .join("Dockerfile"),
    )
    .unwrap();
    let top = pushed.layers.last().unwrap();
    assert!(
        top.iter()
            .any(|(path, content)| *path == buildinfo && *content == final_dockerfile),
        "{buildinfo} missing or different"
    );
    let repo_file = osbs_dockerfile::yum_repo_file_name(&requested);
    assert!(String::from_utf8_lossy(&final_dockerfile).contains(&repo_file));
    for layer in &pushed.layers {
        assert!(
            !layer.iter().any(|(path, _)| path.contains(&repo_file)),
            "a layer holds {repo_file}"
        );
    }
    assert!(
        top.iter()
            .any(|(path, _)| path == "usr/share/hello-osbs/hello")
    );
    worker.stop().await;
}

/// A target that requires signed content refuses an image with an unsigned package, naming
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_only_target_refuses_an_unsigned_package() {
    let base = rpm_base();
    let rpms = test_rpms();
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let target_repo = serve_yum_repo(&harness.files, "target", &rpms.file_name, &rpms.unsigned);
    let name = format!("unsigned-{}", harness.tag);
    let dockerfile = format!(
        "FROM {base}\n{}LABEL com.redhat.component={name} name={name} version=1.0\n",
        install_from_repo_step(&rpms.file_name)
    );
    let (url, commit) = harness.repo("unsigned", &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job("unsigned", &url, &commit);
    let target = job.target.as_mut().unwrap();
    target.signing_key_ids = vec![rpms.key_id.clone()];
    target.yum_repourls = vec![target_repo];
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    let results = harness.results().await;
    let result = results
        .iter()
        .find(|r| r.build_id == job.build_id)
        .expect("a result");
    let error = assert_failed_with(&record, &log, result, "hello-osbs-1.0-1.noarch (unsigned)");
    assert!(error.contains("signing policy"), "{error}");
    // The squash ran beside the check, but no manifest was published under any tag.
    let namespace = job
        .target
        .as_ref()
        .unwrap()
        .registry_namespace
        .trim_matches('/');
    let tags = registry_tags(format!("{namespace}/{name}").trim_start_matches('/')).await;
    assert!(
        tags.is_empty(),
        "a refused image has no tag: {tags:?}\n{log}"
    );
    worker.stop().await;
}

/// Label values with quotes, backslashes and a newline (from the Dockerfile and from the
/// configuration) come out as written and change no other instruction; a scratch build
/// pushes only its unique tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_values_with_quotes_backslashes_and_newlines() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let vendor = "Acme \"Quoted\" \\ Inc.\nsecond line\" \\\nRUN touch /pwned";
    let worker = harness
        .start_worker(|config| config.worker.vendor = vendor.to_owned())
        .await;
    let name = format!("quotes-{}", harness.tag);
    let dockerfile = format!(
        "FROM {base}\nLABEL com.redhat.component={name} name={name} version=1.0 \\\n      summary=\"say \\\"hi\\\" to C:\\\\temp\" 'single'='it''s'\n"
    );
    let (url, commit) = harness.repo("quotes", &[("Dockerfile", dockerfile.as_bytes())]);
    let mut job = harness.job("quotes", &url, &commit);
    job.options = Some(BuildOptions {
        scratch: true,
        ..BuildOptions::default()
    });
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    let results = harness.results().await;
    let result = results.iter().find(|r| r.build_id == job.build_id).unwrap();
    let image = result.image.as_ref().unwrap();
    assert_eq!(
        image.tags.len(),
        1,
        "a scratch build pushes only its unique tag: {:?}",
        image.tags
    );
    assert!(image.tags[0].starts_with("main-container-candidate-"));
    assert!(result.koji_reservation.is_none());
    let pushed = pushed_image(&image.repositories[0], &image.digests[0].digest).await;
    let labels = &pushed.config["config"]["Labels"];
    assert_eq!(labels["summary"], "say \"hi\" to C:\\temp");
    assert_eq!(labels["single"], "its");
    assert_eq!(
        labels["vendor"],
        osbs_dockerfile::label_value_as_stored(vendor)
    );
    assert_eq!(labels["name"], name.as_str());
    let touched = pushed
        .layers
        .iter()
        .flatten()
        .any(|(path, _)| path == "pwned");
    assert!(!touched, "a label value ran an instruction");
    worker.stop().await;
}

/// The rpm database decides what the inspection lists (worker/src/inspect.rs): images built
/// here without one — busybox as it is, and busybox with its `rpm` applet linked, which
/// cannot read a database — have no components and say so in the build log; with a
/// database, a busybox `rpm` or no `rpm` at all fails the build naming both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rpm_database_decides_what_the_inspection_lists() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| config.worker.concurrency = 2)
        .await;
    let cases = [
        ("plain", "true"),
        ("applet", "ln -s busybox /bin/rpm"),
        (
            "applet-over-db",
            "ln -s busybox /bin/rpm && mkdir -p /var/lib/rpm && echo x > /var/lib/rpm/Packages",
        ),
        (
            "db-without-rpm",
            "mkdir -p /usr/lib/sysimage/rpm && echo x > /usr/lib/sysimage/rpm/rpmdb.sqlite",
        ),
    ];
    let jobs = submit_runs(&harness, base, &cases).await;
    let mut records = Vec::new();
    for job in &jobs {
        records.push(harness.wait_final(&job.build_id).await);
    }
    let results = harness.results().await;
    let result_of = |id: &str| {
        results
            .iter()
            .find(|result| result.build_id == id)
            .unwrap_or_else(|| panic!("no result of {id}"))
    };
    for (index, note) in [(0, None), (1, Some("(its /bin/rpm is not asked)"))] {
        let (job, record) = (&jobs[index], &records[index]);
        let log = harness.log(&job.build_id);
        assert_eq!(record.state, BuildState::Complete, "{}: {log}", job.repo);
        assert!(
            log.contains("no rpm database in the image") && note.is_none_or(|n| log.contains(n)),
            "{}: {log}",
            job.repo
        );
        assert!(result_of(&job.build_id).components.is_empty());
    }
    let error = assert_failed_with(
        &records[2],
        &harness.log(&jobs[2].build_id),
        result_of(&jobs[2].build_id),
        "the image's /bin/rpm cannot list its rpm database (/var/lib/rpm/Packages): exit code 1",
    );
    assert!(
        error.contains("invalid option"),
        "busybox's own words: {error}"
    );
    assert_failed_with(
        &records[3],
        &harness.log(&jobs[3].build_id),
        result_of(&jobs[3].build_id),
        "the image has an rpm database (/usr/lib/sysimage/rpm/rpmdb.sqlite) but no rpm to read it",
    );
    worker.stop().await;
}

/// Issue 13: the inspection looks at the image through the squash's index of its layers,
/// and only an image with an rpm database gets a container (to run its rpm). A Fedora ≥ 36
/// layout, the database reached through the `/var/lib/rpm` symlink, is listed; a database
/// deleted by a later layer is gone: no components, and no inspect container is created
/// (the engine's own events say so; the Fedora build is the control that they would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspection_follows_symlinks_and_creates_no_container_without_a_database() {
    let base = rpm_base();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| config.worker.concurrency = 2)
        .await;
    let since = now_seconds();
    let cases = [
        (
            "sysimage",
            "mkdir -p /usr/lib/sysimage && mv /var/lib/rpm /usr/lib/sysimage/rpm && ln -s ../../usr/lib/sysimage/rpm /var/lib/rpm",
        ),
        ("deleted", "rm -rf /var/lib/rpm"),
    ];
    let jobs = submit_runs(&harness, base, &cases).await;
    let mut logs = Vec::new();
    for job in &jobs {
        let record = harness.wait_final(&job.build_id).await;
        let log = harness.log(&job.build_id);
        assert_eq!(record.state, BuildState::Complete, "{}: {log}", job.repo);
        logs.push(log);
    }
    let inspect_containers = inspect_containers_since(since);
    let built = |log: &str| {
        let words: Vec<&str> = log.split_whitespace().collect();
        words
            .windows(2)
            .find(|pair| pair[0] == "built" && pair[1].starts_with("sha256:"))
            .map(|pair| pair[1].to_owned())
            .unwrap_or_else(|| panic!("no image id in {log}"))
    };
    assert!(
        logs[0].contains("rpm package(s) in the image's rpm database (/var/lib/rpm/"),
        "{}",
        logs[0]
    );
    assert!(
        !logs[0].contains("no rpm database in the image"),
        "{}",
        logs[0]
    );
    assert_eq!(
        inspect_containers
            .iter()
            .filter(|image| **image == built(&logs[0]))
            .count(),
        1,
        "one inspect container for the image with a database: {inspect_containers:?}"
    );
    assert!(
        logs[1].contains("no rpm database in the image")
            && logs[1].contains("(its /usr/bin/rpm is not asked)"),
        "{}",
        logs[1]
    );
    assert!(
        !inspect_containers.contains(&built(&logs[1])),
        "an inspect container for an image without a database: {inspect_containers:?}"
    );
    let results = harness.results().await;
    let deleted = results
        .iter()
        .find(|result| result.build_id == jobs[1].build_id)
        .expect("a result");
    assert!(deleted.components.is_empty());
    worker.stop().await;
}

/// One repository per `(name, command)` whose Dockerfile runs the command on `base`, each
/// submitted as a build; the jobs in that order.
async fn submit_runs(harness: &Harness, base: &str, cases: &[(&str, &str)]) -> Vec<BuildJob> {
    let mut jobs = Vec::new();
    for (repo, run) in cases {
        let name = format!("{repo}-{}", harness.tag);
        let dockerfile = format!(
            "FROM {base}\nRUN {run}\nLABEL com.redhat.component={name} name={name} version=1\n"
        );
        let (url, commit) = harness.repo(repo, &[("Dockerfile", dockerfile.as_bytes())]);
        let job = harness.job(repo, &url, &commit);
        harness.submit(&job).await;
        jobs.push(job);
    }
    jobs
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The images of the inspect containers the engine created since `since` (unix seconds).
fn inspect_containers_since(since: u64) -> Vec<String> {
    let (since, until) = (since.to_string(), (now_seconds() + 1).to_string());
    osbs_testkit::run(&[
        "docker",
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=container",
        "--filter",
        "event=create",
        "--filter",
        "label=osbs.worker=inspect",
        "--format",
        "{{.Actor.Attributes.image}}",
    ])
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Issue 13: the engine builds the rewrite without the buildinfo COPY and the injected
/// LABEL; the squash writes both. The example repository (deploy/example/hello, on the test
/// base) is built the new way, then its stored Dockerfile is built the old way with the
/// docker CLI (the COPY and the LABEL as builder steps): same labels (a vendor with quotes,
/// `$`, a backslash and a newline), same stored Dockerfile, same filesystem, and the
/// history says what the squash added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_squash_writes_the_buildinfo_file_and_labels_the_builder_no_longer_does() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let vendor = "Acme \"Q\" $HOME ${X:-y} \\ Inc.\nline two";
    let worker = harness
        .start_worker(|config| config.worker.vendor = vendor.to_owned())
        .await;
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/example/hello");
    let example_dockerfile = std::fs::read_to_string(example.join("Dockerfile")).unwrap();
    let name = format!("hello-{}", harness.tag);
    let dockerfile = example_dockerfile
        .replace("127.0.0.1:5000/osbs/busybox:latest", base)
        .replace("name=\"osbs/hello\"", &format!("name=\"{name}\""));
    let greeting = std::fs::read(example.join("greeting.txt")).unwrap();
    let (url, commit) = harness.repo(
        "hello",
        &[
            ("Dockerfile", dockerfile.as_bytes()),
            ("greeting.txt", &greeting),
        ],
    );
    let job = harness.job("hello", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    let buildinfo = format!("Dockerfile-{name}-1.0-1");
    // Neither step reached the builder (its own lines are "Step N/M : ..."), nor the
    // Dockerfile's own LABEL (the squash writes it too).
    for line in log.lines().filter(|line| line.contains("Step ")) {
        assert!(
            !line.contains(&format!("COPY {buildinfo}")) && !line.contains("LABEL"),
            "{line}"
        );
    }
    let stored = std::fs::read(
        harness
            .artifacts_dir()
            .join(&job.build_id)
            .join("Dockerfile"),
    )
    .unwrap();
    let stored_text = String::from_utf8(stored.clone()).unwrap();
    assert!(
        stored_text.contains(&format!(
            "\nCOPY {buildinfo} /root/buildinfo/{buildinfo}\nLABEL "
        )),
        "{stored_text}"
    );

    let results = harness.results().await;
    let result = results.iter().find(|r| r.build_id == job.build_id).unwrap();
    let image = result.image.as_ref().unwrap();
    let new_ref = format!("{}@{}", image.repositories[0], image.digests[0].digest);
    let pushed = pushed_image(&image.repositories[0], &image.digests[0].digest).await;
    let top = pushed.layers.last().unwrap();
    assert!(
        top.iter().any(
            |(path, content)| *path == format!("root/buildinfo/{buildinfo}") && *content == stored
        ),
        "the stored Dockerfile is in the squashed layer"
    );
    // The base has /root: the squash adds no entry for it (its mode and owner stay).
    assert!(
        !top.iter()
            .any(|(path, _)| path == "root/" || path == "root"),
        "{top:?}"
    );
    assert_eq!(
        pushed.config["config"]["Labels"]["vendor"],
        osbs_dockerfile::label_value_as_stored(vendor)
    );
    let history = pushed.config["history"].as_array().unwrap();
    let created_by: Vec<&str> = history
        .iter()
        .map(|step| step["created_by"].as_str().unwrap_or_default())
        .collect();
    let copy_step = format!("osbs squash: COPY {buildinfo} /root/buildinfo/{buildinfo}");
    assert!(created_by.contains(&copy_step.as_str()), "{created_by:?}");
    assert!(
        created_by
            .iter()
            .any(|step| step.starts_with("osbs squash: LABEL ")),
        "{created_by:?}"
    );
    // The Dockerfile's own LABEL has its entry, before the buildinfo COPY's.
    let own = created_by
        .iter()
        .position(|step| step.starts_with("osbs squash: LABEL com.redhat.component="));
    let copy = created_by.iter().position(|step| *step == copy_step);
    assert!(own.is_some() && own < copy, "{created_by:?}");
    let non_empty = history
        .iter()
        .filter(|step| step["empty_layer"] != serde_json::json!(true))
        .count();
    assert_eq!(
        non_empty,
        pushed.layer_digests.len(),
        "history matches the layers"
    );

    // The old way: the stored Dockerfile built as it is, the buildinfo file in its context.
    let old_dir = harness.dir.path().join("old-way");
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::write(old_dir.join("Dockerfile"), &stored).unwrap();
    std::fs::write(old_dir.join(&buildinfo), &stored).unwrap();
    std::fs::write(old_dir.join("greeting.txt"), &greeting).unwrap();
    let old_tag = format!("osbs-worker-test/old-way:{}", harness.tag);
    let built = std::process::Command::new("docker")
        .args(["build", "--no-cache", "-q", "-t", &old_tag, "."])
        .current_dir(&old_dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let old_labels: serde_json::Value = serde_json::from_str(&osbs_testkit::run(&[
        "docker",
        "inspect",
        "-f",
        "{{json .Config.Labels}}",
        &old_tag,
    ]))
    .unwrap();
    assert_eq!(pushed.config["config"]["Labels"], old_labels, "same labels");
    for (what, script) in [
        ("filesystem", "find / -xdev | sort"),
        (
            "buildinfo file and directories",
            "stat -c '%n %a %u:%g %s' /root /root/buildinfo /root/buildinfo/* && cat /root/buildinfo/*",
        ),
        ("greeting", "cat /usr/share/hello/greeting.txt"),
    ] {
        let old = osbs_testkit::run(&["docker", "run", "--rm", &old_tag, "sh", "-c", script]);
        let new = osbs_testkit::run(&["docker", "run", "--rm", &new_ref, "sh", "-c", script]);
        assert_eq!(new, old, "{what}");
    }
    let history = osbs_testkit::run(&[
        "docker",
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        &new_ref,
    ]);
    assert!(history.contains(&copy_step), "{history}");
    let _ = std::process::Command::new("docker")
        .args(["rmi", "-f", &old_tag, &new_ref])
        .output();
    worker.stop().await;
}
