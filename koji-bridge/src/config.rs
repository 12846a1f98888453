//! The bridge's configuration: the shared sections plus `[koji]` — the hub
//! ([`osbs_koji::KojiConfig`], also read by the worker, which reserves NVRs on it) and the
//! bridge service itself, in one section.

use osbs_common::config::{AmqpConfig, RedisConfig, StorageConfig, TelemetryConfig};
use osbs_koji::KojiConfig;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
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
    pub koji: KojiSection,
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

/// `[koji]` as the bridge reads it: the hub (`hub_url`, `[koji.auth]`, `cg_name`, uploads,
/// timeouts: [`osbs_koji::KojiConfig`]) and the bridge service's own keys, in one section
/// whose unknown keys are refused.
///
/// (De)serialized by hand around the derived code (`remote = "Self"`): the hub's keys
/// ([`KojiConfig::FIELDS`]) go to [`KojiConfig`], the others to the derived fields, which
/// refuse unknown ones. serde's `flatten` alone would neither refuse unknown keys nor read
/// the environment's values (`OSBS_KOJI__…`) as the config crate does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct KojiSection {
    /// The hub. Its keys sit in `[koji]` itself, not in a sub-section.
    #[serde(flatten, skip_deserializing)]
    pub hub: KojiConfig,
    /// Where import bundles go when there is no hub (`hub_url` empty; the quickstart's
    /// default): `<bundle_dir>/<nvr>/`.
    pub bundle_dir: PathBuf,
    pub tag_mode: TagMode,
    /// Upload directory on the hub: `<upload_dir>/<osbs build id>`.
    pub upload_dir: String,
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
    /// Pause before a result that failed transiently goes back to the queue (after the
    /// hub's `retry_secs`).
    pub requeue_delay_secs: u64,
    /// How long a result whose import or refund meets a hub that is down (after the hub's
    /// `retry_secs` of quick retries) is retried, counted from its first failure: it waits
    /// in a retry queue with growing delays (5 s, 10 s, 20 s… 5 min). Past it, the import
    /// fails (`import_failed`) and the result is dead-lettered. 0: no retries.
    pub retry_window_secs: u64,
}

impl Default for KojiSection {
    fn default() -> Self {
        KojiSection {
            hub: KojiConfig::default(),
            bundle_dir: PathBuf::from("/var/lib/osbs/koji-bundles"),
            tag_mode: TagMode::Task,
            upload_dir: "osbs-import".into(),
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
            retry_window_secs: 600,
        }
    }
}

impl<'de> Deserialize<'de> for KojiSection {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<KojiSection, D::Error> {
        use serde::de::Error;
        let section = config::Map::<String, config::Value>::deserialize(deserializer)?;
        let (hub, own): (config::Map<_, _>, config::Map<_, _>) = section
            .into_iter()
            .partition(|(key, _)| KojiConfig::FIELDS.contains(&key.as_str()));
        // The inherent (derived, `remote`) functions: the bridge's keys only.
        let mut koji =
            KojiSection::deserialize(config::Value::from(own)).map_err(D::Error::custom)?;
        koji.hub = KojiConfig::deserialize(config::Value::from(hub)).map_err(D::Error::custom)?;
        Ok(koji)
    }
}

impl Serialize for KojiSection {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        KojiSection::serialize(self, serializer)
    }
}

impl KojiSection {
    /// Whether a hub is configured (else: bundle mode).
    pub fn has_hub(&self) -> bool {
        self.hub.has_hub()
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
    pub fn retry_window(&self) -> Duration {
        Duration::from_secs(self.retry_window_secs)
    }
    pub fn requeue_delay(&self) -> Duration {
        Duration::from_secs(self.requeue_delay_secs)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_koji::AuthMethod;

    #[test]
    fn file_sections_and_masking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osbs.toml");
        std::fs::write(
            &path,
            "[koji]\nhub_url = \"http://127.0.0.1:8081/kojihub\"\ntag_mode = \"bypass\"\n\
             call_timeout_secs = 30\nlock_ttl_secs = 20\n\
             [koji.auth]\nmethod = \"password\"\nuser = \"osbs\"\npassword = \"hunter2\"\n\
             [koji.registry_auth.\"127.0.0.1:5000\"]\nusername = \"robot\"\npassword_env = \"REGISTRY_PUSH_PASSWORD\"\n\
             [worker]\nconcurrency = 3\n",
        )
        .unwrap();
        let config: BridgeConfig = osbs_common::config::load(Some(&path)).unwrap();
        assert!(config.koji.has_hub());
        assert_eq!(config.koji.tag_mode, TagMode::Bypass);
        assert_eq!(config.koji.lock_ttl_secs, 20);
        assert_eq!(config.koji.hub.call_timeout_secs, 30);
        assert_eq!(config.koji.hub.auth.method, AuthMethod::Password);
        assert_eq!(config.koji.hub.auth.password.expose(), "hunter2");
        assert_eq!(config.koji.hub.cg_name, "osbs");
        let robot = &config.koji.registry_auth["127.0.0.1:5000"];
        assert_eq!(
            (robot.username.as_str(), robot.password_env.as_str()),
            ("robot", "REGISTRY_PUSH_PASSWORD")
        );
        let shown = osbs_common::config::effective(&config);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains(r#""koji":{"hub_url":"http://127.0.0.1:8081/kojihub""#),
            "printed as the file says it: {shown}"
        );
        assert!(!format!("{config:?}").contains("hunter2"));

        let typos = [
            ("[koji]\nhub = \"typo\"\n", "unknown field `hub`"),
            ("[koji.auth]\nmetod = \"ssl\"\n", "unknown field `metod`"),
            (
                "[koji]\ncall_timeout_secs = \"soon\"\n",
                "call_timeout_secs",
            ),
        ];
        for (typo, expected) in typos {
            std::fs::write(&path, typo).unwrap();
            let error = osbs_common::config::load::<BridgeConfig>(Some(&path)).unwrap_err();
            assert!(error.to_string().contains(expected), "{error}");
        }
    }

    #[test]
    fn no_hub_means_bundles() {
        let config = KojiSection::default();
        assert!(!config.has_hub());
        assert_eq!(config.http_listen.port(), 9103);
        assert_eq!(config.hub.chunk_bytes(), 8 << 20);
    }
}
