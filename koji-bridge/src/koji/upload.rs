//! Uploads into the hub's work area. Fast upload (koji ≥ 1.15): the file in raw chunks,
//! each POSTed at its offset and verified by its adler32; a chunk that fails is sent again at
//! the same offset (the hub truncates there), and an upload found half done on the hub (a
//! bridge restart) resumes after the part whose adler32 matches. Legacy `uploadFile` for older
//! hubs: base64 chunks with their md5, then `offset=-1` with the whole file's size and md5.
//!
//! Reading and hashing the next chunk overlaps with sending the current one.

use super::{KojiClient, KojiError, retry_policy};
use backon::Retryable;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use serde_json::{Value as Json, json};
use sha2::Digest;
use std::path::PathBuf;

/// The bytes of a file to upload, chunk by chunk.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Where an upload's bytes come from. Opened again to restart from the first byte, so the
/// same bytes must come out each time.
pub trait UploadSource: Send + Sync {
    fn open(&self) -> BoxFuture<'_, std::io::Result<ByteStream>>;
}

/// A local file.
#[derive(Debug, Clone)]
pub struct FileSource(pub PathBuf);

impl UploadSource for FileSource {
    fn open(&self) -> BoxFuture<'_, std::io::Result<ByteStream>> {
        Box::pin(async move {
            let file = tokio::fs::File::open(&self.0).await?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20);
            Ok(stream.boxed())
        })
    }
}

/// Bytes in memory (`metadata.json`).
#[derive(Debug, Clone)]
pub struct BytesSource(pub Bytes);

impl UploadSource for BytesSource {
    fn open(&self) -> BoxFuture<'_, std::io::Result<ByteStream>> {
        let bytes = self.0.clone();
        Box::pin(async move { Ok(futures::stream::iter([Ok(bytes)]).boxed()) })
    }
}

/// What was uploaded: the metadata needs its size and checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// Which upload API a hub offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadApi {
    Fast,
    Legacy,
}

/// Splits a byte stream into chunks of a given size.
struct Chunker {
    stream: ByteStream,
    pending: Bytes,
    done: bool,
}

impl Chunker {
    fn new(stream: ByteStream) -> Chunker {
        Chunker {
            stream,
            pending: Bytes::new(),
            done: false,
        }
    }

    /// Up to `size` bytes; shorter only at the end of the stream.
    async fn next(&mut self, size: usize) -> std::io::Result<Bytes> {
        let mut chunk = BytesMut::with_capacity(size.min(64 << 20));
        loop {
            if !self.pending.is_empty() {
                let take = (size - chunk.len()).min(self.pending.len());
                chunk.extend_from_slice(&self.pending.split_to(take));
            }
            if chunk.len() == size || self.done {
                return Ok(chunk.freeze());
            }
            match self.stream.next().await {
                Some(Ok(bytes)) => self.pending = bytes,
                Some(Err(error)) => return Err(error),
                None => self.done = true,
            }
        }
    }
}

/// Running digests of a whole file.
#[derive(Clone)]
struct FileDigests {
    size: u64,
    sha256: sha2::Sha256,
    md5: Option<md5::Md5>,
    adler: adler32::RollingAdler32,
}

impl FileDigests {
    fn new(with_md5: bool) -> FileDigests {
        FileDigests {
            size: 0,
            sha256: sha2::Sha256::new(),
            md5: with_md5.then(md5::Md5::new),
            adler: adler32::RollingAdler32::new(),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.sha256.update(bytes);
        if let Some(md5) = &mut self.md5 {
            md5.update(bytes);
        }
        self.adler.update_buffer(bytes);
    }

    fn adler_hex(&self) -> String {
        format!("{:08x}", self.adler.hash())
    }
}

/// Koji's adler32 hex of `bytes` (`%08x`).
pub fn adler32_hex(bytes: &[u8]) -> String {
    format!("{:08x}", adler32::RollingAdler32::from_buffer(bytes).hash())
}

fn upload_error(dir: &str, name: &str, reason: impl Into<String>) -> KojiError {
    KojiError::Upload {
        path: format!("{dir}/{name}"),
        reason: reason.into(),
    }
}

fn read_error(dir: &str, name: &str, error: std::io::Error) -> KojiError {
    // Callers check that their sources exist before uploading (a missing log is refused up
    // front), so a read failing here is an I/O or registry hiccup: worth another attempt.
    upload_error(dir, name, format!("cannot read what to upload: {error}"))
}

impl KojiClient {
    /// The upload API to use, as `[koji] upload_mode` says (`auto` asks the hub whether it
    /// has `checkUpload`).
    pub async fn upload_api(&self) -> Result<UploadApi, KojiError> {
        match self.config.upload_mode {
            crate::config::UploadMode::Fast => Ok(UploadApi::Fast),
            crate::config::UploadMode::Legacy => Ok(UploadApi::Legacy),
            crate::config::UploadMode::Auto => {
                match self.check_upload("osbs-probe", "probe", None).await {
                    Ok(_) => Ok(UploadApi::Fast),
                    Err(KojiError::Fault { text, .. }) if text.contains("Invalid method") => {
                        Ok(UploadApi::Legacy)
                    }
                    Err(other) => Err(other),
                }
            }
        }
    }

    /// Uploads `source` as `work/<dir>/<name>` with `api`.
    pub async fn upload(
        &self,
        api: UploadApi,
        dir: &str,
        name: &str,
        source: &dyn UploadSource,
    ) -> Result<Uploaded, KojiError> {
        let digests = match api {
            UploadApi::Fast => self.fast_upload(dir, name, source).await?,
            UploadApi::Legacy => self.legacy_upload(dir, name, source).await?,
        };
        Ok(Uploaded {
            name: name.to_owned(),
            size: digests.size,
            sha256: hex::encode(digests.sha256.finalize()),
        })
    }

    async fn fast_upload(
        &self,
        dir: &str,
        name: &str,
        source: &dyn UploadSource,
    ) -> Result<FileDigests, KojiError> {
        let chunk_size = self.config.chunk_bytes();
        let open = || async {
            source
                .open()
                .await
                .map(Chunker::new)
                .map_err(|error| read_error(dir, name, error))
        };
        let mut chunker = open().await?;
        let mut digests = FileDigests::new(false);
        let mut offset = 0u64;
        let mut problems = false;

        // Resume what a previous attempt left on the hub, if its bytes are ours.
        if let Some(found) = self.check_upload(dir, name, Some("adler32")).await?
            && found.size > 0
        {
            let mut prefix = FileDigests::new(false);
            let mut left = found.size;
            while left > 0 {
                let piece = chunker
                    .next(left.min(chunk_size as u64) as usize)
                    .await
                    .map_err(|error| read_error(dir, name, error))?;
                if piece.is_empty() {
                    break;
                }
                left -= piece.len() as u64;
                prefix.update(&piece);
            }
            if left == 0 && found.hexdigest.as_deref() == Some(prefix.adler_hex().as_str()) {
                tracing::info!(
                    dir,
                    name,
                    offset = found.size,
                    "resuming an upload the hub already holds part of"
                );
                digests = prefix;
                offset = found.size;
                problems = true;
            } else {
                chunker = open().await?;
            }
        }

        // Read ahead while the current chunk is on its way.
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(2);
        let reader = tokio::spawn(async move {
            let mut chunker = chunker;
            let mut digests = digests;
            loop {
                let chunk = chunker.next(chunk_size).await;
                let last = match &chunk {
                    Ok(bytes) => {
                        digests.update(bytes);
                        bytes.len() < chunk_size
                    }
                    Err(_) => true,
                };
                if sender.send(chunk).await.is_err() || last {
                    return digests;
                }
            }
        });
        while let Some(chunk) = receiver.recv().await {
            let chunk = chunk.map_err(|error| read_error(dir, name, error))?;
            // An empty chunk is sent only for an empty file (it creates it on the hub).
            if chunk.is_empty() && offset > 0 {
                break;
            }
            let retried = self.send_chunk(dir, name, offset, chunk.clone()).await?;
            problems |= retried;
            offset += chunk.len() as u64;
        }
        let digests = reader
            .await
            .map_err(|error| upload_error(dir, name, format!("reader task failed: {error}")))?;

        // koji's fastUpload: the hub must hold the whole file; its digest is compared when
        // anything had to be sent again (otherwise every chunk was already verified).
        let verify = problems.then_some("adler32");
        let check = self
            .check_upload(dir, name, verify)
            .await?
            .ok_or_else(|| upload_error(dir, name, "the hub has no such file after the upload"))?;
        if check.size != digests.size {
            return Err(upload_error(
                dir,
                name,
                format!(
                    "the hub holds {} bytes, {} were sent",
                    check.size, digests.size
                ),
            ));
        }
        if problems && check.hexdigest.as_deref() != Some(digests.adler_hex().as_str()) {
            return Err(upload_error(
                dir,
                name,
                format!(
                    "the hub's copy has adler32 {:?}, the file {}",
                    check.hexdigest,
                    digests.adler_hex()
                ),
            ));
        }
        Ok(digests)
    }

    /// POSTs one chunk at `offset`, again at the same offset until it is verified or the
    /// retry budget is spent. Returns whether it had to be sent more than once.
    async fn send_chunk(
        &self,
        dir: &str,
        name: &str,
        offset: u64,
        chunk: Bytes,
    ) -> Result<bool, KojiError> {
        let expected = adler32_hex(&chunk);
        let deadline = tokio::time::Instant::now() + self.config.retry_budget();
        let mut attempts = 0u32;
        let result = (|| {
            attempts += 1;
            let chunk = chunk.clone();
            let expected = expected.clone();
            async move {
                let answer = self.raw_upload(dir, name, offset, offset == 0, chunk.clone()).await?;
                let size = answer.get("size").and_then(Json::as_u64);
                let digest = answer.get("hexdigest").and_then(Json::as_str);
                if size != Some(chunk.len() as u64) || digest != Some(expected.as_str()) {
                    return Err(upload_error(
                        dir,
                        name,
                        format!(
                            "chunk at offset {offset}: the hub got {size:?} bytes with adler32 {digest:?}, {} were sent with {expected}",
                            chunk.len()
                        ),
                    ));
                }
                Ok(())
            }
        })
        .retry(retry_policy())
        .when(|error| error.is_transient() && tokio::time::Instant::now() < deadline)
        .notify(|error, wait| {
            tracing::warn!(dir, name, offset, error = %error, ?wait, "upload chunk failed; sending it again");
        })
        .await;
        result.map(|()| attempts > 1)
    }

    async fn legacy_upload(
        &self,
        dir: &str,
        name: &str,
        source: &dyn UploadSource,
    ) -> Result<FileDigests, KojiError> {
        use base64::Engine;
        // Base64 inside XML: koji's own client sends 1 MiB at a time.
        let chunk_size = self.config.chunk_bytes().min(1 << 20);
        let mut chunker = Chunker::new(
            source
                .open()
                .await
                .map_err(|error| read_error(dir, name, error))?,
        );
        let mut digests = FileDigests::new(true);
        let mut offset = 0u64;
        loop {
            let chunk = chunker
                .next(chunk_size)
                .await
                .map_err(|error| read_error(dir, name, error))?;
            if chunk.is_empty() {
                break;
            }
            digests.update(&chunk);
            let md5 = hex::encode(md5::Md5::digest(&chunk));
            let data = base64::engine::general_purpose::STANDARD.encode(&chunk);
            let args = [
                json!(dir),
                json!(name),
                json!(chunk.len()),
                json!(md5),
                json!(offset),
                json!(data),
            ];
            self.legacy_call(dir, name, offset as i64, &args).await?;
            offset += chunk.len() as u64;
        }
        let md5 = digests
            .md5
            .clone()
            .map(|md5| hex::encode(md5.finalize()))
            .unwrap_or_default();
        let close = [
            json!(dir),
            json!(name),
            json!(digests.size),
            json!(md5),
            json!(-1),
            json!(""),
        ];
        self.legacy_call(dir, name, -1, &close).await?;
        Ok(digests)
    }

    /// One `uploadFile` call; `False` (a size or md5 mismatch on the hub) is retried.
    async fn legacy_call(
        &self,
        dir: &str,
        name: &str,
        offset: i64,
        args: &[Json],
    ) -> Result<(), KojiError> {
        let deadline = tokio::time::Instant::now() + self.config.retry_budget();
        (|| async {
            match self.call("uploadFile", args, &[]).await? {
                Json::Bool(true) => Ok(()),
                other => Err(upload_error(
                    dir,
                    name,
                    format!(
                        "uploadFile at offset {offset} answered {other}: the hub found another size or md5"
                    ),
                )),
            }
        })
        .retry(retry_policy().with_max_times(5))
        .when(|error| error.is_transient() && tokio::time::Instant::now() < deadline)
        .notify(|error, wait| {
            tracing::warn!(dir, name, error = %error, ?wait, "uploadFile failed; sending it again");
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn chunks_cut_across_stream_pieces() {
        let pieces: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"abc")),
            Ok(Bytes::from_static(b"defgh")),
            Ok(Bytes::from_static(b"ij")),
        ];
        let mut chunker = Chunker::new(futures::stream::iter(pieces).boxed());
        let mut got = Vec::new();
        loop {
            let chunk = chunker.next(4).await.unwrap();
            got.push(String::from_utf8(chunk.to_vec()).unwrap());
            if chunk.len() < 4 {
                break;
            }
        }
        assert_eq!(got, vec!["abcd", "efgh", "ij"]);
        assert_eq!(adler32_hex(b"abc"), "024d0127");
    }
}
