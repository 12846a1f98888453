//! The bridge reads back an image from a registry that wants a password. A private registry
//! (Debian's docker-registry, htpasswd, its own port and data) takes the image the worker's
//! path pushes — the squash, with the credentials `[worker.registry_auth]` gives it — and the
//! bridge's import (bundle mode: the same archive it uploads to a hub) reads the manifest,
//! the config and every layer back through `[koji.registry_auth]`: the archive holds the
//! pushed config, one layer per diff_id (each checked), and `docker load` of it gives the
//! pushed image. Without credentials the import is refused (not retried), the password
//! never in the reason.

mod support;

use osbs_koji_bridge::import::{ImportError, Imported, Importer};
use osbs_koji_bridge::metadata::image_filename;
use osbs_proto::v1::{ImageDigest, ImageInfo, LayerSize};
use osbs_registry::{Credentials, Secret};
use osbs_squash::{LayerCompression, RegistryTarget, squash_to_registry};
use osbs_testkit::registry::{PASSWORD, PrivateRegistry, USER};
use osbs_testkit::{ensure_busybox_image, require_docker, require_registry, run, run_with_stdin};
use sha2::Digest;
use std::collections::BTreeMap;
use std::io::Read;

/// The entries of a `.tar.gz`, in order.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (entry.path().unwrap().display().to_string(), content)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_reads_back_an_image_pushed_to_a_registry_with_a_password() {
    require_docker();
    require_registry();
    let private = PrivateRegistry::with_password("127.0.0.1");
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-koji-bridge-test-base:auth");
    let image = format!("osbs-koji-bridge-test-auth:{}", std::process::id());
    run_with_stdin(
        &["docker", "build", "-q", "-t", &image, "-"],
        format!("FROM {base}\nRUN echo bridge > /bridge && rm /etc/group\n").as_bytes(),
    );

    // The worker's path: the squash pushes with the registry's credentials.
    let credentials = Credentials::new(USER, Secret::new(PASSWORD));
    let mut target = RegistryTarget::new(&private.address, "ns/app", vec!["1.0-1".into()]);
    target.auth = Some(credentials.clone());
    target.layer_compression = LayerCompression::Gzip { level: 1 };
    let docker = bollard::Docker::connect_with_defaults().unwrap();
    let pushed = squash_to_registry(&docker, &image, &base, &target)
        .await
        .unwrap();
    let _ = run(&["docker", "rmi", "-f", &image]);

    // The result the worker publishes for it.
    let (_dir, root) = support::temp_dir();
    let (artifacts, bundles) = (root.join("artifacts"), root.join("bundles"));
    let mut result = support::result("auth-1", ("app", "1.0", "1"), &artifacts).await;
    let repository = format!("{}/ns/app", private.address);
    let config: serde_json::Value = serde_json::from_str(&pushed.config_json).unwrap();
    let architecture = config["architecture"].as_str().unwrap().to_owned();
    result.image = Some(ImageInfo {
        image_id: pushed.config_digest.clone(),
        config_json: pushed.config_json.clone(),
        digests: vec![ImageDigest {
            media_type: pushed.manifest_media_type.clone(),
            digest: pushed.manifest_digest.clone(),
        }],
        layer_sizes: pushed
            .layers
            .iter()
            .map(|layer| LayerSize {
                diff_id: layer.diff_id.clone(),
                size: layer.size as i64,
            })
            .collect(),
        pullspecs: vec![
            format!("{repository}:1.0-1"),
            format!("{repository}@{}", pushed.manifest_digest),
        ],
        tags: vec!["1.0-1".into()],
        repositories: vec![repository.clone()],
        architecture: architecture.clone(),
        os: "linux".into(),
        ..ImageInfo::default()
    });

    // Without credentials the registry refuses the bridge: a refusal, not a retry.
    let mut koji = support::koji_config(None, &bundles);
    let refused = Importer::new(&koji, &artifacts)
        .unwrap()
        .import(&result, 0)
        .await
        .unwrap_err();
    match &refused {
        ImportError::Refused(reason) => {
            assert!(reason.contains("refused access"), "{reason}");
            assert!(reason.contains(&private.address), "{reason}");
        }
        other => panic!("not refused: {other:?}"),
    }

    // With [koji.registry_auth]: the image comes back whole.
    koji.registry_auth = BTreeMap::from([(private.address.clone(), credentials)]);
    let imported = Importer::new(&koji, &artifacts)
        .unwrap()
        .import(&result, 0)
        .await
        .unwrap();
    let Imported::Bundle { dir, .. } = imported else {
        panic!("not a bundle: {imported:?}");
    };
    let archive_path = dir.join(image_filename(&pushed.config_digest, &architecture));
    let archive = std::fs::read(&archive_path).unwrap();
    let entries = entries(&archive);
    let config_hex = pushed.config_digest.trim_start_matches("sha256:");
    let (_, config_bytes) = entries
        .iter()
        .find(|(name, _)| *name == format!("{config_hex}.json"))
        .expect("the config is in the archive");
    assert_eq!(config_bytes, pushed.config_json.as_bytes());
    let layer_digests: Vec<String> = entries
        .iter()
        .filter(|(name, _)| name.ends_with("/layer.tar"))
        .map(|(_, tar)| format!("sha256:{}", hex::encode(sha2::Sha256::digest(tar))))
        .collect();
    let diff_ids: Vec<String> = pushed.layers.iter().map(|l| l.diff_id.clone()).collect();
    assert_eq!(layer_digests, diff_ids);
    let (_, manifest) = entries.last().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!([format!("{repository}:1.0-1")])
    );

    // `docker load` of the archive gives the pushed image.
    let loaded = run_with_stdin(&["docker", "load", "-q"], &archive);
    assert!(loaded.contains(&format!("{repository}:1.0-1")), "{loaded}");
    let id = run(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{repository}:1.0-1"),
    ]);
    assert_eq!(id.trim(), pushed.config_digest);
    let _ = run(&["docker", "rmi", "-f", &format!("{repository}:1.0-1")]);
    assert!(!format!("{koji:?} {refused:?}").contains(PASSWORD));
}
