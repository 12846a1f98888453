//! One import, start to end: check the result, upload its logs and the image archive,
//! upload `metadata.json`, `CGImport`, tag — or write a bundle when there is no hub — and
//! the refund of the reservation of a build that did not finish.
//!
//! Safe to run again on the same result (redelivery, a second bridge, a crash after
//! `CGImport` whose answer was lost): a build Koji already holds *for this OSBS build*
//! (`extra.osbs_build_id`, or the reservation's build id) is recognised and only tagged;
//! uploads resume; the hub's own NVR checks stop a second build. Failures come out as
//! [`ImportError::Refused`] (Koji said no, or the result cannot be imported: no retry),
//! [`ImportError::Untagged`] (imported, but tagging was refused: the next attempt tags only)
//! or [`ImportError::Transient`] (try again later).

use crate::archive::{ArchiveError, ImageArchive};
use crate::bundle;
use crate::config::{KojiSection, TagMode};
use crate::metadata::{
    MetadataInput, OutputFile, ParentBuild, build_metadata, image_filename, image_parts, koji_logs,
    nvr_string, part_pullspec, validate_metadata, validate_result,
};
use osbs_koji::upload::{BytesSource, FileSource, KnownSha256, UploadApi, UploadSource};
use osbs_koji::{KojiBuild, KojiBuildState, KojiClient, KojiError, RefundState, TaskInfo, fault};
use osbs_proto::v1::{BuildResult, LogFile};
use osbs_registry::{Platform, Registries, RegistryError, parse_pullspec};
use serde_json::{Value as Json, json};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Version of this content generator, recorded in every buildroot.
pub const CG_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Koji refused (the hub's fault text is in the reason, verbatim), or the result cannot
    /// become a Koji build. Trying again will not help.
    #[error("{0}")]
    Refused(String),
    /// The hub, the registry or the network failed; the import can resume later.
    #[error("{0}")]
    Transient(String),
    /// `CGImport` succeeded (Koji holds the build COMPLETE) but tagging was refused (a
    /// missing `tag` permission, a missing target...). Once fixed, the next attempt (a
    /// replay) finds the build and only tags it.
    #[error("imported into Koji as {nvr} (build {koji_build_id}) but not tagged: {reason}")]
    Untagged {
        koji_build_id: i64,
        nvr: String,
        reason: String,
    },
}

impl ImportError {
    /// A tagging refusal of the imported build `koji_build_id` becomes [`Self::Untagged`];
    /// a transient failure stays transient (the next attempt tags only).
    fn after_import(self, koji_build_id: i64, nvr: &str) -> ImportError {
        match self {
            ImportError::Refused(reason) => ImportError::Untagged {
                koji_build_id,
                nvr: nvr.to_owned(),
                reason,
            },
            other => other,
        }
    }
}

impl From<KojiError> for ImportError {
    fn from(error: KojiError) -> Self {
        if error.is_transient() {
            ImportError::Transient(error.to_string())
        } else {
            ImportError::Refused(error.to_string())
        }
    }
}

impl From<RegistryError> for ImportError {
    fn from(error: RegistryError) -> Self {
        if error.is_transient() {
            ImportError::Transient(error.to_string())
        } else {
            ImportError::Refused(error.to_string())
        }
    }
}

impl From<ArchiveError> for ImportError {
    fn from(error: ArchiveError) -> Self {
        if error.is_transient() {
            ImportError::Transient(error.to_string())
        } else {
            ImportError::Refused(error.to_string())
        }
    }
}

/// What an import produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imported {
    Hub {
        koji_build_id: i64,
        nvr: String,
        /// The destination tag the build is in, when tagging is on.
        tag: Option<String>,
        /// The build was already in Koji (an earlier attempt imported it).
        recovered: bool,
    },
    Bundle {
        dir: PathBuf,
        nvr: String,
        recovered: bool,
    },
}

/// What a refund did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refunded {
    /// The reservation is released; its build is FAILED or CANCELED.
    Released(i64),
    /// Nothing to release (no reservation, no hub, or already released).
    Nothing,
}

/// Imports results into Koji (or bundles).
#[derive(Debug, Clone)]
pub struct Importer {
    config: KojiSection,
    artifacts_dir: PathBuf,
    registries: Registries,
}

impl Importer {
    /// Fails when registry credentials name a password variable that is not set.
    pub fn new(config: &KojiSection, artifacts_dir: &Path) -> Result<Importer, RegistryError> {
        Ok(Importer {
            config: config.clone(),
            artifacts_dir: artifacts_dir.to_owned(),
            registries: Registries::new(config.registry_settings())?,
        })
    }

    pub fn config(&self) -> &KojiSection {
        &self.config
    }

    /// Imports a complete `result` (into the hub, or as a bundle).
    pub async fn import(&self, result: &BuildResult, now_ms: i64) -> Result<Imported, ImportError> {
        let nvr = validate_result(result).map_err(|error| ImportError::Refused(error.0))?;
        let nvr = nvr_string(&nvr);
        let logs = self.log_sources(result)?;
        if !self.config.has_hub() {
            return self.bundle(result, &nvr, &logs, now_ms).await;
        }
        let client = KojiClient::connect(&self.config.hub).await?;
        let imported = self.import_into(&client, result, &nvr, &logs, now_ms).await;
        client.logout().await;
        imported
    }

    /// Each log's file under the artifacts directory (refusing paths that leave it), named
    /// as Koji keeps it (`orchestrator.log`, `<arch>.log` for a multi-arch build).
    fn log_sources(&self, result: &BuildResult) -> Result<Vec<(LogFile, PathBuf)>, ImportError> {
        koji_logs(result)
            .into_iter()
            .map(|koji| {
                let log = LogFile {
                    name: koji.name,
                    ..koji.file
                };
                let relative = Path::new(&log.path);
                let inside = relative.strip_prefix(&self.artifacts_dir).unwrap_or(relative);
                if inside.is_absolute()
                    || inside
                        .components()
                        .any(|part| matches!(part, Component::ParentDir))
                {
                    return Err(ImportError::Refused(format!(
                        "log {} is at {}, outside the artifacts directory {}",
                        log.name,
                        log.path,
                        self.artifacts_dir.display()
                    )));
                }
                let path = self.artifacts_dir.join(inside);
                if !path.is_file() {
                    return Err(ImportError::Refused(format!(
                        "log {} is missing: no file {} (the worker writes logs under [storage] artifacts_dir, which the bridge must see too)",
                        log.name,
                        path.display()
                    )));
                }
                Ok((log, path))
            })
            .collect()
    }

    /// The image archives of the result, first pass done: its image, or each arch's image
    /// read by that arch's manifest digest (in the order of `image_parts`).
    async fn image_archives(
        &self,
        result: &BuildResult,
    ) -> Result<Vec<(String, ImageArchive)>, ImportError> {
        let list = result.image.clone().unwrap_or_default();
        let mut archives = Vec::new();
        for part in image_parts(result) {
            let image = &part.image;
            let pullspec = part_pullspec(image, &list).unwrap_or_default();
            let image_ref = parse_pullspec(&pullspec).map_err(RegistryError::from)?;
            let repo_tags: Vec<String> = image
                .pullspecs
                .iter()
                .filter(|pullspec| !pullspec.contains('@'))
                .cloned()
                .collect();
            let architecture = if image.architecture.is_empty() {
                &part.arch
            } else {
                &image.architecture
            };
            let archive = ImageArchive::new(
                self.registries.get(&image_ref.registry)?,
                image_ref,
                architecture,
                repo_tags,
                self.config.image_compression_level,
            );
            archive.prepare().await?;
            // An arch's digest must name that arch's image: another arch's would be
            // imported under the wrong arch.
            let found = archive.image_id().await?;
            if !result.arches.is_empty() && found != image.image_id {
                return Err(ImportError::Refused(format!(
                    "the {} image {pullspec} is image {found}, not the image {} the result names for {}",
                    part.arch, image.image_id, part.arch
                )));
            }
            archives.push((image_filename(&image.image_id, &part.arch), archive));
        }
        Ok(archives)
    }

    async fn import_into(
        &self,
        client: &KojiClient,
        result: &BuildResult,
        nvr: &str,
        logs: &[(LogFile, PathBuf)],
        now_ms: i64,
    ) -> Result<Imported, ImportError> {
        if let Some(build) = self.existing_build(client, result, nvr).await? {
            tracing::info!(build_id = %result.build_id, nvr, koji_build_id = build.id, "Koji already holds this build (an earlier attempt imported it); tagging only");
            let tag = self
                .tag(client, result, nvr)
                .await
                .map_err(|error| error.after_import(build.id, nvr))?;
            return Ok(Imported::Hub {
                koji_build_id: build.id,
                nvr: nvr.to_owned(),
                tag,
                recovered: true,
            });
        }

        let api = client.upload_api().await?;
        let dir = match api {
            // Deterministic: a later attempt finds and resumes what this one left.
            UploadApi::Fast => format!("{}/{}", self.config.upload_dir, result.build_id),
            // uploadFile cannot resume, and refuses to start over a file that exists.
            UploadApi::Legacy => format!(
                "{}/{}/{}",
                self.config.upload_dir,
                result.build_id,
                uuid::Uuid::new_v4().simple()
            ),
        };
        let mut uploaded_logs = Vec::new();
        for (log, path) in logs {
            let file = FileSource(path.clone());
            // The worker hashed the log it wrote: no need to read it twice (the hub checks).
            let done = if is_sha256(&log.sha256) {
                let source = KnownSha256(file, log.sha256.to_ascii_lowercase());
                client.upload(api, &dir, &log.name, &source).await?
            } else {
                client.upload(api, &dir, &log.name, &file).await?
            };
            uploaded_logs.push(output_file(done));
        }
        let mut images = Vec::new();
        for (filename, archive) in self.image_archives(result).await? {
            images.push(output_file(
                client.upload(api, &dir, &filename, &archive).await?,
            ));
        }
        let parents = self.parent_builds(client, result).await;

        let metadata = build_metadata(&MetadataInput {
            result,
            cg_name: &self.config.hub.cg_name,
            cg_version: CG_VERSION,
            logs: &uploaded_logs,
            images: &images,
            parent_builds: &parents,
            now_ms,
        });
        validate_metadata(&metadata).map_err(|error| ImportError::Refused(error.0))?;
        let json = serde_json::to_vec_pretty(&metadata).expect("metadata always serializes");
        client
            .upload(api, &dir, "metadata.json", &BytesSource(json.into()))
            .await?;

        let token = result
            .koji_reservation
            .as_ref()
            .filter(|reservation| reservation.build_id > 0)
            .map(|reservation| reservation.token.as_str());
        let build = match client.cg_import(json!("metadata.json"), &dir, token).await {
            Ok(build) => build,
            Err(error) => {
                // The import may have happened with its answer lost: look before reporting.
                match self.existing_build(client, result, nvr).await {
                    Ok(Some(build)) => {
                        tracing::info!(build_id = %result.build_id, nvr, error = %error, "CGImport failed on the way back, but Koji holds the build: imported");
                        build
                    }
                    _ => return Err(error.into()),
                }
            }
        };
        let tag = self
            .tag(client, result, nvr)
            .await
            .map_err(|error| error.after_import(build.id, nvr))?;
        Ok(Imported::Hub {
            koji_build_id: build.id,
            nvr: nvr.to_owned(),
            tag,
            recovered: false,
        })
    }

    /// The complete Koji build of `nvr` if it is this OSBS build's import; a refusal if Koji
    /// holds `nvr` from another build.
    async fn existing_build(
        &self,
        client: &KojiClient,
        result: &BuildResult,
        nvr: &str,
    ) -> Result<Option<KojiBuild>, ImportError> {
        let Some(build) = client.get_build(nvr).await? else {
            return Ok(None);
        };
        if build.state() != KojiBuildState::Complete {
            return Ok(None);
        }
        let reserved = result
            .koji_reservation
            .as_ref()
            .is_some_and(|reservation| reservation.build_id == build.id);
        let same_cg = build.cg_name.as_deref() == Some(self.config.hub.cg_name.as_str());
        if build.osbs_build_id() == Some(result.build_id.as_str()) || (reserved && same_cg) {
            return Ok(Some(build));
        }
        Err(ImportError::Refused(format!(
            "Koji already has {nvr} (build {}) from another build ({}): a release must not be imported twice",
            build.id,
            build
                .osbs_build_id()
                .map(|id| format!("OSBS build {id}"))
                .or(build
                    .cg_name
                    .clone()
                    .map(|cg| format!("content generator {cg}")))
                .unwrap_or_else(|| "not OSBS".into())
        )))
    }

    /// Koji builds of the parent images, found through their NVR labels. Informative only:
    /// a parent Koji does not know is left out.
    async fn parent_builds(&self, client: &KojiClient, result: &BuildResult) -> Vec<ParentBuild> {
        // A multi-arch build's parents are pinned per arch: the first arch's stand for all
        // (what the metadata names as `parent_images`).
        let Some(part) = image_parts(result).into_iter().next() else {
            return Vec::new();
        };
        let mut image = part.image;
        if let Some(list) = result
            .image
            .as_ref()
            .filter(|list| !list.parent_pullspecs.is_empty())
        {
            image.parent_pullspecs.clone_from(&list.parent_pullspecs);
        }
        let mut parents = Vec::new();
        for pullspec in &image.parent_pullspecs {
            let platform = Platform::new("", &image.architecture);
            let config = match parse_pullspec(pullspec) {
                Ok(parent) => self.registries.image_config(&parent, &platform).await,
                Err(error) => Err(error.into()),
            };
            let labels = match config {
                Ok(config) => config["config"]["Labels"].clone(),
                Err(error) => {
                    tracing::warn!(parent = %pullspec, error = %error, "cannot read a parent image's labels; its Koji build is left out");
                    continue;
                }
            };
            let Some(nvr) = parent_nvr(&labels) else {
                continue;
            };
            match client.get_build(&nvr).await {
                Ok(Some(build)) if build.state() == KojiBuildState::Complete => {
                    parents.push(ParentBuild {
                        pullspec: pullspec.clone(),
                        nvr,
                        id: build.id,
                    })
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(parent = %pullspec, error = %error, "cannot look up a parent's Koji build")
                }
            }
        }
        parents
    }

    /// Tags `nvr` into the destination tag of the result's target, once.
    async fn tag(
        &self,
        client: &KojiClient,
        result: &BuildResult,
        nvr: &str,
    ) -> Result<Option<String>, ImportError> {
        if self.config.tag_mode == TagMode::None {
            return Ok(None);
        }
        let target = result
            .job
            .as_ref()
            .and_then(|job| job.target.clone())
            .unwrap_or_default();
        let dest = if !target.dest_tag.is_empty() {
            target.dest_tag.clone()
        } else if !target.name.is_empty() {
            match client.get_build_target(&target.name).await? {
                Some(found) => found.dest_tag_name,
                None => {
                    return Err(ImportError::Refused(format!(
                        "Koji has no build target {}: {nvr} was imported but cannot be tagged (create the target, or set the target's dest_tag)",
                        target.name
                    )));
                }
            }
        } else {
            return Ok(None);
        };
        if client.list_tags(nvr).await?.contains(&dest) {
            return Ok(Some(dest));
        }
        let already = |error: &KojiError| error.fault_that(fault::means_already_tagged).is_some();
        match self.config.tag_mode {
            TagMode::Bypass => match client.tag_build_bypass(&dest, nvr).await {
                Ok(()) => {}
                Err(error) if already(&error) => {}
                Err(error) => return Err(error.into()),
            },
            TagMode::Task => {
                let task = client.tag_build(&dest, nvr).await?;
                let info = self.wait_task(client, task).await?;
                match info.state {
                    TaskInfo::CLOSED => {}
                    TaskInfo::FAILED => match client.get_task_result(task).await {
                        Ok(_) => {}
                        Err(error) if already(&error) => {}
                        Err(error) => {
                            return Err(ImportError::Refused(format!(
                                "tagBuild task {task} ({nvr} into {dest}) failed: {error}"
                            )));
                        }
                    },
                    _ => {
                        return Err(ImportError::Refused(format!(
                            "tagBuild task {task} ({nvr} into {dest}) was canceled"
                        )));
                    }
                }
            }
            TagMode::None => {}
        }
        Ok(Some(dest))
    }

    async fn wait_task(&self, client: &KojiClient, task: i64) -> Result<TaskInfo, ImportError> {
        let deadline = tokio::time::Instant::now() + self.config.tag_task_timeout();
        let mut pause = Duration::from_millis(200);
        loop {
            let info = client.get_task_info(task).await?;
            if info.is_done() {
                return Ok(info);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ImportError::Transient(format!(
                    "tagBuild task {task} still runs after {:?}; the next attempt checks it again",
                    self.config.tag_task_timeout()
                )));
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Writes the import bundle of `result` into `<bundle_dir>/<nvr>/`.
    async fn bundle(
        &self,
        result: &BuildResult,
        nvr: &str,
        logs: &[(LogFile, PathBuf)],
        now_ms: i64,
    ) -> Result<Imported, ImportError> {
        let final_dir = bundle::bundle_path(&self.config.bundle_dir, nvr);
        if let Some(done) = self.finished_bundle(result, nvr, &final_dir).await? {
            return Ok(done);
        }
        let io = |what: &str, error: std::io::Error| {
            ImportError::Transient(format!("cannot write the import bundle ({what}): {error}"))
        };
        tokio::fs::create_dir_all(&self.config.bundle_dir)
            .await
            .map_err(|error| io(&self.config.bundle_dir.display().to_string(), error))?;
        let partial = bundle::partial_path(&self.config.bundle_dir, nvr);
        tokio::fs::create_dir_all(&partial)
            .await
            .map_err(|error| io(&partial.display().to_string(), error))?;
        let written = async {
            let mut files = Vec::new();
            for (log, path) in logs {
                let source = FileSource(path.clone());
                files.push(
                    write(&partial, &log.name, &source)
                        .await
                        .map_err(|error| io(&log.name, error))?,
                );
            }
            let mut images = Vec::new();
            for (filename, archive) in self.image_archives(result).await? {
                images.push(
                    write(&partial, &filename, &archive)
                        .await
                        .map_err(|error| io(&filename, error))?,
                );
            }
            let metadata = build_metadata(&MetadataInput {
                result,
                cg_name: &self.config.hub.cg_name,
                cg_version: CG_VERSION,
                logs: &files,
                images: &images,
                parent_builds: &[],
                now_ms,
            });
            validate_metadata(&metadata).map_err(|error| ImportError::Refused(error.0))?;
            let json = serde_json::to_vec_pretty(&metadata).expect("metadata always serializes");
            tokio::fs::write(partial.join("metadata.json"), json)
                .await
                .map_err(|error| io("metadata.json", error))?;
            Ok::<(), ImportError>(())
        }
        .await;
        if let Err(error) = written {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            return Err(error);
        }
        if let Err(error) = tokio::fs::rename(&partial, &final_dir).await {
            let _ = tokio::fs::remove_dir_all(&partial).await;
            // Another bridge may have finished the same bundle first.
            if let Some(done) = self.finished_bundle(result, nvr, &final_dir).await? {
                return Ok(done);
            }
            return Err(io(&final_dir.display().to_string(), error));
        }
        Ok(Imported::Bundle {
            dir: final_dir,
            nvr: nvr.to_owned(),
            recovered: false,
        })
    }

    async fn finished_bundle(
        &self,
        result: &BuildResult,
        nvr: &str,
        dir: &Path,
    ) -> Result<Option<Imported>, ImportError> {
        let owner = bundle::bundle_owner(dir).await.map_err(|error| {
            ImportError::Transient(format!("cannot read the bundle {}: {error}", dir.display()))
        })?;
        match owner {
            None => Ok(None),
            Some(owner) if owner == result.build_id => Ok(Some(Imported::Bundle {
                dir: dir.to_owned(),
                nvr: nvr.to_owned(),
                recovered: true,
            })),
            Some(owner) => Err(ImportError::Refused(format!(
                "the bundle {} already holds {nvr}, from OSBS build {owner}: a release must not be imported twice",
                dir.display()
            ))),
        }
    }

    /// Releases the Koji reservation of a build that did not complete (or of a scratch
    /// build, which is never imported), marking it `state`.
    pub async fn refund(
        &self,
        result: &BuildResult,
        state: RefundState,
    ) -> Result<Refunded, ImportError> {
        let Some(reservation) = result
            .koji_reservation
            .as_ref()
            .filter(|reservation| reservation.build_id > 0)
        else {
            return Ok(Refunded::Nothing);
        };
        if !self.config.has_hub() {
            return Ok(Refunded::Nothing);
        }
        let client = KojiClient::connect(&self.config.hub).await?;
        let outcome = client
            .cg_refund_build(reservation.build_id, &reservation.token, state)
            .await;
        client.logout().await;
        match outcome {
            Ok(()) => Ok(Refunded::Released(reservation.build_id)),
            // Released before (a redelivery), or imported: nothing left to release.
            Err(error) if error.fault_that(fault::means_nothing_to_refund).is_some() => {
                Ok(Refunded::Nothing)
            }
            Err(error) => Err(error.into()),
        }
    }
}

async fn write(dir: &Path, name: &str, source: &dyn UploadSource) -> std::io::Result<OutputFile> {
    bundle::write_source(&dir.join(name), name, source).await
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn output_file(uploaded: osbs_koji::upload::Uploaded) -> OutputFile {
    OutputFile {
        filename: uploaded.name,
        size: uploaded.size,
        sha256: uploaded.sha256,
    }
}

/// The NVR a parent image's labels name (`com.redhat.component` or `BZComponent`, then
/// `version` and `release`, old capitalised aliases too).
pub fn parent_nvr(labels: &Json) -> Option<String> {
    let label = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| labels.get(*name).and_then(Json::as_str))
            .filter(|value| !value.is_empty())
    };
    let name = label(&["com.redhat.component", "BZComponent"])?;
    let version = label(&["version", "Version"])?;
    let release = label(&["release", "Release"])?;
    Some(format!("{name}-{version}-{release}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_nvrs_come_from_labels() {
        let cases = [
            (
                json!({"com.redhat.component": "f41", "version": "41", "release": "3"}),
                Some("f41-41-3"),
            ),
            (
                json!({"BZComponent": "old", "Version": "1", "Release": "2"}),
                Some("old-1-2"),
            ),
            (
                json!({"com.redhat.component": "f41", "version": "41"}),
                None,
            ),
            (json!(null), None),
        ];
        for (labels, expected) in cases {
            assert_eq!(parent_nvr(&labels).as_deref(), expected, "{labels}");
        }
    }

    #[test]
    fn hub_faults_are_refusals_and_outages_are_transient() {
        let refused: ImportError = KojiError::Fault {
            method: "CGImport".into(),
            code: 1000,
            text: "Build already exists: {'id': 1}".into(),
        }
        .into();
        assert_eq!(
            refused,
            ImportError::Refused(
                "Koji hub refused CGImport: Fault 1000: Build already exists: {'id': 1}".into()
            )
        );
        let offline: ImportError = KojiError::Fault {
            method: "CGImport".into(),
            code: 1014,
            text: "server is offline".into(),
        }
        .into();
        assert!(matches!(offline, ImportError::Transient(_)));
    }
}
