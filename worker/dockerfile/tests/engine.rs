//! The rewrite checked against the real Docker Engine: the buildable corpus files are
//! rewritten exactly as a worker does (pinned to the digest of a busybox image pushed to the
//! local registry, repo files, buildinfo, injected labels with hostile values), built, and the
//! image inspected: its labels equal what the parser reads from the rewritten Dockerfile, CMD,
//! ENTRYPOINT, USER and ONBUILD are those of the Dockerfile, the repo files were there for
//! RUN and are gone, and /root/buildinfo holds the rewritten Dockerfile.

use osbs_dockerfile::{
    Dockerfile, InjectInputs, RewritePlan, buildinfo_name, labels_to_inject, required, rewrite,
    rewrite_for_squash, yum_repo_file_name,
};
use osbs_testkit::run;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const BASE: &str = "127.0.0.1:5000/osbs-dockerfile-test/busybox:1";

/// The base image's digest reference, made once per test run.
fn pinned_base() -> &'static str {
    static PINNED: OnceLock<String> = OnceLock::new();
    PINNED.get_or_init(|| {
        osbs_testkit::ensure_busybox_image(BASE);
        let digests = run(&[
            "docker",
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            BASE,
        ]);
        let digests: Vec<String> = serde_json::from_str(digests.trim()).expect("RepoDigests");
        digests
            .into_iter()
            .find(|digest| {
                digest.starts_with("127.0.0.1:5000/osbs-dockerfile-test/busybox@sha256:")
            })
            .expect("the pushed base image has a digest")
    })
}

/// The built image and every image the classic builder made on the way (earlier stages
/// stay behind as untagged images otherwise); removed when the test ends, pass or fail.
struct Image {
    id: String,
    made: Vec<String>,
}

impl Drop for Image {
    fn drop(&mut self) {
        for id in self.made.iter().rev() {
            let _ = std::process::Command::new("docker")
                .args(["image", "rm", id])
                .output();
        }
    }
}

/// Builds `context` with the classic builder, remembering each step's image.
fn build(context: &str) -> Image {
    let base_id = run(&["docker", "image", "inspect", "--format", "{{.Id}}", BASE]);
    let base_id = base_id.trim().trim_start_matches("sha256:");
    let output = run(&["docker", "build", "--no-cache", "--force-rm", context]);
    let mut made: Vec<String> = output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("---> "))
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .filter(|id| !base_id.starts_with(id))
        .map(str::to_owned)
        .collect();
    made.dedup();
    let id = output
        .lines()
        .find_map(|line| line.strip_prefix("Successfully built "))
        .unwrap_or_else(|| panic!("no image id in the build output:\n{output}"))
        .trim()
        .to_owned();
    Image { id, made }
}

struct Expect {
    user: &'static str,
    entrypoint: Value,
    cmd: Value,
    onbuild: Value,
    /// A file the build wrote, and what it must hold.
    file: (&'static str, &'static str),
}

fn corpus(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write context file");
}

fn build_and_check(name: &str, expect: Expect) {
    let source = corpus(&format!("{name}.Dockerfile"));
    let dockerfile = Dockerfile::parse(&source).expect("parse");
    let labels = dockerfile.final_stage_labels();
    let nvr = required(&labels).expect("required labels");
    let inject = labels_to_inject(
        &labels,
        &BTreeMap::new(),
        &InjectInputs {
            build_date: "2024-05-01T12:00:00Z".into(),
            architecture: "x86_64".into(),
            vcs_ref: "0123abcd".into(),
            build_host: "engine-test".into(),
            release: "7".into(),
            vendor: Some("Vendor \"Q\" $HOME \\ `x` \u{2713}".into()),
            authoritative_source_url: Some("registry.example/ns".into()),
            distribution_scope: Some("line one\nline two\r\tend".into()),
        },
    );
    let repo_urls = [
        "http://127.0.0.1:1/repos/fedora.repo",
        "http://127.0.0.1:1/updates.repo",
    ];
    let repo_files: Vec<String> = repo_urls
        .iter()
        .map(|url| yum_repo_file_name(url))
        .collect();
    let buildinfo = buildinfo_name(
        &nvr.name,
        &nvr.version,
        nvr.release.as_deref().unwrap_or("7"),
    );
    let pins = dockerfile
        .parent_images()
        .into_iter()
        .map(|parent| (parent.written, pinned_base().to_owned()))
        .collect();
    let plan = RewritePlan {
        pins,
        labels: inject.clone(),
        repo_files: repo_files.clone(),
        buildinfo_dockerfile: Some(buildinfo.clone()),
    };
    let rewritten = rewrite(&dockerfile, &plan).expect("rewrite");

    let context = tempfile::tempdir().expect("tempdir");
    write(context.path(), "Dockerfile", &rewritten);
    write(context.path(), &buildinfo, &rewritten);
    for (file, url) in repo_files.iter().zip(repo_urls) {
        write(context.path(), file, &format!("[{file}]\nbaseurl={url}\n"));
    }
    let context_path = context.path().to_str().expect("utf-8 path");
    let image = build(context_path);

    let config = run(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{json .Config}}",
        &image.id,
    ]);
    let config: Value = serde_json::from_str(config.trim()).expect("image config");
    let engine_labels: BTreeMap<String, String> =
        serde_json::from_value(config["Labels"].clone()).expect("labels");
    let read_back = Dockerfile::parse(&rewritten)
        .expect("rewritten parses")
        .final_stage_labels();
    assert_eq!(
        engine_labels, read_back,
        "{name}: the engine's labels vs the parser's"
    );
    // Issue 13: what the worker sends the engine (no buildinfo COPY, no LABEL it can leave
    // to the squash), built, with the squash's labels written over its labels in order, has
    // the labels of the whole rewrite built.
    let base_env: Vec<String> = serde_json::from_str(
        run(&[
            "docker",
            "image",
            "inspect",
            "--format",
            "{{json .Config.Env}}",
            pinned_base(),
        ])
        .trim(),
    )
    .unwrap_or_default();
    let split = rewrite_for_squash(&dockerfile, &plan, &BTreeMap::new(), &base_env)
        .expect("rewrite for the squash");
    assert_eq!(split.stored, rewritten, "{name}: the stored Dockerfile");
    if name == "engine-basic" {
        assert!(
            !split.own_label_instructions.is_empty() && !split.for_engine.contains("LABEL"),
            "{name}: its LABEL is left to the squash: {}",
            split.for_engine
        );
    }
    let engine_context = tempfile::tempdir().expect("tempdir");
    write(engine_context.path(), "Dockerfile", &split.for_engine);
    for (file, url) in repo_files.iter().zip(repo_urls) {
        write(
            engine_context.path(),
            file,
            &format!("[{file}]\nbaseurl={url}\n"),
        );
    }
    let engine_image = build(engine_context.path().to_str().expect("utf-8 path"));
    let engine_config = run(&[
        "docker",
        "image",
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        &engine_image.id,
    ]);
    let mut squashed_labels: BTreeMap<String, String> =
        serde_json::from_str(engine_config.trim()).unwrap_or_default();
    squashed_labels.extend(split.labels.iter().cloned());
    assert_eq!(
        squashed_labels, engine_labels,
        "{name}: the engine's labels of the split with the squash's over them"
    );
    for (label, value) in &inject {
        assert_eq!(
            engine_labels.get(label).map(String::as_str),
            Some(value.replace('\n', "\\n").as_str()),
            "{name}: injected label {label}"
        );
    }
    // The engine leaves out an empty User.
    assert_eq!(
        config["User"].as_str().unwrap_or_default(),
        expect.user,
        "{name}: USER"
    );
    assert_eq!(
        config["Entrypoint"], expect.entrypoint,
        "{name}: ENTRYPOINT"
    );
    assert_eq!(config["Cmd"], expect.cmd, "{name}: CMD");
    assert_eq!(config["OnBuild"], expect.onbuild, "{name}: ONBUILD");

    let script = format!(
        "ls -A /etc/yum.repos.d/; echo ---; cat /root/buildinfo/{buildinfo}; echo ---; cat {}",
        expect.file.0
    );
    let output = run(&[
        "docker",
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "/bin/sh",
        &image.id,
        "-c",
        &script,
    ]);
    let parts: Vec<&str> = output.splitn(3, "---\n").collect();
    assert_eq!(parts.len(), 3, "{name}: {output}");
    assert_eq!(parts[0], "", "{name}: repo files left in the image");
    assert_eq!(
        parts[1].trim_end_matches('\n'),
        rewritten.trim_end_matches('\n'),
        "{name}: buildinfo"
    );
    assert_eq!(parts[2], expect.file.1, "{name}: {}", expect.file.0);
}

#[test]
fn engine_basic() {
    let repos = format!(
        "[{0}]\nbaseurl=http://127.0.0.1:1/repos/fedora.repo\n[{1}]\nbaseurl=http://127.0.0.1:1/updates.repo\n",
        yum_repo_file_name("http://127.0.0.1:1/repos/fedora.repo"),
        yum_repo_file_name("http://127.0.0.1:1/updates.repo"),
    );
    build_and_check(
        "engine-basic",
        Expect {
            user: "",
            entrypoint: Value::Null,
            cmd: json!(["cat", "/hello.txt"]),
            onbuild: Value::Null,
            // RUN saw the repo files: they were copied in before it.
            file: ("/seen-repos.txt", Box::leak(repos.into_boxed_str())),
        },
    );
}

#[test]
fn engine_multistage_user() {
    let mut names = [
        yum_repo_file_name("http://127.0.0.1:1/repos/fedora.repo"),
        yum_repo_file_name("http://127.0.0.1:1/updates.repo"),
    ];
    names.sort();
    let listing = format!("{}\n{}\n", names[0], names[1]);
    build_and_check(
        "engine-multistage-user",
        Expect {
            user: "nobody",
            entrypoint: json!(["cat"]),
            cmd: json!(["/out/artifact"]),
            onbuild: Value::Null,
            file: ("/out/repos", Box::leak(listing.into_boxed_str())),
        },
    );
}

#[test]
fn engine_backtick_crlf() {
    build_and_check(
        "engine-backtick-crlf",
        Expect {
            user: "",
            entrypoint: Value::Null,
            cmd: json!(["cat", "/words"]),
            onbuild: Value::Null,
            file: ("/words", "one two\n"),
        },
    );
}

#[test]
fn engine_arg_from() {
    build_and_check(
        "engine-arg-from",
        Expect {
            user: "",
            entrypoint: json!(["/bin/sh", "-c"]),
            cmd: json!(["echo $APP"]),
            onbuild: Value::Null,
            file: (
                "/etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
            ),
        },
    );
}

#[test]
fn engine_onbuild_comments() {
    build_and_check(
        "engine-onbuild-comments",
        Expect {
            user: "",
            entrypoint: Value::Null,
            cmd: json!(["/bin/sh"]),
            onbuild: json!(["RUN echo child build", "LABEL child=yes"]),
            file: ("/x", "x\\\n"),
        },
    );
}
