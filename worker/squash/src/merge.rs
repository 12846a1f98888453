//! The squasher's public core: index a stack of layer tars (first pass, names only), plan
//! the merge, then stream the data of the upper layers bottom-up into one layer tar,
//! skipping every shadowed entry. Nothing is unpacked: only tar bytes go in and out.

use crate::SquashError;
use crate::files::Files;
use crate::index::{self, LayerIndex, Paths};
use crate::plan::{self, Action, Plan};
use crate::tarfmt::{self, HARD_LINK, Sequential, Source, TarReader};
use osbs_registry::digest::HashingWriter;
use std::io::{self, BufRead, BufReader, Read, Write};

/// Layers indexed so far (in the order they were added, which need not be stack order).
#[derive(Debug)]
pub struct LayerStack {
    paths: Paths,
    layers: Vec<LayerIndex>,
}

/// A planned squash of some of a stack's layers.
#[derive(Debug)]
pub struct MergePlan {
    plan: Plan,
    /// Stack order (bottom first) as ids given by [`LayerStack::add_layer`].
    order: Vec<usize>,
}

impl MergePlan {
    /// Whether the data pass needs the layer with this id (base layers are never read
    /// again, nor upper layers whose every entry is shadowed).
    pub fn reads_layer(&self, id: usize) -> bool {
        self.order
            .iter()
            .position(|layer| *layer == id)
            .is_some_and(|position| !self.plan.actions[position].is_empty())
    }
}

/// The squashed layer that was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedLayer {
    /// `sha256:<hex>` of the uncompressed layer tar (its diff_id).
    pub diff_id: String,
    /// Bytes of the layer tar.
    pub size: u64,
}

impl Default for LayerStack {
    fn default() -> Self {
        LayerStack::new()
    }
}

impl LayerStack {
    pub fn new() -> LayerStack {
        LayerStack {
            paths: Paths::new(),
            layers: Vec::new(),
        }
    }

    /// Indexes one layer tar (plain; see [`decompress`] for gzip) and returns its id.
    pub fn add_layer<S: Source>(&mut self, source: S) -> Result<usize, SquashError> {
        let id = self.layers.len();
        let index =
            index::index_layer(&mut self.paths, source).map_err(|source| SquashError::Layer {
                layer: format!("#{id}"),
                source: source.into(),
            })?;
        self.layers.push(index);
        Ok(id)
    }

    /// Number of layers indexed.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether no layer was indexed.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Approximate heap bytes of the index (paths, entries, directory metadata, symlink
    /// targets).
    pub fn index_bytes(&self) -> usize {
        self.paths.heap_bytes()
            + self
                .layers
                .iter()
                .map(|layer| {
                    layer.entries.capacity() * std::mem::size_of::<index::IndexEntry>()
                        + layer
                            .dirs
                            .iter()
                            .map(|(_, meta)| 160 + meta.path.len())
                            .sum::<usize>()
                        + layer
                            .links
                            .iter()
                            .map(|(_, target)| 20 + target.len())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    /// Lookups in the merged filesystem of the stack `order` (layer ids, bottom first).
    pub fn files(&self, order: &[usize]) -> Files<'_> {
        Files::new(
            &self.paths,
            order.iter().map(|id| &self.layers[*id]).collect(),
        )
    }

    /// Plans the squash of the stack `order` (layer ids, bottom first) whose first
    /// `base_count` layers stay unchanged.
    pub fn plan(&self, order: &[usize], base_count: usize) -> Result<MergePlan, SquashError> {
        self.plan_with(order, base_count, false)
    }

    /// [`LayerStack::plan`] where the top layer of `order` is what the squash adds
    /// (`crate::add`): the directories its files need are created where the stack lacks
    /// them, and it never replaces a directory or a non-directory parent.
    pub(crate) fn plan_adding(
        &self,
        order: &[usize],
        base_count: usize,
    ) -> Result<MergePlan, SquashError> {
        self.plan_with(order, base_count, true)
    }

    fn plan_with(
        &self,
        order: &[usize],
        base_count: usize,
        added_top: bool,
    ) -> Result<MergePlan, SquashError> {
        assert!(
            base_count <= order.len(),
            "base_count {base_count} > {} layers",
            order.len()
        );
        let layers: Vec<&LayerIndex> = order.iter().map(|id| &self.layers[*id]).collect();
        let plan = plan::plan(&self.paths, &layers, base_count, added_top)?;
        Ok(MergePlan {
            plan,
            order: order.to_vec(),
        })
    }

    /// Streams the squashed layer into `out`. `open(id)` must give the same bytes as when
    /// the layer was indexed; it is called once per layer the data pass needs, bottom first.
    pub fn write<S: Source>(
        &self,
        plan: &MergePlan,
        open: impl FnMut(usize) -> io::Result<S>,
        out: impl Write,
    ) -> Result<MergedLayer, SquashError> {
        let mut out = HashingWriter::new(out, true);
        let size = {
            let mut buffered = io::BufWriter::with_capacity(1 << 20, &mut out);
            let size = self.pass(plan, open, &mut buffered, true)?;
            buffered.flush()?;
            size
        };
        debug_assert_eq!(size, out.count);
        Ok(MergedLayer {
            diff_id: out.digest().expect("hashed"),
            size,
        })
    }

    /// The size of the squashed layer, computed without reading file data (sources that
    /// can seek skip it).
    pub fn size<S: Source>(
        &self,
        plan: &MergePlan,
        open: impl FnMut(usize) -> io::Result<S>,
    ) -> Result<u64, SquashError> {
        self.pass(plan, open, &mut io::sink(), false)
    }

    fn pass<S: Source>(
        &self,
        merge: &MergePlan,
        mut open: impl FnMut(usize) -> io::Result<S>,
        out: &mut dyn Write,
        with_data: bool,
    ) -> Result<u64, SquashError> {
        let layers: Vec<&LayerIndex> = merge.order.iter().map(|id| &self.layers[*id]).collect();
        let plan = &merge.plan;
        let mut written = 0u64;
        let mut header = Vec::with_capacity(2048);
        for item in &plan.head {
            header.clear();
            tarfmt::encode_header(&plan::head_meta(&self.paths, &layers, item), &mut header);
            out.write_all(&header)?;
            written += header.len() as u64;
        }
        let mut buf = vec![0u8; 256 << 10];
        for (position, actions) in plan.actions.iter().enumerate() {
            if actions.is_empty() {
                continue;
            }
            let id = merge.order[position];
            let layer_error = |source: crate::LayerError| SquashError::Layer {
                layer: format!("#{id}"),
                source,
            };
            let source = open(id)?;
            let mut reader = TarReader::new(source);
            for (seq, action) in actions.iter().enumerate() {
                let Some(mut meta) = reader.next_entry().map_err(|e| layer_error(e.into()))? else {
                    return Err(layer_error(crate::LayerError::Changed));
                };
                let entry = layers[position].entries[seq];
                let name = |id: u32| self.paths.get(id).to_vec();
                if *action == Action::Skip {
                    continue;
                }
                if index::classify(&meta).ok().map(|(path, _)| path).as_deref()
                    != Some(self.paths.get(entry.path))
                {
                    return Err(layer_error(crate::LayerError::Changed));
                }
                match *action {
                    Action::Skip => unreachable!("skipped above"),
                    Action::Emit => meta.path = name(entry.path),
                    Action::EmitAs(path) => meta.path = name(path),
                    Action::LinkTo(target) => {
                        meta.path = name(entry.path);
                        meta.typeflag = HARD_LINK;
                        meta.link = name(target);
                        meta.size = 0;
                    }
                }
                header.clear();
                tarfmt::encode_header(&meta, &mut header);
                out.write_all(&header)?;
                written += header.len() as u64;
                if meta.typeflag == HARD_LINK {
                    continue;
                }
                let padding = tarfmt::padding(meta.size);
                if with_data {
                    reader
                        .copy_data(Some(&mut *out), &mut buf)
                        .map_err(|e| layer_error(e.into()))?;
                    out.write_all(&[0u8; 512][..padding as usize])?;
                } else {
                    reader
                        .copy_data(None, &mut buf)
                        .map_err(|e| layer_error(e.into()))?;
                }
                written += meta.size + padding;
            }
        }
        out.write_all(&[0u8; 1024])?;
        Ok(written + 1024)
    }
}

/// Squashes in-memory layer tars (plain or gzip, bottom first) whose first `base_count`
/// stay unchanged, writing the squashed layer to `out`.
pub fn squash_tars(
    layers: &[&[u8]],
    base_count: usize,
    out: impl Write,
) -> Result<MergedLayer, SquashError> {
    let mut stack = LayerStack::new();
    for layer in layers {
        stack.add_layer(decompress(*layer)?)?;
    }
    let order: Vec<usize> = (0..layers.len()).collect();
    let plan = stack.plan(&order, base_count)?;
    stack.write(&plan, |id| decompress(layers[id]), out)
}

/// [`squash_tars`] with `files` added on top as [`crate::squash_to_registry`] adds
/// [`crate::Additions::files`]: each file replaces what the stack has at its path, the
/// directories it needs are created (0755 root:root) only where the stack lacks them, and a
/// parent that is not a directory (or a directory at the file's path) is an error.
pub fn squash_tars_adding(
    layers: &[&[u8]],
    base_count: usize,
    files: &[crate::AddedFile],
    out: impl Write,
) -> Result<MergedLayer, SquashError> {
    let added = crate::add::files_tar(files)?;
    let mut stack = LayerStack::new();
    for layer in layers {
        stack.add_layer(decompress(*layer)?)?;
    }
    stack.add_layer(Sequential(&added[..]))?;
    let order: Vec<usize> = (0..=layers.len()).collect();
    let plan = stack.plan_adding(&order, base_count)?;
    stack.write(
        &plan,
        |id| match layers.get(id) {
            Some(layer) => decompress(*layer),
            None => Ok(Sequential(Box::new(&added[..]) as Box<dyn Read + Send>)),
        },
        out,
    )
}

/// A layer stream, gunzipped when it starts with the gzip magic.
pub fn decompress<'a, R: Read + Send + 'a>(
    reader: R,
) -> io::Result<Sequential<Box<dyn Read + Send + 'a>>> {
    let mut reader = BufReader::with_capacity(256 << 10, reader);
    let gzip = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(Sequential(if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    }))
}
