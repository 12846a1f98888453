//! The operations harness: the real `osbs`, `osbs-dispatcher`, `osbs-worker` and
//! `osbs-koji-bridge` binaries run as child processes with a configuration file written per
//! test, against the real RabbitMQ (a vhost of the shared broker, or a private node that a
//! test may restart), Redis (a key prefix), Docker Engine and registry, with a Koji hub
//! double in the test process and dist-git as bare repositories on disk whose
//! post-receive hook is `osbs git-hook`.
//!
//! # Layout
//!
//! - [`bins`]: builds the binaries once per test process.
//! - [`World`]: one test's world — configuration, services, dist-git, CLI, waits.
//! - [`Service`]: a running child process (SIGTERM, SIGKILL, its log).
//! - [`PrivateRabbit`]: a RabbitMQ node of the test's own, on free ports, that it may
//!   stop and start (never the shared one on :5672).
//! - [`cluster::PrivateCluster`]: three such nodes joined in one cluster, for the quorum
//!   queues of production and the loss of a node.
//! - [`PrivateRegistry`]: a registry of the test's own, that it may stop and start.

pub mod cluster;

use osbs_common::config::{AmqpConfig, CredentialUrl, QueueType};
use osbs_common::store::{BuildRecord, Store};
use osbs_common::{Bus, store};
use osbs_koji_hub::{HubConfig, KojiHub, RunningHub, TagSpec};
use osbs_proto::names;
use osbs_proto::v1::BuildState;
use osbs_testkit::TestEnv;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The busybox base image every build of these tests starts from.
pub const BASE_IMAGE: &str = "127.0.0.1:5000/osbs-ops/busybox:1";

/// Paths of the binaries under test.
#[derive(Debug)]
pub struct Bins {
    pub osbs: PathBuf,
    pub dispatcher: PathBuf,
    pub worker: PathBuf,
    pub bridge: PathBuf,
}

/// Builds the four binaries once (`cargo build --bins`, the same profile as the tests, so
/// that nothing is compiled twice; `--release` under `cargo bench`) and returns where they
/// are.
pub fn bins() -> &'static Bins {
    static BINS: OnceLock<Bins> = OnceLock::new();
    BINS.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        // The test executable is target/<profile>/deps/<name>: the binaries are one up.
        let dir = std::env::current_exe()
            .expect("test executable path")
            .parent()
            .and_then(Path::parent)
            .expect("target directory")
            .to_owned();
        let release = dir.file_name().is_some_and(|name| name == "release");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--bins", "--locked"])
            .args(release.then_some("--release"))
            .args(["-p", "osbs-cli", "-p", "osbs-dispatcher"])
            .args(["-p", "osbs-worker", "-p", "osbs-koji-bridge"])
            .current_dir(&workspace)
            .status()
            .expect("cannot run cargo to build the binaries under test");
        assert!(status.success(), "cargo build of the OSBS binaries failed");
        let bin = |name: &str| {
            let path = dir.join(name);
            assert!(path.is_file(), "{} was not built", path.display());
            path
        };
        Bins {
            osbs: bin("osbs"),
            dispatcher: bin("osbs-dispatcher"),
            worker: bin("osbs-worker"),
            bridge: bin("osbs-koji-bridge"),
        }
    })
}

/// Makes the busybox base image and pushes it to the shared registry, once per process.
pub fn base_image() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        osbs_testkit::ensure_busybox_image(BASE_IMAGE);
    });
    BASE_IMAGE
}

/// A free TCP port on loopback (bound then released: another process could take it, which
/// the caller's start-up would report).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_ok()
}

/// Polls `check` every 200 ms until it returns `Some`, or panics with `what` after `limit`.
pub async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET path` on 127.0.0.1:`port`: the whole response, or `None` when nothing answers. A
/// request line over a TCP stream: a probe of our own endpoints does not warrant an HTTP
/// client.
async fn http_get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    Some(response)
}

/// `GET path` on 127.0.0.1:`port`: the status code, or `None` when nothing answers.
pub async fn http_status(port: u16, path: &str) -> Option<u16> {
    http_get(port, path)
        .await?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `GET path` on 127.0.0.1:`port`: the whole body.
pub async fn http_body(port: u16, path: &str) -> Option<String> {
    http_get(port, path)
        .await?
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
}

/// Runs `git` in `dir`, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Jane Doe")
        .env("GIT_AUTHOR_EMAIL", "jdoe@example.com")
        .env("GIT_COMMITTER_NAME", "Jane Doe")
        .env("GIT_COMMITTER_EMAIL", "jdoe@example.com")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?} in {} failed: {}{}",
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Which OSBS service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Dispatcher,
    Worker,
    Bridge,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Dispatcher => "dispatcher",
            Kind::Worker => "worker",
            Kind::Bridge => "koji-bridge",
        }
    }
    /// The `http_listen` key of its section, as an environment variable.
    fn http_env(self) -> &'static str {
        match self {
            Kind::Dispatcher => "OSBS_DISPATCHER__HTTP_LISTEN",
            Kind::Worker => "OSBS_WORKER__HTTP_LISTEN",
            Kind::Bridge => "OSBS_KOJI__HTTP_LISTEN",
        }
    }
}

/// A running service process. Dropping it kills it.
#[derive(Debug)]
pub struct Service {
    pub kind: Kind,
    pub child: Child,
    /// Its `/healthz` and `/metrics` port.
    pub http_port: u16,
    pub log: PathBuf,
}

impl Service {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the service runs")
    }

    /// `kill -9`: no drain, no goodbye.
    pub async fn kill9(mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM, then waits for the process to exit (the drain); its exit status.
    pub async fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("wait for the service"),
            Err(_) => panic!(
                "{} did not stop within {limit:?} after SIGTERM; log: {}",
                self.kind.name(),
                self.log.display()
            ),
        }
    }

    /// Its `HOSTNAME` (`<kind>-<n>`, as its log file is named): the name a worker gives
    /// itself in the parts and buildroots it reports.
    pub fn host(&self) -> String {
        self.log
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// What it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A RabbitMQ node of the test's own (never the shared one on :5672, which other tests use).
#[derive(Debug)]
pub struct PrivateRabbit {
    pub node: String,
    pub port: u16,
    dist_port: u16,
    dir: tempfile::TempDir,
}

impl PrivateRabbit {
    /// Starts a fresh node on free ports and waits until it accepts connections.
    pub async fn start() -> PrivateRabbit {
        osbs_testkit::require_rabbitmq();
        let dir = tempfile::tempdir().expect("temporary directory");
        // The node runs as the rabbitmq user (rabbitmq-server switches to it).
        let status = std::process::Command::new("chown")
            .args(["-R", "rabbitmq", dir.path().to_str().expect("utf-8 path")])
            .status()
            .expect("chown runs");
        assert!(
            status.success(),
            "cannot give {} to the rabbitmq user",
            dir.path().display()
        );
        let port = free_port();
        let rabbit = PrivateRabbit {
            node: format!(
                "osbs-ops-{}@localhost",
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            port,
            dist_port: free_port(),
            dir,
        };
        std::fs::write(
            rabbit.dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .expect("write rabbitmq.conf");
        rabbit.up().await;
        rabbit
    }

    /// Starts the node on its data directory and waits for it.
    pub async fn up(&self) {
        let base = self.dir.path();
        let path = |name: &str| base.join(name).display().to_string();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_PID_FILE", path("pid"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("plugins"))
            .env("RABBITMQ_ENABLED_PLUGINS", "")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("rabbitmq-server runs");
        assert!(
            status.success(),
            "rabbitmq-server -detached failed for {}",
            self.node
        );
        let port = self.port;
        wait_for(
            Duration::from_secs(60),
            "the private RabbitMQ node",
            || async move { port_open(port).then_some(()) },
        )
        .await;
        self.ctl(&["await_startup"]).await;
    }

    /// Stops the node (its queues and persistent messages stay on disk).
    pub async fn down(&self) {
        self.ctl(&["stop"]).await;
        let port = self.port;
        wait_for(
            Duration::from_secs(30),
            "the private RabbitMQ node to stop",
            || async move { (!port_open(port)).then_some(()) },
        )
        .await;
    }

    /// `rabbitmqctl -n <node> args…`, which must succeed; its standard output.
    pub async fn ctl(&self, args: &[&str]) -> String {
        let output = Command::new("rabbitmqctl")
            .args(["-n", &self.node])
            .args(args)
            .output()
            .await
            .expect("rabbitmqctl runs");
        assert!(
            output.status.success(),
            "rabbitmqctl -n {} {args:?} failed: {}",
            self.node,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The node's Erlang VM (beam) process, from its pid file, while it runs.
    pub fn beam_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir.path().join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // The pid file outlives the process: only a process that still is this node counts
        // (the node name is not on beam's command line: the node names itself at boot).
        let environment = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        let name = format!("RABBITMQ_NODENAME={}", self.node);
        environment
            .split(|byte| *byte == 0)
            .any(|entry| entry == name.as_bytes())
            .then_some(pid)
    }

    /// `kill -9` of the node's Erlang VM: no goodbye to its peers or clients.
    pub fn kill9(&self) {
        let pid = self.beam_pid().expect("the node runs");
        let status = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -9 {pid} ({})", self.node);
    }

    pub fn amqp(&self) -> AmqpConfig {
        AmqpConfig {
            url: CredentialUrl::new(format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)),
            connect_timeout_secs: 20,
            ..AmqpConfig::default()
        }
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-n", &self.node, "shutdown"])
            .output();
        // A node that would not stop (or whose rabbitmqctl failed) is not left behind.
        if let Some(pid) = self.beam_pid() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A registry of the test's own on a free port (Debian's `docker-registry`), which a test
/// may stop and start again with its content.
#[derive(Debug)]
pub struct PrivateRegistry {
    pub port: u16,
    dir: tempfile::TempDir,
    process: Option<std::process::Child>,
}

impl PrivateRegistry {
    pub async fn start() -> PrivateRegistry {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        std::fs::write(
            dir.path().join("registry.yml"),
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write registry.yml");
        let mut registry = PrivateRegistry {
            port,
            dir,
            process: None,
        };
        registry.up().await;
        registry
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn up(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("registry.log")).expect("log file");
        let child = std::process::Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("registry.yml"))
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("docker-registry runs (apt-get install -y docker-registry)");
        self.process = Some(child);
        let port = self.port;
        wait_for(
            Duration::from_secs(20),
            "the private registry",
            || async move { port_open(port).then_some(()) },
        )
        .await;
    }

    pub async fn down(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let port = self.port;
        wait_for(
            Duration::from_secs(10),
            "the private registry to stop",
            || async move { (!port_open(port)).then_some(()) },
        )
        .await;
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The destination tag of every build of a world (set as `dest_tag`: the hub double has no
/// targets).
pub const DEST_TAG: &str = "osbs-ops-candidate";

/// A Redis of the test's own on a free port (no persistence), which a test may empty.
#[derive(Debug)]
pub struct PrivateRedis {
    pub port: u16,
    _dir: tempfile::TempDir,
    process: std::process::Child,
}

impl PrivateRedis {
    pub async fn start() -> PrivateRedis {
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let process = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install -y redis-server)");
        wait_for(
            Duration::from_secs(20),
            "the private Redis",
            || async move { port_open(port).then_some(()) },
        )
        .await;
        PrivateRedis {
            port,
            _dir: dir,
            process,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Empties it, as a restart without persistence would.
    pub fn flush(&self) {
        let client = redis::Client::open(self.url()).expect("redis url");
        let mut connection = client.get_connection().expect("the private Redis");
        redis::cmd("FLUSHALL")
            .query::<()>(&mut connection)
            .expect("FLUSHALL");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// How a world is set up.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The broker: `None` = a vhost of the shared RabbitMQ.
    pub amqp: Option<AmqpConfig>,
    /// `[amqp] queue_type = "quorum"` (on the shared RabbitMQ's vhost, or on `amqp`).
    pub quorum: bool,
    /// Registry builds are pushed to: `None` = the shared 127.0.0.1:5000.
    pub registry: Option<String>,
    /// Extra TOML appended to the configuration file.
    pub extra_toml: String,
    /// `[koji] tag_mode`: empty = `none` (nothing is tagged).
    pub koji_tag_mode: String,
    /// No hub configured (`hub_url` empty): the bridge writes import bundles into the
    /// world's `bundles/` and the worker derives releases without Koji.
    pub no_hub: bool,
    /// Redis: `None` = a key prefix in the shared one; `Some(url)` = a private one.
    pub redis_url: Option<String>,
    /// `[worker]` and `[koji]` `retry_window_secs`: `None` = the default (10 min).
    pub retry_window_secs: Option<u64>,
    /// `[koji] retry_secs`, the bridge's quick retries before a result goes to a retry
    /// queue: `None` = 20.
    pub koji_retry_secs: Option<u64>,
    /// `arches` of `[dispatcher.target_defaults]` and of `[worker]` (Koji names): empty =
    /// neither set (a single-arch target, a worker serving its engine's arch).
    pub arches: Vec<String>,
}

/// One test's world.
pub struct World {
    pub env: TestEnv,
    pub amqp: AmqpConfig,
    pub dir: tempfile::TempDir,
    pub hub: RunningHub,
    pub store: Store,
    pub config_path: PathBuf,
    /// Unique per world: repository names and image names do not collide.
    pub tag: String,
    pub registry: String,
    /// Secrets this world configures, which no service or CLI output may show.
    pub koji_password: String,
    pub registry_password: String,
    /// How it was set up (a worker of its own configuration is written from it).
    options: Options,
    services_started: std::sync::atomic::AtomicUsize,
    cli_runs: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("dir", &self.dir.path())
            .field("tag", &self.tag)
            .finish()
    }
}

impl World {
    pub async fn new(options: Options) -> World {
        osbs_testkit::require_docker();
        osbs_testkit::require_registry();
        bins();
        base_image();
        let mut env = TestEnv::new();
        if let Some(url) = &options.redis_url {
            env.redis.url = CredentialUrl::new(url.clone());
        }
        let mut amqp = options.amqp.clone().unwrap_or_else(|| env.amqp.clone());
        if options.quorum {
            amqp.queue_type = QueueType::Quorum;
        }
        let dir = tempfile::tempdir().expect("temporary directory");
        for sub in [
            "dist-git/container",
            "artifacts",
            "work",
            "logs",
            "cli",
            "checkouts",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("world directories");
        }
        let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let koji_password = format!("koji-pw-{}", uuid::Uuid::new_v4().simple());
        let registry_password = format!("registry-pw-{}", uuid::Uuid::new_v4().simple());
        let hub = KojiHub::start(HubConfig {
            users: vec![osbs_koji_hub::UserSpec::new("osbs", Some(&koji_password))],
            // Every build's destination tag (its package list starts empty).
            tags: vec![TagSpec::new(DEST_TAG, &[])],
            ..HubConfig::default()
        })
        .await
        .expect("the Koji hub double starts");
        let registry = options
            .registry
            .clone()
            .unwrap_or_else(|| osbs_testkit::REGISTRY.to_owned());
        let config_path = dir.path().join("osbs.toml");
        let secrets = [koji_password.as_str(), registry_password.as_str()];
        let world_config = config_toml(
            dir.path(),
            if options.no_hub { "" } else { &hub.url },
            &registry,
            &tag,
            secrets,
            &options,
            &options.arches,
        );
        std::fs::write(&config_path, world_config).expect("write osbs.toml");
        let store = Store::connect(&env.redis).await.expect("Redis");
        World {
            env,
            amqp,
            dir,
            hub,
            store,
            config_path,
            tag,
            registry,
            koji_password,
            registry_password,
            options,
            services_started: Default::default(),
            cli_runs: Default::default(),
        }
    }

    /// A bus connection of the test itself (topology declared).
    pub async fn bus(&self) -> Bus {
        let bus = Bus::connect(&self.amqp, "ops-test")
            .await
            .expect("RabbitMQ");
        bus.declare_topology().await.expect("topology");
        bus
    }

    /// `OSBS_…` variables pointing a process at this world.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let queue_type = match self.amqp.queue_type {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        };
        let mut vars: Vec<(String, String)> = vec![
            ("OSBS_CONFIG".into(), self.config_path.display().to_string()),
            ("OSBS_AMQP__URL".into(), self.amqp.url.expose().to_owned()),
            ("OSBS_AMQP__QUEUE_TYPE".into(), queue_type.into()),
            (
                "OSBS_REDIS__URL".into(),
                self.env.redis.url.expose().to_owned(),
            ),
            (
                "OSBS_REDIS__KEY_PREFIX".into(),
                self.env.redis.key_prefix.clone(),
            ),
            ("RUST_LOG".into(), "info,lapin=warn,bollard=warn".into()),
        ];
        if !self.amqp.urls.is_empty() {
            let urls: Vec<&str> = self.amqp.urls.iter().map(CredentialUrl::expose).collect();
            vars.push(("OSBS_AMQP__URLS".into(), urls.join(",")));
        }
        vars
    }

    /// Starts a service and waits until its `/healthz` answers 200.
    pub async fn spawn(&self, kind: Kind) -> Service {
        self.spawn_with_config(kind, &self.config_path).await
    }

    /// Starts a worker that serves `arches` (`[worker] arches`; the targets' arches stay
    /// the world's), with a configuration file of its own: the environment cannot set a
    /// list the configuration does not parse as one.
    pub async fn spawn_worker_serving(&self, arches: &[&str]) -> Service {
        let served: Vec<String> = arches.iter().map(|arch| (*arch).to_owned()).collect();
        let path = self
            .dir
            .path()
            .join(format!("osbs-worker-{}.toml", served.join("-")));
        let text = config_toml(
            self.dir.path(),
            if self.options.no_hub {
                ""
            } else {
                &self.hub.url
            },
            &self.registry,
            &self.tag,
            [&self.koji_password, &self.registry_password],
            &self.options,
            &served,
        );
        std::fs::write(&path, text).expect("write the worker's configuration");
        self.spawn_with_config(Kind::Worker, &path).await
    }

    /// Starts a service with configuration file `config` and waits until its `/healthz`
    /// answers 200.
    async fn spawn_with_config(&self, kind: Kind, config: &Path) -> Service {
        let bins = bins();
        let binary = match kind {
            Kind::Dispatcher => &bins.dispatcher,
            Kind::Worker => &bins.worker,
            Kind::Bridge => &bins.bridge,
        };
        let number = self
            .services_started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self
            .dir
            .path()
            .join("logs")
            .join(format!("{}-{number}.log", kind.name()));
        let file = std::fs::File::create(&log).expect("service log");
        let http_port = free_port();
        let child = Command::new(binary)
            .arg("--config")
            .arg(config)
            .envs(self.env_vars())
            .env(kind.http_env(), format!("127.0.0.1:{http_port}"))
            .env("HOSTNAME", format!("{}-{number}", kind.name()))
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("the service starts");
        let mut service = Service {
            kind,
            child,
            http_port,
            log,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if http_status(http_port, "/healthz").await == Some(200) {
                return service;
            }
            if let Ok(Some(status)) = service.child.try_wait() {
                panic!(
                    "{} exited ({status}) before it was ready:\n{}",
                    kind.name(),
                    service.log_text()
                );
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} was not ready within 60 s:\n{}",
                kind.name(),
                service.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs the `osbs` CLI in `cwd` (the world's directory when `None`); its output is kept
    /// for the secrets scan.
    pub async fn osbs(&self, cwd: Option<&Path>, args: &[&str]) -> Output {
        let output = Command::new(&bins().osbs)
            .args(args)
            .envs(self.env_vars())
            .current_dir(cwd.unwrap_or(self.dir.path()))
            .stdin(Stdio::null())
            .output()
            .await
            .expect("osbs runs");
        let number = self
            .cli_runs
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        keep_output(
            &self.dir.path().join(format!("cli/osbs-{number}.log")),
            &output,
        );
        output
    }

    /// A bare dist-git repository `container/<name>.git` whose post-receive hook is
    /// `osbs git-hook`, and a checkout of it on branch `branch` with `dockerfile` committed
    /// (not pushed: the test decides when the hook fires).
    pub fn repo(&self, name: &str, branch: &str, dockerfile: &str) -> Repo {
        let bare = self
            .dir
            .path()
            .join("dist-git/container")
            .join(format!("{name}.git"));
        git(
            self.dir.path(),
            &["init", "-q", "--bare", bare.to_str().expect("utf-8")],
        );
        let hook = bare.join("hooks/post-receive");
        std::fs::write(
            &hook,
            format!("#!/bin/sh\nexec {} git-hook\n", bins().osbs.display()),
        )
        .expect("write the hook");
        let status = std::process::Command::new("chmod")
            .args(["+x", hook.to_str().expect("utf-8")])
            .status()
            .expect("chmod runs");
        assert!(status.success());
        let checkout = self.dir.path().join("checkouts").join(name);
        git(
            self.dir.path(),
            &[
                "clone",
                "-q",
                &format!("file://{}", bare.display()),
                checkout.to_str().expect("utf-8"),
            ],
        );
        git(&checkout, &["checkout", "-q", "-b", branch]);
        let repo = Repo {
            bare,
            checkout,
            env: self.env_vars(),
            cli_log: self.dir.path().join(format!("cli/git-push-{name}.log")),
        };
        repo.commit("Dockerfile", dockerfile, "Initial Dockerfile");
        repo
    }

    /// A Dockerfile on the test base image that names image `name` and runs `run`.
    pub fn dockerfile(&self, name: &str, run: &str) -> String {
        format!(
            "FROM {BASE_IMAGE}\nLABEL com.redhat.component=\"{name}\" name=\"{name}\" version=\"1.0\"\nRUN {run}\n"
        )
    }

    /// The record of build `id`.
    pub async fn record(&self, id: &str) -> BuildRecord {
        self.store.require(id).await.expect("the build record")
    }

    /// Waits until build `id` is in one of `states`.
    pub async fn wait_state(
        &self,
        id: &str,
        states: &[BuildState],
        limit: Duration,
    ) -> BuildRecord {
        let store = &self.store;
        wait_for(
            limit,
            &format!("build {id} to reach {states:?}"),
            || async move {
                store
                    .get(id)
                    .await
                    .ok()
                    .flatten()
                    .filter(|record| states.contains(&record.state))
            },
        )
        .await
    }

    /// Every build recorded in this world, newest first.
    pub async fn builds(&self) -> Vec<BuildRecord> {
        self.store
            .list(&store::ListFilter {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .expect("list builds")
    }

    /// The service logs, for a failing assertion's message.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
            paths.sort();
            for path in paths {
                let body = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = body.lines().rev().take(40).collect();
                text.push_str(&format!("--- {} (last lines)\n", path.display()));
                for line in tail.into_iter().rev() {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text
    }
}

/// The configuration file of a world: every service's section, fast timings for tests.
fn config_toml(
    dir: &Path,
    hub_url: &str,
    registry: &str,
    tag: &str,
    [koji_password, registry_password]: [&str; 2],
    options: &Options,
    worker_arches: &[String],
) -> String {
    let extra = &options.extra_toml;
    let tag_mode = if options.koji_tag_mode.is_empty() {
        "none"
    } else {
        &options.koji_tag_mode
    };
    let retry_window_secs = options.retry_window_secs.unwrap_or(600);
    let koji_retry_secs = options.koji_retry_secs.unwrap_or(20);
    let dist_git = format!("file://{}", dir.join("dist-git").display());
    // Both tables are written once above `extra`, which cannot reopen them.
    let arches_line = |arches: &[String]| {
        if arches.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = arches.iter().map(|a| format!("{a:?}")).collect();
            format!("arches = [{}]", names.join(", "))
        }
    };
    let arches = arches_line(&options.arches);
    let worker_arches = arches_line(worker_arches);
    format!(
        r#"[amqp]
connect_timeout_secs = 20

[redis]
connect_timeout_secs = 10

[storage]
artifacts_dir = "{artifacts}"

[telemetry]
filter = "info,lapin=warn,bollard=warn"

[cli]
user = "ops-tester"
record_timeout_secs = 60
build_timeout_secs = 300
git_web_url = "https://src.example.org"

[dispatcher]
allowed_git_urls = ["{dist_git}"]
git_clone_base = "{dist_git}"
namespaces = ["container"]
auto_branches = ["main", "f*"]

[dispatcher.target_defaults]
registry = "{registry}"
registry_namespace = "osbs-ops-{tag}"
base_registry = "127.0.0.1:5000"
# The hub double has no build targets (and nothing is tagged): a destination tag set here
# stands in for every branch's target, which the worker would otherwise look up first.
dest_tag = "{DEST_TAG}"
{arches}

[worker]
concurrency = 1
allowed_git_urls = ["{dist_git}"]
work_dir = "{work}"
heartbeat_secs = 1
heartbeat_stale_secs = 3
cancel_poll_ms = 250
registry_attempts = 2
drain_grace_secs = 30
retry_window_secs = {retry_window_secs}
{worker_arches}

# The base registry asks for no password: this one is loaded, printed masked and handed to
# the engine with every pull all the same.
[worker.registry_auth."127.0.0.1:5000"]
username = "ops"
password = "{registry_password}"

[koji]
hub_url = "{hub_url}"
bundle_dir = "{bundles}"
cg_name = "osbs"
tag_mode = "{tag_mode}"
retry_secs = {koji_retry_secs}
requeue_delay_secs = 1
retry_window_secs = {retry_window_secs}

[koji.auth]
method = "password"
user = "osbs"
password = "{koji_password}"
{extra}"#,
        artifacts = dir.join("artifacts").display(),
        work = dir.join("work").display(),
        bundles = dir.join("bundles").display(),
    )
}

/// A dist-git repository: the bare one (with the hook) and a checkout.
#[derive(Debug, Clone)]
pub struct Repo {
    pub bare: PathBuf,
    pub checkout: PathBuf,
    env: Vec<(String, String)>,
    /// Where the pushes' output (the hook's `osbs git-hook`) is kept for the secrets scan.
    cli_log: PathBuf,
}

impl Repo {
    /// Commits `content` as `path` in the checkout; returns the commit id.
    pub fn commit(&self, path: &str, content: &str, message: &str) -> String {
        std::fs::write(self.checkout.join(path), content).expect("write the file");
        git(&self.checkout, &["add", path]);
        git(&self.checkout, &["commit", "-q", "-m", message]);
        git(&self.checkout, &["rev-parse", "HEAD"])
            .trim()
            .to_owned()
    }

    /// `git push` of `refspecs` (the hook runs with the world's environment); its output.
    pub fn push(&self, refspecs: &[&str]) -> Output {
        let output = std::process::Command::new("git")
            .args(["push", "-q", "origin"])
            .args(refspecs)
            .current_dir(&self.checkout)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("GL_USER", "jdoe")
            .output()
            .expect("git push runs");
        keep_output(&self.cli_log, &output);
        assert!(
            output.status.success(),
            "git push {refspecs:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

/// Branches `f1`…`fN` of `repo`'s checkout, each one commit of its own on top of `main`, in
/// one `git fast-import` (500 `git commit` runs would take longer than the test itself).
pub fn many_branches(repo: &Repo, count: usize) {
    use std::io::Write;
    let main = git(&repo.checkout, &["rev-parse", "main"]);
    let mut stream = String::new();
    for n in 1..=count {
        let message = format!("Branch f{n}\n");
        stream.push_str(&format!(
            "commit refs/heads/f{n}\ncommitter Jane Doe <jdoe@example.com> 1700000000 +0000\ndata {}\n{message}from {}\n\n",
            message.len(),
            main.trim()
        ));
    }
    let mut child = std::process::Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&repo.checkout)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("git fast-import runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stream.as_bytes())
        .expect("feed git fast-import");
    assert!(child.wait().expect("git fast-import").success());
}

/// Stdout of a CLI run, asserting its exit code.
pub fn expect_exit(output: &Output, code: i32, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status.code()
    );
    stdout
}

/// Appends a process's stdout and stderr to `path`.
fn keep_output(path: &Path, output: &Output) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("the CLI output file");
    file.write_all(&output.stdout)
        .and_then(|()| file.write_all(&output.stderr))
        .expect("keep the CLI output");
}

impl World {
    /// Fails when a secret of this world — the Koji password, the registry password, any
    /// session key the hub issued (logged out or not) — shows in a service's log or in the
    /// CLI's output. Run when the world is dropped, so that no operations test skips it.
    pub fn assert_no_secrets(&self) {
        let mut logs = Vec::new();
        for sub in ["logs", "cli"] {
            let Ok(entries) = std::fs::read_dir(self.dir.path().join(sub)) else {
                continue;
            };
            for path in entries.flatten().map(|entry| entry.path()) {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                logs.push((
                    format!("{sub}/{}", path.file_name().unwrap_or_default().display()),
                    text,
                ));
            }
        }
        let mut secrets = vec![
            ("Koji password".to_owned(), self.koji_password.clone()),
            (
                "registry password".to_owned(),
                self.registry_password.clone(),
            ),
        ];
        secrets.extend(
            self.hub
                .issued_session_keys()
                .into_iter()
                .map(|key| ("Koji session key".to_owned(), key)),
        );
        osbs_testkit::assert_no_secrets(&logs, &secrets);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let ran = self
            .services_started
            .load(std::sync::atomic::Ordering::SeqCst)
            + self.cli_runs.load(std::sync::atomic::Ordering::SeqCst);
        // A failing test already says why; a world where nothing ran has nothing to scan.
        if ran > 0 && !std::thread::panicking() {
            self.assert_no_secrets();
        }
    }
}

/// Waits until every one of `queues` (of vhost `vhost` on RabbitMQ node `node`, `None` for
/// the shared one) holds nothing, ready or unacked: every message taken was also acked.
pub async fn wait_settled(node: Option<&str>, vhost: &str, queues: &[&str]) {
    for queue in queues {
        let (node, vhost, queue) = (
            node.map(str::to_owned),
            vhost.to_owned(),
            (*queue).to_owned(),
        );
        wait_for(Duration::from_secs(60), &format!("{queue} settled"), || {
            let (node, vhost, queue) = (node.clone(), vhost.clone(), queue.clone());
            async move {
                tokio::task::spawn_blocking(move || {
                    osbs_testkit::queue_counts(node.as_deref(), &vhost, &queue)
                })
                .await
                .expect("rabbitmqctl list_queues")
                .settled()
                .then_some(())
            }
        })
        .await;
    }
}

/// Waits until every queue of vhost `vhost` of the shared RabbitMQ holds nothing, ready or
/// unacked — the work queues, their lease, retry and dead-letter queues alike: nothing in
/// flight, nothing set aside, nothing dead-lettered. Panics naming the queues that never
/// settled.
pub async fn wait_all_settled(vhost: &str) {
    let vhost = vhost.to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let vhost = vhost.clone();
        let unsettled = tokio::task::spawn_blocking(move || unsettled_queues(&vhost))
            .await
            .expect("rabbitmqctl list_queues");
        if unsettled.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "queues still holding messages after 60 s (name, ready, unacked): {unsettled:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The queues of `vhost` holding a message, ready or unacked: `(name, ready, unacked)`.
/// A listing without `osbs.jobs`, or with a row it cannot read, fails the test rather than
/// passing for settled.
fn unsettled_queues(vhost: &str) -> Vec<(String, u64, u64)> {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["list_queues", "-p", vhost, "--no-table-headers", "--quiet"])
        .args(["name", "messages_ready", "messages_unacknowledged"])
        .output()
        .expect("rabbitmqctl runs");
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "rabbitmqctl list_queues -p {vhost} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<(String, u64, u64)> = listing
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let parsed = match fields[..] {
                [name, ready, unacked] => ready
                    .parse()
                    .ok()
                    .zip(unacked.parse().ok())
                    .map(|(ready, unacked)| (name.to_owned(), ready, unacked)),
                _ => None,
            };
            parsed.unwrap_or_else(|| panic!("unreadable list_queues row {line:?}"))
        })
        .collect();
    assert!(
        rows.iter().any(|(name, _, _)| name == names::QUEUE_JOBS),
        "no {} in vhost {vhost}:\n{listing}",
        names::QUEUE_JOBS
    );
    rows.into_iter()
        .filter(|(_, ready, unacked)| *ready > 0 || *unacked > 0)
        .collect()
}
