//! Multi-arch builds end to end with the real binaries (DESIGN.md "Architectures"): dist-git
//! pushes for a target of arches x86_64 and aarch64 (aarch64 emulated by qemu-user-static),
//! the bridge and the Koji hub double.
//!
//! - One worker serving both: one Koji build with an image, a buildroot and a log per arch,
//!   the manifest list the registry serves in `extra.image.index`, each arch's image pulled
//!   by tag for its platform running as that arch, and `osbs watch-logs` interleaving both
//!   arches' logs.
//! - One worker per arch: the same build.
//! - The aarch64 worker killed with `kill -9` mid-build and another started: the build
//!   completes once, its aarch64 part built by the new worker, every queue settled.
//! - One arch failing: the build fails naming the arch, nothing is pushed under its
//!   version-release tag or imported, and its Koji reservation is refunded.
//! - `osbs replay` of the dead arch jobs of a build that failed while its registry was down:
//!   the build's own job goes back once and the build is imported once.

use osbs_common::bus::Dead;
use osbs_common::store::LogEntry;
use osbs_koji_hub::state::build_state;
use osbs_ops_tests::{Kind, Options, PrivateRegistry, Service, World, expect_exit, wait_for};
use osbs_proto::v1::{BuildJob, BuildState};
use osbs_proto::{Message, names};
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

/// An emulated aarch64 build is many times slower than a native one.
const BUILD_LIMIT: Duration = Duration::from_secs(420);
const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The build's arches, in the target's order.
const ARCHES: [&str; 2] = ["x86_64", "aarch64"];
/// The engine's platform of each arch, and what `uname -m` says on it.
const PLATFORMS: [(&str, &str); 2] = [("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")];
/// The states a build ends in, for this suite.
const ENDED: [BuildState; 3] = [
    BuildState::Imported,
    BuildState::ImportFailed,
    BuildState::Failed,
];

/// A world whose targets build for x86_64 and aarch64 (and whose plain workers serve both),
/// with the multi-arch base image in the registry.
async fn two_arch_world() -> World {
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    World::new(Options {
        arches: ARCHES.map(str::to_owned).to_vec(),
        ..Options::default()
    })
    .await
}

/// A Dockerfile on the multi-arch base that names image `name` (version 1.0) and runs `run`.
fn dockerfile(name: &str, run: &str) -> String {
    format!(
        "FROM {}\nLABEL com.redhat.component=\"{name}\" name=\"{name}\" version=\"1.0\"\nRUN {run}\n",
        osbs_testkit::MULTIARCH_BASE
    )
}

/// Pushes a repository `name` with `dockerfile` on `main` through the hook; the id of the
/// build it records.
async fn push_build(world: &World, name: &str, dockerfile: &str) -> String {
    world.repo(name, "main", dockerfile).push(&["main"]);
    wait_for(
        Duration::from_secs(60),
        "the build recorded",
        || async move {
            world
                .builds()
                .await
                .into_iter()
                .find(|record| record.job.repo == name)
                .map(|record| record.id)
        },
    )
    .await
}

/// Waits for build `id` to end and asserts it was imported; its record.
async fn imported(world: &World, id: &str) -> osbs_common::store::BuildRecord {
    let record = world.wait_state(id, &ENDED, BUILD_LIMIT).await;
    assert_eq!(
        record.state,
        BuildState::Imported,
        "{}\n{}",
        record.error(),
        world.logs()
    );
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_arch_push_is_one_koji_build_with_an_image_per_arch() {
    let world = two_arch_world().await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("multi-{}", world.tag);
    let started = Instant::now();
    let id = push_build(&world, &name, &dockerfile(&name, "uname -m > /arch")).await;
    let record = imported(&world, &id).await;
    eprintln!("push → imported: {:.1?}", started.elapsed());

    let nvr = format!("{name}-1.0-1");
    assert_eq!(record.nvr(), nvr);
    assert_eq!(
        tagged(&record.pullspecs(), "1.0-1"),
        format!("{}:1.0-1", repository(&world, &name))
    );
    let list_digest = served_list(&record.pullspecs(), "1.0-1");
    check_koji_build(&world, &nvr, &list_digest);
    check_watch_logs(&world, &id).await;
    check_pulled_by_tag(&record.pullspecs(), "1.0-1");
    eprintln!("in all: {:.1?}", started.elapsed());
}

/// Two workers, one per arch, build what one worker serving both builds: one build, one
/// manifest list under every tag, one Koji import with an image and a log per arch — each
/// arch's part built by the worker of that arch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_per_arch_builds_what_one_worker_of_both_does() {
    let world = two_arch_world().await;
    let started = Instant::now();
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let x86 = world.spawn_worker_serving(&["x86_64"]).await;
    let arm = world.spawn_worker_serving(&["aarch64"]).await;
    let name = format!("per-arch-{}", world.tag);
    let id = push_build(&world, &name, &dockerfile(&name, "uname -m > /arch")).await;
    let record = imported(&world, &id).await;

    let nvr = format!("{name}-1.0-1");
    assert_eq!(record.nvr(), nvr);
    let list_digest = served_list(&record.pullspecs(), "1.0-1");
    check_every_tag(&record.pullspecs(), &list_digest);
    check_koji_build(&world, &nvr, &list_digest);
    check_builders(&world, &nvr, &[("x86_64", &x86), ("aarch64", &arm)]);
    osbs_ops_tests::wait_all_settled(&world.env.vhost).await;
    eprintln!(
        "one worker per arch: imported, checked and settled in {:.1?}",
        started.elapsed()
    );
}

/// The aarch64 worker is killed with `kill -9` while its arch job runs (its RUN sleeps on
/// aarch64 only) and another aarch64 worker starts: the build completes exactly once — one
/// Koji build, one import, its aarch64 part built by the new worker — with nothing
/// dead-lettered and every queue settled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arch_worker_killed_mid_build_is_taken_over_and_the_build_completes_once() {
    let world = two_arch_world().await;
    let started = Instant::now();
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let x86 = world.spawn_worker_serving(&["x86_64"]).await;
    let doomed = world.spawn_worker_serving(&["aarch64"]).await;
    let name = format!("arch-kill-{}", world.tag);
    let run = r#"if [ "$(uname -m)" = aarch64 ]; then sleep 8; fi; uname -m > /arch"#;
    let id = push_build(&world, &name, &dockerfile(&name, run)).await;
    let (store, id_ref) = (&world.store, id.as_str());
    wait_for(
        Duration::from_secs(180),
        "the aarch64 arch job to run its RUN's container",
        || async move {
            let entries = store
                .read_arch_log(id_ref, Some("aarch64"), "0", 10_000, None)
                .await
                .ok()?;
            let lines: Vec<&str> = entries
                .iter()
                .filter_map(|entry| match entry {
                    LogEntry::Line { text, .. } => Some(text.as_str()),
                    LogEntry::End { .. } => None,
                })
                .collect();
            // The engine's step line (not the Dockerfile the log shows first, `  | RUN …`),
            // then its container started.
            let step = lines
                .iter()
                .position(|line| line.contains("Step ") && line.contains("sleep 8"))?;
            lines[step..]
                .iter()
                .any(|line| line.contains("Running in "))
                .then_some(())
        },
    )
    .await;
    let doomed_host = doomed.host();
    doomed.kill9().await;
    let killed_at = started.elapsed();
    let during = world.record(&id).await.state;
    let part = world
        .store
        .arch_part(&id, "aarch64")
        .await
        .expect("read the aarch64 part");
    assert!(
        during == BuildState::Running && part.is_none(),
        "the aarch64 arch job was not mid-way when its worker was killed: {during:?}, part recorded: {}",
        part.is_some()
    );
    let second = world.spawn_worker_serving(&["aarch64"]).await;
    let record = imported(&world, &id).await;

    let nvr = format!("{name}-1.0-1");
    assert_eq!(record.nvr(), nvr);
    let list_digest = served_list(&record.pullspecs(), "1.0-1");
    check_koji_build(&world, &nvr, &list_digest);
    check_builders(&world, &nvr, &[("x86_64", &x86), ("aarch64", &second)]);
    assert_ne!(second.host(), doomed_host);
    let history = world.store.history(&id).await.expect("the build's history");
    let completed = history
        .iter()
        .filter(|entry| entry.to == "complete")
        .count();
    assert_eq!(completed, 1, "completed once: {history:?}");
    osbs_ops_tests::wait_all_settled(&world.env.vhost).await;
    eprintln!(
        "aarch64 worker kill -9 at {killed_at:.1?}: imported once, checked and settled in {:.1?}",
        started.elapsed()
    );
}

/// A RUN that fails on aarch64 only: the build fails with a reason naming aarch64, the x86_64
/// part does not complete it, no manifest list is pushed under the version-release tag,
/// nothing is imported and the Koji reservation is refunded (the hub's build `FAILED`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_arch_failing_fails_the_build_and_refunds_its_release() {
    let world = two_arch_world().await;
    let started = Instant::now();
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("arch-fails-{}", world.tag);
    let run = r#"[ "$(uname -m)" != aarch64 ] && uname -m > /arch"#;
    let id = push_build(&world, &name, &dockerfile(&name, run)).await;
    let record = world.wait_state(&id, &ENDED, BUILD_LIMIT).await;
    assert_eq!(record.state, BuildState::Failed, "{}", world.logs());
    assert!(
        record.error().starts_with("aarch64:"),
        "the reason names the arch: {:?}",
        record.error()
    );

    let nvr = format!("{name}-1.0-1");
    let hub = &world.hub;
    wait_for(
        Duration::from_secs(120),
        "the bridge to refund the reservation (CGRefundBuild)",
        || async move { (hub.call_count("CGRefundBuild") >= 1).then_some(()) },
    )
    .await;
    // Every arch job ended (the x86_64 one included), every result consumed.
    osbs_ops_tests::wait_all_settled(&world.env.vhost).await;
    let koji = world.hub.build(&nvr).expect("the release reserved in Koji");
    assert_eq!(
        build_state::name(koji.state),
        "FAILED",
        "the reservation refunded as failed"
    );
    assert!(koji.archives.is_empty() && koji.logs.is_empty(), "{koji:?}");
    assert_eq!(world.hub.call_count("CGImport"), 0, "nothing imported");
    assert_eq!(world.hub.call_count("CGRefundBuild"), 1, "refunded once");

    let record = world.record(&id).await;
    assert_eq!(
        record.state,
        BuildState::Failed,
        "still failed once all settled"
    );
    let history = world.store.history(&id).await.expect("the build's history");
    assert!(
        history
            .iter()
            .all(|entry| entry.to != "pushing" && entry.to != "complete"),
        "the x86_64 part went no further than its own part: {history:?}"
    );
    let repository = repository(&world, &name);
    assert_eq!(
        manifest_status(&repository, "1.0-1"),
        404,
        "no manifest list under {repository}:1.0-1"
    );
    eprintln!(
        "one arch failing: failed, refunded and settled in {:.1?}",
        started.elapsed()
    );
}

/// The repository (`host/path`) the images named `name` are pushed to: the world's
/// registry and namespace.
fn repository(world: &World, name: &str) -> String {
    format!("{}/osbs-ops-{}/{name}", world.registry, world.tag)
}

/// The pullspec of `pullspecs` tagged `tag`.
fn tagged<'a>(pullspecs: &'a [String], tag: &str) -> &'a str {
    pullspecs
        .iter()
        .find(|pullspec| pullspec.ends_with(&format!(":{tag}")))
        .unwrap_or_else(|| panic!("no pullspec tagged {tag}: {pullspecs:?}"))
}

/// `docker …`, its output.
fn docker(args: &[&str]) -> std::process::Output {
    std::process::Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

/// `docker pull --platform P <repo>:<tag>` then `docker run --rm --platform P` of it runs
/// `uname -m` as P's arch, for each platform of the build; each image pulled is removed.
fn check_pulled_by_tag(pullspecs: &[String], tag: &str) {
    let pullspec = tagged(pullspecs, tag);
    for (platform, uname) in PLATFORMS {
        let pulled = docker(&["pull", "--platform", platform, pullspec]);
        let ran = docker(&[
            "run",
            "--rm",
            "--platform",
            platform,
            pullspec,
            "uname",
            "-m",
        ]);
        // Pulled for this check only (removed before any assertion can stop the test).
        let _ = docker(&["image", "rm", "-f", pullspec]);
        assert!(
            pulled.status.success(),
            "docker pull --platform {platform} {pullspec}: {}",
            String::from_utf8_lossy(&pulled.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ran.stdout).trim(),
            uname,
            "docker run --platform {platform} {pullspec} uname -m: {}",
            String::from_utf8_lossy(&ran.stderr)
        );
    }
}

/// The status of `GET /v2/<repository>/manifests/<tag>` (asking for a list), `repository`
/// being `host/path`.
fn manifest_status(repository: &str, tag: &str) -> u16 {
    let (host, path) = repository.split_once('/').expect("a registry host");
    let output = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Accept: {LIST}"))
        .arg(format!("http://{host}/v2/{path}/manifests/{tag}"))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("curl: {}", String::from_utf8_lossy(&output.stderr)))
}

/// Every tag of the build (each pullspec by tag) serves the manifest list `list_digest`.
fn check_every_tag(pullspecs: &[String], list_digest: &str) {
    let tags: Vec<&str> = pullspecs
        .iter()
        .filter(|pullspec| !pullspec.contains('@'))
        .filter_map(|pullspec| pullspec.rsplit_once(':').map(|(_, tag)| tag))
        .collect();
    // version-release, version, latest and the unique tag.
    assert_eq!(tags.len(), 4, "{pullspecs:?}");
    for tag in tags {
        let (digest, _) = fetch_list(pullspecs, tag);
        assert_eq!(digest, list_digest, "the list under {tag}");
    }
}

/// The worker that built each arch's part (`(arch, service)`), as the Koji buildroot of
/// that arch names it.
fn check_builders(world: &World, nvr: &str, builders: &[(&str, &Service)]) {
    let build = world.hub.build(nvr).expect("the Koji build");
    for (arch, service) in builders {
        let buildroot = build
            .buildroots
            .iter()
            .find(|buildroot| buildroot["container"]["arch"] == json!(arch))
            .unwrap_or_else(|| panic!("no {arch} buildroot: {:?}", build.buildroots));
        assert_eq!(
            buildroot["extra"]["osbs"]["worker"],
            json!(service.host()),
            "the worker that built {arch}: {buildroot}"
        );
    }
}

/// The manifest list the registry serves under the pullspec tagged `tag`: its digest and
/// the list, a Docker list naming amd64 and arm64/v8.
fn fetch_list(pullspecs: &[String], tag: &str) -> (String, Json) {
    let pullspec = tagged(pullspecs, tag);
    let (host_repository, _) = pullspec.rsplit_once(':').expect("a tag");
    let (host, repository) = host_repository.split_once('/').expect("a registry host");
    let output = std::process::Command::new("curl")
        .args(["-sS", "-D", "-", "-H"])
        .arg(format!("Accept: {LIST}"))
        .arg(format!("http://{host}/v2/{repository}/manifests/{tag}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (headers, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let header = |name: &str| {
        headers
            .lines()
            .find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} header:\n{headers}"))
    };
    assert_eq!(header("Content-Type"), LIST, "{body}");
    let list: Json = serde_json::from_str(body).expect("a JSON list");
    let platforms: Vec<&Json> = list["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|entry| &entry["platform"])
        .collect();
    assert_eq!(platforms.len(), 2, "{list}");
    assert_eq!(platforms[0]["architecture"], json!("amd64"), "{list}");
    assert_eq!(platforms[1]["architecture"], json!("arm64"), "{list}");
    assert_eq!(platforms[1]["variant"], json!("v8"), "{list}");
    (header("Docker-Content-Digest"), list)
}

/// The registry's manifest list under the pullspec tagged `tag` (see [`fetch_list`]), each
/// of whose images ran its RUN as its own arch (aarch64 emulated). Returns its digest.
fn served_list(pullspecs: &[String], tag: &str) -> String {
    let (digest, list) = fetch_list(pullspecs, tag);
    let pullspec = tagged(pullspecs, tag);
    let (repository, _) = pullspec.rsplit_once(':').expect("a tag");
    for (entry, (platform, uname)) in list["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .zip(PLATFORMS)
    {
        let member = entry["digest"].as_str().expect("an entry digest");
        let image = format!("{repository}@{member}");
        let output = docker(&[
            "run",
            "--rm",
            "--platform",
            platform,
            &image,
            "cat",
            "/arch",
        ]);
        // Pulled for this check only.
        let _ = docker(&["image", "rm", "-f", &image]);
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            uname,
            "{image}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    digest
}

/// One Koji build for `nvr`: an image, a buildroot and a log per arch, the list in the index.
fn check_koji_build(world: &World, nvr: &str, list_digest: &str) {
    let builds: Vec<_> = world
        .hub
        .builds()
        .into_iter()
        .filter(|build| build.nvr() == nvr)
        .collect();
    assert_eq!(builds.len(), 1, "one Koji build for {nvr}");
    assert_eq!(world.hub.call_count("CGImport"), 1, "imported once");
    let build = &builds[0];
    assert_eq!(build.buildroots.len(), 2, "{:?}", build.buildroots);
    let mut arches: Vec<(String, String)> = build
        .archives
        .iter()
        .map(|archive| {
            (
                archive.extra["image"]["arch"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                archive.extra["docker"]["config"]["architecture"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    arches.sort();
    assert_eq!(
        arches,
        [
            ("aarch64".to_owned(), "arm64".to_owned()),
            ("x86_64".to_owned(), "amd64".to_owned())
        ]
    );
    for archive in &build.archives {
        assert_eq!(archive.btype, "image", "{}", archive.filename);
        assert!(
            archive.filename.ends_with(".tar.gz"),
            "{}",
            archive.filename
        );
    }
    let mut logs: Vec<&str> = build.logs.iter().map(|log| log.filename.as_str()).collect();
    logs.sort_unstable();
    // Each arch job's rewritten Dockerfile (its `architecture` label) is an arch's other
    // file, `<arch>-<name>` (DESIGN.md).
    assert_eq!(
        logs,
        [
            "aarch64-Dockerfile",
            "aarch64.log",
            "orchestrator.log",
            "x86_64-Dockerfile",
            "x86_64.log"
        ]
    );
    let index = &build.extra["image"]["index"];
    assert_eq!(index["digests"][LIST], json!(list_digest), "{index}");
    let pulls: Vec<&str> = index["pull"]
        .as_array()
        .expect("index.pull")
        .iter()
        .filter_map(Json::as_str)
        .collect();
    assert!(
        pulls
            .iter()
            .any(|pull| pull.ends_with(&format!("@{list_digest}"))),
        "{index}"
    );
    assert!(pulls.iter().any(|pull| pull.ends_with(":1.0-1")), "{index}");
}

/// `osbs watch-logs ID` prints the orchestrator's lines and both arches', prefixed.
async fn check_watch_logs(world: &World, id: &str) {
    let output = world.osbs(None, &["watch-logs", id]).await;
    let stdout = expect_exit(&output, 0, "watch-logs");
    for arch in ["x86_64", "aarch64"] {
        let prefix = format!("{arch}: ");
        assert!(
            stdout.lines().any(|line| line.starts_with(&prefix)),
            "no {prefix:?} line:\n{stdout}"
        );
    }
    assert!(
        stdout
            .lines()
            .any(|line| !line.starts_with("x86_64: ") && !line.starts_with("aarch64: ")),
        "no orchestrator line:\n{stdout}"
    );
}

/// Waits until `arch`'s live log of build `id` has a line containing `needle`.
async fn wait_arch_log(world: &World, id: &str, arch: &str, needle: &str) {
    let what = format!("{arch}'s log to show {needle:?}");
    wait_for(BUILD_LIMIT, &what, || async move {
        let entries = world
            .store
            .read_arch_log(id, Some(arch), "0", 100_000, None)
            .await
            .ok()?;
        entries
            .iter()
            .any(|entry| matches!(entry, LogEntry::Line { text, .. } if text.contains(needle)))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_arch_jobs_are_replayed_as_their_build_once() {
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    let mut registry = PrivateRegistry::start().await;
    let world = World::new(Options {
        arches: vec!["x86_64".into(), "aarch64".into()],
        registry: Some(registry.address()),
        // The outage fails the arch job at once, its job dead-lettered.
        retry_window_secs: Some(0),
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("multi-replay-{}", world.tag);
    let marker = format!("slow-{}", world.tag);
    let dockerfile = format!(
        "FROM {}\nLABEL com.redhat.component=\"{name}\" name=\"{name}\" version=\"1.0\"\nRUN echo {marker} && sleep 8\n",
        osbs_testkit::MULTIARCH_BASE
    );
    world.repo(&name, "main", &dockerfile).push(&["main"]);
    let id = wait_for(Duration::from_secs(60), "the build recorded", || {
        let (world, name) = (&world, &name);
        async move {
            let builds = world.builds().await;
            let record = builds.into_iter().find(|record| &record.job.repo == name)?;
            Some(record.id)
        }
    })
    .await;
    // Both arches build; the registry goes away before either pushes.
    for arch in ["x86_64", "aarch64"] {
        wait_arch_log(&world, &id, arch, &marker).await;
    }
    registry.down().await;
    let record = world
        .wait_state(&id, &[BuildState::Failed], BUILD_LIMIT)
        .await;
    assert_eq!(
        record.field("blame"),
        "infrastructure",
        "{}",
        record.error()
    );
    registry.up().await;

    // The arch that failed first is dead-lettered to its own dead queue; the other ended
    // on the failed build (or died the same way). A dead copy of each makes this replay
    // meet two dead jobs of one build.
    let bus = world.bus().await;
    let dead_queue = |arch: &str| names::dead_queue(&names::jobs_queue(arch));
    let depth = |queue: String| {
        let bus = &bus;
        async move { bus.queue_depth(&queue).await.unwrap().messages }
    };
    let dead = wait_for(Duration::from_secs(30), "an arch job dead-lettered", || {
        let depth = &depth;
        async move {
            let dead = depth(dead_queue("x86_64")).await + depth(dead_queue("aarch64")).await;
            (dead > 0).then_some(dead)
        }
    })
    .await;
    assert!(dead <= 2, "{dead}");
    eprintln!("arch jobs the outage dead-lettered: {dead}");
    for arch in ["x86_64", "aarch64"] {
        if depth(dead_queue(arch)).await > 0 {
            continue;
        }
        let queue = names::jobs_queue(arch);
        let routing_key = names::job_routing_key(arch);
        let job = BuildJob {
            arch: arch.into(),
            arches: vec!["x86_64".into(), "aarch64".into()],
            ..record.job.clone()
        };
        bus.dead_letter_copy(
            &job.encode_to_vec(),
            &osbs_common::bus::protobuf_properties(names::TYPE_BUILD_JOB),
            Dead {
                queue: &queue,
                original_exchange: names::EXCHANGE_INTERNAL,
                original_routing_key: &routing_key,
                reason: "registry unreachable",
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(depth(dead_queue("x86_64")).await, 1);
    assert_eq!(depth(dead_queue("aarch64")).await, 1);

    // The dry run lists both (the arch dead queues are scanned by default).
    let output = world.osbs(None, &["replay", "--dry-run", "--all"]).await;
    let listed = expect_exit(&output, 0, "replay --dry-run --all");
    for queue in ["osbs.jobs.x86_64.dead", "osbs.jobs.aarch64.dead"] {
        assert!(listed.contains(queue), "{listed}");
    }
    let output = world.osbs(None, &["--json", "replay", &id]).await;
    let replayed = expect_exit(&output, 0, "replay of the build's dead arch jobs");
    let outcomes: Json = serde_json::from_str(&replayed).expect("JSON outcomes");
    let outcomes = outcomes.as_array().expect("a list");
    assert_eq!(outcomes.len(), 2, "{replayed}");
    assert!(
        outcomes
            .iter()
            .all(|outcome| outcome["action"] == "replayed"),
        "{replayed}"
    );
    let notes: Vec<&str> = outcomes
        .iter()
        .map(|outcome| outcome["note"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        notes
            .iter()
            .filter(|note| note.ends_with("as the build's own job"))
            .count(),
        1,
        "{notes:?}"
    );
    assert_eq!(
        notes
            .iter()
            .filter(|note| note.starts_with("with its build"))
            .count(),
        1,
        "{notes:?}"
    );
    assert_eq!(depth(dead_queue("x86_64")).await, 0);
    assert_eq!(depth(dead_queue("aarch64")).await, 0);

    let record = world
        .wait_state(
            &id,
            &[
                BuildState::Imported,
                BuildState::ImportFailed,
                BuildState::Failed,
            ],
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
    let history = world.store.history(&id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|entry| entry.reason.starts_with("replayed by"))
            .count(),
        1,
        "one replay of the build: {history:?}"
    );
    assert_eq!(world.hub.call_count("CGImport"), 1, "imported once");
    assert_eq!(depth(dead_queue("x86_64")).await, 0);
    assert_eq!(depth(dead_queue("aarch64")).await, 0);
    assert_eq!(depth(names::dead_queue(names::QUEUE_JOBS)).await, 0);
}
