//! Turns the path of a tar entry into the one path it stands for inside the image (or an
//! error for a path that points outside it), and recognises whiteouts. Pure functions.

/// Prefix of a whiteout file: `.wh.NAME` deletes `NAME` from the layers below.
pub(crate) const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Marker that hides everything the layers below have inside its directory.
pub(crate) const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// Prefix of aufs metadata at the root, which the Docker Engine skips.
const AUFS_META_PREFIX: &[u8] = b".wh..wh.";

/// Why an entry's path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("'{0}' climbs out of the image with '..'")]
    Escapes(String),
    #[error("'{0}' contains a NUL byte")]
    Nul(String),
    #[error("'{0}' is a whiteout of nothing")]
    EmptyWhiteout(String),
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// The canonical form of `raw`: no leading `/` or `./`, no empty or `.` components, `..`
/// resolved lexically (as Go's `filepath.Clean` does in the engine), no trailing `/`.
/// The root is the empty path. A path whose `..` climbs above the root is refused.
pub(crate) fn normalize(raw: &[u8]) -> Result<Vec<u8>, PathError> {
    if raw.contains(&0) {
        return Err(PathError::Nul(lossy(raw)));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|byte| *byte == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(PathError::Escapes(lossy(raw)));
                }
            }
            part => parts.push(part),
        }
    }
    Ok(parts.join(&b'/'))
}

/// The parent of a normalized path (`None` for the root).
pub(crate) fn parent(path: &[u8]) -> Option<&[u8]> {
    if path.is_empty() {
        return None;
    }
    Some(match path.iter().rposition(|byte| *byte == b'/') {
        Some(slash) => &path[..slash],
        None => b"",
    })
}

/// `dir/name`, or `name` at the root.
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
    path.extend_from_slice(dir);
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

/// What a normalized entry path means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// An ordinary entry at this path.
    Plain,
    /// `.wh.NAME`: deletes this path (and its subtree) in the layers below.
    Whiteout(Vec<u8>),
    /// `.wh..wh..opq`: hides the lower contents of this directory.
    Opaque(Vec<u8>),
    /// aufs metadata the engine skips.
    Ignored,
}

/// Classifies a normalized path.
pub(crate) fn role(path: &[u8]) -> Result<Role, PathError> {
    let name_start = path
        .iter()
        .rposition(|byte| *byte == b'/')
        .map_or(0, |slash| slash + 1);
    let (dir, name) = (parent(path).unwrap_or(b""), &path[name_start..]);
    if name == OPAQUE_MARKER {
        return Ok(Role::Opaque(dir.to_vec()));
    }
    if path.starts_with(AUFS_META_PREFIX) {
        return Ok(Role::Ignored);
    }
    match name.strip_prefix(WHITEOUT_PREFIX) {
        Some(b"" | b"." | b"..") => Err(PathError::EmptyWhiteout(lossy(path))),
        Some(target) => Ok(Role::Whiteout(join(dir, target))),
        None => Ok(Role::Plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_table() {
        let ok: &[(&str, &str)] = &[
            ("etc/passwd", "etc/passwd"),
            ("./etc/passwd", "etc/passwd"),
            ("/etc/passwd", "etc/passwd"),
            ("//etc//./passwd/", "etc/passwd"),
            ("usr/bin/", "usr/bin"),
            ("a/b/../c", "a/c"),
            ("a/..", ""),
            ("./", ""),
            ("/", ""),
            ("", ""),
        ];
        for (raw, expected) in ok {
            assert_eq!(
                normalize(raw.as_bytes()).unwrap(),
                expected.as_bytes(),
                "{raw}"
            );
        }
        for raw in [
            "..",
            "../etc/passwd",
            "/../x",
            "a/../../x",
            "./a/b/../../../x",
        ] {
            assert_eq!(
                normalize(raw.as_bytes()),
                Err(PathError::Escapes(raw.to_owned())),
                "{raw}"
            );
        }
        assert!(matches!(normalize(b"a\0b"), Err(PathError::Nul(_))));
    }

    #[test]
    fn role_table() {
        let cases: &[(&str, Result<Role, ()>)] = &[
            ("etc/passwd", Ok(Role::Plain)),
            ("etc/.wh.passwd", Ok(Role::Whiteout(b"etc/passwd".to_vec()))),
            (".wh.etc", Ok(Role::Whiteout(b"etc".to_vec()))),
            ("etc/.wh..wh..opq", Ok(Role::Opaque(b"etc".to_vec()))),
            (".wh..wh..opq", Ok(Role::Opaque(Vec::new()))),
            (".wh..wh.plnk", Ok(Role::Ignored)),
            (".wh..wh.plnk/123", Ok(Role::Ignored)),
            ("a/.wh..wh.x", Ok(Role::Whiteout(b"a/.wh.x".to_vec()))),
            ("a/.wh.", Err(())),
            ("a/.wh..", Err(())),
            (".wh...", Err(())),
            ("a/x.wh.y", Ok(Role::Plain)),
        ];
        for (path, expected) in cases {
            assert_eq!(role(path.as_bytes()).map_err(|_| ()), *expected, "{path}");
        }
    }

    #[test]
    fn parent_and_join() {
        assert_eq!(parent(b"a/b/c"), Some(&b"a/b"[..]));
        assert_eq!(parent(b"a"), Some(&b""[..]));
        assert_eq!(parent(b""), None);
        assert_eq!(join(b"", b"x"), b"x");
        assert_eq!(join(b"a/b", b"x"), b"a/b/x");
    }
}
