//! The image as the squash's data pass sees it: an indexed stack of layers and, for each, where
//! its tar bytes are read again — a region of the export's spool (`archive` made it) or a
//! layer of the engine's store, assembled in place (`layerstore` finds it, [`read_store`]
//! indexes it). Both readers produce a [`SavedImage`]; neither knows the other. What the
//! squash adds (`crate::add`) goes on top of either as one more layer, held in memory.

use crate::SquashError;
use crate::layerstore::{self, StoreLocation, StoredLayer, TarSplitSource};
use crate::merge::LayerStack;
use crate::tarfmt::{Sequential, Source};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// One layer tar copied to the spool.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spooled {
    pub offset: u64,
    pub len: u64,
    pub gzip: bool,
}

/// Where a layer's tar bytes are read from for the data pass.
#[derive(Debug, Clone)]
pub(crate) enum Place {
    /// A region of the spool (the engine's export).
    Spool(Spooled),
    /// The engine's layer store, assembled in place.
    Store(Arc<StoredLayer>),
    /// A tar in memory: the files the squash adds (`crate::add`).
    Memory(Arc<[u8]>),
}

/// One layer of the image: its id in the stack and where its bytes are.
#[derive(Debug, Clone)]
pub(crate) struct LayerAt {
    pub stack_id: usize,
    pub place: Place,
}

/// The image, indexed and ready for the data pass.
#[derive(Debug)]
pub(crate) struct SavedImage {
    pub stack: LayerStack,
    /// The spool of the export (`None` when read from the layer store).
    spool: Option<File>,
    /// The image's layers in stack order (bottom first).
    pub layers: Vec<LayerAt>,
    /// The image config exactly as the engine stores it.
    pub config: Vec<u8>,
    /// Whether the top of `layers` is the squash's own additions ([`SavedImage::add_files`]),
    /// not a layer of the image.
    pub added: bool,
}

impl SavedImage {
    /// An image read from an export whose layers are regions of `spool`.
    pub(crate) fn from_spool(
        stack: LayerStack,
        spool: File,
        layers: Vec<LayerAt>,
        config: Vec<u8>,
    ) -> Self {
        SavedImage {
            stack,
            spool: Some(spool),
            layers,
            config,
            added: false,
        }
    }

    /// Puts `tar` (the files the squash adds, see `crate::add`) on top of the image's
    /// layers, whichever reader read them. Once only.
    pub(crate) fn add_files(&mut self, tar: Vec<u8>) -> Result<(), SquashError> {
        assert!(!self.added, "the additions are put on top once");
        let bytes: Arc<[u8]> = tar.into();
        let stack_id = self
            .stack
            .add_layer(Sequential(io::Cursor::new(Arc::clone(&bytes))))?;
        self.layers.push(LayerAt {
            stack_id,
            place: Place::Memory(bytes),
        });
        self.added = true;
        Ok(())
    }

    /// The image's own layers (without the additions).
    pub(crate) fn image_layers(&self) -> usize {
        self.layers.len() - usize::from(self.added)
    }

    /// The layer `stack_id` of the stack, from its start.
    pub(crate) fn open_id(&self, stack_id: usize) -> io::Result<LayerSource<'_>> {
        let layer = self
            .layers
            .iter()
            .find(|layer| layer.stack_id == stack_id)
            .expect("every layer of the stack is placed");
        self.open(layer)
    }

    /// A layer's tar bytes, from the start.
    pub(crate) fn open(&self, layer: &LayerAt) -> io::Result<LayerSource<'_>> {
        Ok(match &layer.place {
            Place::Spool(spooled) => LayerSource::Spool(SpoolSource::open(
                self.spool.as_ref().expect("spooled layers have a spool"),
                *spooled,
            )),
            Place::Store(stored) => {
                LayerSource::Store(Box::new(TarSplitSource::open(Arc::clone(stored))?))
            }
            Place::Memory(bytes) => LayerSource::Memory(io::Cursor::new(Arc::clone(bytes))),
        })
    }
}

/// A layer opened for reading, wherever it lives.
#[derive(Debug)]
pub(crate) enum LayerSource<'a> {
    Spool(SpoolSource<'a>),
    Store(Box<TarSplitSource>),
    Memory(io::Cursor<Arc<[u8]>>),
}

impl Read for LayerSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            LayerSource::Spool(source) => source.read(buf),
            LayerSource::Store(source) => source.read(buf),
            LayerSource::Memory(source) => source.read(buf),
        }
    }
}

impl Source for LayerSource<'_> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        match self {
            LayerSource::Spool(source) => source.skip(n),
            LayerSource::Store(source) => source.skip(n),
            LayerSource::Memory(source) => {
                let delta = i64::try_from(n).map_err(io::Error::other)?;
                source.seek(SeekFrom::Current(delta)).map(|_| ())
            }
        }
    }
}

/// Reads `image_id` (with `diff_ids`, bottom first) from the engine's layer store and
/// indexes every layer. `Err` is the reason the store cannot be used; the caller falls back
/// to the export.
pub(crate) fn read_store(
    location: &StoreLocation,
    image_id: &str,
    diff_ids: &[String],
) -> Result<SavedImage, String> {
    let (config, layers) = layerstore::locate(location, image_id, diff_ids)?;
    let mut stack = LayerStack::new();
    let mut placed = Vec::with_capacity(layers.len());
    for layer in layers {
        let layer = Arc::new(layer);
        let source = TarSplitSource::open(Arc::clone(&layer))
            .map_err(|e| format!("layer {}: {e}", layer.diff_id))?;
        let stack_id = stack
            .add_layer(source)
            .map_err(|e| format!("layer {}: {e}", layer.diff_id))?;
        placed.push(LayerAt {
            stack_id,
            place: Place::Store(layer),
        });
    }
    Ok(SavedImage {
        stack,
        spool: None,
        layers: placed,
        config,
        added: false,
    })
}

/// A region of the spool, read with positioned reads (so clones never share an offset).
#[derive(Debug)]
pub(crate) struct SpoolSlice<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl Read for SpoolSlice<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.start + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SpoolSlice<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(pos) => Some(pos),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
        };
        self.pos = pos
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// A spooled layer opened for the data pass.
#[derive(Debug)]
pub(crate) enum SpoolSource<'a> {
    Plain(BufReader<SpoolSlice<'a>>),
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<SpoolSlice<'a>>>>),
}

impl SpoolSource<'_> {
    pub(crate) fn open(spool: &File, layer: Spooled) -> SpoolSource<'_> {
        let slice = BufReader::with_capacity(
            1 << 20,
            SpoolSlice {
                file: spool,
                start: layer.offset,
                len: layer.len,
                pos: 0,
            },
        );
        if layer.gzip {
            SpoolSource::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(slice)))
        } else {
            SpoolSource::Plain(slice)
        }
    }
}

impl Read for SpoolSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            SpoolSource::Plain(reader) => reader.read(buf),
            SpoolSource::Gzip(reader) => reader.read(buf),
        }
    }
}

impl Source for SpoolSource<'_> {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        match self {
            SpoolSource::Plain(reader) => {
                let delta = i64::try_from(n).map_err(io::Error::other)?;
                reader.seek_relative(delta)
            }
            SpoolSource::Gzip(reader) => {
                let copied = io::copy(&mut reader.take(n), &mut io::sink())?;
                if copied < n {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(())
            }
        }
    }
}
