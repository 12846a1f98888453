//! Reads an image's layers in place from the Docker Engine's overlay2 layer store, byte for
//! byte as the engine's own export would give them, without waiting for that export.
//!
//! `docker save` assembles each layer tar from two things the engine keeps per layer: the
//! tar-split metadata (`layerdb/sha256/<chain id>/tar-split.json.gz`: the raw header bytes
//! and padding of the original tar, and the name, size and CRC-64 of every file payload)
//! and the layer's `diff` directory, which holds the payloads. Before its first byte it
//! writes the whole image to a temporary directory; that wait is most of its time on an
//! image with big layers. Assembling the same bytes here, lazily, lets the squash start at
//! once, and lets the index pass skip every payload (it needs names only). The bytes are
//! the engine's: the same headers, the same payloads, each payload checked against its
//! CRC-64 as the engine's own assembler checks it, so the squashed layer is identical to
//! the one made from the export (tested).
//!
//! No crate reads tar-split (it is a Go library the engine vendors), so the format is read
//! here: gzip-compressed JSON, one entry per line, `type` 2 a raw segment (`payload`,
//! base64), `type` 1 a file payload (`name` or `name_raw`, `size`, `payload` = big-endian
//! CRC-64/ISO of the data). Payloads are opened with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` below the layer's `diff` directory, so no name in the metadata can
//! make us read outside it.
//!
//! Used only when the engine says its storage driver is overlay2 with its data root on this
//! host and readable (a worker beside its engine); anything else — another driver, the
//! containerd image store, a remote engine, no permission, an old kernel — is a reason to
//! use the export instead, reported with the result. `saved` makes the indexed image out of
//! the layers found here.

use crate::{path, tarfmt::Source};
use base64::Engine as _;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// CRC-64/ISO as Go's `hash/crc64` computes it with the ISO table (tar-split's checksum);
/// slice-by-16 tables, since every payload byte the data pass writes goes through it.
static CRC64_ISO: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_GO_ISO);

/// Largest image config read from the store.
const CONFIG_LIMIT: u64 = 64 << 20;
/// Longest tar-split line (a segment holds one raw header block set: PAX records included).
const LINE_LIMIT: usize = 16 << 20;

/// One layer in the store.
#[derive(Debug)]
pub(crate) struct StoredLayer {
    pub diff_id: String,
    /// The layer's `diff` directory, opened once.
    diff: OwnedFd,
    diff_path: PathBuf,
    tar_split: PathBuf,
}

/// The engine's data root and storage driver as `/info` gives them.
#[derive(Debug, Clone)]
pub(crate) struct StoreLocation {
    pub root: PathBuf,
    pub driver: String,
}

/// The image's config and its layers in the store, checked against the ids the engine gave.
pub(crate) fn locate(
    location: &StoreLocation,
    image_id: &str,
    diff_ids: &[String],
) -> Result<(Vec<u8>, Vec<StoredLayer>), String> {
    if location.driver != "overlay2" {
        return Err(format!(
            "the engine's storage driver is {}, not overlay2",
            location.driver
        ));
    }
    let image_root = location.root.join("image").join("overlay2");
    let hex = plain_hex(image_id).ok_or_else(|| format!("image id {image_id} is not sha256"))?;
    let config_path = image_root.join("imagedb/content/sha256").join(hex);
    let config = read_capped(&config_path, CONFIG_LIMIT)?;
    if hex::encode(Sha256::digest(&config)) != hex {
        return Err(format!(
            "{} does not hash to the image id",
            config_path.display()
        ));
    }
    let mut layers = Vec::with_capacity(diff_ids.len());
    let mut chain = String::new();
    for diff_id in diff_ids {
        chain = chain_id(&chain, diff_id);
        let dir = image_root
            .join("layerdb/sha256")
            .join(chain.trim_start_matches("sha256:"));
        let recorded = read_capped(&dir.join("diff"), 4096)?;
        if recorded.trim_ascii() != diff_id.as_bytes() {
            return Err(format!("{} names another layer", dir.display()));
        }
        let cache_id = read_capped(&dir.join("cache-id"), 4096)?;
        let cache_id = std::str::from_utf8(cache_id.trim_ascii())
            .ok()
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()))
            .ok_or_else(|| format!("{}/cache-id is not a plain name", dir.display()))?
            .to_owned();
        let diff_path = location.root.join("overlay2").join(cache_id).join("diff");
        let diff = rustix::fs::open(
            &diff_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("cannot open {}: {e}", diff_path.display()))?;
        // Proves openat2 works here (Linux 5.6+) before any payload needs it.
        open_beneath(&diff, b".", OFlags::DIRECTORY)
            .map_err(|e| format!("openat2 below {} failed: {e}", diff_path.display()))?;
        layers.push(StoredLayer {
            diff_id: diff_id.clone(),
            diff,
            diff_path,
            tar_split: dir.join("tar-split.json.gz"),
        });
    }
    Ok((config, layers))
}

/// The hex of `sha256:<64 hex>`, if it is that.
fn plain_hex(id: &str) -> Option<&str> {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The engine's chain id of a layer over the chain `parent` ("" for the bottom layer).
fn chain_id(parent: &str, diff_id: &str) -> String {
    if parent.is_empty() {
        return diff_id.to_owned();
    }
    format!(
        "sha256:{}",
        hex::encode(Sha256::digest(format!("{parent} {diff_id}")))
    )
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut data = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if data.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes", path.display()));
    }
    Ok(data)
}

fn open_beneath(dir: &OwnedFd, name: &[u8], extra: OFlags) -> io::Result<File> {
    let fd = rustix::fs::openat2(
        dir,
        Path::new(OsStr::from_bytes(name)),
        // NONBLOCK: a FIFO named like a payload must not hang the squash.
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK | extra,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(File::from(fd))
}

/// One line of tar-split metadata.
#[derive(serde::Deserialize)]
struct Entry<'a> {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    name_raw: Option<Cow<'a, str>>,
    #[serde(default)]
    size: i64,
    #[serde(default, borrow)]
    payload: Option<Cow<'a, str>>,
}

const FILE_ENTRY: u8 = 1;
const SEGMENT_ENTRY: u8 = 2;

/// A file payload being assembled.
struct Payload {
    name: Vec<u8>,
    size: u64,
    pos: u64,
    expected: Option<u64>,
    file: Option<File>,
    /// The running checksum, dropped once part of the payload is skipped.
    crc: Option<crc::Digest<'static, u64, crc::Table<16>>>,
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Payload")
            .field("name", &String::from_utf8_lossy(&self.name))
            .field("size", &self.size)
            .field("pos", &self.pos)
            .field("checking", &self.crc.is_some())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Chunk {
    Segment { data: Vec<u8>, pos: usize },
    File(Payload),
    Done,
}

/// The layer tar, assembled on demand from tar-split metadata and the `diff` directory.
/// Skipping over a payload never opens its file.
#[derive(Debug)]
pub(crate) struct TarSplitSource {
    layer: Arc<StoredLayer>,
    lines: BufReader<flate2::read::MultiGzDecoder<File>>,
    line: Vec<u8>,
    chunk: Chunk,
}

impl TarSplitSource {
    pub(crate) fn open(layer: Arc<StoredLayer>) -> io::Result<TarSplitSource> {
        let file = File::open(&layer.tar_split).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", layer.tar_split.display()),
            )
        })?;
        Ok(TarSplitSource {
            layer,
            lines: BufReader::with_capacity(256 << 10, flate2::read::MultiGzDecoder::new(file)),
            line: Vec::with_capacity(4096),
            chunk: Chunk::Segment {
                data: Vec::new(),
                pos: 0,
            },
        })
    }

    fn invalid(&self, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("tar-split {}: {what}", self.layer.tar_split.display()),
        )
    }

    /// Moves to the next chunk with bytes (or `Done`).
    fn advance(&mut self) -> io::Result<()> {
        loop {
            self.line.clear();
            let read = (&mut self.lines)
                .take(LINE_LIMIT as u64 + 1)
                .read_until(b'\n', &mut self.line)?;
            if read == 0 {
                self.chunk = Chunk::Done;
                return Ok(());
            }
            if self.line.len() > LINE_LIMIT {
                return Err(self.invalid(format!("a line is longer than {LINE_LIMIT} bytes")));
            }
            if self.line.trim_ascii().is_empty() {
                continue;
            }
            let entry: Entry<'_> = serde_json::from_slice(&self.line)
                .map_err(|e| self.invalid(format!("unreadable entry: {e}")))?;
            let decode = |text: &str| base64::engine::general_purpose::STANDARD.decode(text);
            match entry.kind {
                SEGMENT_ENTRY => {
                    let data = match entry.payload.as_deref() {
                        Some(text) => decode(text)
                            .map_err(|e| self.invalid(format!("segment payload: {e}")))?,
                        None => Vec::new(),
                    };
                    if data.is_empty() {
                        continue;
                    }
                    self.chunk = Chunk::Segment { data, pos: 0 };
                    return Ok(());
                }
                FILE_ENTRY => {
                    if entry.size <= 0 {
                        continue;
                    }
                    let name = match (&entry.name_raw, &entry.name) {
                        (Some(raw), _) if !raw.is_empty() => {
                            decode(raw).map_err(|e| self.invalid(format!("name_raw: {e}")))?
                        }
                        (_, Some(name)) => name.as_bytes().to_vec(),
                        _ => return Err(self.invalid("a file entry has no name".into())),
                    };
                    let expected = match entry.payload.as_deref() {
                        Some(text) => {
                            let sum =
                                decode(text).map_err(|e| self.invalid(format!("checksum: {e}")))?;
                            let sum: [u8; 8] = sum.try_into().map_err(|_| {
                                self.invalid("a checksum is not 8 bytes".to_owned())
                            })?;
                            Some(u64::from_be_bytes(sum))
                        }
                        None => None,
                    };
                    self.chunk = Chunk::File(Payload {
                        name,
                        size: entry.size as u64,
                        pos: 0,
                        expected,
                        file: None,
                        crc: Some(CRC64_ISO.digest()),
                    });
                    return Ok(());
                }
                other => return Err(self.invalid(format!("unknown entry type {other}"))),
            }
        }
    }

    /// Reads payload bytes at the current position (opening the file on first use).
    fn read_payload(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Chunk::File(payload) = &mut self.chunk else {
            unreachable!("called on a payload")
        };
        if payload.file.is_none() {
            let name = path::normalize(&payload.name).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("payload name {e}"))
            })?;
            let file = open_beneath(&self.layer.diff, &name, OFlags::empty()).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot open {} below {}: {e}",
                        String::from_utf8_lossy(&name),
                        self.layer.diff_path.display()
                    ),
                )
            })?;
            let meta = file.metadata()?;
            if !meta.is_file() || meta.len() != payload.size {
                return Err(changed(&payload.name, &self.layer));
            }
            payload.file = Some(file);
        }
        let file = payload.file.as_ref().expect("opened above");
        let want = buf
            .len()
            .min(usize::try_from(payload.size - payload.pos).unwrap_or(usize::MAX));
        let n = file.read_at(&mut buf[..want], payload.pos)?;
        if n == 0 {
            return Err(changed(&payload.name, &self.layer));
        }
        if let Some(crc) = &mut payload.crc {
            crc.update(&buf[..n]);
        }
        payload.pos += n as u64;
        Ok(n)
    }

    /// Checks a finished payload against its recorded checksum (when all of it was read).
    fn finish_payload(&mut self) -> io::Result<()> {
        if let Chunk::File(payload) = &mut self.chunk
            && payload.file.is_some()
            && let (Some(crc), Some(expected)) = (payload.crc.take(), payload.expected)
            && crc.finalize() != expected
        {
            return Err(changed(&payload.name, &self.layer));
        }
        Ok(())
    }
}

fn changed(name: &[u8], layer: &StoredLayer) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} in layer {} ({}) differs from what the engine recorded (size or CRC-64); was the image removed or changed during the squash?",
            String::from_utf8_lossy(name),
            layer.diff_id,
            layer.diff_path.display()
        ),
    )
}

impl Read for TarSplitSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match &mut self.chunk {
                Chunk::Segment { data, pos } if *pos < data.len() => {
                    let n = buf.len().min(data.len() - *pos);
                    buf[..n].copy_from_slice(&data[*pos..*pos + n]);
                    *pos += n;
                    return Ok(n);
                }
                Chunk::File(payload) if payload.pos < payload.size => {
                    return self.read_payload(buf);
                }
                Chunk::Done => return Ok(0),
                _ => {
                    self.finish_payload()?;
                    self.advance()?;
                }
            }
        }
    }
}

impl Source for TarSplitSource {
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            match &mut self.chunk {
                Chunk::Segment { data, pos } if *pos < data.len() => {
                    let step = n.min((data.len() - *pos) as u64);
                    *pos += step as usize;
                    n -= step;
                }
                Chunk::File(payload) if payload.pos < payload.size => {
                    let step = n.min(payload.size - payload.pos);
                    payload.pos += step;
                    payload.crc = None;
                    n -= step;
                }
                Chunk::Done => return Err(io::ErrorKind::UnexpectedEof.into()),
                _ => {
                    self.finish_payload()?;
                    self.advance()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A one-layer image in a store laid out like the engine's, with the tar-split the
    /// engine would have recorded for `tar` (segments: header blocks, padding, the end).
    struct FakeStore {
        _dir: tempfile::TempDir,
        location: StoreLocation,
        image_id: String,
        diff_ids: Vec<String>,
        diff: PathBuf,
        tar: Vec<u8>,
    }

    fn segment(lines: &mut Vec<u8>, bytes: &[u8]) {
        let payload = base64::engine::general_purpose::STANDARD.encode(bytes);
        writeln!(lines, r#"{{"type":2,"payload":"{payload}","position":0}}"#).unwrap();
    }

    fn fake_store(driver: &str, names: &[(&str, &str)]) -> FakeStore {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let cache_id = "c0ffee";
        let diff = root.join("overlay2").join(cache_id).join("diff");
        std::fs::create_dir_all(diff.join("d")).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        builder.append_data(&mut header, "d/", io::empty()).unwrap();
        for (name, content) in names {
            let mut header = tar::Header::new_ustar();
            header.set_mode(0o644);
            header.set_size(content.len() as u64);
            builder
                .append_data(&mut header, name, content.as_bytes())
                .unwrap();
            std::fs::write(diff.join(name), content).unwrap();
        }
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder.append_link(&mut header, "l", "d/a").unwrap();
        let tar = builder.into_inner().unwrap();

        let mut lines = Vec::new();
        let mut done = 0usize;
        let mut archive = tar::Archive::new(&tar[..]);
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let start = entry.raw_file_position() as usize;
            let size = entry.size() as usize;
            segment(&mut lines, &tar[done..start]);
            let name = String::from_utf8(entry.path_bytes().to_vec()).unwrap();
            let sum = base64::engine::general_purpose::STANDARD
                .encode(CRC64_ISO.checksum(&tar[start..start + size]).to_be_bytes());
            writeln!(
                lines,
                r#"{{"type":1,"name":"{name}","size":{size},"payload":"{sum}","position":1}}"#
            )
            .unwrap();
            done = start + size;
        }
        segment(&mut lines, &tar[done..]);

        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
        let config = br#"{"rootfs":{"type":"layers"}}"#;
        let image_hex = hex::encode(Sha256::digest(config));
        let image = root.join("image/overlay2");
        std::fs::create_dir_all(image.join("imagedb/content/sha256")).unwrap();
        std::fs::write(
            image.join("imagedb/content/sha256").join(&image_hex),
            config,
        )
        .unwrap();
        let layer = image
            .join("layerdb/sha256")
            .join(diff_id.trim_start_matches("sha256:"));
        std::fs::create_dir_all(&layer).unwrap();
        std::fs::write(layer.join("diff"), &diff_id).unwrap();
        std::fs::write(layer.join("cache-id"), cache_id).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&lines).unwrap();
        std::fs::write(layer.join("tar-split.json.gz"), gz.finish().unwrap()).unwrap();
        FakeStore {
            _dir: dir,
            location: StoreLocation {
                root,
                driver: driver.to_owned(),
            },
            image_id: format!("sha256:{image_hex}"),
            diff_ids: vec![diff_id],
            diff,
            tar,
        }
    }

    /// The store's layers, located and indexed as the squash's index pass reads them.
    fn read(
        location: &StoreLocation,
        image_id: &str,
        diff_ids: &[String],
    ) -> Result<(Vec<u8>, Vec<Arc<StoredLayer>>), String> {
        let (config, layers) = locate(location, image_id, diff_ids)?;
        let layers: Vec<Arc<StoredLayer>> = layers.into_iter().map(Arc::new).collect();
        let mut stack = crate::merge::LayerStack::new();
        for layer in &layers {
            let source = TarSplitSource::open(Arc::clone(layer)).map_err(|e| e.to_string())?;
            stack.add_layer(source).map_err(|e| e.to_string())?;
        }
        Ok((config, layers))
    }

    fn assemble(store: &FakeStore) -> io::Result<Vec<u8>> {
        let (_, layers) = read(&store.location, &store.image_id, &store.diff_ids).unwrap();
        let mut bytes = Vec::new();
        TarSplitSource::open(Arc::clone(&layers[0]))?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    #[test]
    fn assembles_the_layer_byte_for_byte() {
        let store = fake_store("overlay2", &[("d/a", "alpha\n"), ("d/b", "beta\n")]);
        let (config, layers) = read(&store.location, &store.image_id, &store.diff_ids).unwrap();
        assert_eq!(layers.len(), 1);
        assert_eq!(config, br#"{"rootfs":{"type":"layers"}}"#);
        assert_eq!(assemble(&store).unwrap(), store.tar);
    }

    #[test]
    fn indexing_opens_no_payload() {
        let store = fake_store("overlay2", &[("d/a", "alpha\n"), ("d/b", "beta\n")]);
        std::fs::remove_file(store.diff.join("d/b")).unwrap();
        // The index pass needs names only...
        read(&store.location, &store.image_id, &store.diff_ids).unwrap();
        // ...the data pass needs the payload.
        let error = assemble(&store).unwrap_err().to_string();
        assert!(error.contains("cannot open d/b below"), "{error}");
    }

    #[test]
    fn a_changed_payload_is_caught_by_its_checksum() {
        let store = fake_store("overlay2", &[("d/a", "alpha\n")]);
        std::fs::write(store.diff.join("d/a"), "ALPHA\n").unwrap();
        let error = assemble(&store).unwrap_err().to_string();
        assert!(
            error.contains("d/a in layer sha256:")
                && error.contains("differs from what the engine recorded"),
            "{error}"
        );
    }

    #[test]
    fn payloads_are_never_read_through_symlinks() {
        let store = fake_store("overlay2", &[("d/a", "alpha\n")]);
        let outside = store.location.root.join("secret");
        std::fs::write(&outside, "alpha\n").unwrap();
        std::fs::remove_file(store.diff.join("d/a")).unwrap();
        std::os::unix::fs::symlink(&outside, store.diff.join("d/a")).unwrap();
        let error = assemble(&store).unwrap_err().to_string();
        assert!(error.contains("cannot open d/a below"), "{error}");
        // A directory on the way is a symlink: refused too.
        std::fs::remove_file(store.diff.join("d/a")).unwrap();
        std::fs::remove_dir(store.diff.join("d")).unwrap();
        std::fs::create_dir(store.location.root.join("elsewhere")).unwrap();
        std::fs::write(store.location.root.join("elsewhere/a"), "alpha\n").unwrap();
        std::os::unix::fs::symlink(store.location.root.join("elsewhere"), store.diff.join("d"))
            .unwrap();
        let error = assemble(&store).unwrap_err().to_string();
        assert!(error.contains("cannot open d/a below"), "{error}");
    }

    #[test]
    fn stores_it_cannot_read_are_reasons_not_errors() {
        let store = fake_store("vfs", &[("d/a", "alpha\n")]);
        let reason = read(&store.location, &store.image_id, &store.diff_ids).unwrap_err();
        assert_eq!(reason, "the engine's storage driver is vfs, not overlay2");

        let store = fake_store("overlay2", &[("d/a", "alpha\n")]);
        let other = format!("sha256:{}", "0".repeat(64));
        let reason = read(&store.location, &other, &store.diff_ids).unwrap_err();
        assert!(reason.starts_with("cannot read "), "{reason}");

        let wrong_layer = vec![format!("sha256:{}", "1".repeat(64))];
        let reason = read(&store.location, &store.image_id, &wrong_layer).unwrap_err();
        assert!(reason.starts_with("cannot read "), "{reason}");
    }

    #[test]
    fn chain_ids_are_the_engines() {
        // The engine's chain id: sha256 of "<parent chain id> <diff_id>".
        let a = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let b = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
        assert_eq!(chain_id("", a), a);
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{a} {b}").as_bytes()))
        );
        assert_eq!(chain_id(a, b), expected);
    }

    #[test]
    fn crc64_is_gos_iso_table() {
        // Go: crc64.Checksum([]byte("123456789"), crc64.MakeTable(crc64.ISO)).
        assert_eq!(CRC64_ISO.checksum(b"123456789"), 0xb909_56c7_75a4_1001);
    }
}
