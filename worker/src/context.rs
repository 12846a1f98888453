//! The build context: the checked-out repository (without `.git`), the lookaside sources
//! already downloaded into it, plus the files the rewrite adds (yum repo files, the
//! buildinfo Dockerfile) and the rewritten `Dockerfile`, written as one tar file.
//!
//! Symlinks are archived as symlinks, never followed: a repository holding
//! `leak -> /etc/shadow` must not put the worker's file into the image.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// Writes the context tar of `checkout` to `output`; `extra` files (name at the top of the
/// context → content) replace files of the same name.
pub fn write_context(
    checkout: &Path,
    extra: &BTreeMap<String, Vec<u8>>,
    output: &Path,
) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(BufWriter::new(File::create(output)?));
    builder.follow_symlinks(false);
    let mut entries: Vec<_> = std::fs::read_dir(checkout)?
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(|entry| (entry.file_name().to_string_lossy().into_owned(), entry))
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, entry) in entries {
        if name == ".git" || extra.contains_key(&name) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            builder.append_dir_all(&name, entry.path())?;
        } else {
            builder.append_path_with_name(entry.path(), &name)?;
        }
    }
    for (name, content) in extra {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(content.len() as u64);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, name, content.as_slice())?;
    }
    builder.into_inner()?.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn entries(tar_path: &Path) -> BTreeMap<String, (tar::EntryType, String)> {
        let mut archive = tar::Archive::new(File::open(tar_path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().display().to_string();
                let kind = entry.header().entry_type();
                let mut content = String::new();
                if kind == tar::EntryType::Symlink {
                    content = entry.link_name().unwrap().unwrap().display().to_string();
                } else {
                    let _ = entry.read_to_string(&mut content);
                }
                (path.trim_end_matches('/').to_owned(), (kind, content))
            })
            .collect()
    }

    #[test]
    fn context_keeps_symlinks_skips_git_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("src");
        std::fs::create_dir_all(checkout.join(".git/objects")).unwrap();
        std::fs::create_dir_all(checkout.join("files/sub")).unwrap();
        std::fs::write(checkout.join("Dockerfile"), "FROM original\n").unwrap();
        std::fs::write(checkout.join("files/sub/a.txt"), "a").unwrap();
        std::fs::write(checkout.join(".git/HEAD"), "ref").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", checkout.join("leak")).unwrap();
        let extra = BTreeMap::from([
            ("Dockerfile".to_owned(), b"FROM rewritten\n".to_vec()),
            ("x-1a2b3.repo".to_owned(), b"[x]\n".to_vec()),
        ]);
        let output = dir.path().join("context.tar");
        write_context(&checkout, &extra, &output).unwrap();
        let found = entries(&output);
        assert_eq!(found["Dockerfile"].1, "FROM rewritten\n");
        assert_eq!(found["x-1a2b3.repo"].1, "[x]\n");
        assert_eq!(found["files/sub/a.txt"].1, "a");
        assert_eq!(
            found["leak"],
            (tar::EntryType::Symlink, "/etc/hostname".into())
        );
        assert!(
            !found.keys().any(|path| path.starts_with(".git")),
            "{found:?}"
        );
        assert_eq!(found.keys().filter(|p| *p == "Dockerfile").count(), 1);
    }
}
