//! The web view's benchmark (issue 14), not a timed test: with 100,000 builds recorded, the
//! builds page's latency (p50/p95 over a mix of filters and pages), the delay of a log line
//! from the writer's append to an SSE follower (p50/p95, 50 followers), and the service's
//! resident memory while those 50 follow. Runs the `osbs-web` binary as its own process on
//! the real Redis and RabbitMQ (a key prefix and vhost of its own, removed afterwards).
//!
//! `cargo bench -p osbs-web --bench web` (`BUILDS=20000 FOLLOWERS=10` for a quick run).

use futures::StreamExt;
use osbs_common::store::Store;
use osbs_proto::v1::{BuildJob, Target};
use osbs_testkit::TestEnv;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn job(index: usize) -> BuildJob {
    BuildJob {
        build_id: format!("bench-{index:06}"),
        repo: format!("repo-{}", index % 500),
        namespace: "container".into(),
        branch: ["main", "f41", "f42", "rawhide"][index % 4].into(),
        commit: format!("{index:040x}"),
        submitter: format!("user-{}", index % 50),
        target: Some(Target {
            name: format!(
                "{}-container-candidate",
                ["main", "f41", "f42", "rawhide"][index % 4]
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn seed(store: &Store, builds: usize) -> Duration {
    let started = Instant::now();
    let base = osbs_common::telemetry::now_ms() - builds as i64 * 1000;
    futures::stream::iter(0..builds)
        .map(|index| {
            let store = store.clone();
            async move {
                let job = job(index);
                store
                    .create(
                        &job,
                        &job.build_id,
                        base + index as i64 * 1000,
                        "bench",
                        &[],
                    )
                    .await
                    .expect("create a build record");
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

struct Web {
    child: Child,
    base: String,
}

impl Drop for Web {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_web(env: &TestEnv, dir: &std::path::Path) -> Web {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("osbs.toml");
    std::fs::write(
        &config,
        format!(
            "[amqp]\nurl = \"{}\"\n[redis]\nkey_prefix = \"{}\"\n[telemetry]\nfilter = \"warn\"\n[web]\nhttp_listen = \"127.0.0.1:{port}\"\n",
            env.amqp.url.expose(),
            env.redis.key_prefix
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_osbs-web"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start osbs-web");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "osbs-web did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    Web { child, base }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn builds_page_latency(http: &reqwest::Client, base: &str, rounds: usize) -> Vec<f64> {
    let paths = [
        "/builds",
        "/builds?offset=50000",
        "/builds?repo=repo-7",
        "/builds?repo=repo-7&branch=f41",
        "/builds?submitter=user-3&state=queued",
        "/builds?target=f42-container-candidate&offset=1000",
        "/builds/rows",
    ];
    let mut millis = Vec::new();
    for round in 0..rounds {
        let path = paths[round % paths.len()];
        let started = Instant::now();
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        let body = response.text().await.unwrap();
        millis.push(started.elapsed().as_secs_f64() * 1000.0);
        assert!(body.contains("<tr"), "{path} shows rows");
    }
    millis.sort_by(f64::total_cmp);
    millis
}

/// Each follower reads its build's events; lines carry the writer's clock.
async fn follow(http: reqwest::Client, url: String, lines: usize) -> Vec<f64> {
    let response = http.get(url).send().await.unwrap();
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut delays = Vec::new();
    while delays.len() < lines {
        let Some(Ok(chunk)) = stream.next().await else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            if let Some(sent) = line.strip_prefix("data: t=") {
                let sent: i64 = sent.trim().parse().unwrap_or(0);
                let now = now_micros();
                if sent > 0 {
                    delays.push((now - sent) as f64 / 1000.0);
                }
            }
        }
    }
    delays
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[tokio::main]
async fn main() {
    let builds = number("BUILDS", 100_000);
    let followers = number("FOLLOWERS", 50);
    let lines = number("LINES", 100);
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    // The queues the services declare, so that the web's sampler reads them as in production.
    let bus = osbs_common::Bus::connect(&env.amqp, "bench").await.unwrap();
    bus.declare_topology().await.unwrap();
    bus.close().await;
    store.index_listing().await.unwrap();
    let took = seed(&store, builds).await;
    println!("seeded {builds} builds in {:.1} s", took.as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let web = start_web(&env, dir.path());
    let http = reqwest::Client::new();
    builds_page_latency(&http, &web.base, 20).await; // warm-up
    let pages = builds_page_latency(&http, &web.base, 700).await;
    println!(
        "builds page (client-side, loopback, {} requests): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        pages.len(),
        percentile(&pages, 50.0),
        percentile(&pages, 95.0),
        pages.last().copied().unwrap_or(f64::NAN)
    );
    let rss_idle = rss_kib(web.child.id());

    // 50 followers, each on a build of its own; one writer appends a line to each every 50 ms.
    let mut tasks = Vec::new();
    for follower in 0..followers {
        let url = format!("{}/builds/{}/log/events", web.base, job(follower).build_id);
        tasks.push(tokio::spawn(follow(http.clone(), url, lines)));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut peak_rss = 0;
    for _ in 0..lines {
        for follower in 0..followers {
            let line = format!("t={}", now_micros());
            store
                .append_log(&job(follower).build_id, &[line])
                .await
                .unwrap();
        }
        peak_rss = peak_rss.max(rss_kib(web.child.id()));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut delays = Vec::new();
    for task in tasks {
        delays.extend(
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("followers finish")
                .unwrap(),
        );
    }
    delays.sort_by(f64::total_cmp);
    println!(
        "log line append → SSE follower ({followers} followers, {} lines): p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms",
        delays.len(),
        percentile(&delays, 50.0),
        percentile(&delays, 95.0),
        delays.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "osbs-web RSS: {:.1} MiB idle after the page runs, {:.1} MiB peak with {followers} followers",
        rss_idle as f64 / 1024.0,
        peak_rss as f64 / 1024.0
    );
}
