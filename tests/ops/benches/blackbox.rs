//! Black-box benchmark (issue 13; not a test): from a `git push` to a dist-git repository
//! whose post-receive hook is `osbs git-hook`, through the dispatcher and a worker (release
//! binaries as processes, the real RabbitMQ, Redis, Docker Engine and registry), to the
//! build's `complete` in its record's history — against `docker build --no-cache` +
//! `docker push` of the same Dockerfile (classic builder, as the worker drives), alternating.
//!
//! ```text
//! cargo bench -p osbs-ops-tests --bench blackbox -- [ROUNDS] [busy]   (default 7; one warm-up more)
//! ```
//! `busy`: after the quiet pass, a second pass with `sh -c 'while :; do :; done'` keeping
//! one core busy beside it (one build of the binaries for both: the bench's own build and
//! theirs resolve features differently, so each `cargo bench` compiles the services twice).
//! The OSBS clock starts just before `git push` and ends at the `complete` entry's time in
//! the record's history (written by the worker, same host clock); the floor's around the
//! two docker commands. Each round's figures are printed (with the OSBS time split at the
//! record's history: `git push` → `queued`, `queued` → `running`, `running` → `complete`),
//! then the medians, the split's medians and the per-step medians from the record's
//! `timings`.

use osbs_ops_tests::{BASE_IMAGE, Kind, Options, World, base_image};
use osbs_proto::v1::BuildState;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find(|arg| arg.parse::<usize>().is_ok())
        .map_or(7, |n| n.parse().expect("ROUNDS is a number"));
    let busy = std::env::args().skip(1).any(|arg| arg == "busy");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench(rounds, busy));
}

async fn bench(rounds: usize, busy: bool) {
    base_image();
    let world = World::new(Options::default()).await;
    let _dispatcher = world.spawn(Kind::Dispatcher).await;
    let _worker = world.spawn(Kind::Worker).await;
    let name = format!("bb-{}", world.tag);
    let repo = world.repo(&name, "main", &dockerfile(&name, usize::MAX));
    let floor_dir = world.dir.path().join("floor");
    std::fs::create_dir_all(&floor_dir).expect("floor dir");
    println!("== quiet");
    pass(&world, &repo, &name, &floor_dir, rounds, 0).await;
    if busy {
        let mut spinner = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("a busy loop");
        println!("== one core kept busy (sh -c 'while :; do :; done')");
        pass(&world, &repo, &name, &floor_dir, rounds, rounds + 1).await;
        let _ = spinner.kill();
        let _ = spinner.wait();
    }
}

/// One pass of alternating rounds (`first`: the number of its warm-up round, so that every
/// round commits a new Dockerfile); prints every round and the medians.
async fn pass(
    world: &World,
    repo: &osbs_ops_tests::Repo,
    name: &str,
    floor_dir: &Path,
    rounds: usize,
    first: usize,
) {
    println!(
        "rounds: {rounds} (+1 warm-up), load average at start: {}",
        load()
    );
    let (mut floors, mut osbs, mut steps) = (Vec::new(), Vec::new(), BTreeMap::new());
    let mut splits: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for round in 0..=rounds {
        let floor = floor_round(floor_dir, name, &world.tag, first + round);
        let (took, timings, split) = osbs_round(world, repo, name, first + round).await;
        println!(
            "round {round}: floor {:.3} s, OSBS {:.3} s, ratio {:.2}x (push→queued {} ms, queued→running {} ms, running→complete {} ms){}",
            floor.as_secs_f64(),
            took.as_secs_f64(),
            took.as_secs_f64() / floor.as_secs_f64(),
            split[0],
            split[1],
            split[2],
            if round == 0 {
                " (warm-up, not counted)"
            } else {
                ""
            }
        );
        if round > 0 {
            floors.push(floor);
            osbs.push(took);
            for (part, millis) in SPLIT.iter().zip(split) {
                splits.entry(part).or_default().push(millis);
            }
            for (step, millis) in timings {
                steps.entry(step).or_insert_with(Vec::new).push(millis);
            }
        }
    }
    let (floor, took) = (median(&mut floors), median(&mut osbs));
    println!(
        "median: floor {:.3} s, OSBS {:.3} s, ratio {:.2}x; load average at end: {}",
        floor.as_secs_f64(),
        took.as_secs_f64(),
        took.as_secs_f64() / floor.as_secs_f64(),
        load()
    );
    let steps: Vec<String> = steps
        .into_iter()
        .map(|(step, mut millis)| {
            millis.sort_unstable();
            format!("{step} {} ms", millis[millis.len() / 2])
        })
        .collect();
    println!("per-step medians: {}", steps.join(", "));
    let splits: Vec<String> = SPLIT
        .iter()
        .map(|part| {
            let millis = splits.get_mut(part).expect("every round splits");
            millis.sort_unstable();
            format!("{part} {} ms", millis[millis.len() / 2])
        })
        .collect();
    println!("split medians: {}", splits.join(", "));
}

/// The repository's Dockerfile in round `round`: one trivial `RUN`, new each round.
fn dockerfile(name: &str, round: usize) -> String {
    format!(
        "FROM {BASE_IMAGE}\nLABEL com.redhat.component=\"{name}\" name=\"{name}\" version=\"1.0\"\nRUN echo round {round} > /round.txt\n"
    )
}

/// `docker build --no-cache` + `docker push` of the round's Dockerfile.
fn floor_round(dir: &Path, name: &str, tag: &str, round: usize) -> Duration {
    std::fs::write(dir.join("Dockerfile"), dockerfile(name, round)).expect("Dockerfile");
    let image = format!("127.0.0.1:5000/osbs-bench-{tag}/floor:{round}");
    let started = Instant::now();
    let dir = dir.to_str().expect("utf-8");
    run(&["docker", "build", "--no-cache", "-q", "-t", &image, dir]);
    run(&["docker", "push", "-q", &image]);
    started.elapsed()
}

fn run(args: &[&str]) {
    let output = std::process::Command::new(args[0])
        .args(&args[1..])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("docker runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The parts of the OSBS time, at the record's history.
const SPLIT: [&str; 3] = ["push→queued", "queued→running", "running→complete"];

/// One push of a new commit to its `complete`: the time, the build's step timings and the
/// time's [`SPLIT`] in milliseconds.
async fn osbs_round(
    world: &World,
    repo: &osbs_ops_tests::Repo,
    name: &str,
    round: usize,
) -> (Duration, BTreeMap<String, i64>, [i64; 3]) {
    let commit = repo.commit("Dockerfile", &dockerfile(name, round), "Next round");
    let pushed_ms = osbs_common::telemetry::now_ms();
    repo.push(&["main"]);
    let id = osbs_ops_tests::wait_for(Duration::from_secs(120), "the build of the push", || {
        let commit = commit.clone();
        async move {
            world
                .builds()
                .await
                .into_iter()
                .find(|record| record.job.commit == commit)
                .map(|record| record.id)
        }
    })
    .await;
    let record = world
        .wait_state(
            &id,
            &[BuildState::Complete, BuildState::Imported],
            Duration::from_secs(300),
        )
        .await;
    let history = world.store.history(&id).await.expect("history");
    let complete = history
        .iter()
        .find(|entry| entry.to == "complete")
        .expect("a complete entry");
    let at = |state: &str| {
        history
            .iter()
            .find(|entry| entry.to == state)
            .map_or(complete.at_ms, |entry| entry.at_ms)
    };
    let (queued, running) = (at("queued"), at("running"));
    let split = [
        queued - pushed_ms,
        running - queued,
        complete.at_ms - running,
    ];
    let timings: BTreeMap<String, i64> =
        serde_json::from_str(record.field(osbs_common::store::field::TIMINGS)).unwrap_or_default();
    let took = u64::try_from(complete.at_ms - pushed_ms).expect("complete after the push");
    (Duration::from_millis(took), timings, split)
}

fn median(values: &mut [Duration]) -> Duration {
    values.sort_unstable();
    values[values.len() / 2]
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
