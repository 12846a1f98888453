//! One image built for one architecture on this x86_64 host (issue 12), through the pieces an
//! arch job wires together, on the real Docker Engine and registry: the multi-arch base list
//! (`deploy/base-image.sh ensure-multi`), the `FROM` pinned to that arch's manifest
//! (`parent::pin_digest`), the engine's build for the arch's platform
//! (`Engine::build_for_platform`; aarch64 runs under qemu-user-static), the squash pushed
//! with the arch's platform in its config (`RegistryTarget::platform`).

use osbs_common::store::Store;
use osbs_proto::arch::{self, Arch};
use osbs_registry::{Document, Platform, Reference, Registries, Settings};
use osbs_squash::RegistryTarget;
use osbs_testkit::{MULTIARCH_BASE, REGISTRY, TestEnv};
use osbs_worker::adapters::docker::Engine;
use osbs_worker::buildlog::BuildLog;
use osbs_worker::parent;
use std::collections::BTreeMap;

/// The repository the built images are pushed to.
const REPOSITORY: &str = "osbs-worker-test/arch";

/// What one arch's build gave.
struct Built {
    /// The digest the `FROM` was pinned to, and the list's.
    pin: parent::Pin,
    /// The digest of the arch's entry in the base list, read from the list itself.
    list_entry: String,
    /// The base list's digest as `deploy/base-image.sh` pushed it.
    list_digest: String,
    /// The first layer of the arch's base manifest, and of the pushed image.
    base_layer: String,
    pushed_first_layer: String,
    /// The pushed image's config.
    config: serde_json::Value,
    /// What `/arch` says in the pushed image, run for the arch.
    uname: String,
}

async fn build_for(arch: Arch) -> Built {
    osbs_testkit::require_qemu_aarch64();
    let list_digest = osbs_testkit::ensure_multiarch_busybox_image(MULTIARCH_BASE);
    let env = TestEnv::new();
    let store = Store::connect(&env.redis).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = BuildLog::create(dir.path(), &format!("arch-{}", arch.koji), store).unwrap();
    let registries = Registries::new(Settings::new("osbs-worker-arch-test")).unwrap();
    let engine = Engine::connect(BTreeMap::new()).await.unwrap();
    let platform = arch.platform();

    // The FROM, pinned to this arch's manifest of the list.
    let reference = parent::resolve(MULTIARCH_BASE, REGISTRY).unwrap();
    let pin = parent::pin_digest(&registries, &reference, Some(&arch))
        .await
        .unwrap()
        .expect("the multi-arch base is in the registry");
    let pinned = reference.pinned(&pin.digest);
    let registry = registries.get(REGISTRY).unwrap();
    let base_tag = Reference::tag(reference.tag.as_deref().unwrap()).unwrap();
    let Document::List(list) = registry
        .manifest(&reference.repository, &base_tag)
        .await
        .unwrap()
        .0
    else {
        panic!("{MULTIARCH_BASE} is not a manifest list");
    };
    let list_entry = list.pick_arch(&arch).unwrap().digest.clone();
    let base_layer = registry
        .arch_manifest(
            &reference.repository,
            &Reference::digest(&pin.digest).unwrap(),
            &arch,
        )
        .await
        .unwrap()
        .manifest
        .layers[0]
        .digest
        .clone();
    if engine.inspect_image(&pinned).await.unwrap().is_none() {
        engine
            .pull_for_platform(&pinned, Some(&platform), &log)
            .await
            .unwrap();
    }

    // The build, for the arch's platform.
    let context = dir.path().join("context.tar");
    let dockerfile = format!("FROM {pinned}\nRUN uname -m > /arch\n");
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    std::fs::write(&context, tar.into_inner().unwrap()).unwrap();
    let unique = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
    let local_tag = format!("osbs-worker-test-arch:{unique}-{}", arch.koji);
    // The engine keeps the step containers: the worker's to remove, this test's here.
    let steps = std::sync::Mutex::new(Vec::new());
    let built = engine
        .build_for_platform(
            &context,
            &local_tag,
            Some(&platform),
            &Default::default(),
            &log,
            |container| steps.lock().unwrap().push(container.to_owned()),
        )
        .await;
    for container in steps.into_inner().unwrap() {
        engine.remove_container(&container).await;
    }
    let image_id = built.unwrap_or_else(|error| {
        panic!(
            "the {} build failed: {error}\n{}",
            arch.koji,
            std::fs::read_to_string(log.path()).unwrap_or_default()
        )
    });

    // The squash, pushed with the arch's platform in its config.
    let mut target = RegistryTarget::new(
        REGISTRY,
        REPOSITORY,
        vec![format!("{unique}-{}", arch.koji)],
    );
    target.platform = Some(Platform::of_arch(&arch));
    let pushed = osbs_squash::squash_to_registry(engine.client(), &image_id, &pinned, &target)
        .await
        .unwrap();
    let by_digest = Reference::digest(&pushed.manifest_digest).unwrap();
    let config = registry
        .image_config(REPOSITORY, &by_digest, &Platform::of_arch(&arch))
        .await
        .unwrap();

    // What the pushed image says, pulled by digest and run for the arch.
    let pulled = format!("{REGISTRY}/{REPOSITORY}@{}", pushed.manifest_digest);
    osbs_testkit::run(&["docker", "pull", "-q", "--platform", &platform, &pulled]);
    let uname = osbs_testkit::run(&[
        "docker",
        "run",
        "--rm",
        "--platform",
        &platform,
        &pulled,
        "cat",
        "/arch",
    ]);
    let _ = std::process::Command::new("docker")
        .args(["image", "rm", "-f", &local_tag, &pulled])
        .output();
    Built {
        pin,
        list_entry,
        list_digest,
        base_layer,
        pushed_first_layer: pushed.layers[0].digest.clone(),
        config,
        uname: uname.trim().to_owned(),
    }
}

fn check(built: &Built, koji: &str, oci: &str, variant: Option<&str>) {
    assert_eq!(built.uname, koji, "what `uname -m` said in the build");
    assert_eq!(built.config["architecture"], oci);
    assert_eq!(built.config["variant"].as_str(), variant);
    assert_eq!(built.config["os"], "linux");
    assert_eq!(
        built.pin.digest, built.list_entry,
        "the FROM is pinned to the {koji} entry of the list"
    );
    assert_eq!(
        built.pin.list_digest.as_deref(),
        Some(built.list_digest.as_str())
    );
    assert_eq!(
        built.pushed_first_layer, built.base_layer,
        "the pushed image sits on the {koji} base's layer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aarch64_image_is_built_under_emulation_from_the_list() {
    let built = build_for(arch::lookup("aarch64").unwrap()).await;
    check(&built, "aarch64", "arm64", Some("v8"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x86_64_image_is_built_from_the_list() {
    let built = build_for(arch::lookup("x86_64").unwrap()).await;
    check(&built, "x86_64", "amd64", None);
}

#[tokio::test]
async fn a_single_arch_build_pins_a_list_by_its_own_digest_as_before() {
    let list_digest = osbs_testkit::ensure_multiarch_busybox_image(MULTIARCH_BASE);
    let registries = Registries::new(Settings::new("osbs-worker-arch-test")).unwrap();
    let reference = parent::resolve(MULTIARCH_BASE, REGISTRY).unwrap();
    let pin = parent::pin_digest(&registries, &reference, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pin.digest, list_digest);
    assert_eq!(pin.list_digest, None);
    let missing = parent::resolve(&format!("{MULTIARCH_BASE}-never-pushed"), REGISTRY).unwrap();
    for arch in [None, arch::lookup("aarch64")] {
        assert_eq!(
            parent::pin_digest(&registries, &missing, arch.as_ref())
                .await
                .unwrap(),
            None
        );
    }
}
