//! Harness of the end-to-end tests: the three services as real processes (the binaries
//! `cargo build` makes), one configuration file, a dist-git of bare repositories whose
//! post-receive hook is `osbs git-hook`, and the Koji hub double — on the real RabbitMQ
//! (a vhost of the test's own), Redis (a key prefix of its own), Docker Engine and registry.

use osbs_common::store::{BuildRecord, Store};
use osbs_koji_hub::{HubConfig, KojiHub, RunningHub, TargetSpec, UserSpec};
use osbs_proto::BuildState;
use osbs_testkit::TestEnv;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The Koji target every e2e build uses (the example repos push branch `main`).
pub const TARGET: &str = "main-container-candidate";
/// The base image every e2e Dockerfile starts from.
pub const BASE_IMAGE: &str = "127.0.0.1:5000/osbs/busybox:latest";
/// CG user and password the bridge logs in with (the hub double knows them).
const KOJI_USER: &str = "osbs";
const KOJI_PASSWORD: &str = "e2e-not-a-real-secret";
/// The worker's password for the registry (unused on the wire: the registry asks for none;
/// loaded, printed masked and sent with the engine's pulls all the same).
const REGISTRY_PASSWORD: &str = "e2e-registry-password";

/// Directory of the workspace's binaries, built once per test process.
pub fn binaries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace)
            .args([
                "build",
                "--bins",
                "-p",
                "osbs-dispatcher",
                "-p",
                "osbs-worker",
                "-p",
                "osbs-koji-bridge",
                "-p",
                "osbs-cli",
                "-p",
                "osbs-web",
            ])
            .status()
            .expect("run cargo build");
        assert!(
            status.success(),
            "cargo build of the service binaries failed"
        );
        // target/debug/deps/<test binary> → target/debug
        let exe = std::env::current_exe().expect("test binary path");
        exe.parent()
            .and_then(Path::parent)
            .expect("target/debug")
            .to_owned()
    })
}

/// A service process; stopped with SIGTERM (then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub log: PathBuf,
    child: Child,
}

impl Service {
    /// Starts `binary --config <config>` with its output in `<dir>/<name>.log`.
    pub fn start(name: &str, binary: &str, config: &Path, dir: &Path) -> Service {
        let log = dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("service log file");
        let child = Command::new(binaries().join(binary))
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdout(file.try_clone().expect("log file handle"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {binary}: {error}"));
        Service {
            name: name.to_owned(),
            log,
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The service's output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits up to `grace` for a clean exit; returns whether it exited 0.
    pub fn terminate(&mut self, grace: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.terminate(Duration::from_secs(10));
        }
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Waits until `http://127.0.0.1:<port>/healthz` answers 200.
pub async fn wait_healthy(service: &Service, port: u16, timeout: Duration) {
    let url = format!("http://127.0.0.1:{port}/healthz");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} not healthy on {url} after {timeout:?}; its log:\n{}",
            service.name,
            service.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Everything one end-to-end test runs against.
#[derive(Debug)]
pub struct Cluster {
    pub env: TestEnv,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub hub: RunningHub,
    pub store: Store,
    /// Registry namespace of this test's images (`127.0.0.1:5000/<ns>/<name>`).
    pub registry_namespace: String,
    pub dispatcher: Service,
    pub worker: Service,
    pub bridge: Service,
}

impl Cluster {
    /// Starts the hub double, writes the configuration and starts the three services.
    pub async fn start() -> Cluster {
        osbs_testkit::require_docker();
        osbs_testkit::require_registry();
        osbs_testkit::ensure_busybox_image(BASE_IMAGE);
        let env = TestEnv::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let hub = KojiHub::start(HubConfig {
            users: vec![UserSpec::new(KOJI_USER, Some(KOJI_PASSWORD))],
            content_generators: vec![("osbs".into(), vec![KOJI_USER.into()])],
            targets: vec![TargetSpec::named(
                TARGET,
                &["hello-container", "e2e-container"],
            )],
            ..HubConfig::default()
        })
        .await
        .expect("start the Koji hub double");
        let registry_namespace = format!("e2e-{}", &env.redis.key_prefix["osbs-test-".len()..]);
        let ports = [free_port(), free_port(), free_port()];
        let config = dir.path().join("osbs.toml");
        std::fs::write(
            &config,
            config_text(&env, dir.path(), &hub.url, &registry_namespace, ports),
        )
        .expect("write the configuration");
        std::fs::create_dir_all(dir.path().join("dist-git/container")).expect("dist-git dir");
        let binaries = binaries();
        assert!(binaries.join("osbs").exists(), "the osbs CLI was not built");
        let dispatcher = Service::start("dispatcher", "osbs-dispatcher", &config, dir.path());
        let worker = Service::start("worker", "osbs-worker", &config, dir.path());
        let bridge = Service::start("bridge", "osbs-koji-bridge", &config, dir.path());
        for (service, port) in [
            (&dispatcher, ports[0]),
            (&worker, ports[1]),
            (&bridge, ports[2]),
        ] {
            wait_healthy(service, port, Duration::from_secs(60)).await;
        }
        let store = Store::connect(&env.redis).await.expect("connect to Redis");
        Cluster {
            env,
            dir,
            config,
            hub,
            store,
            registry_namespace,
            dispatcher,
            worker,
            bridge,
        }
    }

    /// A new bare repository `container/<name>.git` whose post-receive hook is
    /// `osbs git-hook`, and a clone of it to commit in.
    pub fn dist_git_repo(&self, name: &str) -> Repo {
        let bare = self
            .dir
            .path()
            .join(format!("dist-git/container/{name}.git"));
        git(
            self.dir.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                bare.to_str().unwrap(),
            ],
        );
        let hook = bare.join("hooks/post-receive");
        std::fs::write(
            &hook,
            format!(
                "#!/bin/sh\nexec env OSBS_CONFIG={} LOGNAME=packager USER=packager {} git-hook\n",
                self.config.display(),
                binaries().join("osbs").display()
            ),
        )
        .expect("write the hook");
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod the hook");
        let work = self.dir.path().join(format!("checkouts/{name}"));
        git(
            self.dir.path(),
            &[
                "clone",
                "--quiet",
                bare.to_str().unwrap(),
                work.to_str().unwrap(),
            ],
        );
        git(&work, &["config", "user.name", "Pat Packager"]);
        git(&work, &["config", "user.email", "packager@example.com"]);
        git(&work, &["checkout", "--quiet", "-B", "main"]);
        Repo {
            work,
            cli_log: self.dir.path().join(CLI_LOG),
        }
    }

    /// Waits until build `id` is in one of `states`; panics with the services' logs if not.
    pub async fn wait_for_state(
        &self,
        id: &str,
        states: &[BuildState],
        timeout: Duration,
    ) -> BuildRecord {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(record) = self.store.get(id).await.expect("read the record")
                && states.contains(&record.state)
            {
                return record;
            }
            if Instant::now() > deadline {
                let record = self.store.get(id).await.ok().flatten();
                panic!(
                    "build {id} did not reach {states:?} in {timeout:?}; record: {record:#?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the first build of repository `repo` to be recorded; returns its id.
    pub async fn wait_for_build_of(&self, repo: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .store
                .list(&osbs_common::store::ListFilter {
                    repo: Some(repo.to_owned()),
                    ..Default::default()
                })
                .await
                .expect("list builds");
            if let Some(record) = found.last() {
                return record.id.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no build of {repo} was recorded in {timeout:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails when a secret this cluster configured or was given (the Koji password, the
    /// registry password, every session key the hub issued, logged out or not) shows in a
    /// service's output or in the CLI's (the git hook's).
    pub fn assert_no_secrets(&self) {
        self.assert_no_secrets_in(&[]);
    }

    /// [`Cluster::assert_no_secrets`], over `extra` outputs too (`(whose, text)`: another
    /// service's log, the web pages a browser was shown).
    pub fn assert_no_secrets_in(&self, extra: &[(String, String)]) {
        let keys = self.hub.issued_session_keys();
        assert!(!keys.is_empty(), "the bridge never logged in to the hub");
        let mut secrets = vec![
            ("Koji password".to_owned(), KOJI_PASSWORD.to_owned()),
            ("registry password".to_owned(), REGISTRY_PASSWORD.to_owned()),
        ];
        secrets.extend(
            keys.into_iter()
                .map(|key| ("Koji session key".to_owned(), key)),
        );
        let mut logs: Vec<(String, String)> = [&self.dispatcher, &self.worker, &self.bridge]
            .iter()
            .map(|service| (service.name.clone(), service.output()))
            .collect();
        let cli = std::fs::read_to_string(self.dir.path().join(CLI_LOG)).unwrap_or_default();
        logs.push(("the CLI (git hook)".to_owned(), cli));
        logs.extend_from_slice(extra);
        osbs_testkit::assert_no_secrets(&logs, &secrets);
    }

    /// Every service's output, for failure messages.
    pub fn logs(&self) -> String {
        [&self.dispatcher, &self.worker, &self.bridge]
            .iter()
            .map(|service| format!("----- {} -----\n{}", service.name, service.output()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Where the CLI's output (the git hook's, through `git push`) is kept.
const CLI_LOG: &str = "cli.log";

/// A clone of a dist-git repository.
#[derive(Debug)]
pub struct Repo {
    pub work: PathBuf,
    cli_log: PathBuf,
}

impl Repo {
    /// Writes `files`, commits them, pushes to dist-git (the hook announces the commit) and
    /// returns the commit id.
    pub fn commit_and_push(&self, files: &[(&str, &[u8])], message: &str) -> String {
        for (path, content) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write a repo file");
        }
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "-m", message]);
        let pushed = Command::new("git")
            .current_dir(&self.work)
            .args(["push", "--quiet", "origin", "main"])
            .stdin(Stdio::null())
            .output()
            .expect("git push");
        let mut cli_log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.cli_log)
            .expect("the CLI log");
        std::io::Write::write_all(
            &mut cli_log,
            &[pushed.stdout.as_slice(), &pushed.stderr].concat(),
        )
        .expect("write the CLI log");
        assert!(
            pushed.status.success(),
            "git push failed (the post-receive hook runs osbs git-hook): {}",
            String::from_utf8_lossy(&pushed.stderr)
        );
        git(&self.work, &["rev-parse", "HEAD"]).trim().to_owned()
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The one configuration file every process of the test reads.
fn config_text(
    env: &TestEnv,
    dir: &Path,
    hub_url: &str,
    namespace: &str,
    ports: [u16; 3],
) -> String {
    let dir = dir.display();
    format!(
        r#"
[amqp]
url = "{amqp}"
connect_timeout_secs = 10

[redis]
key_prefix = "{prefix}"

[storage]
artifacts_dir = "{dir}/artifacts"

[dispatcher]
http_listen = "127.0.0.1:{p0}"
allowed_git_urls = ["file://{dir}/dist-git"]
git_clone_base = "file://{dir}/dist-git"
auto_branches = ["main"]

[dispatcher.target_defaults]
registry = "127.0.0.1:5000"
registry_namespace = "{namespace}"
base_registry = "127.0.0.1:5000"

[worker]
http_listen = "127.0.0.1:{p1}"
allowed_git_urls = ["file://{dir}/dist-git"]
work_dir = "{dir}/work"

[worker.registry_auth."127.0.0.1:5000"]
username = "e2e"
password = "{REGISTRY_PASSWORD}"

[koji]
hub_url = "{hub_url}"
cg_name = "osbs"
bundle_dir = "{dir}/bundles"
http_listen = "127.0.0.1:{p2}"

[koji.auth]
method = "password"
user = "{KOJI_USER}"
password = "{KOJI_PASSWORD}"

[cli]
git_web_url = "file://{dir}/dist-git"
"#,
        amqp = env.amqp.url.expose(),
        prefix = env.redis.key_prefix,
        p0 = ports[0],
        p1 = ports[1],
        p2 = ports[2],
    )
}

/// Hex digest of a file with the checksum type Koji recorded (0 md5, 1 sha1, 2 sha256).
pub fn file_sha256(path: &Path) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).expect("open the archive");
    std::io::copy(&mut file, &mut hasher).expect("hash the archive");
    hex::encode(hasher.finalize())
}
