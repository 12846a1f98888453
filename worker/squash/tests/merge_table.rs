//! The merge rules as a table: layer stacks built as tar fixtures in code, and the squashed
//! layer each must give (every entry, in order, with type, mode, owner, link and content).

mod support;

use support::{E, E::*, layer, squash};

struct Case {
    name: &'static str,
    base: Vec<Vec<E>>,
    upper: Vec<Vec<E>>,
    expected: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "upper file wins",
            base: vec![vec![File("a", "base")]],
            upper: vec![vec![File("a", "one")], vec![File("a", "two")]],
            expected: &["f a 644 =two"],
        },
        Case {
            name: "whiteout of a path only the upper layers had disappears",
            base: vec![vec![Dir("keep")]],
            upper: vec![
                vec![Dir("d"), File("d/x", "x"), File("d/y", "y")],
                vec![Whiteout("d")],
            ],
            expected: &[],
        },
        Case {
            name: "whiteout of a base directory is kept and removes its subtree",
            base: vec![vec![Dir("d"), File("d/x", "x")]],
            upper: vec![vec![Dir("d"), File("d/new", "n")], vec![Whiteout("d")]],
            expected: &["f .wh.d 600 ="],
        },
        Case {
            name: "base directory deleted then re-created becomes opaque",
            base: vec![vec![Dir("d"), File("d/x", "x")]],
            upper: vec![vec![Whiteout("d")], vec![Dir("d"), File("d/z", "z")]],
            expected: &["d d/ 755", "f d/.wh..wh..opq 600 =", "f d/z 644 =z"],
        },
        Case {
            name: "opaque directory hides the base contents",
            base: vec![vec![Dir("d"), File("d/x", "x")]],
            upper: vec![vec![Dir("d"), Opaque("d"), File("d/y", "y")]],
            expected: &["d d/ 755", "f d/.wh..wh..opq 600 =", "f d/y 644 =y"],
        },
        Case {
            name: "opaque over a directory the base lacks needs no marker",
            base: vec![vec![Dir("other")]],
            upper: vec![
                vec![Dir("d"), File("d/x", "x")],
                vec![Dir("d"), Opaque("d"), File("d/y", "y")],
            ],
            expected: &["d d/ 755", "f d/y 644 =y"],
        },
        Case {
            name: "directory replaced by a file drops the directory's children",
            base: vec![vec![Dir("etc")]],
            upper: vec![vec![Dir("p"), File("p/x", "x")], vec![File("p", "file")]],
            expected: &["f p 644 =file"],
        },
        Case {
            name: "base directory replaced by a file",
            base: vec![vec![Dir("p"), File("p/x", "x")]],
            upper: vec![vec![Whiteout("p"), File("p", "file")]],
            expected: &["f p 644 =file"],
        },
        Case {
            name: "base file replaced by a directory",
            base: vec![vec![File("p", "file")]],
            upper: vec![vec![Dir("p"), Opaque("p"), File("p/x", "x")]],
            expected: &["d p/ 755", "f p/x 644 =x"],
        },
        Case {
            name: "directory, file, directory again: only the last directory's children",
            base: vec![vec![Dir("etc")]],
            upper: vec![
                vec![Dir("p"), File("p/x", "x")],
                vec![File("p", "file")],
                vec![Dir("p"), File("p/y", "y")],
            ],
            expected: &["d p/ 755", "f p/y 644 =y"],
        },
        Case {
            name: "file deleted then re-created",
            base: vec![vec![File("a", "1")]],
            upper: vec![vec![Whiteout("a")], vec![File("a", "3")]],
            expected: &["f a 644 =3"],
        },
        Case {
            name: "base file deleted in a directory the upper layer touched",
            base: vec![vec![
                Dir("etc"),
                File("etc/motd", "hi"),
                File("etc/keep", "k"),
            ]],
            upper: vec![vec![DirMode("etc", 0o750), Whiteout("etc/motd")]],
            expected: &["d etc/ 750", "f etc/.wh.motd 600 ="],
        },
        Case {
            name: "base file deleted inside a base directory deleted later: one whiteout",
            base: vec![vec![Dir("d"), File("d/x", "x")]],
            upper: vec![vec![Dir("d"), Whiteout("d/x")], vec![Whiteout("d")]],
            expected: &["f .wh.d 600 ="],
        },
        Case {
            name: "whiteout inside the base layers themselves",
            base: vec![
                vec![Dir("a"), File("a/1", "1")],
                vec![Dir("a"), Whiteout("a/1")],
            ],
            upper: vec![vec![Dir("a"), Whiteout("a/1"), File("a/2", "2")]],
            expected: &["d a/ 755", "f a/2 644 =2"],
        },
        Case {
            name: "hard link and its target both survive",
            base: vec![],
            upper: vec![vec![File("a", "x"), Hard("b", "a")]],
            expected: &["f a 644 =x", "h b => a"],
        },
        Case {
            name: "hard link whose target was replaced keeps the old content",
            base: vec![],
            upper: vec![
                vec![File("a", "old"), Hard("b", "a")],
                vec![File("a", "new")],
            ],
            expected: &["f b 644 =old", "f a 644 =new"],
        },
        Case {
            name: "hard links whose target was removed: the first link becomes the file",
            base: vec![vec![Dir("etc")]],
            upper: vec![
                vec![File("a", "x"), Hard("b", "a"), Hard("c", "a")],
                vec![Whiteout("a")],
            ],
            expected: &["f b 644 =x", "h c => b"],
        },
        Case {
            name: "hard link whose target was re-linked to another file",
            base: vec![],
            upper: vec![
                vec![File("a", "1"), File("o", "2"), Hard("b", "a")],
                vec![File("o", "2"), Hard("a", "o")],
            ],
            expected: &["f b 644 =1", "f o 644 =2", "h a => o"],
        },
        Case {
            name: "hard link chains resolve to the data",
            base: vec![],
            upper: vec![
                vec![File("a", "x"), Hard("b", "a"), Hard("c", "b")],
                vec![Whiteout("a")],
            ],
            expected: &["f b 644 =x", "h c => b"],
        },
        Case {
            name: "hard link shadowed, target kept",
            base: vec![],
            upper: vec![vec![File("a", "x"), Hard("b", "a")], vec![File("b", "own")]],
            expected: &["f a 644 =x", "f b 644 =own"],
        },
        Case {
            name: "symlinks are entries, never followed: upper entry under a lower symlink",
            base: vec![vec![Dir("etc"), File("etc/passwd", "root")]],
            upper: vec![
                vec![Symlink("x", "/etc")],
                vec![Dir("x"), File("x/passwd", "mine")],
            ],
            expected: &["d x/ 755", "f x/passwd 644 =mine"],
        },
        Case {
            name: "entry under a base symlink replaces it with a directory",
            base: vec![vec![Dir("etc"), Symlink("x", "/etc")]],
            upper: vec![vec![File("x/passwd", "mine")]],
            expected: &["d x/ 755", "f x/passwd 644 =mine"],
        },
        Case {
            name: "symlink kept as it is",
            base: vec![],
            upper: vec![vec![
                Symlink("bin/sh", "busybox"),
                Symlink("abs", "/etc/passwd"),
                Symlink("rel", "../../up"),
            ]],
            expected: &[
                "l bin/sh -> busybox",
                "l abs -> /etc/passwd",
                "l rel -> ../../up",
            ],
        },
        Case {
            name: "modes, owners, names, mtimes and xattrs preserved",
            base: vec![],
            upper: vec![vec![FileFull(
                "bin/ping",
                "p",
                0o4755,
                1000,
                1001,
                1_234_567_890,
                Some(("security.capability", b"cap")),
            )]],
            expected: &[
                "f bin/ping 4755 =p 1000:1001 builder:wheel t1234567890 SCHILY.xattr.security.capability=cap",
            ],
        },
        Case {
            name: "directory metadata comes from the top layer, directories first",
            base: vec![vec![DirMode("d", 0o755)]],
            upper: vec![
                vec![DirMode("d", 0o755), File("d/x", "x")],
                vec![DirMode("d", 0o700)],
            ],
            expected: &["d d/ 700", "f d/x 644 =x"],
        },
        Case {
            name: "paths are normalised",
            base: vec![],
            upper: vec![vec![File("./a", "1"), File("/b", "2"), File("c/../d", "3")]],
            expected: &["f a 644 =1", "f b 644 =2", "f d 644 =3"],
        },
        Case {
            name: "same path twice in one layer: the later entry wins",
            base: vec![],
            upper: vec![vec![File("a", "1"), File("a", "2")]],
            expected: &["f a 644 =2"],
        },
        Case {
            name: "nothing above the base gives an empty layer",
            base: vec![vec![File("a", "1")]],
            upper: vec![],
            expected: &[],
        },
        Case {
            name: "opaque root hides every base path",
            base: vec![vec![Dir("etc"), File("etc/a", "a")]],
            upper: vec![vec![Opaque(""), File("b", "b")]],
            expected: &["f .wh..wh..opq 600 =", "f b 644 =b"],
        },
    ]
}

#[test]
fn every_case_gives_its_expected_layer() {
    let mut failures = Vec::new();
    for case in cases() {
        let layers: Vec<Vec<u8>> = case
            .base
            .iter()
            .chain(&case.upper)
            .map(|entries| layer(entries))
            .collect();
        match squash(&layers, case.base.len()) {
            Ok((lines, _)) if lines == case.expected => {}
            Ok((lines, _)) => failures.push(format!(
                "{}:\n  got      {lines:?}\n  expected {:?}",
                case.name, case.expected
            )),
            Err(error) => failures.push(format!("{}: {error}", case.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The lookups of `files` against the merge: over every case's whole stack (squashed above
/// nothing, so the layer is the whole filesystem), each path of the squashed layer is found
/// as what it is there, each directory it implies is a directory, and every other path a
/// case names is absent (unless a symlink on the way leads elsewhere).
#[test]
fn lookups_agree_with_the_squashed_filesystem() {
    use osbs_squash::FileKind;
    let mut checked = 0;
    for case in cases() {
        let stack_entries: Vec<&Vec<E>> = case.base.iter().chain(&case.upper).collect();
        let layers: Vec<Vec<u8>> = stack_entries.iter().map(|entries| layer(entries)).collect();
        let (lines, _) = squash(&layers, 0).unwrap();
        let mut merged = std::collections::HashMap::new();
        for line in &lines {
            let (kind, rest) = line.split_once(' ').unwrap();
            let path = rest.split(' ').next().unwrap().trim_end_matches('/');
            let kind = match kind {
                "d" => FileKind::Dir,
                "f" | "h" => FileKind::File,
                "l" => FileKind::Symlink,
                _ => FileKind::Other,
            };
            merged.insert(path.to_owned(), kind);
        }
        let mut stack = osbs_squash::LayerStack::new();
        let order: Vec<usize> = layers
            .iter()
            .map(|bytes| {
                stack
                    .add_layer(osbs_squash::Sequential(&bytes[..]))
                    .unwrap()
            })
            .collect();
        let files = stack.files(&order);
        let named =
            stack_entries
                .iter()
                .flat_map(|entries| entries.iter())
                .map(|entry| match entry {
                    Dir(p)
                    | DirMode(p, _)
                    | File(p, _)
                    | FileFull(p, ..)
                    | Symlink(p, _)
                    | Hard(p, _)
                    | Whiteout(p)
                    | Opaque(p)
                    | Raw(p, ..) => *p,
                });
        for path in merged.keys().map(String::as_str).chain(named) {
            let path = path.trim_start_matches('/').trim_end_matches('/');
            let unnormalised = path.split('/').any(|part| matches!(part, "" | "." | ".."));
            if path.is_empty() || path.contains(".wh.") || unnormalised {
                continue;
            }
            let ancestors: Vec<&str> = path.match_indices('/').map(|(at, _)| &path[..at]).collect();
            if ancestors
                .iter()
                .any(|a| merged.get(*a) == Some(&FileKind::Symlink))
            {
                continue;
            }
            let prefix = format!("{path}/");
            let expected = merged.get(path).copied().or_else(|| {
                merged
                    .keys()
                    .any(|other| other.starts_with(&prefix))
                    .then_some(FileKind::Dir)
            });
            assert_eq!(files.find_link(path), expected, "{}: {path}", case.name);
            checked += 1;
        }
    }
    eprintln!("{checked} paths checked");
    assert!(checked > 100, "{checked} paths checked");
}

#[test]
fn same_input_gives_the_same_layer_digest() {
    let layers: Vec<Vec<u8>> = cases()
        .into_iter()
        .flat_map(|case| case.base.into_iter().chain(case.upper))
        .map(|entries| layer(&entries))
        .collect();
    let (_, first) = squash(&layers, 1).unwrap();
    let (_, second) = squash(&layers, 1).unwrap();
    assert_eq!(first, second);
    assert!(first.diff_id.starts_with("sha256:") && first.diff_id.len() == 71);
}

#[test]
fn gzip_and_plain_layers_give_the_same_layer() {
    use std::io::Write;
    let plain = vec![
        layer(&[Dir("d"), File("d/x", "x")]),
        layer(&[File("d/y", "y"), Whiteout("d/x")]),
    ];
    let gzipped: Vec<Vec<u8>> = plain
        .iter()
        .map(|bytes| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(bytes).unwrap();
            encoder.finish().unwrap()
        })
        .collect();
    assert_eq!(squash(&plain, 0).unwrap(), squash(&gzipped, 0).unwrap());
}

#[test]
fn stack_order_not_insertion_order_decides() {
    // Layers indexed top first (as a `docker save` stream may deliver them) merge by the
    // order given to `plan`.
    let bottom = layer(&[File("a", "bottom")]);
    let top = layer(&[File("a", "top")]);
    let mut stack = osbs_squash::LayerStack::new();
    let top_id = stack.add_layer(osbs_squash::Sequential(&top[..])).unwrap();
    let bottom_id = stack
        .add_layer(osbs_squash::Sequential(&bottom[..]))
        .unwrap();
    let plan = stack.plan(&[bottom_id, top_id], 0).unwrap();
    assert!(plan.reads_layer(top_id) && !plan.reads_layer(bottom_id));
    let sources = [&top[..], &bottom[..]];
    let mut out = Vec::new();
    let merged = stack
        .write(
            &plan,
            |id| Ok(osbs_squash::Sequential(sources[id])),
            &mut out,
        )
        .unwrap();
    assert_eq!(support::listing(&out), ["f a 644 =top"]);
    let size = stack
        .size(&plan, |id| Ok(osbs_squash::Sequential(sources[id])))
        .unwrap();
    assert_eq!(size, merged.size);
}

/// What the squash adds (`squash_tars_adding`, the files of `Additions`): the buildinfo
/// Dockerfile under `/root/buildinfo`, with directories only where the stack lacks them.
#[test]
fn added_files_and_the_directories_they_need() {
    let file = osbs_squash::AddedFile {
        path: "/root/buildinfo/Dockerfile-a-1-1".into(),
        contents: b"FROM x\n".to_vec(),
        mode: 0o644,
        created_by: String::new(),
    };
    // (name, base layers, upper layers, Ok(squashed listing) or Err(text in the error))
    type Outcome = Result<&'static [&'static str], &'static str>;
    type Stack = Vec<Vec<E>>;
    let cases: Vec<(&str, Stack, Stack, Outcome)> = vec![
        (
            "/root in the base: kept as it is, only buildinfo created",
            vec![vec![DirMode("root", 0o700), File("root/.profile", "p")]],
            vec![vec![File("x", "x")]],
            Ok(&[
                "d root/buildinfo/ 755",
                "f x 644 =x",
                "f root/buildinfo/Dockerfile-a-1-1 644 =FROM x\n",
            ]),
        ),
        (
            "no /root anywhere (FROM scratch): both created",
            vec![],
            vec![vec![File("x", "x")]],
            Ok(&[
                "d root/ 755",
                "d root/buildinfo/ 755",
                "f x 644 =x",
                "f root/buildinfo/Dockerfile-a-1-1 644 =FROM x\n",
            ]),
        ),
        (
            "/root/buildinfo made by an upper layer: its entries win, nothing synthetic",
            vec![vec![DirMode("root", 0o700)]],
            vec![vec![
                DirMode("root", 0o700),
                DirMode("root/buildinfo", 0o750),
            ]],
            Ok(&[
                "d root/ 700",
                "d root/buildinfo/ 750",
                "f root/buildinfo/Dockerfile-a-1-1 644 =FROM x\n",
            ]),
        ),
        (
            "an upper layer's file at the path is replaced",
            vec![vec![DirMode("root", 0o700), Dir("root/buildinfo")]],
            vec![vec![File("root/buildinfo/Dockerfile-a-1-1", "old")]],
            Ok(&["f root/buildinfo/Dockerfile-a-1-1 644 =FROM x\n"]),
        ),
        (
            "/root deleted by an upper layer: re-created, opaque over the base's",
            vec![vec![DirMode("root", 0o700), File("root/.profile", "p")]],
            vec![vec![Whiteout("root")]],
            Ok(&[
                "d root/ 755",
                "f root/.wh..wh..opq 600 =",
                "d root/buildinfo/ 755",
                "f root/buildinfo/Dockerfile-a-1-1 644 =FROM x\n",
            ]),
        ),
        (
            "/root a symlink (COPY would follow it): refused, not replaced",
            vec![vec![Dir("var"), Symlink("root", "var/roothome")]],
            vec![vec![File("x", "x")]],
            Err("cannot add a file under '/root'"),
        ),
        (
            "a directory at the file's path: refused",
            vec![vec![Dir("root/buildinfo/Dockerfile-a-1-1")]],
            vec![vec![File("x", "x")]],
            Err("the image has a directory there"),
        ),
    ];
    for (name, base, upper, expected) in cases {
        let layers: Vec<Vec<u8>> = base.iter().chain(&upper).map(|l| layer(l)).collect();
        let slices: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        let got = osbs_squash::squash_tars_adding(
            &slices,
            base.len(),
            std::slice::from_ref(&file),
            &mut out,
        );
        match (got, expected) {
            (Ok(merged), Ok(listing)) => {
                assert_eq!(support::listing(&out), listing, "{name}");
                assert_eq!(merged.size, out.len() as u64, "{name}");
            }
            (Err(error), Err(text)) => {
                assert!(error.to_string().contains(text), "{name}: {error}")
            }
            (got, _) => panic!("{name}: {:?}", got.map(|_| support::listing(&out))),
        }
    }
}
