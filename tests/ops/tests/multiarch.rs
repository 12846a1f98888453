//! A multi-arch build end to end with the real binaries (DESIGN.md "Architectures"): a
//! dist-git push for a target of arches x86_64 and aarch64, one worker serving both (aarch64
//! emulated by qemu-user-static), the bridge and the Koji hub double — one Koji build with an
//! image, a buildroot and a log per arch, the manifest list the registry serves in
//! `extra.image.index`, and `osbs watch-logs` interleaving both arches' logs. And `osbs
//! replay` of the dead arch jobs of a build that failed while its registry was down: the
//! build's own job goes back once and the build is imported once.

use osbs_common::bus::Dead;
use osbs_common::store::LogEntry;
use osbs_ops_tests::{Kind, Options, PrivateRegistry, World, expect_exit, wait_for};
use osbs_proto::v1::{BuildJob, BuildState};
use osbs_proto::{Message, names};
use serde_json::{Value as Json, json};
use std::time::{Duration, Instant};

/// An emulated aarch64 build is many times slower than a native one.
const BUILD_LIMIT: Duration = Duration::from_secs(420);
const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_arch_push_is_one_koji_build_with_an_image_per_arch() {
    osbs_testkit::ensure_multiarch_busybox_image(osbs_testkit::MULTIARCH_BASE);
    let world = World::new(Options {
        arches: vec!["x86_64".into(), "aarch64".into()],
        ..Options::default()
    })
    .await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _bridge = world.spawn(Kind::Bridge).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("multi-{}", world.tag);
    let dockerfile = format!(
        "FROM {}\nLABEL com.redhat.component=\"{name}\" name=\"{name}\" version=\"1.0\"\nRUN uname -m > /arch\n",
        osbs_testkit::MULTIARCH_BASE
    );
    let started = Instant::now();
    world.repo(&name, "main", &dockerfile).push(&["main"]);
    let id = osbs_ops_tests::wait_for(Duration::from_secs(60), "the build recorded", || {
        let (world, name) = (&world, &name);
        async move {
            let builds = world.builds().await;
            let record = builds.into_iter().find(|record| &record.job.repo == name)?;
            Some(record.id)
        }
    })
    .await;
    let ended = [
        BuildState::Imported,
        BuildState::ImportFailed,
        BuildState::Failed,
    ];
    let record = world.wait_state(&id, &ended, BUILD_LIMIT).await;
    assert_eq!(
        record.state,
        BuildState::Imported,
        "{}\n{}",
        record.error(),
        world.logs()
    );
    eprintln!("push → imported: {:.1?}", started.elapsed());

    let nvr = format!("{name}-1.0-1");
    assert_eq!(record.nvr(), nvr);
    let list_digest = served_list(&record.pullspecs(), "1.0-1");
    check_koji_build(&world, &nvr, &list_digest);
    check_watch_logs(&world, &id).await;
}

/// The registry's manifest list under the pullspec tagged `tag`: a Docker list naming
/// amd64 and arm64/v8. Returns its digest.
fn served_list(pullspecs: &[String], tag: &str) -> String {
    let pullspec = pullspecs
        .iter()
        .find(|pullspec| pullspec.ends_with(&format!(":{tag}")))
        .unwrap_or_else(|| panic!("no pullspec tagged {tag}: {pullspecs:?}"));
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
    // Each arch's image ran its RUN under its own arch (aarch64 emulated).
    for (entry, (platform, uname)) in list["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .zip([("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")])
    {
        let digest = entry["digest"].as_str().expect("an entry digest");
        let image = format!("{host}/{repository}@{digest}");
        let output = std::process::Command::new("docker")
            .args([
                "run",
                "--rm",
                "--platform",
                platform,
                &image,
                "cat",
                "/arch",
            ])
            .output()
            .expect("docker runs");
        // Pulled for this check only.
        let _ = std::process::Command::new("docker")
            .args(["image", "rm", "-f", &image])
            .output();
        let said = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            said.trim(),
            uname,
            "{image}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    header("Docker-Content-Digest")
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
