//! The registry adapter (OCI distribution API over reqwest): image manifests (a manifest
//! list is resolved to the architecture asked for), configs, and layer blobs as streams.

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Deserialize;
use serde_json::Value as Json;
use std::time::Duration;

const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
];

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach the registry for {what}: {reason}")]
    Transport { what: String, reason: String },
    #[error("the registry answered {what} with HTTP {status}")]
    Status { what: String, status: u16 },
    #[error("the registry's answer to {what} is unusable: {reason}")]
    Invalid { what: String, reason: String },
    #[error("{0} is not an image pull spec (registry/repository@digest or :tag)")]
    Pullspec(String),
}

impl RegistryError {
    /// Worth trying again: the registry is down or busy.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// `registry/repository` and a tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub reference: String,
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let separator = if self.reference.contains(':') {
            '@'
        } else {
            ':'
        };
        write!(
            f,
            "{}/{}{separator}{}",
            self.registry, self.repository, self.reference
        )
    }
}

/// Parses `registry[:port]/path/name@sha256:…` or `…:tag`. The registry part is required
/// (OSBS always names it).
pub fn parse_pullspec(pullspec: &str) -> Result<ImageRef, RegistryError> {
    let invalid = || RegistryError::Pullspec(pullspec.to_owned());
    let (registry, rest) = pullspec.split_once('/').ok_or_else(invalid)?;
    if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
        return Err(invalid());
    }
    let (repository, reference) = match rest.split_once('@') {
        Some((repository, digest)) => (repository, digest.to_owned()),
        None => match rest.rsplit_once(':') {
            Some((repository, tag)) if !tag.contains('/') => (repository, tag.to_owned()),
            _ => (rest, "latest".to_owned()),
        },
    };
    if repository.is_empty() || reference.is_empty() {
        return Err(invalid());
    }
    Ok(ImageRef {
        registry: registry.to_owned(),
        repository: repository.to_owned(),
        reference,
    })
}

/// A content descriptor (config or layer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
}

/// A single-image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    digest: String,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
}

/// Reads images from registries.
#[derive(Debug, Clone)]
pub struct Registry {
    http: reqwest::Client,
    insecure: Vec<String>,
}

impl Registry {
    /// `insecure`: registries spoken to over plain HTTP (loopback ones always are).
    pub fn new(insecure: &[String]) -> Registry {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("osbs-koji-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("a default HTTP client always builds");
        Registry {
            http,
            insecure: insecure.to_vec(),
        }
    }

    fn base(&self, registry: &str) -> String {
        let host = registry
            .rsplit_once(':')
            .map(|(host, _)| host)
            .unwrap_or(registry);
        let plain = matches!(host, "127.0.0.1" | "localhost" | "[::1]")
            || self.insecure.iter().any(|insecure| insecure == registry);
        format!("{}://{registry}/v2", if plain { "http" } else { "https" })
    }

    async fn get(
        &self,
        url: &str,
        what: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut request = self.http.get(url);
        if let Some(accept) = accept {
            request = request.header(reqwest::header::ACCEPT, accept);
        }
        let response = request
            .send()
            .await
            .map_err(|error| RegistryError::Transport {
                what: what.to_owned(),
                reason: error.to_string(),
            })?;
        if !response.status().is_success() {
            return Err(RegistryError::Status {
                what: what.to_owned(),
                status: response.status().as_u16(),
            });
        }
        Ok(response)
    }

    /// The manifest of `image`; a manifest list or index resolves to `architecture`'s entry
    /// (Docker naming: `amd64`, `arm64`...).
    pub async fn manifest(
        &self,
        image: &ImageRef,
        architecture: &str,
    ) -> Result<Manifest, RegistryError> {
        let mut reference = image.reference.clone();
        for _ in 0..2 {
            let what = format!(
                "the manifest of {}/{}@{reference}",
                image.registry, image.repository
            );
            let url = format!(
                "{}/{}/manifests/{reference}",
                self.base(&image.registry),
                image.repository
            );
            let bytes = self
                .get(&url, &what, Some(&MANIFEST_TYPES.join(", ")))
                .await?
                .bytes()
                .await
                .map_err(|error| RegistryError::Transport {
                    what: what.clone(),
                    reason: error.to_string(),
                })?;
            let document: Json =
                serde_json::from_slice(&bytes).map_err(|error| RegistryError::Invalid {
                    what: what.clone(),
                    reason: error.to_string(),
                })?;
            if let Some(entries) = document.get("manifests") {
                let entries: Vec<IndexEntry> =
                    serde_json::from_value(entries.clone()).map_err(|error| {
                        RegistryError::Invalid {
                            what: what.clone(),
                            reason: error.to_string(),
                        }
                    })?;
                let entry = entries
                    .iter()
                    .find(|entry| {
                        entry
                            .platform
                            .as_ref()
                            .is_some_and(|p| p.architecture == architecture)
                    })
                    .ok_or_else(|| RegistryError::Invalid {
                        what: what.clone(),
                        reason: format!(
                            "no image for architecture {architecture} in the manifest list"
                        ),
                    })?;
                reference = entry.digest.clone();
                continue;
            }
            return serde_json::from_value(document).map_err(|error| RegistryError::Invalid {
                what,
                reason: error.to_string(),
            });
        }
        Err(RegistryError::Invalid {
            what: image.to_string(),
            reason: "a manifest list points at another list".into(),
        })
    }

    /// A (small) blob in full: an image config.
    pub async fn blob(&self, image: &ImageRef, digest: &str) -> Result<Bytes, RegistryError> {
        let what = format!("blob {digest} of {}/{}", image.registry, image.repository);
        let url = format!(
            "{}/{}/blobs/{digest}",
            self.base(&image.registry),
            image.repository
        );
        self.get(&url, &what, None)
            .await?
            .bytes()
            .await
            .map_err(|error| RegistryError::Transport {
                what,
                reason: error.to_string(),
            })
    }

    /// A blob as a stream of pieces (a layer).
    pub async fn blob_stream(
        &self,
        image: &ImageRef,
        digest: &str,
    ) -> Result<BoxStream<'static, Result<Bytes, RegistryError>>, RegistryError> {
        let what = format!("blob {digest} of {}/{}", image.registry, image.repository);
        let url = format!(
            "{}/{}/blobs/{digest}",
            self.base(&image.registry),
            image.repository
        );
        let response = self.get(&url, &what, None).await?;
        Ok(response
            .bytes_stream()
            .map(move |piece| {
                piece.map_err(|error| RegistryError::Transport {
                    what: what.clone(),
                    reason: error.to_string(),
                })
            })
            .boxed())
    }

    /// The config of the image `pullspec` names (labels, rootfs, history).
    pub async fn config(&self, pullspec: &str, architecture: &str) -> Result<Json, RegistryError> {
        let image = parse_pullspec(pullspec)?;
        let manifest = self.manifest(&image, architecture).await?;
        let bytes = self.blob(&image, &manifest.config.digest).await?;
        serde_json::from_slice(&bytes).map_err(|error| RegistryError::Invalid {
            what: format!("the config of {pullspec}"),
            reason: error.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pullspecs() {
        let cases = [
            (
                "127.0.0.1:5000/httpd@sha256:ab",
                Some(("127.0.0.1:5000", "httpd", "sha256:ab")),
            ),
            (
                "registry.example.org/ns/httpd:2.4-1",
                Some(("registry.example.org", "ns/httpd", "2.4-1")),
            ),
            ("localhost/a/b", Some(("localhost", "a/b", "latest"))),
            ("httpd:2.4", None),
            ("docker.io/", None),
        ];
        for (text, expected) in cases {
            let got = parse_pullspec(text)
                .ok()
                .map(|image| (image.registry, image.repository, image.reference));
            let expected = expected.map(|(r, p, f)| (r.to_owned(), p.to_owned(), f.to_owned()));
            assert_eq!(got, expected, "{text}");
        }
        let registry = Registry::new(&["reg.lan:5000".into()]);
        assert_eq!(registry.base("127.0.0.1:5000"), "http://127.0.0.1:5000/v2");
        assert_eq!(registry.base("reg.lan:5000"), "http://reg.lan:5000/v2");
        assert_eq!(registry.base("quay.io"), "https://quay.io/v2");
    }
}
