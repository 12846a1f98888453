//! Real images for the engine and registry tests: the torture Dockerfile, building an
//! image, its exported filesystem and its layer count, and the engine client.

#![allow(dead_code)] // each test binary uses a different part

use osbs_testkit::run;
use std::collections::BTreeMap;
use std::io::Read;

pub const TORTURE: &str = r#"
RUN mkdir -p /opt/a/b /opt/swap /data && echo one > /opt/a/b/f && echo x > /opt/swap/x \
 && echo data > /data/keep && echo target > /data/t && ln /data/t /data/hard1 && ln /data/t /data/hard2 \
 && ln -s /data/keep /data/sym && ln -s ../a /opt/rel && chmod 4755 /data/keep && chown 1001:1002 /data/t
RUN rm -rf /opt/a && rm /etc/group && rm -rf /usr/bin
RUN rm -rf /opt/swap && echo now-a-file > /opt/swap && mkdir /data/was-file-dir
RUN echo replaced > /data/t && rm /data/keep
RUN rm /opt/swap && mkdir /opt/swap && echo back > /opt/swap/y && echo recreated > /data/keep
RUN mkdir -p /opq && echo lower > /opq/l && rm -rf /opq && mkdir /opq && echo upper > /opq/u
RUN rm -rf /tmp && mkdir /tmp && chmod 1777 /tmp && echo new > /etc/group
RUN ln /data/hard1 /data/hard3 && rm /data/hard1 && rm -rf /root && echo file > /root
"#;

/// One exported path: type, mode, uid, gid, link target, content.
pub type Node = (String, u32, u64, u64, String, Vec<u8>);

/// `docker export` of a container of `image`, by path.
pub fn filesystem(image: &str) -> BTreeMap<String, Node> {
    let container = run(&["docker", "create", image]).trim().to_owned();
    let exported = std::process::Command::new("docker")
        .args(["export", &container])
        .output()
        .unwrap();
    run(&["docker", "rm", &container]);
    assert!(exported.status.success(), "docker export failed");
    let mut archive = tar::Archive::new(&exported.stdout[..]);
    let mut tree = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        let path = String::from_utf8_lossy(&entry.path_bytes())
            .trim_end_matches('/')
            .to_owned();
        let link = entry
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        tree.insert(
            path,
            (
                format!("{:?}", header.entry_type()),
                header.mode().unwrap(),
                header.uid().unwrap(),
                header.gid().unwrap(),
                link,
                content,
            ),
        );
    }
    tree
}

pub fn layer_count(image: &str) -> usize {
    run(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{len .RootFS.Layers}}",
        image,
    ])
    .trim()
    .parse()
    .unwrap()
}

/// Builds `dockerfile` as `tag` with the legacy builder (one layer per step, as OSBS does).
pub fn build(tag: &str, dockerfile: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
}

/// A client of the local Docker Engine (API version negotiated).
pub async fn docker() -> bollard::Docker {
    bollard::Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap()
}
