//! The base image of the quickstart and the tests (`deploy/base-image.sh`) against the real
//! Docker Engine and registry: one recipe, one image id; an engine or a registry that holds
//! another image under the base's name (an earlier quickstart's, say) gets the recipe's; and
//! nothing in it poses as RPM's tools.

use osbs_testkit::{base_image_script, require_docker, require_registry, run, run_with_stdin};

/// The config digest of `reference`'s manifest in the local registry.
fn registry_config_digest(reference: &str) -> String {
    let (repository, tag) = reference
        .strip_prefix("127.0.0.1:5000/")
        .and_then(|rest| rest.rsplit_once(':'))
        .expect("a reference on 127.0.0.1:5000 with a tag");
    let manifest = run(&[
        "curl",
        "-fsS",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        &format!("http://127.0.0.1:5000/v2/{repository}/manifests/{tag}"),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("a JSON manifest");
    manifest["config"]["digest"]
        .as_str()
        .expect("a config digest")
        .to_owned()
}

fn engine_id(reference: &str) -> String {
    run(&[
        "docker", "image", "inspect", "--format", "{{.Id}}", reference,
    ])
    .trim()
    .to_owned()
}

#[test]
fn the_base_is_the_recipes_in_the_engine_and_the_registry_whatever_was_there() {
    require_docker();
    require_registry();
    let script = base_image_script();
    let script = script.to_str().expect("a UTF-8 path");
    let recipe = run(&[script, "id"]).trim().to_owned();
    assert!(recipe.starts_with("sha256:"), "{recipe}");
    assert_eq!(run(&[script, "id"]).trim(), recipe, "same recipe, same id");

    // What an earlier quickstart left: the same files imported (another id: import stamps the
    // time), in the engine and in the registry.
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let base = format!("127.0.0.1:5000/osbs-ops-test/base-image:{tag}");
    let stale = format!("127.0.0.1:5000/osbs-ops-test/base-image:{tag}-stale");
    run_with_stdin(
        &["docker", "import", "-", &stale],
        &osbs_testkit::busybox_rootfs_tar(&[]),
    );
    let stale_id = engine_id(&stale);
    assert_ne!(stale_id, recipe);
    run(&["docker", "tag", &stale, &base]);
    run(&["docker", "push", "--quiet", &base]);
    assert_eq!(registry_config_digest(&base), stale_id);

    let ensure = |what: &str| {
        assert_eq!(run(&[script, "ensure", &base]).trim(), recipe, "{what}");
        assert_eq!(engine_id(&base), recipe, "the engine's base, {what}");
        assert_eq!(
            registry_config_digest(&base),
            recipe,
            "the registry's base, {what}"
        );
    };
    ensure("both stale");
    // The registry stale, the engine right.
    run(&["docker", "tag", &stale, &base]);
    run(&["docker", "push", "--quiet", &base]);
    run(&["docker", "tag", &recipe, &base]);
    ensure("the registry stale");
    // The engine stale, the registry right.
    run(&["docker", "tag", &stale, &base]);
    ensure("the engine stale");
    ensure("nothing stale");

    let listing = run(&["docker", "run", "--rm", &base, "ls", "/bin"]);
    let applets: Vec<&str> = listing.lines().collect();
    assert!(
        applets.len() > 100,
        "busybox's applets are linked: {applets:?}"
    );
    for tool in ["rpm", "rpm2cpio"] {
        assert!(!applets.contains(&tool), "busybox's {tool} poses as RPM's");
    }
    // Only the names go: the images stay for every other base of the same recipe.
    run(&["docker", "rmi", &base, &stale]);
}
