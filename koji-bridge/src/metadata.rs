//! Koji content-generator metadata (version 0) for a finished build, and the checks the
//! hub would make that the bridge can make first. Pure: every input, `now` included, is
//! passed in.
//!
//! Shape (DESIGN.md "Koji", atomic-reactor's `koji_import`): `build` with the source
//! `git_url#commit`, times, `extra.image` (pull specs, tags, digests, parents, yum repos,
//! isolated), `extra.submitter`, `extra.osbs_build_id` (how the bridge recognises its own
//! import later); one `buildroot` (the worker host, this content generator, a `docker`
//! container of the image's arch, tools, components); `output`: every log (`type: log`,
//! `arch: noarch`) and the `docker-image` archive with `extra.image.arch`, `extra.docker`
//! and the image's rpms as components. `metadata.json` itself is uploaded and named in
//! `CGImport`.

use osbs_proto::v1::{BuildResult, Nvr, Trigger};
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
    /// The logs, in the order of `result.logs`, as uploaded.
    pub logs: &'a [OutputFile],
    /// The image archive, as uploaded.
    pub image: &'a OutputFile,
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
/// source, an image, well-named logs. Returns the NVR.
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
    let mut names = BTreeSet::new();
    for log in &result.logs {
        check_filename("log", &log.name)?;
        if !names.insert(log.name.as_str()) {
            return refuse(format!("two logs are named {:?}", log.name));
        }
        if log.path.is_empty() {
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

/// The image by digest: `registry/ns/name@sha256:…`, from the pullspecs or the first
/// repository and digest.
pub fn digest_pullspec(result: &BuildResult) -> Option<String> {
    let image = result.image.as_ref()?;
    image
        .pullspecs
        .iter()
        .find(|pullspec| pullspec.contains("@sha256:"))
        .cloned()
        .or_else(|| {
            let repository = image.repositories.first()?;
            let digest = image.digests.first()?;
            Some(format!("{repository}@{}", digest.digest))
        })
}

fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// The metadata of `input`.
pub fn build_metadata(input: &MetadataInput) -> Json {
    let result = input.result;
    let job = result.job.clone().unwrap_or_default();
    let nvr = result.nvr.clone().unwrap_or_default();
    let image = result.image.clone().unwrap_or_default();
    let options = job.options.clone().unwrap_or_default();
    let arch = koji_arch(&image.architecture);

    let start_ms = [result.started_at_ms, job.requested_at_ms, input.now_ms]
        .into_iter()
        .find(|ms| *ms > 0)
        .unwrap_or(input.now_ms);
    let end_ms = [result.finished_at_ms, input.now_ms]
        .into_iter()
        .find(|ms| *ms > 0)
        .unwrap_or(input.now_ms)
        .max(start_ms);

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
    let digests: Map<String, Json> = image
        .digests
        .iter()
        .map(|digest| (digest.media_type.clone(), json!(digest.digest)))
        .collect();
    let mut yum_repourls: Vec<String> = result.yum_repourls.clone();
    if yum_repourls.is_empty() {
        yum_repourls = options.yum_repourls.clone();
    }
    let mut image_extra = json!({
        "index": {"pull": pull, "tags": image.tags, "digests": digests},
        "parent_images": image.parent_pullspecs,
        "yum_repourls": yum_repourls,
        "isolated": options.isolated,
        "autorebuild": job.trigger == Trigger::Push as i32,
        "media_types": image.digests.iter().map(|d| d.media_type.clone()).collect::<Vec<_>>(),
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
        let base = image
            .parent_pullspecs
            .last()
            .and_then(|base| input.parent_builds.iter().find(|p| &p.pullspec == base))
            .or_else(|| input.parent_builds.last());
        if let Some(base) = base {
            image_extra["parent_build_id"] = json!(base.id);
        }
    }

    let build = json!({
        "name": nvr.name,
        "version": nvr.version,
        "release": nvr.release,
        "source": format!("{}#{}", job.git_url, job.commit),
        "start_time": seconds(start_ms),
        "end_time": seconds(end_ms),
        "extra": {
            "image": image_extra,
            "submitter": job.submitter,
            "osbs_build_id": result.build_id,
            "osbs_build": {"kind": "container_build", "engine": "docker", "subtypes": []},
            "target": job.target.as_ref().map(|target| target.name.clone()).unwrap_or_default(),
        },
    });
    let mut build = build;
    if let Some(reservation) = &result.koji_reservation
        && reservation.build_id > 0
    {
        build["build_id"] = json!(reservation.build_id);
    }

    let tools: Vec<Json> = result
        .tools
        .iter()
        .map(|tool| json!({"name": tool.name, "version": tool.version}))
        .collect();
    let host_os = non_empty(&result.worker_os).unwrap_or("Linux");
    let host_arch = non_empty(&result.worker_arch)
        .map(koji_arch)
        .unwrap_or_else(|| arch.clone());
    let buildroot = json!({
        "id": 1,
        "host": {"os": host_os, "arch": host_arch},
        "content_generator": {"name": input.cg_name, "version": input.cg_version},
        "container": {"type": "docker", "arch": arch},
        "tools": tools,
        "components": [],
        "extra": {"osbs": {"build_id": result.build_id, "worker": result.worker}},
    });

    let mut output: Vec<Json> = input
        .logs
        .iter()
        .map(|log| {
            json!({
                "buildroot_id": 1,
                "filename": log.filename,
                "filesize": log.size,
                "checksum": log.sha256,
                "checksum_type": "sha256",
                "type": "log",
                "arch": "noarch",
            })
        })
        .collect();
    let components: Vec<Json> = result
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
    output.push(json!({
        "buildroot_id": 1,
        "filename": input.image.filename,
        "filesize": input.image.size,
        "checksum": input.image.sha256,
        "checksum_type": "sha256",
        "type": "docker-image",
        "arch": arch,
        "extra": {
            "image": {"arch": arch},
            "docker": {
                "id": image.image_id,
                "parent_id": image.parent_id,
                "repositories": image.pullspecs,
                "tags": image.tags,
                "config": config,
                "digests": digests,
                "layer_sizes": layer_sizes,
            },
        },
        "components": components,
    }));

    json!({
        "metadata_version": 0,
        "build": build,
        "buildroots": [buildroot],
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
            image: &image,
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
