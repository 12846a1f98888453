//! The web view against the real Redis and RabbitMQ, over HTTP: the builds page newest first
//! with filters and pages, a build's page with its facts and links, the live log over
//! Server-Sent Events to its end, the queues page with a dead letter's reason (and the dead
//! letter still there), health and metrics, and no secret in any page.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use osbs_common::Bus;
use osbs_common::bus::Outgoing;
use osbs_common::config::CredentialUrl;
use osbs_common::state::{self, StateChange};
use osbs_common::store::{Store, field};
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildState, Target};
use osbs_testkit::TestEnv;
use osbs_web::Config;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn job(id: &str, repo: &str, branch: &str) -> BuildJob {
    BuildJob {
        build_id: id.into(),
        repo: repo.into(),
        namespace: "container".into(),
        branch: branch.into(),
        commit: "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into(),
        submitter: "jdoe".into(),
        target: Some(Target {
            name: format!("{branch}-container-candidate"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A RabbitMQ user of the test's own with a long password, so that the scan for secrets
/// has something to look for; deleted on drop.
struct BrokerUser {
    name: String,
    password: String,
}

impl BrokerUser {
    fn new(env: &TestEnv) -> BrokerUser {
        let name = format!("web-{}", env.vhost);
        let password = format!("web-secret-{}", uuid::Uuid::new_v4().simple());
        osbs_testkit::run(&["rabbitmqctl", "add_user", &name, &password]);
        osbs_testkit::run(&[
            "rabbitmqctl",
            "set_permissions",
            "-p",
            &env.vhost,
            &name,
            ".*",
            ".*",
            ".*",
        ]);
        BrokerUser { name, password }
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_user", &self.name])
            .output();
    }
}

/// The web view running in this process on a free port.
struct Web {
    base: String,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _artifacts: tempfile::TempDir,
}

impl Web {
    async fn start(env: &TestEnv, user: &BrokerUser, page_size: usize) -> Web {
        let artifacts = tempfile::tempdir().unwrap();
        let mut config = Config {
            redis: env.redis.clone(),
            amqp: env.amqp.clone(),
            ..Config::default()
        };
        config.amqp.url = CredentialUrl::new(format!(
            "amqp://{}:{}@127.0.0.1:5672/{}",
            user.name, user.password, env.vhost
        ));
        config.web.http_listen = "127.0.0.1:0".parse().unwrap();
        config.web.page_size = page_size;
        config.web.queue_refresh_secs = 1;
        config.web.git_web_url = "https://src.example.org".into();
        config.web.koji_web_url = "https://koji.example.org/koji".into();
        config.storage.artifacts_dir = artifacts.path().to_owned();
        let shutdown = CancellationToken::new();
        let (bound, address) = tokio::sync::oneshot::channel();
        let token = shutdown.clone();
        tokio::spawn(async move {
            if let Err(error) = osbs_web::run(config, token, Some(bound)).await {
                panic!("osbs-web stopped: {error:#}");
            }
        });
        let address = address.await.expect("osbs-web bound its port");
        Web {
            base: format!("http://{address}"),
            http: reqwest::Client::new(),
            shutdown,
            _artifacts: artifacts,
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Waits until `path` shows `text`.
    async fn wait_for(&self, path: &str, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, body) = self.get(path).await;
            if body.contains(text) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never showed {text:?}:\n{body}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn position(body: &str, text: &str) -> usize {
    body.find(text)
        .unwrap_or_else(|| panic!("{text:?} not in the page:\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_are_listed_newest_first_filtered_and_paged() {
    let env = TestEnv::new();
    let user = BrokerUser::new(&env);
    let store = Store::connect(&env.redis).await.unwrap();
    for (at, (id, repo, branch)) in [
        ("w1", "httpd", "f41"),
        ("w2", "nginx", "f41"),
        ("w3", "httpd", "f42"),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .create(&job(id, repo, branch), id, 1_000 + at as i64, "test", &[])
            .await
            .unwrap();
    }
    let web = Web::start(&env, &user, 2).await;
    let (status, page) = web.get("/builds").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"viewport\""), "usable on a phone");
    assert!(
        position(&page, "/builds/w3\"") < position(&page, "/builds/w2\""),
        "newest first"
    );
    assert!(!page.contains("/builds/w1\""), "page size 2");
    assert!(page.contains("older →"), "{page}");
    let (_, older) = web.get("/builds?offset=2").await;
    assert!(older.contains("/builds/w1\"") && older.contains("← newer"));

    let (_, httpd_f42) = web.get("/builds?repo=httpd&branch=f42").await;
    assert!(httpd_f42.contains("/builds/w3\"") && !httpd_f42.contains("/builds/w1\""));
    let (_, by_target) = web
        .get("/builds?target=f41-container-candidate&submitter=jdoe")
        .await;
    assert!(by_target.contains("/builds/w2\"") && by_target.contains("/builds/w1\""));
    assert!(!by_target.contains("/builds/w3\""));
    let (status, refused) = web.get("/builds?state=done").await;
    assert_eq!(status, 400);
    assert!(refused.contains("done"), "{refused}");

    // The fragment the page polls: rows and the total, so a new build shows without reload.
    store
        .create(&job("w4", "httpd", "f41"), "w4", 2_000, "test", &[])
        .await
        .unwrap();
    let response = web
        .http
        .get(format!("{}/builds/rows", web.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total"], "4");
    assert!(response.text().await.unwrap().contains("/builds/w4\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_page_shows_its_facts_and_follows_its_log_to_the_end() {
    let env = TestEnv::new();
    let user = BrokerUser::new(&env);
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    store
        .create(&job("p1", "httpd", "f41"), "p1", 1_000, "test", &[])
        .await
        .unwrap();
    let running = StateChange::new("p1", BuildState::Running, "started", "worker-1");
    state::change(&store, &bus, running).await.unwrap();
    store
        .append_log("p1", &["Step 1/3 : FROM base".into()])
        .await
        .unwrap();
    let web = Web::start(&env, &user, 50).await;

    let mut events = web
        .http
        .get(format!("{}/builds/p1/log/events", web.base))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let mut seen = String::new();
    let mut read_until = async |text: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.contains(text) {
            let chunk = tokio::time::timeout_at(deadline.into(), events.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                other => {
                    panic!("the log stream ended or stalled before {text:?} ({other:?}):\n{seen}")
                }
            }
        }
        seen.clone()
    };
    read_until("data: Step 1/3 : FROM base").await;
    store
        .append_log("p1", &["Step 3/3 : a late line\rwith progress".into()])
        .await
        .unwrap();
    let late = read_until("data: with progress").await;
    assert!(late.contains("event: line"), "{late}");

    let fields = vec![
        (field::NVR, "httpd-2.4-1".to_owned()),
        (
            field::PULLSPECS,
            r#"["127.0.0.1:5000/ns/httpd:2.4-1"]"#.to_owned(),
        ),
        (field::DIGEST, "sha256:feedface".to_owned()),
        (
            field::TIMINGS,
            r#"{"clone":120,"build":3400,"push":800}"#.to_owned(),
        ),
        (field::KOJI_BUILD_ID, "42".to_owned()),
    ];
    store.end_log("p1", BuildState::Complete).await.unwrap();
    for to in [BuildState::Pushing, BuildState::Complete] {
        let change =
            StateChange::new("p1", to, "built and pushed", "worker-1").with_fields(fields.clone());
        state::change(&store, &bus, change).await.unwrap();
    }
    let ended = read_until("event: end").await;
    assert!(ended.contains("data: complete"), "{ended}");
    let rest = tokio::time::timeout(Duration::from_secs(5), events.chunk()).await;
    assert!(
        matches!(rest, Ok(Ok(None))),
        "the stream closes after the end: {rest:?}"
    );

    let (status, page) = web.get("/builds/p1").await;
    assert_eq!(status, 200);
    for shown in [
        "httpd-2.4-1",
        "value=\"127.0.0.1:5000/ns/httpd:2.4-1\"",
        "sha256:feedface",
        "https://src.example.org/container/httpd/c/3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce",
        "https://koji.example.org/koji/buildinfo?buildID=42",
        "class=\"bar\" style=\"width:100%\"",
        "running → pushing",
        "/builds/p1/log.txt",
    ] {
        assert!(page.contains(shown), "{shown:?} not shown:\n{page}");
    }
    let (_, raw) = web.get("/builds/p1/log.txt").await;
    assert_eq!(
        raw,
        "Step 1/3 : FROM base\nStep 3/3 : a late line\rwith progress\n"
    );
    let (status, _) = web.get("/builds/..%2Fx").await;
    assert_eq!(status, 404);
    let (status, _) = web.get("/builds/nope").await;
    assert_eq!(status, 404);
    let (status, metrics) = web.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("osbs_web_step_seconds"), "{metrics}");
    assert_eq!(web.get("/healthz").await.0, 200);
    osbs_testkit::assert_no_secrets(
        &[("the build page".into(), page), ("the raw log".into(), raw)],
        &[("AMQP password".into(), user.password.clone())],
    );
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queues_page_shows_dead_letters_and_leaves_them_there() {
    let env = TestEnv::new();
    let user = BrokerUser::new(&env);
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    let mut headers = FieldTable::default();
    let reason = "registry 127.0.0.1:5999 refused the push: connection refused";
    headers.insert(
        names::HEADER_DEAD_REASON.into(),
        AMQPValue::LongString(LongString::from(reason.as_bytes().to_vec())),
    );
    headers.insert(
        names::HEADER_DEAD_AT.into(),
        AMQPValue::LongString(LongString::from(
            osbs_proto::external::iso8601(osbs_common::telemetry::now_ms() - 120_000).into_bytes(),
        )),
    );
    let body = osbs_proto::Message::encode_to_vec(&job("d1", "httpd", "f41"));
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_DEAD,
        routing_key: names::QUEUE_JOBS,
        body: &body,
        properties: BasicProperties::default().with_headers(headers),
        mandatory: true,
    })
    .await
    .unwrap();
    let web = Web::start(&env, &user, 50).await;
    let page = web.wait_for("/queues", "refused the push").await;
    assert!(
        page.contains("osbs.jobs.dead") && page.contains("/builds/d1"),
        "{page}"
    );
    assert!(page.contains("2 min"), "the dead letter's age: {page}");
    assert!(page.contains("osbs.events"), "every queue listed: {page}");
    // Peeked, not taken: still there after several readings.
    web.wait_for("/queues/fragment", "/s</td>").await;
    assert_eq!(
        bus.queue_depth(&names::dead_queue(names::QUEUE_JOBS))
            .await
            .unwrap()
            .messages,
        1
    );
    osbs_testkit::assert_no_secrets(
        &[("the queues page".into(), page)],
        &[("AMQP password".into(), user.password.clone())],
    );
    bus.close().await;
}
