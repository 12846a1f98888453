//! What the bridge's integration tests share: a busybox image pushed to the real registry
//! and described as a worker would, build records in the real Redis, the bridge service
//! running in-process on a test vhost, and a Koji hub double.

#![allow(dead_code)]

use osbs_common::bus::Bus;
use osbs_common::config::{Secret, StorageConfig, TelemetryConfig};
use osbs_common::state::{self, Changed, StateChange};
use osbs_common::store::Store;
use osbs_koji::{AuthMethod, KojiAuth, KojiClient, KojiConfig};
use osbs_koji_bridge::config::{BridgeConfig, KojiSection, TagMode};
use osbs_koji_hub::{HubConfig, KojiHub, RunningHub, TargetSpec, UserSpec};
use osbs_proto::v1::{
    BuildJob, BuildOptions, BuildResult, BuildState, BuildTool, ImageDigest, ImageInfo,
    KojiReservation, LayerSize, LogFile, Nvr, Rpm, Target, Trigger,
};
use osbs_testkit::TestEnv;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const TARGET: &str = "f41-container-candidate";
pub const PACKAGE: &str = "osbs-test-image";
const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A pushed image as the worker describes it.
#[derive(Debug, Clone)]
pub struct PushedImage {
    pub repository: String,
    pub tag: String,
    pub manifest_digest: String,
    pub image_id: String,
    pub config_json: String,
    pub layer_sizes: Vec<LayerSize>,
    pub architecture: String,
}

static IMAGE: tokio::sync::OnceCell<PushedImage> = tokio::sync::OnceCell::const_new();

/// The busybox test image, imported and pushed once per test binary.
pub async fn pushed_image() -> &'static PushedImage {
    IMAGE
        .get_or_init(|| async {
            let repository = "127.0.0.1:5000/osbs-koji-bridge-test/busybox".to_owned();
            let tag = format!("t{}", std::process::id());
            let reference = format!("{repository}:{tag}");
            tokio::task::spawn_blocking({
                let reference = reference.clone();
                move || osbs_testkit::ensure_busybox_image(&reference)
            })
            .await
            .unwrap();
            let http = reqwest::Client::new();
            let manifest = http
                .get(format!(
                    "http://127.0.0.1:5000/v2/osbs-koji-bridge-test/busybox/manifests/{tag}"
                ))
                .header("Accept", MANIFEST_V2)
                .send()
                .await
                .expect("the registry answers");
            let manifest_digest = manifest.headers()["docker-content-digest"]
                .to_str()
                .unwrap()
                .to_owned();
            let manifest: serde_json::Value = manifest.json().await.unwrap();
            let image_id = manifest["config"]["digest"].as_str().unwrap().to_owned();
            let config_json = http
                .get(format!(
                    "http://127.0.0.1:5000/v2/osbs-koji-bridge-test/busybox/blobs/{image_id}"
                ))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let config: serde_json::Value = serde_json::from_str(&config_json).unwrap();
            let layer_sizes = config["rootfs"]["diff_ids"]
                .as_array()
                .unwrap()
                .iter()
                .zip(manifest["layers"].as_array().unwrap())
                .map(|(diff_id, layer)| LayerSize {
                    diff_id: diff_id.as_str().unwrap().to_owned(),
                    size: layer["size"].as_i64().unwrap(),
                })
                .collect();
            PushedImage {
                repository,
                tag,
                manifest_digest,
                image_id,
                architecture: config["architecture"].as_str().unwrap().to_owned(),
                config_json,
                layer_sizes,
            }
        })
        .await
}

/// A complete build's result for `nvr` (`name-version-release`), built from the pushed
/// image, with one log written under `artifacts`.
pub async fn result(build_id: &str, nvr: (&str, &str, &str), artifacts: &Path) -> BuildResult {
    let image = pushed_image().await;
    let log_dir = artifacts.join(build_id);
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = format!("Step 1/2 : FROM busybox\nbuild {build_id}\nStep 2/2 : done\n");
    std::fs::write(log_dir.join("build.log"), &log).unwrap();
    let unique_tag = format!("{}:{build_id}", image.repository);
    BuildResult {
        build_id: build_id.into(),
        state: BuildState::Complete as i32,
        job: Some(job(build_id)),
        nvr: Some(Nvr {
            name: nvr.0.into(),
            version: nvr.1.into(),
            release: nvr.2.into(),
        }),
        image: Some(ImageInfo {
            image_id: image.image_id.clone(),
            parent_id: String::new(),
            config_json: image.config_json.clone(),
            digests: vec![ImageDigest {
                media_type: MANIFEST_V2.into(),
                digest: image.manifest_digest.clone(),
            }],
            layer_sizes: image.layer_sizes.clone(),
            pullspecs: vec![
                unique_tag,
                format!("{}@{}", image.repository, image.manifest_digest),
            ],
            tags: vec![build_id.to_owned()],
            repositories: vec![image.repository.clone()],
            parent_pullspecs: Vec::new(),
            architecture: image.architecture.clone(),
            os: "linux".into(),
        }),
        components: vec![Rpm {
            name: "busybox".into(),
            version: "1.36".into(),
            release: "1".into(),
            arch: "x86_64".into(),
            epoch: -1,
            sigmd5: "00".repeat(16),
            ..Default::default()
        }],
        logs: vec![LogFile {
            name: "build.log".into(),
            path: format!("{build_id}/build.log"),
            size: log.len() as i64,
            sha256: String::new(),
        }],
        started_at_ms: 1_736_936_100_000,
        finished_at_ms: 1_736_936_200_000,
        worker: "worker-test".into(),
        tools: vec![BuildTool {
            name: "docker".into(),
            version: "20.10".into(),
        }],
        ..Default::default()
    }
}

pub fn job(build_id: &str) -> BuildJob {
    BuildJob {
        build_id: build_id.into(),
        repo: "busybox".into(),
        namespace: "container".into(),
        git_url: "file:///var/lib/osbs/git/busybox.git".into(),
        commit: "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into(),
        branch: "f41".into(),
        target: Some(Target {
            name: TARGET.into(),
            registry: "127.0.0.1:5000".into(),
            ..Default::default()
        }),
        options: Some(BuildOptions::default()),
        trigger: Trigger::Push as i32,
        submitter: "jdoe".into(),
        requested_at_ms: 1_736_936_000_000,
        attempt: 1,
        ..Default::default()
    }
}

/// Records `result`'s build in Redis and walks it to `complete`, as the dispatcher and the
/// worker do.
pub async fn record_complete(store: &Store, bus: &Bus, result: &BuildResult) {
    let job = result.job.clone().unwrap();
    store
        .create(&job, &format!("idem-{}", job.build_id), 1, "test", &[])
        .await
        .unwrap();
    for state in [
        BuildState::Running,
        BuildState::Pushing,
        BuildState::Complete,
    ] {
        let change = StateChange::new(&job.build_id, state, "test", "test")
            .with_fields(vec![("digest", "sha256:recorded-digest".into())]);
        let changed = state::change(store, bus, change).await;
        assert!(matches!(changed, Ok(Changed::Done(_))), "{changed:?}");
    }
}

/// A hub double with user `osbs` (password `osbs-test-password`), the `osbs` content
/// generator, and the test target whose tag lists the test package.
pub async fn hub() -> RunningHub {
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

/// `[koji]` for `hub` (or bundle mode when `None`), with short retry times.
pub fn koji_config(hub: Option<&RunningHub>, bundle_dir: &Path) -> KojiSection {
    KojiSection {
        hub: KojiConfig {
            hub_url: hub.map(|hub| hub.url.clone()).unwrap_or_default(),
            auth: KojiAuth {
                method: AuthMethod::Password,
                user: "osbs".into(),
                password: Secret::new("osbs-test-password"),
                ..KojiAuth::default()
            },
            upload_chunk_bytes: 256 << 10,
            retry_secs: 20,
            ..KojiConfig::default()
        },
        bundle_dir: bundle_dir.to_owned(),
        tag_mode: TagMode::Task,
        requeue_delay_secs: 1,
        http_listen: "127.0.0.1:0".parse().unwrap(),
        lock_ttl_secs: 10,
        ..KojiSection::default()
    }
}

pub fn bridge_config(env: &TestEnv, koji: KojiSection, artifacts: &Path) -> BridgeConfig {
    BridgeConfig {
        amqp: env.amqp.clone(),
        redis: env.redis.clone(),
        telemetry: TelemetryConfig::default(),
        storage: StorageConfig {
            artifacts_dir: artifacts.to_owned(),
        },
        koji,
    }
}

/// The bridge service, running in this process until dropped.
pub struct Bridge {
    shutdown: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Bridge {
    pub fn start(config: BridgeConfig) -> Bridge {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                osbs_koji_bridge::run(config, shutdown)
                    .await
                    .expect("the bridge runs");
            }
        });
        Bridge {
            shutdown,
            task: Some(task),
        }
    }

    /// SIGTERM: stops cleanly.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the bridge stops within its grace")
            .unwrap();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A connected bus with the topology declared.
pub async fn bus(env: &TestEnv) -> Bus {
    let bus = Bus::connect(&env.amqp, "test").await.unwrap();
    bus.declare_topology().await.unwrap();
    bus
}

/// Publishes `result` as a worker does.
pub async fn publish(bus: &Bus, result: &BuildResult) {
    bus.publish_result(result).await.unwrap();
}

/// Waits until `check` holds (polling), failing after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
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

/// A temporary directory for artifacts and bundles.
pub fn temp_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_owned();
    (dir, path)
}

/// Reserves `nvr` on `hub` as the worker does; returns the reservation for the result.
pub async fn reserve(hub: &RunningHub, nvr: (&str, &str, &str)) -> KojiReservation {
    let config = koji_config(Some(hub), Path::new("/nonexistent"));
    let client = KojiClient::connect(&config.hub).await.unwrap();
    let reservation = client.cg_init_build(nvr.0, nvr.1, nvr.2).await.unwrap();
    client.logout().await;
    KojiReservation {
        build_id: reservation.build_id,
        token: reservation.token,
    }
}
