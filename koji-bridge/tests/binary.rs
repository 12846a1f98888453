//! The `osbs-koji-bridge` binary as operators run it: configured by a file and `OSBS_…`
//! variables, serving `/healthz` and `/metrics`, importing, stopping cleanly on SIGTERM —
//! and never writing the Koji password, session key or reservation token to its log.

mod support;

use osbs_common::store::Store;
use osbs_koji_hub::{HubConfig, KojiHub, TargetSpec, UserSpec};
use osbs_proto::v1::BuildState;
use osbs_testkit::TestEnv;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{PACKAGE, TARGET, eventually, koji_config, publish, record_complete, result};

#[tokio::test]
async fn the_binary_imports_serves_health_stops_on_sigterm_and_never_logs_credentials() {
    let env = TestEnv::new();
    let secret = format!("pw-{}", uuid::Uuid::new_v4().simple());
    let hub = KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", Some(&secret))],
        content_generators: vec![("osbs".into(), vec!["osbs".into()])],
        targets: vec![TargetSpec::named(TARGET, &[PACKAGE])],
        ..HubConfig::default()
    })
    .await
    .unwrap();
    let (_dir, artifacts) = support::temp_dir();
    let config_file = artifacts.join("osbs.toml");
    std::fs::write(
        &config_file,
        "[telemetry]\nformat = \"json\"\nfilter = \"debug,lapin=warn,hyper=info,h2=info,rustls=info\"\n",
    )
    .unwrap();

    let mut koji = koji_config(Some(&hub), &artifacts);
    koji.hub.auth.password = osbs_common::config::Secret::new(secret.clone());
    let client = osbs_koji::KojiClient::connect(&koji.hub).await.unwrap();
    let reservation = client.cg_init_build(PACKAGE, "2.0", "1").await.unwrap();
    client.logout().await;
    let mut build = result("b-binary-1", (PACKAGE, "2.0", "1"), &artifacts).await;
    build.koji_reservation = Some(osbs_proto::v1::KojiReservation {
        build_id: reservation.build_id,
        token: reservation.token.clone(),
    });
    let store = Store::connect(&env.redis).await.unwrap();
    record_complete(&store, &support::bus(&env).await, &build).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_osbs-koji-bridge"))
        .arg("--config")
        .arg(&config_file)
        .envs(env.env_vars())
        .env("OSBS_KOJI__HUB_URL", &hub.url)
        .env("OSBS_KOJI__AUTH__METHOD", "password")
        .env("OSBS_KOJI__AUTH__USER", "osbs")
        .env("OSBS_KOJI__AUTH__PASSWORD", &secret)
        .env("OSBS_KOJI__HTTP_LISTEN", "127.0.0.1:0")
        .env("OSBS_STORAGE__ARTIFACTS_DIR", &artifacts)
        .env_remove("RUST_LOG")
        .env_remove("OSBS_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bridge binary starts");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = std::thread::spawn({
        let lines = lines.clone();
        let stderr = child.stderr.take().unwrap();
        move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                lines.lock().unwrap().push(line);
            }
        }
    });
    let log_has = |text: &str| lines.lock().unwrap().iter().any(|line| line.contains(text));

    eventually("the bridge ready", Duration::from_secs(60), || async {
        log_has("osbs-koji-bridge ready")
    })
    .await;
    let ready = lines
        .lock()
        .unwrap()
        .iter()
        .find(|line| line.contains("osbs-koji-bridge ready"))
        .cloned()
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&ready).expect("JSON log lines");
    let http = ready["http"]
        .as_str()
        .expect("the ready line names the health endpoint")
        .to_owned();
    let health = reqwest::get(format!("http://{http}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let metrics = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("osbs_koji_bridge_"), "{metrics}");

    let bus = support::bus(&env).await;
    publish(&bus, &build).await;
    eventually("the import", Duration::from_secs(60), || async {
        store.require("b-binary-1").await.unwrap().state == BuildState::Imported
    })
    .await;
    assert_eq!(hub.builds().len(), 1);
    let after = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(after.contains("state=\"imported\""), "{after}");

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no clean stop after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    reader.join().unwrap();
    assert!(status.success(), "exit status {status}");

    let log = lines.lock().unwrap().join("\n");
    assert!(
        log.contains("osbs-koji-bridge starting"),
        "the effective configuration is printed"
    );
    assert!(log.contains(r#"\"password\":\"***\""#), "masked: {log}");
    assert!(log.contains("import done"));
    assert!(log.contains("osbs-koji-bridge stopped"));
    // Every session the hub opened — the test's own (logged out before the bridge started)
    // and the bridge's.
    let keys = hub.issued_session_keys();
    assert!(
        keys.len() >= 2,
        "the test and the bridge logged in: {} session(s)",
        keys.len()
    );
    let mut secrets = vec![
        ("Koji password".to_owned(), secret.clone()),
        ("reservation token".to_owned(), reservation.token.clone()),
    ];
    secrets.extend(
        keys.into_iter()
            .map(|key| ("Koji session key".to_owned(), key)),
    );
    osbs_testkit::assert_no_secrets(&[("osbs-koji-bridge".to_owned(), log)], &secrets);
}

// Multi-threaded: the hub double serves on this runtime while the test blocks on the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_that_cannot_log_in_stops_at_once_saying_why() {
    let env = TestEnv::new();
    let hub = KojiHub::start(HubConfig::default()).await.unwrap();
    let (_dir, dir) = support::temp_dir();
    std::fs::write(dir.join("osbs.toml"), "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_osbs-koji-bridge"))
        .arg("--config")
        .arg(dir.join("osbs.toml"))
        .envs(env.env_vars())
        .env("OSBS_KOJI__HUB_URL", &hub.url)
        .env("OSBS_KOJI__AUTH__METHOD", "password")
        .env("OSBS_KOJI__AUTH__USER", "osbs")
        .env("OSBS_KOJI__AUTH__PASSWORD", "not-the-password")
        .env("OSBS_KOJI__HTTP_LISTEN", "127.0.0.1:0")
        .env_remove("OSBS_CONFIG")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot log in to the Koji hub")
            && stderr.contains("invalid username or password"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"));
}
