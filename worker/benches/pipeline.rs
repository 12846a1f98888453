//! Benchmark of the worker pipeline against the floor it cannot avoid (issue 2 and 4,
//! "Performance"). `cargo bench -p osbs-worker --bench pipeline [-- ROUNDS]`.
//!
//! Floor: `docker build --no-cache` + `docker push` of the same one-`RUN` context with the
//! docker CLI (classic builder, as the worker uses). OSBS: a `BuildJob` published on the bus
//! → the `BuildResult` received from `osbs.results` (clone, pin, rewrite, build, squash,
//! inspect, push of all four tags), with a worker running in-process. Rounds alternate the
//! two so that both see the same machine state; the first round of each warms caches and is
//! not counted. Prints medians and each step's median from the results' timings.

use osbs_common::store::Store;
use osbs_common::{Bus, bus};
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildOptions, BuildResult, BuildState, Target};
use osbs_testkit::{REGISTRY, TestEnv};
use osbs_worker::config::WorkerConfig;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const BASE: &str = "127.0.0.1:5000/osbs-bench/busybox:1";

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

fn run(dir: &Path, args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn dockerfile(round: usize, tag: &str) -> String {
    format!(
        "FROM {BASE}\nRUN echo round {round} of {tag} > /built && sed -n 1p /etc/passwd >> /built\nLABEL com.redhat.component=bench name=osbs-bench/app-{tag} version=1.0\n"
    )
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(9);
    osbs_testkit::ensure_busybox_image(BASE);
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let git_base = dir.path().join("git");
    let config = osbs_worker::ServiceConfig {
        amqp: env.amqp.clone(),
        redis: env.redis.clone(),
        storage: osbs_common::config::StorageConfig {
            artifacts_dir: dir.path().join("artifacts"),
        },
        worker: WorkerConfig {
            http_listen: "127.0.0.1:0".parse().unwrap(),
            allowed_git_urls: vec![format!("file://{}", git_base.display())],
            work_dir: dir.path().join("work"),
            ..WorkerConfig::default()
        },
        ..osbs_worker::ServiceConfig::default()
    };
    let started = osbs_worker::service::start(config).await.unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let worker = tokio::spawn(started.serve(stop.clone()));
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = Bus::connect(&env.amqp, "bench").await.unwrap();
    let mut results = bus.consume(names::QUEUE_RESULTS, 16).await.unwrap();

    let mut floor = Vec::new();
    let mut osbs = Vec::new();
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for round in 0..=rounds {
        // The floor: the docker CLI on the same context.
        let context = dir.path().join(format!("floor-{round}"));
        std::fs::create_dir_all(&context).unwrap();
        std::fs::write(context.join("Dockerfile"), dockerfile(round, &tag)).unwrap();
        let image = format!("{REGISTRY}/osbs-bench/floor-{tag}:{round}");
        let started = Instant::now();
        run(
            &context,
            &["docker", "build", "--no-cache", "-q", "-t", &image, "."],
        );
        run(&context, &["docker", "push", "-q", &image]);
        let floor_secs = started.elapsed().as_secs_f64();
        run(&context, &["docker", "rmi", "-f", &image]);

        // OSBS: a dist-git commit, a recorded build, its job published.
        let work = dir.path().join(format!("repo-{round}"));
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(work.join("Dockerfile"), dockerfile(round, &tag)).unwrap();
        run(&work, &["git", "init", "-q"]);
        run(&work, &["git", "add", "-A"]);
        run(
            &work,
            &[
                "git",
                "-c",
                "user.name=b",
                "-c",
                "user.email=b@b",
                "commit",
                "-qm",
                "bench",
            ],
        );
        let bare = git_base.join(format!("app-{round}.git"));
        run(
            dir.path(),
            &[
                "git",
                "clone",
                "-q",
                "--bare",
                work.to_str().unwrap(),
                bare.to_str().unwrap(),
            ],
        );
        let commit = String::from_utf8(
            Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(&work)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned();
        let job = BuildJob {
            build_id: format!("bench-{tag}-{round}"),
            repo: format!("app-{round}"),
            namespace: "container".into(),
            git_url: format!("file://{}", bare.display()),
            commit,
            branch: "main".into(),
            target: Some(Target {
                name: "bench-candidate".into(),
                registry: REGISTRY.into(),
                base_registry: REGISTRY.into(),
                ..Target::default()
            }),
            options: Some(BuildOptions::default()),
            submitter: "bench".into(),
            ..BuildJob::default()
        };
        store
            .create(
                &job,
                &job.build_id,
                osbs_common::telemetry::now_ms(),
                "bench",
                &[],
            )
            .await
            .unwrap();
        let started = Instant::now();
        bus.publish_job(&job, 0).await.unwrap();
        let delivery = tokio::time::timeout(Duration::from_secs(120), results.next())
            .await
            .expect("a result within two minutes")
            .expect("the results consumer");
        let osbs_secs = started.elapsed().as_secs_f64();
        bus::ack(&delivery).await;
        let result: BuildResult = bus::decode(&delivery, names::TYPE_BUILD_RESULT).unwrap();
        assert_eq!(
            result.state,
            BuildState::Complete as i32,
            "{}",
            result.error
        );
        let image = result.image.as_ref().unwrap();
        assert_eq!(image.tags.len(), 4);
        println!(
            "round {round}: floor {floor_secs:.3} s, osbs {osbs_secs:.3} s ({:.2}x){}",
            osbs_secs / floor_secs,
            if round == 0 {
                " [warm-up, not counted]"
            } else {
                ""
            }
        );
        if round == 0 {
            continue;
        }
        floor.push(floor_secs);
        osbs.push(osbs_secs);
        for timing in &result.timings {
            steps
                .entry(timing.step.clone())
                .or_default()
                .push(timing.millis as f64 / 1000.0);
        }
    }
    let floor_median = median(&mut floor);
    let osbs_median = median(&mut osbs);
    println!(
        "\n{rounds} rounds: floor median {floor_median:.3} s, osbs median {osbs_median:.3} s, ratio {:.2}x (goal ≤ 1.5x)",
        osbs_median / floor_median
    );
    println!("OSBS step medians (squash_push: the squashed layer streamed to the registry):");
    let mut by_time: Vec<(String, f64)> = steps
        .into_iter()
        .map(|(step, mut values)| (step, median(&mut values)))
        .collect();
    by_time.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (step, secs) in by_time {
        println!("  {step:<11} {secs:.3} s");
    }
    stop.cancel();
    worker.await.unwrap().unwrap();
}
