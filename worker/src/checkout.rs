//! The checked-out commit, seen through one directory handle: every file the worker reads
//! from it or writes into it is opened beneath that handle, never through a symlink that
//! leads out.
//!
//! A commit is the packager's input, symlinks included: `Dockerfile -> /etc/shadow` must not
//! make the worker read its own host's file, and `payload.tgz -> /etc/cron.d/x` must not
//! make a download land there. Reads go through `openat2(RESOLVE_BENEATH)`: a symlink that
//! stays in the checkout works, one that leaves it (an absolute target, a `..` above the
//! top) fails with the path's name and nothing of what it points at. Writes create a fresh
//! file (`O_CREAT | O_EXCL`, a name of ours) and move it into place with
//! `renameat2(RENAME_NOREPLACE)`, which never follows or replaces what is there.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most the worker reads of a text file of the commit (Dockerfile, `sources`,
/// `.dockerignore`): far above any real one, and a bound on what a commit can make it hold.
pub const TEXT_LIMIT: u64 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error(
        "{name} in the commit is a symlink that leads out of the repository; the worker reads and writes only files inside the checkout: commit the file itself, or a relative symlink to a file of the repository"
    )]
    Escapes { name: String },
    #[error(
        "{name} in the commit goes through too many symlinks; commit the file itself, or one symlink to a file of the repository"
    )]
    Loop { name: String },
    #[error("{name} in the commit is {kind}, not a file; commit a regular file")]
    NotAFile { name: String, kind: &'static str },
    #[error("{name} in the commit is larger than {limit} bytes; keep it small")]
    TooLarge { name: String, limit: u64 },
    #[error("{name} in the commit is not UTF-8 text; save it as UTF-8")]
    NotText { name: String },
    #[error(
        "{name} already exists in the checkout; a download may not replace a file of the commit"
    )]
    Exists { name: String },
    /// The worker's own fault (disk full, permissions of its work directory).
    #[error("cannot {action} {name} in the checkout {dir}: {detail}")]
    Io {
        action: &'static str,
        name: String,
        dir: String,
        detail: String,
    },
}

impl CheckoutError {
    /// The packager's input is at fault, not the worker.
    pub fn is_packager_error(&self) -> bool {
        !matches!(self, CheckoutError::Io { .. })
    }
}

/// The checkout's top directory, held open.
#[derive(Debug, Clone)]
pub struct Checkout {
    dir: Arc<OwnedFd>,
    path: PathBuf,
}

/// A download being written: a fresh file in the checkout, under a name of the worker's.
#[derive(Debug)]
pub struct Download {
    pub file: File,
    name: String,
}

impl Checkout {
    /// Opens the checkout at `path` (a directory the worker made; not a symlink).
    pub fn open(path: &Path) -> Result<Checkout, CheckoutError> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|errno| CheckoutError::Io {
            action: "open",
            name: ".".into(),
            dir: path.display().to_string(),
            detail: errno.to_string(),
        })?;
        Ok(Checkout {
            dir: Arc::new(dir),
            path: path.to_owned(),
        })
    }

    /// Where the checkout is (for messages and the engine's context walk).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The top directory's handle.
    pub fn dir(&self) -> &OwnedFd {
        &self.dir
    }

    /// The regular file `name` (a path relative to the top) as UTF-8 text of at most
    /// `limit` bytes; `None` when the commit has no such file.
    pub fn read_text(&self, name: &str, limit: u64) -> Result<Option<String>, CheckoutError> {
        let Some(bytes) = self.read(name, limit)? else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| CheckoutError::NotText { name: name.into() })
    }

    /// The regular file `name` of at most `limit` bytes; `None` when there is none.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, CheckoutError> {
        let file = match open_beneath(&self.dir, name, OFlags::empty(), ResolveFlags::empty()) {
            Ok(file) => file,
            Err(Errno::NOENT) => return Ok(None),
            Err(errno) => return Err(self.refusal(name, "open", errno)),
        };
        let kind = FileType::from_raw_mode(
            rustix::fs::fstat(&file)
                .map_err(|errno| self.refusal(name, "stat", errno))?
                .st_mode,
        );
        if kind != FileType::RegularFile {
            return Err(CheckoutError::NotAFile {
                name: name.into(),
                kind: kind_name(kind),
            });
        }
        let mut bytes = Vec::new();
        File::from(file)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| self.io("read", name, error.to_string()))?;
        if bytes.len() as u64 > limit {
            return Err(CheckoutError::TooLarge {
                name: name.into(),
                limit,
            });
        }
        Ok(Some(bytes))
    }

    /// A fresh, empty file at the top of the checkout to download into; nothing else can be
    /// at its name (`O_EXCL`), so nothing is followed.
    pub fn create_download(&self) -> Result<Download, CheckoutError> {
        let name = format!(".osbs-download-{}", uuid::Uuid::new_v4().simple());
        let fd = rustix::fs::openat(
            &*self.dir,
            name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|errno| self.io("create", &name, errno.to_string()))?;
        Ok(Download {
            file: File::from(fd),
            name,
        })
    }

    /// Moves a verified download to `name` at the top of the checkout. Refused when
    /// anything (a file, a symlink) already has that name: nothing is replaced or followed.
    pub fn install(&self, download: Download, name: &str) -> Result<(), CheckoutError> {
        let Download {
            file,
            name: temporary,
        } = download;
        drop(file);
        let moved = rustix::fs::renameat_with(
            &*self.dir,
            temporary.as_str(),
            &*self.dir,
            name,
            RenameFlags::NOREPLACE,
        );
        if let Err(errno) = moved {
            self.discard_named(&temporary);
            return Err(match errno {
                Errno::EXIST => CheckoutError::Exists { name: name.into() },
                errno => self.io("move a download to", name, errno.to_string()),
            });
        }
        Ok(())
    }

    /// Removes a download that failed (its bytes were never verified).
    pub fn discard(&self, download: Download) {
        let Download { file, name } = download;
        drop(file);
        self.discard_named(&name);
    }

    fn discard_named(&self, name: &str) {
        if let Err(errno) = rustix::fs::unlinkat(&*self.dir, name, AtFlags::empty()) {
            tracing::warn!(dir = %self.path.display(), file = name, error = %errno, "cannot remove a failed download; the work directory goes with the build");
        }
    }

    fn refusal(&self, name: &str, action: &'static str, errno: Errno) -> CheckoutError {
        match errno {
            Errno::XDEV => CheckoutError::Escapes { name: name.into() },
            Errno::LOOP => CheckoutError::Loop { name: name.into() },
            errno => self.io(action, name, errno.to_string()),
        }
    }

    fn io(&self, action: &'static str, name: &str, detail: String) -> CheckoutError {
        CheckoutError::Io {
            action,
            name: name.into(),
            dir: self.path.display().to_string(),
            detail,
        }
    }
}

/// Opens `path` read-only beneath `dir`: `..` may not climb above it and an absolute symlink
/// fails (`EXDEV`) instead of leaving it; `extra` adds to `RESOLVE_BENEATH`. Never blocks on
/// a FIFO, never becomes a controlling terminal.
pub(crate) fn open_beneath<P: rustix::path::Arg + Copy>(
    dir: &OwnedFd,
    path: P,
    flags: OFlags,
    extra: ResolveFlags,
) -> Result<OwnedFd, Errno> {
    let open = || {
        rustix::fs::openat2(
            dir,
            path,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK | flags,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS | extra,
        )
    };
    // openat2 answers EAGAIN when a rename elsewhere raced its `..` check: ask again.
    let mut result = open();
    for _ in 0..3 {
        if !matches!(result, Err(Errno::AGAIN)) {
            break;
        }
        result = open();
    }
    result
}

/// What a non-regular file is, in a packager's words.
pub(crate) fn kind_name(kind: FileType) -> &'static str {
    match kind {
        FileType::Directory => "a directory",
        FileType::Symlink => "a symlink",
        FileType::Fifo => "a FIFO",
        FileType::Socket => "a socket",
        FileType::CharacterDevice | FileType::BlockDevice => "a device",
        _ => "a special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Fixture {
        _dir: tempfile::TempDir,
        checkout: Checkout,
        outside: PathBuf,
        top: PathBuf,
    }

    /// A checkout holding a file, a subdirectory, symlinks inside and out, next to a file
    /// outside it with a secret.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside-secret");
        std::fs::write(&outside, "the canary secret").unwrap();
        let top = dir.path().join("src");
        std::fs::create_dir_all(top.join("docker")).unwrap();
        std::fs::write(top.join("docker/Dockerfile.real"), "FROM inside\n").unwrap();
        symlink("docker/Dockerfile.real", top.join("Dockerfile")).unwrap();
        symlink(&outside, top.join("absolute")).unwrap();
        symlink("../outside-secret", top.join("dotdot")).unwrap();
        symlink("../src/docker/Dockerfile.real", top.join("out-and-back")).unwrap();
        symlink("loop-b", top.join("loop-a")).unwrap();
        symlink("loop-a", top.join("loop-b")).unwrap();
        symlink("absolute", top.join("chained")).unwrap();
        symlink("missing", top.join("dangling")).unwrap();
        std::fs::write(top.join("big"), vec![b'x'; 100]).unwrap();
        std::fs::write(top.join("binary"), [0xff, 0xfe]).unwrap();
        let checkout = Checkout::open(&top).unwrap();
        Fixture {
            _dir: dir,
            checkout,
            outside,
            top,
        }
    }

    #[test]
    fn reads_stay_in_the_checkout() {
        let fixture = fixture();
        let checkout = &fixture.checkout;
        assert_eq!(
            checkout
                .read_text("Dockerfile", TEXT_LIMIT)
                .unwrap()
                .as_deref(),
            Some("FROM inside\n")
        );
        assert_eq!(
            checkout
                .read_text("docker/Dockerfile.real", TEXT_LIMIT)
                .unwrap()
                .as_deref(),
            Some("FROM inside\n")
        );
        assert!(checkout.read("nothing", TEXT_LIMIT).unwrap().is_none());
        assert!(checkout.read("dangling", TEXT_LIMIT).unwrap().is_none());
        for name in [
            "absolute",
            "dotdot",
            "out-and-back",
            "chained",
            "../outside-secret",
        ] {
            let error = checkout.read(name, TEXT_LIMIT).unwrap_err();
            assert!(
                matches!(error, CheckoutError::Escapes { .. }),
                "{name}: {error}"
            );
            let text = error.to_string();
            assert!(
                text.starts_with(&format!("{name} in the commit is a symlink")),
                "{text}"
            );
            assert!(!text.contains("canary"), "{text}");
            assert!(error.is_packager_error());
        }
        let absolute_path = fixture.outside.display().to_string();
        assert!(matches!(
            checkout.read(&absolute_path, TEXT_LIMIT).unwrap_err(),
            CheckoutError::Escapes { .. }
        ));
        assert!(matches!(
            checkout.read("loop-a", TEXT_LIMIT).unwrap_err(),
            CheckoutError::Loop { .. }
        ));
        assert!(matches!(
            checkout.read("docker", TEXT_LIMIT).unwrap_err(),
            CheckoutError::NotAFile {
                kind: "a directory",
                ..
            }
        ));
        assert!(matches!(
            checkout.read("big", 99).unwrap_err(),
            CheckoutError::TooLarge { limit: 99, .. }
        ));
        assert_eq!(checkout.read("big", 100).unwrap().unwrap().len(), 100);
        assert!(matches!(
            checkout.read_text("binary", TEXT_LIMIT).unwrap_err(),
            CheckoutError::NotText { .. }
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let fixture = fixture();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fixture.top.join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(matches!(
            fixture.checkout.read("pipe", TEXT_LIMIT).unwrap_err(),
            CheckoutError::NotAFile { kind: "a FIFO", .. }
        ));
    }

    #[test]
    fn downloads_never_follow_or_replace() {
        let fixture = fixture();
        let checkout = &fixture.checkout;
        let mut download = checkout.create_download().unwrap();
        std::io::Write::write_all(&mut download.file, b"verified bytes").unwrap();
        checkout.install(download, "payload.tgz").unwrap();
        assert_eq!(
            std::fs::read(fixture.top.join("payload.tgz")).unwrap(),
            b"verified bytes"
        );
        // Onto a committed symlink (absolute or not) or file: refused, nothing written there.
        for name in ["absolute", "dangling", "Dockerfile", "payload.tgz"] {
            let mut download = checkout.create_download().unwrap();
            std::io::Write::write_all(&mut download.file, b"attack").unwrap();
            let error = checkout.install(download, name).unwrap_err();
            assert!(
                matches!(error, CheckoutError::Exists { .. }),
                "{name}: {error}"
            );
        }
        assert_eq!(
            std::fs::read_to_string(&fixture.outside).unwrap(),
            "the canary secret"
        );
        assert!(!fixture.top.join("missing").exists());
        // Nothing of ours is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&fixture.top)
            .unwrap()
            .flatten()
            .filter(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".osbs-download-")
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let download = checkout.create_download().unwrap();
        checkout.discard(download);
        assert_eq!(std::fs::read_dir(&fixture.top).unwrap().count(), 12);
    }
}
