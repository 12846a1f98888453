//! Reads a `docker save` archive as it streams: every layer tar is indexed (names only) while
//! its bytes are copied to an unnamed spool file, because the engine writes layers in the
//! order of their directory names, not stack order, and the stack order (`manifest.json`)
//! comes last. The spool holds tar bytes, never unpacked files; it vanishes when dropped.
//! Both the legacy layout (`<id>/layer.tar`, `<config>.json`) and the OCI layout of newer
//! engines (`blobs/sha256/<digest>`) are understood. The result is a [`SavedImage`] whose
//! layers are regions of the spool (`saved`).

use crate::merge::LayerStack;
use crate::saved::{LayerAt, Place, SavedImage, Spooled};
use crate::tarfmt::{SYMLINK, Source, TarReader};
use crate::{SquashError, path};
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};

/// Largest JSON document (manifest, config) kept from the archive.
const JSON_LIMIT: u64 = 64 << 20;

fn archive_error(reason: impl Into<String>) -> SquashError {
    SquashError::Archive(reason.into())
}

/// Reads the archive of the image whose config digest is `image_hex`.
pub(crate) fn read_save_archive(
    reader: impl Read,
    image_hex: &str,
) -> Result<SavedImage, SquashError> {
    let spool = tempfile::tempfile()?;
    let mut spool_writer = BufWriter::with_capacity(1 << 20, &spool);
    let mut spool_len = 0u64;
    let mut stack = LayerStack::new();
    let mut spooled: HashMap<Vec<u8>, LayerAt> = HashMap::new();
    let mut aliases: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut manifest = None;
    let mut config = None;
    let config_names = [
        format!("{image_hex}.json"),
        format!("blobs/sha256/{image_hex}"),
    ];

    let mut outer = TarReader::new(crate::tarfmt::Sequential(BufReader::with_capacity(
        1 << 20,
        reader,
    )));
    while let Some(meta) = outer
        .next_entry()
        .map_err(|e| archive_error(format!("not a readable tar: {e}")))?
    {
        let name = path::normalize(&meta.path).map_err(|e| archive_error(format!("entry {e}")))?;
        if name == b"manifest.json" || config_names.iter().any(|c| c.as_bytes() == name) {
            let mut data = Vec::new();
            if meta.size > JSON_LIMIT {
                return Err(archive_error(format!(
                    "{} is {} bytes",
                    String::from_utf8_lossy(&name),
                    meta.size
                )));
            }
            outer
                .copy_data(Some(&mut data), &mut [0u8; 64 << 10])
                .map_err(|e| archive_error(e.to_string()))?;
            if name == b"manifest.json" {
                manifest = Some(data);
            } else {
                config = Some(data);
            }
            continue;
        }
        let layer_like = name.ends_with(b"/layer.tar") || name.starts_with(b"blobs/");
        if !layer_like {
            continue;
        }
        if meta.typeflag == SYMLINK {
            // A layer identical to another one is stored once and linked.
            let dir = path::parent(&name).unwrap_or(b"");
            let mut target = dir.to_vec();
            target.push(b'/');
            target.extend_from_slice(&meta.link);
            let target =
                path::normalize(&target).map_err(|e| archive_error(format!("link {e}")))?;
            aliases.insert(name, target);
            continue;
        }
        let offset = spool_len;
        let tee = Tee {
            inner: outer.entry_reader(),
            spool: &mut spool_writer,
            written: 0,
        };
        let mut peek = BufReader::with_capacity(256 << 10, tee);
        let head = peek.fill_buf()?;
        let gzip = head.starts_with(&[0x1f, 0x8b]);
        if head.first() == Some(&b'{') {
            // An OCI manifest or index blob, not a layer.
            continue;
        }
        let layer_name = String::from_utf8_lossy(&name).into_owned();
        let indexed = if gzip {
            stack.add_layer(crate::tarfmt::Sequential(
                flate2::bufread::MultiGzDecoder::new(&mut peek),
            ))
        } else {
            stack.add_layer(BufSource(&mut peek))
        };
        let stack_id = indexed.map_err(|error| rename_layer(error, &layer_name))?;
        let written = peek.into_inner().written;
        spool_len += written;
        spooled.insert(
            name,
            LayerAt {
                stack_id,
                place: Place::Spool(Spooled {
                    offset,
                    len: written,
                    gzip,
                }),
            },
        );
    }
    spool_writer.flush()?;
    drop(spool_writer);

    let manifest = manifest.ok_or_else(|| archive_error("it has no manifest.json"))?;
    let config = config
        .ok_or_else(|| archive_error(format!("it has no config for image sha256:{image_hex}")))?;
    let layer_names = layer_names(&manifest, image_hex)?;
    let mut layers = Vec::with_capacity(layer_names.len());
    for name in layer_names {
        let name = path::normalize(name.as_bytes())
            .map_err(|e| archive_error(format!("manifest layer {e}")))?;
        let resolved = aliases.get(&name).unwrap_or(&name);
        let layer = spooled.get(resolved).ok_or_else(|| {
            archive_error(format!(
                "manifest.json names layer {} which is not in the archive",
                String::from_utf8_lossy(&name)
            ))
        })?;
        layers.push(layer.clone());
    }
    Ok(SavedImage::from_spool(stack, spool, layers, config))
}

fn rename_layer(error: SquashError, name: &str) -> SquashError {
    match error {
        SquashError::Layer { source, .. } => SquashError::Layer {
            layer: name.to_owned(),
            source,
        },
        other => other,
    }
}

/// The `Layers` of the manifest entry whose config is the image's.
fn layer_names(manifest: &[u8], image_hex: &str) -> Result<Vec<String>, SquashError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(rename = "Config")]
        config: String,
        #[serde(rename = "Layers")]
        layers: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_slice(manifest)
        .map_err(|e| archive_error(format!("manifest.json is not what the engine writes: {e}")))?;
    entries
        .into_iter()
        .find(|entry| entry.config.contains(image_hex))
        .map(|entry| entry.layers)
        .ok_or_else(|| {
            archive_error(format!(
                "manifest.json has no entry for image sha256:{image_hex}"
            ))
        })
}

/// Copies what it reads to the spool.
struct Tee<'a, R, W: Write> {
    inner: R,
    spool: &'a mut W,
    written: u64,
}

impl<R: Read, W: Write> Read for Tee<'_, R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.spool.write_all(&buf[..n])?;
        self.written += n as u64;
        Ok(n)
    }
}

/// A buffered reader as a source (skipping by reading, so a tee below sees every byte).
struct BufSource<'a, R>(&'a mut R);

impl<R: Read> Read for BufSource<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Read> Source for BufSource<'_, R> {}
