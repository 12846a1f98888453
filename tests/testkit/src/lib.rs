//! Test support for every OSBS crate: each test gets its own RabbitMQ vhost and Redis key
//! prefix (so tests run in parallel without stealing each other's messages), and a test whose
//! real service is missing fails saying how to start it — it never passes by skipping.

pub mod registry;

use osbs_common::config::{AmqpConfig, CredentialUrl, RedisConfig};
use std::path::Path;
use std::process::Command;

/// An isolated slice of the real broker and Redis. Dropping it deletes the vhost and keys.
#[derive(Debug)]
pub struct TestEnv {
    pub vhost: String,
    pub amqp: AmqpConfig,
    pub redis: RedisConfig,
}

impl TestEnv {
    /// Creates vhost `osbs-test-<id>` (guest has every permission on it) and a Redis prefix.
    /// Panics with a how-to-start message when RabbitMQ or Redis is not running.
    pub fn new() -> TestEnv {
        require_rabbitmq();
        require_redis();
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let vhost = format!("osbs-test-{id}");
        rabbitmqctl(&["add_vhost", &vhost]);
        rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
        let amqp = AmqpConfig {
            url: CredentialUrl::new(format!("amqp://guest:guest@127.0.0.1:5672/{vhost}")),
            connect_timeout_secs: 10,
            ..AmqpConfig::default()
        };
        let redis = RedisConfig {
            key_prefix: format!("osbs-test-{id}"),
            connect_timeout_secs: 5,
            ..RedisConfig::default()
        };
        TestEnv { vhost, amqp, redis }
    }

    /// `OSBS_…` variables pointing a service process at this environment.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        vec![
            ("OSBS_AMQP__URL".into(), self.amqp.url.expose().to_owned()),
            (
                "OSBS_REDIS__KEY_PREFIX".into(),
                self.redis.key_prefix.clone(),
            ),
        ]
    }
}

impl TestEnv {
    /// Counts of `queue` in this vhost, unacked messages included.
    pub fn queue_counts(&self, queue: &str) -> QueueCounts {
        queue_counts(None, &self.vhost, queue)
    }

    /// Sets RabbitMQ policy `name` on the queues of this vhost matching `pattern` (it goes
    /// with the vhost).
    pub fn set_queue_policy(&self, name: &str, pattern: &str, definition: &str) {
        rabbitmqctl(&[
            "set_policy",
            "-p",
            &self.vhost,
            "--apply-to",
            "queues",
            name,
            pattern,
            definition,
        ]);
    }

    pub fn clear_policy(&self, name: &str) {
        rabbitmqctl(&["clear_policy", "-p", &self.vhost, name]);
    }
}

/// A queue's messages as the broker counts them: a message a consumer holds unacked is
/// neither gone nor ready (AMQP's `queue.declare-ok` counts only the ready ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    pub ready: u64,
    pub unacked: u64,
    pub consumers: u64,
}

impl QueueCounts {
    /// Nothing waits and nothing is in a consumer's hands.
    pub fn settled(&self) -> bool {
        self.ready == 0 && self.unacked == 0
    }
}

/// Counts of `queue` in `vhost` of RabbitMQ node `node` (`None`: the shared one), from
/// `rabbitmqctl list_queues`.
pub fn queue_counts(node: Option<&str>, vhost: &str, queue: &str) -> QueueCounts {
    let mut args = Vec::new();
    if let Some(node) = node {
        args.extend(["-n", node]);
    }
    args.extend([
        "list_queues",
        "-p",
        vhost,
        "--no-table-headers",
        "--quiet",
        "name",
        "messages_ready",
        "messages_unacknowledged",
        "consumers",
    ]);
    let listing = rabbitmqctl(&args);
    let row = listing
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&queue))
        .unwrap_or_else(|| panic!("no queue {queue} in vhost {vhost}:\n{listing}"));
    let number = |index: usize| -> u64 {
        row.get(index)
            .and_then(|field| field.parse().ok())
            .unwrap_or_else(|| panic!("unreadable list_queues row for {queue}: {row:?}"))
    };
    QueueCounts {
        ready: number(1),
        unacked: number(2),
        consumers: number(3),
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.vhost])
            .output();
        if let Ok(client) = redis::Client::open(self.redis.url.expose())
            && let Ok(mut connection) = client.get_connection()
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.redis.key_prefix))
                .query(&mut connection)
                .unwrap_or_default();
            if !keys.is_empty() {
                let _ = redis::cmd("DEL").arg(keys).query::<()>(&mut connection);
            }
        }
    }
}

fn rabbitmqctl(args: &[&str]) -> String {
    let output = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run rabbitmqctl {args:?}: {error}; install RabbitMQ (apt-get install -y rabbitmq-server) and start it with `rabbitmq-server -detached`"));
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}{}. Is RabbitMQ running? Start it with `rabbitmq-server -detached`",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        std::time::Duration::from_secs(2),
    )
    .is_ok()
}

/// Fails the test unless RabbitMQ answers on 127.0.0.1:5672.
pub fn require_rabbitmq() {
    assert!(
        port_open(5672),
        "RabbitMQ is not running on 127.0.0.1:5672: start it with `rabbitmq-server -detached` (or run deploy/setup.sh)"
    );
}

/// Fails the test unless Redis answers on 127.0.0.1:6379.
pub fn require_redis() {
    assert!(
        port_open(6379),
        "Redis is not running on 127.0.0.1:6379: start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no` (or run deploy/setup.sh)"
    );
}

/// Fails the test unless the Docker Engine answers on /var/run/docker.sock.
pub fn require_docker() {
    let alive = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false);
    assert!(
        alive,
        "the Docker Engine is not running: install it with `apt-get install -y docker.io` and start `dockerd` (or run deploy/setup.sh)"
    );
}

/// The local registry the tests push to.
pub const REGISTRY: &str = "127.0.0.1:5000";

/// Fails the test unless the registry answers on 127.0.0.1:5000.
pub fn require_registry() {
    assert!(
        port_open(5000),
        "the registry is not running on 127.0.0.1:5000: install it with `apt-get install -y docker-registry` and run `docker-registry serve deploy/registry.yml` (or run deploy/setup.sh)"
    );
}

/// `deploy/base-image.sh`: the one recipe of the base image of the quickstart and the tests.
pub fn base_image_script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/base-image.sh")
}

/// The root filesystem of the base image (`deploy/base-image.sh rootfs`: busybox-static with
/// its applet links, `/etc/passwd`, `/tmp`) as a tar, with extra `(path, file on the host)`
/// pairs appended as they are (for example the host's rpm and its libraries).
pub fn busybox_rootfs_tar(extra: &[(&str, &Path)]) -> Vec<u8> {
    rootfs_tar_of(None, extra)
}

/// The arm64 busybox-static that `deploy/setup.sh` unpacks (the arm64 half of the
/// multi-arch base, `deploy/base-image.sh` `OSBS_BASE_BUSYBOX_ARM64`).
pub const ARM64_BUSYBOX: &str = "/var/cache/osbs/arm64/bin/busybox";

/// [`busybox_rootfs_tar`] made of the arm64 busybox ([`ARM64_BUSYBOX`]; listing its applets
/// runs it under qemu-aarch64, so this fails the test where that is not registered).
pub fn arm64_busybox_rootfs_tar(extra: &[(&str, &Path)]) -> Vec<u8> {
    require_qemu_aarch64();
    rootfs_tar_of(Some(Path::new(ARM64_BUSYBOX)), extra)
}

fn rootfs_tar_of(busybox: Option<&Path>, extra: &[(&str, &Path)]) -> Vec<u8> {
    let script = base_image_script();
    let mut command = Command::new(&script);
    if let Some(busybox) = busybox {
        command.env("OSBS_BASE_BUSYBOX", busybox);
    }
    let rootfs = command
        .arg("rootfs")
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", script.display()));
    assert!(
        rootfs.status.success(),
        "{} rootfs failed: {}",
        script.display(),
        String::from_utf8_lossy(&rootfs.stderr)
    );
    let mut builder = tar::Builder::new(Vec::new());
    builder.mode(tar::HeaderMode::Deterministic);
    let mut base = tar::Archive::new(rootfs.stdout.as_slice());
    for entry in base.entries().expect("the base rootfs tar") {
        let mut entry = entry.expect("an entry of the base rootfs tar");
        let mut header = entry.header().clone();
        let path = entry.path().expect("an entry path").into_owned();
        match entry
            .link_name()
            .expect("a link name")
            .map(|link| link.into_owned())
        {
            Some(target) => builder.append_link(&mut header, &path, &target),
            None => builder.append_data(&mut header, &path, &mut entry),
        }
        .expect("copy an entry of the base rootfs");
    }
    for (path, host) in extra {
        builder
            .append_path_with_name(host, path.trim_start_matches('/'))
            .unwrap_or_else(|error| panic!("cannot add {} to the rootfs: {error}", host.display()));
    }
    builder.into_inner().expect("tar finish")
}

/// Makes `tag` (`127.0.0.1:5000/<repository>:<tag>`) the base image of
/// `deploy/base-image.sh`, in the engine and in the registry (loaded and pushed only when
/// missing or different). Returns `tag`.
pub fn ensure_busybox_image(tag: &str) -> String {
    require_docker();
    require_registry();
    let script = base_image_script();
    run(&[script.to_str().expect("a UTF-8 path"), "ensure", tag]);
    tag.to_owned()
}

/// The multi-arch base of the tests: a Docker manifest list naming the base image made for
/// amd64 and for arm64 (variant v8), the per-arch images under `multi-amd64` and
/// `multi-arm64` (`deploy/base-image.sh ensure-multi`).
pub const MULTIARCH_BASE: &str = "127.0.0.1:5000/osbs/busybox:multi";

/// Fails the test unless arm64 binaries run here: qemu-aarch64 registered (and enabled) in
/// binfmt_misc, which `deploy/setup.sh` does.
pub fn require_qemu_aarch64() {
    let entry =
        std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64").unwrap_or_default();
    assert!(
        entry.starts_with("enabled"),
        "arm64 binaries cannot run on this host: qemu-aarch64 is not registered in binfmt_misc; run ./deploy/setup.sh (as root: it installs qemu-user-static, mounts binfmt_misc and registers qemu-aarch64)"
    );
}

/// Makes `list` (`127.0.0.1:5000/<repository>:<tag>`, usually [`MULTIARCH_BASE`]) the
/// multi-arch base of `deploy/base-image.sh ensure-multi`: both arch images in the engine and
/// the registry, and the manifest list naming them under `list` (each made or pushed only
/// when missing or different). Returns the list's digest (`sha256:…`).
pub fn ensure_multiarch_busybox_image(list: &str) -> String {
    require_docker();
    require_registry();
    require_qemu_aarch64();
    let script = base_image_script();
    run(&[script.to_str().expect("a UTF-8 path"), "ensure-multi", list])
        .trim()
        .to_owned()
}

/// Fails the test when a secret it configured shows in a captured log. `logs` are
/// `(whose, text)` — every service's and the CLI's output; `secrets` are `(what, value)`:
/// Koji and registry passwords, Koji session keys, reservation tokens. The failure names the
/// secret and the log, and shows the line with the secret masked, never the secret.
pub fn assert_no_secrets(logs: &[(String, String)], secrets: &[(String, String)]) {
    assert!(
        !secrets.is_empty(),
        "no secret to look for: a scan over nothing cannot fail"
    );
    assert!(
        logs.iter().any(|(_, text)| !text.trim().is_empty()),
        "every captured log is empty: a scan of nothing cannot fail"
    );
    for (what, secret) in secrets {
        // A short value would be found in ordinary text and tell nothing.
        assert!(
            secret.len() >= 8,
            "the {what} is too short to look for ({} characters): configure a longer one",
            secret.len()
        );
        for (whose, text) in logs {
            if let Some(line) = text.lines().find(|line| line.contains(secret.as_str())) {
                panic!(
                    "the {what} reached the output of {whose}: {}",
                    line.replace(secret.as_str(), "<the secret>")
                );
            }
        }
    }
}

/// Runs a command; panics with its output when it fails.
pub fn run(args: &[&str]) -> String {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {args:?}: {error}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The engine's containers, running or not, whose command mentions `marker`: their full ids.
pub fn containers_mentioning(marker: &str) -> Vec<String> {
    run(&[
        "docker",
        "ps",
        "--all",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Command}}",
    ])
    .lines()
    .filter(|line| line.contains(marker))
    .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
    .collect()
}

/// Runs a command with `input` on its stdin; panics with its output when it fails.
pub fn run_with_stdin(args: &[&str], input: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {args:?}: {error}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    let output = child.wait_with_output().expect("wait");
    assert!(
        output.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `tests/fixtures/events/`: the real-format fedora-messaging events (a copy of the shared
/// fixtures; `OSBS_FIXTURES` points elsewhere).
pub fn event_fixtures_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("OSBS_FIXTURES").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/events"),
        std::path::PathBuf::from,
    );
    assert!(
        dir.is_dir(),
        "event fixtures not found at {}: they live in tests/fixtures/events (or set OSBS_FIXTURES)",
        dir.display()
    );
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn a_clean_log_passes() {
        assert_no_secrets(
            &owned(&[("worker", "password = \"***\"\nbuild done")]),
            &owned(&[("Koji password", "pw-0123456789")]),
        );
    }

    #[test]
    #[should_panic(
        expected = "the Koji session key reached the output of bridge: key <the secret> used"
    )]
    fn a_leaked_secret_fails_masked() {
        assert_no_secrets(
            &owned(&[
                ("worker", "fine"),
                ("bridge", "start\nkey 3-abcdefghij used\n"),
            ]),
            &owned(&[("Koji session key", "3-abcdefghij")]),
        );
    }

    #[test]
    #[should_panic(expected = "no secret to look for")]
    fn no_secrets_is_a_test_bug() {
        assert_no_secrets(&owned(&[("worker", "text")]), &[]);
    }

    #[test]
    #[should_panic(expected = "every captured log is empty")]
    fn no_output_is_a_test_bug() {
        assert_no_secrets(&owned(&[("worker", "")]), &owned(&[("x", "0123456789")]));
    }

    #[test]
    fn the_base_rootfs_is_deterministic_and_has_no_rpm_tools() {
        let first = busybox_rootfs_tar(&[]);
        assert_eq!(first, busybox_rootfs_tar(&[]), "same recipe, same bytes");
        let mut names = Vec::new();
        for entry in tar::Archive::new(first.as_slice()).entries().unwrap() {
            names.push(entry.unwrap().path().unwrap().display().to_string());
        }
        assert!(
            names.iter().any(|name| name.ends_with("bin/sh")),
            "{names:?}"
        );
        assert!(names.iter().any(|name| name.ends_with("bin/busybox")));
        for tool in ["bin/rpm", "bin/rpm2cpio"] {
            assert!(
                !names.iter().any(|name| name.ends_with(tool)),
                "{tool} is linked"
            );
        }
    }
}
