//! Against the real Docker Engine and registries: `squash_to_registry` pushes the torture
//! image (base blobs mounted from the base's repository), and `docker pull` of the pushed
//! digest gives the reported image id, base + 1 layers, the same exported filesystem as
//! the unsquashed image, the config (labels, cmd, history marks) preserved. A base the
//! registry lacks is uploaded from the export (gzip), a registry with Basic auth (a second
//! real registry with htpasswd) takes the push, credentials never show in errors, and a
//! registry that fails an upload once (503) gets it again, the retry reported.

mod images;

use images::{TORTURE, build, docker, filesystem, layer_count};
use osbs_squash::{
    BaseBlobs, Credentials, LayerCompression, LayerRead, RegistryTarget, Secret, squash_to_registry,
};
use osbs_testkit::registry::{PASSWORD, PrivateRegistry, USER};
use osbs_testkit::{
    REGISTRY, busybox_rootfs_tar, ensure_busybox_image, require_docker, require_registry, run,
    run_with_stdin,
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::process::Command;

const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// GET from a registry: (Content-Type, body).
async fn get(
    registry: &str,
    path: &str,
    accept: &str,
    auth: Option<(&str, &str)>,
) -> (String, Vec<u8>) {
    let mut request = reqwest::Client::new()
        .get(format!("http://{registry}/v2/{path}"))
        .header("Accept", accept);
    if let Some((user, password)) = auth {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {path}: {}",
        response.status()
    );
    let media_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (media_type, response.bytes().await.unwrap().to_vec())
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn history_len(image: &str) -> usize {
    run(&["docker", "history", "-q", image]).lines().count()
}

/// Removes `image_id` from the engine so a pull really downloads the squashed layer.
fn forget(image_id: &str) {
    let _ = Command::new("docker")
        .args(["rmi", "-f", image_id])
        .output();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_image_pushed_to_the_registry_pulls_back_identical() {
    require_docker();
    require_registry();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:registry");
    let image = "osbs-squash-test-torture:registry";
    // One more step than the engine test's image, so its squashed layer is this test's own
    // and the pull below has to download it.
    build(
        image,
        &format!(
            "FROM {base}\nLABEL osbs.test=torture\n{TORTURE}RUN echo registry > /which\nCMD [\"cat\", \"/which\"]\n"
        ),
    );
    let tags = vec!["latest".to_owned(), format!("t-{}", unique())];
    let target = RegistryTarget::new(REGISTRY, "osbs-squash-test/torture", tags.clone());
    let docker = docker().await;
    let pushed = squash_to_registry(&docker, image, &base, &target)
        .await
        .unwrap();

    let base_layers = layer_count(&base);
    assert!(
        matches!(pushed.squashed.read, LayerRead::LayerStore { .. }),
        "the worker's path reads the layer store here (root, overlay2): {}",
        pushed.squashed.read
    );
    assert_eq!(pushed.layers.len(), base_layers + 1);
    assert_eq!(pushed.squashed.layer_count, base_layers + 1);
    assert_eq!(pushed.squashed.image_id, pushed.config_digest);
    assert_eq!(pushed.manifest_media_type, DOCKER_V2);
    match &pushed.base_blobs {
        BaseBlobs::FromRegistry {
            from,
            already_there,
            mounted,
            copied,
        } => {
            // The base recipe gives one image id to every base of its tests (and the
            // quickstart's): any repository the engine knows the base by will do.
            let repo_digests = run(&[
                "docker",
                "image",
                "inspect",
                "--format",
                "{{json .RepoDigests}}",
                &base,
            ]);
            assert!(
                repo_digests.contains(&format!("\"{REGISTRY}/{from}@sha256:")),
                "{from} is not a repository of the base: {repo_digests}"
            );
            assert_eq!(already_there + mounted, base_layers);
            assert_eq!(*copied, 0);
        }
        other => panic!("the base blobs were not reused: {other:?}"),
    }

    // Every tag names the reported manifest, which names the registry's base blobs.
    let mut manifest = Value::Null;
    for tag in &tags {
        let (media_type, bytes) = get(
            REGISTRY,
            &format!("osbs-squash-test/torture/manifests/{tag}"),
            DOCKER_V2,
            None,
        )
        .await;
        assert_eq!(media_type, DOCKER_V2);
        assert_eq!(sha256(&bytes), pushed.manifest_digest);
        manifest = serde_json::from_slice(&bytes).unwrap();
    }
    let blobs: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    let reported: Vec<&str> = pushed.layers.iter().map(|l| l.digest.as_str()).collect();
    assert_eq!(blobs, reported);
    assert_eq!(
        pushed.layers[..base_layers]
            .iter()
            .map(|l| l.media_type.as_str())
            .collect::<Vec<_>>(),
        vec!["application/vnd.docker.image.rootfs.diff.tar.gzip"; base_layers],
        "base layers stay the registry's gzip blobs"
    );
    assert_eq!(
        pushed.layers[base_layers].media_type,
        "application/vnd.docker.image.rootfs.diff.tar"
    );

    // The config: diff_ids, labels, cmd, and the squashed steps marked empty.
    let (_, config) = get(
        REGISTRY,
        &format!("osbs-squash-test/torture/blobs/{}", pushed.config_digest),
        "*/*",
        None,
    )
    .await;
    assert_eq!(sha256(&config), pushed.config_digest);
    let config: Value = serde_json::from_slice(&config).unwrap();
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    let reported: Vec<&str> = pushed.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, reported);
    assert_eq!(config["config"]["Labels"]["osbs.test"], "torture");
    assert_eq!(
        config["config"]["Cmd"],
        serde_json::json!(["cat", "/which"])
    );
    let history = config["history"].as_array().unwrap();
    let base_history = history_len(&base);
    assert_eq!(history.len(), history_len(image) + 1);
    let empty: Vec<bool> = history
        .iter()
        .map(|h| h["empty_layer"] == Value::Bool(true))
        .collect();
    assert!(empty[base_history..history.len() - 1].iter().all(|e| *e));
    assert!(!empty[history.len() - 1]);
    assert_eq!(
        empty.iter().filter(|e| !**e).count(),
        base_layers + 1,
        "one non-empty history entry per layer"
    );

    // A fresh pull of the digest: same id, base + 1 layers, same filesystem, runs.
    forget(&pushed.config_digest);
    let reference = format!(
        "{REGISTRY}/osbs-squash-test/torture@{}",
        pushed.manifest_digest
    );
    run(&["docker", "pull", "-q", &reference]);
    assert_eq!(
        run(&[
            "docker", "image", "inspect", "--format", "{{.Id}}", &reference
        ])
        .trim(),
        pushed.config_digest
    );
    assert_eq!(layer_count(&reference), base_layers + 1);
    let (before, after) = (filesystem(image), filesystem(&reference));
    let differences: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(
        differences.is_empty(),
        "filesystems differ at {differences:?}"
    );
    assert!(before.contains_key("opt/swap/y") && before.contains_key("which"));
    assert_eq!(run(&["docker", "run", "--rm", &reference]), "registry\n");

    // Deterministic: the same squash pushes the same manifest.
    let again = squash_to_registry(&docker, image, &base, &target)
        .await
        .unwrap();
    assert_eq!(again.manifest_digest, pushed.manifest_digest);
    assert!(matches!(
        again.base_blobs,
        BaseBlobs::FromRegistry { already_there, .. } if already_there == base_layers
    ));
}

/// A base image only in the engine (imported, never pushed).
fn local_base(tag: &str) -> String {
    run_with_stdin(
        &[
            "docker",
            "import",
            "--change",
            "CMD [\"/bin/sh\"]",
            "-",
            tag,
        ],
        &busybox_rootfs_tar(&[]),
    );
    tag.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_base_the_registry_lacks_is_uploaded_from_the_engine_gzipped() {
    require_docker();
    require_registry();
    let base = local_base("osbs-squash-test-localbase:1");
    let image = "osbs-squash-test-onlocal:1";
    build(
        image,
        &format!(
            "FROM {base}\nRUN mkdir -p /x/y && echo gz > /x/y/f && rm /etc/group\nRUN rm -rf /x/y && echo gz2 > /x/y\n"
        ),
    );
    let mut target = RegistryTarget::new(REGISTRY, "osbs-squash-test/onlocal", vec!["1".into()]);
    target.layer_compression = LayerCompression::Gzip { level: 1 };
    let docker = docker().await;
    let pushed = squash_to_registry(&docker, image, &base, &target)
        .await
        .unwrap();
    match &pushed.base_blobs {
        BaseBlobs::Uploaded { reason } => {
            assert!(
                reason.contains("has no RepoDigest on 127.0.0.1:5000"),
                "{reason}"
            )
        }
        other => panic!("the base was not uploaded: {other:?}"),
    }
    // The base layers were assembled from the engine's layer store; `docker pull` below
    // checks each one against its diff_id.
    assert!(
        matches!(pushed.squashed.read, LayerRead::LayerStore { .. }),
        "{}",
        pushed.squashed.read
    );
    assert_eq!(pushed.layers.len(), layer_count(&base) + 1);
    for layer in &pushed.layers {
        assert_eq!(
            layer.media_type,
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert_ne!(
            layer.digest, layer.diff_id,
            "gzip blobs differ from diff_ids"
        );
    }
    forget(&pushed.config_digest);
    let reference = format!(
        "{REGISTRY}/osbs-squash-test/onlocal@{}",
        pushed.manifest_digest
    );
    run(&["docker", "pull", "-q", &reference]);
    assert_eq!(
        run(&[
            "docker", "image", "inspect", "--format", "{{.Id}}", &reference
        ])
        .trim(),
        pushed.config_digest
    );
    assert_eq!(filesystem(image), filesystem(&reference));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_with_basic_auth_takes_the_push_and_passwords_never_show() {
    require_docker();
    require_registry();
    let registry = PrivateRegistry::with_password("127.0.0.1");
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:auth");
    let image = "osbs-squash-test-auth:1";
    build(image, &format!("FROM {base}\nRUN echo auth > /auth\n"));
    let docker = docker().await;
    let mut target = RegistryTarget::new(&registry.address, "ns/auth", vec!["v1".into()]);
    target.attempts = 1;

    let anonymous = squash_to_registry(&docker, image, &base, &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        anonymous.contains("refused access") && anonymous.contains("it wants a user and password"),
        "{anonymous}"
    );

    target.auth = Some(Credentials::new(USER, Secret::new("wrong-password-xyz")));
    let wrong = squash_to_registry(&docker, image, &base, &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(wrong.contains("HTTP 401"), "{wrong}");
    assert!(!wrong.contains("wrong-password-xyz"), "{wrong}");
    assert!(
        format!("{target:?}").contains("***") && !format!("{target:?}").contains("wrong-password")
    );

    target.auth = Some(Credentials::new(USER, Secret::new(PASSWORD)));
    let pushed = squash_to_registry(&docker, image, &base, &target)
        .await
        .unwrap();
    assert!(matches!(pushed.base_blobs, BaseBlobs::Uploaded { .. }));
    let (_, manifest) = get(
        &registry.address,
        "ns/auth/manifests/v1",
        DOCKER_V2,
        Some((USER, PASSWORD)),
    )
    .await;
    assert_eq!(sha256(&manifest), pushed.manifest_digest);
    drop(registry);

    // Nothing listening: a one-line "unreachable" error, still without the password.
    let gone = squash_to_registry(&docker, image, &base, &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(gone.contains("is unreachable"), "{gone}");
    assert!(!gone.contains(PASSWORD) && !gone.contains('\n'), "{gone}");
}

/// A registry in front of the real one that answers 503 to the first blob upload it is
/// asked to start (mounts excepted) and forwards everything else, `Host` kept so that the
/// registry's upload locations point back here. Returns its address.
async fn registry_failing_one_upload() -> String {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{Method, StatusCode, header};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let failed = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |request: Request| {
        let failed = failed.clone();
        let client = client.clone();
        async move {
            let (parts, body) = request.into_parts();
            let query = parts.uri.query().unwrap_or_default();
            if parts.method == Method::POST
                && parts.uri.path().ends_with("/blobs/uploads/")
                && !query.contains("mount=")
                && !failed.swap(true, Ordering::SeqCst)
            {
                return axum::response::Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .body(Body::from(
                        r#"{"errors":[{"code":"UNAVAILABLE","message":"injected by the test"}]}"#,
                    ))
                    .unwrap();
            }
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut forward =
                client.request(parts.method.clone(), format!("http://{REGISTRY}{path}"));
            for (name, value) in &parts.headers {
                forward = forward.header(name, value);
            }
            let answer = forward
                .body(reqwest::Body::wrap_stream(body.into_data_stream()))
                .send()
                .await
                .unwrap();
            let mut response = axum::response::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_the_registry_fails_once_is_retried_and_reported() {
    require_docker();
    require_registry();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:flaky");
    let image = format!("osbs-squash-test-flaky:{}", unique());
    build(
        &image,
        &format!("FROM {base}\nRUN echo {} > /flaky\n", unique()),
    );
    let flaky = registry_failing_one_upload().await;
    let tag = format!("t-{}", unique());
    let mut target = RegistryTarget::new(&flaky, "osbs-squash-test/flaky", vec![tag.clone()]);
    target.base_repository = Some("osbs-squash-test-base".to_owned());
    let docker = docker().await;
    let pushed = squash_to_registry(&docker, &image, &base, &target)
        .await
        .unwrap();
    assert_eq!(pushed.retries.len(), 1, "{:?}", pushed.retries);
    assert!(
        pushed.retries[0].contains("503") && pushed.retries[0].contains("retried after"),
        "{}",
        pushed.retries[0]
    );
    // The real registry holds the whole image under the tag.
    let (_, manifest) = get(
        REGISTRY,
        &format!("osbs-squash-test/flaky/manifests/{tag}"),
        DOCKER_V2,
        None,
    )
    .await;
    assert_eq!(sha256(&manifest), pushed.manifest_digest);
    let reference = format!(
        "{REGISTRY}/osbs-squash-test/flaky@{}",
        pushed.manifest_digest
    );
    forget(&pushed.config_digest);
    run(&["docker", "pull", "-q", &reference]);
    let _ = run(&["docker", "rmi", "-f", &image, &reference]);
}

/// `RegistryTarget::additions` (the worker's buildinfo file and labels, issue 13), read
/// both ways: the layer store and the export give the same pushed image; its filesystem is
/// the unsquashed image's plus the file (and `/root/buildinfo`, `/root` left as it was), its
/// labels the image's with the added ones over them, its history says what was added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additions_are_written_the_same_from_the_store_and_the_export() {
    require_docker();
    require_registry();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:additions");
    let image = "osbs-squash-test-additions:1";
    build(
        image,
        &format!("FROM {base}\nLABEL release=0 keep=me\nRUN echo add > /added-by-run\n"),
    );
    let additions = osbs_squash::Additions {
        labels: vec![
            ("release".into(), "1".into()),
            ("vendor".into(), "A \"Q\" $HOME \\n".into()),
        ],
        labels_created_by: "LABEL release=\"1\" vendor=\"…\"".into(),
        earlier_labels_created_by: Vec::new(),
        files: vec![osbs_squash::AddedFile {
            path: "/root/buildinfo/Dockerfile-add-1-1".into(),
            contents: b"FROM base\nLABEL release=\"1\"\n".to_vec(),
            mode: 0o644,
            created_by: "COPY Dockerfile-add-1-1 /root/buildinfo/Dockerfile-add-1-1".into(),
        }],
    };
    let docker = docker().await;
    let mut pushed = Vec::new();
    for (read_from, tag) in [
        (osbs_squash::ReadFrom::Auto, "store"),
        (osbs_squash::ReadFrom::Export, "export"),
    ] {
        let mut target =
            RegistryTarget::new(REGISTRY, "osbs-squash-test/additions", vec![tag.into()]);
        target.read_from = read_from;
        target.additions = additions.clone();
        let result = squash_to_registry(&docker, image, &base, &target)
            .await
            .unwrap();
        assert_eq!(
            matches!(result.squashed.read, LayerRead::LayerStore { .. }),
            tag == "store",
            "{}",
            result.squashed.read
        );
        pushed.push(result);
    }
    assert_eq!(
        pushed[0].manifest_digest, pushed[1].manifest_digest,
        "both readers give the same image"
    );
    let config: Value = serde_json::from_str(&pushed[0].config_json).unwrap();
    assert_eq!(config["config"]["Labels"]["release"], "1");
    assert_eq!(config["config"]["Labels"]["keep"], "me");
    assert_eq!(config["config"]["Labels"]["vendor"], "A \"Q\" $HOME \\n");
    let history = config["history"].as_array().unwrap();
    let created_by: Vec<&str> = history
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or_default())
        .collect();
    assert!(
        created_by
            .contains(&"osbs squash: COPY Dockerfile-add-1-1 /root/buildinfo/Dockerfile-add-1-1")
    );
    assert!(created_by.contains(&"osbs squash: LABEL release=\"1\" vendor=\"…\""));
    let non_empty = history
        .iter()
        .filter(|h| h["empty_layer"] != Value::Bool(true))
        .count();
    assert_eq!(non_empty, pushed[0].layers.len());

    forget(&pushed[0].config_digest);
    let reference = format!(
        "{REGISTRY}/osbs-squash-test/additions@{}",
        pushed[0].manifest_digest
    );
    run(&["docker", "pull", "-q", &reference]);
    let mut before = filesystem(image);
    let after = filesystem(&reference);
    let file = after
        .get("root/buildinfo/Dockerfile-add-1-1")
        .expect("the added file")
        .clone();
    assert_eq!(
        (file.0.as_str(), file.1 & 0o7777, file.2, file.3),
        ("Regular", 0o644, 0, 0)
    );
    assert_eq!(file.5, b"FROM base\nLABEL release=\"1\"\n");
    assert_eq!(
        after["root"], before["root"],
        "/root kept its mode and owner"
    );
    assert!(after.contains_key("root/buildinfo"));
    before.insert("root/buildinfo".into(), after["root/buildinfo"].clone());
    before.insert("root/buildinfo/Dockerfile-add-1-1".into(), file);
    assert_eq!(before, after, "the rest of the filesystem is the image's");
    assert!(
        history_len(&reference) >= 3,
        "docker history lists the entries"
    );
}
