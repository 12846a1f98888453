//! Against the real Docker Engine: an image built from a torture Dockerfile on a local
//! busybox base is squashed; its exported filesystem (paths, types, modes, owners, link
//! targets, contents) equals the unsquashed one's, it has base + 1 layers, and it runs.

use osbs_testkit::{ensure_busybox_image, require_docker, run};
use std::collections::BTreeMap;
use std::io::Read;

const TORTURE: &str = r#"
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
type Node = (String, u32, u64, u64, String, Vec<u8>);

/// `docker export` of a container of `image`, by path.
fn filesystem(image: &str) -> BTreeMap<String, Node> {
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

fn layer_count(image: &str) -> usize {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_image_squashes_to_the_same_filesystem_and_runs() {
    require_docker();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {base}\nLABEL osbs.test=torture\n{TORTURE}"),
    )
    .unwrap();
    let image = "osbs-squash-test-torture:1";
    let built = std::process::Command::new("docker")
        .args(["build", "-q", "-t", image])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );

    let docker = bollard::Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let tag = "osbs-squash-test-torture:squashed";
    let squashed = osbs_squash::squash_in_engine(&docker, image, &base, tag)
        .await
        .unwrap();

    let base_layers = layer_count(&base);
    assert_eq!(squashed.base_layer_count, base_layers);
    assert_eq!(squashed.layer_count, base_layers + 1);
    assert_eq!(layer_count(tag), base_layers + 1);
    assert_eq!(
        run(&["docker", "image", "inspect", "--format", "{{.Id}}", tag]).trim(),
        squashed.image_id
    );

    let (before, after) = (filesystem(image), filesystem(tag));
    let differences: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(
        differences.is_empty(),
        "filesystems differ at {differences:?}"
    );
    assert!(
        before.contains_key("opt/swap/y") && !before.contains_key("opt/a"),
        "the torture steps ran"
    );

    let label = run(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{index .Config.Labels \"osbs.test\"}}",
        tag,
    ]);
    assert_eq!(label.trim(), "torture");
    let output = run(&[
        "docker",
        "run",
        "--rm",
        tag,
        "sh",
        "-c",
        "cat /opt/swap/y /data/t /data/hard2 /root",
    ]);
    assert_eq!(output, "back\nreplaced\ntarget\nfile\n");

    // Squashing the same image again gives the same image.
    let again = osbs_squash::squash_in_engine(&docker, image, &base, tag)
        .await
        .unwrap();
    assert_eq!(again, squashed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_and_foreign_base_are_clear_errors() {
    require_docker();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:1");
    let docker = bollard::Docker::connect_with_defaults()
        .unwrap()
        .negotiate_version()
        .await
        .unwrap();
    let missing =
        osbs_squash::squash_in_engine(&docker, "osbs-squash-test-missing:1", &base, "x:1")
            .await
            .unwrap_err();
    assert_eq!(
        missing.to_string(),
        "image 'osbs-squash-test-missing:1' is not in the Docker Engine; build or pull it first"
    );
    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo other > /other\n"),
    )
    .unwrap();
    run(&[
        "docker",
        "build",
        "-q",
        "-t",
        "osbs-squash-test-other:1",
        other.path().to_str().unwrap(),
    ]);
    let foreign = osbs_squash::squash_in_engine(&docker, &base, "osbs-squash-test-other:1", "x:1")
        .await
        .unwrap_err();
    assert!(
        foreign.to_string().contains("is not a base of"),
        "{foreign}"
    );
}
