//! The hub double's sessions, uploads, reservations, releases, tagging, TLS logins, and
//! state kept across a restart — each behaving, and failing, as the real hub does.

mod common;

use base64::Engine;
use common::{Client, adler32_hex, md5_hex};
use osbs_koji_hub::{HubConfig, KojiHub, TargetSpec, TestPki, UserSpec};
use serde_json::json;

fn config() -> HubConfig {
    HubConfig {
        users: vec![
            UserSpec::new("osbs", Some("osbs")),
            UserSpec::new("releng", Some("releng")).with_perms(&["tag"]),
            UserSpec::new("other", Some("other")),
        ],
        content_generators: vec![("osbs".into(), vec!["osbs".into(), "releng".into()])],
        targets: vec![TargetSpec::named("f41-container-candidate", &["httpd"])],
        ..HubConfig::default()
    }
}

#[tokio::test]
async fn transport_logins_and_call_numbers() {
    let hub = KojiHub::start(config()).await.unwrap();
    let get = reqwest::get(&hub.url).await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    assert_eq!(get.headers()["allow"], "POST");

    let mut anonymous = Client::new(&hub.url);
    assert_eq!(
        anonymous.call("getLoggedInUser", vec![]).await,
        Ok(json!(null))
    );
    assert_eq!(
        anonymous
            .call("login", vec![json!("osbs"), json!("wrong")])
            .await,
        Err((1002, "invalid username or password".into()))
    );
    assert_eq!(
        anonymous.call("noSuchMethod", vec![]).await,
        Err((1000, "Invalid method: noSuchMethod".into()))
    );
    assert_eq!(
        anonymous.call("CGImport", vec![json!({})]).await,
        Err((
            1019,
            "CGImport() missing 1 required positional argument: 'directory'".into()
        ))
    );

    let mut client = Client::login(&hub.url, "osbs", "osbs").await;
    let me = client.call("getLoggedInUser", vec![]).await.unwrap();
    assert_eq!(me["name"], json!("osbs"));
    // A data-changing call with a call number already used is refused (RetryError), an
    // older one is out of sequence.
    let mut replay = client.clone();
    client
        .call(
            "CGInitBuild",
            vec![
                json!("osbs"),
                json!({"name": "a", "version": "1", "release": "1"}),
            ],
        )
        .await
        .unwrap();
    let (code, _) = replay
        .call(
            "CGInitBuild",
            vec![
                json!("osbs"),
                json!({"name": "b", "version": "1", "release": "1"}),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(code, 1009, "same call number twice");

    hub.set_offline(true);
    assert_eq!(
        client.call("getLoggedInUser", vec![]).await,
        Err((1014, "server is offline".into()))
    );
    hub.set_offline(false);
    assert!(client.call("getLoggedInUser", vec![]).await.is_ok());
}

#[tokio::test]
async fn uploads_fast_and_legacy() {
    let hub = KojiHub::start(config()).await.unwrap();
    let mut client = Client::login(&hub.url, "osbs", "osbs").await;
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let (first, second) = data.split_at(60_000);

    // Fast upload: chunks verified by adler32, then checkUpload on the whole file.
    let answer = client
        .upload("up/1", "a.tar.gz", 0, first.to_vec(), false)
        .await
        .unwrap();
    assert_eq!(
        answer,
        json!({"size": 60_000, "fileverify": "adler32", "offset": 0, "hexdigest": adler32_hex(first)})
    );
    client
        .upload("up/1", "a.tar.gz", 60_000, second.to_vec(), false)
        .await
        .unwrap();
    let check = client
        .call_kw(
            "checkUpload",
            vec![json!("up/1"), json!("a.tar.gz")],
            json!({"verify": "adler32"}),
        )
        .await
        .unwrap();
    assert_eq!(check["size"], json!(100_000));
    assert_eq!(check["hexdigest"], json!(adler32_hex(&data)));
    // A chunk sent again at its offset replaces what follows (resuming is idempotent).
    client
        .upload("up/1", "a.tar.gz", 60_000, second.to_vec(), false)
        .await
        .unwrap();
    let again = client
        .call_kw(
            "checkUpload",
            vec![json!("up/1"), json!("a.tar.gz")],
            json!({"verify": "adler32"}),
        )
        .await
        .unwrap();
    assert_eq!(again["hexdigest"], check["hexdigest"]);
    assert_eq!(
        client
            .call("checkUpload", vec![json!("up/1"), json!("none")])
            .await,
        Ok(json!(null))
    );

    let (code, text) = client
        .upload("up/1", "a.tar.gz", 0, b"x".to_vec(), false)
        .await
        .unwrap_err();
    assert_eq!(code, 1000);
    assert!(
        text.starts_with("upload path exists: ") && text.ends_with("work/up/1/a.tar.gz"),
        "{text}"
    );
    assert!(
        client
            .upload("up/1", "a.tar.gz", 0, b"x".to_vec(), true)
            .await
            .is_ok(),
        "overwrite"
    );
    assert_eq!(
        client.upload("up/1", "a/b", 0, b"x".to_vec(), false).await,
        Err((1000, "Invalid upload filename: a/b".into()))
    );
    assert_eq!(
        client.upload("../up", "c", 0, b"x".to_vec(), false).await,
        Err((1000, "Invalid upload directory: ../up".into()))
    );
    let mut other = Client::login(&hub.url, "other", "other").await;
    assert_eq!(
        other.upload("up/1", "mine", 0, b"x".to_vec(), false).await,
        Err((1000, "Invalid upload directory, not owner: up/1".into()))
    );
    let mut anonymous = Client::new(&hub.url);
    assert_eq!(
        anonymous.upload("up/2", "x", 0, b"x".to_vec(), false).await,
        Err((1004, "you must be logged-in to upload a file".into()))
    );

    // Legacy uploadFile: base64 chunks with their md5, then offset -1 closes the file.
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let put = |offset: i64, bytes: &[u8], size: usize, md5: String| {
        vec![
            json!("legacy/1"),
            json!("b.log"),
            json!(size),
            json!(md5),
            json!(offset),
            json!(b64(bytes)),
        ]
    };
    assert_eq!(
        client
            .call("uploadFile", put(0, first, first.len(), md5_hex(first)))
            .await,
        Ok(json!(true))
    );
    assert_eq!(
        client
            .call(
                "uploadFile",
                put(60_000, second, second.len(), "0".repeat(32))
            )
            .await,
        Ok(json!(false)),
        "a digest mismatch is False, not a fault"
    );
    assert_eq!(
        client
            .call(
                "uploadFile",
                put(60_000, second, second.len(), md5_hex(second))
            )
            .await,
        Ok(json!(true))
    );
    assert_eq!(
        client
            .call("uploadFile", put(-1, b"", data.len(), md5_hex(&data)))
            .await,
        Ok(json!(true))
    );
    assert_eq!(
        client
            .call("uploadFile", put(-1, b"", data.len(), md5_hex(b"other")))
            .await,
        Ok(json!(false))
    );
    assert!(
        hub.uploaded_files()
            .contains(&("legacy/1/b.log".into(), 100_000))
    );

    // A hub without fast upload: no checkUpload.
    let legacy = KojiHub::start(HubConfig {
        fast_upload: false,
        ..config()
    })
    .await
    .unwrap();
    let mut old = Client::login(&legacy.url, "osbs", "osbs").await;
    assert_eq!(
        old.call("checkUpload", vec![json!("x"), json!("y")]).await,
        Err((1000, "Invalid method: checkUpload".into()))
    );
}

#[tokio::test]
async fn reservations_releases_and_refunds() {
    let hub = KojiHub::start(config()).await.unwrap();
    let mut client = Client::login(&hub.url, "osbs", "osbs").await;
    let nvr = |release: &str| json!({"name": "httpd", "version": "2.4", "release": release});
    assert_eq!(
        client
            .call(
                "getNextRelease",
                vec![json!({"name": "httpd", "version": "2.4"})]
            )
            .await,
        Ok(json!("1"))
    );
    let first = client
        .call("CGInitBuild", vec![json!("osbs"), nvr("1")])
        .await
        .unwrap();
    assert_eq!(
        client
            .call("CGInitBuild", vec![json!("osbs"), nvr("1")])
            .await,
        Err((1000, "Build is already reserved".into()))
    );
    // A reserved (BUILDING) build counts for the next release.
    assert_eq!(
        client
            .call(
                "getNextRelease",
                vec![json!({"name": "httpd", "version": "2.4"})]
            )
            .await,
        Ok(json!("2"))
    );
    let build_id = first["build_id"].clone();
    assert_eq!(
        client
            .call(
                "CGRefundBuild",
                vec![json!("osbs"), build_id.clone(), json!("nope"), json!(3)]
            )
            .await,
        Err((1000, format!("Token doesn't match build ID {build_id}")))
    );
    assert_eq!(
        client
            .call(
                "CGRefundBuild",
                vec![
                    json!("osbs"),
                    build_id.clone(),
                    first["token"].clone(),
                    json!(1)
                ]
            )
            .await,
        Err((1000, "Only FAILED/CANCELED build states are allowed".into()))
    );
    assert_eq!(
        client
            .call(
                "CGRefundBuild",
                vec![
                    json!("osbs"),
                    build_id.clone(),
                    first["token"].clone(),
                    json!(4)
                ]
            )
            .await,
        Ok(json!(null))
    );
    let canceled = client
        .call("getBuild", vec![json!("httpd-2.4-1")])
        .await
        .unwrap();
    assert_eq!(canceled["state"], json!(4));
    assert_eq!(
        client
            .call(
                "CGRefundBuild",
                vec![
                    json!("osbs"),
                    build_id.clone(),
                    first["token"].clone(),
                    json!(3)
                ]
            )
            .await,
        Err((
            1000,
            format!("Build ID {build_id} is not in BUILDING state")
        ))
    );
    // A refunded NVR can be reserved again: same build id, new token.
    let second = client
        .call("CGInitBuild", vec![json!("osbs"), nvr("1")])
        .await
        .unwrap();
    assert_eq!(second["build_id"], build_id);
    assert_ne!(second["token"], first["token"]);
    assert_eq!(
        client.call("getBuild", vec![json!("nope-1-1")]).await,
        Ok(json!(null))
    );
    assert_eq!(
        client
            .call("CGInitBuild", vec![json!("osbs"), nvr("1-1")])
            .await,
        Err((
            1000,
            "The \"-\" character not allowed in release field".into()
        ))
    );
    let mut other = Client::login(&hub.url, "other", "other").await;
    assert_eq!(
        other
            .call("CGInitBuild", vec![json!("osbs"), nvr("9")])
            .await,
        Err((1002, "Content generator access required (osbs)".into()))
    );
    assert_eq!(
        other
            .call("CGInitBuild", vec![json!("nope"), nvr("9")])
            .await,
        Err((
            1000,
            "No such entry in table content_generator: nope".into()
        ))
    );
    let target = client
        .call("getBuildTarget", vec![json!("f41-container-candidate")])
        .await
        .unwrap();
    assert_eq!(target["dest_tag_name"], json!("f41-container-candidate"));
    assert_eq!(target["build_tag_name"], json!("f41-container-build"));
    assert_eq!(
        client.call("getBuildTarget", vec![json!("nope")]).await,
        Ok(json!(null))
    );
}

/// Imports `httpd-2.4-<release>` with a tiny log, through `client`.
async fn import(client: &mut Client, release: &str) -> serde_json::Value {
    let log = format!("log of {release}\n").into_bytes();
    let dir = format!("tag/{release}");
    client
        .upload(&dir, "x.log", 0, log.clone(), false)
        .await
        .unwrap();
    let metadata = json!({
        "metadata_version": 0,
        "build": {"name": "httpd", "version": "2.4", "release": release, "source": "git#1",
                  "start_time": 1, "end_time": 2, "extra": {}},
        "buildroots": [{"id": 1, "host": {"os": "l", "arch": "x86_64"},
                        "content_generator": {"name": "osbs", "version": "1"},
                        "container": {"type": "docker", "arch": "x86_64"},
                        "tools": [], "components": []}],
        "output": [{"buildroot_id": 1, "filename": "x.log", "filesize": log.len(),
                    "checksum": common::sha256_hex(&log), "checksum_type": "sha256", "type": "log"}],
    });
    client
        .call("CGImport", vec![metadata, json!(dir)])
        .await
        .expect("import")
}

async fn wait_task(client: &mut Client, task: &serde_json::Value) -> serde_json::Value {
    for _ in 0..100 {
        let info = client
            .call("getTaskInfo", vec![task.clone()])
            .await
            .unwrap();
        if info["state"] != json!(0) && info["state"] != json!(1) {
            return info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("task {task} never finished");
}

#[tokio::test]
async fn tagging_by_task_and_bypass() {
    let hub = KojiHub::start(config()).await.unwrap();
    let mut client = Client::login(&hub.url, "osbs", "osbs").await;
    let tag = json!("f41-container-candidate");
    let building = client
        .call(
            "CGInitBuild",
            vec![
                json!("osbs"),
                json!({"name": "httpd", "version": "2.4", "release": "9"}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        client
            .call("tagBuild", vec![tag.clone(), building["build_id"].clone()])
            .await,
        Err((
            1003,
            "build httpd-2.4-9 not complete: state BUILDING".into()
        ))
    );
    import(&mut client, "1").await;
    let task = client
        .call("tagBuild", vec![tag.clone(), json!("httpd-2.4-1")])
        .await
        .unwrap();
    let info = wait_task(&mut client, &task).await;
    assert_eq!(info["state"], json!(2), "CLOSED");
    assert_eq!(
        hub.tagged("f41-container-candidate"),
        vec!["httpd-2.4-1".to_string()]
    );
    let tags = client
        .call("listTags", vec![json!("httpd-2.4-1")])
        .await
        .unwrap();
    assert_eq!(tags[0]["name"], tag);
    // Tagged twice: the task fails with the hub's TagError.
    let twice = client
        .call("tagBuild", vec![tag.clone(), json!("httpd-2.4-1")])
        .await
        .unwrap();
    assert_eq!(
        wait_task(&mut client, &twice).await["state"],
        json!(5),
        "FAILED"
    );
    assert_eq!(
        client.call("getTaskResult", vec![twice]).await,
        Err((
            1003,
            "build httpd-2.4-1 already tagged (f41-container-candidate)".into()
        ))
    );
    assert_eq!(
        client
            .call(
                "tagBuild",
                vec![json!("f41-container-build"), json!("httpd-2.4-1")]
            )
            .await,
        Err((
            1003,
            "Package httpd not in list for f41-container-build".into()
        ))
    );
    assert_eq!(
        client
            .call("tagBuild", vec![json!("nope"), json!("httpd-2.4-1")])
            .await,
        Err((1000, "No such tagInfo: 'nope'".into()))
    );

    import(&mut client, "2").await;
    assert_eq!(
        client
            .call("tagBuildBypass", vec![tag.clone(), json!("httpd-2.4-2")])
            .await,
        Err((1004, "tag permission required (logged in as osbs)".into()))
    );
    let mut releng = Client::login(&hub.url, "releng", "releng").await;
    assert_eq!(
        releng
            .call("tagBuildBypass", vec![tag.clone(), json!("httpd-2.4-2")])
            .await,
        Ok(json!(null))
    );
    assert_eq!(hub.tagged("f41-container-candidate").len(), 2);
}

#[tokio::test]
async fn ssl_login_takes_the_user_from_the_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path()).unwrap();
    let (cert, key) = pki.client("osbs").unwrap();
    let hub = KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", None)],
        tls: Some(pki.hub_files()),
        ..HubConfig::default()
    })
    .await
    .unwrap();
    assert!(hub.url.starts_with("https://"));
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap();
    let mut identity_pem = std::fs::read(&cert).unwrap();
    identity_pem.extend(std::fs::read(&key).unwrap());
    let with_cert = reqwest::Client::builder()
        .tls_certs_only([ca.clone()])
        .identity(reqwest::Identity::from_pem(&identity_pem).unwrap())
        .build()
        .unwrap();
    let mut client = Client::with_http(&hub.url, with_cert);
    let session = client.call("sslLogin", vec![]).await.unwrap();
    client.adopt(&session);
    assert_eq!(
        client.call("getLoggedInUser", vec![]).await.unwrap()["name"],
        json!("osbs")
    );

    let without_cert = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let mut anonymous = Client::with_http(&hub.url, without_cert);
    assert_eq!(
        anonymous.call("sslLogin", vec![]).await,
        Err((
            1002,
            "unable to get user information (CN) from client certificate".into()
        ))
    );
    let (stranger_cert, stranger_key) = pki.client("stranger").unwrap();
    let mut pem = std::fs::read(stranger_cert).unwrap();
    pem.extend(std::fs::read(stranger_key).unwrap());
    let stranger = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(&pki.ca_cert).unwrap()).unwrap(),
        ])
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    assert_eq!(
        Client::with_http(&hub.url, stranger)
            .call("sslLogin", vec![])
            .await,
        Err((1002, "Unknown user: stranger".into()))
    );
    // Without TLS there is no certificate to verify.
    let plain = KojiHub::start(config()).await.unwrap();
    assert_eq!(
        Client::new(&plain.url).call("sslLogin", vec![]).await,
        Err((1002, "could not verify client: None".into()))
    );
}

#[tokio::test]
async fn a_restart_keeps_builds_sessions_and_uploads() {
    let mut hub = KojiHub::start(config()).await.unwrap();
    let mut client = Client::login(&hub.url, "osbs", "osbs").await;
    import(&mut client, "1").await;
    client
        .upload("keep/1", "part.tar.gz", 0, vec![7u8; 1000], false)
        .await
        .unwrap();
    hub.restart().await.unwrap();
    assert_eq!(
        client
            .call("getBuild", vec![json!("httpd-2.4-1")])
            .await
            .unwrap()["state"],
        json!(1)
    );
    assert_eq!(
        client.call("getLoggedInUser", vec![]).await.unwrap()["name"],
        json!("osbs")
    );
    let check = client
        .call("checkUpload", vec![json!("keep/1"), json!("part.tar.gz")])
        .await
        .unwrap();
    assert_eq!(check["size"], json!(1000));

    hub.stop().await;
    let refused = reqwest::Client::new().post(&hub.url).body("x").send().await;
    assert!(refused.is_err(), "a stopped hub refuses connections");
    hub.start().await.unwrap();
    assert!(client.call("getLoggedInUser", vec![]).await.is_ok());

    // A cut upload keeps what arrived; the chunk sent again at its offset completes it.
    hub.drop_upload_at(300);
    let (code, _) = client
        .upload("keep/2", "cut.tar.gz", 0, vec![1u8; 1000], false)
        .await
        .unwrap_err();
    assert_eq!(code, -1, "the connection was cut");
    let partial = client
        .call("checkUpload", vec![json!("keep/2"), json!("cut.tar.gz")])
        .await
        .unwrap();
    assert_eq!(partial["size"], json!(300));
    client
        .upload("keep/2", "cut.tar.gz", 300, vec![1u8; 700], false)
        .await
        .unwrap();
    let whole = client
        .call_kw(
            "checkUpload",
            vec![json!("keep/2"), json!("cut.tar.gz")],
            json!({"verify": "adler32"}),
        )
        .await
        .unwrap();
    assert_eq!(whole["hexdigest"], json!(adler32_hex(&[1u8; 1000])));
}
