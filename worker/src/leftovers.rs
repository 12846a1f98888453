//! What a build leaves in the engine and on disk, written down as it is made, so that a
//! worker killed mid-build has it removed by the next worker that starts on the host.
//!
//! Each attempt keeps a ledger, `<work_dir>/<attempt>.objects`, locked (`flock`) for as long
//! as the attempt lives: one line per step container and image the build made. The lock is
//! the engine's and the kernel's own word that the attempt is alive: a killed process lets it
//! go. A starting worker takes every ledger it can lock (so never a live one of another
//! worker sharing the directory) and removes what it lists, then the attempt's directory.
//! This is what lets the build keep its step containers (`rm=false`) and remove them after
//! the result is published, off the build's path (issue 13).

use rustix::fs::{FlockOperation, flock};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The ledger files' suffix in the work directory.
const SUFFIX: &str = ".objects";
/// A ledger larger than this is not one the worker wrote: read no further.
const MAX_LEDGER_BYTES: u64 = 1024 * 1024;

/// What one ledger lists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Left {
    pub containers: Vec<String>,
    pub images: Vec<String>,
}

/// The lines of a ledger, kept only where each is what the worker writes: a container id
/// (12 to 64 hex digits: the classic builder names its step containers by the short id) or one of the worker's own temporary image references (so that a damaged
/// file can never name a base image or a user's container).
pub fn parse(text: &str) -> Left {
    let mut left = Left::default();
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("container", id)) if is_container_id(id) => left.containers.push(id.into()),
            Some(("image", reference)) if is_temporary_image(reference) => {
                left.images.push(reference.into())
            }
            _ => {}
        }
    }
    left
}

fn is_container_id(id: &str) -> bool {
    (12..=64).contains(&id.len()) && id.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn is_temporary_image(reference: &str) -> bool {
    reference.starts_with(crate::pipeline::TEMPORARY_NAMESPACE)
        && reference
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"/:-_.".contains(&byte))
}

/// A live attempt's ledger, locked until dropped.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: Mutex<File>,
}

impl Ledger {
    /// Locks a new ledger for `attempt_dir` (a child of the work directory) and creates the
    /// directory. The file is locked under a name no sweep reads, then renamed into place,
    /// so a sweep never finds a ledger whose attempt has not locked it yet.
    pub fn open(attempt_dir: &Path) -> std::io::Result<Ledger> {
        let path = ledger_path(attempt_dir);
        let fresh = path.with_extension("objects-new");
        if let Some(parent) = attempt_dir.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&fresh)?;
        flock(&file, FlockOperation::NonBlockingLockExclusive)?;
        std::fs::rename(&fresh, &path)?;
        std::fs::create_dir_all(attempt_dir)?;
        Ok(Ledger {
            path,
            file: Mutex::new(file),
        })
    }

    /// Writes down a step container the build made.
    pub fn container(&self, id: &str) {
        self.note("container", id);
    }

    /// Writes down an image reference the build made.
    pub fn image(&self, reference: &str) {
        self.note("image", reference);
    }

    fn note(&self, kind: &str, value: &str) {
        let mut file = self.file.lock().expect("ledger lock");
        if let Err(error) = writeln!(file, "{kind} {value}") {
            tracing::warn!(ledger = %self.path.display(), error = %error, "cannot write down what the build made: a crash now would leave it behind");
        }
    }

    /// Everything it lists is removed: the ledger goes (still locked while it is unlinked).
    pub fn close(self) {
        remove_ledger(&self.path);
    }
}

fn ledger_path(attempt_dir: &Path) -> PathBuf {
    let mut name = attempt_dir.as_os_str().to_owned();
    name.push(SUFFIX);
    PathBuf::from(name)
}

fn remove_ledger(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(ledger = %path.display(), error = %error, "cannot remove a build's ledger");
    }
}

/// A dead attempt's ledger, locked by this process: what to remove.
#[derive(Debug)]
pub struct Dead {
    pub attempt_dir: PathBuf,
    pub left: Left,
    ledger: PathBuf,
    _lock: File,
}

impl Dead {
    /// Its objects and directory are gone: the ledger goes.
    pub fn close(self) {
        remove_ledger(&self.ledger);
    }
}

/// The ledgers in `work_dir` that no live process holds (their attempts died), each now
/// locked by this process. A work directory that does not exist has none.
pub fn dead_attempts(work_dir: &Path) -> std::io::Result<Vec<Dead>> {
    let entries = match std::fs::read_dir(work_dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        entries => entries?,
    };
    let mut dead = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|name| name.strip_suffix(SUFFIX)) else {
            continue;
        };
        if stem.is_empty() || !entry.file_type()?.is_file() {
            continue;
        }
        if let Some(found) = take_if_dead(&entry.path(), &work_dir.join(stem))? {
            dead.push(found);
        }
    }
    Ok(dead)
}

/// The ledger at `path`, locked, when no live attempt holds it.
fn take_if_dead(path: &Path, attempt_dir: &Path) -> std::io::Result<Option<Dead>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
    {
        // Another sweep removed it since the listing.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        file => file?,
    };
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => return Ok(None),
        Err(errno) => return Err(errno.into()),
    }
    let mut text = String::new();
    (&file).take(MAX_LEDGER_BYTES).read_to_string(&mut text)?;
    Ok(Some(Dead {
        attempt_dir: attempt_dir.to_owned(),
        left: parse(&text),
        ledger: path.to_owned(),
        _lock: file,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn only_what_the_worker_writes_is_read() {
        let table: &[(&str, &[&str], &[&str])] = &[
            ("", &[], &[]),
            (
                &format!("container {ID}\nimage osbs-worker/build-b1:1\n"),
                &[ID],
                &["osbs-worker/build-b1:1"],
            ),
            // The builder's short ids are read.
            ("container c58230bf8c4c\n", &["c58230bf8c4c"], &[]),
            // A shorter or non-hex id, another kind, a base image, spaces: never removed.
            (
                "container abc\ncontainer c58230bf8c4\ncontainer zzzzzzzzzzzz\nvolume x\nimage busybox:latest\n",
                &[],
                &[],
            ),
            (
                "image osbs-worker/build-b1:1 --force\nimage osbs-worker/x y\n",
                &[],
                &[],
            ),
            // A line cut by a crash mid-write is dropped, the ones before it kept.
            (&format!("container {ID}\ncontainer 0123"), &[ID], &[]),
        ];
        for (text, containers, images) in table {
            let left = parse(text);
            assert_eq!(left.containers, *containers, "{text:?}");
            assert_eq!(left.images, *images, "{text:?}");
        }
    }

    #[test]
    fn a_live_ledger_is_never_taken_a_dead_one_is() {
        let root = tempfile::tempdir().unwrap();
        let live_dir = root.path().join("b1-1-aaaaaaaa");
        let live = Ledger::open(&live_dir).unwrap();
        assert!(live_dir.is_dir());
        live.container(ID);
        live.image("osbs-worker/build-b1:1");
        // Another process's lock: a second open file description of the same file.
        assert!(dead_attempts(root.path()).unwrap().is_empty());

        let dead_dir = root.path().join("b2-1-bbbbbbbb");
        std::fs::create_dir_all(&dead_dir).unwrap();
        std::fs::write(
            root.path().join("b2-1-bbbbbbbb.objects"),
            format!("container {ID}\n"),
        )
        .unwrap();
        // Not ledgers: a directory with the suffix, an unrelated file, a symlink.
        std::fs::create_dir(root.path().join("x.objects")).unwrap();
        std::fs::write(root.path().join("notes.txt"), "container").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("y.objects")).unwrap();
        let found = dead_attempts(root.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].attempt_dir, dead_dir);
        assert_eq!(found[0].left.containers, [ID]);
        // Locked by the sweep now: a second sweep does not take it too.
        assert!(dead_attempts(root.path()).unwrap().is_empty());
        found.into_iter().for_each(Dead::close);
        assert!(!root.path().join("b2-1-bbbbbbbb.objects").exists());

        live.close();
        assert!(!root.path().join("b1-1-aaaaaaaa.objects").exists());
        assert!(
            dead_attempts(&root.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
