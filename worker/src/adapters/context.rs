//! The build context adapter: the checked-out repository, the lookaside sources already
//! downloaded into it, plus the files the rewrite adds (yum repo files, the buildinfo
//! Dockerfile) and the rewritten `Dockerfile`, written as one tar file. What it leaves out
//! and how an added file is archived are [`crate::context`]'s rules (pure).
//!
//! The checkout is walked through directory handles ([`Checkout`]): every directory and
//! file is opened beneath its parent with no symlink on the way (`openat2`), so a name that
//! turned into a symlink can never make the worker read outside the checkout. Symlinks are
//! archived as symlinks, never followed: the engine resolves them inside the context, so
//! `leak -> /etc/shadow` cannot put the worker's file into the image, and a link that stays
//! in the repository works as it always did.

use crate::checkout::{Checkout, kind_name, open_beneath};
use crate::context::{self, DockerIgnore};
use rustix::fs::{AtFlags, FileType, OFlags, ResolveFlags, Stat};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Writes the context tar of `checkout` to `output`; `extra` files (name at the top of the
/// context → content) replace files of the same name. What the `.dockerignore` among them
/// excludes is left out of the checkout's part (the added files are always sent).
pub fn write_context(
    checkout: &Checkout,
    extra: &BTreeMap<String, Vec<u8>>,
    output: &Path,
) -> std::io::Result<()> {
    let ignore = match extra.get(".dockerignore") {
        Some(text) => DockerIgnore::parse(text).map_err(std::io::Error::other)?,
        None => DockerIgnore::default(),
    };
    let mut builder = tar::Builder::new(BufWriter::new(File::create(output)?));
    // Directories still to archive, relative to the top; reopened from the top when their
    // turn comes, so that no more than two handles are open however wide the tree is.
    let mut pending: Vec<PathBuf> = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = if relative.as_os_str().is_empty() {
            checkout.dir().try_clone()?
        } else {
            open_beneath(
                checkout.dir(),
                relative.as_path(),
                OFlags::DIRECTORY,
                ResolveFlags::NO_SYMLINKS,
            )
            .map_err(|errno| refused(&relative, errno))?
        };
        let mut subdirectories = Vec::new();
        for name in sorted_names(&dir)? {
            let path = relative.join(OsStr::from_bytes(&name));
            if context::leaves_out(relative.as_os_str().is_empty(), &name, extra) {
                continue;
            }
            let ignored = ignore.excludes(path.as_os_str().as_bytes());
            let stat = rustix::fs::statat(&dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|errno| refused(&path, errno))?;
            match FileType::from_raw_mode(stat.st_mode) {
                // An excluded directory is still walked when an exception may let a name
                // below it back in; the engine makes the missing parents.
                FileType::Directory if ignored && !ignore.has_exceptions() => {}
                FileType::Directory => {
                    if !ignored {
                        append_entry(&mut builder, &stat, tar::EntryType::Directory, &path)?;
                    }
                    subdirectories.push(path);
                }
                _ if ignored => {}
                FileType::RegularFile => append_file(&mut builder, &dir, &name, &path)?,
                FileType::Symlink => {
                    let target = rustix::fs::readlinkat(&dir, name.as_slice(), Vec::new())
                        .map_err(|errno| refused(&path, errno))?;
                    let mut header = header(&stat, tar::EntryType::Symlink, 0);
                    builder.append_link(
                        &mut header,
                        &path,
                        Path::new(OsStr::from_bytes(target.as_bytes())),
                    )?;
                }
                kind => {
                    return Err(std::io::Error::other(format!(
                        "{} in the commit is {}; the build context holds only files, directories and symlinks",
                        path.display(),
                        kind_name(kind)
                    )));
                }
            }
        }
        // Popped in name order.
        pending.extend(subdirectories.into_iter().rev());
    }
    for (name, content) in extra {
        let mut header = context::added_file_header(content.len());
        builder.append_data(&mut header, name, content.as_slice())?;
    }
    builder.into_inner()?.flush()
}

/// The entries of `dir` but `.` and `..`, in byte order.
fn sorted_names(dir: &OwnedFd) -> std::io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A regular file's entry: opened by its name in `dir`, which must not have become anything
/// else since it was listed; exactly the size its handle reports is archived.
fn append_file(
    builder: &mut tar::Builder<BufWriter<File>>,
    dir: &OwnedFd,
    name: &[u8],
    path: &Path,
) -> std::io::Result<()> {
    let fd = open_beneath(dir, name, OFlags::NOFOLLOW, ResolveFlags::NO_SYMLINKS)
        .map_err(|errno| refused(path, errno))?;
    let stat = rustix::fs::fstat(&fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(std::io::Error::other(format!(
            "{} in the commit changed while the build context was written",
            path.display()
        )));
    }
    let size = u64::try_from(stat.st_size).unwrap_or_default();
    let mut header = header(&stat, tar::EntryType::Regular, size);
    builder.append_data(&mut header, path, File::from(fd).take(size))
}

fn append_entry(
    builder: &mut tar::Builder<BufWriter<File>>,
    stat: &Stat,
    kind: tar::EntryType,
    path: &Path,
) -> std::io::Result<()> {
    let mut header = header(stat, kind, 0);
    builder.append_data(&mut header, path, std::io::empty())
}

/// A header with the entry's permissions and time: what the engine keeps of a context
/// file (owners are the image's business: COPY makes them root unless told otherwise).
fn header(stat: &Stat, kind: tar::EntryType, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(stat.st_mode & 0o7777);
    header.set_mtime(u64::try_from(stat.st_mtime).unwrap_or_default());
    header.set_size(size);
    header
}

/// A name that cannot be opened inside the checkout, said without what it points at.
fn refused(path: &Path, errno: rustix::io::Errno) -> std::io::Error {
    let why = match errno {
        rustix::io::Errno::XDEV | rustix::io::Errno::LOOP => {
            "leads out of the checkout or through a symlink".to_owned()
        }
        errno => errno.to_string(),
    };
    std::io::Error::other(format!(
        "{} in the commit cannot be archived: {why}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_path: &Path) -> BTreeMap<String, (tar::EntryType, String, u32)> {
        let mut archive = tar::Archive::new(File::open(tar_path).unwrap());
        archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let path = entry.path().unwrap().display().to_string();
                let kind = entry.header().entry_type();
                let mode = entry.header().mode().unwrap();
                let mut content = String::new();
                if kind == tar::EntryType::Symlink {
                    content = entry.link_name().unwrap().unwrap().display().to_string();
                } else {
                    let _ = entry.read_to_string(&mut content);
                }
                (path.trim_end_matches('/').to_owned(), (kind, content, mode))
            })
            .collect()
    }

    #[test]
    fn context_keeps_symlinks_skips_git_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("src");
        std::fs::create_dir_all(top.join(".git/objects")).unwrap();
        std::fs::create_dir_all(top.join("files/sub")).unwrap();
        std::fs::create_dir_all(top.join("zz/deeper/deepest")).unwrap();
        std::fs::write(top.join("Dockerfile"), "FROM original\n").unwrap();
        std::fs::write(top.join("files/sub/a.txt"), "a").unwrap();
        std::fs::write(top.join("zz/deeper/deepest/z.txt"), "z").unwrap();
        std::fs::write(top.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            top.join("run.sh"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(top.join(".git/HEAD"), "ref").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", top.join("leak")).unwrap();
        std::os::unix::fs::symlink("files/sub/a.txt", top.join("inside")).unwrap();
        std::os::unix::fs::symlink("../../zz", top.join("files/sub/up")).unwrap();
        let extra = BTreeMap::from([
            ("Dockerfile".to_owned(), b"FROM rewritten\n".to_vec()),
            ("x-1a2b3.repo".to_owned(), b"[x]\n".to_vec()),
        ]);
        let output = dir.path().join("context.tar");
        write_context(&Checkout::open(&top).unwrap(), &extra, &output).unwrap();
        let found = entries(&output);
        assert_eq!(found["Dockerfile"].1, "FROM rewritten\n");
        assert_eq!(found["x-1a2b3.repo"].1, "[x]\n");
        assert_eq!(found["files/sub/a.txt"].1, "a");
        assert_eq!(found["zz/deeper/deepest/z.txt"].1, "z");
        assert_eq!(found["run.sh"].2, 0o755);
        assert_eq!(found["files/sub"].0, tar::EntryType::Directory);
        let link = |target: &str| (tar::EntryType::Symlink, target.to_owned());
        let kind_and_target = |path: &str| (found[path].0, found[path].1.clone());
        assert_eq!(kind_and_target("leak"), link("/etc/hostname"));
        assert_eq!(kind_and_target("inside"), link("files/sub/a.txt"));
        assert_eq!(kind_and_target("files/sub/up"), link("../../zz"));
        assert!(
            !found.keys().any(|path| path.starts_with(".git")),
            "{found:?}"
        );
        assert_eq!(found.keys().filter(|p| *p == "Dockerfile").count(), 1);
    }

    #[test]
    fn dockerignore_leaves_out_what_it_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("src");
        std::fs::create_dir_all(top.join("secrets/keep")).unwrap();
        std::fs::create_dir_all(top.join("logs")).unwrap();
        std::fs::write(top.join("secrets/key"), "k").unwrap();
        std::fs::write(top.join("secrets/keep/ok"), "ok").unwrap();
        std::fs::write(top.join("logs/a.log"), "l").unwrap();
        std::fs::write(top.join("app.py"), "p").unwrap();
        std::fs::write(top.join("debug.log"), "d").unwrap();
        let ignore = "secrets\n!secrets/keep\n*.log\nlogs\nDockerfile\n";
        let extra = BTreeMap::from([
            ("Dockerfile".to_owned(), b"FROM x\n".to_vec()),
            (".dockerignore".to_owned(), ignore.as_bytes().to_vec()),
        ]);
        let output = dir.path().join("context.tar");
        write_context(&Checkout::open(&top).unwrap(), &extra, &output).unwrap();
        let found = entries(&output);
        let names: Vec<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                ".dockerignore",
                "Dockerfile",
                "app.py",
                "secrets/keep",
                "secrets/keep/ok"
            ],
            "{found:?}"
        );
        let bad = BTreeMap::from([(".dockerignore".to_owned(), b"[z-a]".to_vec())]);
        let error = write_context(&Checkout::open(&top).unwrap(), &bad, &output).unwrap_err();
        assert!(error.to_string().starts_with(".dockerignore: "), "{error}");
    }

    #[test]
    fn special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("src");
        std::fs::create_dir_all(top.join("d")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("d/pipe"),
            FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let error = write_context(
            &Checkout::open(&top).unwrap(),
            &BTreeMap::new(),
            &dir.path().join("context.tar"),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "d/pipe in the commit is a FIFO; the build context holds only files, directories and symlinks"
        );
    }
}
