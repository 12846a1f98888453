//! The Docker Engine adapter: reads the image from the engine's layer store (`layerstore`)
//! or with its export (`docker save`), squashes it on a blocking thread, and loads the
//! result back (`docker load`), streaming both ways without temp files except the export's
//! layer spool (see `archive`). The load archive
//! carries only the new layer: the engine already has the base layers and never opens
//! their files when it has the layer.

use crate::archive;
use crate::config::{self, Squash};
use crate::layerstore::StoreLocation;
use crate::merge::MergedLayer;
use crate::saved::{self, SavedImage};
use crate::{SquashError, tarfmt};
use bollard::Docker;
use bollard::query_parameters::ImportImageOptions;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use tokio_util::io::{StreamReader, SyncIoBridge};

/// The squashed image, as loaded into the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Squashed {
    /// `sha256:<hex>` of the new config.
    pub image_id: String,
    /// `sha256:<hex>` of the squashed layer tar.
    pub layer_diff_id: String,
    /// Bytes of the squashed layer tar (uncompressed).
    pub layer_size: u64,
    /// Layers kept from the base.
    pub base_layer_count: usize,
    /// Layers of the squashed image (`base_layer_count + 1`).
    pub layer_count: usize,
    /// Where the image's layers were read from.
    pub read: LayerRead,
}

/// What the engine says about an image.
#[derive(Debug, Clone)]
pub(crate) struct ImageFacts {
    pub id: String,
    pub diff_ids: Vec<String>,
    /// `REGISTRY/REPOSITORY@DIGEST` of every manifest the engine pulled or pushed it as.
    pub repo_digests: Vec<String>,
    pub platform: osbs_registry::Platform,
}

fn engine_error(action: &str, target: &str, error: bollard::errors::Error) -> SquashError {
    SquashError::Engine {
        action: format!("{action} '{target}'"),
        detail: error.to_string(),
    }
}

fn is_not_found(error: &bollard::errors::Error) -> bool {
    matches!(
        error,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

pub(crate) async fn facts(
    docker: &Docker,
    image: &str,
    role: &'static str,
) -> Result<ImageFacts, SquashError> {
    let inspect = docker.inspect_image(image).await.map_err(|error| {
        if is_not_found(&error) {
            SquashError::NotFound {
                role,
                image: image.to_owned(),
            }
        } else {
            engine_error("inspect", image, error)
        }
    })?;
    let id = inspect.id.ok_or_else(|| SquashError::Engine {
        action: format!("inspect '{image}'"),
        detail: "the engine gave no image id".into(),
    })?;
    let diff_ids = inspect
        .root_fs
        .and_then(|root| root.layers)
        .unwrap_or_default();
    Ok(ImageFacts {
        id,
        diff_ids,
        repo_digests: inspect.repo_digests.unwrap_or_default(),
        platform: osbs_registry::Platform {
            os: inspect.os.unwrap_or_default(),
            architecture: inspect.architecture.unwrap_or_default(),
            variant: inspect.variant.filter(|variant| !variant.is_empty()),
        },
    })
}

/// Checks that `base` is the bottom of `image` and counts the base's history entries.
pub(crate) async fn check_base(
    docker: &Docker,
    image: &str,
    base: &str,
) -> Result<(ImageFacts, ImageFacts, usize), SquashError> {
    let image_facts = facts(docker, image, "image").await?;
    let base_facts = facts(docker, base, "base").await?;
    if !image_facts.diff_ids.starts_with(&base_facts.diff_ids) {
        return Err(SquashError::NotAncestor {
            image: image.to_owned(),
            base: base.to_owned(),
        });
    }
    let base_history_len = docker
        .image_history(&base_facts.id)
        .await
        .map_err(|error| engine_error("read the history of", base, error))?
        .len();
    Ok((image_facts, base_facts, base_history_len))
}

/// Where the squash reads the image's layers from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ReadFrom {
    /// The engine's layer store when it is on this host and readable (overlay2), else the
    /// engine's export.
    #[default]
    Auto,
    /// Always the engine's export (`docker save`).
    Export,
}

impl std::str::FromStr for ReadFrom {
    type Err = String;

    fn from_str(text: &str) -> Result<ReadFrom, String> {
        match text {
            "auto" => Ok(ReadFrom::Auto),
            "export" => Ok(ReadFrom::Export),
            other => Err(format!("'{other}' is not auto or export")),
        }
    }
}

/// How the image's layers were read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerRead {
    /// In place from the engine's layer store under `root` (byte for byte the export's
    /// layers, without waiting for it).
    LayerStore { root: String },
    /// Through the engine's export; `reason` says why not from the layer store (`None`
    /// when the export was asked for).
    Export { reason: Option<String> },
}

impl std::fmt::Display for LayerRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LayerRead::LayerStore { root } => write!(f, "the engine's layer store in {root}"),
            LayerRead::Export { reason: None } => f.write_str("the engine's export"),
            LayerRead::Export {
                reason: Some(reason),
            } => write!(f, "the engine's export ({reason})"),
        }
    }
}

/// Reads and indexes the image: from the layer store when `from` allows and it is usable,
/// else from the engine's export.
pub(crate) async fn read_image(
    docker: &Docker,
    image: &ImageFacts,
    from: ReadFrom,
) -> Result<(SavedImage, LayerRead), SquashError> {
    let reason = match from {
        ReadFrom::Export => None,
        ReadFrom::Auto => match store_location(docker).await {
            Err(reason) => Some(reason),
            Ok(location) => {
                let (id, diff_ids) = (image.id.clone(), image.diff_ids.clone());
                let root = location.root.display().to_string();
                let read = tokio::task::spawn_blocking(move || {
                    saved::read_store(&location, &id, &diff_ids)
                })
                .await
                .map_err(|error| SquashError::Io(io::Error::other(error)))?;
                match read {
                    Ok(saved) => return Ok((saved, LayerRead::LayerStore { root })),
                    Err(reason) => Some(reason),
                }
            }
        },
    };
    if let Some(reason) = &reason {
        tracing::info!(%reason, "reading the image with the engine's export, not its layer store");
    }
    let saved = export(docker, &image.id).await?;
    Ok((saved, LayerRead::Export { reason }))
}

/// The engine's data root and storage driver, if the engine reports them.
async fn store_location(docker: &Docker) -> Result<StoreLocation, String> {
    let info = docker
        .info()
        .await
        .map_err(|e| format!("the engine's /info failed: {e}"))?;
    let root = info
        .docker_root_dir
        .filter(|root| !root.is_empty())
        .ok_or("the engine reports no data root")?;
    let driver = info.driver.unwrap_or_default();
    Ok(StoreLocation {
        root: root.into(),
        driver,
    })
}

/// Streams the engine's export of `image_id` into the squasher (on a blocking thread).
pub(crate) async fn export(docker: &Docker, image_id: &str) -> Result<SavedImage, SquashError> {
    let stream = docker
        .export_image(image_id)
        .map_err(io::Error::other)
        .map_ok(|bytes: Bytes| bytes);
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let hex = image_id.trim_start_matches("sha256:").to_owned();
    tokio::task::spawn_blocking(move || archive::read_save_archive(reader, &hex))
        .await
        .map_err(|error| SquashError::Io(io::Error::other(error)))?
}

/// Squashes every layer of `image` above the layers of `base` into one and tags the result
/// `tag` in the engine. `base` is an image reference or id whose layers are the bottom
/// layers of `image` (usually the image it was built `FROM`); they stay unchanged. `from`
/// says where the layers are read (see [`ReadFrom`]).
pub async fn squash_in_engine(
    docker: &Docker,
    image: &str,
    base: &str,
    tag: &str,
    from: ReadFrom,
) -> Result<Squashed, SquashError> {
    let tag = normalize_tag(tag)?;
    let (image_facts, base_facts, base_history_len) = check_base(docker, image, base).await?;
    let (saved, read) = read_image(docker, &image_facts, from).await?;
    let base_count = base_facts.diff_ids.len();
    if saved.layers.len() != image_facts.diff_ids.len() {
        return Err(SquashError::Archive(format!(
            "the engine exported {} layers for an image of {}",
            saved.layers.len(),
            image_facts.diff_ids.len()
        )));
    }

    let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let load_tag = tag.clone();
    let base_diff_ids = base_facts.diff_ids.clone();
    let writer = tokio::task::spawn_blocking(move || {
        let out = ChannelWriter { sender };
        write_load_archive(
            &saved,
            base_count,
            &base_diff_ids,
            base_history_len,
            &load_tag,
            out,
        )
    });
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    let options = ImportImageOptions {
        quiet: true,
        ..Default::default()
    };
    let mut responses = docker.import_image_stream(options, body, None);
    let mut load_error = None;
    while let Some(response) = responses.next().await {
        if let Err(error) = response {
            load_error = Some(error);
            break;
        }
    }
    drop(responses);
    let written = writer
        .await
        .map_err(|error| SquashError::Io(io::Error::other(error)))?;
    // The writer's own error explains a failed load best (the engine only sees a cut body).
    let (merged, image_id) = written?;
    if let Some(error) = load_error {
        return Err(engine_error("load the squashed image as", &tag, error));
    }
    let loaded = facts(docker, &tag, "squashed image").await?;
    if loaded.id != image_id {
        return Err(SquashError::Engine {
            action: format!("load the squashed image as '{tag}'"),
            detail: format!(
                "the engine has {} under that tag, not {image_id}",
                loaded.id
            ),
        });
    }
    Ok(Squashed {
        image_id,
        layer_diff_id: merged.diff_id,
        layer_size: merged.size,
        base_layer_count: base_count,
        layer_count: base_count + 1,
        read,
    })
}

/// `name` alone means `name:latest` (the engine's load wants a tag).
pub(crate) fn normalize_tag(tag: &str) -> Result<String, SquashError> {
    let last = tag.rsplit('/').next().unwrap_or(tag);
    if tag.is_empty() || tag.contains('@') || tag.chars().any(char::is_whitespace) {
        return Err(SquashError::BadTag(tag.to_owned()));
    }
    Ok(if last.contains(':') {
        tag.to_owned()
    } else {
        format!("{tag}:latest")
    })
}

/// Plans the squash of a saved image and returns the plan with the stack order.
pub(crate) fn plan(saved: &SavedImage, base_count: usize) -> Result<crate::MergePlan, SquashError> {
    let order: Vec<usize> = saved.layers.iter().map(|layer| layer.stack_id).collect();
    if saved.added {
        saved.stack.plan_adding(&order, base_count)
    } else {
        saved.stack.plan(&order, base_count)
    }
}

/// Streams the squashed layer of `saved` into `out`.
pub(crate) fn write_layer(
    saved: &SavedImage,
    plan: &crate::MergePlan,
    out: &mut dyn Write,
) -> Result<MergedLayer, SquashError> {
    saved.stack.write(plan, |id| saved.open_id(id), out)
}

/// Size of the squashed layer, without reading file data.
pub(crate) fn layer_size(saved: &SavedImage, plan: &crate::MergePlan) -> Result<u64, SquashError> {
    saved.stack.size(plan, |id| saved.open_id(id))
}

/// Writes a `docker load` archive holding the squashed layer, its config and a manifest
/// that names the base layers (which the engine has) and the new one.
fn write_load_archive(
    saved: &SavedImage,
    base_count: usize,
    base_diff_ids: &[String],
    base_history_len: usize,
    tag: &str,
    out: impl Write,
) -> Result<(MergedLayer, String), SquashError> {
    let plan = plan(saved, base_count)?;
    let size = layer_size(saved, &plan)?;
    let mut out = io::BufWriter::with_capacity(1 << 20, out);
    let layer_path = "squashed/layer.tar";
    append_header(&mut out, layer_path, size)?;
    let merged = write_layer(saved, &plan, &mut out)?;
    if merged.size != size {
        return Err(SquashError::Archive(format!(
            "the squashed layer came out {} bytes, planned {size}",
            merged.size
        )));
    }
    out.write_all(&[0u8; 512][..tarfmt::padding(size) as usize])?;
    let config = config::squashed_config(
        &saved.config,
        &Squash {
            base_diff_ids,
            base_history_len,
            diff_id: &merged.diff_id,
            squashed_layers: saved.image_layers() - base_count,
            additions: &crate::Additions::default(),
            platform: None,
        },
    )?;
    let hex = hex::encode(Sha256::digest(&config));
    let config_name = format!("{hex}.json");
    let mut layers: Vec<String> = (0..base_count)
        .map(|i| format!("base-{i}/layer.tar"))
        .collect();
    layers.push(layer_path.to_owned());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": layers,
    }]))
    .map_err(|error| SquashError::Config(error.to_string()))?;
    for (name, data) in [
        (config_name.as_str(), &config),
        ("manifest.json", &manifest),
    ] {
        append_header(&mut out, name, data.len() as u64)?;
        out.write_all(data)?;
        out.write_all(&[0u8; 512][..tarfmt::padding(data.len() as u64) as usize])?;
    }
    out.write_all(&[0u8; 1024])?;
    out.flush()?;
    Ok((merged, format!("sha256:{hex}")))
}

fn append_header(out: &mut impl Write, name: &str, size: u64) -> io::Result<()> {
    let mut meta = tarfmt::Meta::synthetic(name.as_bytes().to_vec(), tarfmt::REGULAR, 0o644);
    meta.size = size;
    let mut header = Vec::with_capacity(1024);
    tarfmt::encode_header(&meta, &mut header);
    out.write_all(&header)
}

/// Sends what is written as chunks of a request body (bounded: the writer waits for the
/// reader, so memory stays at a few chunks).
pub(crate) struct ChannelWriter {
    pub(crate) sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sender
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the engine or registry stopped reading",
                )
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_get_latest_when_untagged() {
        for (tag, expected) in [
            ("x", "x:latest"),
            ("x:1", "x:1"),
            ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
            ("127.0.0.1:5000/a/x:v2", "127.0.0.1:5000/a/x:v2"),
        ] {
            assert_eq!(super::normalize_tag(tag).unwrap(), expected);
        }
        for bad in ["", "x@sha256:00", "a b"] {
            assert!(super::normalize_tag(bad).is_err(), "{bad}");
        }
    }
}
