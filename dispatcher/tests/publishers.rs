//! The dispatcher with software written by others around it: Fedora's own fedora-messaging
//! Python client publishing a dist-git push, and the `osbs-dispatcher` binary run as an
//! operator runs it (config file, environment, SIGTERM).

mod support;

use osbs_common::bus::Bus;
use osbs_common::store::Store;
use osbs_dispatcher::Routing;
use osbs_dispatcher::decide::{Decision, Incoming, decide};
use osbs_testkit::TestEnv;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{Event, Harness, PATIENCE, fixtures_dir, http_get};

/// A virtualenv with fedora-messaging and the dist-git hook's schema package from PyPI, made
/// once under the target directory.
fn fedora_messaging_python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fedora-messaging-venv");
    let python = venv.join("bin/python");
    let importable = |python: &PathBuf| {
        Command::new(python)
            .args([
                "-c",
                "import fedora_messaging, fedora_messaging_git_hook_messages",
            ])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if importable(&python) {
        return python;
    }
    let made = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .output()
        .expect("python3 runs (apt-get install -y python3 python3-venv; deploy/setup.sh does)");
    assert!(
        made.status.success(),
        "python3 -m venv {} failed: {}. Install python3-venv (deploy/setup.sh does)",
        venv.display(),
        String::from_utf8_lossy(&made.stderr)
    );
    let installed = Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "fedora-messaging>=3.3,<4",
            "fedora-messaging-git-hook-messages>=1.0.2,<2",
        ])
        .output()
        .expect("pip runs");
    assert!(
        installed.status.success() && importable(&python),
        "installing fedora-messaging from PyPI into {} failed (is PyPI reachable?): {}",
        venv.display(),
        String::from_utf8_lossy(&installed.stderr)
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_published_by_fedora_messaging_makes_the_same_build_as_the_fixture() {
    let python = tokio::task::spawn_blocking(fedora_messaging_python)
        .await
        .unwrap();
    let harness = Harness::start().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("fedora-messaging.toml");
    std::fs::write(
        &conf,
        format!(
            "amqp_url = \"{}\"\npublish_exchange = \"amq.topic\"\ntopic_prefix = \"{}\"\n",
            harness.env.amqp.url.expose(),
            harness.config.amqp.topic_prefix
        ),
    )
    .unwrap();
    let fixture_path = fixtures_dir().join("git-receive-v1.json");
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fedora_messaging_publish.py");
    let published = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(fixture_path)
            .env("FEDORA_MESSAGING_CONF", conf)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        published.status.success(),
        "fedora-messaging could not publish: {}",
        String::from_utf8_lossy(&published.stderr)
    );
    let message_id = String::from_utf8_lossy(&published.stdout).trim().to_owned();
    harness.wait_for_events(1).await;
    let jobs = harness.jobs().await;
    assert_eq!(jobs.len(), 1, "the message was dispatched: {jobs:?}");
    let job = &jobs[0].0;
    assert_eq!(job.event_id, message_id);

    // The build the fixture itself decides on.
    let fixture = Event::fixture("git-receive-v1.json");
    let routing = Routing::new(&harness.config.dispatcher).unwrap();
    let Decision::Enqueue(plan) = decide(
        &Incoming {
            routing_key: &fixture.routing_key,
            content_encoding: fixture.content_encoding.as_deref(),
            message_id: fixture.message_id.as_deref(),
            headers: &fixture.headers,
            body: &fixture.body,
        },
        &routing,
        0,
    ) else {
        panic!("the fixture is a job");
    };
    let expected = &plan.job;
    assert_eq!(
        (
            &job.repo,
            &job.namespace,
            &job.git_url,
            &job.commit,
            &job.branch,
            &job.submitter,
            job.trigger
        ),
        (
            &expected.repo,
            &expected.namespace,
            &expected.git_url,
            &expected.commit,
            &expected.branch,
            &expected.submitter,
            expected.trigger
        )
    );
    assert_eq!(job.target, expected.target);
    assert_eq!(job.options, expected.options);

    // And it is one build: the fixture published now is answered by it.
    harness.publish(&fixture).await;
    harness.wait_for_events(2).await;
    assert_eq!(
        harness
            .counter("osbs_dispatcher_events_total{outcome=\"duplicate\"}")
            .await,
        1
    );
    assert!(harness.jobs().await.is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_dispatches_and_stops_cleanly_on_sigterm() {
    let env = TestEnv::new();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("osbs.toml");
    std::fs::write(
        &config,
        format!(
            // The fixture's commit is in no repository: trust the event (tests/distgit.rs
            // covers the check against dist-git).
            "[dispatcher]\nhttp_listen = \"127.0.0.1:{port}\"\nprefetch = 8\nresolve_push_tip = false\n\n[worker]\nignored = \"another service's section\"\n"
        ),
    )
    .unwrap();
    let log = dir.path().join("dispatcher.log");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_osbs-dispatcher"))
        .arg("--config")
        .arg(&config)
        .envs(env.env_vars())
        .env("RUST_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok()
            && http_get(addr, "/healthz").await.0 == 200
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "osbs-dispatcher exited: {}",
            std::fs::read_to_string(&log).unwrap()
        );
        assert!(tokio::time::Instant::now() < deadline, "never healthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let bus = Bus::connect(&env.amqp, "dispatcher-test").await.unwrap();
    let channel = bus.channel().await.unwrap();
    support::publish(&bus, &Event::fixture("git-receive-v1.json")).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let job = loop {
        if let Some((job, _)) = support::jobs(&channel).await.pop() {
            break job;
        }
        assert!(tokio::time::Instant::now() < deadline, "no job");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let store = Store::connect(&env.redis).await.unwrap();
    assert!(store.get(&job.build_id).await.unwrap().is_some());
    // The event's outcome is counted once its ack is sent, a moment after its job is in the
    // queue (acks go in runs: dispatcher/src/acks.rs).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let metrics = http_get(addr, "/metrics").await.1;
        if metrics.contains("osbs_dispatcher_events_total{outcome=\"enqueued\"} 1") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let pid = child.id().unwrap().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("stops after SIGTERM")
        .unwrap();
    let output = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{status}: {output}");
    assert!(output.contains("osbs-dispatcher starting"), "{output}");
    assert!(
        output.contains("guest:***@"),
        "the effective config is printed masked: {output}"
    );
    assert!(
        !output.contains("guest:guest@"),
        "no password in the log: {output}"
    );
    assert!(output.contains("osbs-dispatcher stopped"), "{output}");
    bus.close().await;
}
