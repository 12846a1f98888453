//! `koji-hub-double` as the quickstart and the end-to-end test start it: it prints its URL,
//! serves, stops on SIGTERM, and keeps its state in `--state-dir` for the next start.

mod common;

use common::Client;
use serde_json::json;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

fn start(state_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_koji-hub-double"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(state_dir)
        .args(["--user", "osbs:secret:tag", "--cg", "osbs:osbs"])
        .args(["--target", "f41-container-candidate"])
        .args(["--package", "f41-container-candidate:httpd"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("koji-hub-double starts");
    let mut url = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    (child, url.trim().to_owned())
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success(), "a clean stop on SIGTERM");
}

#[tokio::test]
async fn the_binary_serves_and_keeps_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = start(dir.path());
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/kojihub"),
        "{url}"
    );
    assert_eq!(reqwest::get(&url).await.unwrap().status().as_u16(), 405);
    let mut client = Client::login(&url, "osbs", "secret").await;
    let reservation = client
        .call(
            "CGInitBuild",
            vec![
                json!("osbs"),
                json!({"name": "httpd", "version": "1", "release": "1"}),
            ],
        )
        .await
        .unwrap();
    let target = client
        .call("getBuildTarget", vec![json!("f41-container-candidate")])
        .await
        .unwrap();
    assert_eq!(target["build_tag_name"], json!("f41-container-build"));
    stop(child);

    let (child, url) = start(dir.path());
    let mut client = Client::login(&url, "osbs", "secret").await;
    let build = client
        .call("getBuild", vec![json!("httpd-1-1")])
        .await
        .unwrap();
    assert_eq!(
        build["id"], reservation["build_id"],
        "the state survived the restart"
    );
    assert_eq!(build["state"], json!(0));
    stop(child);
}
