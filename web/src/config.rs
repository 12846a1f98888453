//! The web view's configuration: the shared sections plus `[web]`.

use osbs_common::config::{AmqpConfig, RedisConfig, StorageConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// The whole file as the web view reads it. Not `deny_unknown_fields`: every service reads
/// the same file and ignores the others' sections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub amqp: AmqpConfig,
    #[serde(default)]
    pub redis: RedisConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub web: WebConfig,
}

/// `[web]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Where the pages, `/healthz` and `/metrics` are served.
    pub http_listen: SocketAddr,
    /// Builds per page.
    pub page_size: usize,
    /// dist-git's web view; a commit links to `<git_web_url>/<namespace>/<repo>/c/<commit>`
    /// (Pagure's form). Empty: commits are not linked.
    pub git_web_url: String,
    /// Koji's web view; a Koji build links to `<koji_web_url>/buildinfo?buildID=<id>`.
    /// Empty: Koji builds are not linked.
    pub koji_web_url: String,
    /// How often a live log is polled for new lines (each follower reads on its own).
    pub log_poll_ms: u64,
    /// How often the queues are read (passive declares) and the dead letters peeked.
    pub queue_refresh_secs: u64,
    /// Dead letters shown per dead queue.
    pub dead_letters_shown: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            page_size: 50,
            git_web_url: String::new(),
            koji_web_url: String::new(),
            log_poll_ms: 100,
            queue_refresh_secs: 5,
            dead_letters_shown: 50,
        }
    }
}

impl WebConfig {
    pub fn log_poll(&self) -> Duration {
        Duration::from_millis(self.log_poll_ms.clamp(20, 5_000))
    }

    pub fn queue_refresh(&self) -> Duration {
        Duration::from_secs(self.queue_refresh_secs.clamp(1, 3_600))
    }
}
