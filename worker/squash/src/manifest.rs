//! The registry-side documents, pure: media types, names (repository, tag, repo digest),
//! reading the base image's manifest (or index) as the registry serves it, and writing the
//! squashed image's manifest.
//!
//! Format: the squashed manifest has the base manifest's format, so the base layers'
//! descriptors are copied verbatim (media types, `urls`, annotations: nothing translated);
//! without a base manifest it is Docker v2 schema 2, which is what Docker 20.10's own
//! `docker push` writes and what the worker's results and Koji metadata have always carried.

use crate::compress::LayerCompression;
use serde::Serialize;
use serde_json::Value;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// What we accept when reading a manifest (a multi-arch base is an index).
pub const ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.index.v1+json";

/// Largest manifest we read (the distribution spec's recommended limit).
pub const MANIFEST_LIMIT: usize = 4 << 20;

/// The two manifest formats a registry stores for a single-platform image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    /// `application/vnd.docker.distribution.manifest.v2+json`.
    DockerV2,
    /// `application/vnd.oci.image.manifest.v1+json`.
    Oci,
}

impl ManifestFormat {
    pub fn manifest_type(self) -> &'static str {
        match self {
            ManifestFormat::DockerV2 => DOCKER_MANIFEST,
            ManifestFormat::Oci => OCI_MANIFEST,
        }
    }

    pub fn config_type(self) -> &'static str {
        match self {
            ManifestFormat::DockerV2 => "application/vnd.docker.container.image.v1+json",
            ManifestFormat::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }

    pub fn layer_type(self, compression: LayerCompression) -> &'static str {
        match (self, compression.is_gzip()) {
            (ManifestFormat::DockerV2, false) => "application/vnd.docker.image.rootfs.diff.tar",
            (ManifestFormat::DockerV2, true) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (ManifestFormat::Oci, false) => "application/vnd.oci.image.layer.v1.tar",
            (ManifestFormat::Oci, true) => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
}

/// One blob named by a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub digest: String,
}

/// A base layer as the base manifest describes it (kept verbatim for the new manifest).
#[derive(Debug, Clone, PartialEq)]
pub struct BaseLayer {
    pub digest: String,
    pub size: u64,
    pub descriptor: Value,
}

/// A single-platform manifest of the base image.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseManifest {
    pub format: ManifestFormat,
    pub config_digest: String,
    pub layers: Vec<BaseLayer>,
}

/// What a manifest reference resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum BaseDocument {
    Manifest(BaseManifest),
    /// A multi-platform index: the digest of the entry for our platform, if any.
    Index(Option<String>),
}

/// The platform whose entry is picked from an index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

fn is_digest(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Reads a manifest or index body. `media_type` is the registry's Content-Type (an OCI
/// manifest need not repeat it in its body).
pub fn parse_base(
    media_type: &str,
    body: &[u8],
    platform: &Platform,
) -> Result<BaseDocument, String> {
    let document: Value =
        serde_json::from_slice(body).map_err(|e| format!("it is not JSON: {e}"))?;
    let declared = document["mediaType"].as_str().unwrap_or_default();
    let media_type = media_type.split(';').next().unwrap_or_default().trim();
    let kind = if [DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX].contains(&media_type) {
        media_type
    } else if !declared.is_empty() {
        declared
    } else if media_type.starts_with("application/vnd.") {
        // Another vendor type (schema 1, an artifact): named in the error below.
        media_type
    } else if document.get("manifests").is_some() {
        OCI_INDEX
    } else {
        OCI_MANIFEST
    };
    match kind {
        DOCKER_LIST | OCI_INDEX => {
            let entries = document["manifests"]
                .as_array()
                .ok_or("the index has no manifests list")?;
            let chosen = entries.iter().find(|entry| {
                let p = &entry["platform"];
                p["os"].as_str() == Some(platform.os.as_str())
                    && p["architecture"].as_str() == Some(platform.architecture.as_str())
                    && (platform.variant.is_none()
                        || p["variant"].as_str() == platform.variant.as_deref())
            });
            Ok(BaseDocument::Index(
                chosen
                    .and_then(|entry| entry["digest"].as_str())
                    .filter(|digest| is_digest(digest))
                    .map(str::to_owned),
            ))
        }
        DOCKER_MANIFEST | OCI_MANIFEST => {
            let format = if kind == DOCKER_MANIFEST {
                ManifestFormat::DockerV2
            } else {
                ManifestFormat::Oci
            };
            let config_digest = document["config"]["digest"]
                .as_str()
                .filter(|digest| is_digest(digest))
                .ok_or("its config has no sha256 digest")?
                .to_owned();
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
                    Ok(BaseLayer {
                        digest: digest.to_owned(),
                        size,
                        descriptor: layer.clone(),
                    })
                })
                .collect::<Result<Vec<_>, &str>>()?;
            Ok(BaseDocument::Manifest(BaseManifest {
                format,
                config_digest,
                layers,
            }))
        }
        other => Err(format!("media type {other} is not an image manifest")),
    }
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: &'a Descriptor,
    layers: Vec<Value>,
}

/// The squashed image's manifest: the config, the base layers as the base manifest
/// describes them, then the new layer.
pub fn manifest_bytes(
    format: ManifestFormat,
    config: &Descriptor,
    base_layers: &[Value],
    new_layer: &Descriptor,
) -> Vec<u8> {
    let mut layers = base_layers.to_vec();
    layers.push(serde_json::to_value(new_layer).expect("a descriptor serializes"));
    serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: format.manifest_type(),
        config,
        layers,
    })
    .expect("a manifest serializes")
}

/// `NAME` or `NS/NAME`: the distribution spec's repository grammar (lowercase components
/// separated by `/`, each `[a-z0-9]+` joined by `.`, `_`, `__` or dashes).
pub fn valid_repository(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name.split('/').all(|component| {
            let bytes = component.as_bytes();
            let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
            if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
                return false;
            }
            let mut i = 0;
            while i < bytes.len() {
                if alnum(bytes[i]) {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < bytes.len() && !alnum(bytes[i]) {
                    i += 1;
                }
                let separator = &component[start..i];
                if !(separator == "."
                    || separator == "_"
                    || separator == "__"
                    || separator.bytes().all(|b| b == b'-'))
                {
                    return false;
                }
            }
            true
        })
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && word(bytes[0])
        && bytes.iter().all(|b| word(*b) || *b == b'.' || *b == b'-')
}

/// Splits `REGISTRY/REPOSITORY@DIGEST` (an engine RepoDigest). Names without a registry
/// part (Docker Hub's) give `None`: they cannot be on the target registry.
pub fn parse_repo_digest(text: &str) -> Option<(&str, &str, &str)> {
    let (name, digest) = text.split_once('@')?;
    let (registry, repository) = name.split_once('/')?;
    let is_host = registry.contains('.') || registry.contains(':') || registry == "localhost";
    (is_host && is_digest(digest)).then_some((registry, repository, digest))
}

/// Splits `REGISTRY/REPOSITORY` (the `--push` argument).
pub fn parse_push_target(text: &str) -> Option<(&str, &str)> {
    let (registry, repository) = text.split_once('/')?;
    let is_host = registry.contains('.') || registry.contains(':') || registry == "localhost";
    (is_host && valid_repository(repository)).then_some((registry, repository))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    const CFG: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

    fn amd64() -> Platform {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }

    #[test]
    fn base_manifests_and_indexes_are_read() {
        let docker = json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": CFG},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 10, "digest": D1},
                       {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 20, "digest": D2, "urls": ["https://x/y"]}]});
        let oci_no_type = json!({"schemaVersion": 2,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 7, "digest": CFG},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "size": 10, "digest": D1}]});
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "size": 1, "digest": D1, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            {"mediaType": OCI_MANIFEST, "size": 1, "digest": D2, "platform": {"os": "linux", "architecture": "amd64"}}]});
        let cases: Vec<(&str, Value, Result<BaseDocument, &str>)> = vec![
            (
                DOCKER_MANIFEST,
                docker.clone(),
                Ok(BaseDocument::Manifest(BaseManifest {
                    format: ManifestFormat::DockerV2,
                    config_digest: CFG.into(),
                    layers: vec![
                        BaseLayer {
                            digest: D1.into(),
                            size: 10,
                            descriptor: docker["layers"][0].clone(),
                        },
                        BaseLayer {
                            digest: D2.into(),
                            size: 20,
                            descriptor: docker["layers"][1].clone(),
                        },
                    ],
                })),
            ),
            (
                "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
                oci_no_type.clone(),
                Ok(BaseDocument::Manifest(BaseManifest {
                    format: ManifestFormat::Oci,
                    config_digest: CFG.into(),
                    layers: vec![BaseLayer {
                        digest: D1.into(),
                        size: 10,
                        descriptor: oci_no_type["layers"][0].clone(),
                    }],
                })),
            ),
            (
                "application/octet-stream",
                index.clone(),
                Ok(BaseDocument::Index(Some(D2.into()))),
            ),
            (
                DOCKER_LIST,
                json!({"manifests": [{"digest": D1, "platform": {"os": "windows", "architecture": "amd64"}}]}),
                Ok(BaseDocument::Index(None)),
            ),
            (
                DOCKER_MANIFEST,
                json!({"config": {"digest": "md5:x"}, "layers": []}),
                Err("its config has no sha256 digest"),
            ),
            (
                DOCKER_MANIFEST,
                json!({"config": {"digest": CFG}, "layers": [{"digest": D1}]}),
                Err("a layer has no size"),
            ),
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                json!({"schemaVersion": 1}),
                Err(
                    "media type application/vnd.docker.distribution.manifest.v1+prettyjws is not an image manifest",
                ),
            ),
        ];
        for (media_type, body, expected) in cases {
            let got = parse_base(media_type, &serde_json::to_vec(&body).unwrap(), &amd64());
            assert_eq!(got, expected.map_err(str::to_owned), "{media_type} {body}");
        }
        assert!(parse_base(DOCKER_MANIFEST, b"not json", &amd64()).is_err());
        let arm = Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        };
        assert_eq!(
            parse_base(OCI_INDEX, &serde_json::to_vec(&index).unwrap(), &arm),
            Ok(BaseDocument::Index(Some(D1.into())))
        );
    }

    #[test]
    fn the_manifest_keeps_base_descriptors_verbatim_and_adds_the_new_layer() {
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
            media_type: ManifestFormat::DockerV2
                .layer_type(LayerCompression::None)
                .into(),
            size: 30,
            digest: D2.into(),
        };
        let bytes = manifest_bytes(ManifestFormat::DockerV2, &config, &base, &layer);
        let manifest: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            manifest,
            json!({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7, "digest": CFG},
                "layers": [base[0].clone(),
                           {"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": 30, "digest": D2}]})
        );
        assert_eq!(
            bytes,
            manifest_bytes(ManifestFormat::DockerV2, &config, &base, &layer)
        );
        let types: Vec<&str> = [ManifestFormat::DockerV2, ManifestFormat::Oci]
            .into_iter()
            .flat_map(|f| {
                [
                    f.layer_type(LayerCompression::None),
                    f.layer_type(LayerCompression::Gzip { level: 1 }),
                ]
            })
            .collect();
        assert_eq!(
            types,
            [
                "application/vnd.docker.image.rootfs.diff.tar",
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.oci.image.layer.v1.tar",
                "application/vnd.oci.image.layer.v1.tar+gzip"
            ]
        );
    }

    #[test]
    fn names_follow_the_distribution_grammar() {
        for (name, ok) in [
            ("a", true),
            ("ns/name", true),
            ("a.b_c__d---e/f0", true),
            ("", false),
            ("Upper", false),
            ("a//b", false),
            ("-a", false),
            ("a-", false),
            ("a..b", false),
            ("a___b", false),
            ("a b", false),
        ] {
            assert_eq!(valid_repository(name), ok, "{name}");
        }
        let long = "x".repeat(129);
        for (tag, ok) in [
            ("latest", true),
            ("1.0-3", true),
            ("_x", true),
            ("", false),
            (".x", false),
            ("-x", false),
            ("a:b", false),
            ("a/b", false),
            (long.as_str(), false),
        ] {
            assert_eq!(valid_tag(tag), ok, "{tag}");
        }
    }

    #[test]
    fn repo_digests_and_push_targets_split() {
        let repo_digest = format!("127.0.0.1:5000/ns/base@{D1}");
        assert_eq!(
            parse_repo_digest(&repo_digest),
            Some(("127.0.0.1:5000", "ns/base", D1))
        );
        assert_eq!(
            parse_repo_digest(&format!("registry.example.com/base@{D1}")),
            Some(("registry.example.com", "base", D1))
        );
        assert_eq!(parse_repo_digest(&format!("library/busybox@{D1}")), None);
        assert_eq!(parse_repo_digest("127.0.0.1:5000/base@sha256:short"), None);
        assert_eq!(parse_repo_digest("127.0.0.1:5000/base:1"), None);
        assert_eq!(
            parse_push_target("127.0.0.1:5000/ns/name"),
            Some(("127.0.0.1:5000", "ns/name"))
        );
        assert_eq!(
            parse_push_target("localhost/name"),
            Some(("localhost", "name"))
        );
        assert_eq!(parse_push_target("ns/name"), None);
        assert_eq!(parse_push_target("127.0.0.1:5000/Name"), None);
        assert_eq!(parse_push_target("127.0.0.1:5000"), None);
    }
}
