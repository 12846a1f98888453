//! Koji content-generator metadata (version 0) for a finished build, and the checks the
//! hub would make that the bridge can make first. Pure: every input, `now` included, is
//! passed in.
//!
//! Shape (DESIGN.md "Koji", atomic-reactor's `koji_import`): `build` with the source
//! `git_url#commit`, times, `extra.image` (pull specs, tags, digests, parents, yum repos,
//! isolated), `extra.submitter`, `extra.osbs_build_id` (how the bridge recognises its own
//! import later); one `buildroot` per image (the worker host, this content generator, a
//! `docker` container of the image's arch, tools, components); `output`: every log (`type:
//! log`, `arch: noarch`) and one `docker-image` archive per image with `extra.image.arch`,
//! `extra.docker` and the image's rpms as components. A single-arch build has one image; a
//! multi-arch build (DESIGN.md "Architectures") one per arch, its logs named
//! `orchestrator.log` and `<arch>.log`, and `extra.image.index` naming the manifest list.
//! `metadata.json` itself is uploaded and named in `CGImport`.

use osbs_proto::v1::{
    ArchBuild, BuildResult, BuildTool, ImageDigest, ImageInfo, LogFile, Nvr, Rpm, Trigger,
};
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};

/// Metadata the hub would refuse, or a result that cannot become a Koji build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetadataError(pub String);

fn refuse<T>(reason: impl Into<String>) -> Result<T, MetadataError> {
    Err(MetadataError(reason.into()))
}

/// A file that is part of the import: its name on the hub, size and sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    pub filename: String,
    pub size: u64,
    pub sha256: String,
}

/// A parent (FROM) image and the Koji build it comes from, when Koji has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentBuild {
    pub pullspec: String,
    pub nvr: String,
    pub id: i64,
}

/// Everything the metadata is made of.
#[derive(Debug, Clone)]
pub struct MetadataInput<'a> {
    pub result: &'a BuildResult,
    pub cg_name: &'a str,
    pub cg_version: &'a str,
    /// The logs, in the order of [`koji_logs`], as uploaded.
    pub logs: &'a [OutputFile],
    /// The image archives, as uploaded, in the order of [`image_parts`]: the image of a
    /// single-arch build, or one per arch of a multi-arch one.
    pub images: &'a [OutputFile],
    pub parent_builds: &'a [ParentBuild],
    /// Unix milliseconds; stands in for times the result lacks.
    pub now_ms: i64,
}

/// Koji's architecture name for a Docker/OCI one (`amd64` → `x86_64`).
pub fn koji_arch(docker_arch: &str) -> String {
    match docker_arch {
        "amd64" | "x86_64" => "x86_64",
        "arm64" | "aarch64" => "aarch64",
        "386" | "i386" | "i686" => "i686",
        "arm" | "armhfp" => "armhfp",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
    .to_owned()
}

/// `docker-image-<image id hex>.<arch>.tar.gz`, atomic-reactor's name for the archive.
pub fn image_filename(image_id: &str, arch: &str) -> String {
    let hex = image_id.strip_prefix("sha256:").unwrap_or(image_id);
    format!("docker-image-{hex}.{}.tar.gz", koji_arch(arch))
}

/// `name-version-release`.
pub fn nvr_string(nvr: &Nvr) -> String {
    format!("{}-{}-{}", nvr.name, nvr.version, nvr.release)
}

/// One image Koji keeps as a `docker-image` output, with what its buildroot records: the
/// image of a single-arch build, or one arch's part of a multi-arch one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImagePart {
    /// Koji's name of the image's architecture.
    pub arch: String,
    pub image: ImageInfo,
    pub components: Vec<Rpm>,
    pub tools: Vec<BuildTool>,
    pub worker: String,
    pub worker_os: String,
    pub worker_arch: String,
}

/// The images of `result`: its `image` alone for a single-arch build (empty `arches`),
/// else one per part of `arches`, in its order.
pub fn image_parts(result: &BuildResult) -> Vec<ImagePart> {
    if result.arches.is_empty() {
        let image = result.image.clone().unwrap_or_default();
        return vec![ImagePart {
            arch: koji_arch(&image.architecture),
            image,
            components: result.components.clone(),
            tools: result.tools.clone(),
            worker: result.worker.clone(),
            worker_os: result.worker_os.clone(),
            worker_arch: result.worker_arch.clone(),
        }];
    }
    result.arches.iter().map(arch_part).collect()
}

fn arch_part(part: &ArchBuild) -> ImagePart {
    let image = part.image.clone().unwrap_or_default();
    let arch = non_empty(&part.arch).unwrap_or(&image.architecture);
    ImagePart {
        arch: koji_arch(arch),
        image,
        components: part.components.clone(),
        tools: part.tools.clone(),
        worker: part.worker.clone(),
        worker_os: part.worker_os.clone(),
        worker_arch: part.worker_arch.clone(),
    }
}

/// The log every build job writes (the worker's name for it).
pub const BUILD_LOG: &str = "build.log";

/// A file Koji keeps as a log (`type: log`, noarch): its name on the hub, the file, and
/// the arch part it comes from (`None`: the build's own job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KojiLog {
    pub name: String,
    pub file: LogFile,
    pub arch: Option<String>,
}

/// The name Koji keeps a multi-arch build's file under, as OSBS 2 named its logs: the
/// orchestrator's `build.log` is `orchestrator.log`, an arch's `<arch>.log`; an arch's
/// other files get the arch in front (`aarch64-Dockerfile`), the orchestrator's keep
/// their names.
pub fn koji_log_name(arch: Option<&str>, name: &str) -> String {
    match (arch, name) {
        (None, BUILD_LOG) => "orchestrator.log".to_owned(),
        (None, other) => other.to_owned(),
        (Some(arch), BUILD_LOG) => format!("{arch}.log"),
        (Some(arch), other) => format!("{arch}-{other}"),
    }
}

/// Every log of `result` with its Koji name: a single-arch build's under their own names;
/// a multi-arch build's own logs, then each arch's, named by [`koji_log_name`].
pub fn koji_logs(result: &BuildResult) -> Vec<KojiLog> {
    let multi = !result.arches.is_empty();
    let mut logs: Vec<KojiLog> = result
        .logs
        .iter()
        .map(|file| KojiLog {
            name: if multi {
                koji_log_name(None, &file.name)
            } else {
                file.name.clone()
            },
            file: file.clone(),
            arch: None,
        })
        .collect();
    for part in &result.arches {
        let arch = arch_part(part).arch;
        logs.extend(part.logs.iter().map(|file| KojiLog {
            name: koji_log_name(Some(&arch), &file.name),
            file: file.clone(),
            arch: Some(arch.clone()),
        }));
    }
    logs
}

/// A name Koji accepts for a file in an upload directory.
fn check_filename(kind: &str, name: &str) -> Result<(), MetadataError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return refuse(format!(
            "{kind} name {name:?} is not a plain file name (empty, '/' or a leading '.'): Koji refuses it"
        ));
    }
    Ok(())
}

/// What must hold before anything is uploaded: the result names an NVR Koji accepts, its
/// source, its images, well-named logs. Returns the NVR.
pub fn validate_result(result: &BuildResult) -> Result<Nvr, MetadataError> {
    let Some(nvr) = result.nvr.clone() else {
        return refuse("the result has no NVR (name, version, release)");
    };
    for (field, value) in [
        ("name", &nvr.name),
        ("version", &nvr.version),
        ("release", &nvr.release),
    ] {
        if value.trim().is_empty() {
            return refuse(format!("the result's NVR has no {field}"));
        }
    }
    for (field, value) in [("version", &nvr.version), ("release", &nvr.release)] {
        if value.contains('-') {
            return refuse(format!(
                "the {field} {value:?} of {} contains '-': Koji refuses it (The \"-\" character not allowed in {field} field)",
                nvr_string(&nvr)
            ));
        }
    }
    let job = result.job.as_ref();
    if job.is_none_or(|job| job.git_url.is_empty() || job.commit.is_empty()) {
        return refuse("the result's job has no git URL or commit: Koji needs the build source");
    }
    if result.arches.is_empty() {
        validate_image(result)?;
    } else {
        validate_arches(result)?;
    }
    let mut names = BTreeSet::new();
    for log in koji_logs(result) {
        check_filename("log", &log.name)?;
        if !names.insert(log.name.clone()) {
            return refuse(format!("two logs are named {:?}", log.name));
        }
        if log.file.path.is_empty() {
            return refuse(format!("log {:?} has no path", log.name));
        }
    }
    if let Some(reservation) = &result.koji_reservation
        && (reservation.build_id > 0) == reservation.token.is_empty()
    {
        return refuse("the result's Koji reservation has a build id or a token, not both");
    }
    Ok(nvr)
}

/// A single-arch result's image: pushed, with an id and an architecture.
fn validate_image(result: &BuildResult) -> Result<(), MetadataError> {
    let Some(image) = &result.image else {
        return refuse("the result has no image information");
    };
    if image.image_id.is_empty() || image.architecture.is_empty() {
        return refuse("the result's image has no id or architecture");
    }
    if image.digests.is_empty() {
        return refuse("the result's image has no manifest digest: it was not pushed");
    }
    if digest_pullspec(result).is_none() {
        return refuse("the result's image names no repository to pull it from");
    }
    Ok(())
}

/// A multi-arch result: its manifest list pushed, and each arch once, with a pushed image.
fn validate_arches(result: &BuildResult) -> Result<(), MetadataError> {
    let Some(list) = &result.image else {
        return refuse("the result has no manifest list information");
    };
    if list.digests.is_empty() {
        return refuse("the result's manifest list has no digest: it was not pushed");
    }
    if list_repository(list).is_none() {
        return refuse("the result's manifest list names no repository to pull it from");
    }
    let mut arches = BTreeSet::new();
    for part in image_parts(result) {
        if part.arch.is_empty() {
            return refuse("an arch part of the result names no architecture");
        }
        if !arches.insert(part.arch.clone()) {
            return refuse(format!(
                "the arch {} has two parts in the result",
                part.arch
            ));
        }
        let image = &part.image;
        if image.image_id.is_empty() {
            return refuse(format!("the {} image has no id", part.arch));
        }
        if image.digests.is_empty() {
            return refuse(format!(
                "the {} image has no manifest digest: it was not pushed",
                part.arch
            ));
        }
        if part_pullspec(image, list).is_none() {
            return refuse(format!(
                "the {} image names no repository to pull it from",
                part.arch
            ));
        }
    }
    Ok(())
}

/// The image by digest: `registry/ns/name@sha256:…`, from the pullspecs or the first
/// repository and digest.
pub fn digest_pullspec(result: &BuildResult) -> Option<String> {
    image_pullspec(result.image.as_ref()?, &[])
}

/// An arch's image by its own manifest digest; its repository is the list's when the part
/// names none.
pub fn part_pullspec(image: &ImageInfo, list: &ImageInfo) -> Option<String> {
    image_pullspec(image, &list.repositories)
}

fn image_pullspec(image: &ImageInfo, fallback_repositories: &[String]) -> Option<String> {
    image
        .pullspecs
        .iter()
        .find(|pullspec| pullspec.contains("@sha256:"))
        .cloned()
        .or_else(|| {
            let repository = image
                .repositories
                .first()
                .or(fallback_repositories.first())?;
            let digest = image.digests.first()?;
            Some(format!("{repository}@{}", digest.digest))
        })
}

/// The repository of a manifest list (`registry/ns/name`): its first, or the one of its
/// pullspec by digest.
fn list_repository(list: &ImageInfo) -> Option<String> {
    list.repositories.first().cloned().or_else(|| {
        let pullspec = image_pullspec(list, &[])?;
        pullspec
            .split_once('@')
            .map(|(repository, _)| repository.to_owned())
    })
}

/// The list's own digest: the one of a list or index media type, else the first.
fn list_digest(list: &ImageInfo) -> Option<&ImageDigest> {
    list.digests
        .iter()
        .find(|digest| {
            digest.media_type.contains("manifest.list") || digest.media_type.contains("index")
        })
        .or(list.digests.first())
}

/// `build.extra.image.index` of a multi-arch build, as atomic-reactor's `koji_import`
/// writes it for a manifest list: pull by the list's digest and by version-release, the
/// tags, and the list's digest under its media type.
pub fn list_index(list: &ImageInfo, nvr: &Nvr) -> Json {
    let repository = list_repository(list).unwrap_or_default();
    let (media_type, digest) = list_digest(list)
        .map(|digest| (digest.media_type.clone(), digest.digest.clone()))
        .unwrap_or_default();
    json!({
        "pull": [
            format!("{repository}@{digest}"),
            format!("{repository}:{}-{}", nvr.version, nvr.release),
        ],
        "tags": list.tags,
        "digests": {media_type: digest},
    })
}

fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

fn digests_map(image: &ImageInfo) -> Map<String, Json> {
    image
        .digests
        .iter()
        .map(|digest| (digest.media_type.clone(), json!(digest.digest)))
        .collect()
}

/// `build.extra.image.index` of a single-arch build: pull by digest first, then by tag.
fn image_index(image: &ImageInfo) -> Json {
    let mut pull: Vec<String> = image
        .pullspecs
        .iter()
        .filter(|pullspec| pullspec.contains('@'))
        .cloned()
        .collect();
    pull.extend(
        image
            .pullspecs
            .iter()
            .filter(|pullspec| !pullspec.contains('@'))
            .cloned(),
    );
    json!({"pull": pull, "tags": image.tags, "digests": digests_map(image)})
}

/// `build.extra.image`: the index, parents, yum repos, flags, media types.
fn image_extra(input: &MetadataInput, parts: &[ImagePart]) -> Json {
    let result = input.result;
    let job = result.job.clone().unwrap_or_default();
    let options = job.options.clone().unwrap_or_default();
    let image = result.image.clone().unwrap_or_default();
    let (index, media_types, parent_pullspecs) = if result.arches.is_empty() {
        let media_types: Vec<String> = image.digests.iter().map(|d| d.media_type.clone()).collect();
        (
            image_index(&image),
            media_types,
            image.parent_pullspecs.clone(),
        )
    } else {
        let media_types: BTreeSet<String> = image
            .digests
            .iter()
            .chain(parts.iter().flat_map(|part| &part.image.digests))
            .map(|digest| digest.media_type.clone())
            .collect();
        // The list names no parent of its own: each arch pinned its own; the first's stand.
        let parents = if image.parent_pullspecs.is_empty() {
            parts
                .first()
                .map(|part| part.image.parent_pullspecs.clone())
                .unwrap_or_default()
        } else {
            image.parent_pullspecs.clone()
        };
        let nvr = result.nvr.clone().unwrap_or_default();
        (
            list_index(&image, &nvr),
            media_types.into_iter().collect(),
            parents,
        )
    };
    let mut yum_repourls: Vec<String> = result.yum_repourls.clone();
    if yum_repourls.is_empty() {
        yum_repourls = options.yum_repourls.clone();
    }
    let mut image_extra = json!({
        "index": index,
        "parent_images": parent_pullspecs,
        "yum_repourls": yum_repourls,
        "isolated": options.isolated,
        "autorebuild": job.trigger == Trigger::Push as i32,
        "media_types": media_types,
    });
    if !input.parent_builds.is_empty() {
        let builds: BTreeMap<&str, Json> = input
            .parent_builds
            .iter()
            .map(|parent| {
                (
                    parent.pullspec.as_str(),
                    json!({"id": parent.id, "nvr": parent.nvr}),
                )
            })
            .collect();
        image_extra["parent_image_builds"] = json!(builds);
        // The base image is the last FROM (the final stage's parent).
        let base = parent_pullspecs
            .last()
            .and_then(|base| input.parent_builds.iter().find(|p| &p.pullspec == base))
            .or_else(|| input.parent_builds.last());
        if let Some(base) = base {
            image_extra["parent_build_id"] = json!(base.id);
        }
    }
    image_extra
}

/// The `build` map.
fn build_map(input: &MetadataInput, parts: &[ImagePart]) -> Json {
    let result = input.result;
    let job = result.job.clone().unwrap_or_default();
    let nvr = result.nvr.clone().unwrap_or_default();
    let start_ms = [result.started_at_ms, job.requested_at_ms, input.now_ms]
        .into_iter()
        .find(|ms| *ms > 0)
        .unwrap_or(input.now_ms);
    let end_ms = [result.finished_at_ms, input.now_ms]
        .into_iter()
        .find(|ms| *ms > 0)
        .unwrap_or(input.now_ms)
        .max(start_ms);
    let mut build = json!({
        "name": nvr.name,
        "version": nvr.version,
        "release": nvr.release,
        "source": format!("{}#{}", job.git_url, job.commit),
        "start_time": seconds(start_ms),
        "end_time": seconds(end_ms),
        "extra": {
            "image": image_extra(input, parts),
            "submitter": job.submitter,
            "osbs_build_id": result.build_id,
            "osbs_build": {"kind": "container_build", "engine": "docker", "subtypes": []},
            "target": job.target.as_ref().map(|target| target.name.clone()).unwrap_or_default(),
        },
    });
    if let Some(reservation) = &result.koji_reservation
        && reservation.build_id > 0
    {
        build["build_id"] = json!(reservation.build_id);
    }
    build
}

/// The buildroot `id` of one image: its worker host, this content generator, a `docker`
/// container of its arch, its tools. An arch's buildroot is a host of that arch (DESIGN.md
/// "Architectures"), whatever engine emulated it; a single-arch build's host is the
/// worker's own.
fn buildroot(input: &MetadataInput, id: usize, part: &ImagePart) -> Json {
    let tools: Vec<Json> = part
        .tools
        .iter()
        .map(|tool| json!({"name": tool.name, "version": tool.version}))
        .collect();
    let host_os = non_empty(&part.worker_os).unwrap_or("Linux");
    let host_arch = non_empty(&part.worker_arch)
        .filter(|_| input.result.arches.is_empty())
        .map(koji_arch)
        .unwrap_or_else(|| part.arch.clone());
    json!({
        "id": id,
        "host": {"os": host_os, "arch": host_arch},
        "content_generator": {"name": input.cg_name, "version": input.cg_version},
        "container": {"type": "docker", "arch": part.arch},
        "tools": tools,
        "components": [],
        "extra": {"osbs": {"build_id": input.result.build_id, "worker": part.worker}},
    })
}

/// The `docker-image` output of one image, made in buildroot `buildroot_id`.
fn image_output(part: &ImagePart, file: &OutputFile, buildroot_id: usize) -> Json {
    let image = &part.image;
    let components: Vec<Json> = part
        .components
        .iter()
        .map(|rpm| {
            json!({
                "type": "rpm",
                "name": rpm.name,
                "version": rpm.version,
                "release": rpm.release,
                "arch": rpm.arch,
                "epoch": (rpm.epoch >= 0).then_some(rpm.epoch),
                "sigmd5": rpm.sigmd5,
                "signature": non_empty(&rpm.signature),
            })
        })
        .collect();
    let config: Json = serde_json::from_str(&image.config_json).unwrap_or(Json::Null);
    let layer_sizes: Vec<Json> = image
        .layer_sizes
        .iter()
        .map(|layer| json!({"diff_id": layer.diff_id, "size": layer.size}))
        .collect();
    json!({
        "buildroot_id": buildroot_id,
        "filename": file.filename,
        "filesize": file.size,
        "checksum": file.sha256,
        "checksum_type": "sha256",
        "type": "docker-image",
        "arch": part.arch,
        "extra": {
            "image": {"arch": part.arch},
            "docker": {
                "id": image.image_id,
                "parent_id": image.parent_id,
                "repositories": image.pullspecs,
                "tags": image.tags,
                "config": config,
                "digests": digests_map(image),
                "layer_sizes": layer_sizes,
            },
        },
        "components": components,
    })
}

/// The metadata of `input`: one buildroot and one `docker-image` output per image (one for
/// a single-arch build), every log noarch in the buildroot of the job that wrote it (the
/// first for the build's own job).
pub fn build_metadata(input: &MetadataInput) -> Json {
    let parts = image_parts(input.result);
    let buildroot_of = |arch: Option<&str>| {
        arch.and_then(|arch| parts.iter().position(|part| part.arch == arch))
            .map_or(1, |index| index + 1)
    };
    let buildroots: Vec<Json> = parts
        .iter()
        .enumerate()
        .map(|(index, part)| buildroot(input, index + 1, part))
        .collect();
    let mut output: Vec<Json> = input
        .logs
        .iter()
        .zip(koji_logs(input.result))
        .map(|(log, koji)| {
            json!({
                "buildroot_id": buildroot_of(koji.arch.as_deref()),
                "filename": log.filename,
                "filesize": log.size,
                "checksum": log.sha256,
                "checksum_type": "sha256",
                "type": "log",
                "arch": "noarch",
            })
        })
        .collect();
    output.extend(
        parts
            .iter()
            .zip(input.images)
            .enumerate()
            .map(|(index, (part, file))| image_output(part, file, index + 1)),
    );
    json!({
        "metadata_version": 0,
        "build": build_map(input, &parts),
        "buildroots": buildroots,
        "output": output,
    })
}

fn non_empty(text: &str) -> Option<&str> {
    (!text.is_empty()).then_some(text)
}

/// Archive extensions a stock hub knows (its `archivetypes`), longest first.
const ARCHIVE_EXTENSIONS: &[&str] = &[
    "tar.gz", "tar.bz2", "tar.xz", "raw.xz", "tgz", "tar", "zip", "json", "yaml", "yml", "xml",
    "iso", "qcow2",
];

fn field<'a>(value: &'a Json, path: &str) -> Result<&'a Json, MetadataError> {
    let mut current = value;
    for part in path.split('.') {
        current = current
            .get(part)
            .ok_or_else(|| MetadataError(format!("the metadata has no {path}: Koji refuses it")))?;
    }
    Ok(current)
}

fn text<'a>(value: &'a Json, path: &str) -> Result<&'a str, MetadataError> {
    field(value, path)?
        .as_str()
        .ok_or_else(|| MetadataError(format!("the metadata's {path} is not a string")))
}

/// An output of an architecture (not `noarch`) is made in a buildroot of that arch: the hub
/// double refuses anything else (DESIGN.md "Architectures").
fn check_output_arch(
    output: &Json,
    filename: &str,
    buildroots: &[Json],
) -> Result<(), MetadataError> {
    let Some(arch) = output.get("arch").and_then(Json::as_str) else {
        return Ok(());
    };
    let buildroot_id = output.get("buildroot_id");
    let container_arch = buildroots
        .iter()
        .find(|buildroot| buildroot.get("id") == buildroot_id)
        .and_then(|buildroot| buildroot.get("container")?.get("arch")?.as_str());
    match container_arch {
        Some(container_arch) if arch != "noarch" && arch != container_arch => refuse(format!(
            "output {filename} is {arch} but its buildroot's container is {container_arch}"
        )),
        _ => Ok(()),
    }
}

/// The checks of the hub's `CGImport` that need nothing but the metadata (DESIGN.md "Koji
/// hub facts"), so that a refusal is caught before anything is sent.
pub fn validate_metadata(metadata: &Json) -> Result<(), MetadataError> {
    if field(metadata, "metadata_version")?.as_i64() != Some(0) {
        return refuse("metadata_version must be 0");
    }
    let build = field(metadata, "build")?;
    for part in ["name", "version", "release", "source"] {
        text(metadata, &format!("build.{part}"))?;
    }
    for part in ["start_time", "end_time"] {
        if !field(build, part)?.is_number() {
            return refuse(format!("build.{part} is not a number"));
        }
    }
    for part in ["version", "release"] {
        if text(build, part)?.contains('-') {
            return refuse(format!(
                "The \"-\" character not allowed in {part} field ({})",
                text(build, part)?
            ));
        }
    }
    let extra = field(build, "extra")?;
    let known_btypes = ["image", "rpm", "maven", "win"];
    if let Some(typeinfo) = extra.get("typeinfo").and_then(Json::as_object) {
        for btype in typeinfo.keys() {
            if !known_btypes.contains(&btype.as_str()) {
                return refuse(format!(
                    "build type {btype:?} is unknown to Koji (No such entry in table btype: {btype})"
                ));
            }
        }
    }
    let build_types: BTreeSet<&str> = known_btypes
        .iter()
        .copied()
        .filter(|btype| {
            extra.get(*btype).is_some()
                || extra.get("typeinfo").and_then(|t| t.get(*btype)).is_some()
        })
        .collect();

    let buildroots = field(metadata, "buildroots")?
        .as_array()
        .ok_or_else(|| MetadataError("buildroots is not a list".into()))?;
    let outputs = field(metadata, "output")?
        .as_array()
        .ok_or_else(|| MetadataError("output is not a list".into()))?;
    if buildroots.is_empty() {
        return refuse("the metadata has no buildroot");
    }
    let used: Vec<&Json> = outputs
        .iter()
        .map(|output| field(output, "buildroot_id"))
        .collect::<Result<_, _>>()?;
    let mut ids = Vec::new();
    let mut generators = BTreeSet::new();
    for buildroot in buildroots {
        let id = field(buildroot, "id")?;
        if !used.contains(&id) {
            return refuse(format!("buildroot {id} is used by no output"));
        }
        if ids.contains(&id) {
            return refuse(format!("buildroot id {id} appears twice"));
        }
        ids.push(id);
        generators.insert(text(buildroot, "content_generator.name")?);
        for path in [
            "content_generator.version",
            "container.type",
            "container.arch",
            "host.os",
            "host.arch",
        ] {
            text(buildroot, path)?;
        }
        for list in ["tools", "components"] {
            if !field(buildroot, list)?.is_array() {
                return refuse(format!("buildroot {id} {list} is not a list"));
            }
        }
    }
    if generators.len() > 1 {
        return refuse("Koji takes one content generator per import");
    }

    let mut names = BTreeSet::new();
    for output in outputs {
        let filename = text(output, "filename")?;
        check_filename("output", filename)?;
        if !names.insert(filename) {
            return refuse(format!("two outputs are named {filename:?}"));
        }
        if !used.contains(&field(output, "buildroot_id")?)
            || !ids.contains(&field(output, "buildroot_id")?)
        {
            return refuse(format!(
                "output {filename} names a buildroot the metadata lacks"
            ));
        }
        check_output_arch(output, filename, buildroots)?;
        if field(output, "filesize")?.as_u64().is_none() {
            return refuse(format!("output {filename} has no integer filesize"));
        }
        if text(output, "checksum")?.is_empty() {
            return refuse(format!("output {filename} has an empty checksum"));
        }
        let checksum_type = text(output, "checksum_type")?;
        let kind = text(output, "type")?;
        if kind == "log" {
            if !["md5", "adler32", "sha256"].contains(&checksum_type) {
                return refuse(format!(
                    "output {filename}: checksum type {checksum_type:?} is unknown to Koji (md5, adler32, sha256)"
                ));
            }
            continue;
        }
        if !["md5", "sha256"].contains(&checksum_type) {
            return refuse(format!(
                "output {filename}: Koji records archives with md5 or sha256, not {checksum_type:?}"
            ));
        }
        let empty = Json::Object(Map::new());
        let output_extra = output.get("extra").unwrap_or(&empty);
        let mut types: Vec<&str> = ["image", "maven", "win"]
            .into_iter()
            .filter(|btype| output_extra.get(*btype).is_some())
            .collect();
        if let Some(typeinfo) = output_extra.get("typeinfo").and_then(Json::as_object) {
            types.extend(typeinfo.keys().map(String::as_str));
        }
        match types.as_slice() {
            [btype] if !build_types.contains(btype) => {
                return refuse(format!(
                    "output {filename} is of type {btype}, which the build does not list"
                ));
            }
            [_] => {}
            [] => return refuse(format!("output {filename} has no type (extra.image)")),
            _ => return refuse(format!("output {filename} has several types")),
        }
        if types == ["image"] && output_extra["image"].get("arch").is_none() {
            return refuse(format!("output {filename} has no extra.image.arch"));
        }
        let lower = filename.to_ascii_lowercase();
        if !ARCHIVE_EXTENSIONS
            .iter()
            .any(|extension| lower.ends_with(&format!(".{extension}")))
        {
            return refuse(format!(
                "output {filename}: Koji knows no archive type for its extension"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use osbs_proto::v1::{
        BuildJob, BuildOptions, BuildState, BuildTool, ImageDigest, ImageInfo, KojiReservation,
        LayerSize, LogFile, Rpm, Target,
    };

    fn result() -> BuildResult {
        BuildResult {
            build_id: "b-1".into(),
            state: BuildState::Complete as i32,
            job: Some(BuildJob {
                build_id: "b-1".into(),
                repo: "httpd".into(),
                git_url: "https://src.example.org/containers/httpd.git".into(),
                commit: "3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce".into(),
                submitter: "jdoe".into(),
                trigger: Trigger::Push as i32,
                requested_at_ms: 1_736_936_000_000,
                target: Some(Target {
                    name: "f41-container-candidate".into(),
                    ..Default::default()
                }),
                options: Some(BuildOptions {
                    yum_repourls: vec!["http://repo/x.repo".into()],
                    ..Default::default()
                }),
                ..Default::default()
            }),
            nvr: Some(Nvr {
                name: "httpd".into(),
                version: "2.4".into(),
                release: "3".into(),
            }),
            image: Some(ImageInfo {
                image_id: "sha256:aaaa".into(),
                parent_id: "sha256:bbbb".into(),
                config_json: r#"{"architecture":"amd64","os":"linux"}"#.into(),
                digests: vec![ImageDigest {
                    media_type: "application/vnd.docker.distribution.manifest.v2+json".into(),
                    digest: "sha256:cccc".into(),
                }],
                layer_sizes: vec![LayerSize {
                    diff_id: "sha256:dddd".into(),
                    size: 1234,
                }],
                pullspecs: vec![
                    "127.0.0.1:5000/httpd:2.4-3".into(),
                    "127.0.0.1:5000/httpd@sha256:cccc".into(),
                ],
                tags: vec!["2.4-3".into(), "latest".into()],
                repositories: vec!["127.0.0.1:5000/httpd".into()],
                parent_pullspecs: vec!["127.0.0.1:5000/busybox@sha256:eeee".into()],
                architecture: "amd64".into(),
                os: "linux".into(),
            }),
            components: vec![Rpm {
                name: "bash".into(),
                version: "5.2".into(),
                release: "1.fc41".into(),
                arch: "x86_64".into(),
                epoch: -1,
                sigmd5: "ffff".into(),
                signature: "a15b79cc".into(),
                ..Default::default()
            }],
            logs: vec![LogFile {
                name: "build.log".into(),
                path: "b-1/build.log".into(),
                ..Default::default()
            }],
            started_at_ms: 1_736_936_100_000,
            finished_at_ms: 1_736_936_523_120,
            koji_reservation: Some(KojiReservation {
                build_id: 42,
                token: "t".into(),
            }),
            worker: "worker-1".into(),
            tools: vec![BuildTool {
                name: "docker".into(),
                version: "20.10.24".into(),
            }],
            ..Default::default()
        }
    }

    fn metadata_of(result: &BuildResult) -> Json {
        let logs = [OutputFile {
            filename: "build.log".into(),
            size: 10,
            sha256: "ab".repeat(32),
        }];
        let image = OutputFile {
            filename: image_filename("sha256:aaaa", "amd64"),
            size: 99,
            sha256: "cd".repeat(32),
        };
        let parents = [ParentBuild {
            pullspec: "127.0.0.1:5000/busybox@sha256:eeee".into(),
            nvr: "busybox-1-1".into(),
            id: 7,
        }];
        build_metadata(&MetadataInput {
            result,
            cg_name: "osbs",
            cg_version: "0.1.0",
            logs: &logs,
            images: std::slice::from_ref(&image),
            parent_builds: &parents,
            now_ms: 1_800_000_000_000,
        })
    }

    #[test]
    fn metadata_has_the_shape_koji_expects() {
        let metadata = metadata_of(&result());
        validate_metadata(&metadata).unwrap();
        let build = &metadata["build"];
        assert_eq!(
            build["source"],
            json!(
                "https://src.example.org/containers/httpd.git#3aa6642b0990d1f6a0e0ce7373c8ad37d2f980ce"
            )
        );
        assert_eq!(build["start_time"], json!(1_736_936_100));
        assert_eq!(build["end_time"], json!(1_736_936_523));
        assert_eq!(build["build_id"], json!(42));
        assert_eq!(build["extra"]["osbs_build_id"], json!("b-1"));
        assert_eq!(build["extra"]["submitter"], json!("jdoe"));
        assert!(build["extra"].get("container_koji_task_id").is_none());
        let image = &build["extra"]["image"];
        assert_eq!(
            image["index"]["pull"][0],
            json!("127.0.0.1:5000/httpd@sha256:cccc")
        );
        assert_eq!(image["index"]["tags"], json!(["2.4-3", "latest"]));
        assert_eq!(image["parent_build_id"], json!(7));
        assert_eq!(
            image["parent_image_builds"]["127.0.0.1:5000/busybox@sha256:eeee"]["nvr"],
            json!("busybox-1-1")
        );
        assert_eq!(image["yum_repourls"], json!(["http://repo/x.repo"]));
        assert_eq!(image["isolated"], json!(false));
        assert_eq!(image["autorebuild"], json!(true));
        let buildroot = &metadata["buildroots"][0];
        assert_eq!(
            buildroot["container"],
            json!({"type": "docker", "arch": "x86_64"})
        );
        assert_eq!(
            buildroot["content_generator"],
            json!({"name": "osbs", "version": "0.1.0"})
        );
        assert_eq!(
            buildroot["tools"],
            json!([{"name": "docker", "version": "20.10.24"}])
        );
        let log = &metadata["output"][0];
        assert_eq!(
            (log["type"].clone(), log["arch"].clone()),
            (json!("log"), json!("noarch"))
        );
        let archive = &metadata["output"][1];
        assert_eq!(
            archive["filename"],
            json!("docker-image-aaaa.x86_64.tar.gz")
        );
        assert_eq!(archive["extra"]["image"], json!({"arch": "x86_64"}));
        let docker = &archive["extra"]["docker"];
        assert_eq!(docker["id"], json!("sha256:aaaa"));
        assert_eq!(docker["parent_id"], json!("sha256:bbbb"));
        assert_eq!(docker["config"]["architecture"], json!("amd64"));
        assert_eq!(
            docker["digests"]["application/vnd.docker.distribution.manifest.v2+json"],
            json!("sha256:cccc")
        );
        assert_eq!(
            docker["layer_sizes"],
            json!([{"diff_id": "sha256:dddd", "size": 1234}])
        );
        assert_eq!(archive["components"][0]["epoch"], Json::Null);
        assert_eq!(archive["components"][0]["signature"], json!("a15b79cc"));
    }

    #[test]
    fn results_koji_would_refuse_are_caught_before_upload() {
        type Edit = fn(&mut BuildResult);
        let cases: Vec<(Edit, &str)> = vec![
            (|r| r.nvr = None, "no NVR"),
            (
                |r| r.nvr.as_mut().unwrap().release = "3-1".into(),
                "release \"3-1\" of httpd-2.4-3-1 contains '-'",
            ),
            (
                |r| r.nvr.as_mut().unwrap().version = "2-4".into(),
                "The \"-\" character not allowed in version field",
            ),
            (
                |r| r.nvr.as_mut().unwrap().name = " ".into(),
                "NVR has no name",
            ),
            (
                |r| r.job.as_mut().unwrap().commit.clear(),
                "no git URL or commit",
            ),
            (|r| r.image = None, "no image information"),
            (
                |r| r.image.as_mut().unwrap().digests.clear(),
                "no manifest digest",
            ),
            (
                |r| {
                    let image = r.image.as_mut().unwrap();
                    image.pullspecs.clear();
                    image.repositories.clear();
                },
                "no repository",
            ),
            (
                |r| r.logs[0].name = "../x.log".into(),
                "not a plain file name",
            ),
            (|r| r.logs.push(r.logs[0].clone()), "two logs are named"),
            (
                |r| r.koji_reservation.as_mut().unwrap().token.clear(),
                "a build id or a token, not both",
            ),
        ];
        for (edit, expected) in cases {
            let mut bad = result();
            edit(&mut bad);
            let error = validate_result(&bad).unwrap_err();
            assert!(
                error.0.contains(expected),
                "{expected:?} not in {:?}",
                error.0
            );
        }
        assert_eq!(
            nvr_string(&validate_result(&result()).unwrap()),
            "httpd-2.4-3"
        );
    }

    #[test]
    fn metadata_koji_would_refuse_is_caught() {
        type Edit = fn(&mut Json);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |m| m["metadata_version"] = json!(1),
                "metadata_version must be 0",
            ),
            (
                |m| {
                    m["build"].as_object_mut().unwrap().remove("source");
                },
                "no build.source",
            ),
            (
                |m| {
                    m["build"].as_object_mut().unwrap().remove("extra");
                },
                "no extra",
            ),
            (
                |m| m["build"]["release"] = json!("1-2"),
                "not allowed in release field",
            ),
            (
                |m| m["build"]["extra"]["typeinfo"] = json!({"docker": {}}),
                "No such entry in table btype: docker",
            ),
            (
                |m| {
                    m["buildroots"][0]["host"]
                        .as_object_mut()
                        .unwrap()
                        .remove("os");
                },
                "no host.os",
            ),
            (
                |m| {
                    m["buildroots"][0].as_object_mut().unwrap().remove("tools");
                },
                "no tools",
            ),
            (|m| m["buildroots"][0]["id"] = json!(2), "used by no output"),
            (
                |m| m["output"][0]["checksum_type"] = json!("sha1"),
                "unknown to Koji",
            ),
            (
                |m| m["output"][1]["checksum_type"] = json!("adler32"),
                "md5 or sha256",
            ),
            (
                |m| m["output"][1]["extra"] = json!({"docker": {}}),
                "has no type",
            ),
            (
                |m| m["output"][1]["extra"]["maven"] = json!({}),
                "several types",
            ),
            (
                |m| m["output"][1]["extra"]["image"] = json!({}),
                "no extra.image.arch",
            ),
            (
                |m| m["output"][1]["filename"] = json!("image.foo"),
                "no archive type",
            ),
            (
                |m| m["output"][1]["filename"] = json!("build.log"),
                "two outputs",
            ),
            (
                |m| {
                    m["build"]["extra"].as_object_mut().unwrap().remove("image");
                },
                "which the build does not list",
            ),
            (
                |m| m["output"][0]["filesize"] = json!("10"),
                "no integer filesize",
            ),
        ];
        for (edit, expected) in cases {
            let mut bad = metadata_of(&result());
            edit(&mut bad);
            let error = validate_metadata(&bad).unwrap_err();
            assert!(
                error.0.contains(expected),
                "{expected:?} not in {:?}",
                error.0
            );
        }
    }

    #[test]
    fn architectures_and_names() {
        for (docker, koji) in [
            ("amd64", "x86_64"),
            ("arm64", "aarch64"),
            ("ppc64le", "ppc64le"),
            ("s390x", "s390x"),
            ("386", "i686"),
            ("riscv64", "riscv64"),
        ] {
            assert_eq!(koji_arch(docker), koji);
        }
        assert_eq!(
            image_filename("abc", "arm64"),
            "docker-image-abc.aarch64.tar.gz"
        );
        let mut no_times = result();
        no_times.started_at_ms = 0;
        no_times.finished_at_ms = 0;
        let metadata = metadata_of(&no_times);
        assert_eq!(
            metadata["build"]["start_time"],
            json!(1_736_936_000),
            "falls back to the request time"
        );
        assert_eq!(
            metadata["build"]["end_time"],
            json!(1_800_000_000),
            "falls back to now"
        );
    }
}

#[cfg(test)]
mod multi_arch_tests {
    use super::*;
    use osbs_proto::v1::{BuildJob, BuildState, KojiReservation, LayerSize, Target};

    const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

    fn log(name: &str, path: &str) -> LogFile {
        LogFile {
            name: name.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    fn part(arch: &str, oci: &str, hex: &str) -> ArchBuild {
        ArchBuild {
            arch: arch.into(),
            image: Some(ImageInfo {
                image_id: format!("sha256:{hex}"),
                parent_id: "sha256:bbbb".into(),
                config_json: format!(r#"{{"architecture":"{oci}","os":"linux"}}"#),
                digests: vec![ImageDigest {
                    media_type: MANIFEST.into(),
                    digest: format!("sha256:{hex}{hex}"),
                }],
                layer_sizes: vec![LayerSize {
                    diff_id: format!("sha256:d{hex}"),
                    size: 10,
                }],
                pullspecs: vec![
                    format!("127.0.0.1:5000/httpd:u1-{arch}"),
                    format!("127.0.0.1:5000/httpd@sha256:{hex}{hex}"),
                ],
                tags: vec![format!("u1-{arch}")],
                repositories: vec!["127.0.0.1:5000/httpd".into()],
                parent_pullspecs: vec![format!("127.0.0.1:5000/busybox@sha256:p{hex}")],
                architecture: oci.into(),
                os: "linux".into(),
            }),
            components: vec![Rpm {
                name: "bash".into(),
                version: "5.2".into(),
                release: "1".into(),
                arch: arch.into(),
                epoch: 1,
                ..Default::default()
            }],
            logs: vec![log("build.log", &format!("b-2/{arch}/build.log"))],
            worker: format!("worker-{arch}"),
            worker_os: "Fedora Linux 41".into(),
            worker_arch: arch.into(),
            tools: vec![BuildTool {
                name: "docker".into(),
                version: format!("27-{arch}"),
            }],
            ..Default::default()
        }
    }

    fn multi() -> BuildResult {
        let mut aarch64 = part("aarch64", "arm64", "a2");
        // An emulated build: the buildroot still says aarch64.
        aarch64.worker_arch = "x86_64".into();
        aarch64
            .logs
            .push(log("Dockerfile", "b-2/aarch64/Dockerfile"));
        BuildResult {
            build_id: "b-2".into(),
            state: BuildState::Complete as i32,
            job: Some(BuildJob {
                build_id: "b-2".into(),
                git_url: "https://src.example.org/containers/httpd.git".into(),
                commit: "3aa6642b".into(),
                target: Some(Target {
                    name: "f41-container-candidate".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            nvr: Some(Nvr {
                name: "httpd".into(),
                version: "2.4".into(),
                release: "3".into(),
            }),
            image: Some(ImageInfo {
                digests: vec![ImageDigest {
                    media_type: LIST.into(),
                    digest: "sha256:1111".into(),
                }],
                pullspecs: vec![
                    "127.0.0.1:5000/httpd@sha256:1111".into(),
                    "127.0.0.1:5000/httpd:2.4-3".into(),
                    "127.0.0.1:5000/httpd:latest".into(),
                ],
                tags: vec!["2.4-3".into(), "2.4".into(), "latest".into()],
                repositories: vec!["127.0.0.1:5000/httpd".into()],
                ..Default::default()
            }),
            logs: vec![log("build.log", "b-2/build.log")],
            arches: vec![part("x86_64", "amd64", "a1"), aarch64],
            koji_reservation: Some(KojiReservation {
                build_id: 43,
                token: "t".into(),
            }),
            started_at_ms: 1_736_936_100_000,
            finished_at_ms: 1_736_936_523_120,
            ..Default::default()
        }
    }

    fn files(names: &[String]) -> Vec<OutputFile> {
        names
            .iter()
            .map(|name| OutputFile {
                filename: name.clone(),
                size: 1,
                sha256: "ab".repeat(32),
            })
            .collect()
    }

    fn metadata_of(result: &BuildResult) -> Json {
        let logs: Vec<String> = koji_logs(result).into_iter().map(|log| log.name).collect();
        let images: Vec<String> = image_parts(result)
            .iter()
            .map(|part| image_filename(&part.image.image_id, &part.arch))
            .collect();
        build_metadata(&MetadataInput {
            result,
            cg_name: "osbs",
            cg_version: "0.1.0",
            logs: &files(&logs),
            images: &files(&images),
            parent_builds: &[],
            now_ms: 1_800_000_000_000,
        })
    }

    #[test]
    fn log_names_say_which_job_wrote_them() {
        let table = [
            (None, "build.log", "orchestrator.log"),
            (None, "Dockerfile", "Dockerfile"),
            (Some("x86_64"), "build.log", "x86_64.log"),
            (Some("aarch64"), "Dockerfile", "aarch64-Dockerfile"),
        ];
        for (arch, name, koji) in table {
            assert_eq!(koji_log_name(arch, name), koji, "{arch:?} {name}");
        }
        let names: Vec<(String, Option<String>)> = koji_logs(&multi())
            .into_iter()
            .map(|log| (log.name, log.arch))
            .collect();
        assert_eq!(
            names,
            vec![
                ("orchestrator.log".into(), None),
                ("x86_64.log".into(), Some("x86_64".into())),
                ("aarch64.log".into(), Some("aarch64".into())),
                ("aarch64-Dockerfile".into(), Some("aarch64".into())),
            ]
        );
        // A single-arch build's logs keep their names.
        let mut single = multi();
        single.arches.clear();
        assert_eq!(koji_logs(&single)[0].name, "build.log");
    }

    #[test]
    fn one_buildroot_and_one_image_per_arch() {
        let metadata = metadata_of(&multi());
        validate_metadata(&metadata).unwrap();
        let buildroots = metadata["buildroots"].as_array().unwrap();
        assert_eq!(buildroots.len(), 2);
        for (index, arch) in ["x86_64", "aarch64"].into_iter().enumerate() {
            let buildroot = &buildroots[index];
            assert_eq!(buildroot["id"], json!(index + 1));
            assert_eq!(
                buildroot["container"],
                json!({"type": "docker", "arch": arch})
            );
            assert_eq!(
                buildroot["host"],
                json!({"os": "Fedora Linux 41", "arch": arch})
            );
            assert_eq!(
                buildroot["tools"],
                json!([{"name": "docker", "version": format!("27-{arch}")}])
            );
            assert_eq!(
                buildroot["extra"]["osbs"],
                json!({"build_id": "b-2", "worker": format!("worker-{arch}")})
            );
        }
        let output = metadata["output"].as_array().unwrap();
        let logs: Vec<(&str, i64, &str)> = output
            .iter()
            .filter(|output| output["type"] == "log")
            .map(|output| {
                (
                    output["filename"].as_str().unwrap(),
                    output["buildroot_id"].as_i64().unwrap(),
                    output["arch"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            logs,
            vec![
                ("orchestrator.log", 1, "noarch"),
                ("x86_64.log", 1, "noarch"),
                ("aarch64.log", 2, "noarch"),
                ("aarch64-Dockerfile", 2, "noarch"),
            ]
        );
        let images: Vec<&Json> = output
            .iter()
            .filter(|output| output["type"] == "docker-image")
            .collect();
        assert_eq!(images.len(), 2);
        for (image, (arch, oci, hex, buildroot)) in images
            .into_iter()
            .zip([("x86_64", "amd64", "a1", 1), ("aarch64", "arm64", "a2", 2)])
        {
            assert_eq!(
                image["filename"],
                json!(format!("docker-image-{hex}.{arch}.tar.gz"))
            );
            assert_eq!(image["arch"], json!(arch));
            assert_eq!(image["buildroot_id"], json!(buildroot));
            assert_eq!(image["extra"]["image"], json!({"arch": arch}));
            let docker = &image["extra"]["docker"];
            assert_eq!(docker["id"], json!(format!("sha256:{hex}")));
            assert_eq!(docker["config"]["architecture"], json!(oci));
            assert_eq!(
                docker["digests"],
                json!({MANIFEST: format!("sha256:{hex}{hex}")})
            );
            assert_eq!(docker["tags"], json!([format!("u1-{arch}")]));
            assert_eq!(
                docker["layer_sizes"],
                json!([{"diff_id": format!("sha256:d{hex}"), "size": 10}])
            );
            assert_eq!(image["components"][0]["arch"], json!(arch));
            assert_eq!(image["components"].as_array().unwrap().len(), 1);
        }
    }

    #[test]
    fn the_index_names_the_manifest_list() {
        let metadata = metadata_of(&multi());
        let image = &metadata["build"]["extra"]["image"];
        assert_eq!(
            image["index"],
            json!({
                "pull": [
                    "127.0.0.1:5000/httpd@sha256:1111",
                    "127.0.0.1:5000/httpd:2.4-3",
                ],
                "tags": ["2.4-3", "2.4", "latest"],
                "digests": {LIST: "sha256:1111"},
            })
        );
        assert_eq!(
            image["media_types"],
            json!([LIST, MANIFEST]),
            "sorted, as atomic-reactor"
        );
        assert_eq!(
            image["parent_images"],
            json!(["127.0.0.1:5000/busybox@sha256:pa1"])
        );
        assert_eq!(metadata["build"]["build_id"], json!(43));
        // An OCI index is named under its own media type.
        let mut oci = multi();
        oci.image.as_mut().unwrap().digests[0].media_type =
            "application/vnd.oci.image.index.v1+json".into();
        assert_eq!(
            metadata_of(&oci)["build"]["extra"]["image"]["index"]["digests"],
            json!({"application/vnd.oci.image.index.v1+json": "sha256:1111"})
        );
    }

    #[test]
    fn arch_parts_koji_could_not_take_are_caught_before_upload() {
        type Edit = fn(&mut BuildResult);
        let cases: Vec<(Edit, &str)> = vec![
            (
                |r| r.image.as_mut().unwrap().digests.clear(),
                "manifest list has no digest",
            ),
            (
                |r| {
                    let list = r.image.as_mut().unwrap();
                    list.repositories.clear();
                    list.pullspecs.clear();
                },
                "manifest list names no repository",
            ),
            (
                |r| r.arches[1] = r.arches[0].clone(),
                "the arch x86_64 has two parts",
            ),
            (
                |r| r.arches[1].image.as_mut().unwrap().image_id.clear(),
                "the aarch64 image has no id",
            ),
            (
                |r| r.arches[0].image.as_mut().unwrap().digests.clear(),
                "the x86_64 image has no manifest digest",
            ),
            (
                |r| r.arches[0].logs[0].name = "../x".into(),
                "not a plain file name",
            ),
            (
                |r| r.logs.push(log("x86_64.log", "b-2/x")),
                "two logs are named \"x86_64.log\"",
            ),
        ];
        for (edit, expected) in cases {
            let mut bad = multi();
            edit(&mut bad);
            let error = validate_result(&bad).unwrap_err();
            assert!(
                error.0.contains(expected),
                "{expected:?} not in {:?}",
                error.0
            );
        }
        validate_result(&multi()).unwrap();
        // A part whose own repository is unknown is read from the list's.
        let mut bare = multi();
        let image = bare.arches[0].image.as_mut().unwrap();
        image.pullspecs.clear();
        image.repositories.clear();
        validate_result(&bare).unwrap();
        assert_eq!(
            part_pullspec(
                bare.arches[0].image.as_ref().unwrap(),
                bare.image.as_ref().unwrap()
            )
            .as_deref(),
            Some("127.0.0.1:5000/httpd@sha256:a1a1")
        );
    }

    #[test]
    fn an_image_in_another_arch_buildroot_is_refused() {
        let mut swapped = metadata_of(&multi());
        swapped["output"][4]["buildroot_id"] = json!(2);
        let error = validate_metadata(&swapped).unwrap_err();
        assert!(
            error
                .0
                .contains("is x86_64 but its buildroot's container is aarch64"),
            "{error}"
        );
        let mut unused = metadata_of(&multi());
        unused["output"][5]["buildroot_id"] = json!(1);
        unused["output"][5]["arch"] = json!("x86_64");
        unused["output"][2]["buildroot_id"] = json!(1);
        unused["output"][3]["buildroot_id"] = json!(1);
        let error = validate_metadata(&unused).unwrap_err();
        assert!(
            error.0.contains("buildroot 2 is used by no output"),
            "{error}"
        );
    }
}
