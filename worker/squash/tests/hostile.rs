//! Hostile layers: whatever a layer holds, the squashed layer never names anything outside
//! the image root and never puts an entry under a symlink; what cannot be made safe is
//! refused with an error naming the entry.

mod support;

use support::{E::*, layer, squash};

/// Every entry of a squashed layer has a clean relative name, and none lies under an entry
/// that is not a directory.
fn assert_safe(lines: &[String]) {
    let mut non_dirs = Vec::new();
    for line in lines {
        let path = line.split(' ').nth(1).unwrap();
        assert!(!path.starts_with('/'), "absolute: {line}");
        assert!(!path.split('/').any(|part| part == ".."), "climbs: {line}");
        if line.starts_with("l ") || line.starts_with("f ") || line.starts_with("h ") {
            non_dirs.push(path.to_owned());
        }
        for other in &non_dirs {
            assert!(
                !path.starts_with(&format!("{other}/")),
                "{line} lies under the non-directory {other}"
            );
        }
    }
}

#[test]
fn absolute_paths_stay_inside_the_image() {
    let (lines, _) = squash(
        &[layer(&[
            File("/etc/passwd", "x"),
            Dir("/tmp"),
            Symlink("/x", "/"),
        ])],
        0,
    )
    .unwrap();
    assert_eq!(lines, ["d tmp/ 755", "f etc/passwd 644 =x", "l x -> /"]);
    assert_safe(&lines);
}

#[test]
fn dot_dot_escapes_are_refused() {
    for entries in [
        vec![File("../etc/passwd", "x")],
        vec![File("a/../../etc/passwd", "x")],
        vec![Dir("d"), Hard("d/l", "../../etc/shadow")],
        vec![Whiteout("../x")],
    ] {
        let error = squash(&[layer(&entries)], 0).unwrap_err().to_string();
        assert!(
            error.contains("climbs out of the image"),
            "{entries:?}: {error}"
        );
        assert!(error.starts_with("layer #0: "), "names the layer: {error}");
    }
}

#[test]
fn link_then_write_through_a_symlink_in_the_same_layer_is_dropped() {
    let (lines, _) = squash(
        &[layer(&[
            Symlink("x", "/etc"),
            File("x/passwd", "pwned"),
            Symlink("y", "x"),
            File("y/shadow", "pwned"),
        ])],
        0,
    )
    .unwrap();
    assert_eq!(lines, ["l x -> /etc", "l y -> x"]);
    assert_safe(&lines);
}

#[test]
fn writes_through_a_lower_symlink_turn_it_into_a_directory() {
    // The engine unpacks every layer on its own, so `x/passwd` in an upper layer makes `x`
    // a directory there; the symlink is replaced, never followed.
    let layers = [
        layer(&[
            Dir("etc"),
            File("etc/passwd", "root"),
            Symlink("x", "/etc"),
            Symlink("chain", "x"),
        ]),
        layer(&[File("x/passwd", "mine"), File("chain/shadow", "mine")]),
    ];
    let (lines, _) = squash(&layers, 1).unwrap();
    assert_eq!(
        lines,
        [
            "d chain/ 755",
            "d x/ 755",
            "f x/passwd 644 =mine",
            "f chain/shadow 644 =mine"
        ]
    );
    assert_safe(&lines);
}

#[test]
fn hard_links_must_point_to_an_earlier_file_of_their_layer() {
    let cases = [
        (
            vec![Hard("l", "etc/passwd")],
            "not an earlier file of the same layer",
        ),
        (
            vec![Hard("l", "later"), File("later", "x")],
            "not an earlier file of the same layer",
        ),
        (vec![Dir("d"), Hard("l", "d")], "points to the directory"),
        (
            vec![Hard("l", "/")],
            "not an earlier file of the same layer",
        ),
    ];
    for (entries, expected) in cases {
        let layers = [
            layer(&[Dir("etc"), File("etc/passwd", "root")]),
            layer(&entries),
        ];
        let error = squash(&layers, 1).unwrap_err().to_string();
        assert!(error.contains(expected), "{entries:?}: {error}");
    }
}

#[test]
fn hard_link_named_under_a_symlink_is_dropped() {
    let (lines, _) = squash(
        &[layer(&[
            File("f", "x"),
            Symlink("d", "/etc"),
            Hard("d/passwd", "f"),
        ])],
        0,
    )
    .unwrap();
    assert_eq!(lines, ["f f 644 =x", "l d -> /etc"]);
}

#[test]
fn malformed_entries_are_refused_with_the_entry_named() {
    let cases: Vec<(Vec<support::E>, &str)> = vec![
        (vec![File("a/.wh..", "")], "whiteout of nothing"),
        (
            vec![File("./", "root as a file")],
            "replaces the root directory",
        ),
        (vec![Raw("dev", b'S', b"")], "GNU sparse data"),
        (vec![Raw("odd", b'Z', b"")], "entry type 'Z'"),
        (
            vec![
                Raw("p", b'x', b"28 path=../../../etc/passwd\n"),
                File("x", "y"),
            ],
            "climbs out of the image",
        ),
    ];
    for (entries, expected) in cases {
        let error = squash(&[layer(&entries)], 0).unwrap_err().to_string();
        assert!(error.contains(expected), "{entries:?}: {error}");
    }
}

#[test]
fn truncated_and_garbage_layers_are_errors_not_panics() {
    let good = layer(&[File("a", "0123456789"), File("b", "x")]);
    for cut in [100, 512, 600, 1024 + 100] {
        let error = squash(&[good[..cut].to_vec()], 0).unwrap_err().to_string();
        assert!(
            error.contains("truncated") || error.contains("corrupt"),
            "cut at {cut}: {error}"
        );
    }
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    assert!(
        squash(&[garbage], 0)
            .unwrap_err()
            .to_string()
            .contains("checksum")
    );
}

#[test]
fn aufs_metadata_is_ignored_like_the_engine_does() {
    let (lines, _) = squash(
        &[layer(&[
            Dir(".wh..wh.plnk"),
            File(".wh..wh.plnk/1.2", "x"),
            File("a", "a"),
        ])],
        0,
    )
    .unwrap();
    assert_eq!(lines, ["f a 644 =a"]);
}
