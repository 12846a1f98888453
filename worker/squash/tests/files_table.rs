//! Lookups in the merged filesystem of a stack, as a table: layer stacks built as tar
//! fixtures in code, and what each path is (symlinks followed, or not for the last
//! component), for whiteouts, opaque directories, non-directories on the way and symlinks.

mod support;

use osbs_squash::{FileKind, LayerStack, MAX_SYMLINK_HOPS, Sequential};
use support::{E, E::*, layer};

/// What a path must be: `(path, followed, not followed)`.
type Expect = (&'static str, Option<FileKind>, Option<FileKind>);

const FILE: Option<FileKind> = Some(FileKind::File);
const DIR: Option<FileKind> = Some(FileKind::Dir);
const LINK: Option<FileKind> = Some(FileKind::Symlink);
const NONE: Option<FileKind> = None;

struct Case {
    name: &'static str,
    /// Bottom first.
    layers: Vec<Vec<E>>,
    expected: &'static [Expect],
}

fn rpm_db() -> Vec<E> {
    vec![
        Dir("var"),
        Dir("var/lib"),
        Dir("var/lib/rpm"),
        File("var/lib/rpm/Packages", "db"),
        Dir("usr"),
        Dir("usr/bin"),
        File("usr/bin/rpm", "elf"),
    ]
}

/// Fedora ≥ 36: the database in /usr/lib/sysimage/rpm, /var/lib/rpm a symlink to it.
fn fedora(link: &'static str) -> Vec<E> {
    vec![
        Dir("usr"),
        Dir("usr/lib"),
        Dir("usr/lib/sysimage"),
        Dir("usr/lib/sysimage/rpm"),
        File("usr/lib/sysimage/rpm/rpmdb.sqlite", "db"),
        Dir("var"),
        Dir("var/lib"),
        Symlink("var/lib/rpm", link),
    ]
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "one layer: files, directories, what is not there",
            layers: vec![rpm_db()],
            expected: &[
                ("/", DIR, DIR),
                ("/var/lib/rpm/Packages", FILE, FILE),
                ("var/lib/rpm/Packages", FILE, FILE),
                ("/var/lib/rpm", DIR, DIR),
                ("/var/lib/rpm/", DIR, DIR),
                ("/var/lib/rpm/rpmdb.sqlite", NONE, NONE),
                ("/var/lib/rpm/Packages/x", NONE, NONE),
                ("/var/lib/rpm/Packages/..", NONE, NONE),
                ("/usr/bin/../bin/./rpm", FILE, FILE),
                ("/etc", NONE, NONE),
            ],
        },
        Case {
            name: "entries imply their parent directories",
            layers: vec![vec![File("usr/bin/rpm", "elf")]],
            expected: &[("/usr", DIR, DIR), ("/usr/bin/rpm", FILE, FILE)],
        },
        Case {
            name: "hard links are files, devices and fifos are other",
            layers: vec![vec![
                File("bin/busybox", "elf"),
                Hard("bin/rpm", "bin/busybox"),
                Raw("dev/fifo", b'6', b""),
            ]],
            expected: &[
                ("/bin/rpm", FILE, FILE),
                ("/dev/fifo", Some(FileKind::Other), Some(FileKind::Other)),
            ],
        },
        Case {
            name: "a whiteout of the file deletes it",
            layers: vec![
                rpm_db(),
                vec![Dir("var/lib/rpm"), Whiteout("var/lib/rpm/Packages")],
            ],
            expected: &[
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/var/lib/rpm", DIR, DIR),
                ("/usr/bin/rpm", FILE, FILE),
            ],
        },
        Case {
            name: "a whiteout of an ancestor deletes the subtree (RUN rm -rf /var/lib/rpm)",
            layers: vec![rpm_db(), vec![Dir("var/lib"), Whiteout("var/lib/rpm")]],
            expected: &[
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/var/lib/rpm", NONE, NONE),
                ("/var/lib", DIR, DIR),
            ],
        },
        Case {
            name: "a whiteout of an ancestor also hides what layers below add under it",
            layers: vec![
                rpm_db(),
                vec![Dir("var/lib/rpm"), File("var/lib/rpm/rpmdb.sqlite", "db")],
                vec![Whiteout("var")],
            ],
            expected: &[
                ("/var/lib/rpm/rpmdb.sqlite", NONE, NONE),
                ("/var", NONE, NONE),
            ],
        },
        Case {
            name: "a directory deleted then re-created shows only its new contents",
            layers: vec![
                rpm_db(),
                vec![Dir("var/lib"), Whiteout("var/lib/rpm")],
                vec![Dir("var/lib/rpm"), File("var/lib/rpm/rpmdb.sqlite", "db")],
            ],
            expected: &[
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/var/lib/rpm/rpmdb.sqlite", FILE, FILE),
            ],
        },
        Case {
            name: "an opaque directory hides the lower contents",
            layers: vec![
                rpm_db(),
                vec![
                    Dir("var/lib/rpm"),
                    Opaque("var/lib/rpm"),
                    File("var/lib/rpm/rpmdb.sqlite", "db"),
                ],
            ],
            expected: &[
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/var/lib/rpm/rpmdb.sqlite", FILE, FILE),
                ("/var/lib/rpm", DIR, DIR),
            ],
        },
        Case {
            name: "an opaque ancestor hides everything below it, deep paths too",
            layers: vec![
                rpm_db(),
                vec![Dir("var"), Opaque("var"), File("var/x", "x")],
            ],
            expected: &[
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/var/lib", NONE, NONE),
                ("/var/x", FILE, FILE),
                ("/usr/bin/rpm", FILE, FILE),
            ],
        },
        Case {
            name: "an opaque marker alone makes its directory",
            layers: vec![vec![Dir("etc")], vec![Opaque("var/cache")]],
            expected: &[("/var/cache", DIR, DIR)],
        },
        Case {
            name: "an ancestor replaced by a file hides the subtree",
            layers: vec![rpm_db(), vec![Dir("var"), File("var/lib", "not a dir")]],
            expected: &[
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/var/lib", FILE, FILE),
            ],
        },
        Case {
            name: "a directory over a file shows nothing of the layers under the file",
            layers: vec![
                rpm_db(),
                vec![File("var/lib", "not a dir")],
                vec![Dir("var/lib"), File("var/lib/new", "n")],
            ],
            expected: &[
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/var/lib/new", FILE, FILE),
            ],
        },
        Case {
            name: "a file hides its own layer's entries under it",
            layers: vec![vec![File("var", "x"), File("var/lib/rpm/Packages", "db")]],
            expected: &[("/var/lib/rpm/Packages", NONE, NONE), ("/var", FILE, FILE)],
        },
        Case {
            name: "Fedora: /var/lib/rpm is a relative symlink to the sysimage directory",
            layers: vec![fedora("../../usr/lib/sysimage/rpm")],
            expected: &[
                ("/var/lib/rpm/rpmdb.sqlite", FILE, FILE),
                ("/var/lib/rpm", DIR, LINK),
                ("/var/lib/rpm/Packages", NONE, NONE),
                ("/usr/lib/sysimage/rpm/rpmdb.sqlite", FILE, FILE),
            ],
        },
        Case {
            name: "an absolute symlink resolves inside the image",
            layers: vec![fedora("/usr/lib/sysimage/rpm")],
            expected: &[("/var/lib/rpm/rpmdb.sqlite", FILE, FILE)],
        },
        Case {
            name: "a symlink's target deleted above leaves nothing behind the link",
            layers: vec![
                fedora("../../usr/lib/sysimage/rpm"),
                vec![Dir("usr/lib"), Whiteout("usr/lib/sysimage")],
            ],
            expected: &[
                ("/var/lib/rpm/rpmdb.sqlite", NONE, NONE),
                ("/var/lib/rpm", NONE, LINK),
            ],
        },
        Case {
            name: "a symlink replaced by a directory above no longer leads to its target",
            layers: vec![
                fedora("../../usr/lib/sysimage/rpm"),
                vec![Dir("var/lib/rpm"), File("var/lib/rpm/Packages", "db")],
            ],
            expected: &[
                ("/var/lib/rpm/rpmdb.sqlite", NONE, NONE),
                ("/var/lib/rpm/Packages", FILE, FILE),
                ("/var/lib/rpm", DIR, DIR),
            ],
        },
        Case {
            name: "a directory implied above a symlink replaces it",
            layers: vec![
                fedora("../../usr/lib/sysimage/rpm"),
                vec![File("var/lib/rpm/Packages", "db")],
            ],
            expected: &[
                ("/var/lib/rpm/rpmdb.sqlite", NONE, NONE),
                ("/var/lib/rpm/Packages", FILE, FILE),
            ],
        },
        Case {
            name: "a symlink as the last component: followed, dangling, or not followed",
            layers: vec![vec![
                File("bin/busybox", "elf"),
                Symlink("usr/bin/rpm", "../../bin/busybox"),
                Symlink("bin/rpm", "nothing-here"),
                Symlink("bin/empty", ""),
                Symlink("bin/sh", "busybox"),
            ]],
            expected: &[
                ("/usr/bin/rpm", FILE, LINK),
                ("/bin/rpm", NONE, LINK),
                ("/bin/empty", NONE, LINK),
                ("/bin/sh", FILE, LINK),
            ],
        },
        Case {
            name: "CentOS: /bin is a symlink to usr/bin",
            layers: vec![vec![Symlink("bin", "usr/bin"), File("usr/bin/rpm", "elf")]],
            expected: &[("/bin/rpm", FILE, FILE), ("/bin", DIR, LINK)],
        },
        Case {
            name: "'..' stops at the image root, relative or absolute",
            layers: vec![vec![
                Dir("etc"),
                File("etc/x", "image"),
                Symlink("up", "../../../../etc"),
                Symlink("abs", "/../../etc"),
            ]],
            expected: &[
                ("/up/x", FILE, FILE),
                ("/abs/x", FILE, FILE),
                ("/../../etc/x", FILE, FILE),
                ("/up/passwd", NONE, NONE),
            ],
        },
        Case {
            name: "'..' after a symlink goes to the target's parent, not back",
            layers: vec![vec![
                Dir("a"),
                Dir("a/b"),
                File("a/x", "x"),
                Symlink("l", "a/b"),
            ]],
            expected: &[("/l/../x", FILE, FILE), ("/x", NONE, NONE)],
        },
        Case {
            name: "symlink loops count as absent",
            layers: vec![vec![
                Symlink("loop", "loop"),
                Symlink("one", "two"),
                Symlink("two", "one/x"),
            ]],
            expected: &[
                ("/loop", NONE, LINK),
                ("/loop/x", NONE, NONE),
                ("/one", NONE, LINK),
            ],
        },
        Case {
            name: "an upper layer's symlink wins over a lower file",
            layers: vec![
                vec![File("usr/bin/rpm", "elf"), File("bin/busybox", "elf")],
                vec![Symlink("usr/bin/rpm", "/bin/busybox")],
                vec![Dir("bin"), Whiteout("bin/busybox")],
            ],
            expected: &[("/usr/bin/rpm", NONE, LINK)],
        },
    ]
}

fn stack_of(layers: &[Vec<E>]) -> (LayerStack, Vec<usize>) {
    let mut stack = LayerStack::new();
    let order = layers
        .iter()
        .map(|entries| stack.add_layer(Sequential(&layer(entries)[..])).unwrap())
        .collect();
    (stack, order)
}

#[test]
fn every_path_is_what_the_stack_makes_it() {
    for case in cases() {
        let (stack, order) = stack_of(&case.layers);
        let files = stack.files(&order);
        for (path, followed, not_followed) in case.expected {
            assert_eq!(files.find(path), *followed, "{}: {path}", case.name);
            assert_eq!(
                files.find_link(path),
                *not_followed,
                "{}: {path}",
                case.name
            );
        }
    }
}

#[test]
fn a_chain_of_symlinks_resolves_up_to_the_hop_limit() {
    let leak = |text: String| -> &'static str { Box::leak(text.into_boxed_str()) };
    for (hops, found) in [(MAX_SYMLINK_HOPS, FILE), (MAX_SYMLINK_HOPS + 1, NONE)] {
        let mut entries = vec![File("target", "x")];
        for link in 0..hops {
            let next = if link + 1 == hops {
                "target".to_owned()
            } else {
                format!("l{}", link + 1)
            };
            entries.push(Symlink(leak(format!("l{link}")), leak(next)));
        }
        let (stack, order) = stack_of(&[entries]);
        assert_eq!(stack.files(&order).find("/l0"), found, "{hops} hops");
    }
}

#[test]
fn only_the_layers_of_the_order_count_in_their_order() {
    let (stack, _) = stack_of(&[rpm_db(), vec![Dir("var/lib"), Whiteout("var/lib/rpm")]]);
    let existing = |order: &[usize]| {
        stack
            .files(order)
            .existing(&["/var/lib/rpm/Packages", "/usr/bin/rpm", "/bin/rpm"])
    };
    assert_eq!(existing(&[0, 1]), vec!["/usr/bin/rpm"]);
    assert_eq!(
        existing(&[1, 0]),
        vec!["/var/lib/rpm/Packages", "/usr/bin/rpm"]
    );
    assert_eq!(
        existing(&[0]),
        vec!["/var/lib/rpm/Packages", "/usr/bin/rpm"]
    );
    assert!(existing(&[]).is_empty());
}
