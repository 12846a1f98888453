//! Import bundles: with no hub configured, the files an import would upload and its
//! `metadata.json`, written into `<bundle_dir>/<nvr>/` (through a hidden partial directory
//! renamed at the end, so a bundle is whole or absent).

use crate::metadata::OutputFile;
use futures::StreamExt;
use osbs_koji::upload::UploadSource;
use sha2::Digest;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Writes `source` to `path`; its size and sha256.
pub async fn write_source(
    path: &Path,
    filename: &str,
    source: &dyn UploadSource,
) -> std::io::Result<OutputFile> {
    let mut stream = source.open().await?;
    let mut file = tokio::fs::File::create(path).await?;
    let mut hasher = sha2::Sha256::new();
    let mut size = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        hasher.update(&piece);
        size += piece.len() as u64;
        file.write_all(&piece).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(OutputFile {
        filename: filename.to_owned(),
        size,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// `<bundle_dir>/<nvr>`, a `/` in the name written as `-` (Koji allows `/` in names; a
/// bundle is one directory, not a tree).
pub fn bundle_path(bundle_dir: &Path, nvr: &str) -> PathBuf {
    bundle_dir.join(flat(nvr))
}

fn flat(nvr: &str) -> String {
    nvr.replace('/', "-")
}

/// A fresh hidden directory to write a bundle into.
pub fn partial_path(bundle_dir: &Path, nvr: &str) -> PathBuf {
    bundle_dir.join(format!(
        ".{}.partial-{}",
        flat(nvr),
        uuid::Uuid::new_v4().simple()
    ))
}

/// The OSBS build a finished bundle was written for (`build.extra.osbs_build_id` of its
/// metadata), or `None` when there is no bundle at `dir`.
pub async fn bundle_owner(dir: &Path) -> std::io::Result<Option<String>> {
    match tokio::fs::read(dir.join("metadata.json")).await {
        Ok(bytes) => {
            let metadata: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {error}", dir.join("metadata.json").display()),
                )
            })?;
            Ok(Some(
                metadata["build"]["extra"]["osbs_build_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_with_a_slash_is_one_directory() {
        let dir = Path::new("/bundles");
        assert_eq!(
            bundle_path(dir, "osbs/hello-1.0-1"),
            Path::new("/bundles/osbs-hello-1.0-1")
        );
        let partial = partial_path(dir, "osbs/hello-1.0-1");
        assert_eq!(partial.parent(), Some(dir));
        assert!(
            partial
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".osbs-hello-1.0-1.partial-")
        );
    }
}
