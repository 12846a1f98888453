//! `check(input, plan, expect)` tables for `rewrite`, and every `RewriteError`.

use crate::{Dockerfile, RewriteError, RewritePlan, rewrite, rewrite_with_parent_users};
use std::collections::BTreeMap;

fn plan(
    pins: &[(&str, &str)],
    repos: &[&str],
    buildinfo: Option<&str>,
    labels: &[(&str, &str)],
) -> RewritePlan {
    RewritePlan {
        pins: pins
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        repo_files: repos.iter().map(|r| r.to_string()).collect(),
        buildinfo_dockerfile: buildinfo.map(str::to_owned),
    }
}

fn check(input: &str, plan: &RewritePlan, expect: &str) {
    let dockerfile = Dockerfile::parse(input).unwrap_or_else(|error| panic!("{input:?}: {error}"));
    let got = rewrite(&dockerfile, plan).unwrap_or_else(|error| panic!("{input:?}: {error}"));
    assert_eq!(got, expect, "rewrite of {input:?}");
}

const PIN: &str = "r.io/base@sha256:00";

#[test]
fn pins_replace_exactly_the_image_token() {
    let pins = plan(&[("r.io/base:1", PIN), ("${B}:${T}", PIN)], &[], None, &[]);
    let cases: &[(&str, &str)] = &[
        ("FROM r.io/base:1\n", "FROM r.io/base@sha256:00\n"),
        (
            "from   r.io/base:1   as   Build  \n",
            "from   r.io/base@sha256:00   as   Build  \n",
        ),
        (
            "FROM --platform=linux/arm64 r.io/base:1 AS x\n",
            "FROM --platform=linux/arm64 r.io/base@sha256:00 AS x\n",
        ),
        (
            "FROM \\\n  r.io/base:1 \\\n  AS x\n",
            "FROM \\\n  r.io/base@sha256:00 \\\n  AS x\n",
        ),
        // A token split by a continuation is replaced as a whole.
        ("FROM r.io/ba\\\nse:1\n", "FROM r.io/base@sha256:00\n"),
        (
            "ARG B=r.io/base\nARG T=1\nFROM ${B}:${T}\n",
            "ARG B=r.io/base\nARG T=1\nFROM r.io/base@sha256:00\n",
        ),
        (
            "FROM r.io/base:1 AS a\nFROM a\nFROM scratch\n",
            "FROM r.io/base@sha256:00 AS a\nFROM a\nFROM scratch\n",
        ),
        (
            "FROM r.io/base:1\r\nRUN x\r\n",
            "FROM r.io/base@sha256:00\r\nRUN x\r\n",
        ),
        ("FROM r.io/base:1", "FROM r.io/base@sha256:00"),
    ];
    for (input, expect) in cases {
        check(input, &pins, expect);
    }
}

#[test]
fn repo_files_in_each_stage_built_on_an_image() {
    let plan = plan(
        &[("r.io/base:1", PIN)],
        &["a-12345.repo", "b-67890.repo"],
        None,
        &[],
    );
    check(
        "FROM r.io/base:1 AS build\nRUN make\n\n# final\nFROM scratch\nCOPY --from=build /out /\n",
        &plan,
        "FROM r.io/base@sha256:00 AS build\n\
         COPY a-12345.repo b-67890.repo /etc/yum.repos.d/\n\
         RUN make\n\
         RUN rm -f /etc/yum.repos.d/a-12345.repo /etc/yum.repos.d/b-67890.repo\n\
         \n# final\nFROM scratch\nCOPY --from=build /out /\n",
    );
    // A stage with nothing but its FROM still gets both.
    check(
        "FROM r.io/base:1",
        &plan,
        "FROM r.io/base@sha256:00\n\
         COPY a-12345.repo b-67890.repo /etc/yum.repos.d/\n\
         RUN rm -f /etc/yum.repos.d/a-12345.repo /etc/yum.repos.d/b-67890.repo\n",
    );
    // A stage built on a scratch stage gets none; one built on an image stage does.
    check(
        "FROM scratch AS root\nADD rootfs.tar /\nFROM root\nRUN x\nFROM r.io/base:1 AS b\nFROM b\nRUN y\n",
        &plan,
        "FROM scratch AS root\nADD rootfs.tar /\nFROM root\nRUN x\n\
         FROM r.io/base@sha256:00 AS b\n\
         COPY a-12345.repo b-67890.repo /etc/yum.repos.d/\n\
         RUN rm -f /etc/yum.repos.d/a-12345.repo /etc/yum.repos.d/b-67890.repo\n\
         FROM b\n\
         COPY a-12345.repo b-67890.repo /etc/yum.repos.d/\n\
         RUN y\n\
         RUN rm -f /etc/yum.repos.d/a-12345.repo /etc/yum.repos.d/b-67890.repo\n",
    );
}

#[test]
fn repo_removal_runs_as_root() {
    let plan = plan(&[("r.io/base:1", PIN)], &["a-12345.repo"], None, &[]);
    let cases: &[(&str, &str)] = &[
        (
            // The COPY comes before the stage's USER; the removal switches back and forth.
            "FROM r.io/base:1\nUSER 1001\nRUN x\n",
            "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nUSER 1001\nRUN x\n\
             USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER 1001\n",
        ),
        (
            "FROM r.io/base:1\nUSER app\nUSER 0:0\n",
            "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nUSER app\nUSER 0:0\n\
             RUN rm -f /etc/yum.repos.d/a-12345.repo\n",
        ),
        (
            // A user from a variable the Dockerfile sets is restored by value.
            "FROM r.io/base:1\nARG U=svc\nUSER $U\n",
            "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nARG U=svc\nUSER $U\n\
             USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER svc\n",
        ),
        (
            // One the Dockerfile does not set (maybe the parent image's ENV) is restored as
            // written, and wrapped even though it may be root.
            "FROM r.io/base:1\nUSER ${APP_USER}\n",
            "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nUSER ${APP_USER}\n\
             USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER ${APP_USER}\n",
        ),
        (
            "FROM r.io/base:1\nUSER \"app user\"\n",
            "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nUSER \"app user\"\n\
             USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER \"app user\"\n",
        ),
        (
            // The user of an earlier stage carries over.
            "FROM r.io/base:1 AS a\nUSER 5\nFROM a\nRUN x\n",
            "FROM r.io/base@sha256:00 AS a\nCOPY a-12345.repo /etc/yum.repos.d/\nUSER 5\n\
             USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER 5\n\
             FROM a\nCOPY a-12345.repo /etc/yum.repos.d/\nRUN x\n\
             USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER 5\n",
        ),
        (
            // An ONBUILD USER is for child images.
            "FROM r.io/base:1\nONBUILD USER 7\n",
            "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nONBUILD USER 7\n\
             RUN rm -f /etc/yum.repos.d/a-12345.repo\n",
        ),
    ];
    for (input, expect) in cases {
        check(input, &plan, expect);
    }
}

#[test]
fn parent_image_users() {
    let plan = plan(&[("r.io/base:1", PIN)], &["a-12345.repo"], None, &[]);
    let dockerfile =
        Dockerfile::parse("FROM r.io/base:1 AS a\nRUN x\nFROM a\nUSER root\n").expect("parse");
    let users = BTreeMap::from([("r.io/base:1".to_owned(), "1001".to_owned())]);
    assert_eq!(
        rewrite_with_parent_users(&dockerfile, &plan, &users).expect("rewrite"),
        "FROM r.io/base@sha256:00 AS a\nCOPY a-12345.repo /etc/yum.repos.d/\nRUN x\n\
         USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER 1001\n\
         FROM a\nCOPY a-12345.repo /etc/yum.repos.d/\nUSER root\n\
         RUN rm -f /etc/yum.repos.d/a-12345.repo\n"
    );
    let root = BTreeMap::from([("r.io/base:1".to_owned(), "root".to_owned())]);
    assert_eq!(
        rewrite_with_parent_users(
            &Dockerfile::parse("FROM r.io/base:1\n").expect("parse"),
            &plan,
            &root
        )
        .expect("rewrite"),
        "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nRUN rm -f /etc/yum.repos.d/a-12345.repo\n"
    );
}

#[test]
fn final_stage_additions_keep_cmd_and_entrypoint() {
    let plan = plan(
        &[("r.io/base:1", PIN)],
        &["a-12345.repo"],
        Some("Dockerfile-x-1-2"),
        &[("release", "2"), ("odd key", "v")],
    );
    check(
        "FROM r.io/base:1\nENTRYPOINT [\"tini\"]\nCMD [\"run\"]\n\n# trailing comment\n",
        &plan,
        "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nENTRYPOINT [\"tini\"]\nCMD [\"run\"]\n\
         RUN rm -f /etc/yum.repos.d/a-12345.repo\n\
         COPY Dockerfile-x-1-2 /root/buildinfo/Dockerfile-x-1-2\n\
         LABEL release=\"2\" \"odd key\"=\"v\"\n\
         \n# trailing comment\n",
    );
    // Without repos: only the buildinfo COPY and the LABEL; a scratch image gets them too.
    check(
        "FROM scratch\nADD rootfs.tar.gz /\nCMD [\"/bin/sh\"]",
        &plan,
        "FROM scratch\nADD rootfs.tar.gz /\nCMD [\"/bin/sh\"]\n\
         COPY Dockerfile-x-1-2 /root/buildinfo/Dockerfile-x-1-2\n\
         LABEL release=\"2\" \"odd key\"=\"v\"\n",
    );
    // A heredoc ends the stage after its terminator.
    check(
        "FROM scratch\nCOPY <<EOF /x\nbody\nEOF\n",
        &plan,
        "FROM scratch\nCOPY <<EOF /x\nbody\nEOF\n\
         COPY Dockerfile-x-1-2 /root/buildinfo/Dockerfile-x-1-2\n\
         LABEL release=\"2\" \"odd key\"=\"v\"\n",
    );
}

#[test]
fn inserted_lines_follow_the_escape_and_the_line_endings() {
    let plan = plan(
        &[("r.io/base:1", PIN)],
        &["a-12345.repo"],
        None,
        &[("q", "a\"b$c\\d`e")],
    );
    check(
        "# escape=`\r\nFROM r.io/base:1\r\nUSER 1`\r\n001\r\n",
        &plan,
        "# escape=`\r\nFROM r.io/base@sha256:00\r\nCOPY a-12345.repo /etc/yum.repos.d/\r\nUSER 1`\r\n001\r\n\
         USER root\r\nRUN rm -f /etc/yum.repos.d/a-12345.repo\r\nUSER 1001\r\n\
         LABEL q=\"a`\"b`$c\\d``e\"\r\n",
    );
    check(
        "FROM r.io/base:1\nRUN x\n",
        &plan,
        "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nRUN x\n\
         RUN rm -f /etc/yum.repos.d/a-12345.repo\nLABEL q=\"a\\\"b\\$c\\\\d`e\"\n",
    );
}

#[test]
fn rewrite_errors() {
    let dockerfile = |text: &str| Dockerfile::parse(text).expect("parse");
    let cases: &[(&str, RewritePlan, RewriteError)] = &[
        (
            "FROM r.io/base:1\nFROM r.io/other:2\n",
            plan(&[("r.io/base:1", PIN)], &[], None, &[]),
            RewriteError::MissingPin {
                reference: "r.io/other:2".into(),
                line: 2,
            },
        ),
        (
            "FROM r.io/base:1\n",
            plan(
                &[("r.io/base:1", "r.io/base@sha256:00 AS evil")],
                &[],
                None,
                &[],
            ),
            RewriteError::BadPin {
                reference: "r.io/base:1".into(),
                pin: "r.io/base@sha256:00 AS evil".into(),
            },
        ),
        (
            "FROM r.io/base:1\n",
            plan(&[("r.io/base:1", "$X")], &[], None, &[]),
            RewriteError::BadPin {
                reference: "r.io/base:1".into(),
                pin: "$X".into(),
            },
        ),
        (
            "FROM r.io/base:1\n",
            plan(&[("r.io/base:1", PIN)], &["../etc/passwd"], None, &[]),
            RewriteError::BadRepoFileName {
                name: "../etc/passwd".into(),
            },
        ),
        (
            "FROM r.io/base:1\n",
            plan(&[("r.io/base:1", PIN)], &["--chown=0 x.repo"], None, &[]),
            RewriteError::BadRepoFileName {
                name: "--chown=0 x.repo".into(),
            },
        ),
        (
            "FROM scratch\n",
            plan(&[], &[], Some("Dockerfile-a b-1-1"), &[]),
            RewriteError::BadBuildinfoName {
                name: "Dockerfile-a b-1-1".into(),
            },
        ),
        (
            "FROM scratch\n",
            plan(&[], &[], None, &[("a=b", "v")]),
            RewriteError::BadLabelName { name: "a=b".into() },
        ),
        (
            "FROM scratch\n",
            plan(&[], &[], None, &[("", "v")]),
            RewriteError::BadLabelName { name: "".into() },
        ),
        (
            "FROM scratch\n",
            plan(&[], &[], None, &[("a\nRUN x", "v")]),
            RewriteError::BadLabelName {
                name: "a\nRUN x".into(),
            },
        ),
    ];
    for (input, plan, expect) in cases {
        assert_eq!(
            rewrite(&dockerfile(input), plan).as_ref(),
            Err(expect),
            "{input:?}"
        );
    }
    assert_eq!(
        RewriteError::MissingPin {
            reference: "r.io/other:2".into(),
            line: 2
        }
        .to_string(),
        "no pinned reference for the parent image `r.io/other:2` (FROM on line 2); pin every parent image before rewriting"
    );
}

#[test]
fn a_label_name_starting_with_a_dash_is_quoted_not_read_as_a_flag() {
    let input = "FROM scratch\n";
    for (name, written) in [("--", "\"--\""), ("-a", "\"-a\""), ("a-", "a-")] {
        let plan = plan(&[], &[], None, &[(name, "")]);
        let expect = format!("FROM scratch\nLABEL {written}=\"\"\n");
        check(input, &plan, &expect);
        let reparsed = Dockerfile::parse(&expect).expect("the rewrite parses");
        assert_eq!(
            reparsed.final_stage_labels().get(name).map(String::as_str),
            Some(""),
            "{name}"
        );
    }
}

/// `rewrite_for_squash`: the engine gets the rewrite less the buildinfo COPY and the LABEL;
/// the stored text is `rewrite`'s, byte for byte; the labels are what the builder read back
/// from that LABEL (checked against the Docker Engine in worker/tests/builds.rs).
#[test]
fn the_squash_split_leaves_the_copy_and_the_label_out_of_the_engine_text() {
    use crate::rewrite_for_squash;
    let odd = "a\"b$c\\d`e\nnext";
    let plans = [
        plan(
            &[("r.io/base:1", PIN)],
            &["a-12345.repo"],
            Some("Dockerfile-x-1-2"),
            &[("release", "2"), ("odd key", odd), ("release", "3")],
        ),
        plan(&[("r.io/base:1", PIN)], &[], None, &[]),
        plan(&[("r.io/base:1", PIN)], &[], Some("Dockerfile-x-1-2"), &[]),
    ];
    // (input, engine text per plan)
    let cases: &[(&str, [&str; 3])] = &[
        (
            "FROM r.io/base:1\nUSER 1001\nCMD [\"run\"]\n\n# end\n",
            [
                "FROM r.io/base@sha256:00\nCOPY a-12345.repo /etc/yum.repos.d/\nUSER 1001\nCMD [\"run\"]\n\
                 USER root\nRUN rm -f /etc/yum.repos.d/a-12345.repo\nUSER 1001\n\n# end\n",
                "FROM r.io/base@sha256:00\nUSER 1001\nCMD [\"run\"]\n\n# end\n",
                "FROM r.io/base@sha256:00\nUSER 1001\nCMD [\"run\"]\n\n# end\n",
            ],
        ),
        (
            "# escape=`\r\nFROM scratch\r\nADD r.tar /",
            [
                "# escape=`\r\nFROM scratch\r\nADD r.tar /",
                "# escape=`\r\nFROM scratch\r\nADD r.tar /",
                "# escape=`\r\nFROM scratch\r\nADD r.tar /",
            ],
        ),
    ];
    for (input, engine) in cases {
        let dockerfile = Dockerfile::parse(input).unwrap();
        for (plan, engine) in plans.iter().zip(engine) {
            let split = rewrite_for_squash(&dockerfile, plan, &BTreeMap::new(), &[]).unwrap();
            assert_eq!(split.for_engine, *engine, "{input:?}");
            assert_eq!(
                split.stored,
                rewrite(&dockerfile, plan).unwrap(),
                "{input:?}"
            );
            let last_lines: Vec<&str> = split
                .stored
                .lines()
                .filter(|line| line.starts_with("COPY Dockerfile-") || line.starts_with("LABEL"))
                .collect();
            let expected: Vec<&str> = [&split.buildinfo_instruction, &split.label_instruction]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            assert_eq!(last_lines, expected, "{input:?}");
        }
    }
    let split = rewrite_for_squash(
        &Dockerfile::parse("FROM r.io/base:1\n").unwrap(),
        &plans[0],
        &BTreeMap::new(),
        &[],
    )
    .unwrap();
    assert_eq!(
        split.labels,
        [
            ("release".to_owned(), "2".to_owned()),
            ("odd key".to_owned(), "a\"b$c\\d`e\\nnext".to_owned()),
            ("release".to_owned(), "3".to_owned()),
        ]
    );
    assert_eq!(
        split.buildinfo_instruction.as_deref(),
        Some("COPY Dockerfile-x-1-2 /root/buildinfo/Dockerfile-x-1-2")
    );
    assert_eq!(
        split.label_instruction.as_deref(),
        Some("LABEL release=\"2\" \"odd key\"=\"a\\\"b\\$c\\\\d`e\\\\nnext\" release=\"3\"")
    );
    // A bad plan is refused as `rewrite` refuses it.
    let mut bad = plans[0].clone();
    bad.buildinfo_dockerfile = Some("../x".into());
    assert!(
        rewrite_for_squash(
            &Dockerfile::parse("FROM r.io/base:1\n").unwrap(),
            &bad,
            &BTreeMap::new(),
            &[]
        )
        .is_err()
    );
}

/// The final stage's own LABELs go to the squash when their values are certain and the stage
/// keeps another instruction: (input, parent env) → engine text, the history entries and the
/// labels the squash writes (own ones in order, then the injected one). The stored text is
/// always the whole rewrite.
#[test]
fn the_final_stages_own_labels_go_to_the_squash_when_certain() {
    use crate::rewrite_for_squash;
    let plan = plan(&[("r.io/base:1", PIN)], &[], None, &[("release", "2")]);
    type Case<'a> = (
        &'a str,
        &'a [&'a str],
        &'a str,
        &'a [&'a str],
        &'a [(&'a str, &'a str)],
    );
    let cases: &[Case] = &[
        // One LABEL before a RUN: left out, its values as the builder stores them.
        (
            "FROM r.io/base:1\nLABEL name=\"n\" version=1.0\nRUN x\n",
            &[],
            "FROM r.io/base@sha256:00\nRUN x\n",
            &["LABEL name=\"n\" version=1.0"],
            &[("name", "n"), ("version", "1.0"), ("release", "2")],
        ),
        // ARG, ENV and the parent's environment in scope at each LABEL; a continuation, an
        // indented LABEL, a later one of a name winning; the last line without a newline.
        (
            "FROM r.io/base:1\nARG V=1\nENV N=a\nLABEL n=$N \\\n  v=${V}\nENV N=b\n  label n=$N p=\"$P x\"\nRUN y\nLABEL last=1",
            &["P=from-parent", "N=parent"],
            "FROM r.io/base@sha256:00\nARG V=1\nENV N=a\nENV N=b\n  RUN y\n",
            &[
                "LABEL n=$N   v=${V}",
                "LABEL n=$N p=\"$P x\"",
                "LABEL last=1",
            ],
            &[
                ("n", "a"),
                ("v", "1"),
                ("n", "b"),
                ("p", "from-parent x"),
                ("last", "1"),
                ("release", "2"),
            ],
        ),
        // A variable nothing sets (a build argument?): the builder runs every LABEL.
        (
            "FROM r.io/base:1\nARG X\nLABEL a=1\nLABEL b=$X\nRUN x\n",
            &[],
            "FROM r.io/base@sha256:00\nARG X\nLABEL a=1\nLABEL b=$X\nRUN x\n",
            &[],
            &[("release", "2")],
        ),
        // Nothing else in the stage: the builder keeps its LABEL (never an image equal to
        // its parent).
        (
            "FROM r.io/base:1\nLABEL a=1\n",
            &[],
            "FROM r.io/base@sha256:00\nLABEL a=1\n",
            &[],
            &[("release", "2")],
        ),
        // Only the final stage's own: an earlier stage's LABEL is built (and inherited).
        (
            "FROM r.io/base:1 AS b\nLABEL a=1\nFROM b\nLABEL c=2\nUSER 1\n",
            &[],
            "FROM r.io/base@sha256:00 AS b\nLABEL a=1\nFROM b\nUSER 1\n",
            &["LABEL c=2"],
            &[("c", "2"), ("release", "2")],
        ),
        // ONBUILD LABEL is not a LABEL of this image.
        (
            "FROM r.io/base:1\nONBUILD LABEL a=1\n",
            &[],
            "FROM r.io/base@sha256:00\nONBUILD LABEL a=1\n",
            &[],
            &[("release", "2")],
        ),
    ];
    for (input, env, engine, own, labels) in cases {
        let dockerfile = Dockerfile::parse(input).unwrap();
        let env: Vec<String> = env.iter().map(|pair| pair.to_string()).collect();
        let split = rewrite_for_squash(&dockerfile, &plan, &BTreeMap::new(), &env).unwrap();
        assert_eq!(split.for_engine, *engine, "{input:?}");
        assert_eq!(
            split.stored,
            rewrite(&dockerfile, &plan).unwrap(),
            "{input:?}"
        );
        assert_eq!(split.own_label_instructions, *own, "{input:?}");
        let expected: Vec<(String, String)> = labels
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        assert_eq!(split.labels, expected, "{input:?}");
        // The engine's labels with the squash's written over them in order are the
        // builder's for the whole rewrite.
        let mut over = Dockerfile::parse(&split.for_engine)
            .unwrap()
            .final_stage_labels_with_env(&env);
        over.extend(split.labels.iter().cloned());
        assert_eq!(
            over,
            Dockerfile::parse(&split.stored)
                .unwrap()
                .final_stage_labels_with_env(&env),
            "{input:?}"
        );
    }
}

/// (certain, LABELs, other instructions) → whether the squash writes the LABELs.
#[test]
fn when_the_squash_writes_the_final_stages_labels() {
    use crate::labels_can_be_left_to_the_squash;
    for (certain, labels, others, expected) in [
        (true, 1, 1, true),
        (true, 3, 5, true),
        (false, 1, 1, false),
        (true, 0, 1, false),
        (true, 2, 0, false),
        (false, 0, 0, false),
    ] {
        assert_eq!(
            labels_can_be_left_to_the_squash(certain, labels, others),
            expected,
            "{certain} {labels} {others}"
        );
    }
}
