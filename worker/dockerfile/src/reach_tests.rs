//! Tables for what a Dockerfile makes the builder fetch (`reach`) and for pinning the images
//! of flags in the rewrite.

use crate::{Dockerfile, ImageFlag, RewriteError, RewritePlan, is_remote_source, rewrite};
use std::collections::BTreeMap;

fn parse(text: &str) -> Dockerfile {
    Dockerfile::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

/// (flag, line, written, resolved) of every flag image.
fn flag_images(text: &str) -> Vec<(ImageFlag, usize, String, String)> {
    parse(text)
        .flag_images()
        .into_iter()
        .map(|image| (image.flag, image.line, image.written, image.resolved))
        .collect()
}

#[test]
fn flags_that_name_images_and_not_stages() {
    use ImageFlag::*;
    type Found<'a> = (ImageFlag, usize, &'a str, &'a str);
    let cases: &[(&str, &[Found])] = &[
        ("FROM a AS build\nFROM b\nCOPY --from=build /x /y\n", &[]),
        // Stage names are case-insensitive; a number is a stage index.
        ("FROM a AS build\nFROM b\nCOPY --from=BUILD /x /y\n", &[]),
        ("FROM a\nFROM b\nCOPY --from=0 /x /y\n", &[]),
        (
            "FROM a\nCOPY --from=evil.example.net/tools:1 /x /y\n",
            &[(
                CopyFrom,
                2,
                "evil.example.net/tools:1",
                "evil.example.net/tools:1",
            )],
        ),
        // Only an earlier stage is a stage: the classic builder pulls a later one's name.
        (
            "FROM a\nCOPY --from=later /x /y\nFROM b AS later\n",
            &[(CopyFrom, 2, "later", "later")],
        ),
        // The stage's own name is not finished yet either.
        (
            "FROM a AS self\nCOPY --from=self /x /y\n",
            &[(CopyFrom, 2, "self", "self")],
        ),
        (
            "ARG T=evil.example.net/t:1\nFROM a\nCOPY --from=$T /x /y\n",
            &[(CopyFrom, 3, "$T", "evil.example.net/t:1")],
        ),
        (
            "FROM a\nCOPY --chown=0:0 --from=\"q.example.org/x\" /x /y\n",
            &[(CopyFrom, 2, "q.example.org/x", "q.example.org/x")],
        ),
        (
            "FROM a\nRUN --mount=type=bind,from=evil.example.net/x,target=/x true\n",
            &[(MountFrom, 2, "evil.example.net/x", "evil.example.net/x")],
        ),
        (
            "FROM a AS build\nFROM b\nRUN --mount=type=cache,target=/c --mount=type=bind,FROM=build,target=/b true\n",
            &[],
        ),
        (
            "FROM a\nRUN --mount=type=cache,target=/c,from=c.example.org/cache:1 true\n",
            &[(
                MountFrom,
                2,
                "c.example.org/cache:1",
                "c.example.org/cache:1",
            )],
        ),
        // Triggers run in other builds; `--from` means nothing to ADD or to RUN.
        (
            "FROM a\nONBUILD COPY --from=evil.example.net/x /a /b\n",
            &[],
        ),
        (
            "FROM a\nRUN --from=e.io/x true\nADD --from=e.io/y a b\n",
            &[],
        ),
        (
            "FROM a\nCOPY \\\n  --from=e.io/x \\\n  /a /b\n",
            &[(CopyFrom, 2, "e.io/x", "e.io/x")],
        ),
    ];
    for (text, expect) in cases {
        let expect: Vec<(ImageFlag, usize, String, String)> = expect
            .iter()
            .map(|(flag, line, written, resolved)| {
                (*flag, *line, written.to_string(), resolved.to_string())
            })
            .collect();
        assert_eq!(flag_images(text), expect, "{text:?}");
    }
}

#[test]
fn remote_add_sources() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [(usize, &'a str)]);
    let cases: &[Case] = &[
        (
            "FROM a\nADD https://e.io/a /a\n",
            &[],
            &[(2, "https://e.io/a")],
        ),
        (
            "FROM a\nADD [\"http://e.io/a\", \"/a\"]\n",
            &[],
            &[(2, "http://e.io/a")],
        ),
        (
            "FROM a\nADD local.tgz https://e.io/b /dest/\n",
            &[],
            &[(2, "https://e.io/b")],
        ),
        ("FROM a\nADD local.tgz /x\nADD /abs /y\n", &[], &[]),
        (
            "FROM a\nADD git@github.com:a/b.git /src\n",
            &[],
            &[(2, "git@github.com:a/b.git")],
        ),
        (
            "FROM a\nADD HTTP://E.IO/a /a\n",
            &[],
            &[(2, "HTTP://E.IO/a")],
        ),
        // The destination is not fetched; COPY fetches nothing.
        (
            "FROM a\nADD local https://e.io/\nCOPY https://e.io/a /a\n",
            &[],
            &[],
        ),
        (
            "FROM a\nARG U=http://e.io/x\nADD $U /x\n",
            &[],
            &[(3, "http://e.io/x")],
        ),
        (
            "ARG U=http://e.io\nFROM a\nARG U\nADD ${U}/f /f\n",
            &[],
            &[(4, "http://e.io/f")],
        ),
        // Without the ARG in the stage, the meta ARG is not in scope.
        ("ARG U=http://e.io\nFROM a\nADD ${U}/f /f\n", &[], &[]),
        // The parent image's environment.
        (
            "FROM a\nADD ${SRC}/f /f\n",
            &[("a", "SRC=https://e.io")],
            &[(2, "https://e.io/f")],
        ),
        ("FROM a\nADD ${SRC}/f /f\n", &[], &[]),
        // The Dockerfile's ENV wins over the parent's.
        (
            "FROM a\nENV SRC=local\nADD ${SRC}/f /f\n",
            &[("a", "SRC=https://e.io")],
            &[],
        ),
        // A stage built on an earlier one keeps its ENV and its parent's environment.
        (
            "FROM a AS one\nENV U=https://e.io/f\nFROM one\nADD $U /f\n",
            &[],
            &[(4, "https://e.io/f")],
        ),
        ("FROM a\nADD <<EOF /x\nhttp://e.io\nEOF\n", &[], &[]),
        ("FROM a\nONBUILD ADD https://e.io/a /a\n", &[], &[]),
    ];
    for (text, env, expect) in cases {
        let mut envs: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (parent, pair) in *env {
            envs.entry(parent.to_string())
                .or_default()
                .push(pair.to_string());
        }
        let found: Vec<(usize, String)> = parse(text)
            .remote_sources(&envs)
            .into_iter()
            .map(|source| (source.line, source.resolved))
            .collect();
        let expect: Vec<(usize, String)> = expect
            .iter()
            .map(|(line, url)| (*line, url.to_string()))
            .collect();
        assert_eq!(found, expect, "{text:?} with {env:?}");
    }
}

#[test]
fn remote_source_words() {
    for (word, remote) in [
        ("https://e.io/a", true),
        ("http://e.io", true),
        ("ftp://e.io/a", true),
        ("git+ssh://e.io/a", true),
        ("git@github.com:a/b", true),
        ("GIT@x:y", true),
        ("local/file", false),
        ("/abs/path", false),
        ("://nothing", false),
        ("1http://x", false),
        ("a:b", false),
        ("", false),
    ] {
        assert_eq!(is_remote_source(word), remote, "{word:?}");
    }
}

#[test]
fn parent_triggers() {
    let dockerfile = parse("FROM a AS tools\nFROM b\n");
    let triggers = [
        "COPY --from=tools /a /b",
        "COPY --from=e.io/x:1 /a /b",
        "ADD $SRC /s",
        "RUN echo hello",
        "ADD https://h.example/f /f",
        "RUN --mount=type=bind,from=m.io/y,target=/y true",
        "COPY --from=$T /a /b",
    ]
    .map(str::to_owned);
    let reach = dockerfile
        .trigger_reach(1, &triggers, &["SRC=http://e.io/s".to_owned()])
        .unwrap();
    let images: Vec<(ImageFlag, usize, &str, &str)> = reach
        .images
        .iter()
        .map(|image| {
            (
                image.flag,
                image.line,
                image.written.as_str(),
                image.resolved.as_str(),
            )
        })
        .collect();
    assert_eq!(
        images,
        [
            (ImageFlag::CopyFrom, 2, "e.io/x:1", "e.io/x:1"),
            (ImageFlag::MountFrom, 6, "m.io/y", "m.io/y"),
            // A trigger's variable is not substituted: the reference is refused as written.
            (ImageFlag::CopyFrom, 7, "$T", "$T"),
        ]
    );
    assert_eq!(reach.images[0].instruction, "COPY --from=e.io/x:1 /a /b");
    let sources: Vec<(usize, &str)> = reach
        .sources
        .iter()
        .map(|source| (source.line, source.resolved.as_str()))
        .collect();
    assert_eq!(sources, [(3, "http://e.io/s"), (5, "https://h.example/f")]);
    // In the first stage, `tools` is no stage yet: an image.
    let first = dockerfile.trigger_reach(0, &triggers[..1], &[]).unwrap();
    assert_eq!(first.images.len(), 1);
    assert!(
        dockerfile
            .trigger_reach(1, &["BOGUS x".to_owned()], &[])
            .is_err()
    );
}

const BASE_PIN: &str = "r.io/base@sha256:00";
const TOOLS_PIN: &str = "r.io/tools@sha256:11";

fn pins() -> RewritePlan {
    RewritePlan {
        pins: BTreeMap::from([
            ("r.io/base:1".to_owned(), BASE_PIN.to_owned()),
            ("r.io/tools:2".to_owned(), TOOLS_PIN.to_owned()),
        ]),
        ..RewritePlan::default()
    }
}

#[test]
fn flag_images_are_pinned_in_place() {
    let cases: &[(&str, &str)] = &[
        (
            "FROM r.io/base:1\nCOPY --from=r.io/tools:2 /a /b\n",
            "FROM r.io/base@sha256:00\nCOPY --from=r.io/tools@sha256:11 /a /b\n",
        ),
        (
            "FROM r.io/base:1\nCOPY --chown=0 --from=\"r.io/tools:2\" /a /b\r\n",
            "FROM r.io/base@sha256:00\nCOPY --chown=0 --from=r.io/tools@sha256:11 /a /b\r\n",
        ),
        (
            "FROM r.io/base:1\nCOPY \\\n  --from=r.io/tools:2 /a /b\n",
            "FROM r.io/base@sha256:00\nCOPY \\\n  --from=r.io/tools@sha256:11 /a /b\n",
        ),
        (
            "FROM r.io/base:1\nRUN --mount=type=bind,from=r.io/tools:2,target=/t true\n",
            "FROM r.io/base@sha256:00\nRUN --mount=type=bind,from=r.io/tools@sha256:11,target=/t true\n",
        ),
        (
            "FROM r.io/base:1 AS b\nFROM b\nCOPY --from=b /a /b\nCOPY --from=0 /a /b\n",
            "FROM r.io/base@sha256:00 AS b\nFROM b\nCOPY --from=b /a /b\nCOPY --from=0 /a /b\n",
        ),
    ];
    for (input, expect) in cases {
        let got = rewrite(&parse(input), &pins()).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(got, *expect, "{input:?}");
    }
    // Pins to themselves change nothing.
    let text = "FROM r.io/base:1\nCOPY --from=r.io/tools:2 /a /b\n";
    let same = RewritePlan {
        pins: BTreeMap::from([
            ("r.io/base:1".to_owned(), "r.io/base:1".to_owned()),
            ("r.io/tools:2".to_owned(), "r.io/tools:2".to_owned()),
        ]),
        ..RewritePlan::default()
    };
    assert_eq!(rewrite(&parse(text), &same).unwrap(), text);
}

#[test]
fn flag_images_need_a_plain_pin() {
    let missing = rewrite(
        &parse("FROM r.io/base:1\nCOPY --from=e.io/x /a /b\n"),
        &pins(),
    )
    .unwrap_err();
    assert_eq!(
        missing,
        RewriteError::MissingPin {
            reference: "e.io/x".into(),
            line: 2
        }
    );
    let mut bad = pins();
    bad.pins.insert("r.io/tools:2".into(), "x /etc".into());
    let text = "FROM r.io/base:1\nCOPY --from=r.io/tools:2 /a /b\n";
    assert!(matches!(
        rewrite(&parse(text), &bad),
        Err(RewriteError::BadPin { .. })
    ));
    let quoted = "FROM r.io/base:1\nRUN --mount=\"type=bind,from=r.io/tools:2,target=/a b\" true\n";
    assert_eq!(
        rewrite(&parse(quoted), &pins()).unwrap_err(),
        RewriteError::UnpinnableMount { line: 2 }
    );
}
