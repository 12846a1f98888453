//! Which paths exist in the filesystem of an indexed stack, and as what: lookups over the
//! layers' name indexes (nothing is read again), with the merge's semantics (`plan`'s
//! header: whiteouts, opaque directories, a non-directory hiding the subtree below it,
//! directories implied by the entries under them) and symlinks followed inside the image
//! root, never the host's.
//!
//! A path is walked one component at a time, as the kernel does: each component's state
//! is decided top-down over the layers that can still show it ("the floor": a whiteout, an
//! opaque marker or a non-directory on the way hides the layers below it), a symlink's
//! target replaces the components walked so far (absolute) or its own (relative), and `..`
//! stops at the root.

use crate::index::{Kind, LayerIndex, Paths};
use crate::saved::SavedImage;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

/// Symlinks followed in one lookup before the path counts as absent (Linux's limit).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// What a path is in the merged filesystem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file (or a hard link to one).
    File,
    Dir,
    /// Only from [`Files::find_link`]: a lookup that follows links never ends on one.
    Symlink,
    /// A device, fifo or socket.
    Other,
}

/// A path's state in the merged filesystem, its parent being a directory there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Absent,
    Dir,
    /// A symlink: the layer (position in the stack) and entry holding its target.
    Link(usize, u32),
    NotDir(FileKind),
}

/// What one layer says of one path.
#[derive(Debug, Default, Clone, Copy)]
struct Facts {
    /// Kind and entry number of the last real entry at the path.
    real: Option<(Kind, u32)>,
    whiteout: bool,
    opaque: bool,
    /// Something of the layer lies under the path: it is a directory in that layer.
    implied: bool,
}

impl Facts {
    fn of(paths: &Paths, layer: &LayerIndex, id: u32) -> Facts {
        let mut facts = Facts::default();
        for (seq, entry) in layer.entries.iter().enumerate() {
            match entry.kind {
                Kind::Ignored => {}
                kind if entry.path == id => match kind {
                    Kind::Whiteout => facts.whiteout = true,
                    Kind::Opaque => facts.opaque = true,
                    _ => facts.real = Some((kind, seq as u32)),
                },
                // A whiteout's or opaque marker's own file lies in (or under) the directory
                // holding the path it names, like any entry.
                _ => facts.implied |= paths.is_under(entry.path, id),
            }
        }
        facts
    }

    /// The path's state if this layer decides it (`None`: the layer says nothing of it).
    fn state(self, layer: usize) -> Option<State> {
        match self.real {
            Some((Kind::Dir, _)) => Some(State::Dir),
            Some((Kind::Symlink, seq)) => Some(State::Link(layer, seq)),
            Some((Kind::File | Kind::HardLink, _)) => Some(State::NotDir(FileKind::File)),
            Some(_) => Some(State::NotDir(FileKind::Other)),
            None if self.implied || self.opaque => Some(State::Dir),
            None if self.whiteout => Some(State::Absent),
            None => None,
        }
    }

    /// The lowest layer whose entries under the path can still show: a whiteout or opaque
    /// marker hides the layers below its own, a non-directory its own layer's too.
    fn cut(self, layer: usize) -> usize {
        match self.real {
            Some((kind, _)) if kind != Kind::Dir => layer + 1,
            _ if self.whiteout || self.opaque => layer,
            _ => 0,
        }
    }
}

/// Lookups in the merged filesystem of some layers of a [`LayerStack`]
/// ([`crate::LayerStack::files`]). Each path's state is computed once per `Files`.
#[derive(Debug)]
pub struct Files<'a> {
    paths: &'a Paths,
    /// Stack order, bottom first.
    layers: Vec<&'a LayerIndex>,
    /// Path id → its state and the floor of its children.
    known: RefCell<HashMap<u32, (State, usize)>>,
}

impl<'a> Files<'a> {
    pub(crate) fn new(paths: &'a Paths, layers: Vec<&'a LayerIndex>) -> Files<'a> {
        Files {
            paths,
            layers,
            known: RefCell::new(HashMap::new()),
        }
    }

    /// What the absolute (or root-relative) `path` is, every symlink followed.
    pub fn find(&self, path: &str) -> Option<FileKind> {
        self.resolve(path.as_bytes(), true)
    }

    /// [`Files::find`] where a symlink as the last component is the answer, not followed.
    pub fn find_link(&self, path: &str) -> Option<FileKind> {
        self.resolve(path.as_bytes(), false)
    }

    /// Those of `paths` that exist ([`Files::find`]), in their order.
    pub fn existing<'p>(&self, paths: &[&'p str]) -> Vec<&'p str> {
        paths
            .iter()
            .copied()
            .filter(|path| self.find(path).is_some())
            .collect()
    }

    fn resolve(&self, path: &[u8], follow_last: bool) -> Option<FileKind> {
        let root = (0, self.state(0, 0).1);
        // The directories walked so far (root first): path id and the floor of their children.
        let mut walked: Vec<(u32, usize)> = vec![root];
        let mut pending = components(path);
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            match name.as_slice() {
                b"." => continue,
                b".." => {
                    if walked.len() > 1 {
                        walked.pop();
                    }
                    continue;
                }
                _ => {}
            }
            let (dir, floor) = *walked.last().expect("the root stays");
            let id = self
                .paths
                .id(&crate::path::join(self.paths.get(dir), &name))?;
            let (state, children_floor) = self.state(id, floor);
            match state {
                State::Absent => return None,
                State::Dir => walked.push((id, children_floor)),
                State::Link(..) if pending.is_empty() && !follow_last => {
                    return Some(FileKind::Symlink);
                }
                State::Link(layer, seq) => {
                    hops += 1;
                    let target = self.layers[layer].link_target(seq);
                    if hops > MAX_SYMLINK_HOPS || target.is_empty() {
                        return None;
                    }
                    if target.starts_with(b"/") {
                        walked.truncate(1);
                    }
                    pending.extend(components(target));
                }
                State::NotDir(kind) => return pending.is_empty().then_some(kind),
            }
        }
        Some(FileKind::Dir)
    }

    /// The state of path `id` whose parent is a directory showing layers from `floor` up,
    /// and the floor of its own children.
    fn state(&self, id: u32, floor: usize) -> (State, usize) {
        if let Some(known) = self.known.borrow().get(&id) {
            return *known;
        }
        let facts: Vec<(usize, Facts)> = (floor..self.layers.len())
            .map(|layer| (layer, Facts::of(self.paths, self.layers[layer], id)))
            .collect();
        let state = facts
            .iter()
            .rev()
            .find_map(|(layer, facts)| facts.state(*layer))
            .unwrap_or(State::Absent);
        let children_floor = facts
            .iter()
            .map(|(layer, facts)| facts.cut(*layer))
            .fold(floor, usize::max);
        self.known.borrow_mut().insert(id, (state, children_floor));
        (state, children_floor)
    }
}

/// The components of `path`, last first (a stack to pop), empty ones dropped.
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|byte| *byte == b'/')
        .filter(|part| !part.is_empty())
        .rev()
        .map(<[u8]>::to_vec)
        .collect()
}

/// The filesystem of an image the squash indexed: its own layers, not what the squash adds.
/// Handed out by [`crate::squash_to_registry_when`] once the image is indexed, so that a
/// check beside the squash can look at the image without a container of it.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    image: Arc<SavedImage>,
}

impl ImageFiles {
    pub(crate) fn new(image: Arc<SavedImage>) -> ImageFiles {
        ImageFiles { image }
    }

    /// Lookups in the image's filesystem (CPU work over the whole index: off the async
    /// threads for a big image).
    pub fn files(&self) -> Files<'_> {
        let order: Vec<usize> = self.image.layers[..self.image.image_layers()]
            .iter()
            .map(|layer| layer.stack_id)
            .collect();
        self.image.stack.files(&order)
    }
}
