//! What the squash adds to the image besides the merge (issue 13): labels into the new
//! config and files into the new layer, standing in for builder steps (OSBS's buildinfo
//! `COPY` and injected `LABEL`, each a container created and committed by the classic
//! builder) at no cost, since the squash writes one new layer and one new config anyway.
//!
//! The files become one more layer on top of the stack, held in memory, planned like any
//! other (so they replace what the image has at their path) except that the directories
//! they need are created only where the image lacks them (an existing `/root` keeps its
//! mode and owner), and a parent that is not a directory in the image (a symlink `/root`,
//! which `COPY` would have followed) is an error rather than replaced.

use crate::SquashError;
use crate::path::{self, Role};
use crate::tarfmt::{self, Meta, REGULAR};

/// What the squash adds. Empty by default: nothing added, the squash of before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Additions {
    /// Set in the new config's `config.Labels`, over the image's (in order: a later one of
    /// the same name wins), values literal.
    pub labels: Vec<(String, String)>,
    /// The history's `created_by` for the labels (the instruction they stand for, e.g.
    /// `LABEL release="1"`); `osbs squash: ` is put before it.
    pub labels_created_by: String,
    /// More history entries for the labels, before the files' and `labels_created_by`'s:
    /// the instructions that came earlier in the Dockerfile (the final stage's own LABELs,
    /// when the squash writes them too), in order; `osbs squash: ` is put before each.
    pub earlier_labels_created_by: Vec<String>,
    /// Files written into the squashed layer.
    pub files: Vec<AddedFile>,
}

/// One file the squash writes into its layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedFile {
    /// Absolute path in the image, e.g. `/root/buildinfo/Dockerfile-a-1-1`.
    pub path: String,
    pub contents: Vec<u8>,
    /// Permission bits (0o644 as `COPY` of the worker's context gives); owner root:root.
    pub mode: u32,
    /// The history's `created_by` (the instruction it stands for); `osbs squash: ` is put
    /// before it.
    pub created_by: String,
}

impl Additions {
    /// Whether there is nothing to add.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.files.is_empty()
    }
}

/// The added files as a layer tar (regular files only: the planner creates the
/// directories the image lacks), mtime 0 as the worker's context gives its files.
pub(crate) fn files_tar(files: &[AddedFile]) -> Result<Vec<u8>, SquashError> {
    let mut out = Vec::new();
    for file in files {
        let bad = |rule: &str| SquashError::Target {
            what: "added file".into(),
            value: file.path.clone(),
            rule: rule.into(),
        };
        if !file.path.starts_with('/') {
            return Err(bad("give an absolute path"));
        }
        let normalized = path::normalize(file.path.as_bytes()).map_err(|e| bad(&e.to_string()))?;
        if normalized.is_empty() || normalized != file.path.as_bytes()[1..] {
            return Err(bad("give a clean path naming a file (no '.', '..', '//')"));
        }
        if !matches!(path::role(&normalized), Ok(Role::Plain)) {
            return Err(bad("a whiteout name cannot be added"));
        }
        let mut meta = Meta::synthetic(normalized, REGULAR, file.mode & 0o7777);
        meta.size = file.contents.len() as u64;
        tarfmt::encode_header(&meta, &mut out);
        out.extend_from_slice(&file.contents);
        out.extend_from_slice(&[0u8; 512][..tarfmt::padding(meta.size) as usize]);
    }
    out.extend_from_slice(&[0u8; 1024]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> AddedFile {
        AddedFile {
            path: path.into(),
            contents: b"FROM x\n".to_vec(),
            mode: 0o644,
            created_by: "COPY".into(),
        }
    }

    #[test]
    fn added_file_paths() {
        let long = format!("/root/buildinfo/Dockerfile-{}-1-1", "n".repeat(200));
        let cases: &[(&str, bool)] = &[
            ("/root/buildinfo/Dockerfile-a-1-1", true),
            (&long, true),
            ("root/x", false),
            ("/", false),
            ("/root/../etc/passwd", false),
            ("/root//x", false),
            ("/root/./x", false),
            ("/root/x/", false),
            ("/root/.wh.x", false),
            ("/root/.wh..wh..opq", false),
        ];
        for (path, ok) in cases {
            assert_eq!(files_tar(&[file(path)]).is_ok(), *ok, "{path}");
        }
    }

    #[test]
    fn the_tar_holds_the_files_as_root_owned_regular_files() {
        let long = format!("/root/buildinfo/Dockerfile-{}-1-1", "n".repeat(200));
        let tar = files_tar(&[file("/root/buildinfo/Dockerfile-a-1-1"), file(&long)]).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header().clone();
            let mut contents = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut contents).unwrap();
            assert_eq!(header.mode().unwrap(), 0o644);
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            assert_eq!(header.entry_type(), tar::EntryType::Regular);
            assert_eq!(contents, b"FROM x\n");
            seen.push(entry.path().unwrap().display().to_string());
        }
        assert_eq!(
            seen,
            ["root/buildinfo/Dockerfile-a-1-1", &long[1..]],
            "names are relative, long ones kept whole"
        );
        assert!(files_tar(&[]).unwrap().iter().all(|b| *b == 0));
    }
}
