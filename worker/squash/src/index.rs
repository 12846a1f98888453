//! The first pass over a layer: an index of names (paths, kinds, hard-link targets, symlink
//! targets, and the metadata of directories), never file contents. Layers can be indexed in
//! any order.

use crate::path::{self, PathError, Role};
use crate::tarfmt::{self, Meta, Source, TarError, TarReader};
use indexmap::IndexSet;

/// Path id meaning "none".
pub(crate) const NO_PATH: u32 = u32::MAX;

/// What went wrong while indexing a layer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Tar(#[from] TarError),
    #[error("entry {0}")]
    Path(#[from] PathError),
    #[error("'{0}' replaces the root directory with something that is not a directory")]
    RootNotDir(String),
    #[error("{0} paths in one stack is more than the squasher's index can hold")]
    TooManyPaths(usize),
}

/// Every path seen in any layer, interned once. A path's parent always has a smaller id, so
/// walking ids in order visits parents before children.
#[derive(Debug)]
pub(crate) struct Paths {
    set: IndexSet<Box<[u8]>>,
    parent: Vec<u32>,
}

impl Paths {
    pub(crate) fn new() -> Paths {
        let mut set = IndexSet::new();
        set.insert(Box::<[u8]>::from(&b""[..]));
        Paths {
            set,
            parent: vec![NO_PATH],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }

    pub(crate) fn get(&self, id: u32) -> &[u8] {
        &self.set[id as usize]
    }

    pub(crate) fn parent(&self, id: u32) -> u32 {
        self.parent[id as usize]
    }

    /// The id of a normalized path, if some layer has it or something under it.
    pub(crate) fn id(&self, path: &[u8]) -> Option<u32> {
        self.set.get_index_of(path).map(|id| id as u32)
    }

    /// Whether `path` is strictly under `dir` (ids only: a parent's id is always smaller).
    pub(crate) fn is_under(&self, path: u32, dir: u32) -> bool {
        if path <= dir {
            return false;
        }
        let mut at = self.parent(path);
        while at > dir {
            at = self.parent(at);
        }
        at == dir
    }

    /// The id of a normalized path, interning it and its ancestors.
    pub(crate) fn intern(&mut self, path: &[u8]) -> Result<u32, IndexError> {
        if let Some(id) = self.set.get_index_of(path) {
            return Ok(id as u32);
        }
        // Find the deepest known ancestor, then add the missing ones top-down.
        let mut missing = vec![path];
        let mut parent_id = loop {
            let parent = path::parent(missing[missing.len() - 1]).unwrap_or(b"");
            match self.set.get_index_of(parent) {
                Some(id) => break id as u32,
                None => missing.push(parent),
            }
        };
        for path in missing.into_iter().rev() {
            if self.set.len() >= NO_PATH as usize {
                return Err(IndexError::TooManyPaths(self.set.len()));
            }
            let (id, _) = self.set.insert_full(Box::from(path));
            self.parent.push(parent_id);
            parent_id = id as u32;
        }
        Ok(parent_id)
    }

    /// Approximate heap bytes held (for the memory figures in the benchmark).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.set.iter().map(|path| path.len() + 16).sum::<usize>()
            + self.set.capacity() * 33
            + self.parent.capacity() * 4
    }
}

/// The kind of one indexed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    HardLink,
    Special,
    Whiteout,
    Opaque,
    Ignored,
}

impl Kind {
    /// A real filesystem object (not a marker).
    pub(crate) fn is_real(self) -> bool {
        !matches!(self, Kind::Whiteout | Kind::Opaque | Kind::Ignored)
    }
}

/// One entry of a layer, in archive order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexEntry {
    /// The entry's path; for a whiteout the deleted path, for an opaque marker its directory.
    pub path: u32,
    /// Hard-link target (or `NO_PATH`).
    pub link: u32,
    pub kind: Kind,
}

/// The index of one layer.
#[derive(Debug, Default)]
pub(crate) struct LayerIndex {
    pub entries: Vec<IndexEntry>,
    /// Metadata of directory entries, by entry number (sorted).
    pub dirs: Vec<(u32, Meta)>,
    /// Targets of symlink entries as written, by entry number (sorted): what `crate::files`
    /// follows. Few in any image, unlike files.
    pub links: Vec<(u32, Box<[u8]>)>,
}

impl LayerIndex {
    pub(crate) fn dir_meta(&self, seq: u32) -> &Meta {
        let at = self
            .dirs
            .binary_search_by_key(&seq, |(s, _)| *s)
            .expect("directory entries keep their metadata");
        &self.dirs[at].1
    }

    pub(crate) fn link_target(&self, seq: u32) -> &[u8] {
        let at = self
            .links
            .binary_search_by_key(&seq, |(s, _)| *s)
            .expect("symlink entries keep their target");
        &self.links[at].1
    }
}

/// The normalized path of an entry and what it means.
pub(crate) fn classify(meta: &Meta) -> Result<(Vec<u8>, Role), PathError> {
    let path = path::normalize(&meta.path)?;
    let role = path::role(&path)?;
    Ok((path, role))
}

/// Indexes one layer tar read from `source`.
pub(crate) fn index_layer<S: Source>(
    paths: &mut Paths,
    source: S,
) -> Result<LayerIndex, IndexError> {
    let mut reader = TarReader::new(source);
    let mut index = LayerIndex::default();
    while let Some(mut meta) = reader.next_entry()? {
        let (path, role) = classify(&meta)?;
        let (path_id, kind, link) = match role {
            Role::Ignored => (NO_PATH, Kind::Ignored, NO_PATH),
            Role::Whiteout(target) => (paths.intern(&target)?, Kind::Whiteout, NO_PATH),
            Role::Opaque(dir) => (paths.intern(&dir)?, Kind::Opaque, NO_PATH),
            Role::Plain => {
                let kind = match meta.typeflag {
                    tarfmt::REGULAR => Kind::File,
                    tarfmt::DIRECTORY => Kind::Dir,
                    tarfmt::SYMLINK => Kind::Symlink,
                    tarfmt::HARD_LINK => Kind::HardLink,
                    _ => Kind::Special,
                };
                if path.is_empty() && kind != Kind::Dir {
                    return Err(IndexError::RootNotDir(
                        String::from_utf8_lossy(&meta.path).into_owned(),
                    ));
                }
                let link = if kind == Kind::HardLink {
                    paths.intern(&path::normalize(&meta.link)?)?
                } else {
                    NO_PATH
                };
                (paths.intern(&path)?, kind, link)
            }
        };
        if kind == Kind::Symlink {
            let target = std::mem::take(&mut meta.link).into_boxed_slice();
            index.links.push((index.entries.len() as u32, target));
        }
        if kind == Kind::Dir {
            meta.path = path;
            meta.pax.shrink_to_fit();
            index.dirs.push((index.entries.len() as u32, meta));
        }
        index.entries.push(IndexEntry {
            path: path_id,
            link,
            kind,
        });
        reader.copy_data(None, &mut [])?;
    }
    Ok(index)
}
