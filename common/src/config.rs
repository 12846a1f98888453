//! Layered configuration: built-in defaults < TOML file < `OSBS_…` environment variables.
//!
//! Each service defines its own top-level struct out of the sections here plus its own
//! section, and loads it with [`load`]. Secrets are [`Secret`]s and URLs with credentials are
//! [`CredentialUrl`]s: both serialize masked, so printing the effective configuration
//! ([`effective`]) can never leak them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::path::{Path, PathBuf};

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
/// comma-separated.
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
                .with_list_parse_key("dispatcher.allowed_git_urls")
                .with_list_parse_key("dispatcher.namespaces")
                .with_list_parse_key("worker.allowed_git_urls"),
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

/// A credential. Serializes and prints as `***`; read it with [`Secret::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "***" })
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A URL that may carry a password (`amqp://user:pass@host`, `redis://:pass@host`).
/// Displays, debugs and serializes with the password replaced by `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialUrl(String);

impl CredentialUrl {
    pub fn new(value: impl Into<String>) -> Self {
        CredentialUrl(value.into())
    }
    /// The real URL, for the one call that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// The URL with any password masked: safe for logs and errors.
    pub fn masked(&self) -> String {
        mask_url_password(&self.0)
    }
}

/// Replaces the password of `url` by `***`; leaves a URL without one untouched.
pub fn mask_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // set_password only fails for cannot-be-a-base URLs, which carry no password.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Not parseable: still never print what could follow a `user:` part.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                format!("{}***{}", &url[..scheme_end + 3], &url[at..])
            }
            _ => url.to_owned(),
        },
    }
}

impl std::fmt::Debug for CredentialUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.masked())
    }
}

impl std::fmt::Display for CredentialUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.masked())
    }
}

impl Serialize for CredentialUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.masked())
    }
}

impl<'de> Deserialize<'de> for CredentialUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(CredentialUrl)
    }
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
    pub url: CredentialUrl,
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
            topic_prefix: "org.fedoraproject.prod".into(),
            queue_type: QueueType::Classic,
            connect_timeout_secs: 30,
        }
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

    #[test]
    fn passwords_never_print() {
        let url = CredentialUrl::new("amqp://osbs:s3cret@rabbit:5672/%2f");
        assert_eq!(url.masked(), "amqp://osbs:***@rabbit:5672/%2f");
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&url).unwrap().contains("s3cret"));
        assert_eq!(url.expose(), "amqp://osbs:s3cret@rabbit:5672/%2f");
        assert_eq!(
            mask_url_password("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert!(!mask_url_password("weird://u:p@@host").contains("u:p"));

        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "***");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"***\"");
    }

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

        let missing = load::<Sample>(Some(&dir.path().join("nope.toml"))).unwrap_err();
        assert!(missing.to_string().contains("nope.toml"), "{missing}");
    }
}
