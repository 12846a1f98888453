//! A private registry for one test: Debian's `docker-registry` with its own config file, data
//! directory and port, on the loopback address the test names, optionally behind htpasswd
//! Basic auth. Stopped and removed when dropped; the shared registry on 127.0.0.1:5000 is
//! never touched.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user of a registry started with [`PrivateRegistry::with_password`].
pub const USER: &str = "osbs";
/// Its password.
pub const PASSWORD: &str = "s3cret-test-pass";
/// bcrypt (cost 4) of [`PASSWORD`]: the only hash format the registry's htpasswd reads.
const HTPASSWD: &str = "osbs:$2b$04$bmjwkLLtXz32LbAsH1j31eIOBUJdWETB4W597EwEsO/WEEO6T9HPO\n";

/// A running private registry.
#[derive(Debug)]
pub struct PrivateRegistry {
    child: Child,
    /// `HOST:PORT` as clients name it (`127.0.0.2:41234`, `[::1]:41234`).
    pub address: String,
    _dir: tempfile::TempDir,
}

impl PrivateRegistry {
    /// An anonymous registry on `host` (`127.0.0.1`, `127.0.0.2`, `[::1]`) and a free port.
    pub fn start(host: &str) -> PrivateRegistry {
        PrivateRegistry::launch(host, false)
    }

    /// A registry that wants [`USER`] and [`PASSWORD`] (htpasswd, Basic auth; the registry
    /// serves it over plain http, warning only, which a loopback test may).
    pub fn with_password(host: &str) -> PrivateRegistry {
        PrivateRegistry::launch(host, true)
    }

    fn launch(host: &str, password: bool) -> PrivateRegistry {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let bind = host.trim_start_matches('[').trim_end_matches(']');
        let port = std::net::TcpListener::bind((bind, 0))
            .and_then(|listener| listener.local_addr())
            .unwrap_or_else(|error| panic!("cannot bind {host}: {error}"))
            .port();
        let address = format!("{host}:{port}");
        let root = dir.path().display();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n  delete:\n    enabled: true\nhttp:\n  addr: \"{address}\"\n  secret: test\n"
        );
        if password {
            std::fs::write(dir.path().join("htpasswd"), HTPASSWD).expect("htpasswd written");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: osbs-test\n    path: {root}/htpasswd\n"
            ));
        }
        std::fs::write(dir.path().join("config.yml"), config).expect("config written");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "docker-registry is missing: apt-get install -y docker-registry (deploy/setup.sh does)",
            );
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if std::net::TcpStream::connect((bind, port)).is_ok() {
                return PrivateRegistry {
                    child,
                    address,
                    _dir: dir,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the test registry on {address} exited at start: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the test registry on {address} did not start within 10 s");
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
