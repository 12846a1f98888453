//! Media types, pure: the manifest, list, config and layer types of Docker's v2 schema 2 and
//! of OCI, what OSBS accepts when it reads a manifest, and the format a new manifest is
//! written in.

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What OSBS accepts when reading a manifest: single images and lists (a multi-arch base is
/// a list).
pub const ACCEPT_MANIFESTS: &[&str] = &[DOCKER_MANIFEST, OCI_MANIFEST, DOCKER_LIST, OCI_INDEX];

/// Largest manifest read (the distribution spec's recommended limit).
pub const MANIFEST_LIMIT: usize = 4 << 20;

/// The two formats a registry stores a single-platform image in.
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

    pub fn layer_type(self, gzip: bool) -> &'static str {
        match (self, gzip) {
            (ManifestFormat::DockerV2, false) => "application/vnd.docker.image.rootfs.diff.tar",
            (ManifestFormat::DockerV2, true) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            (ManifestFormat::Oci, false) => "application/vnd.oci.image.layer.v1.tar",
            (ManifestFormat::Oci, true) => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }

    /// The list type that goes with this format (a Docker list holds Docker manifests).
    pub fn list_type(self) -> &'static str {
        match self {
            ManifestFormat::DockerV2 => DOCKER_LIST,
            ManifestFormat::Oci => OCI_INDEX,
        }
    }
}

/// What a manifest media type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Image(ManifestFormat),
    List,
}

/// The kind of `media_type` (parameters such as `; charset=utf-8` ignored); `None` for a
/// type OSBS does not read (schema 1, artifacts).
pub fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type.split(';').next().unwrap_or_default().trim() {
        DOCKER_MANIFEST => Some(Kind::Image(ManifestFormat::DockerV2)),
        OCI_MANIFEST => Some(Kind::Image(ManifestFormat::Oci)),
        DOCKER_LIST | OCI_INDEX => Some(Kind::List),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_by_format() {
        let table: Vec<(ManifestFormat, [&str; 5])> = vec![
            (
                ManifestFormat::DockerV2,
                [
                    DOCKER_MANIFEST,
                    "application/vnd.docker.container.image.v1+json",
                    "application/vnd.docker.image.rootfs.diff.tar",
                    "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    DOCKER_LIST,
                ],
            ),
            (
                ManifestFormat::Oci,
                [
                    OCI_MANIFEST,
                    "application/vnd.oci.image.config.v1+json",
                    "application/vnd.oci.image.layer.v1.tar",
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                    OCI_INDEX,
                ],
            ),
        ];
        for (format, expected) in table {
            assert_eq!(
                [
                    format.manifest_type(),
                    format.config_type(),
                    format.layer_type(false),
                    format.layer_type(true),
                    format.list_type()
                ],
                expected
            );
        }
    }

    #[test]
    fn kinds() {
        for (media_type, kind) in [
            (DOCKER_MANIFEST, Some(Kind::Image(ManifestFormat::DockerV2))),
            (
                "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
                Some(Kind::Image(ManifestFormat::Oci)),
            ),
            (DOCKER_LIST, Some(Kind::List)),
            (OCI_INDEX, Some(Kind::List)),
            (
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                None,
            ),
            ("application/json", None),
            ("", None),
        ] {
            assert_eq!(kind_of(media_type), kind, "{media_type}");
        }
    }
}
