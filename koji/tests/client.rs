//! The Koji client against the hub double: logins (password and SSL certificate), the
//! worker's calls (next release, reservation, refund), typed faults, and uploads — fast with
//! resume after a cut connection or a hub restart, and legacy.

use bytes::Bytes;
use osbs_koji::fault;
use osbs_koji::upload::{BytesSource, UploadApi};
use osbs_koji::{
    AuthMethod, KojiAuth, KojiBuildState, KojiClient, KojiConfig, KojiError, RefundState,
    UploadMode,
};
use osbs_koji_hub::{HubConfig, KojiHub, RunningHub, TargetSpec, TestPki, UserSpec};
use osbs_proto::secret::Secret;
use sha2::Digest;
use std::time::Duration;

const TARGET: &str = "f41-container-candidate";
const PACKAGE: &str = "osbs-test-image";

/// A hub double with user `osbs` (password `osbs-test-password`), the `osbs` content
/// generator, and the test target whose tag lists the test package.
async fn hub() -> RunningHub {
    KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", Some("osbs-test-password")).with_perms(&["tag"])],
        content_generators: vec![("osbs".into(), vec!["osbs".into()])],
        targets: vec![TargetSpec::named(TARGET, &[PACKAGE])],
        tag_task_delay: Duration::from_millis(100),
        ..HubConfig::default()
    })
    .await
    .unwrap()
}

/// `[koji]` for `hub`, with short retry times.
fn koji_config(hub: &RunningHub) -> KojiConfig {
    KojiConfig {
        hub_url: hub.url.clone(),
        auth: KojiAuth {
            method: AuthMethod::Password,
            user: "osbs".into(),
            password: Secret::new("osbs-test-password"),
            ..KojiAuth::default()
        },
        upload_chunk_bytes: 256 << 10,
        retry_secs: 20,
        ..KojiConfig::default()
    }
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn data(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 % 251) as u8).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn the_workers_calls_and_the_hubs_faults() {
    let hub = hub().await;
    let config = koji_config(&hub);
    let client = KojiClient::connect(&config).await.unwrap();
    assert_eq!(client.get_next_release(PACKAGE, "1.0").await.unwrap(), "1");
    let reservation = client.cg_init_build(PACKAGE, "1.0", "1").await.unwrap();
    assert!(!format!("{reservation:?}").contains(&reservation.token));
    assert_eq!(client.get_next_release(PACKAGE, "1.0").await.unwrap(), "2");
    let building = client
        .get_build(&format!("{PACKAGE}-1.0-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(building.id, reservation.build_id);
    assert_eq!(building.state(), KojiBuildState::Building);
    assert!(client.get_build("nope-1-1").await.unwrap().is_none());

    let twice = client.cg_init_build(PACKAGE, "1.0", "1").await.unwrap_err();
    assert_eq!(twice.fault(), Some((1000, "Build is already reserved")));
    assert!(twice.fault_that(fault::means_taken).is_some());
    assert!(!twice.is_transient());

    client
        .cg_refund_build(
            reservation.build_id,
            &reservation.token,
            RefundState::Canceled,
        )
        .await
        .unwrap();
    let refunded = client
        .get_build_by_id(reservation.build_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refunded.state(), KojiBuildState::Canceled);
    let again = client
        .cg_refund_build(
            reservation.build_id,
            &reservation.token,
            RefundState::Failed,
        )
        .await
        .unwrap_err();
    assert_eq!(
        again.fault(),
        Some((
            1000,
            format!("Build ID {} is not in BUILDING state", reservation.build_id).as_str()
        ))
    );
    assert!(again.fault_that(fault::means_nothing_to_refund).is_some());
    assert!(again.fault_that(fault::means_taken).is_none());

    let target = client.get_build_target(TARGET).await.unwrap().unwrap();
    assert_eq!(target.dest_tag_name, TARGET);
    assert!(client.get_build_target("nope").await.unwrap().is_none());

    // Offline: a transient error, retried by read-only calls until the hub is back.
    hub.set_offline(true);
    let offline = client.cg_init_build(PACKAGE, "1.0", "9").await.unwrap_err();
    assert_eq!(offline.fault(), Some((1014, "server is offline")));
    assert!(offline.is_transient());
    let (release, ()) = tokio::join!(client.get_next_release(PACKAGE, "1.0"), async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        hub.set_offline(false);
    });
    assert_eq!(
        release.unwrap(),
        "1",
        "the canceled reservation does not count"
    );
    client.logout().await;

    let mut wrong = config.clone();
    wrong.auth.password = Secret::new("wrong");
    let refused = KojiClient::connect(&wrong).await.unwrap_err();
    assert_eq!(
        refused.fault(),
        Some((1002, "invalid username or password"))
    );
    assert!(!refused.to_string().contains("osbs-test-password"));
    let mut no_hub = config.clone();
    no_hub.hub_url.clear();
    assert!(matches!(
        KojiClient::connect(&no_hub).await,
        Err(KojiError::Setup(_))
    ));
}

#[tokio::test]
async fn ssl_login_with_a_client_certificate() {
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
    let mut config = koji_config(&hub);
    config.server_ca = pki.ca_cert.clone();
    config.auth = KojiAuth {
        method: AuthMethod::Ssl,
        cert,
        key,
        ..KojiAuth::default()
    };
    let client = KojiClient::connect(&config).await.unwrap();
    let reservation = client.cg_init_build("cert-image", "1", "1").await.unwrap();
    assert!(
        reservation.build_id > 0,
        "the certificate's CN is a CG user"
    );

    config.auth.cert = dir.path().join("missing.crt");
    let error = KojiClient::connect(&config).await.unwrap_err();
    assert!(error.to_string().contains("missing.crt"), "{error}");
}

#[tokio::test]
async fn fast_uploads_resume_after_a_cut_connection_and_a_hub_restart() {
    let mut hub = hub().await;
    let mut config = koji_config(&hub);
    config.upload_chunk_bytes = 64 << 10;
    let client = KojiClient::connect(&config).await.unwrap();
    assert_eq!(client.upload_api().await.unwrap(), UploadApi::Fast);
    let bytes = data(1_000_000);
    let source = BytesSource(Bytes::from(bytes.clone()));

    // The hub cuts the connection in the middle of a chunk: the chunk goes again.
    hub.drop_upload_at(300_000);
    let uploaded = client
        .upload(UploadApi::Fast, "t/1", "a.tar.gz", &source)
        .await
        .unwrap();
    assert_eq!(uploaded.size, bytes.len() as u64);
    assert_eq!(uploaded.sha256, sha256(&bytes));
    assert!(
        hub.uploaded_files()
            .contains(&("t/1/a.tar.gz".into(), 1_000_000))
    );

    // A half-done upload found on the hub (a bridge restarted) resumes after its part.
    let half = &bytes[..400_000];
    client
        .upload(
            UploadApi::Fast,
            "t/2",
            "b.tar.gz",
            &BytesSource(Bytes::copy_from_slice(half)),
        )
        .await
        .unwrap();
    let before = hub.call_count("upload");
    let resumed = client
        .upload(UploadApi::Fast, "t/2", "b.tar.gz", &source)
        .await
        .unwrap();
    assert_eq!(resumed.sha256, sha256(&bytes));
    let sent = hub.call_count("upload") - before;
    assert_eq!(
        sent,
        (600_000usize).div_ceil(64 << 10),
        "only the rest was sent"
    );

    // Another file under the same name is replaced from the start.
    let other = data(500_000).into_iter().rev().collect::<Vec<u8>>();
    client
        .upload(
            UploadApi::Fast,
            "t/2",
            "b.tar.gz",
            &BytesSource(Bytes::from(other.clone())),
        )
        .await
        .unwrap();
    assert!(
        hub.uploaded_files()
            .contains(&("t/2/b.tar.gz".into(), 500_000))
    );

    // The hub goes down in the middle of an upload (its connection cut at 300 kB), and
    // comes back: the chunk waits for it and the upload goes on from there.
    hub.drop_upload_at(300_000);
    let (uploaded, ()) = tokio::join!(
        client.upload(UploadApi::Fast, "t/3", "c.tar.gz", &source),
        async {
            eventually("the cut chunk", Duration::from_secs(10), || async {
                hub.uploaded_files()
                    .contains(&("t/3/c.tar.gz".into(), 300_000))
            })
            .await;
            hub.stop().await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            hub.start().await.unwrap();
        }
    );
    assert_eq!(uploaded.unwrap().sha256, sha256(&bytes));
    assert!(
        hub.uploaded_files()
            .contains(&("t/3/c.tar.gz".into(), 1_000_000))
    );

    // Empty files exist too.
    let empty = client
        .upload(
            UploadApi::Fast,
            "t/4",
            "empty.log",
            &BytesSource(Bytes::new()),
        )
        .await
        .unwrap();
    assert_eq!(empty.size, 0);
    assert!(hub.uploaded_files().contains(&("t/4/empty.log".into(), 0)));
}

#[tokio::test]
async fn legacy_uploads_on_a_hub_without_fast_upload() {
    let hub = KojiHub::start(HubConfig {
        users: vec![UserSpec::new("osbs", Some("osbs-test-password"))],
        fast_upload: false,
        ..HubConfig::default()
    })
    .await
    .unwrap();
    let config = koji_config(&hub);
    let client = KojiClient::connect(&config).await.unwrap();
    assert_eq!(client.upload_api().await.unwrap(), UploadApi::Legacy);
    let bytes = data(2_500_000);
    let uploaded = client
        .upload(
            UploadApi::Legacy,
            "legacy/1",
            "image.tar.gz",
            &BytesSource(Bytes::from(bytes.clone())),
        )
        .await
        .unwrap();
    assert_eq!(uploaded.sha256, sha256(&bytes));
    assert!(
        hub.uploaded_files()
            .contains(&("legacy/1/image.tar.gz".into(), 2_500_000))
    );
    let chunks = 2_500_000usize.div_ceil(config.upload_chunk_bytes.min(1 << 20));
    assert_eq!(
        hub.call_count("uploadFile"),
        chunks + 1,
        "the chunks, then offset -1"
    );

    let mut forced = config.clone();
    forced.upload_mode = UploadMode::Fast;
    let client = KojiClient::connect(&forced).await.unwrap();
    assert_eq!(client.upload_api().await.unwrap(), UploadApi::Fast);
}
