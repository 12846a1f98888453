//! A multi-arch build (DESIGN.md "Architectures") through the bridge, against the real
//! RabbitMQ, Redis and registry and the Koji hub double: two images pushed to the registry
//! (the busybox test image, amd64, and the same layers under a config saying arm64) and a
//! manifest list naming both; the bridge imports them once as one Koji build with an
//! archive and a buildroot per arch, the logs, and the list in `extra.image.index`; without
//! a hub, the bundle holds the same.

mod support;

use bytes::Bytes;
use osbs_common::store::Store;
use osbs_koji_bridge::metadata::image_filename;
use osbs_proto::names;
use osbs_proto::v1::{
    ArchBuild, BuildResult, BuildState, BuildTool, ImageDigest, ImageInfo, LogFile, Rpm,
};
use osbs_registry::manifest::{list_entry, list_manifest};
use osbs_registry::{ManifestFormat, Platform, RawManifest, Reference, Registry, Settings};
use serde_json::{Value as Json, json};
use std::io::Read;
use std::path::Path;
use std::time::Duration;
use support::{
    Bridge, PACKAGE, bridge_config, eventually, hub, koji_config, publish, record_complete,
    reserve, temp_dir,
};

const WAIT: Duration = Duration::from_secs(90);
const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The two arch images and the list, as pushed.
struct Pushed {
    repository: String,
    list_digest: String,
    list_tag: String,
    /// (Koji arch, OCI arch, image id, manifest digest, config JSON).
    arches: Vec<(String, String, String, String, String)>,
}

/// Pushes the arm64 twin of the busybox test image and a list of both.
async fn push_two_arches() -> Pushed {
    let amd64 = support::pushed_image().await;
    let repository = amd64
        .repository
        .strip_prefix("127.0.0.1:5000/")
        .unwrap()
        .to_owned();
    let registry =
        Registry::new("127.0.0.1:5000", &Settings::new("osbs-koji-bridge-test")).unwrap();
    let (amd64_manifest, _) = registry
        .manifest_bytes(
            &repository,
            &Reference::digest(&amd64.manifest_digest).unwrap(),
        )
        .await
        .unwrap();

    // The same layers under a config that says arm64 (v8): another image id and manifest.
    let mut config: Json = serde_json::from_str(&amd64.config_json).unwrap();
    config["architecture"] = json!("arm64");
    config["variant"] = json!("v8");
    let config_bytes = Bytes::from(serde_json::to_vec(&config).unwrap());
    let config_blob = registry
        .push_blob(&repository, config_bytes.clone())
        .await
        .unwrap();
    let mut manifest: Json = serde_json::from_slice(&amd64_manifest).unwrap();
    manifest["config"]["digest"] = json!(config_blob.digest);
    manifest["config"]["size"] = json!(config_blob.size);
    let arm64 = RawManifest {
        media_type: MANIFEST_V2.into(),
        bytes: Bytes::from(serde_json::to_vec(&manifest).unwrap()),
    };
    let arm64_digest = registry
        .push_manifest_by_digest(&repository, &arm64)
        .await
        .unwrap();
    let amd64_raw = RawManifest {
        media_type: MANIFEST_V2.into(),
        bytes: amd64_manifest,
    };
    let mut arm = Platform::new("linux", "arm64");
    arm.variant = Some("v8".into());
    let list = list_manifest(
        ManifestFormat::DockerV2,
        vec![
            list_entry(&amd64_raw, &Platform::new("linux", "amd64")),
            list_entry(&arm64, &arm),
        ],
    );
    let list_tag = format!("multi{}", std::process::id());
    let list_digest = registry
        .push_manifest(&repository, &list, std::slice::from_ref(&list_tag))
        .await
        .unwrap();
    Pushed {
        repository: amd64.repository.clone(),
        list_digest,
        list_tag,
        arches: vec![
            (
                "x86_64".into(),
                "amd64".into(),
                amd64.image_id.clone(),
                amd64.manifest_digest.clone(),
                amd64.config_json.clone(),
            ),
            (
                "aarch64".into(),
                "arm64".into(),
                config_blob.digest,
                arm64_digest,
                String::from_utf8(config_bytes.to_vec()).unwrap(),
            ),
        ],
    }
}

fn write_log(artifacts: &Path, relative: &str, text: &str) -> LogFile {
    let path = artifacts.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    LogFile {
        name: "build.log".into(),
        path: relative.into(),
        size: text.len() as i64,
        sha256: String::new(),
    }
}

/// The result the last arch job publishes: the list as `image`, a part per arch.
async fn multi_result(
    build_id: &str,
    release: &str,
    pushed: &Pushed,
    artifacts: &Path,
) -> BuildResult {
    let mut result = support::result(build_id, (PACKAGE, "1.0", release), artifacts).await;
    result.logs = vec![write_log(
        artifacts,
        &format!("{build_id}/build.log"),
        "orchestrating x86_64 aarch64\n",
    )];
    result.components.clear();
    result.image = Some(ImageInfo {
        digests: vec![ImageDigest {
            media_type: LIST.into(),
            digest: pushed.list_digest.clone(),
        }],
        pullspecs: vec![
            format!("{}@{}", pushed.repository, pushed.list_digest),
            format!("{}:{}", pushed.repository, pushed.list_tag),
        ],
        tags: vec![pushed.list_tag.clone()],
        repositories: vec![pushed.repository.clone()],
        ..Default::default()
    });
    result.arches = pushed
        .arches
        .iter()
        .map(|(arch, oci, image_id, digest, config)| ArchBuild {
            arch: arch.clone(),
            image: Some(ImageInfo {
                image_id: image_id.clone(),
                config_json: config.clone(),
                digests: vec![ImageDigest {
                    media_type: MANIFEST_V2.into(),
                    digest: digest.clone(),
                }],
                pullspecs: vec![format!("{}@{digest}", pushed.repository)],
                repositories: vec![pushed.repository.clone()],
                architecture: oci.clone(),
                os: "linux".into(),
                ..Default::default()
            }),
            components: vec![Rpm {
                name: "busybox".into(),
                version: "1.36".into(),
                release: "1".into(),
                arch: arch.clone(),
                epoch: -1,
                sigmd5: "00".repeat(16),
                ..Default::default()
            }],
            logs: vec![write_log(
                artifacts,
                &format!("{build_id}/{arch}/build.log"),
                &format!("building for {arch}\n"),
            )],
            worker: format!("worker-{arch}"),
            worker_os: "Linux".into(),
            worker_arch: arch.clone(),
            tools: vec![BuildTool {
                name: "docker".into(),
                version: "27.0".into(),
            }],
            ..Default::default()
        })
        .collect();
    result
}

/// The image config inside a `docker save` archive.
fn archive_config(bytes: &[u8]) -> Json {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path.ends_with(".json") && path != "manifest.json" {
            let mut text = String::new();
            entry.read_to_string(&mut text).unwrap();
            return serde_json::from_str(&text).unwrap();
        }
    }
    panic!("no config in the archive");
}

/// What both modes must hold: two images, three logs, the list in the index.
fn check_metadata(metadata: &Json, pushed: &Pushed) {
    let outputs = metadata["output"].as_array().unwrap();
    let logs: Vec<&str> = outputs
        .iter()
        .filter(|output| output["type"] == "log")
        .map(|output| output["filename"].as_str().unwrap())
        .collect();
    assert_eq!(logs, vec!["orchestrator.log", "x86_64.log", "aarch64.log"]);
    let images: Vec<(&str, &str, i64)> = outputs
        .iter()
        .filter(|output| output["type"] == "docker-image")
        .map(|output| {
            (
                output["filename"].as_str().unwrap(),
                output["arch"].as_str().unwrap(),
                output["buildroot_id"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, &str, i64)> = pushed
        .arches
        .iter()
        .zip(1..)
        .map(|((arch, _, id, _, _), buildroot)| {
            (image_filename(id, arch), arch.as_str(), buildroot)
        })
        .collect();
    let expected: Vec<(&str, &str, i64)> = expected
        .iter()
        .map(|(name, arch, buildroot)| (name.as_str(), *arch, *buildroot))
        .collect();
    assert_eq!(images, expected);
    let arches: Vec<&Json> = metadata["buildroots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|buildroot| &buildroot["container"]["arch"])
        .collect();
    assert_eq!(arches, vec![&json!("x86_64"), &json!("aarch64")]);
    assert_eq!(
        metadata["build"]["extra"]["image"]["index"],
        json!({
            "pull": [
                format!("{}@{}", pushed.repository, pushed.list_digest),
                format!("{}:1.0-{}", pushed.repository, metadata["build"]["release"].as_str().unwrap()),
            ],
            "tags": [pushed.list_tag],
            "digests": {LIST: pushed.list_digest},
        })
    );
}

#[tokio::test]
async fn a_multi_arch_build_is_one_koji_build_with_an_image_per_arch() {
    let env = osbs_testkit::TestEnv::new();
    let hub = hub().await;
    let (_dir, artifacts) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let pushed = push_two_arches().await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(Some(&hub), &artifacts),
        &artifacts,
    ));

    let mut result = multi_result("b-multi-1", "1", &pushed, &artifacts).await;
    result.koji_reservation = Some(reserve(&hub, (PACKAGE, "1.0", "1")).await);
    record_complete(&store, &bus, &result).await;
    publish(&bus, &result).await;
    eventually("imported", WAIT, || async {
        store.require("b-multi-1").await.unwrap().state == BuildState::Imported
    })
    .await;

    let builds = hub.builds();
    assert_eq!(builds.len(), 1, "one Koji build");
    let build = &builds[0];
    assert_eq!(build.nvr(), format!("{PACKAGE}-1.0-1"));
    assert_eq!(build.buildroots.len(), 2);
    let metadata: Json = serde_json::from_str(build.metadata.as_deref().unwrap()).unwrap();
    check_metadata(&metadata, &pushed);
    let mut logs: Vec<&str> = build.logs.iter().map(|log| log.filename.as_str()).collect();
    logs.sort_unstable();
    assert_eq!(logs, vec!["aarch64.log", "orchestrator.log", "x86_64.log"]);
    // Each archive is its arch's image, read by that arch's manifest digest.
    assert_eq!(build.archives.len(), 2);
    for (archive, (arch, oci, _, _, _)) in build.archives.iter().zip(&pushed.arches) {
        assert_eq!(archive.extra["image"]["arch"], json!(arch));
        assert_eq!(archive.btype, "image");
        assert_eq!(archive.components, 1);
        let config = archive_config(&std::fs::read(&archive.path).unwrap());
        assert_eq!(config["architecture"], json!(oci), "{arch}");
    }

    // A redelivery imports nothing twice: taken and acked (nothing ready or unacked left).
    publish(&bus, &result).await;
    eventually("the redelivery handled", WAIT, || async {
        let vhost = env.vhost.clone();
        tokio::task::spawn_blocking(move || {
            osbs_testkit::queue_counts(None, &vhost, names::QUEUE_RESULTS).settled()
        })
        .await
        .unwrap()
    })
    .await;
    assert_eq!(hub.builds().len(), 1);
    assert_eq!(hub.call_count("CGImport"), 1, "imported once");

    // A part whose digest names another arch's image is refused, nothing imported.
    let mut crossed = multi_result("b-multi-crossed", "3", &pushed, &artifacts).await;
    let amd64_digest = pushed.arches[0].3.clone();
    let arm = crossed.arches[1].image.as_mut().unwrap();
    arm.digests[0].digest.clone_from(&amd64_digest);
    arm.pullspecs = vec![format!("{}@{amd64_digest}", pushed.repository)];
    record_complete(&store, &bus, &crossed).await;
    publish(&bus, &crossed).await;
    eventually("refused", WAIT, || async {
        store.require("b-multi-crossed").await.unwrap().state == BuildState::ImportFailed
    })
    .await;
    let error = store
        .require("b-multi-crossed")
        .await
        .unwrap()
        .error()
        .to_owned();
    assert!(
        error.contains(&format!(
            "the aarch64 image {}@{amd64_digest} is image {}",
            pushed.repository, pushed.arches[0].2
        )),
        "{error}"
    );
    assert_eq!(hub.call_count("CGImport"), 1, "nothing more imported");
    bridge.stop().await;
}

#[tokio::test]
async fn without_a_hub_a_multi_arch_bundle_holds_the_same() {
    let env = osbs_testkit::TestEnv::new();
    let (_dir, artifacts) = temp_dir();
    let (_bundles, bundle_dir) = temp_dir();
    let store = Store::connect(&env.redis).await.unwrap();
    let bus = support::bus(&env).await;
    let pushed = push_two_arches().await;
    let bridge = Bridge::start(bridge_config(
        &env,
        koji_config(None, &bundle_dir),
        &artifacts,
    ));

    let result = multi_result("b-multi-bundle", "2", &pushed, &artifacts).await;
    record_complete(&store, &bus, &result).await;
    publish(&bus, &result).await;
    eventually("bundled", WAIT, || async {
        store.require("b-multi-bundle").await.unwrap().state == BuildState::Imported
    })
    .await;
    let dir = bundle_dir.join(format!("{PACKAGE}-1.0-2"));
    let metadata: Json =
        serde_json::from_slice(&std::fs::read(dir.join("metadata.json")).unwrap()).unwrap();
    check_metadata(&metadata, &pushed);
    for output in metadata["output"].as_array().unwrap() {
        let file = std::fs::read(dir.join(output["filename"].as_str().unwrap())).unwrap();
        assert_eq!(output["filesize"], json!(file.len()));
        assert_eq!(
            output["checksum"],
            json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&file)))
        );
        if output["type"] == "docker-image" {
            assert_eq!(
                archive_config(&file)["architecture"],
                json!(if output["arch"] == "x86_64" {
                    "amd64"
                } else {
                    "arm64"
                })
            );
        }
    }
    bridge.stop().await;
}
