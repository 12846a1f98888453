//! What the worker's integration tests share: a harness with the real RabbitMQ (own vhost),
//! Redis (own prefix), Docker Engine and registry; local dist-git repositories; an HTTP
//! server for lookaside files and yum repos; base images made locally; workers run
//! in-process.

#![allow(dead_code)]

use osbs_common::bus::Bus;
use osbs_common::config::StorageConfig;
use osbs_common::store::{BuildRecord, Store};
use osbs_proto::names;
use osbs_proto::v1::{BuildJob, BuildOptions, BuildResult, BuildState, Target, Trigger};
use osbs_proto::{Message, StateEvent};
use osbs_testkit::{REGISTRY, TestEnv};
use osbs_worker::ServiceConfig;
use osbs_worker::config::WorkerConfig;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The busybox base image every test builds on.
pub const BASE: &str = "127.0.0.1:5000/osbs-worker-test/busybox:1";
/// busybox + the host's rpm + an empty rpm database.
pub const RPM_BASE: &str = "127.0.0.1:5000/osbs-worker-test/rpm-base:1";
/// The docker0 gateway: how build containers reach the test's HTTP server.
pub const BRIDGE_HOST: &str = "172.17.0.1";

/// Makes and pushes the busybox base image once per test binary.
pub fn busybox_base() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        osbs_testkit::ensure_busybox_image(BASE);
    });
    BASE
}

/// Makes and pushes the rpm base image once per test binary.
pub fn rpm_base() -> &'static str {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        osbs_testkit::require_docker();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("rpmdb");
        osbs_testkit::run(&["rpm", "--initdb", "--dbpath", db.to_str().unwrap()]);
        let macros = dir.path().join("macros");
        std::fs::write(&macros, "%_dbpath /var/lib/rpm\n").unwrap();
        let mut extra: Vec<(String, PathBuf)> = vec![
            ("usr/bin/rpm".into(), "/usr/bin/rpm".into()),
            ("usr/lib/rpm/rpmrc".into(), "/usr/lib/rpm/rpmrc".into()),
            ("usr/lib/rpm/macros".into(), "/usr/lib/rpm/macros".into()),
            (
                "usr/lib/rpm/platform/x86_64-linux/macros".into(),
                "/usr/lib/rpm/platform/x86_64-linux/macros".into(),
            ),
            ("etc/rpm/macros".into(), macros.clone()),
            (
                "lib64/ld-linux-x86-64.so.2".into(),
                "/lib64/ld-linux-x86-64.so.2".into(),
            ),
        ];
        let ldd = osbs_testkit::run(&["ldd", "/usr/bin/rpm"]);
        for library in ldd
            .lines()
            .filter_map(|line| line.split("=>").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter(|path| path.starts_with('/'))
        {
            extra.push((library.trim_start_matches('/').to_owned(), library.into()));
        }
        for entry in std::fs::read_dir(&db).unwrap() {
            let entry = entry.unwrap();
            extra.push((
                format!("var/lib/rpm/{}", entry.file_name().to_string_lossy()),
                entry.path(),
            ));
        }
        let pairs: Vec<(&str, &Path)> = extra
            .iter()
            .map(|(inside, host)| (inside.as_str(), host.as_path()))
            .collect();
        let rootfs = osbs_testkit::busybox_rootfs_tar(&pairs);
        osbs_testkit::run_with_stdin(
            &[
                "docker",
                "import",
                "--change",
                "CMD [\"/bin/sh\"]",
                "-",
                RPM_BASE,
            ],
            &rootfs,
        );
        osbs_testkit::run(&["docker", "push", RPM_BASE]);
    });
    RPM_BASE
}

/// Files served over HTTP (lookaside cache, yum repos, rpms), on every interface so that
/// build containers reach it through the docker0 gateway.
#[derive(Clone, Debug)]
pub struct FileServer {
    pub port: u16,
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Every path asked for, in order (served or not).
    requests: Arc<Mutex<Vec<String>>>,
}

impl FileServer {
    pub async fn start() -> FileServer {
        let files: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let served = files.clone();
        let asked = requests.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let served = served.clone();
            let asked = asked.clone();
            async move {
                asked.lock().unwrap().push(uri.path().to_owned());
                let found = served.lock().unwrap().get(uri.path()).cloned();
                match found {
                    Some(body) => (axum::http::StatusCode::OK, body),
                    None => (axum::http::StatusCode::NOT_FOUND, b"not found".to_vec()),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FileServer {
            port,
            files,
            requests,
        }
    }

    /// The paths asked for so far that start with `prefix`.
    pub fn requests_under(&self, prefix: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|path| path.starts_with(prefix))
            .cloned()
            .collect()
    }

    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        self.files
            .lock()
            .unwrap()
            .insert(path.to_owned(), body.into());
    }

    /// The URL of `path` as the worker sees it.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The URL of `path` as a build container sees it.
    pub fn bridge_url(&self, path: &str) -> String {
        format!("http://{BRIDGE_HOST}:{}{path}", self.port)
    }
}

/// A running in-process worker.
#[derive(Debug)]
pub struct RunningWorker {
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), osbs_worker::WorkerError>>,
    pub http: std::net::SocketAddr,
}

impl RunningWorker {
    /// SIGTERM-equivalent: drains and returns.
    pub async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

/// One test's world.
pub struct Harness {
    pub env: TestEnv,
    pub dir: tempfile::TempDir,
    pub files: FileServer,
    pub store: Store,
    pub bus: Bus,
    /// A queue bound to the external JSON state events of this vhost.
    pub events_queue: String,
    /// Unique per test: image names and repos do not collide across tests and runs.
    pub tag: String,
}

impl Harness {
    pub async fn new() -> Harness {
        osbs_testkit::require_docker();
        osbs_testkit::require_registry();
        let env = TestEnv::new();
        let dir = tempfile::tempdir().unwrap();
        let files = FileServer::start().await;
        let store = Store::connect(&env.redis).await.unwrap();
        let bus = Bus::connect(&env.amqp, "worker-test").await.unwrap();
        bus.declare_topology().await.unwrap();
        let events_queue = "test.state-events".to_owned();
        bus.listen_to_state_events(&events_queue).await.unwrap();
        let tag = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Harness {
            env,
            dir,
            files,
            store,
            bus,
            events_queue,
            tag,
        }
    }

    pub fn git_base(&self) -> PathBuf {
        self.dir.path().join("git")
    }

    pub fn artifacts_dir(&self) -> PathBuf {
        self.dir.path().join("artifacts")
    }

    /// The worker configuration for this harness.
    pub fn config(&self) -> ServiceConfig {
        ServiceConfig {
            amqp: self.env.amqp.clone(),
            redis: self.env.redis.clone(),
            storage: StorageConfig {
                artifacts_dir: self.artifacts_dir(),
            },
            worker: WorkerConfig {
                concurrency: 1,
                http_listen: "127.0.0.1:0".parse().unwrap(),
                allowed_git_urls: vec![format!("file://{}", self.git_base().display())],
                lookaside_url: self
                    .files
                    .url("/repo/pkgs/{namespace}/{repo}/{filename}/{hashtype}/{hash}/{filename}"),
                work_dir: self.dir.path().join("work"),
                heartbeat_secs: 1,
                heartbeat_stale_secs: 3,
                cancel_poll_ms: 250,
                registry_attempts: 2,
                ..WorkerConfig::default()
            },
            ..ServiceConfig::default()
        }
    }

    /// Starts a worker with this harness's configuration, changed by `tweak`.
    pub async fn start_worker(&self, tweak: impl FnOnce(&mut ServiceConfig)) -> RunningWorker {
        let mut config = self.config();
        tweak(&mut config);
        let started = osbs_worker::service::start(config).await.unwrap();
        let http = started.http_addr;
        let stop = CancellationToken::new();
        let task = tokio::spawn(started.serve(stop.clone()));
        // Ready once /healthz says so (the slots consume).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while reqwest::get(format!("http://{http}/healthz"))
            .await
            .map(|response| response.status() != 200)
            .unwrap_or(true)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the worker never became ready"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        RunningWorker { stop, task, http }
    }

    /// A bare repository `container/<name>.git` holding `files` in one commit; returns its
    /// clone URL and the commit.
    pub fn repo(&self, name: &str, files: &[(&str, &[u8])]) -> (String, String) {
        self.repo_with_links(name, files, &[])
    }

    /// [`Harness::repo`] with symlinks too: `(path, target)`, committed as symlinks.
    pub fn repo_with_links(
        &self,
        name: &str,
        files: &[(&str, &[u8])],
        links: &[(&str, &str)],
    ) -> (String, String) {
        let bare = self
            .git_base()
            .join("container")
            .join(format!("{name}.git"));
        let work = self.dir.path().join("checkouts").join(name);
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        for (path, content) in files {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        for (path, target) in links {
            let path = work.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, path).unwrap();
        }
        git(&work, &["add", "-A"]);
        git(
            &work,
            &[
                "-c",
                "user.name=Packager",
                "-c",
                "user.email=packager@example.org",
                "commit",
                "-q",
                "-m",
                "test",
            ],
        );
        std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
        osbs_testkit::run(&[
            "git",
            "clone",
            "-q",
            "--bare",
            work.to_str().unwrap(),
            bare.to_str().unwrap(),
        ]);
        let commit = git(&work, &["rev-parse", "HEAD"]).trim().to_owned();
        (format!("file://{}", bare.display()), commit)
    }

    /// A job for `repo` at `commit` on the local registry.
    pub fn job(&self, repo: &str, git_url: &str, commit: &str) -> BuildJob {
        BuildJob {
            build_id: format!("{repo}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
            repo: repo.to_owned(),
            namespace: "container".into(),
            git_url: git_url.to_owned(),
            commit: commit.to_owned(),
            branch: "main".into(),
            target: Some(Target {
                name: "main-container-candidate".into(),
                registry: REGISTRY.into(),
                registry_namespace: format!("osbs-worker-test-{}", self.tag),
                base_registry: REGISTRY.into(),
                ..Target::default()
            }),
            options: Some(BuildOptions::default()),
            trigger: Trigger::Request as i32,
            submitter: "packager".into(),
            requested_at_ms: osbs_common::telemetry::now_ms(),
            event_id: uuid::Uuid::new_v4().to_string(),
            attempt: 0,
            ..BuildJob::default()
        }
    }

    /// Records the build (as the dispatcher does) and enqueues its job.
    pub async fn submit(&self, job: &BuildJob) {
        self.store
            .create(
                job,
                &job.build_id,
                osbs_common::telemetry::now_ms(),
                "test",
                &[],
            )
            .await
            .unwrap();
        self.bus.publish_job(job, 5).await.unwrap();
    }

    /// Waits for build `id` to reach a final state with its result published (a hang
    /// detector, not a timing).
    pub async fn wait_final(&self, id: &str) -> BuildRecord {
        self.wait_for(id, |record| {
            record.state.is_final() && record.field("result_published") == "1"
        })
        .await
    }

    pub async fn wait_for(&self, id: &str, done: impl Fn(&BuildRecord) -> bool) -> BuildRecord {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(record) = self.store.get(id).await.unwrap()
                && done(&record)
            {
                return record;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "build {id} never got there: {:?}",
                self.store
                    .get(id)
                    .await
                    .unwrap()
                    .map(|r| (r.state, r.fields))
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every message waiting in `queue`, taken (acked).
    pub async fn take_all(&self, queue: &str) -> Vec<lapin::message::BasicGetMessage> {
        let channel = self.bus.channel().await.unwrap();
        let mut taken = Vec::new();
        while let Some(message) = self.bus.get_one(&channel, queue).await.unwrap() {
            message
                .ack(lapin::options::BasicAckOptions::default())
                .await
                .unwrap();
            taken.push(message);
        }
        taken
    }

    /// Takes messages from `queue` until there are `count` (a hang detector, not a timing).
    pub async fn wait_messages(
        &self,
        queue: &str,
        count: usize,
    ) -> Vec<lapin::message::BasicGetMessage> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut taken = Vec::new();
        while taken.len() < count {
            taken.extend(self.take_all(queue).await);
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} messages arrived in {queue}",
                taken.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        taken
    }

    /// The `BuildResult`s published so far (taken from `osbs.results`).
    pub async fn results(&self) -> Vec<BuildResult> {
        self.take_all(names::QUEUE_RESULTS)
            .await
            .into_iter()
            .map(|message| BuildResult::decode(message.delivery.data.as_slice()).unwrap())
            .collect()
    }

    /// The state events published so far.
    pub async fn state_events(&self) -> Vec<StateEvent> {
        self.take_all(&self.events_queue)
            .await
            .into_iter()
            .map(|message| StateEvent::from_json(&message.delivery.data).unwrap())
            .collect()
    }

    /// The complete build log of `id`.
    pub fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.artifacts_dir().join(id).join("build.log")).unwrap_or_default()
    }
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asserts that a failed build says `needle` in its record, its log's last line and its
/// result; returns the record's error.
pub fn assert_failed_with(
    record: &BuildRecord,
    log: &str,
    result: &BuildResult,
    needle: &str,
) -> String {
    assert_eq!(record.state, BuildState::Failed, "{:?}", record.fields);
    let error = record.error().to_owned();
    assert!(
        error.contains(needle),
        "record error {error:?} lacks {needle:?}"
    );
    assert!(!error.contains('\n'), "{error:?}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains(needle),
        "last log line {last:?} lacks {needle:?}"
    );
    assert_eq!(result.state, BuildState::Failed as i32);
    assert_eq!(result.error, error);
    error
}

/// A gzipped tar holding `files`.
pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        builder.append_data(&mut header, path, *content).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

pub fn sha512_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha512::digest(bytes))
}

pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(bytes))
}

/// The registry's answer for `/v2/<path>`.
pub async fn registry_get(path: &str, accept: &str) -> Vec<u8> {
    let response = reqwest::Client::new()
        .get(format!("http://{REGISTRY}/v2/{path}"))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "GET /v2/{path}: {}",
        response.status()
    );
    response.bytes().await.unwrap().to_vec()
}

/// The tags the registry lists for `repository` (none for a repository it does not know).
pub async fn registry_tags(repository: &str) -> Vec<String> {
    let response = reqwest::Client::new()
        .get(format!("http://{REGISTRY}/v2/{repository}/tags/list"))
        .send()
        .await
        .unwrap();
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert!(
        response.status().is_success(),
        "tags of {repository}: {}",
        response.status()
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    listed["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tag| tag.as_str().map(str::to_owned))
        .collect()
}

/// A pushed image read back from the registry: manifest, config, and each layer's entries
/// (path → content, whiteouts included as they are).
#[derive(Debug)]
pub struct PushedImage {
    pub manifest: serde_json::Value,
    pub config: serde_json::Value,
    pub layers: Vec<Vec<(String, Vec<u8>)>>,
    pub layer_digests: Vec<String>,
}

pub async fn pushed_image(repository: &str, reference: &str) -> PushedImage {
    let path = repository.strip_prefix(&format!("{REGISTRY}/")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &registry_get(
            &format!("{path}/manifests/{reference}"),
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .await,
    )
    .unwrap();
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &registry_get(&format!("{path}/blobs/{config_digest}"), "*/*").await,
    )
    .unwrap();
    let mut layers = Vec::new();
    let mut layer_digests = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        layer_digests.push(digest.to_owned());
        let blob = registry_get(&format!("{path}/blobs/{digest}"), "*/*").await;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            entries.push((name, content));
        }
        layers.push(entries);
    }
    PushedImage {
        manifest,
        config,
        layers,
        layer_digests,
    }
}

/// Test rpms: one unsigned, one signed (header+payload, as Fedora signs) by a throwaway
/// key; and the key's long id.
#[derive(Debug, Clone)]
pub struct TestRpms {
    pub unsigned: Vec<u8>,
    pub signed: Vec<u8>,
    pub key_id: String,
    pub file_name: String,
}

pub fn test_rpms() -> &'static TestRpms {
    static RPMS: OnceLock<TestRpms> = OnceLock::new();
    RPMS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path();
        std::fs::create_dir_all(top.join("SPECS")).unwrap();
        let spec = top.join("SPECS/hello-osbs.spec");
        std::fs::write(
            &spec,
            "Name: hello-osbs\nVersion: 1.0\nRelease: 1\nSummary: OSBS test package\nLicense: MIT\nBuildArch: noarch\nAutoReqProv: no\n%description\nOSBS test package\n%install\nmkdir -p %{buildroot}/usr/share/hello-osbs\necho installed-from-yum-repo > %{buildroot}/usr/share/hello-osbs/hello\n%files\n/usr/share/hello-osbs/hello\n",
        )
        .unwrap();
        osbs_testkit::run(&[
            "rpmbuild",
            "-bb",
            "--quiet",
            "--define",
            &format!("_topdir {}", top.display()),
            spec.to_str().unwrap(),
        ]);
        let file_name = "hello-osbs-1.0-1.noarch.rpm".to_owned();
        let built = top.join("RPMS/noarch").join(&file_name);
        let unsigned = std::fs::read(&built).unwrap();
        let gnupg = top.join("gnupg");
        std::fs::create_dir_all(&gnupg).unwrap();
        std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let gpg = |args: &[&str]| {
            let output = Command::new("gpg")
                .env("GNUPGHOME", &gnupg)
                .args(["--batch", "--pinentry-mode", "loopback", "--passphrase", ""])
                .args(args)
                .output()
                .unwrap();
            assert!(output.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&output.stderr));
            String::from_utf8_lossy(&output.stdout).into_owned()
        };
        gpg(&["--quick-gen-key", "OSBS Test Signing <osbs@example.org>", "rsa2048", "sign", "never"]);
        let listing = gpg(&["--with-colons", "--list-keys"]);
        let key_id = listing
            .lines()
            .find(|line| line.starts_with("pub:"))
            .and_then(|line| line.split(':').nth(4))
            .unwrap()
            .to_ascii_lowercase();
        let signed_path = top.join("signed.rpm");
        std::fs::copy(&built, &signed_path).unwrap();
        let output = Command::new("rpmsign")
            .env("GNUPGHOME", &gnupg)
            .args([
                "--addsign",
                "--rpmv3",
                "--define",
                "_gpg_name OSBS Test Signing",
                "--define",
                "__gpg /usr/bin/gpg",
                signed_path.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "rpmsign: {}", String::from_utf8_lossy(&output.stderr));
        TestRpms {
            unsigned,
            signed: std::fs::read(&signed_path).unwrap(),
            key_id,
            file_name,
        }
    })
}

/// Serves a yum repo holding `rpm` at `/<name>/`: returns the `.repo` file's URL.
pub fn serve_yum_repo(files: &FileServer, name: &str, rpm_name: &str, rpm: &[u8]) -> String {
    files.put(&format!("/{name}/{rpm_name}"), rpm.to_vec());
    let repo = format!(
        "[{name}]\nname=OSBS test repo {name}\nbaseurl={}\nenabled=1\ngpgcheck=0\n",
        files.bridge_url(&format!("/{name}/"))
    );
    files.put(&format!("/{name}.repo"), repo.into_bytes());
    files.url(&format!("/{name}.repo"))
}

/// A Dockerfile step installing every rpm named in the injected repo files, as a packager
/// would with dnf: read the baseurl, download, `rpm -i`.
pub fn install_from_repo_step(rpm_name: &str) -> String {
    format!(
        "RUN set -e; for repo in /etc/yum.repos.d/*.repo; do url=$(sed -n 's/^baseurl=//p' \"$repo\"); wget -q -O /tmp/{rpm_name} \"${{url}}{rpm_name}\"; /usr/bin/rpm -i /tmp/{rpm_name}; rm /tmp/{rpm_name}; done\n"
    )
}
