//! The corpus of real-world-shaped Dockerfiles (`tests/corpus/*.Dockerfile`): each parses to
//! the expected stages, parents, users and labels; a rewrite that pins every parent to itself
//! and adds nothing is byte-identical; the full OSBS rewrite equals `<name>.expected`, written
//! out in full (reviewed line by line: only FROM image tokens change, and the planned lines
//! are added).

use osbs_dockerfile::{Dockerfile, RewritePlan, rewrite, rewrite_with_parent_users};
use std::collections::BTreeMap;
use std::path::PathBuf;

struct Case {
    name: &'static str,
    /// (written, resolved, pinned) of every parent image.
    parents: &'static [(&'static str, &'static str, &'static str)],
    /// The user at the end of each stage.
    users: &'static [Option<&'static str>],
    final_labels: &'static [(&'static str, &'static str)],
    /// The `User` of parent images' configs, for `rewrite_with_parent_users`.
    parent_users: &'static [(&'static str, &'static str)],
}

const FEDORA: &str = "registry.fedoraproject.org/fedora:41";
const FEDORA_PIN: &str = "registry.fedoraproject.org/fedora@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const MINIMAL: &str = "registry.fedoraproject.org/fedora-minimal:41";
const MINIMAL_PIN: &str = "registry.fedoraproject.org/fedora-minimal@sha256:2222222222222222222222222222222222222222222222222222222222222222";
const BUSYBOX: &str = "127.0.0.1:5000/osbs-dockerfile-test/busybox:1";
const BUSYBOX_PIN: &str = "127.0.0.1:5000/osbs-dockerfile-test/busybox@sha256:3333333333333333333333333333333333333333333333333333333333333333";

const CASES: &[Case] = &[
    Case {
        name: "fedora-httpd",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[Some("1001")],
        final_labels: &[
            ("com.redhat.component", "httpd-container"),
            (
                "description",
                "Apache httpd 2.4 available as container, is a powerful, efficient, and extensible web server.",
            ),
            ("io.k8s.description", "Apache httpd 2.4 web server"),
            ("io.openshift.expose-services", "8080:http,8443:https"),
            ("io.openshift.tags", "builder,httpd,httpd24"),
            (
                "maintainer",
                "Fedora Container SIG <container-sig@lists.fedoraproject.org>",
            ),
            ("name", "fedora/httpd"),
            ("summary", "The Apache HTTP Server"),
            ("version", "2.4"),
        ],
        parent_users: &[],
    },
    Case {
        name: "fedora-aliases",
        parents: &[(
            "registry.fedoraproject.org/fedora:40",
            "registry.fedoraproject.org/fedora:40",
            "registry.fedoraproject.org/fedora@sha256:4040404040404040404040404040404040404040404040404040404040404040",
        )],
        users: &[None],
        final_labels: &[
            ("Architecture", "x86_64"),
            ("BZComponent", "cockpit-container"),
            (
                "INSTALL",
                "/usr/bin/docker run -ti --rm --privileged -v /:/host IMAGE /container/atomic-install",
            ),
            ("Name", "fedora/cockpit"),
            ("Release", "5"),
            ("Vendor", "Fedora Project"),
            ("Version", "0.1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "go-multistage",
        parents: &[
            (FEDORA, FEDORA, FEDORA_PIN),
            (MINIMAL, MINIMAL, MINIMAL_PIN),
        ],
        users: &[None, Some("65534")],
        final_labels: &[
            ("com.redhat.component", "go-app-container"),
            ("name", "fedora/go-app"),
            ("version", "1.2.3"),
        ],
        parent_users: &[],
    },
    Case {
        name: "rust-multistage",
        parents: &[
            (FEDORA, FEDORA, FEDORA_PIN),
            (MINIMAL, MINIMAL, MINIMAL_PIN),
        ],
        users: &[None, Some("server")],
        final_labels: &[
            ("com.redhat.component", "rust-server-container"),
            ("name", "fedora/rust-server"),
            ("version", "0.9"),
        ],
        parent_users: &[],
    },
    Case {
        name: "windows-backtick",
        parents: &[(
            "mcr.microsoft.com/windows/servercore:ltsc2022",
            "mcr.microsoft.com/windows/servercore:ltsc2022",
            "mcr.microsoft.com/windows/servercore@sha256:5555555555555555555555555555555555555555555555555555555555555555",
        )],
        users: &[Some("ContainerUser")],
        final_labels: &[
            ("com.redhat.component", "win-app"),
            ("name", "windows/app"),
            ("path", "C:\\Program Files\\App\\"),
            ("version", "1"),
        ],
        parent_users: &[(
            "mcr.microsoft.com/windows/servercore:ltsc2022",
            "ContainerUser",
        )],
    },
    Case {
        name: "crlf",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "crlf-container"),
            ("name", "fedora/crlf"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "heredoc-run",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "heredoc-container"),
            ("name", "fedora/heredoc"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "arg-before-from",
        parents: &[("${BASE}:${TAG:-41}", FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "argbase-container"),
            ("name", "fedora/argbase"),
            ("version", "41"),
        ],
        parent_users: &[],
    },
    Case {
        name: "json-cmd-odd-quoting",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "quoting-container"),
            ("name", "fedora/quoting"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "comments-in-continuation",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "comments-container"),
            ("name", "fedora/comments"),
            ("version", "3"),
        ],
        parent_users: &[],
    },
    Case {
        name: "scratch-rootfs",
        parents: &[],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "fedora-container"),
            ("license", "MIT"),
            ("name", "fedora"),
            ("vendor", "Fedora Project"),
            ("version", "41"),
        ],
        parent_users: &[],
    },
    Case {
        name: "stage-by-index",
        parents: &[
            (FEDORA, FEDORA, FEDORA_PIN),
            (MINIMAL, MINIMAL, MINIMAL_PIN),
        ],
        users: &[None, None],
        final_labels: &[
            ("com.redhat.component", "hello-container"),
            ("name", "fedora/hello"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "onbuild",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "python-onbuild-container"),
            ("name", "fedora/python-onbuild"),
            ("version", "3.12"),
        ],
        parent_users: &[],
    },
    Case {
        name: "user-switches",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[Some("1001:0")],
        final_labels: &[
            ("com.redhat.component", "nodejs-container"),
            ("name", "fedora/nodejs"),
            ("version", "20"),
        ],
        parent_users: &[],
    },
    Case {
        name: "platform",
        parents: &[
            (FEDORA, FEDORA, FEDORA_PIN),
            (MINIMAL, MINIMAL, MINIMAL_PIN),
        ],
        users: &[None, None],
        final_labels: &[
            ("com.redhat.component", "platform-container"),
            ("name", "fedora/platform"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "lowercase-keywords",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None, None],
        final_labels: &[
            ("com.redhat.component", "lower-container"),
            ("name", "fedora/lower"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "no-trailing-newline",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "nonl-container"),
            ("name", "fedora/nonl"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "stage-chain",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[Some("1001"), Some("1001"), Some("1001")],
        final_labels: &[
            ("com.redhat.component", "chain-container"),
            ("name", "fedora/chain"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "scratch-final-multistage",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None, None],
        final_labels: &[
            ("com.redhat.component", "static-container"),
            ("name", "fedora/static"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "healthcheck",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[Some("redis")],
        final_labels: &[
            ("com.redhat.component", "redis-container"),
            ("name", "fedora/redis"),
            ("version", "7"),
        ],
        parent_users: &[],
    },
    Case {
        name: "env-labels",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[Some("27")],
        // `$FGC` comes from the parent image's environment, unknown here.
        final_labels: &[
            ("com.redhat.component", "mariadb-container"),
            ("name", "/mariadb"),
            ("summary", "MariaDB server"),
            ("usage", "docker run -d -e MYSQL_USER=user /mariadb"),
            ("version", "10.11"),
        ],
        parent_users: &[],
    },
    Case {
        name: "python-app",
        parents: &[(
            "quay.io/fedora/python-312:latest",
            "quay.io/fedora/python-312:latest",
            "quay.io/fedora/python-312@sha256:6666666666666666666666666666666666666666666666666666666666666666",
        )],
        users: &[Some("1001")],
        final_labels: &[
            ("com.redhat.component", "python-app-container"),
            ("name", "fedora/python-app"),
            ("version", "1.0"),
        ],
        parent_users: &[("quay.io/fedora/python-312:latest", "1001")],
    },
    Case {
        name: "nodejs-s2i",
        parents: &[(
            "quay.io/fedora/s2i-core:41",
            "quay.io/fedora/s2i-core:41",
            "quay.io/fedora/s2i-core@sha256:7777777777777777777777777777777777777777777777777777777777777777",
        )],
        users: &[Some("1001")],
        final_labels: &[
            ("com.redhat.component", "nodejs-20-container"),
            (
                "help",
                "For more information visit https://github.com/sclorg/s2i-nodejs-container",
            ),
            // SUMMARY is set in the ENV that sets NODEJS_VERSION, so it saw it unset.
            (
                "io.k8s.description",
                "Platform for building and running Node.js  applications",
            ),
            ("io.k8s.display-name", "Node.js 20"),
            ("io.openshift.tags", "builder,nodejs,nodejs20"),
            ("name", "fedora/nodejs-20"),
            (
                "summary",
                "Platform for building and running Node.js  applications",
            ),
            ("version", "20"),
        ],
        parent_users: &[],
    },
    Case {
        name: "tabs-and-spaces",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "tabs-container"),
            ("name", "fedora/tabs"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "bom-directive",
        parents: &[(FEDORA, FEDORA, FEDORA_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "bom-container"),
            ("name", "fedora/bom"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "engine-basic",
        parents: &[(BUSYBOX, BUSYBOX, BUSYBOX_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "engine-basic-container"),
            ("name", "osbs/engine-basic"),
            ("quoted", "it's \"here\" \\ $NOT"),
            ("version", "1.0"),
        ],
        parent_users: &[],
    },
    Case {
        name: "engine-multistage-user",
        parents: &[
            (BUSYBOX, BUSYBOX, BUSYBOX_PIN),
            (BUSYBOX, BUSYBOX, BUSYBOX_PIN),
        ],
        users: &[Some("nobody"), Some("nobody"), Some("nobody")],
        final_labels: &[
            ("com.redhat.component", "engine-multistage-container"),
            ("name", "osbs/engine-multistage"),
            ("version", "2"),
        ],
        parent_users: &[],
    },
    Case {
        name: "engine-backtick-crlf",
        parents: &[(BUSYBOX, BUSYBOX, BUSYBOX_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "engine-backtick-container"),
            ("name", "osbs/engine-backtick"),
            ("path", "C:\\dir\\"),
            ("tick", "a`b\"c"),
            ("version", "1"),
        ],
        parent_users: &[],
    },
    Case {
        name: "engine-arg-from",
        parents: &[("${REGISTRY}/${IMAGE}:${TAG:-1}", BUSYBOX, BUSYBOX_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "demo-container"),
            ("from", "osbs-dockerfile-test/busybox"),
            ("name", "osbs/demo"),
            ("version", "3"),
        ],
        parent_users: &[],
    },
    Case {
        name: "engine-onbuild-comments",
        parents: &[(BUSYBOX, BUSYBOX, BUSYBOX_PIN)],
        users: &[None],
        final_labels: &[
            ("com.redhat.component", "engine-onbuild-container"),
            ("name", "osbs/engine-onbuild"),
            ("version", "5"),
        ],
        parent_users: &[],
    },
];

fn corpus_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

fn read(name: &str) -> String {
    let path = corpus_file(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The plan every corpus file is rewritten with (pins aside). The last label is hostile on
/// purpose: quotes, `$`, both escape characters, a line break.
pub fn full_plan(pins: BTreeMap<String, String>) -> RewritePlan {
    RewritePlan {
        pins,
        labels: vec![
            ("build-date".into(), "2024-05-01T12:00:00Z".into()),
            ("vcs-ref".into(), "0123abcd".into()),
            ("com.redhat.build-host".into(), "worker-1".into()),
            ("release".into(), "1".into()),
            ("osbs.test".into(), "a \"b\" $c \\ `d`\nnext".into()),
        ],
        repo_files: vec!["fedora-8a3f2.repo".into(), "updates-0b71c.repo".into()],
        buildinfo_dockerfile: Some("Dockerfile-corpus-1-1".into()),
    }
}

#[test]
fn the_corpus_has_every_file_and_no_other() {
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_file(""))
        .expect("tests/corpus")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter_map(|name| name.strip_suffix(".Dockerfile").map(str::to_owned))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|case| case.name.to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
    assert!(CASES.len() >= 25);
}

#[test]
fn corpus() {
    for case in CASES {
        let source = read(&format!("{}.Dockerfile", case.name));
        let dockerfile =
            Dockerfile::parse(&source).unwrap_or_else(|error| panic!("{}: {error}", case.name));

        let parents: Vec<(String, String)> = dockerfile
            .parent_images()
            .into_iter()
            .map(|parent| (parent.written, parent.resolved))
            .collect();
        let expected: Vec<(String, String)> = case
            .parents
            .iter()
            .map(|(written, resolved, _)| (written.to_string(), resolved.to_string()))
            .collect();
        assert_eq!(parents, expected, "{}: parent images", case.name);

        let parent_users: BTreeMap<String, String> = case
            .parent_users
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let users: Vec<Option<String>> = dockerfile
            .stage_users()
            .into_iter()
            .zip(&dockerfile.stages().to_vec())
            .map(|(user, stage)| {
                user.or_else(|| {
                    let root = &dockerfile.stages()[dockerfile.root_stage(stage.index)];
                    parent_users.get(&root.image).cloned()
                })
            })
            .collect();
        let expected_users: Vec<Option<String>> =
            case.users.iter().map(|u| u.map(str::to_owned)).collect();
        assert_eq!(users, expected_users, "{}: users", case.name);

        let labels: Vec<(String, String)> = dockerfile.final_stage_labels().into_iter().collect();
        let expected_labels: Vec<(String, String)> = case
            .final_labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(labels, expected_labels, "{}: final stage labels", case.name);

        let identity: BTreeMap<String, String> = case
            .parents
            .iter()
            .map(|(written, _, _)| (written.to_string(), written.to_string()))
            .collect();
        let unchanged = rewrite(
            &dockerfile,
            &RewritePlan {
                pins: identity,
                ..RewritePlan::default()
            },
        )
        .unwrap_or_else(|error| panic!("{}: {error}", case.name));
        assert!(
            unchanged == source,
            "{}: an empty rewrite changed bytes",
            case.name
        );

        let pins: BTreeMap<String, String> = case
            .parents
            .iter()
            .map(|(written, _, pin)| (written.to_string(), pin.to_string()))
            .collect();
        let rewritten = rewrite_with_parent_users(&dockerfile, &full_plan(pins), &parent_users)
            .unwrap_or_else(|error| panic!("{}: {error}", case.name));
        let expected = read(&format!("{}.expected", case.name));
        assert!(
            rewritten == expected,
            "{}: the rewrite differs from {0}.expected:\n--- got ---\n{rewritten}\n--- expected ---\n{expected}",
            case.name
        );

        // The rewritten file parses, keeps its labels and gains the planned ones.
        let reparsed = Dockerfile::parse(&rewritten)
            .unwrap_or_else(|error| panic!("{}: the rewrite does not parse: {error}", case.name));
        let mut labels = dockerfile.final_stage_labels();
        labels.extend([
            ("build-date".to_owned(), "2024-05-01T12:00:00Z".to_owned()),
            ("vcs-ref".to_owned(), "0123abcd".to_owned()),
            ("com.redhat.build-host".to_owned(), "worker-1".to_owned()),
            ("release".to_owned(), "1".to_owned()),
            (
                "osbs.test".to_owned(),
                "a \"b\" $c \\ `d`\\nnext".to_owned(),
            ),
        ]);
        assert_eq!(
            reparsed.final_stage_labels(),
            labels,
            "{}: labels after rewrite",
            case.name
        );
        assert_eq!(
            reparsed.stages().len(),
            dockerfile.stages().len(),
            "{}",
            case.name
        );
    }
}
