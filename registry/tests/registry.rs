//! Against real registries: blobs, image manifests and lists go up (by tag and by digest) and
//! come back (digests, a list resolved to a platform, configs, verified blob streams); blobs
//! mount across repositories; a producer that fails leaves no blob; the plain-http rule
//! reaches registries on `[::1]`, `127.0.0.2` and `localhost` over http.

use bytes::Bytes;
use futures::StreamExt;
use osbs_registry::manifest::{image_manifest, list_entry, list_manifest};
use osbs_registry::{
    Arrival, Descriptor, Document, ManifestFormat, Platform, Producer, Reference, Registries,
    Registry, RegistryError, Scheme, Settings, UploadError,
};
use osbs_testkit::registry::PrivateRegistry;
use osbs_testkit::{REGISTRY, require_registry};
use std::io::Write;
use std::sync::Arc;

fn settings() -> Settings {
    Settings::new("osbs-registry-test")
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}-{nanos}", std::process::id())
}

/// An image pushed for a test: its config and one layer made of `content`.
struct Pushed {
    manifest: osbs_registry::RawManifest,
    config: Bytes,
    layer: Vec<u8>,
}

async fn push_image(
    registry: &Registry,
    repository: &str,
    content: &str,
    tags: &[String],
) -> Pushed {
    let layer = format!("layer bytes: {content}").into_bytes();
    let producer: Producer<usize, std::io::Error> = {
        let layer = layer.clone();
        Arc::new(move |out: &mut dyn Write| {
            out.write_all(&layer)?;
            Ok((layer.len(), None))
        })
    };
    let (written, blob) = registry
        .upload_stream(repository, "a test layer", true, producer)
        .await
        .unwrap();
    assert_eq!(
        (written as u64, blob.size),
        (layer.len() as u64, layer.len() as u64)
    );
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"content":"{content}"}}}},"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        blob.digest
    ));
    let config_blob = registry
        .push_blob(repository, config.clone())
        .await
        .unwrap();
    let format = ManifestFormat::DockerV2;
    let manifest = image_manifest(
        format,
        &Descriptor {
            media_type: format.config_type().into(),
            size: config_blob.size,
            digest: config_blob.digest,
        },
        &[],
        &Descriptor {
            media_type: format.layer_type(false).into(),
            size: blob.size,
            digest: blob.digest,
        },
    );
    let digest = if tags.is_empty() {
        registry
            .push_manifest_by_digest(repository, &manifest)
            .await
    } else {
        registry.push_manifest(repository, &manifest, tags).await
    };
    let digest = digest.unwrap();
    assert_eq!(digest, manifest.digest());
    Pushed {
        manifest,
        config,
        layer,
    }
}

#[tokio::test]
async fn images_and_lists_go_up_by_tag_and_by_digest_and_come_back() {
    require_registry();
    let registries = Registries::new(settings()).unwrap();
    let registry = registries.get(REGISTRY).unwrap();
    assert_eq!(registry.scheme(), Scheme::Http);
    let repository = format!("osbs-registry-test/images-{}", unique());
    let tags = vec!["1.0-1".to_owned(), "latest".to_owned()];
    let amd = push_image(&registry, &repository, "amd64", &tags).await;
    let arm = push_image(&registry, &repository, "arm64", &[]).await;

    // The arm64 image is untagged (pushed by digest); a list of both goes under a tag and
    // by its digest.
    let arm_digest = arm.manifest.digest();
    let list = list_manifest(
        ManifestFormat::DockerV2,
        vec![
            list_entry(&amd.manifest, &Platform::new("linux", "amd64")),
            list_entry(&arm.manifest, &Platform::new("linux", "arm64")),
        ],
    );
    let list_digest = registry
        .push_manifest(&repository, &list, &["multi".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        registry
            .push_manifest_by_digest(&repository, &list)
            .await
            .unwrap(),
        list_digest
    );

    let image = |reference: &str| {
        format!("{REGISTRY}/{repository}:{reference}")
            .parse()
            .unwrap()
    };
    for tag in &tags {
        assert_eq!(
            registries.manifest_digest(&image(tag)).await.unwrap(),
            Some(amd.manifest.digest())
        );
    }
    assert_eq!(
        registries.manifest_digest(&image("multi")).await.unwrap(),
        Some(list_digest.clone())
    );
    assert_eq!(
        registries.manifest_digest(&image("missing")).await.unwrap(),
        None
    );
    let (bytes, digest) = registry
        .manifest_bytes(&repository, &Reference::Digest(arm_digest.clone()))
        .await
        .unwrap();
    assert_eq!((bytes, digest), (arm.manifest.bytes.clone(), arm_digest));

    // The list resolves to each platform's image; an absent platform is "not found".
    let (manifest, digest) = registries
        .image_manifest(&image("multi"), &Platform::new("linux", "arm64"))
        .await
        .unwrap();
    assert_eq!(digest, arm.manifest.digest());
    let config = registries
        .image_config(&image("multi"), &Platform::new("linux", "amd64"))
        .await
        .unwrap();
    assert_eq!(config["config"]["Labels"]["content"], "amd64");
    let missing = registries
        .image_manifest(&image("multi"), &Platform::new("linux", "s390x"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    assert!(
        missing.to_string().contains("no */s390x image")
            || missing.to_string().contains("no linux/s390x image"),
        "{missing}"
    );
    match registry
        .manifest(&repository, &Reference::Tag("multi".into()))
        .await
        .unwrap()
    {
        (Document::List(list), _) => assert_eq!(list.index.manifests.len(), 2),
        (other, _) => panic!("not a list: {other:?}"),
    }

    // Blobs come back whole, as streams and in full.
    let mut stream = registry
        .blob_stream(&repository, &manifest.layers[0].digest)
        .await
        .unwrap();
    let mut layer = Vec::new();
    while let Some(piece) = stream.next().await {
        layer.extend_from_slice(&piece.unwrap());
    }
    assert_eq!(layer, arm.layer);
    let config = registry
        .blob(&repository, &manifest.config.digest, 1 << 20)
        .await
        .unwrap();
    assert_eq!(config, arm.config);
    let too_big = registry
        .blob(&repository, &manifest.config.digest, 4)
        .await
        .unwrap_err();
    assert!(
        too_big.to_string().contains("larger than 4 bytes"),
        "{too_big}"
    );

    let mut listed = registries.tags(REGISTRY, &repository).await.unwrap();
    listed.sort();
    assert_eq!(listed, ["1.0-1", "latest", "multi"]);
    assert!(
        registries
            .tags(REGISTRY, "osbs-registry-test/none")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn blobs_mount_across_repositories() {
    require_registry();
    let registry = Registry::new(REGISTRY, &settings()).unwrap();
    let id = unique();
    let (from, to) = (
        format!("osbs-registry-test/from-{id}"),
        format!("osbs-registry-test/to-{id}"),
    );
    let blob = registry
        .push_blob(&from, Bytes::from(format!("mounted {id}")))
        .await
        .unwrap();
    assert!(!registry.blob_exists(&to, &blob.digest).await.unwrap());
    assert_eq!(
        registry
            .ensure_blob(&to, &blob.digest, &from)
            .await
            .unwrap(),
        Arrival::Mounted
    );
    assert!(registry.blob_exists(&to, &blob.digest).await.unwrap());
    assert_eq!(
        registry
            .ensure_blob(&to, &blob.digest, &from)
            .await
            .unwrap(),
        Arrival::AlreadyThere
    );
    // A blob the source does not have either: not mounted, and nothing left open.
    let absent = osbs_registry::digest::sha256_digest(id.as_bytes());
    assert!(!registry.mount_blob(&to, &absent, &from).await.unwrap());
}

#[tokio::test]
async fn a_producer_that_fails_leaves_no_blob_and_its_error_wins() {
    require_registry();
    let registry = Registry::new(REGISTRY, &settings()).unwrap();
    let repository = format!("osbs-registry-test/failing-{}", unique());
    let written = b"the first half of a layer".to_vec();
    let producer: Producer<(), std::io::Error> = {
        let written = written.clone();
        Arc::new(move |out: &mut dyn Write| {
            out.write_all(&written)?;
            Err(std::io::Error::other("the layer store went away"))
        })
    };
    let error = registry
        .upload_stream(&repository, "a failing layer", true, producer)
        .await
        .unwrap_err();
    match &error {
        UploadError::Producer(error) => assert_eq!(error.to_string(), "the layer store went away"),
        UploadError::Registry(error) => panic!("the registry's error won: {error}"),
    }
    let partial = osbs_registry::digest::sha256_digest(&written);
    assert!(!registry.blob_exists(&repository, &partial).await.unwrap());
    assert!(
        registry.retried().is_empty(),
        "a producer's failure is not retried"
    );
}

#[tokio::test]
async fn bad_input_is_refused_before_any_request() {
    let mut once = settings();
    once.attempts = 1;
    let registry = Registry::new("127.0.0.1:1", &once).unwrap();
    let cases: Vec<(RegistryError, &str)> = vec![
        (
            registry.tags("../v2/_catalog").await.unwrap_err(),
            "'../v2/_catalog' is not a repository name",
        ),
        (
            registry
                .blob_exists("app", "sha256:../../x")
                .await
                .unwrap_err(),
            "'sha256:../../x' is not a digest",
        ),
        (
            registry
                .push_manifest(
                    "app",
                    &list_manifest(ManifestFormat::Oci, vec![]),
                    &["a/b".into()],
                )
                .await
                .unwrap_err(),
            "'a/b' is not a tag",
        ),
        (
            Registry::new("host/path", &settings()).unwrap_err(),
            "'host/path' is not a registry",
        ),
    ];
    for (error, expected) in cases {
        assert!(error.to_string().contains(expected), "{error}");
    }
    // Nothing listens on port 1: one line, transient, what to check.
    let gone = registry.tags("app").await.unwrap_err();
    assert!(gone.is_transient(), "{gone}");
    assert!(
        gone.to_string().contains("is unreachable") && !gone.to_string().contains('\n'),
        "{gone}"
    );
}

/// The plain-http rule with real requests: each registry below is a plain-http server, so
/// only a client that chose http reaches it.
#[tokio::test]
async fn loopback_registries_in_every_spelling_are_spoken_plain_http() {
    let on_v6 = PrivateRegistry::start("[::1]");
    let on_127_0_0_2 = PrivateRegistry::start("127.0.0.2");
    let on_v4 = PrivateRegistry::start("127.0.0.1");
    let port = on_v4.address.rsplit_once(':').unwrap().1;
    let localhost = format!("localhost:{port}");
    for address in [&on_v6.address, &on_127_0_0_2.address, &localhost] {
        let registry = Registry::new(address, &settings()).unwrap();
        assert_eq!(registry.scheme(), Scheme::Http, "{address}");
        let blob = registry
            .push_blob("plain/http", Bytes::from(format!("over http to {address}")))
            .await
            .unwrap_or_else(|error| panic!("{address}: {error}"));
        assert!(
            registry
                .blob_exists("plain/http", &blob.digest)
                .await
                .unwrap()
        );
    }
    // Listed in insecure_registries, a name off loopback is plain http too; unlisted, https.
    let mut listed = settings();
    listed.insecure_registries = vec!["registry.internal:5000".into()];
    assert_eq!(
        Registry::new("registry.internal:5000", &listed)
            .unwrap()
            .scheme(),
        Scheme::Http
    );
    assert_eq!(
        Registry::new("registry.internal:5000", &settings())
            .unwrap()
            .scheme(),
        Scheme::Https
    );
}
