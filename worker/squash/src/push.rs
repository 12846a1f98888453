//! [`squash_to_registry`]: the squash that goes around the engine's slow re-application of
//! layers. It reads the image like [`crate::squash_in_engine`] (layer store or export),
//! then streams the squashed layer straight into the registry, mounts (or finds) the base
//! layers there, and PUTs the config and one manifest under every tag. The base image's
//! blobs are the registry's own compressed ones, read from the base's manifest (the
//! engine keeps only uncompressed diff_ids); a base the registry does not have is
//! uploaded from the engine's bytes instead.

use crate::SquashError;
use crate::add::{self, Additions};
use crate::compress::LayerCompression;
use crate::config::{self, Squash};
use crate::engine::{self, ImageFacts, ReadFrom, Squashed};
use crate::files::ImageFiles;
use crate::merge::MergedLayer;
use bytes::Bytes;
use osbs_registry::manifest::{self, Document, ImageManifest};
use osbs_registry::reference::{parse_repo_digest, valid_registry, valid_repository, valid_tag};
use osbs_registry::{
    Arrival, Credentials, Descriptor, ManifestFormat, Platform, Producer, Reference, Registry,
    RegistryError, Settings,
};
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

/// Where and how the squashed image is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryTarget {
    /// `HOST[:PORT]`, e.g. `127.0.0.1:5000`.
    pub registry: String,
    /// `NAME` or `NS/NAME`.
    pub repository: String,
    /// Every tag the manifest is PUT under (at least one).
    pub tags: Vec<String>,
    /// Plain http although the registry is not on loopback (which always is).
    pub insecure: bool,
    /// User and password, sent as Basic or exchanged for a Bearer token as the registry asks.
    pub auth: Option<Credentials>,
    /// The repository of this registry holding the base image's blobs (mounts come from
    /// there). `None`: the repository of the base's RepoDigest on this registry.
    pub base_repository: Option<String>,
    /// The squashed layer's encoding.
    pub layer_compression: LayerCompression,
    /// Attempts at each registry operation (a streamed upload is restarted whole).
    pub attempts: usize,
    /// Where the image's layers are read from.
    pub read_from: ReadFrom,
    /// Labels and files the squash adds (none by default).
    pub additions: Additions,
    /// The platform written into the pushed image's config (`os`, `architecture`,
    /// `variant`), whatever the builder wrote: an arch build's
    /// (`Platform::of_arch(arch)`: arm64 → `arm64` + `v8`). `None`: the builder's, kept.
    pub platform: Option<Platform>,
}

impl RegistryTarget {
    /// A target with the defaults: http for loopback registries only (osbs-registry's
    /// rule), no credentials, base blobs found through the base's RepoDigest, uncompressed
    /// layer, 5 attempts.
    pub fn new(registry: &str, repository: &str, tags: Vec<String>) -> RegistryTarget {
        RegistryTarget {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tags,
            insecure: osbs_registry::is_loopback(registry),
            auth: None,
            base_repository: None,
            layer_compression: LayerCompression::default(),
            attempts: osbs_registry::DEFAULT_ATTEMPTS,
            read_from: ReadFrom::Auto,
            additions: Additions::default(),
            platform: None,
        }
    }

    /// The registry client for this target.
    fn client(&self) -> Result<Registry, RegistryError> {
        let mut settings = Settings::new(concat!("osbs-squash/", env!("CARGO_PKG_VERSION")));
        settings.attempts = self.attempts;
        if self.insecure {
            settings.insecure_registries.push(self.registry.clone());
        }
        if let Some(credentials) = &self.auth {
            settings
                .credentials
                .insert(self.registry.clone(), credentials.clone());
        }
        Registry::new(&self.registry, &settings)
    }

    fn check(&self) -> Result<(), SquashError> {
        let bad = |what: &str, value: &str, rule: &str| SquashError::Target {
            what: what.to_owned(),
            value: value.to_owned(),
            rule: rule.to_owned(),
        };
        if !valid_registry(&self.registry) {
            return Err(bad("registry", &self.registry, "give HOST[:PORT]"));
        }
        let repository_rule = "give lowercase NAME or NS/NAME";
        if !valid_repository(&self.repository) {
            return Err(bad("repository", &self.repository, repository_rule));
        }
        if let Some(base) = &self.base_repository
            && !valid_repository(base)
        {
            return Err(bad("base repository", base, repository_rule));
        }
        if self.tags.is_empty() {
            return Err(bad("tags", "", "give at least one tag"));
        }
        for tag in &self.tags {
            if !valid_tag(tag) {
                return Err(bad("tag", tag, "use letters, digits, _ . - (128 at most)"));
            }
        }
        add::files_tar(&self.additions.files)?;
        Ok(())
    }
}

/// One layer of the pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedLayer {
    /// Blob digest in the registry (compressed bytes for a compressed layer).
    pub digest: String,
    /// Blob size in the registry.
    pub size: u64,
    /// Digest of the uncompressed tar (the config's `rootfs.diff_ids` entry).
    pub diff_id: String,
    pub media_type: String,
}

/// How the base layers' blobs got into the target repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseBlobs {
    /// The registry's own blobs of the base manifest (`from`: its repository).
    FromRegistry {
        from: String,
        already_there: usize,
        mounted: usize,
        copied: usize,
    },
    /// Uploaded from the engine's export, because the registry has no usable base manifest.
    Uploaded { reason: String },
}

/// The pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// `sha256:…` of the manifest, the same under every tag.
    pub manifest_digest: String,
    pub manifest_media_type: String,
    /// `sha256:…` of the config: the image id a `docker pull` gives.
    pub config_digest: String,
    /// The config as pushed (JSON).
    pub config_json: String,
    /// Bottom first: the base layers, then the squashed one.
    pub layers: Vec<PushedLayer>,
    pub base_blobs: BaseBlobs,
    /// The squash itself (`image_id` = `config_digest`; nothing is tagged in the engine).
    pub squashed: Squashed,
    /// Transient registry failures that were retried on the way (for the build log).
    pub retries: Vec<String>,
}

/// The base image's manifest in the registry, found and checked.
#[derive(Debug)]
struct RegistryBase {
    repository: String,
    manifest: ImageManifest,
}

/// Base layers checked (and mounted or copied) into the target repository at once.
const BASE_BLOBS_AT_ONCE: usize = 8;

/// Squashes every layer of `image` (in the engine) above `base`'s layers into one and
/// pushes the result as `<registry>/<repository>:<tag>` for every tag of `target`.
///
/// The base layers are the blobs the registry already holds for the base (found through
/// the base's RepoDigest on this registry, or `base_repository`), mounted into the target
/// repository when missing there; the squashed layer is streamed up with its digest
/// computed on the way; then the config and one manifest (the base manifest's format,
/// Docker v2 schema 2 without one) are PUT under each tag. Nothing is written to the
/// engine. Transient registry failures are retried (`target.attempts`).
pub async fn squash_to_registry(
    docker: &bollard::Docker,
    image: &str,
    base: &str,
    target: &RegistryTarget,
) -> Result<Pushed, SquashError> {
    squash_to_registry_when(docker, image, base, target, |_| std::future::ready(true)).await
}

/// [`squash_to_registry`], with the manifest PUT only once a check beside the squash (the
/// worker's inspection and signature check) says yes. `allowed` is called once the image is
/// indexed, with its filesystem ([`ImageFiles`]: lookups without a container), and its
/// future decides whether the image is published. The blobs go up meanwhile; without a
/// manifest nothing refers to them, and the registry's garbage collection takes them. A no
/// gives [`SquashError::Withheld`]; a squash failing before the index never calls `allowed`.
pub async fn squash_to_registry_when<F: Future<Output = bool>>(
    docker: &bollard::Docker,
    image: &str,
    base: &str,
    target: &RegistryTarget,
    allowed: impl FnOnce(ImageFiles) -> F,
) -> Result<Pushed, SquashError> {
    target.check()?;
    let started = std::time::Instant::now();
    let (image_facts, base_facts, base_history_len) =
        engine::check_base(docker, image, base).await?;
    let base_count = base_facts.diff_ids.len();
    let base_ref = pick_base_ref(
        &base_facts.repo_digests,
        &target.registry,
        &target.repository,
        target.base_repository.as_deref(),
    );
    let registry = target.client()?;

    // The export (seconds of engine work) and the base blobs (a few requests) overlap.
    let base_side = async {
        if base_count == 0 {
            return Ok(Err("the base has no layers".to_owned()));
        }
        let Some((repository, digest)) = &base_ref else {
            return Ok(Err(format!(
                "the base has no RepoDigest on {}{}",
                target.registry,
                target
                    .base_repository
                    .as_ref()
                    .map(|r| format!(" in {r}"))
                    .unwrap_or_default()
            )));
        };
        let found = match find_base(&registry, repository, digest, &base_facts).await? {
            Ok(found) => found,
            Err(reason) => return Ok(Err(reason)),
        };
        // Each base layer is its own HEAD (and mount, or copy): a few at once.
        let mut counts = (0, 0, 0);
        for layers in found.manifest.layers.chunks(BASE_BLOBS_AT_ONCE) {
            let arrivals = futures::future::try_join_all(layers.iter().map(|layer| {
                registry.ensure_blob(&target.repository, &layer.digest, &found.repository)
            }))
            .await?;
            for arrival in arrivals {
                match arrival {
                    Arrival::AlreadyThere => counts.0 += 1,
                    Arrival::Mounted => counts.1 += 1,
                    Arrival::Copied => counts.2 += 1,
                }
            }
        }
        Ok::<_, SquashError>(Ok((found, counts)))
    };
    let (saved, base_side) = tokio::join!(
        engine::read_image(docker, &image_facts, target.read_from),
        base_side
    );
    let (saved, read) = saved?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis(),
        ?read,
        "image read and indexed"
    );
    let mut saved = saved;
    let base_side = base_side?;
    if saved.layers.len() != image_facts.diff_ids.len() {
        return Err(SquashError::Archive(format!(
            "the engine exported {} layers for an image of {}",
            saved.layers.len(),
            image_facts.diff_ids.len()
        )));
    }
    if !target.additions.files.is_empty() {
        saved.add_files(add::files_tar(&target.additions.files)?)?;
    }
    let saved = Arc::new(saved);
    let allowed = allowed(ImageFiles::new(Arc::clone(&saved)));
    let plan = {
        let saved = Arc::clone(&saved);
        Arc::new(
            tokio::task::spawn_blocking(move || engine::plan(&saved, base_count))
                .await
                .map_err(|e| SquashError::Io(io::Error::other(e)))??,
        )
    };

    let compression = target.layer_compression;
    let (format, mut layers, mut base_descriptors, base_blobs) = match base_side {
        Ok((found, (already_there, mounted, copied))) => {
            let layers = found
                .manifest
                .layers
                .iter()
                .zip(&base_facts.diff_ids)
                .map(|(layer, diff_id)| PushedLayer {
                    digest: layer.digest.clone(),
                    size: layer.size,
                    diff_id: diff_id.clone(),
                    media_type: layer.media_type.clone(),
                })
                .collect();
            let descriptors = found
                .manifest
                .layers
                .iter()
                .map(|layer| layer.descriptor.clone())
                .collect();
            let blobs = BaseBlobs::FromRegistry {
                from: found.repository,
                already_there,
                mounted,
                copied,
            };
            (found.manifest.format, layers, descriptors, blobs)
        }
        Err(reason) => {
            tracing::info!(%reason, "uploading the base layers from the engine's export");
            (
                ManifestFormat::DockerV2,
                Vec::new(),
                Vec::new(),
                BaseBlobs::Uploaded { reason },
            )
        }
    };
    if matches!(base_blobs, BaseBlobs::Uploaded { .. }) {
        for (position, diff_id) in base_facts.diff_ids.iter().enumerate() {
            let layer = saved.layers[position].clone();
            let saved = Arc::clone(&saved);
            let producer: Producer<(), SquashError> = Arc::new(move |out| {
                let mut encoder = compression.writer(BufWriter::with_capacity(1 << 20, out));
                io::copy(&mut saved.open(&layer)?, &mut encoder)?;
                encoder.finish()?.flush()?;
                Ok(((), None))
            });
            let what = format!("base layer {diff_id}");
            let ((), blob) = registry
                .upload_stream(&target.repository, &what, true, producer)
                .await?;
            let media_type = format.layer_type(compression.is_gzip()).to_owned();
            base_descriptors.push(
                serde_json::to_value(Descriptor {
                    media_type: media_type.clone(),
                    size: blob.size,
                    digest: blob.digest.clone(),
                })
                .expect("a descriptor serializes"),
            );
            layers.push(PushedLayer {
                digest: blob.digest,
                size: blob.size,
                diff_id: diff_id.clone(),
                media_type,
            });
        }
    }

    let producer: Producer<MergedLayer, SquashError> = {
        let (saved, plan) = (Arc::clone(&saved), Arc::clone(&plan));
        Arc::new(move |out| {
            let mut encoder = compression.writer(BufWriter::with_capacity(1 << 20, out));
            let merged = engine::write_layer(&saved, &plan, &mut encoder)?;
            encoder.finish()?.flush()?;
            // An uncompressed blob's digest is its diff_id: no second hash over the bytes.
            let known = (!compression.is_gzip()).then(|| merged.diff_id.clone());
            Ok((merged, known))
        })
    };
    let (merged, blob) = registry
        .upload_stream(
            &target.repository,
            "the squashed layer",
            compression.is_gzip(),
            producer,
        )
        .await?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis(),
        "squashed layer uploaded"
    );
    layers.push(PushedLayer {
        digest: blob.digest.clone(),
        size: blob.size,
        diff_id: merged.diff_id.clone(),
        media_type: format.layer_type(compression.is_gzip()).to_owned(),
    });

    let config_bytes = config::squashed_config(
        &saved.config,
        &Squash {
            base_diff_ids: &base_facts.diff_ids,
            base_history_len,
            diff_id: &merged.diff_id,
            squashed_layers: saved.image_layers() - base_count,
            additions: &target.additions,
            platform: target.platform.as_ref(),
        },
    )?;
    let config_bytes = Bytes::from(config_bytes);
    let config_blob = registry
        .push_blob(&target.repository, config_bytes.clone())
        .await?;
    let manifest = manifest::image_manifest(
        format,
        &Descriptor {
            media_type: format.config_type().to_owned(),
            size: config_blob.size,
            digest: config_blob.digest.clone(),
        },
        &base_descriptors,
        &Descriptor {
            media_type: format.layer_type(compression.is_gzip()).to_owned(),
            size: blob.size,
            digest: blob.digest,
        },
    );
    if !allowed.await {
        return Err(SquashError::Withheld);
    }
    let manifest_digest = registry
        .push_manifest(&target.repository, &manifest, &target.tags)
        .await?;
    tracing::info!(
        repository = %target.repository,
        tags = %target.tags.join(","),
        manifest = %manifest_digest,
        config = %config_blob.digest,
        layer_bytes = merged.size,
        elapsed_ms = started.elapsed().as_millis(),
        "squashed image pushed"
    );
    Ok(Pushed {
        manifest_digest,
        manifest_media_type: format.manifest_type().to_owned(),
        config_digest: config_blob.digest.clone(),
        config_json: String::from_utf8_lossy(&config_bytes).into_owned(),
        layers,
        base_blobs,
        squashed: Squashed {
            image_id: config_blob.digest,
            layer_diff_id: merged.diff_id,
            layer_size: merged.size,
            base_layer_count: base_count,
            layer_count: base_count + 1,
            read,
        },
        retries: registry.retried(),
    })
}

/// The base's `(repository, digest)` on `registry`: in `base_repository` when given, else
/// preferring the target repository, else the first one.
fn pick_base_ref(
    repo_digests: &[String],
    registry: &str,
    target_repository: &str,
    base_repository: Option<&str>,
) -> Option<(String, String)> {
    let on_registry: Vec<(&str, &str)> = repo_digests
        .iter()
        .filter_map(|text| parse_repo_digest(text))
        .filter(|(host, _, _)| *host == registry)
        .map(|(_, repository, digest)| (repository, digest))
        .collect();
    let chosen = match base_repository {
        Some(wanted) => on_registry.iter().find(|(r, _)| *r == wanted),
        None => on_registry
            .iter()
            .find(|(r, _)| *r == target_repository)
            .or(on_registry.first()),
    };
    chosen.map(|(r, d)| ((*r).to_owned(), (*d).to_owned()))
}

/// Reads the base's manifest (through a list if it is one) and checks it describes the
/// base in the engine: same config digest (= image id), one layer per diff_id. A manifest
/// that is missing, unusable or describes something else gives `Ok(Err(reason))`.
async fn find_base(
    registry: &Registry,
    repository: &str,
    digest: &str,
    base: &ImageFacts,
) -> Result<Result<RegistryBase, String>, SquashError> {
    let mut reference = Reference::digest(digest).map_err(RegistryError::from)?;
    for _ in 0..2 {
        let body = match registry.manifest_bytes(repository, &reference).await {
            Ok((body, _)) => body,
            Err(error) if error.is_not_found() => {
                return Ok(Err(format!(
                    "the registry has no manifest {repository}@{reference}"
                )));
            }
            Err(RegistryError::Protocol { detail, .. }) => {
                return Ok(Err(format!(
                    "the manifest {repository}@{reference} is unusable: {detail}"
                )));
            }
            Err(error) => return Err(error.into()),
        };
        match manifest::parse_document(None, &body) {
            Err(reason) => {
                return Ok(Err(format!(
                    "the manifest {repository}@{reference} is unusable: {reason}"
                )));
            }
            Ok(Document::List(list)) => match list.pick(&base.platform) {
                Some(entry) => {
                    reference = Reference::digest(&entry.digest).map_err(RegistryError::from)?
                }
                None => {
                    return Ok(Err(format!(
                        "the index {repository}@{reference} has no {} manifest",
                        base.platform
                    )));
                }
            },
            Ok(Document::Image(manifest)) => {
                if manifest.config.digest != base.id || manifest.layers.len() != base.diff_ids.len()
                {
                    return Ok(Err(format!(
                        "the manifest {repository}@{reference} describes another image (config {}, {} layers)",
                        manifest.config.digest,
                        manifest.layers.len()
                    )));
                }
                return Ok(Ok(RegistryBase {
                    repository: repository.to_owned(),
                    manifest,
                }));
            }
        }
    }
    Ok(Err(format!("{repository}@{digest} is an index of indexes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_reference_is_picked_on_the_target_registry() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let digests = vec![
            format!("other.example/ns/base@{}", d('1')),
            format!("127.0.0.1:5000/ns/base@{}", d('2')),
            format!("127.0.0.1:5000/ns/app@{}", d('3')),
        ];
        let pick = |base: Option<&str>| pick_base_ref(&digests, "127.0.0.1:5000", "ns/app", base);
        assert_eq!(pick(None), Some(("ns/app".into(), d('3'))));
        assert_eq!(pick(Some("ns/base")), Some(("ns/base".into(), d('2'))));
        assert_eq!(pick(Some("ns/none")), None);
        assert_eq!(
            pick_base_ref(&digests, "127.0.0.1:5000", "x/y", None),
            Some(("ns/base".into(), d('2')))
        );
        assert_eq!(pick_base_ref(&digests, "elsewhere:1", "ns/app", None), None);
    }

    #[test]
    fn targets_are_checked_before_anything_runs() {
        let ok = RegistryTarget::new("127.0.0.1:5000", "ns/app", vec!["1.0-1".into()]);
        assert!(ok.insecure);
        assert_eq!(ok.check().ok(), Some(()));
        assert!(!RegistryTarget::new("registry.example:443", "a", vec!["t".into()]).insecure);
        let cases: Vec<(RegistryTarget, &str)> = vec![
            (
                RegistryTarget {
                    tags: vec![],
                    ..ok.clone()
                },
                "tags '' cannot be used: give at least one tag",
            ),
            (
                RegistryTarget {
                    tags: vec!["a:b".into()],
                    ..ok.clone()
                },
                "tag 'a:b' cannot be used: use letters, digits, _ . - (128 at most)",
            ),
            (
                RegistryTarget {
                    repository: "NS/App".into(),
                    ..ok.clone()
                },
                "repository 'NS/App' cannot be used: give lowercase NAME or NS/NAME",
            ),
            (
                RegistryTarget {
                    base_repository: Some("".into()),
                    ..ok.clone()
                },
                "base repository '' cannot be used: give lowercase NAME or NS/NAME",
            ),
            (
                RegistryTarget {
                    registry: "a/b".into(),
                    ..ok.clone()
                },
                "registry 'a/b' cannot be used: give HOST[:PORT]",
            ),
        ];
        for (target, expected) in cases {
            assert_eq!(target.check().unwrap_err().to_string(), expected);
        }
    }
}
