//! Manifest documents, pure: reading an image manifest or a list as a registry serves it
//! (picking a platform's entry from a list), and writing an image manifest or a list.
//!
//! An image manifest's layer descriptors are kept verbatim (`urls`, annotations, vendor
//! media types: nothing translated), so that a manifest written on top of a base's layers
//! names them exactly as the base's manifest does. Lists use oci-client's `OciImageIndex`
//! (a Docker manifest list has the same shape, with its own media type).

use crate::digest::{is_digest, sha256_digest};
use crate::media::{self, Kind, ManifestFormat};
use bytes::Bytes;
use oci_client::manifest::{ImageIndexEntry, OciImageIndex};
use osbs_proto::arch::Arch;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One blob named by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub digest: String,
}

/// A layer as its manifest describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
    /// The descriptor as the manifest has it, every field kept.
    pub descriptor: Value,
}

/// A single-platform image manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageManifest {
    pub format: ManifestFormat,
    pub config: Descriptor,
    pub layers: Vec<Layer>,
}

/// A manifest list (Docker) or image index (OCI).
#[derive(Debug, Clone)]
pub struct List {
    pub media_type: String,
    pub index: OciImageIndex,
}

/// What a manifest reference names.
#[derive(Debug, Clone)]
pub enum Document {
    Image(ImageManifest),
    List(List),
}

/// The platform whose entry is picked from a list (Go's names: `linux`, `amd64`, `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    /// Empty: any.
    pub os: String,
    pub architecture: String,
    /// `None`: any.
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let os = if self.os.is_empty() { "*" } else { &self.os };
        write!(f, "{os}/{}", self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

impl List {
    /// The entry for `platform`, if the list has one (with a well-formed digest).
    pub fn pick(&self, platform: &Platform) -> Option<&ImageIndexEntry> {
        self.index.manifests.iter().find(|entry| {
            let Some(p) = &entry.platform else {
                return false;
            };
            (platform.os.is_empty() || p.os.to_string() == platform.os)
                && p.architecture.to_string() == platform.architecture
                && (platform.variant.is_none() || p.variant == platform.variant)
                && is_digest(&entry.digest)
        })
    }
}

impl Platform {
    /// The platform of Koji/OCI architecture `arch` (`linux`, `arm64`, variant `v8`).
    pub fn of_arch(arch: &Arch) -> Platform {
        Platform {
            os: "linux".to_owned(),
            architecture: arch.oci.to_owned(),
            variant: arch.variant.map(str::to_owned),
        }
    }
}

impl List {
    /// The entry of `arch` for linux: its OCI architecture with its variant, else (an entry
    /// that names no variant) the architecture alone, as the engine matches arm64 without a
    /// variant to arm64/v8.
    pub fn pick_arch(&self, arch: &Arch) -> Option<&ImageIndexEntry> {
        let exact = Platform::of_arch(arch);
        self.pick(&exact).or_else(|| {
            self.index.manifests.iter().find(|entry| {
                entry.platform.as_ref().is_some_and(|p| {
                    p.os.to_string() == "linux"
                        && p.architecture.to_string() == arch.oci
                        && p.variant.as_deref().is_none_or(str::is_empty)
                        && is_digest(&entry.digest)
                })
            })
        })
    }

    /// The platforms the list names (`linux/amd64`, `linux/arm64/v8`), for messages.
    pub fn platforms(&self) -> Vec<String> {
        self.index
            .manifests
            .iter()
            .filter_map(|entry| entry.platform.as_ref())
            .map(|p| match p.variant.as_deref().filter(|v| !v.is_empty()) {
                Some(variant) => format!("{}/{}/{variant}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            })
            .collect()
    }
}

/// One per-arch image manifest of a list to write: which arch, and the manifest as the
/// registry holds it (its media type, digest and size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMember {
    pub arch: Arch,
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

/// A list (Docker manifest list for [`ManifestFormat::DockerV2`], OCI index otherwise)
/// naming `members` in their order, each with its arch's platform (linux, OCI name,
/// variant).
pub fn arch_list(format: ManifestFormat, members: &[ListMember]) -> RawManifest {
    let entries = members
        .iter()
        .map(|member| {
            let platform = Platform::of_arch(&member.arch);
            ImageIndexEntry {
                media_type: member.media_type.clone(),
                digest: member.digest.clone(),
                size: i64::try_from(member.size).unwrap_or(i64::MAX),
                platform: Some(oci_client::manifest::Platform {
                    architecture: platform.architecture.as_str().into(),
                    os: platform.os.as_str().into(),
                    os_version: None,
                    os_features: None,
                    variant: platform.variant,
                    features: None,
                }),
                annotations: None,
                artifact_type: None,
            }
        })
        .collect();
    list_manifest(format, entries)
}

/// Reads a manifest or list body. `media_type` is the registry's Content-Type when known (an
/// OCI manifest need not repeat its type in its body); else the body's `mediaType`, else
/// its shape decides.
pub fn parse_document(media_type: Option<&str>, body: &[u8]) -> Result<Document, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| format!("it is not JSON: {e}"))?;
    let declared = document["mediaType"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let given = media_type.unwrap_or_default();
    let named = if media::kind_of(given).is_some() || given.starts_with("application/vnd.") {
        given
    } else {
        declared.as_str()
    };
    let kind = match (named, media::kind_of(named)) {
        ("", _) if document.get("manifests").is_some() => Kind::List,
        ("", _) if document["schemaVersion"] == 2 => Kind::Image(ManifestFormat::Oci),
        (_, Some(kind)) => kind,
        ("", None) => return Err("it is not a schema 2 manifest".into()),
        (other, None) => return Err(format!("media type {other} is not an image manifest")),
    };
    match kind {
        Kind::List => {
            let index: OciImageIndex = serde_json::from_value(document)
                .map_err(|e| format!("it is not a manifest list: {e}"))?;
            Ok(Document::List(List {
                media_type: if named.is_empty() {
                    media::OCI_INDEX.to_owned()
                } else {
                    named.to_owned()
                },
                index,
            }))
        }
        Kind::Image(format) => parse_image(format, &document).map(Document::Image),
    }
}

fn parse_image(format: ManifestFormat, document: &Value) -> Result<ImageManifest, String> {
    let config = &document["config"];
    let config = Descriptor {
        media_type: config["mediaType"].as_str().unwrap_or_default().to_owned(),
        size: config["size"].as_u64().unwrap_or_default(),
        digest: config["digest"]
            .as_str()
            .filter(|digest| is_digest(digest))
            .ok_or("its config has no sha256 digest")?
            .to_owned(),
    };
    let layers = document["layers"]
        .as_array()
        .ok_or("it has no layers list")?
        .iter()
        .map(|layer| {
            let digest = layer["digest"]
                .as_str()
                .filter(|digest| is_digest(digest))
                .ok_or("a layer has no sha256 digest")?;
            let size = layer["size"].as_u64().ok_or("a layer has no size")?;
            Ok(Layer {
                digest: digest.to_owned(),
                size,
                media_type: layer["mediaType"].as_str().unwrap_or_default().to_owned(),
                descriptor: layer.clone(),
            })
        })
        .collect::<Result<Vec<_>, &str>>()?;
    Ok(ImageManifest {
        format,
        config,
        layers,
    })
}

/// A manifest or list as bytes, ready to be PUT: its digest is the digest of these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    pub media_type: String,
    pub bytes: Bytes,
}

impl RawManifest {
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }
}

#[derive(Serialize)]
struct ManifestJson<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: &'a Descriptor,
    layers: Vec<Value>,
}

/// An image manifest: the config, the given layers verbatim, then `new_layer`.
pub fn image_manifest(
    format: ManifestFormat,
    config: &Descriptor,
    layers: &[Value],
    new_layer: &Descriptor,
) -> RawManifest {
    let mut all = layers.to_vec();
    all.push(serde_json::to_value(new_layer).expect("a descriptor serializes"));
    let bytes = serde_json::to_vec(&ManifestJson {
        schema_version: 2,
        media_type: format.manifest_type(),
        config,
        layers: all,
    })
    .expect("a manifest serializes");
    RawManifest {
        media_type: format.manifest_type().to_owned(),
        bytes: Bytes::from(bytes),
    }
}

/// A list of the given image manifests: a Docker manifest list when `format` is
/// [`ManifestFormat::DockerV2`], an OCI index otherwise.
pub fn list_manifest(format: ManifestFormat, manifests: Vec<ImageIndexEntry>) -> RawManifest {
    let media_type = format.list_type();
    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(media_type.to_owned()),
        manifests,
        artifact_type: None,
        annotations: None,
    };
    RawManifest {
        media_type: media_type.to_owned(),
        bytes: Bytes::from(serde_json::to_vec(&index).expect("an index serializes")),
    }
}

/// A list entry for an image manifest pushed as `manifest`, for `os`/`architecture`.
pub fn list_entry(manifest: &RawManifest, platform: &Platform) -> ImageIndexEntry {
    ImageIndexEntry {
        media_type: manifest.media_type.clone(),
        digest: manifest.digest(),
        size: i64::try_from(manifest.bytes.len()).unwrap_or(i64::MAX),
        platform: Some(oci_client::manifest::Platform {
            architecture: platform.architecture.as_str().into(),
            os: platform.os.as_str().into(),
            os_version: None,
            os_features: None,
            variant: platform.variant.clone(),
            features: None,
        }),
        annotations: None,
        artifact_type: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
    use serde_json::json;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const CFG: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn amd64() -> Platform {
        Platform::new("linux", "amd64")
    }

    /// What a document reads as: an image's (format, config, layer digests) or a list's
    /// pick for amd64.
    #[derive(Debug, PartialEq)]
    enum Read {
        Image(ManifestFormat, String, Vec<String>),
        Picked(Option<String>),
    }

    fn read(media_type: Option<&str>, body: &Value) -> Result<Read, String> {
        let body = serde_json::to_vec(body).unwrap();
        Ok(match parse_document(media_type, &body)? {
            Document::Image(image) => Read::Image(
                image.format,
                image.config.digest,
                image.layers.into_iter().map(|l| l.digest).collect(),
            ),
            Document::List(list) => Read::Picked(list.pick(&amd64()).map(|e| e.digest.clone())),
        })
    }

    #[test]
    fn manifests_and_lists_are_read() {
        let docker = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": CFG},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 10, "digest": D1},
                       {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 20, "digest": D2, "urls": ["https://x/y"]}]});
        let oci_untyped = json!({"schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 7, "digest": CFG},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "size": 10, "digest": D1}]});
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "size": 1, "digest": D1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": OCI_MANIFEST, "size": 1, "digest": D2, "platform": {"os": "linux", "architecture": "amd64"}}]});
        let image = |format, layers: &[&str]| {
            Ok(Read::Image(
                format,
                CFG.to_owned(),
                layers.iter().map(|d| (*d).to_owned()).collect(),
            ))
        };
        let cases: Vec<(Option<&str>, Value, Result<Read, &str>)> = vec![
            (
                Some(DOCKER_MANIFEST),
                docker.clone(),
                image(ManifestFormat::DockerV2, &[D1, D2]),
            ),
            (
                None,
                docker.clone(),
                image(ManifestFormat::DockerV2, &[D1, D2]),
            ),
            (
                Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
                oci_untyped.clone(),
                image(ManifestFormat::Oci, &[D1]),
            ),
            (None, oci_untyped.clone(), image(ManifestFormat::Oci, &[D1])),
            (
                Some("application/octet-stream"),
                index.clone(),
                Ok(Read::Picked(Some(D2.into()))),
            ),
            (None, index.clone(), Ok(Read::Picked(Some(D2.into())))),
            (
                Some(DOCKER_LIST),
                json!({"schemaVersion": 2, "manifests": [{"mediaType": DOCKER_MANIFEST, "size": 1, "digest": D1,
                    "platform": {"os": "windows", "architecture": "amd64"}}]}),
                Ok(Read::Picked(None)),
            ),
            (
                Some(DOCKER_LIST),
                json!({"schemaVersion": 2, "manifests": [{"mediaType": DOCKER_MANIFEST, "size": 1, "digest": "sha256:x",
                    "platform": {"os": "linux", "architecture": "amd64"}}]}),
                Ok(Read::Picked(None)),
            ),
            (
                Some(DOCKER_LIST),
                json!({"schemaVersion": 2, "manifests": [{"digest": D1}]}),
                Err("it is not a manifest list"),
            ),
            (
                Some(DOCKER_MANIFEST),
                json!({"config": {"digest": "md5:x"}, "layers": []}),
                Err("its config has no sha256 digest"),
            ),
            (
                Some(DOCKER_MANIFEST),
                json!({"config": {"digest": CFG}, "layers": [{"digest": D1}]}),
                Err("a layer has no size"),
            ),
            (
                Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
                json!({"schemaVersion": 1}),
                Err(
                    "media type application/vnd.docker.distribution.manifest.v1+prettyjws is not an image manifest",
                ),
            ),
            (
                None,
                json!({"schemaVersion": 1, "fsLayers": []}),
                Err("it is not a schema 2 manifest"),
            ),
        ];
        for (media_type, body, expected) in cases {
            let got = read(media_type, &body);
            match expected {
                Ok(expected) => assert_eq!(got, Ok(expected), "{media_type:?} {body}"),
                Err(message) => {
                    let error = got.expect_err(&body.to_string());
                    assert!(error.starts_with(message), "{media_type:?} {body}: {error}");
                }
            }
        }
        assert!(parse_document(Some(DOCKER_MANIFEST), b"not json").is_err());
        // A variant narrows the pick; without one any variant does.
        let Document::List(list) =
            parse_document(None, &serde_json::to_vec(&index).unwrap()).unwrap()
        else {
            panic!("a list");
        };
        let mut arm = Platform::new("linux", "arm64");
        assert_eq!(list.pick(&arm).map(|e| e.digest.as_str()), Some(D1));
        arm.variant = Some("v7".into());
        assert!(list.pick(&arm).is_none());
        assert_eq!(
            list.pick(&Platform::new("", "amd64"))
                .map(|e| e.digest.as_str()),
            Some(D2)
        );
    }

    fn list_of(entries: &[(&str, Option<&str>, &str)]) -> List {
        let manifests = entries
            .iter()
            .map(|(architecture, variant, digest)| {
                json!({"mediaType": DOCKER_MANIFEST, "size": 1, "digest": digest,
                    "platform": {"os": "linux", "architecture": architecture, "variant": variant}})
            })
            .collect::<Vec<_>>();
        let body = serde_json::to_vec(
            &json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": manifests}),
        )
        .unwrap();
        match parse_document(None, &body).unwrap() {
            Document::List(list) => list,
            Document::Image(_) => panic!("not a list"),
        }
    }

    #[test]
    fn an_arch_is_picked_with_its_variant_or_without_one() {
        let arm64 = osbs_proto::arch::lookup("aarch64").unwrap();
        let x86 = osbs_proto::arch::lookup("x86_64").unwrap();
        let armv7 = osbs_proto::arch::lookup("armv7hl").unwrap();
        let table = [
            (
                "both",
                vec![("amd64", None, D1), ("arm64", Some("v8"), D2)],
                arm64,
                Some(D2),
            ),
            (
                "both, amd64",
                vec![("amd64", None, D1), ("arm64", Some("v8"), D2)],
                x86,
                Some(D1),
            ),
            (
                "arm64 without variant",
                vec![("amd64", None, D1), ("arm64", None, D2)],
                arm64,
                Some(D2),
            ),
            (
                "exact variant first",
                vec![("arm64", None, D1), ("arm64", Some("v8"), D2)],
                arm64,
                Some(D2),
            ),
            ("amd64 only", vec![("amd64", None, D1)], arm64, None),
            (
                "another arm variant",
                vec![("arm", Some("v6"), D1)],
                armv7,
                None,
            ),
        ];
        for (what, entries, arch, expected) in table {
            let list = list_of(&entries);
            assert_eq!(
                list.pick_arch(&arch).map(|e| e.digest.as_str()),
                expected,
                "{what}"
            );
        }
        assert_eq!(
            list_of(&[("amd64", None, D1), ("arm64", Some("v8"), D2)]).platforms(),
            ["linux/amd64", "linux/arm64/v8"]
        );
    }

    #[test]
    fn an_arch_list_names_each_member_with_its_platform() {
        let member = |koji: &str, digest: &str| ListMember {
            arch: osbs_proto::arch::lookup(koji).unwrap(),
            media_type: DOCKER_MANIFEST.to_owned(),
            digest: digest.to_owned(),
            size: 527,
        };
        for (format, media_type) in [
            (ManifestFormat::DockerV2, DOCKER_LIST),
            (ManifestFormat::Oci, OCI_INDEX),
        ] {
            let raw = arch_list(format, &[member("x86_64", D1), member("aarch64", D2)]);
            assert_eq!(raw.media_type, media_type);
            let body: Value = serde_json::from_slice(&raw.bytes).unwrap();
            assert_eq!(body["mediaType"], media_type);
            assert_eq!(
                body["manifests"][0]["platform"],
                json!({"architecture": "amd64", "os": "linux"})
            );
            assert_eq!(
                body["manifests"][1]["platform"],
                json!({"architecture": "arm64", "os": "linux", "variant": "v8"})
            );
            assert_eq!(body["manifests"][1]["digest"], D2);
            assert_eq!(body["manifests"][1]["size"], 527);
            let Document::List(list) = parse_document(Some(media_type), &raw.bytes).unwrap() else {
                panic!("not a list");
            };
            assert_eq!(
                list.pick_arch(&osbs_proto::arch::lookup("aarch64").unwrap())
                    .unwrap()
                    .digest,
                D2
            );
        }
    }

    #[test]
    fn a_written_manifest_keeps_layers_verbatim_and_reads_back() {
        let base = vec![
            json!({"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "size": 20, "digest": D1, "urls": ["https://x/y"]}),
        ];
        let config = Descriptor {
            media_type: ManifestFormat::DockerV2.config_type().into(),
            size: 7,
            digest: CFG.into(),
        };
        let layer = Descriptor {
            media_type: ManifestFormat::DockerV2.layer_type(false).into(),
            size: 30,
            digest: D2.into(),
        };
        let raw = image_manifest(ManifestFormat::DockerV2, &config, &base, &layer);
        assert_eq!(raw.media_type, DOCKER_MANIFEST);
        let written: Value = serde_json::from_slice(&raw.bytes).unwrap();
        assert_eq!(
            written,
            json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": CFG},
                "layers": [base[0].clone(),
                           {"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": 30, "digest": D2}]})
        );
        assert_eq!(
            raw,
            image_manifest(ManifestFormat::DockerV2, &config, &base, &layer)
        );
        let Document::Image(read) = parse_document(None, &raw.bytes).unwrap() else {
            panic!("an image manifest");
        };
        assert_eq!(read.config, config);
        assert_eq!(read.layers[0].descriptor, base[0]);
        assert_eq!(read.layers[1].media_type, layer.media_type);
    }

    #[test]
    fn a_written_list_names_each_platform_and_reads_back() {
        let amd = image_manifest(
            ManifestFormat::Oci,
            &Descriptor {
                media_type: ManifestFormat::Oci.config_type().into(),
                size: 1,
                digest: CFG.into(),
            },
            &[],
            &Descriptor {
                media_type: ManifestFormat::Oci.layer_type(true).into(),
                size: 2,
                digest: D1.into(),
            },
        );
        let arm = image_manifest(
            ManifestFormat::Oci,
            &Descriptor {
                media_type: ManifestFormat::Oci.config_type().into(),
                size: 1,
                digest: CFG.into(),
            },
            &[],
            &Descriptor {
                media_type: ManifestFormat::Oci.layer_type(true).into(),
                size: 2,
                digest: D2.into(),
            },
        );
        for format in [ManifestFormat::Oci, ManifestFormat::DockerV2] {
            let list = list_manifest(
                format,
                vec![
                    list_entry(&amd, &amd64()),
                    list_entry(&arm, &Platform::new("linux", "arm64")),
                ],
            );
            assert_eq!(list.media_type, format.list_type());
            let written: Value = serde_json::from_slice(&list.bytes).unwrap();
            assert_eq!(written["mediaType"], format.list_type());
            assert_eq!(
                written["manifests"][1]["platform"],
                json!({"architecture": "arm64", "os": "linux"})
            );
            assert_eq!(written["manifests"][0]["size"], amd.bytes.len());
            let Document::List(read) = parse_document(None, &list.bytes).unwrap() else {
                panic!("a list");
            };
            assert_eq!(read.media_type, format.list_type());
            assert_eq!(
                read.pick(&amd64()).map(|e| e.digest.clone()),
                Some(amd.digest())
            );
        }
    }
}
