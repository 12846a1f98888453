//! The image archive Koji keeps as the build's `docker-image` output: `docker save`'s format
//! (`<config>.json`, `<diff id>/layer.tar` per layer, `manifest.json`), gzipped, made from the
//! image the worker pushed — streamed from the registry, never stored on disk.
//!
//! The tar entry of a layer needs its uncompressed size first, so each layer is read twice:
//! once to count (and to check its diff id), once to write. The output is byte-for-byte the
//! same each time it is made (gzip and tar times are zero), so an interrupted upload can
//! resume after the part the hub already holds.

use bytes::Bytes;
use flate2::Compression;
use futures::StreamExt;
use futures::future::BoxFuture;
use osbs_koji::upload::{ByteStream, UploadSource};
use osbs_registry::{ImageManifest, ImageRef, Platform, Registry, RegistryError};
use serde_json::{Value as Json, json};
use sha2::Digest;
use std::io::Write;

/// A gzipped tar written piece by piece, its compressed output taken as it comes. Pure.
pub struct ArchiveWriter {
    encoder: flate2::write::GzEncoder<Vec<u8>>,
    written: u64,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("written", &self.written)
            .finish()
    }
}

impl ArchiveWriter {
    pub fn new(level: u32) -> ArchiveWriter {
        ArchiveWriter {
            encoder: flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), Compression::new(level.clamp(1, 9))),
            written: 0,
        }
    }

    fn header(
        &mut self,
        path: &str,
        size: u64,
        kind: tar::EntryType,
        mode: u32,
    ) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_path(path)?;
        header.set_size(size);
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        self.encoder.write_all(header.as_bytes())
    }

    /// A directory entry.
    pub fn directory(&mut self, path: &str) -> std::io::Result<()> {
        self.header(path, 0, tar::EntryType::Directory, 0o755)
    }

    /// Starts a file of `size` bytes; its content follows through [`ArchiveWriter::write`].
    pub fn begin_file(&mut self, path: &str, size: u64) -> std::io::Result<()> {
        self.written = 0;
        self.header(path, size, tar::EntryType::Regular, 0o644)
    }

    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.written += bytes.len() as u64;
        self.encoder.write_all(bytes)
    }

    /// Ends the current file (padding to the tar block).
    pub fn end_file(&mut self) -> std::io::Result<()> {
        let padding = (512 - self.written % 512) % 512;
        self.encoder.write_all(&vec![0u8; padding as usize])
    }

    /// A whole small file.
    pub fn file(&mut self, path: &str, content: &[u8]) -> std::io::Result<()> {
        self.begin_file(path, content.len() as u64)?;
        self.write(content)?;
        self.end_file()
    }

    /// Compressed bytes produced so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.encoder.get_mut())
    }

    /// The end of the tar and of the gzip stream.
    pub fn finish(mut self) -> std::io::Result<Vec<u8>> {
        self.encoder.write_all(&[0u8; 1024])?;
        self.encoder.finish()
    }
}

/// Uncompresses a layer blob piece by piece (gzip, or a plain tar as it is). Pure.
pub enum LayerDecoder {
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Plain,
}

impl std::fmt::Debug for LayerDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LayerDecoder::Gzip(_) => "LayerDecoder::Gzip",
            LayerDecoder::Plain => "LayerDecoder::Plain",
        })
    }
}

impl LayerDecoder {
    /// For a layer of `media_type`; zstd layers are refused.
    pub fn for_media_type(media_type: &str) -> Result<LayerDecoder, String> {
        if media_type.ends_with("gzip") || media_type.ends_with(".gzip") {
            Ok(LayerDecoder::Gzip(Box::new(
                flate2::write::MultiGzDecoder::new(Vec::new()),
            )))
        } else if media_type.ends_with(".tar") || media_type.ends_with("tar") {
            Ok(LayerDecoder::Plain)
        } else {
            Err(format!(
                "layers of type {media_type} are not supported (gzip or plain tar only)"
            ))
        }
    }

    /// Feeds compressed bytes; returns the uncompressed bytes they gave.
    pub fn feed(&mut self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            LayerDecoder::Gzip(decoder) => {
                decoder.write_all(bytes)?;
                Ok(std::mem::take(decoder.get_mut()))
            }
            LayerDecoder::Plain => Ok(bytes.to_vec()),
        }
    }

    /// The last uncompressed bytes.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            LayerDecoder::Gzip(decoder) => decoder.finish(),
            LayerDecoder::Plain => Ok(Vec::new()),
        }
    }
}

/// `manifest.json` of `docker save`.
pub fn docker_manifest(config_path: &str, repo_tags: &[String], layers: &[String]) -> Vec<u8> {
    serde_json::to_vec(&json!([{
        "Config": config_path,
        "RepoTags": repo_tags,
        "Layers": layers,
    }]))
    .expect("a JSON value always serializes")
}

fn hex_of(digest: &str) -> &str {
    digest.split_once(':').map(|(_, hex)| hex).unwrap_or(digest)
}

/// Largest image config read.
const CONFIG_LIMIT: usize = 16 << 20;

/// Why an image cannot be archived: the registry failed, or the image is not one the
/// archive can hold.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("image {image}: {reason}")]
    Invalid { image: String, reason: String },
}

impl ArchiveError {
    /// Worth another attempt later (the registry is down or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, ArchiveError::Registry(error) if error.is_transient())
    }
}

/// What the first pass learned: the manifest, the config, and each layer's uncompressed size.
#[derive(Debug, Clone)]
struct Plan {
    manifest: ImageManifest,
    config: Bytes,
    diff_ids: Vec<String>,
    sizes: Vec<u64>,
}

/// The image archive of an image in a registry, as an upload source.
#[derive(Debug)]
pub struct ImageArchive {
    registry: Registry,
    image: ImageRef,
    architecture: String,
    repo_tags: Vec<String>,
    level: u32,
    plan: tokio::sync::OnceCell<Plan>,
}

impl ImageArchive {
    /// The archive of `image` (read through `registry`, the client of its registry;
    /// `architecture` resolves a manifest list), tagged `repo_tags` in its `manifest.json`
    /// (what `docker load` will name it).
    pub fn new(
        registry: Registry,
        image: ImageRef,
        architecture: &str,
        repo_tags: Vec<String>,
        level: u32,
    ) -> ImageArchive {
        ImageArchive {
            registry,
            image,
            architecture: architecture.to_owned(),
            repo_tags,
            level,
            plan: tokio::sync::OnceCell::new(),
        }
    }

    /// First pass: manifest, config, and every layer read once to size it and check it
    /// against the config's diff ids. Done once; run it before uploading so that registry
    /// failures are told apart from upload failures.
    pub async fn prepare(&self) -> Result<(), ArchiveError> {
        self.plan().await.map(drop)
    }

    /// The image id (config digest) of the image the archive holds; reads the image once.
    pub async fn image_id(&self) -> Result<String, ArchiveError> {
        Ok(self.plan().await?.manifest.config.digest.clone())
    }

    async fn plan(&self) -> Result<&Plan, ArchiveError> {
        self.plan
            .get_or_try_init(|| async {
                let repository = &self.image.repository;
                let platform = Platform {
                    os: String::new(),
                    architecture: self.architecture.clone(),
                    variant: None,
                };
                let (manifest, _) = self
                    .registry
                    .image_manifest(repository, &self.image.reference, &platform)
                    .await?;
                let config = self
                    .registry
                    .blob(repository, &manifest.config.digest, CONFIG_LIMIT)
                    .await?;
                let invalid = |reason: String| ArchiveError::Invalid {
                    image: self.image.to_string(),
                    reason,
                };
                let parsed: Json = serde_json::from_slice(&config)
                    .map_err(|error| invalid(format!("config is not JSON: {error}")))?;
                let diff_ids: Vec<String> = parsed["rootfs"]["diff_ids"]
                    .as_array()
                    .map(|ids| {
                        ids.iter()
                            .filter_map(Json::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if diff_ids.len() != manifest.layers.len() {
                    return Err(invalid(format!(
                        "{} layers but {} diff ids in the config",
                        manifest.layers.len(),
                        diff_ids.len()
                    )));
                }
                let mut sizes = Vec::new();
                for (layer, diff_id) in manifest.layers.iter().zip(&diff_ids) {
                    let mut decoder =
                        LayerDecoder::for_media_type(&layer.media_type).map_err(invalid)?;
                    let mut blob = self.registry.blob_stream(repository, &layer.digest).await?;
                    let mut size = 0u64;
                    let mut hasher = sha2::Sha256::new();
                    while let Some(piece) = blob.next().await {
                        let out = decoder
                            .feed(&piece?)
                            .map_err(|error| invalid(error.to_string()))?;
                        size += out.len() as u64;
                        hasher.update(&out);
                    }
                    let out = decoder
                        .finish()
                        .map_err(|error| invalid(error.to_string()))?;
                    size += out.len() as u64;
                    hasher.update(&out);
                    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
                    if &got != diff_id {
                        return Err(invalid(format!(
                            "layer {} uncompresses to {got}, not the config's {diff_id}",
                            layer.digest
                        )));
                    }
                    sizes.push(size);
                }
                Ok(Plan {
                    manifest,
                    config,
                    diff_ids,
                    sizes,
                })
            })
            .await
    }

    /// Second pass: writes the archive, sending its compressed bytes to `out`.
    async fn produce(
        registry: Registry,
        image: ImageRef,
        plan: Plan,
        repo_tags: Vec<String>,
        level: u32,
        out: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    ) -> std::io::Result<()> {
        let mut writer = ArchiveWriter::new(level);
        let config_path = format!("{}.json", hex_of(&plan.manifest.config.digest));
        writer.file(&config_path, &plan.config)?;
        let mut written: Vec<String> = Vec::new();
        let mut layer_paths = Vec::new();
        for ((layer, diff_id), size) in plan
            .manifest
            .layers
            .iter()
            .zip(&plan.diff_ids)
            .zip(&plan.sizes)
        {
            let dir = hex_of(diff_id).to_owned();
            let path = format!("{dir}/layer.tar");
            layer_paths.push(path.clone());
            if written.contains(&dir) {
                continue;
            }
            written.push(dir.clone());
            writer.directory(&format!("{dir}/"))?;
            writer.begin_file(&path, *size)?;
            let mut decoder =
                LayerDecoder::for_media_type(&layer.media_type).map_err(std::io::Error::other)?;
            let mut blob = registry
                .blob_stream(&image.repository, &layer.digest)
                .await
                .map_err(std::io::Error::other)?;
            while let Some(piece) = blob.next().await {
                let piece = piece.map_err(std::io::Error::other)?;
                writer.write(&decoder.feed(&piece)?)?;
                send(&out, writer.take()).await?;
            }
            writer.write(&decoder.finish()?)?;
            writer.end_file()?;
            send(&out, writer.take()).await?;
        }
        writer.file(
            "manifest.json",
            &docker_manifest(&config_path, &repo_tags, &layer_paths),
        )?;
        send(&out, writer.finish()?).await
    }
}

async fn send(
    out: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    bytes: Vec<u8>,
) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    out.send(Ok(Bytes::from(bytes)))
        .await
        .map_err(|_| std::io::Error::other("the upload stopped reading the image archive"))
}

impl UploadSource for ImageArchive {
    fn open(&self) -> BoxFuture<'_, std::io::Result<ByteStream>> {
        Box::pin(async move {
            let plan = self.plan().await.map_err(std::io::Error::other)?.clone();
            let (sender, receiver) = tokio::sync::mpsc::channel(4);
            let (registry, image, tags, level) = (
                self.registry.clone(),
                self.image.clone(),
                self.repo_tags.clone(),
                self.level,
            );
            tokio::spawn(async move {
                if let Err(error) =
                    ImageArchive::produce(registry, image, plan, tags, level, sender.clone()).await
                {
                    let _ = sender.send(Err(error)).await;
                }
            });
            let stream = futures::stream::unfold(receiver, |mut receiver| async move {
                receiver.recv().await.map(|item| (item, receiver))
            });
            Ok(stream.boxed())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_archive_is_a_tar_gz_that_reads_back() {
        let mut writer = ArchiveWriter::new(6);
        writer.file("abc.json", b"{\"a\":1}").unwrap();
        writer.directory("d1/").unwrap();
        let layer: Vec<u8> = (0..1500u32).map(|i| (i % 7) as u8).collect();
        writer
            .begin_file("d1/layer.tar", layer.len() as u64)
            .unwrap();
        let mut out = writer.take();
        for piece in layer.chunks(100) {
            writer.write(piece).unwrap();
            out.extend(writer.take());
        }
        writer.end_file().unwrap();
        writer
            .file(
                "manifest.json",
                &docker_manifest("abc.json", &["r/x:1".into()], &["d1/layer.tar".into()]),
            )
            .unwrap();
        out.extend(writer.finish().unwrap());

        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&out[..]));
        let mut entries = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            assert_eq!(entry.header().mtime().unwrap(), 0);
            entries.push((entry.path().unwrap().display().to_string(), content));
        }
        let names: Vec<&str> = entries.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            vec!["abc.json", "d1/", "d1/layer.tar", "manifest.json"]
        );
        assert_eq!(entries[2].1, layer);
        let manifest: Json = serde_json::from_slice(&entries[3].1).unwrap();
        assert_eq!(manifest[0]["Layers"][0], json!("d1/layer.tar"));

        // Made twice, the same bytes: resuming an upload relies on it.
        let again = {
            let mut writer = ArchiveWriter::new(6);
            writer.file("abc.json", b"{\"a\":1}").unwrap();
            writer.finish().unwrap()
        };
        let once_more = {
            let mut writer = ArchiveWriter::new(6);
            writer.file("abc.json", b"{\"a\":1}").unwrap();
            writer.finish().unwrap()
        };
        assert_eq!(again, once_more);
    }

    #[test]
    fn layers_uncompress_piece_by_piece() {
        let plain: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&plain).unwrap();
        let compressed = gz.finish().unwrap();
        let mut decoder =
            LayerDecoder::for_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip")
                .unwrap();
        let mut out = Vec::new();
        for piece in compressed.chunks(333) {
            out.extend(decoder.feed(piece).unwrap());
        }
        out.extend(decoder.finish().unwrap());
        assert_eq!(out, plain);
        assert!(
            LayerDecoder::for_media_type("application/vnd.oci.image.layer.v1.tar+zstd").is_err()
        );
        assert!(LayerDecoder::for_media_type("application/vnd.oci.image.layer.v1.tar").is_ok());
    }
}
