//! Against the real Docker Engine: an image built from a torture Dockerfile on a local
//! busybox base is squashed; its exported filesystem (paths, types, modes, owners, link
//! targets, contents) equals the unsquashed one's, it has base + 1 layers, and it runs;
//! read from the engine's layer store or from its export, it is the same image.

mod images;

use images::{TORTURE, build, docker, filesystem, layer_count};
use osbs_squash::{LayerRead, ReadFrom, Squashed};
use osbs_testkit::{ensure_busybox_image, require_docker, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_image_squashes_to_the_same_filesystem_and_runs() {
    require_docker();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:1");
    let image = "osbs-squash-test-torture:1";
    build(
        image,
        &format!("FROM {base}\nLABEL osbs.test=torture\n{TORTURE}"),
    );

    let docker = docker().await;
    let tag = "osbs-squash-test-torture:squashed";
    let squashed = osbs_squash::squash_in_engine(&docker, image, &base, tag, ReadFrom::Auto)
        .await
        .unwrap();
    // On this host (root, overlay2) the layers come from the engine's layer store.
    assert!(
        matches!(squashed.read, LayerRead::LayerStore { .. }),
        "expected the layer store to be read (dockerd with overlay2, run as root): {}",
        squashed.read
    );

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

    // Squashing the same image again, from the engine's export this time, gives the same
    // image: the layer store path reads the very bytes the export gives.
    let again = osbs_squash::squash_in_engine(&docker, image, &base, tag, ReadFrom::Export)
        .await
        .unwrap();
    assert_eq!(again.read, LayerRead::Export { reason: None });
    assert_eq!(
        Squashed {
            read: squashed.read.clone(),
            ..again
        },
        squashed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_and_foreign_base_are_clear_errors() {
    require_docker();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:1");
    let docker = docker().await;
    let missing = osbs_squash::squash_in_engine(
        &docker,
        "osbs-squash-test-missing:1",
        &base,
        "x:1",
        ReadFrom::Auto,
    )
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
    let foreign = osbs_squash::squash_in_engine(
        &docker,
        &base,
        "osbs-squash-test-other:1",
        "x:1",
        ReadFrom::Auto,
    )
    .await
    .unwrap_err();
    assert!(
        foreign.to_string().contains("is not a base of"),
        "{foreign}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_changed_in_the_store_fails_the_squash_naming_the_file() {
    require_docker();
    let base = ensure_busybox_image("127.0.0.1:5000/osbs-squash-test-base:1");
    let docker = docker().await;
    // A layer of its own (nothing else shares it), removed at the end with its image.
    let unique = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let image = "osbs-squash-test-tamper:1";
    build(
        image,
        &format!("FROM {base}\nRUN echo original-{unique} > /tamper\n"),
    );
    let upper = run(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{.GraphDriver.Data.UpperDir}}",
        image,
    ]);
    let file = std::path::Path::new(upper.trim()).join("tamper");
    let original = std::fs::read(&file).unwrap_or_else(|e| {
        panic!(
            "cannot read {} (run the tests as root beside dockerd with overlay2): {e}",
            file.display()
        )
    });
    // Same size, other bytes: only the recorded CRC-64 can tell.
    std::fs::write(&file, original.to_ascii_uppercase()).unwrap();

    let failed = osbs_squash::squash_in_engine(
        &docker,
        image,
        &base,
        "osbs-squash-test-tamper:squashed",
        ReadFrom::Auto,
    )
    .await
    .unwrap_err()
    .to_string();
    run(&["docker", "rmi", "-f", image]);
    assert!(
        failed.contains("tamper in layer sha256:")
            && failed.contains("differs from what the engine recorded"),
        "{failed}"
    );
}
