//! The worker's configuration: the shared sections it needs plus `[worker]` (and `[koji]`,
//! the hub the worker reserves release numbers on).

use osbs_common::config::{AmqpConfig, RedisConfig, StorageConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// dist-git bases builds may come from: the dispatcher's defaults (Fedora's, and the
/// quickstart's loopback one).
pub const DEFAULT_GIT_URLS: [&str; 2] = [
    "https://src.fedoraproject.org",
    "file:///var/lib/osbs/dist-git",
];

/// Everything `osbs-worker` reads from the shared configuration file. Not
/// `deny_unknown_fields`: every service reads the same file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    pub amqp: AmqpConfig,
    pub redis: RedisConfig,
    pub telemetry: TelemetryConfig,
    pub storage: StorageConfig,
    pub worker: WorkerConfig,
    /// The hub the worker reserves releases on (`hub_url` empty: none; the registry's tags
    /// stand for what Koji has). The bridge's own keys in `[koji]` are ignored here (the
    /// bridge refuses unknown ones).
    pub koji: osbs_koji::KojiConfig,
}

/// `[worker]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// Builds run at once by one replica from each queue it consumes (`osbs.jobs` and each
    /// `osbs.jobs.<arch>`): one consumer at prefetch 1 per slot.
    pub concurrency: usize,
    /// `/healthz` and `/metrics`; port 0 picks a free port (several replicas on one host).
    pub http_listen: SocketAddr,
    /// Clone URLs must start with one of these (dist-git hosts).
    pub allowed_git_urls: Vec<String>,
    /// Lookaside cache download URL, with `{namespace}`, `{repo}`, `{filename}`,
    /// `{hashtype}` and `{hash}` placeholders. Fedora's layout has the `{hashtype}` segment;
    /// older lookasides (`<base>/<repo>/<file>/<hash>/<file>`) leave it out.
    pub lookaside_url: String,
    /// Yum repo file URLs must start with one of these; empty = any http(s) URL.
    pub allowed_yum_repo_urls: Vec<String>,
    /// Sites an `ADD <url>` (in the Dockerfile or a parent image's ONBUILD trigger) may
    /// download from: http(s) URL prefixes. Empty (the default): none, files enter a build
    /// through the lookaside cache with their checksums.
    pub allowed_source_urls: Vec<String>,
    /// Scratch space for clones and build contexts (one directory per build, removed after).
    pub work_dir: PathBuf,
    /// Longest a build may run before it fails.
    pub build_timeout_secs: u64,
    /// How long a job's delivery is held unacked before a lease replaces it (stay below
    /// RabbitMQ's `consumer_timeout`, 30 min by default).
    pub lease_after_secs: u64,
    /// Life of one lease copy in `osbs.jobs.lease`; a new one is published before it expires.
    pub lease_ttl_secs: u64,
    /// How often a running build proves its worker alive.
    pub heartbeat_secs: u64,
    /// A build whose worker has not proved itself alive for this long may be taken over.
    pub heartbeat_stale_secs: u64,
    /// On SIGTERM, how long running builds may take before they are handed back to the queue.
    pub drain_grace_secs: u64,
    /// How often a running build checks whether it was canceled.
    pub cancel_poll_ms: u64,
    /// Attempts at each registry operation before a transient error fails the attempt.
    pub registry_attempts: usize,
    /// How long a build whose attempts meet a transient outage (registry, Koji hub, Docker
    /// Engine) is retried, counted from the first failure: the job waits in a retry queue
    /// with growing delays (5 s, 10 s, 20 s… 5 min) and runs again. Past it, the build fails
    /// and its job is dead-lettered. 0: no retries.
    pub retry_window_secs: u64,
    /// Registries spoken to over plain HTTP (besides loopback ones, which always are).
    pub insecure_registries: Vec<String>,
    /// Credentials per registry (`host[:port]`), for pulling base images and pushing:
    /// `[worker.registry_auth."registry.example.org"]` with `username` and `password`, or
    /// `password_env` naming the environment variable that holds the password.
    pub registry_auth: BTreeMap<String, RegistryAuth>,
    /// How the squashed layer is stored in the registry: `gzip` (level 1), `gzip:1`…`gzip:9`,
    /// or `none` (a plain tar: no CPU spent, more bytes stored and pulled).
    pub layer_compression: String,
    /// Where the squash reads the built image's layers: `auto` (the engine's overlay2 layer
    /// store when it is on this host and readable — a worker beside its engine, with
    /// `/var/lib/docker` visible — else the engine's export) or `export` (always
    /// `docker save`). The build log says which was used and why.
    pub squash_read_from: String,
    /// The architectures (Koji names) this worker builds for: it consumes `osbs.jobs` plus
    /// `osbs.jobs.<arch>` for each (DESIGN.md "Architectures"). Empty (the default): the
    /// engine's own, as the Docker Engine API reports it. More than one only with an
    /// engine that runs the others emulated (qemu-user-static and binfmt_misc).
    pub arches: Vec<String>,
    /// The multi-arch image's list: `docker` (a Docker v2 manifest list, the default) or
    /// `oci` (an OCI image index).
    pub manifest_list: String,
    /// How long an orchestrator waits for a worker of each of its build's arches (a
    /// consumer on `osbs.jobs.<arch>`) before it publishes any arch job; past it, the build
    /// fails naming the arch and its job is dead-lettered for a replay. Long enough for a
    /// restarting worker (a blip) not to fail builds.
    pub arch_consumer_wait_secs: u64,
    /// Label values injected into every image (empty = not injected).
    pub vendor: String,
    pub authoritative_source_url: String,
    pub distribution_scope: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 1,
            http_listen: SocketAddr::from(([127, 0, 0, 1], 9102)),
            allowed_git_urls: DEFAULT_GIT_URLS.map(str::to_owned).to_vec(),
            lookaside_url:
                "http://127.0.0.1:8081/repo/pkgs/{repo}/{filename}/{hashtype}/{hash}/{filename}"
                    .to_owned(),
            allowed_yum_repo_urls: Vec::new(),
            allowed_source_urls: Vec::new(),
            work_dir: PathBuf::from("/var/lib/osbs/work"),
            build_timeout_secs: 3 * 3600,
            lease_after_secs: 20 * 60,
            lease_ttl_secs: 10 * 60,
            heartbeat_secs: 5,
            heartbeat_stale_secs: 30,
            drain_grace_secs: 600,
            cancel_poll_ms: 1000,
            registry_attempts: 5,
            retry_window_secs: 600,
            insecure_registries: Vec::new(),
            registry_auth: BTreeMap::new(),
            layer_compression: "gzip".to_owned(),
            squash_read_from: "auto".to_owned(),
            arches: Vec::new(),
            manifest_list: "docker".to_owned(),
            arch_consumer_wait_secs: 60,
            vendor: String::new(),
            authoritative_source_url: String::new(),
            distribution_scope: String::new(),
        }
    }
}

/// Credentials of one registry (`username`, and `password` or `password_env`); the
/// password prints as `***`.
pub use osbs_registry::Credentials as RegistryAuth;

impl WorkerConfig {
    pub fn build_timeout(&self) -> Duration {
        Duration::from_secs(self.build_timeout_secs.max(1))
    }
    pub fn lease_after(&self) -> Duration {
        Duration::from_secs(self.lease_after_secs.max(1))
    }
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_secs(self.lease_ttl_secs.max(2))
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs.max(1))
    }
    pub fn heartbeat_stale(&self) -> Duration {
        // Never shorter than three heartbeats: one slow Redis call must not look like death.
        Duration::from_secs(
            self.heartbeat_stale_secs
                .max(self.heartbeat_secs.max(1) * 3),
        )
    }
    pub fn drain_grace(&self) -> Duration {
        Duration::from_secs(self.drain_grace_secs)
    }
    pub fn retry_window(&self) -> Duration {
        Duration::from_secs(self.retry_window_secs)
    }
    pub fn arch_consumer_wait(&self) -> Duration {
        Duration::from_secs(self.arch_consumer_wait_secs)
    }
    pub fn cancel_poll(&self) -> Duration {
        Duration::from_millis(self.cancel_poll_ms.clamp(50, 5_000))
    }

    /// The arches this worker serves (Koji names, each once): `[worker] arches`, or the
    /// engine's own (`engine_arch`, in either naming) when it is empty. An unknown name is
    /// a configuration error naming it.
    pub fn served_arches(&self, engine_arch: &str) -> Result<Vec<String>, String> {
        if self.arches.is_empty() {
            return Ok(vec![osbs_proto::arch::koji_name(engine_arch)]);
        }
        let mut served: Vec<String> = Vec::new();
        for name in &self.arches {
            let known = osbs_proto::arch::lookup(name).ok_or_else(|| {
                format!("`[worker] arches`: {name:?} is not an architecture OSBS knows")
            })?;
            if !served.iter().any(|arch| arch == known.koji) {
                served.push(known.koji.to_owned());
            }
        }
        Ok(served)
    }

    /// `[worker] manifest_list` read: whether the list is an OCI index.
    pub fn oci_index(&self) -> Result<bool, String> {
        match self.manifest_list.as_str() {
            "docker" => Ok(false),
            "oci" => Ok(true),
            other => Err(format!(
                "`[worker] manifest_list` is {other:?}: write \"docker\" or \"oci\""
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let config = WorkerConfig::default();
        assert_eq!(config.build_timeout(), Duration::from_secs(10_800));
        // A worker restarting (a blip) must not fail multi-arch builds.
        assert_eq!(config.arch_consumer_wait(), Duration::from_secs(60));
        assert!(config.lease_after() < Duration::from_secs(30 * 60));
        assert_eq!(config.http_listen.port(), 9102);
        let tight = WorkerConfig {
            heartbeat_secs: 5,
            heartbeat_stale_secs: 1,
            ..WorkerConfig::default()
        };
        assert_eq!(tight.heartbeat_stale(), Duration::from_secs(15));
    }

    #[test]
    fn served_arches_default_to_the_engine_s_own() {
        type Row<'a> = (&'a [&'a str], &'a str, Result<&'a [&'a str], &'a str>);
        let table: [Row; 5] = [
            (&[], "x86_64", Ok(&["x86_64"])),
            (&[], "aarch64", Ok(&["aarch64"])),
            (&["x86_64", "arm64"], "x86_64", Ok(&["x86_64", "aarch64"])),
            (&["amd64", "x86_64"], "x86_64", Ok(&["x86_64"])),
            (&["mips"], "x86_64", Err("\"mips\" is not an architecture")),
        ];
        for (arches, engine, expected) in table {
            let config = WorkerConfig {
                arches: arches.iter().map(|arch| (*arch).to_owned()).collect(),
                ..WorkerConfig::default()
            };
            match (config.served_arches(engine), expected) {
                (Ok(served), Ok(expected)) => assert_eq!(served, expected, "{arches:?}"),
                (Err(error), Err(expected)) => assert!(error.contains(expected), "{error}"),
                (outcome, expected) => panic!("{arches:?}: {outcome:?}, expected {expected:?}"),
            }
        }
        let oci = WorkerConfig {
            manifest_list: "oci".into(),
            ..WorkerConfig::default()
        };
        assert_eq!(oci.oci_index(), Ok(true));
        assert_eq!(WorkerConfig::default().oci_index(), Ok(false));
        let bad = WorkerConfig {
            manifest_list: "v1".into(),
            ..WorkerConfig::default()
        };
        assert!(bad.oci_index().unwrap_err().contains("\"v1\""));
    }

    #[test]
    fn registry_passwords_never_print() {
        let config: WorkerConfig = toml::from_str(
            "[registry_auth.\"quay.io\"]\nusername = \"robot\"\npassword = \"s3cret\"\n",
        )
        .unwrap();
        assert_eq!(config.registry_auth["quay.io"].password.expose(), "s3cret");
        let shown = osbs_common::config::effective(&config);
        assert!(
            !shown.contains("s3cret") && shown.contains("robot"),
            "{shown}"
        );
    }
}
