//! The merge decision, a pure function of the layers' name indexes: which entry of which
//! layer ends up in the squashed layer, under which name, and which whiteouts, opaque
//! markers and directories the squashed layer needs so that applying it on the base layers
//! gives exactly the filesystem of the whole stack.
//!
//! Semantics are the Docker Engine's (overlay2): each layer is unpacked on its own, so an
//! entry implies its parent directories in that layer; an upper entry replaces the lower one;
//! a directory over a directory merges; `.wh.NAME` deletes NAME and its subtree below;
//! `.wh..wh..opq` hides the lower contents of its directory; a non-directory hides the
//! lower subtree of its path (and, being contradictory, same-layer entries under it).
//!
//! "Hide levels" make that one sorted sweep: an event of layer `j` that hides lower layers
//! has level `2j+1`, one that also hides its own layer `2j+2`, and an event of layer `i` is
//! hidden when an ancestor's level exceeds `2i+1`.

use crate::index::{IndexEntry, Kind, LayerIndex, NO_PATH, Paths};
use crate::tarfmt::Meta;

/// What went wrong while planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(
        "layer {layer}: hard link '{link}' points to '{target}', which is not an earlier file of the same layer"
    )]
    LinkTarget {
        layer: usize,
        link: String,
        target: String,
    },
    #[error("layer {layer}: hard link '{link}' points to the directory '{target}'")]
    LinkToDir {
        layer: usize,
        link: String,
        target: String,
    },
    #[error("{0} layers is more than a stack can have")]
    TooManyLayers(usize),
    #[error(
        "cannot add a file under '/{path}': it is not a directory in the image (a symlink would have to be followed)"
    )]
    AddedUnderNonDir { path: String },
    #[error("cannot add the file '/{path}': the image has a directory there")]
    AddedOverDir { path: String },
}

/// What the data pass does with one entry of an upper layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Skip,
    /// Written as it is (under its normalized name).
    Emit,
    /// Its data is written under another path: it lost its own name but a hard link to it
    /// survives, and that link becomes the file.
    EmitAs(u32),
    /// Written as a hard link to this path.
    LinkTo(u32),
}

/// An entry of the squashed layer that the data pass does not stream (all header-only),
/// written first, sorted, so that every directory precedes what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadItem {
    /// The winning directory entry of an upper layer.
    Dir { layer: usize, seq: u32 },
    /// A directory the squashed layer must create (implied by entries, replacing a base
    /// non-directory or a deleted base directory).
    SyntheticDir(u32),
    /// `.wh..wh..opq` in this directory.
    Opaque(u32),
    /// `.wh.NAME` deleting this base path.
    Whiteout(u32),
}

/// The whole decision.
#[derive(Debug)]
pub(crate) struct Plan {
    pub head: Vec<HeadItem>,
    /// For each layer of the stack (bottom first), an action per entry; empty for base
    /// layers and for layers with nothing to write.
    pub actions: Vec<Vec<Action>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Whiteout,
    Implied,
    Opaque,
    Real,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    path: u32,
    layer: u16,
    class: Class,
    seq: u32,
    is_dir: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cur {
    Absent,
    Entry { layer: u16, seq: u32, is_dir: bool },
    Implied { layer: u16 },
}

impl Cur {
    fn apply(&mut self, event: &Event) {
        match event.class {
            Class::Whiteout => *self = Cur::Absent,
            Class::Implied => {
                if matches!(self, Cur::Absent | Cur::Entry { is_dir: false, .. }) {
                    *self = Cur::Implied { layer: event.layer };
                }
            }
            Class::Opaque => {}
            Class::Real => {
                *self = Cur::Entry {
                    layer: event.layer,
                    seq: event.seq,
                    is_dir: event.is_dir,
                }
            }
        }
    }

    fn present(self) -> bool {
        self != Cur::Absent
    }

    fn is_dir(self) -> bool {
        matches!(self, Cur::Implied { .. } | Cur::Entry { is_dir: true, .. })
    }
}

fn hide_level(event: &Event) -> u32 {
    let layer = u32::from(event.layer);
    match event.class {
        Class::Whiteout | Class::Opaque => 2 * layer + 1,
        Class::Real if !event.is_dir => 2 * layer + 2,
        _ => 0,
    }
}

fn hidden(ancestor_level: u32, layer: u16) -> bool {
    ancestor_level > 2 * u32::from(layer) + 1
}

/// Plans the squash of `layers` (bottom first) whose first `base_count` layers stay as they
/// are. With `added_top`, the top layer is what the squash adds (`crate::add`): the
/// directories its files need are created where the stack lacks them (any other layer's
/// implied directories are the engine's to create), and a parent that is not a directory
/// in the stack, or a directory at a file's path, is an error instead of being replaced.
pub(crate) fn plan(
    paths: &Paths,
    layers: &[&LayerIndex],
    base_count: usize,
    added_top: bool,
) -> Result<Plan, PlanError> {
    if layers.len() > usize::from(u16::MAX) {
        return Err(PlanError::TooManyLayers(layers.len()));
    }
    let events = events(paths, layers);
    let path_count = paths.len();
    // For each path, what its children inherit: the highest hide level among the path and
    // its ancestors (whole stack, and base layers only), and whether an upper layer hides
    // something at or above it (then the squashed layer already deletes that subtree).
    let mut sub_full = vec![0u32; path_count];
    let mut sub_base = vec![0u32; path_count];
    let mut covered = vec![false; path_count];
    let mut winners: Vec<Vec<bool>> = layers
        .iter()
        .enumerate()
        .map(|(layer, index)| {
            if layer < base_count {
                Vec::new()
            } else {
                vec![false; index.entries.len()]
            }
        })
        .collect();
    let mut head = Vec::new();
    let base = base_count as u16;
    // The added layer's number (none when nothing is added).
    let added = if added_top {
        layers.len().checked_sub(1).map(|top| top as u16)
    } else {
        None
    };

    let mut start = 0;
    while start < events.len() {
        let path = events[start].path;
        let end = start
            + events[start..]
                .iter()
                .take_while(|e| e.path == path)
                .count();
        let parent = paths.parent(path);
        let (h_full, h_base, cov) = if parent == NO_PATH {
            (0, 0, false)
        } else {
            let p = parent as usize;
            (sub_full[p], sub_base[p], covered[p])
        };
        let (mut full, mut base_cur) = (Cur::Absent, Cur::Absent);
        let (mut hide_full, mut hide_base, mut own_upper_hide) = (0u32, 0u32, false);
        for event in &events[start..end] {
            let level = hide_level(event);
            hide_full = hide_full.max(level);
            if event.layer < base {
                hide_base = hide_base.max(level);
            } else if level > 0 {
                own_upper_hide = true;
            }
            if !hidden(h_full, event.layer) {
                if Some(event.layer) == added {
                    check_added(paths, path, full, event)?;
                }
                full.apply(event);
            }
            if event.layer < base && !hidden(h_base, event.layer) {
                base_cur.apply(event);
            }
        }
        let p = path as usize;
        sub_full[p] = h_full.max(hide_full);
        sub_base[p] = h_base.max(hide_base);
        covered[p] = cov || own_upper_hide;

        // What the squashed layer needs for this path.
        let in_base = !cov && base_cur.present();
        match full {
            Cur::Entry { layer, seq, is_dir } if layer >= base => {
                winners[usize::from(layer)][seq as usize] = true;
                if is_dir {
                    head.push(HeadItem::Dir {
                        layer: usize::from(layer),
                        seq,
                    });
                }
            }
            Cur::Implied { layer }
                if (layer >= base && in_base && (!base_cur.is_dir() || own_upper_hide))
                    || Some(layer) == added =>
            {
                head.push(HeadItem::SyntheticDir(path));
            }
            _ => {}
        }
        if full.is_dir() && own_upper_hide && in_base && base_cur.is_dir() {
            head.push(HeadItem::Opaque(path));
        }
        if !full.present() && in_base {
            head.push(HeadItem::Whiteout(path));
        }
        start = end;
    }

    let mut actions = Vec::with_capacity(layers.len());
    for (layer, index) in layers.iter().enumerate() {
        if layer < base_count {
            actions.push(Vec::new());
            continue;
        }
        let layer_actions = link_actions(paths, layer, index, &winners[layer])?;
        actions.push(if layer_actions.iter().all(|a| *a == Action::Skip) {
            Vec::new()
        } else {
            layer_actions
        });
    }
    sort_head(paths, layers, &mut head);
    Ok(Plan { head, actions })
}

/// An event of the added layer on `path`, whose state below it is `below`: its files may
/// replace anything but a directory, and the directories they need must be directories
/// or absent (then created).
fn check_added(paths: &Paths, path: u32, below: Cur, event: &Event) -> Result<(), PlanError> {
    let name = || String::from_utf8_lossy(paths.get(path)).into_owned();
    match event.class {
        Class::Implied if below.present() && !below.is_dir() => {
            Err(PlanError::AddedUnderNonDir { path: name() })
        }
        Class::Real if below.is_dir() => Err(PlanError::AddedOverDir { path: name() }),
        _ => Ok(()),
    }
}

/// Every event, sorted by path (parents first), layer, class, then archive order.
fn events(paths: &Paths, layers: &[&LayerIndex]) -> Vec<Event> {
    let mut events = Vec::with_capacity(layers.iter().map(|l| l.entries.len() * 2).sum());
    let mut implied_mark = vec![0u16; paths.len()];
    for (layer, index) in layers.iter().enumerate() {
        let layer = layer as u16;
        for (seq, entry) in index.entries.iter().enumerate() {
            let class = match entry.kind {
                Kind::Ignored => continue,
                Kind::Whiteout => Class::Whiteout,
                Kind::Opaque => Class::Opaque,
                _ => Class::Real,
            };
            events.push(Event {
                path: entry.path,
                layer,
                class,
                seq: seq as u32,
                is_dir: entry.kind == Kind::Dir,
            });
            // The directories this entry needs in its layer.
            let mut dir = if entry.kind == Kind::Opaque {
                entry.path
            } else {
                paths.parent(entry.path)
            };
            while dir != NO_PATH && implied_mark[dir as usize] != layer + 1 {
                implied_mark[dir as usize] = layer + 1;
                events.push(Event {
                    path: dir,
                    layer,
                    class: Class::Implied,
                    seq: 0,
                    is_dir: true,
                });
                dir = paths.parent(dir);
            }
        }
    }
    events.sort_unstable_by_key(|e| (e.path, e.layer, e.class, e.seq));
    events
}

/// Actions for one upper layer: winners are written; a hard link whose data-bearing entry
/// lost its name gets the data itself (the first surviving link of that inode), and the
/// other surviving links point to it.
fn link_actions(
    paths: &Paths,
    layer: usize,
    index: &LayerIndex,
    winners: &[bool],
) -> Result<Vec<Action>, PlanError> {
    let entries: &[IndexEntry] = &index.entries;
    let mut actions = vec![Action::Skip; entries.len()];
    let mut root = vec![0u32; entries.len()];
    let mut promoted = std::collections::HashMap::<u32, u32>::new();
    let mut last_real = std::collections::HashMap::<u32, u32>::new();
    let name = |id: u32| String::from_utf8_lossy(paths.get(id)).into_owned();
    for (seq, entry) in entries.iter().enumerate() {
        let seq32 = seq as u32;
        root[seq] = seq32;
        if entry.kind == Kind::HardLink {
            let Some(&target) = last_real.get(&entry.link) else {
                return Err(PlanError::LinkTarget {
                    layer,
                    link: name(entry.path),
                    target: name(entry.link),
                });
            };
            if entries[target as usize].kind == Kind::Dir {
                return Err(PlanError::LinkToDir {
                    layer,
                    link: name(entry.path),
                    target: name(entry.link),
                });
            }
            root[seq] = root[target as usize];
        }
        if entry.kind.is_real() {
            last_real.insert(entry.path, seq32);
        }
        if !winners[seq] || entry.kind == Kind::Dir {
            continue;
        }
        if entry.kind != Kind::HardLink {
            actions[seq] = Action::Emit;
            continue;
        }
        let data = root[seq];
        if winners[data as usize] {
            actions[seq] = Action::LinkTo(entries[data as usize].path);
        } else if let Some(&first) = promoted.get(&data) {
            actions[seq] = Action::LinkTo(first);
        } else {
            promoted.insert(data, entry.path);
            actions[data as usize] = Action::EmitAs(entry.path);
        }
    }
    Ok(actions)
}

/// The name a head item is written under, and its rank among items of the same key (a
/// directory's opaque marker comes right after the directory).
fn head_key<'a>(paths: &'a Paths, layers: &'a [&LayerIndex], item: &HeadItem) -> (&'a [u8], u8) {
    match item {
        HeadItem::Dir { layer, seq } => {
            let entry = layers[*layer].entries[*seq as usize];
            (paths.get(entry.path), 0)
        }
        HeadItem::SyntheticDir(path) => (paths.get(*path), 0),
        HeadItem::Opaque(path) => (paths.get(*path), 1),
        HeadItem::Whiteout(path) => (paths.get(*path), 2),
    }
}

fn sort_head(paths: &Paths, layers: &[&LayerIndex], head: &mut [HeadItem]) {
    // A whiteout is written as `dir/.wh.name`; ordering by the deleted path keeps it after
    // its directory, which is all that matters.
    head.sort_by(|a, b| head_key(paths, layers, a).cmp(&head_key(paths, layers, b)));
}

/// The metadata the head item is written with.
pub(crate) fn head_meta(paths: &Paths, layers: &[&LayerIndex], item: &HeadItem) -> Meta {
    use crate::path::{OPAQUE_MARKER, WHITEOUT_PREFIX, join, parent};
    use crate::tarfmt::{DIRECTORY, REGULAR};
    let with_slash = |mut path: Vec<u8>| {
        if !path.is_empty() {
            path.push(b'/');
        } else {
            path.extend_from_slice(b"./");
        }
        path
    };
    match item {
        HeadItem::Dir { layer, seq } => {
            let mut meta = layers[*layer].dir_meta(*seq).clone();
            meta.path = with_slash(std::mem::take(&mut meta.path));
            meta
        }
        HeadItem::SyntheticDir(path) => {
            Meta::synthetic(with_slash(paths.get(*path).to_vec()), DIRECTORY, 0o755)
        }
        HeadItem::Opaque(path) => {
            Meta::synthetic(join(paths.get(*path), OPAQUE_MARKER), REGULAR, 0o600)
        }
        HeadItem::Whiteout(path) => {
            let path = paths.get(*path);
            let dir = parent(path).unwrap_or(b"");
            let name = if dir.is_empty() {
                path
            } else {
                &path[dir.len() + 1..]
            };
            let mut whiteout = WHITEOUT_PREFIX.to_vec();
            whiteout.extend_from_slice(name);
            Meta::synthetic(join(dir, &whiteout), REGULAR, 0o600)
        }
    }
}
