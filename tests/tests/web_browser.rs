//! Issue 14's web view in a real browser (Debian's chromium driven through chromedriver): a
//! build started by a dist-git push appears in the builds list without a reload; its page
//! shows the log lines as the worker writes them — down to a line only the build's last step
//! prints — then the final state; a filter narrows the list; the queues page shows a dead
//! letter's reason. No secret reaches a page. With `OSBS_WEB_SCREENSHOTS=<dir>` it also saves
//! the screenshots kept in docs/screenshots/.

use fantoccini::{Client, ClientBuilder, Locator};
use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};
use osbs_common::Bus;
use osbs_common::bus::Outgoing;
use osbs_e2e::{Cluster, Service, free_port, wait_healthy};
use osbs_proto::BuildState;
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, Target};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a port of its own; killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for (what, path) in [("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER)] {
            assert!(
                Path::new(path).exists(),
                "{what} is missing ({path}): the browser test needs Debian's chromium and \
                 chromium-driver; install them with `apt-get install -y chromium chromium-driver` \
                 (deploy/setup.sh does)"
            );
        }
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn browser(&self, width: u32, height: u32) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", format!("--window-size={width},{height}")],
            }),
        );
        // Both rustls providers are in the build (aws-lc-rs and, through another crate,
        // ring): name one, or the WebDriver client's TLS set-up panics. (chromedriver is
        // plain http; the connector is built all the same.)
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        ClientBuilder::rustls()
            .expect("TLS roots for the WebDriver client")
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a chromium session through chromedriver")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `check` returns something, polling the browser's page.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text_of(browser: &Client, css: &str) -> String {
    match browser.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn screenshot(browser: &Client, name: &str) {
    let Some(dir) = std::env::var_os("OSBS_WEB_SCREENSHOTS").map(PathBuf::from) else {
        return;
    };
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let png = browser.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(name), png).expect("write the screenshot");
}

const DOCKERFILE: &str = r#"FROM 127.0.0.1:5000/osbs/busybox:latest
LABEL com.redhat.component="e2e-container" \
      name="e2e/web" \
      version="1.0"
RUN echo "an early step"
RUN sleep 3
RUN echo "the-late-line-@MARK@"
"#;

/// osbs-web on the cluster's configuration plus a `[web]` section; its base URL.
async fn start_web(cluster: &Cluster) -> (Service, String) {
    let port = free_port();
    let config = cluster.dir.path().join("web.toml");
    let mut text = std::fs::read_to_string(&cluster.config).unwrap();
    text.push_str(&format!(
        "\n[web]\nhttp_listen = \"127.0.0.1:{port}\"\nqueue_refresh_secs = 1\n\
         git_web_url = \"https://src.example.org\"\nkoji_web_url = \"https://koji.example.org/koji\"\n"
    ));
    std::fs::write(&config, text).unwrap();
    let web = Service::start("web", "osbs-web", &config, cluster.dir.path());
    wait_healthy(&web, port, Duration::from_secs(60)).await;
    let base = format!("http://127.0.0.1:{port}");

    (web, base)
}

/// Another repository's build, recorded as the dispatcher records one, for the filter.
async fn record_another_build(cluster: &Cluster) {
    let other = BuildJob {
        build_id: format!("other-{}", uuid::Uuid::new_v4().simple()),
        repo: "other-web".into(),
        namespace: "container".into(),
        branch: "main".into(),
        submitter: "ann".into(),
        target: Some(Target {
            name: osbs_e2e::TARGET.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let now = osbs_common::telemetry::now_ms();
    cluster
        .store
        .create(&other, &other.build_id, now, "test", &[])
        .await
        .unwrap();
}

/// Pushes a build while the list is open; returns its link once its row shows, unreloaded.
async fn a_pushed_build_appears(
    browser: &Client,
    base: &str,
    cluster: &Cluster,
    mark: &str,
) -> String {
    browser.goto(&format!("{base}/builds")).await.unwrap();
    browser
        .execute("window.notReloaded = true;", vec![])
        .await
        .unwrap();
    let repo = cluster.dist_git_repo("web-e2e");
    repo.commit_and_push(
        &[("Dockerfile", DOCKERFILE.replace("@MARK@", mark).as_bytes())],
        "A build to watch",
    );

    // The new build's row shows up on the page already open.
    let link = eventually(
        "the pushed build's row",
        Duration::from_secs(60),
        || async {
            let rows = text_of(browser, "#rows").await;
            if !rows.contains("web-e2e") {
                return None;
            }
            let row = browser
                .find(Locator::XPath(
                    "//tbody[@id='rows']/tr[td[@data-label='Repository']='web-e2e']//a",
                ))
                .await
                .ok()?;
            row.attr("href").await.ok().flatten()
        },
    )
    .await;
    let still_same_page = browser
        .execute("return window.notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        still_same_page,
        serde_json::json!(true),
        "the list was reloaded"
    );
    screenshot(browser, "builds.png").await;
    link
}

/// The build's page: the log as the worker writes it, to the last step's line, then the end
/// and the final state; the page's source.
async fn its_page_follows_the_log(
    browser: &Client,
    base: &str,
    cluster: &Cluster,
    link: &str,
    mark: &str,
) -> String {
    browser.goto(&format!("{base}{link}")).await.unwrap();
    let late_line = format!("the-late-line-{mark}");
    eventually(
        "the late log line in the page",
        Duration::from_secs(240),
        || async {
            text_of(browser, "#log")
                .await
                .contains(&late_line)
                .then_some(())
        },
    )
    .await;
    let id = link.trim_start_matches("/builds/").to_owned();
    let shown = eventually(
        "the final state on the page",
        Duration::from_secs(120),
        || async {
            let state = text_of(browser, "#state").await;
            ["complete", "imported", "failed"]
                .contains(&state.as_str())
                .then_some(state)
        },
    )
    .await;
    let record = cluster
        .wait_for_state(
            &id,
            &[
                BuildState::Imported,
                BuildState::Failed,
                BuildState::ImportFailed,
            ],
            Duration::from_secs(120),
        )
        .await;
    assert_eq!(
        record.state,
        BuildState::Imported,
        "{}\n{}",
        record.error(),
        cluster.logs()
    );
    assert!(
        shown == "complete" || shown == "imported",
        "the page ended on {shown}"
    );
    assert_eq!(
        text_of(browser, "#logstatus").await,
        "build ended: complete"
    );
    let log = text_of(browser, "#log").await;
    assert!(
        log.find("an early step").unwrap() < log.find(&late_line).unwrap(),
        "log lines in order:\n{log}"
    );
    the_page_reloads_whole(browser, &late_line).await
}

/// Reloaded after the end, the page shows the final state and the whole log again; its
/// source.
async fn the_page_reloads_whole(browser: &Client, late_line: &str) -> String {
    browser.refresh().await.unwrap();
    eventually(
        "the reloaded page's state",
        Duration::from_secs(20),
        || async { (text_of(browser, "#state").await == "imported").then_some(()) },
    )
    .await;
    eventually(
        "the log replayed after reload",
        Duration::from_secs(20),
        || async {
            text_of(browser, "#log")
                .await
                .contains(late_line)
                .then_some(())
        },
    )
    .await;
    screenshot(browser, "build.png").await;
    let build_page = browser.source().await.unwrap();
    assert!(
        build_page.contains("https://koji.example.org/koji/buildinfo?buildID="),
        "Koji build linked"
    );
    browser
        .execute("document.getElementById('log').scrollIntoView();", vec![])
        .await
        .unwrap();
    screenshot(browser, "build-log.png").await;
    build_page
}

/// A filter narrows the list.
async fn a_filter_narrows_the_list(browser: &Client, base: &str) {
    browser.goto(&format!("{base}/builds")).await.unwrap();
    let all = text_of(browser, "#rows").await;
    assert!(
        all.contains("web-e2e") && all.contains("other-web"),
        "{all}"
    );
    let form = browser.form(Locator::Css("form.filters")).await.unwrap();
    form.set_by_name("repo", "other-web").await.unwrap();
    form.submit().await.unwrap();
    eventually("the filtered list", Duration::from_secs(20), || async {
        let rows = text_of(browser, "#rows").await;
        (rows.contains("other-web") && !rows.contains("web-e2e")).then_some(())
    })
    .await;
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("repo=other-web")
    );
}

/// A dead letter, with the reason the bus records, on the queues page; the page's source.
async fn the_queues_show_a_dead_letter(
    browser: &Client,
    base: &str,
    cluster: &Cluster,
    id: &str,
    mark: &str,
) -> String {
    let bus = Bus::connect(&cluster.env.amqp, "test").await.unwrap();
    let reason = format!("registry unreachable while pushing ({mark})");
    let mut headers = FieldTable::default();
    headers.insert(
        names::HEADER_DEAD_REASON.into(),
        AMQPValue::LongString(LongString::from(reason.clone().into_bytes())),
    );
    headers.insert(
        names::HEADER_DEAD_AT.into(),
        AMQPValue::LongString(LongString::from(
            osbs_proto::external::iso8601(osbs_common::telemetry::now_ms()).into_bytes(),
        )),
    );
    let body = osbs_proto::Message::encode_to_vec(&BuildJob {
        build_id: id.to_owned(),
        ..Default::default()
    });
    bus.publish(Outgoing {
        exchange: names::EXCHANGE_DEAD,
        routing_key: names::QUEUE_JOBS,
        body: &body,
        properties: BasicProperties::default().with_headers(headers),
        mandatory: true,
    })
    .await
    .unwrap();
    browser.goto(&format!("{base}/queues")).await.unwrap();
    eventually(
        "the dead letter's reason on the queues page",
        Duration::from_secs(30),
        || async {
            text_of(browser, "#queues")
                .await
                .contains(&reason)
                .then_some(())
        },
    )
    .await;
    screenshot(browser, "queues.png").await;
    let queues_page = browser.source().await.unwrap();
    bus.close().await;
    queues_page
}

/// The builds page on a phone-sized screen.
async fn the_list_on_a_phone(driver: &Driver, base: &str) {
    let phone = driver.browser(390, 844).await;
    phone.goto(&format!("{base}/builds")).await.unwrap();
    eventually("the list on a phone", Duration::from_secs(20), || async {
        text_of(&phone, "#rows")
            .await
            .contains("web-e2e")
            .then_some(())
    })
    .await;
    screenshot(&phone, "builds-phone.png").await;
    phone.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_build_is_followed_live_in_a_browser() {
    let driver = Driver::start();
    let cluster = Cluster::start().await;
    let (web, base) = start_web(&cluster).await;
    record_another_build(&cluster).await;
    let browser = driver.browser(1280, 900).await;
    let mark = uuid::Uuid::new_v4().simple().to_string();
    let link = a_pushed_build_appears(&browser, &base, &cluster, &mark).await;
    let build_page = its_page_follows_the_log(&browser, &base, &cluster, &link, &mark).await;
    a_filter_narrows_the_list(&browser, &base).await;
    let id = link.trim_start_matches("/builds/");
    let queues_page = the_queues_show_a_dead_letter(&browser, &base, &cluster, id, &mark).await;
    browser.close().await.unwrap();
    the_list_on_a_phone(&driver, &base).await;
    cluster.assert_no_secrets_in(&[
        ("the build page".into(), build_page),
        ("the queues page".into(), queues_page),
        ("osbs-web".into(), web.output()),
    ]);
}
