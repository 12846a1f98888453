//! Table tests of `Dockerfile::parse` and its queries. Cases marked "engine" encode what the
//! Docker Engine on the OSBS machines (20.10, classic builder) did with the same input.

use crate::{Dockerfile, Keyword, ParseErrorKind};
use std::collections::BTreeMap;

fn parse(text: &str) -> Dockerfile {
    Dockerfile::parse(text).unwrap_or_else(|error| panic!("{text:?}: {error}"))
}

fn labels(text: &str) -> Vec<(String, String)> {
    parse(text).final_stage_labels().into_iter().collect()
}

fn pairs(expect: &[(&str, &str)]) -> Vec<(String, String)> {
    expect
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// (keyword, first line, last line, logical text) of every instruction.
fn outline(text: &str) -> Vec<(Keyword, usize, usize, String)> {
    parse(text)
        .instructions()
        .iter()
        .map(|i| (i.keyword, i.line, i.end_line, i.text.clone()))
        .collect()
}

#[test]
fn instructions_and_their_lines() {
    use Keyword::*;
    type Outline<'a> = (Keyword, usize, usize, &'a str);
    let cases: &[(&str, &[Outline])] = &[
        (
            "FROM a\nRUN x\n",
            &[(From, 1, 1, "FROM a"), (Run, 2, 2, "RUN x")],
        ),
        (
            "# comment\n\n  from a  \nrun \\\n  x \\\n  y\n",
            &[(From, 3, 3, "from a  "), (Run, 4, 6, "run   x   y")],
        ),
        (
            // Comment and blank lines inside a continuation are dropped (engine: labels
            // a, b, c and d all set).
            "FROM a\nLABEL a=1 \\\n# comment \\\n  b=2 \\\n\n   \n  c=3\nLABEL d=4\n",
            &[
                (From, 1, 1, "FROM a"),
                (Label, 2, 7, "LABEL a=1   b=2   c=3"),
                (Label, 8, 8, "LABEL d=4"),
            ],
        ),
        (
            // A continuation at the end of the file ends the instruction (engine).
            "FROM a\nLABEL a=1 \\",
            &[(From, 1, 1, "FROM a"), (Label, 2, 2, "LABEL a=1 ")],
        ),
        (
            // `\\` at the end is an escaped backslash, not a continuation (engine).
            "FROM a\nLABEL a=x\\\\\nLABEL b=2\n",
            &[
                (From, 1, 1, "FROM a"),
                (Label, 2, 2, "LABEL a=x\\\\"),
                (Label, 3, 3, "LABEL b=2"),
            ],
        ),
        (
            "FROM a\r\nLABEL a=x \\\r\n b=2\r\n",
            &[(From, 1, 1, "FROM a"), (Label, 2, 3, "LABEL a=x  b=2")],
        ),
        (
            "# escape=`\nFROM a\nRUN dir `\n  c:\\ `\n  && x\n",
            &[(From, 2, 2, "FROM a"), (Run, 3, 5, "RUN dir   c:\\   && x")],
        ),
        (
            "\u{feff}# escape=`\nFROM a\nRUN x `\n y\n",
            &[(From, 2, 2, "FROM a"), (Run, 3, 4, "RUN x  y")],
        ),
        (
            "FROM a\nONBUILD RUN make \\\n  install\n",
            &[
                (From, 1, 1, "FROM a"),
                (Onbuild, 2, 3, "ONBUILD RUN make   install"),
            ],
        ),
    ];
    for (input, expect) in cases {
        let expect: Vec<(Keyword, usize, usize, String)> = expect
            .iter()
            .map(|(k, s, e, t)| (*k, *s, *e, t.to_string()))
            .collect();
        assert_eq!(outline(input), expect, "{input:?}");
    }
}

#[test]
fn spans_cover_each_instruction_verbatim() {
    let text = "# escape=\\\nARG B=x\n\nFROM $B AS one\nRUN a \\\n  # note\n  b\n\n# between\nRUN <<EOF\nbody\nEOF\nCMD [\"x\"]";
    let dockerfile = parse(text);
    let spans: Vec<&str> = dockerfile
        .instructions()
        .iter()
        .map(|i| &text[i.span.clone()])
        .collect();
    assert_eq!(
        spans,
        [
            "ARG B=x\n",
            "FROM $B AS one\n",
            "RUN a \\\n  # note\n  b\n",
            "RUN <<EOF\nbody\nEOF\n",
            "CMD [\"x\"]"
        ]
    );
}

#[test]
fn parser_directives() {
    let cases: &[(&str, char, Option<&str>)] = &[
        ("# escape=`\nFROM a\n", '`', None),
        // Leading spaces before the directive are allowed (engine).
        (" # escape=`\nFROM a\n", '`', None),
        ("#escape = ` \nFROM a\n", '`', None),
        ("# ESCAPE=`\nFROM a\n", '`', None),
        (
            "# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n",
            '`',
            Some("docker/dockerfile:1"),
        ),
        // After a comment or a blank line it is only a comment (engine).
        ("# hello\n# escape=`\nFROM a\n", '\\', None),
        ("\n# escape=`\nFROM a\n", '\\', None),
        ("FROM a\n# escape=`\n", '\\', None),
    ];
    for (input, escape, syntax) in cases {
        let dockerfile = parse(input);
        assert_eq!(dockerfile.escape(), *escape, "{input:?}");
        assert_eq!(dockerfile.syntax(), *syntax, "{input:?}");
    }
}

#[test]
fn from_lines() {
    let text = "ARG REGISTRY=registry.fedoraproject.org\nARG TAG\nARG BASE=${REGISTRY}/fedora\n\
                FROM --platform=$BUILDPLATFORM ${BASE}:${TAG:-41} AS Build\n\
                FROM build AS test\n\
                FROM scratch\n\
                FROM \"quay.io/x/y:1\"\n\
                FROM BUILD\n\
                FROM 0\n";
    let dockerfile = parse(text);
    type Summary<'a> = (
        usize,
        Option<&'a str>,
        &'a str,
        &'a str,
        bool,
        Option<usize>,
    );
    let summary: Vec<Summary> = dockerfile
        .stages()
        .iter()
        .map(|s| {
            (
                s.index,
                s.alias.as_deref(),
                s.image.as_str(),
                s.resolved.as_str(),
                s.is_scratch,
                s.base_stage,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                0,
                Some("build"),
                "${BASE}:${TAG:-41}",
                "registry.fedoraproject.org/fedora:41",
                false,
                None
            ),
            (1, Some("test"), "build", "build", false, Some(0)),
            (2, None, "scratch", "scratch", true, None),
            (3, None, "\"quay.io/x/y:1\"", "quay.io/x/y:1", false, None),
            // Stage names match case-insensitively (engine).
            (4, None, "BUILD", "BUILD", false, Some(0)),
            // FROM takes no stage index: `0` is an image name (engine: it tried to pull `0`).
            (5, None, "0", "0", false, None),
        ]
    );
    assert_eq!(
        dockerfile.stages()[0].platform.as_deref(),
        Some("$BUILDPLATFORM")
    );
    let parents: Vec<(usize, String, String)> = dockerfile
        .parent_images()
        .into_iter()
        .map(|p| (p.stage, p.written, p.resolved))
        .collect();
    assert_eq!(
        parents,
        [
            (
                0,
                "${BASE}:${TAG:-41}".into(),
                "registry.fedoraproject.org/fedora:41".into()
            ),
            (3, "\"quay.io/x/y:1\"".into(), "quay.io/x/y:1".into()),
            (5, "0".into(), "0".into()),
        ]
    );
    assert_eq!(
        dockerfile.meta_args(),
        [
            (
                "REGISTRY".to_owned(),
                Some("registry.fedoraproject.org".to_owned())
            ),
            ("TAG".to_owned(), None),
            (
                "BASE".to_owned(),
                Some("registry.fedoraproject.org/fedora".to_owned())
            ),
        ]
    );
}

#[test]
fn label_values_as_docker_stores_them() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            // engine: {"a":"q\"b\\s$d\\n t\tx","b":"s$x\\","c":"\\x","d":"back`tick","e":"un\"q",
            // "f":"\r","g":"\ufeffbom","h":"nul\u0000x","i":"\u0085nel\u00a0"}
            "FROM a\nLABEL a=\"q\\\"b\\\\s\\$d\\n t\tx\" b='s$x\\' c=\"\\x\" d=\"back`tick\" e=un\\\"q f=\"\r\" g=\"\u{feff}bom\" h=\"nul\0x\" i=\"\u{85}nel\u{a0}\"\n",
            &[
                ("a", "q\"b\\s$d\\n t\tx"),
                ("b", "s$x\\"),
                ("c", "\\x"),
                ("d", "back`tick"),
                ("e", "un\"q"),
                ("f", "\r"),
                ("g", "\u{feff}bom"),
                ("h", "nul\0x"),
                ("i", "\u{85}nel\u{a0}"),
            ],
        ),
        (
            // The old `LABEL name value` form keeps inner spaces (engine).
            "FROM a\nLABEL key  value with  spaces \"q\"\nLABEL k2 \"v2\" \n",
            &[("k2", "v2"), ("key", "value with  spaces q")],
        ),
        (
            // ARG defaults before FROM reach a stage only when it declares the ARG again
            // (engine: b=dfx-base, t=xy).
            "ARG B=base\nARG T\nFROM ${B}:${T:-1}\nARG B\nLABEL b=$B t=x${T}y\n",
            &[("b", "base"), ("t", "xy")],
        ),
        (
            // ENV comes along with FROM <stage>; ARG does not (engine: d="1-").
            "FROM x AS a\nENV A=1 B=\"two words\"\nARG C=3\nLABEL a=$A b=\"$B\" c=${C}\nFROM a\nLABEL d=\"$A-$C\"\n",
            &[("a", "1"), ("b", "two words"), ("c", "3"), ("d", "1-")],
        ),
        (
            // ENV wins over ARG; all pairs of one ENV see the environment from before it.
            "FROM x\nARG V=arg\nENV V=env\nENV W=$V V=new X=$V\nLABEL v=$V w=$W x=$X\n",
            &[("v", "new"), ("w", "env"), ("x", "env")],
        ),
        (
            "# escape=`\nFROM x\nLABEL a=\"x`\"y\" b=\"c\\d\" `\n  c=`$HOME\n",
            &[("a", "x\"y"), ("b", "c\\d"), ("c", "$HOME")],
        ),
        (
            // LABELs of an ONBUILD trigger belong to the child image, not this one.
            "FROM x\nLABEL a=1\nONBUILD LABEL b=2\n",
            &[("a", "1")],
        ),
        ("FROM x\nLABEL a=1\nFROM y\nLABEL b=2\n", &[("b", "2")]),
    ];
    for (input, expect) in cases {
        assert_eq!(labels(input), pairs(expect), "{input:?}");
    }
}

#[test]
fn labels_with_the_parent_environment() {
    let dockerfile =
        parse("FROM fedora\nENV NAME=httpd\nLABEL name=\"$FGC/$NAME\" version=${VERSION:-0}\n");
    assert_eq!(
        dockerfile.final_stage_labels(),
        BTreeMap::from([
            ("name".into(), "/httpd".into()),
            ("version".into(), "0".into())
        ])
    );
    let env = [
        "FGC=f41".to_owned(),
        "VERSION=2".to_owned(),
        "PATH=/usr/bin".to_owned(),
    ];
    assert_eq!(
        dockerfile.final_stage_labels_with_env(&env),
        BTreeMap::from([
            ("name".into(), "f41/httpd".into()),
            ("version".into(), "2".into())
        ])
    );
    // A scratch stage has no parent environment.
    let scratch = parse("FROM scratch\nLABEL v=x$FGC\n");
    assert_eq!(scratch.final_stage_labels_with_env(&env)["v"], "x");
}

#[test]
fn users_at_the_end_of_each_stage() {
    let text = "FROM a AS one\nUSER 1001\nFROM one AS two\nRUN x\nFROM b\nUSER app\nUSER root\nONBUILD USER nobody\nFROM c\nARG U=svc\nUSER ${U}:wheel\n";
    assert_eq!(
        parse(text).stage_users(),
        [
            Some("1001".into()),
            Some("1001".into()),
            Some("root".into()),
            Some("svc:wheel".into())
        ]
    );
    assert_eq!(parse("FROM a\nRUN x\n").stage_users(), [None]);
}

#[test]
fn heredocs() {
    let text = "FROM a\nRUN <<EOF\necho one\nEOF\nRUN <<-\"END\" bash && cat <<two\n\techo $HOME\n\tEND\nsecond\ntwo\nCOPY <<EOF /etc/motd\nhello\n  EOF\nEOF\nONBUILD RUN <<X\nx\nX\nRUN [\"sh\", \"-c\", \"cat <<EOF\"]\nLABEL done=1\n";
    let dockerfile = parse(text);
    type Found<'a> = (&'a str, bool, bool, &'a str);
    let found: Vec<(usize, Vec<Found>)> = dockerfile
        .instructions()
        .iter()
        .map(|i| {
            (
                i.line,
                i.heredocs
                    .iter()
                    .map(|h| (h.name.as_str(), h.chomp, h.expand, h.content.as_str()))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (1, vec![]),
            (2, vec![("EOF", false, true, "echo one\n")]),
            (
                5,
                vec![
                    ("END", true, false, "\techo $HOME\n"),
                    ("two", false, true, "second\n")
                ]
            ),
            (10, vec![("EOF", false, true, "hello\n  EOF\n")]),
            (14, vec![("X", false, true, "x\n")]),
            (17, vec![]),
            (18, vec![]),
        ]
    );
    assert_eq!(dockerfile.final_stage_labels()["done"], "1");
}

#[test]
fn heredoc_bodies_are_not_instructions() {
    // A body line that looks like an instruction stays in the body.
    let text = "FROM a\nRUN <<EOF\nFROM evil\nLABEL x=1\nEOF\n";
    let dockerfile = parse(text);
    assert_eq!(dockerfile.stages().len(), 1);
    assert!(dockerfile.final_stage_labels().is_empty());
}

#[test]
fn exec_and_shell_forms() {
    let text = "FROM a\nCMD [\"/bin/sh\", \"-c\", \"echo \\\"hi\\\" \\\\ $X\"]\nENTRYPOINT [ \"tini\" , \"--\" ]\nCMD [bad json\nRUN [\"a\"] trailing\nSHELL [\"/bin/bash\", \"-o\", \"pipefail\", \"-c\"]\n";
    let forms: Vec<Option<Vec<String>>> = parse(text)
        .instructions()
        .iter()
        .map(|i| i.exec_form.clone())
        .collect();
    let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        forms,
        [
            None,
            strings(&["/bin/sh", "-c", "echo \"hi\" \\ $X"]),
            strings(&["tini", "--"]),
            None,
            None,
            strings(&["/bin/bash", "-o", "pipefail", "-c"]),
        ]
    );
}

#[test]
fn errors_name_the_line_and_the_fix() {
    let cases: &[(&str, usize, ParseErrorKind)] = &[
        ("", 1, ParseErrorKind::NoFrom),
        ("# only a comment\n\n", 2, ParseErrorKind::NoFrom),
        ("ARG X=1\n", 1, ParseErrorKind::NoFrom),
        (
            "ARG X=1\nRUN x\nFROM a\n",
            2,
            ParseErrorKind::BeforeFrom {
                keyword: "RUN".into(),
            },
        ),
        (
            "LABEL a=1\nFROM a\n",
            1,
            ParseErrorKind::BeforeFrom {
                keyword: "LABEL".into(),
            },
        ),
        (
            "FROM a\nFRM b\n",
            2,
            ParseErrorKind::UnknownInstruction { word: "FRM".into() },
        ),
        (
            "FROM a\nRUN <<EOF\necho\n",
            2,
            ParseErrorKind::UnterminatedHeredoc { name: "EOF".into() },
        ),
        (
            "FROM a\nRUN <<A <<B\na\nA\nb\n",
            2,
            ParseErrorKind::UnterminatedHeredoc { name: "B".into() },
        ),
        (
            "# escape=x\nFROM a\n",
            1,
            ParseErrorKind::BadEscapeDirective { value: "x".into() },
        ),
        (
            "# escape=\\\\\nFROM a\n",
            1,
            ParseErrorKind::BadEscapeDirective {
                value: "\\\\".into(),
            },
        ),
        (
            "# escape=\\\n# escape=`\nFROM a\n",
            2,
            ParseErrorKind::DuplicateDirective {
                name: "escape".into(),
            },
        ),
        (
            "# syntax=a\n# syntax=b\nFROM a\n",
            2,
            ParseErrorKind::DuplicateDirective {
                name: "syntax".into(),
            },
        ),
        ("FROM\n", 1, ParseErrorKind::FromWithoutImage),
        (
            "FROM --platform=linux/amd64\n",
            1,
            ParseErrorKind::FromWithoutImage,
        ),
        (
            "FROM a b\n",
            1,
            ParseErrorKind::FromArguments { args: "a b".into() },
        ),
        (
            "FROM a AS b c\n",
            1,
            ParseErrorKind::FromArguments {
                args: "a AS b c".into(),
            },
        ),
        (
            "FROM a AS 1st\n",
            1,
            ParseErrorKind::BadStageName { name: "1st".into() },
        ),
        (
            "FROM a AS x\nFROM b AS X\n",
            2,
            ParseErrorKind::DuplicateStageName { name: "x".into() },
        ),
        (
            "ARG BASE\nFROM ${BASE}\n",
            2,
            ParseErrorKind::EmptyImage {
                written: "${BASE}".into(),
            },
        ),
        (
            "FROM --pull=always a\n",
            1,
            ParseErrorKind::BadFlag {
                keyword: "FROM".into(),
                flag: "--pull=always".into(),
            },
        ),
        (
            "FROM --platform a\n",
            1,
            ParseErrorKind::BadFlag {
                keyword: "FROM".into(),
                flag: "--platform".into(),
            },
        ),
        (
            "FROM a\nLABEL\n",
            2,
            ParseErrorKind::MissingArgument {
                keyword: "LABEL".into(),
            },
        ),
        (
            "FROM a\nUSER\n",
            2,
            ParseErrorKind::MissingArgument {
                keyword: "USER".into(),
            },
        ),
        (
            "FROM a\nONBUILD\n",
            2,
            ParseErrorKind::MissingArgument {
                keyword: "ONBUILD".into(),
            },
        ),
        (
            "FROM a\nENV ONLYNAME\n",
            2,
            ParseErrorKind::NameWithoutValue {
                keyword: "ENV".into(),
                args: "ONLYNAME".into(),
            },
        ),
        (
            "FROM a\nLABEL a=1 b\n",
            2,
            ParseErrorKind::MissingEquals {
                keyword: "LABEL".into(),
                word: "b".into(),
            },
        ),
        (
            "FROM a\nLABEL =x\n",
            2,
            ParseErrorKind::BlankName {
                keyword: "LABEL".into(),
            },
        ),
        (
            "FROM a\nCMD [\"a\", 1]\n",
            2,
            ParseErrorKind::JsonNotStrings {
                keyword: "CMD".into(),
            },
        ),
        (
            // engine: `failed to process "\"x`\"y\"": unexpected end of statement while
            // looking for matching double-quote` — the escape directive came after a comment.
            "# hello\n# escape=`\nFROM a\nLABEL a=\"x`\"y\"\n",
            4,
            ParseErrorKind::BadWord {
                text: "\"x`\"y\"".into(),
                message: "unexpected end of statement while looking for matching double-quote"
                    .into(),
            },
        ),
        (
            "FROM ${A\n",
            1,
            ParseErrorKind::BadWord {
                text: "${A".into(),
                message: "syntax error: missing '}'".into(),
            },
        ),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            2,
            ParseErrorKind::BadOnbuildTrigger {
                trigger: "ONBUILD".into(),
            },
        ),
        (
            "FROM a\nONBUILD FROM b\n",
            2,
            ParseErrorKind::BadOnbuildTrigger {
                trigger: "FROM".into(),
            },
        ),
        (
            "FROM a\nONBUILD LABEL a\n",
            2,
            ParseErrorKind::NameWithoutValue {
                keyword: "LABEL".into(),
                args: "a".into(),
            },
        ),
        (
            "FROM a\n\\\n\n",
            2,
            ParseErrorKind::EmptyInstruction { escape: '\\' },
        ),
    ];
    for (input, line, kind) in cases {
        match Dockerfile::parse(input) {
            Ok(_) => panic!("{input:?} parsed; expected {kind:?}"),
            Err(error) => {
                assert_eq!(
                    (error.line, &error.kind),
                    (*line, kind),
                    "{input:?}: {error}"
                );
            }
        }
    }
}

#[test]
fn error_messages_read_as_one_line() {
    let error = Dockerfile::parse("FROM a\nRUN <<EOF\necho\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "Dockerfile line 2: the heredoc `<<EOF` is never closed; end it with a line holding only `EOF`"
    );
    let error = Dockerfile::parse("RUN x\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        "Dockerfile line 1: `RUN` comes before the first FROM, where only ARG is allowed; move it below `FROM <image>`"
    );
}

#[test]
fn a_required_variable_that_may_come_from_the_parent_is_not_an_error() {
    let dockerfile = parse("FROM fedora\nLABEL name=${FGC:?}/x\n");
    assert_eq!(dockerfile.final_stage_labels()["name"], "/x");
    assert_eq!(
        dockerfile.final_stage_labels_with_env(&["FGC=f41".into()])["name"],
        "f41/x"
    );
}

#[test]
fn declared_args_are_every_arg_name_before_and_after_from() {
    let cases: &[(&str, &[&str])] = &[
        ("FROM a\nRUN x\n", &[]),
        (
            "FROM scratch\nARG TARGETARCH\nADD rootfs-${TARGETARCH}.tar.gz /\n",
            &["TARGETARCH"],
        ),
        // Before the first FROM, in a later stage, several in one ARG, with defaults.
        (
            "ARG BASE=a\nFROM $BASE AS build\nARG BUILDPLATFORM TARGETOS=linux\nFROM scratch\nARG TARGETVARIANT\n",
            &["BASE", "BUILDPLATFORM", "TARGETOS", "TARGETVARIANT"],
        ),
        // Quoted names and names from a variable, as the builder reads them.
        (
            "FROM a\nARG \"TARGETARCH\"\nARG N=TARGETOS\nARG $N\n",
            &["N", "TARGETARCH", "TARGETOS"],
        ),
        // An ARG in an ONBUILD trigger is the next build's, not this one's.
        ("FROM a\nONBUILD ARG TARGETARCH\n", &[]),
        // Lower case is another name (engine: build args are case-sensitive).
        ("FROM a\nARG targetarch\n", &["targetarch"]),
    ];
    for (text, expected) in cases {
        let declared: Vec<String> = parse(text).declared_args().into_iter().collect();
        assert_eq!(declared, *expected, "{text:?}");
    }
}

#[test]
fn build_args_win_over_defaults_where_an_arg_declares_them() {
    let args: BTreeMap<String, String> = [
        ("TARGETARCH".to_owned(), "arm64".to_owned()),
        ("TAG".to_owned(), "2".to_owned()),
        ("UNDECLARED".to_owned(), "x".to_owned()),
    ]
    .into();
    /// (Dockerfile, the final FROM as resolved, the final stage's labels)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        (
            "FROM scratch\nARG TARGETARCH\nLABEL a=rootfs-${TARGETARCH}\n",
            "scratch",
            &[("a", "rootfs-arm64")],
        ),
        // Over the ARG's own default.
        (
            "FROM scratch\nARG TARGETARCH=amd64\nLABEL a=$TARGETARCH\n",
            "scratch",
            &[("a", "arm64")],
        ),
        // Before the first FROM: the FROM and the stage's ARG without default see it.
        (
            "ARG TAG=1\nFROM r.io/b:$TAG\nARG TAG\nLABEL t=$TAG\n",
            "r.io/b:2",
            &[("t", "2")],
        ),
        // Not declared in the stage: not in its environment (engine).
        (
            "ARG TARGETARCH\nFROM r.io/b:$TARGETARCH\nLABEL a=x$TARGETARCH u=x$UNDECLARED\n",
            "r.io/b:arm64",
            &[("a", "x"), ("u", "x")],
        ),
    ];
    let mut squashed = 0;
    for (text, from, labels) in cases {
        let dockerfile = Dockerfile::parse_with_build_args(text, &args)
            .unwrap_or_else(|error| panic!("{text:?}: {error}"));
        assert_eq!(
            dockerfile.stages().last().unwrap().resolved,
            *from,
            "{text:?}"
        );
        assert_eq!(
            dockerfile
                .final_stage_labels()
                .into_iter()
                .collect::<Vec<_>>(),
            pairs(labels),
            "{text:?}"
        );
        assert_eq!(dockerfile.build_args(), &args);
        // The LABELs the squash writes instead of the builder read the build args too.
        let steps: Vec<(String, String)> = dockerfile
            .final_stage_label_steps(&[])
            .into_iter()
            .flat_map(|step| step.labels)
            .collect();
        if !steps.is_empty() {
            squashed += 1;
            assert_eq!(steps, pairs(labels), "{text:?}");
        }
    }
    assert!(
        squashed >= 3,
        "{squashed} cases left their LABELs to the squash"
    );
}
