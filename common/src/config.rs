//! Layered configuration: built-in defaults < TOML file < `OSBS_…` environment variables.
//!
//! Each service defines its own top-level struct out of the sections here plus its own
//! section, and loads it with [`load`]. Secrets are [`Secret`]s and URLs with credentials are
//! [`CredentialUrl`]s: both serialize masked, so printing the effective configuration
//! ([`effective`]) can never leak them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Credentials as data live in the contract crate (crates without this one's runtime take
/// them too); re-exported here for the services.
pub use osbs_proto::secret::{CredentialUrl, Secret, mask_url_password};

/// Environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "OSBS_CONFIG";
/// Where services look for their file when neither `--config` nor `OSBS_CONFIG` says.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/osbs/osbs.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path} does not exist: create it or point {CONFIG_ENV} at one")]
    Missing { path: PathBuf },
    #[error("invalid configuration (file {path}, OSBS_* environment): {source}")]
    Invalid {
        path: String,
        #[source]
        source: config::ConfigError,
    },
}

/// Loads `T` from defaults, then `file` (or `$OSBS_CONFIG`, or [`DEFAULT_CONFIG_PATH`] when it
/// exists), then environment variables: `OSBS_AMQP__URL` sets `amqp.url`,
/// `OSBS_WORKER__CONCURRENCY` sets `worker.concurrency`. Lists in the environment are
/// comma-separated (`OSBS_AMQP__URLS=amqp://…@n1:5672/%2f,amqp://…@n2:5672/%2f`).
pub fn load<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    let explicit = file
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    let mut builder = config::Config::builder();
    let shown_path = match &explicit {
        Some(path) => {
            if !path.exists() {
                return Err(ConfigError::Missing { path: path.clone() });
            }
            builder = builder.add_source(config::File::from(path.as_path()));
            path.display().to_string()
        }
        None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
            builder = builder.add_source(config::File::with_name(DEFAULT_CONFIG_PATH));
            DEFAULT_CONFIG_PATH.to_owned()
        }
        None => "(none, defaults)".to_owned(),
    };
    builder
        .add_source(
            config::Environment::with_prefix("OSBS")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("amqp.urls")
                .with_list_parse_key("dispatcher.allowed_git_urls")
                .with_list_parse_key("dispatcher.namespaces")
                .with_list_parse_key("worker.allowed_git_urls")
                .with_list_parse_key("worker.arches"),
        )
        .build()
        .and_then(|built| built.try_deserialize())
        .map_err(|source| ConfigError::Invalid {
            path: shown_path,
            source,
        })
}

/// The configuration as one line of JSON, secrets masked: what services log at start.
pub fn effective<T: Serialize>(config: &T) -> String {
    serde_json::to_string(config).unwrap_or_else(|error| format!("<unprintable: {error}>"))
}

/// Queue type for the durable queues. Quorum queues are what production RabbitMQ clusters
/// should use (RabbitMQ ≥ 4.0 for job priorities); classic works everywhere, including the
/// RabbitMQ 3.x of Debian 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

/// `[amqp]`: the broker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpConfig {
    /// The broker, when it is one node.
    pub url: CredentialUrl,
    /// The nodes of a RabbitMQ cluster, tried in turn on connecting and on every
    /// reconnection ([`crate::failover`]); when set, `url` is not used. They differ only in
    /// host and port: one login and one vhost for the whole cluster.
    pub urls: Vec<CredentialUrl>,
    /// fedora-messaging topic prefix: `org.fedoraproject.prod` in Fedora.
    pub topic_prefix: String,
    pub queue_type: QueueType,
    /// How long a service keeps retrying its first connection before giving up.
    pub connect_timeout_secs: u64,
}

impl Default for AmqpConfig {
    fn default() -> Self {
        AmqpConfig {
            url: CredentialUrl::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            urls: Vec::new(),
            topic_prefix: "org.fedoraproject.prod".into(),
            queue_type: QueueType::Classic,
            connect_timeout_secs: 30,
        }
    }
}

impl AmqpConfig {
    /// The URLs to connect to, in the order they are tried: `urls` when set, else `url`.
    pub fn broker_urls(&self) -> Vec<&CredentialUrl> {
        if self.urls.is_empty() {
            vec![&self.url]
        } else {
            self.urls.iter().collect()
        }
    }

    /// Every broker URL, masked, for messages.
    pub fn masked_urls(&self) -> String {
        self.broker_urls()
            .iter()
            .map(|url| url.masked())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `[redis]`: build records, logs, reservations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    pub url: CredentialUrl,
    /// Prefix of every key, so that several OSBS instances can share one Redis.
    pub key_prefix: String,
    /// Live log lines kept per build (the complete log is a file).
    pub log_max_lines: usize,
    pub connect_timeout_secs: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: CredentialUrl::new("redis://127.0.0.1:6379/0"),
            key_prefix: "osbs".into(),
            log_max_lines: 20_000,
            connect_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

/// `[telemetry]`: log format and filter.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            format: LogFormat::Human,
            filter: "info,lapin=warn,bollard=warn".into(),
        }
    }
}

/// `[storage]`: where build artifacts (complete logs, final Dockerfiles) are written by workers
/// and read by the koji-bridge. On several hosts this is a shared volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub artifacts_dir: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            artifacts_dir: PathBuf::from("/var/lib/osbs/artifacts"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize)]
    struct Sample {
        #[serde(default)]
        amqp: AmqpConfig,
        #[serde(default)]
        redis: RedisConfig,
    }

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("osbs.toml");
        std::fs::write(
            &path,
            "[amqp]\nurl = \"amqp://a:b@file:5672\"\ntopic_prefix = \"org.example.stg\"\n",
        )
        .unwrap();
        let sample: Sample = load(Some(&path)).unwrap();
        assert_eq!(sample.amqp.url.expose(), "amqp://a:b@file:5672");
        assert_eq!(sample.amqp.topic_prefix, "org.example.stg");
        assert_eq!(sample.redis.key_prefix, "osbs");
        let shown = effective(&sample);
        assert!(shown.contains("a:***@file"), "{shown}");

        // Several nodes: `urls` wins over `url`, and prints masked.
        let clustered_path = dir.path().join("cluster.toml");
        std::fs::write(
            &clustered_path,
            "[amqp]\nurl = \"amqp://a:b@single:5672\"\nurls = [\"amqp://a:b@n1:5672/%2f\", \"amqp://a:b@n2:5673/%2f\"]\n",
        )
        .unwrap();
        let clustered: Sample = load(Some(&clustered_path)).unwrap();
        let urls: Vec<&str> = clustered
            .amqp
            .broker_urls()
            .into_iter()
            .map(CredentialUrl::expose)
            .collect();
        assert_eq!(urls, ["amqp://a:b@n1:5672/%2f", "amqp://a:b@n2:5673/%2f"]);
        let shown = effective(&clustered);
        assert!(!shown.contains("a:b@"), "{shown}");
        assert_eq!(
            clustered.amqp.masked_urls(),
            "amqp://a:***@n1:5672/%2f, amqp://a:***@n2:5673/%2f"
        );
        assert_eq!(
            sample.amqp.broker_urls(),
            [&sample.amqp.url],
            "one node: url alone"
        );

        let missing = load::<Sample>(Some(&dir.path().join("nope.toml"))).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
    }
}
