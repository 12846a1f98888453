//! The bridge's configuration: the shared sections plus `[koji]` — the hub (also read by
//! the worker, which reserves NVRs on it) and the bridge service itself.

use osbs_common::config::{AmqpConfig, RedisConfig, Secret, StorageConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `osbs-koji-bridge` reads from the shared configuration file. Not
/// `deny_unknown_fields`: every service reads the same file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BridgeConfig {
    pub amqp: AmqpConfig,
    pub redis: RedisConfig,
    pub telemetry: TelemetryConfig,
    pub storage: StorageConfig,
    pub koji: KojiConfig,
}

/// How the bridge logs in to the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// `sslLogin` with a client certificate (production: the CN names the CG user).
    #[default]
    Ssl,
    /// `login(user, password)` (test hubs).
    Password,
}

/// `[koji.auth]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KojiAuth {
    pub method: AuthMethod,
    /// For `password`.
    pub user: String,
    pub password: Secret,
    /// For `ssl`: the client certificate (PEM); it may hold the key too.
    pub cert: PathBuf,
    /// The client key (PEM); empty when `cert` holds it.
    pub key: PathBuf,
}

impl Default for KojiAuth {
    fn default() -> Self {
        KojiAuth {
            method: AuthMethod::Ssl,
            user: String::new(),
            password: Secret::default(),
            cert: PathBuf::from("/etc/osbs-koji/client.crt"),
            key: PathBuf::from("/etc/osbs-koji/client.key"),
        }
    }
}

/// How an imported build reaches its destination tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TagMode {
    /// `tagBuild`, then wait for its task (any CG user may, if the package is listed).
    #[default]
    Task,
    /// `tagBuildBypass`: at once, no policy (needs the `tag` permission).
    Bypass,
    /// Do not tag.
    None,
}

/// Which upload API the bridge uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UploadMode {
    /// Fast upload when the hub has `checkUpload`, else the legacy `uploadFile`.
    #[default]
    Auto,
    Fast,
    Legacy,
}

/// `[koji]`: the hub, and the bridge service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KojiConfig {
    /// The hub's XML-RPC URL (`https://koji.fedoraproject.org/kojihub`). Empty: no hub; the
    /// bridge writes import bundles into `bundle_dir` instead (the quickstart's default).
    pub hub_url: String,
    pub auth: KojiAuth,
    /// CA certificates (PEM) the hub's certificate must chain to; empty = the system's.
    pub server_ca: PathBuf,
    /// Content generator name registered on the hub (`koji grant-cg-access USER osbs`).
    pub cg_name: String,
    /// Where import bundles go when there is no hub: `<bundle_dir>/<nvr>/`.
    pub bundle_dir: PathBuf,
    pub tag_mode: TagMode,
    pub upload_mode: UploadMode,
    /// Bytes per upload request.
    pub upload_chunk_bytes: usize,
    /// Upload directory on the hub: `<upload_dir>/<osbs build id>`.
    pub upload_dir: String,
    /// Longest one XML-RPC call or upload request may take.
    pub call_timeout_secs: u64,
    /// How long a transient hub or registry failure is retried before the result goes back
    /// to the queue (to be resumed later).
    pub retry_secs: u64,
    /// Longest wait for a `tagBuild` task.
    pub tag_task_timeout_secs: u64,
    /// gzip level of the image archive (1 fast … 9 small).
    pub image_compression_level: u32,
    /// Registries read over plain HTTP (loopback ones always are).
    pub insecure_registries: Vec<String>,
    /// Credentials per registry (`host[:port]`) the images are read back from — the same
    /// as the worker's `[worker.registry_auth]` for the registry it pushes to:
    /// `[koji.registry_auth."registry.example.org"]` with `username` and `password` or
    /// `password_env` (the environment variable holding the password).
    pub registry_auth: BTreeMap<String, osbs_registry::Credentials>,
    /// `/healthz` and `/metrics`.
    pub http_listen: SocketAddr,
    /// Unacked results held at once, and imports run at once.
    pub prefetch: u16,
    pub concurrency: usize,
    /// On SIGTERM, how long imports in hand may take before their results go back.
    pub drain_grace_secs: u64,
    /// Life of the per-build import lock (renewed while importing).
    pub lock_ttl_secs: u64,
    /// Pause before a result that failed transiently goes back to the queue.
    pub requeue_delay_secs: u64,
}

impl Default for KojiConfig {
    fn default() -> Self {
        KojiConfig {
            hub_url: String::new(),
            auth: KojiAuth::default(),
            server_ca: PathBuf::new(),
            cg_name: "osbs".into(),
            bundle_dir: PathBuf::from("/var/lib/osbs/koji-bundles"),
            tag_mode: TagMode::Task,
            upload_mode: UploadMode::Auto,
            upload_chunk_bytes: 8 << 20,
            upload_dir: "osbs-import".into(),
            call_timeout_secs: 600,
            retry_secs: 300,
            tag_task_timeout_secs: 600,
            image_compression_level: 6,
            insecure_registries: Vec::new(),
            registry_auth: BTreeMap::new(),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9103)),
            prefetch: 4,
            concurrency: 2,
            drain_grace_secs: 50,
            lock_ttl_secs: 60,
            requeue_delay_secs: 10,
        }
    }
}

impl KojiConfig {
    /// Whether a hub is configured (else: bundle mode).
    pub fn has_hub(&self) -> bool {
        !self.hub_url.trim().is_empty()
    }
    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs(self.call_timeout_secs.max(1))
    }
    pub fn retry_budget(&self) -> Duration {
        Duration::from_secs(self.retry_secs)
    }
    pub fn tag_task_timeout(&self) -> Duration {
        Duration::from_secs(self.tag_task_timeout_secs.max(1))
    }
    pub fn drain_grace(&self) -> Duration {
        Duration::from_secs(self.drain_grace_secs)
    }
    pub fn lock_ttl(&self) -> Duration {
        // Three renewals must fit in one life even when Redis is slow.
        Duration::from_secs(self.lock_ttl_secs.max(6))
    }
    pub fn requeue_delay(&self) -> Duration {
        Duration::from_secs(self.requeue_delay_secs)
    }
    pub fn chunk_bytes(&self) -> usize {
        self.upload_chunk_bytes.clamp(64 << 10, 256 << 20)
    }
    /// How the bridge reaches registries.
    pub fn registry_settings(&self) -> osbs_registry::Settings {
        osbs_registry::Settings {
            insecure_registries: self.insecure_registries.clone(),
            credentials: self.registry_auth.clone(),
            attempts: osbs_registry::DEFAULT_ATTEMPTS,
            user_agent: concat!("osbs-koji-bridge/", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The hub URL with any password masked, for logs.
    pub fn hub_url_masked(&self) -> String {
        osbs_common::config::mask_url_password(&self.hub_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sections_and_masking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osbs.toml");
        std::fs::write(
            &path,
            "[koji]\nhub_url = \"http://127.0.0.1:8081/kojihub\"\ntag_mode = \"bypass\"\n\
             [koji.auth]\nmethod = \"password\"\nuser = \"osbs\"\npassword = \"hunter2\"\n\
             [koji.registry_auth.\"127.0.0.1:5000\"]\nusername = \"robot\"\npassword_env = \"REGISTRY_PUSH_PASSWORD\"\n\
             [worker]\nconcurrency = 3\n",
        )
        .unwrap();
        let config: BridgeConfig = osbs_common::config::load(Some(&path)).unwrap();
        assert!(config.koji.has_hub());
        assert_eq!(config.koji.tag_mode, TagMode::Bypass);
        assert_eq!(config.koji.auth.method, AuthMethod::Password);
        assert_eq!(config.koji.auth.password.expose(), "hunter2");
        assert_eq!(config.koji.cg_name, "osbs");
        let robot = &config.koji.registry_auth["127.0.0.1:5000"];
        assert_eq!(
            (robot.username.as_str(), robot.password_env.as_str()),
            ("robot", "REGISTRY_PUSH_PASSWORD")
        );
        let shown = osbs_common::config::effective(&config);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{config:?}").contains("hunter2"));

        std::fs::write(&path, "[koji]\nhub = \"typo\"\n").unwrap();
        let error = osbs_common::config::load::<BridgeConfig>(Some(&path)).unwrap_err();
        assert!(error.to_string().contains("hub"), "{error}");
    }

    #[test]
    fn no_hub_means_bundles() {
        let config = KojiConfig::default();
        assert!(!config.has_hub());
        assert_eq!(config.http_listen.port(), 9103);
        assert_eq!(config.chunk_bytes(), 8 << 20);
    }
}
