//! Uploads into the hub's work area. Fast upload (koji ≥ 1.15): the file in raw chunks,
//! each POSTed at its offset and verified by its adler32; a chunk that fails is sent again at
//! the same offset (the hub truncates there), and an upload found half done on the hub (a
//! bridge restart) resumes after the part whose adler32 matches. Legacy `uploadFile` for older
//! hubs: base64 chunks with their md5, then `offset=-1` with the whole file's size and md5.
//!
//! Reading and hashing the next chunk overlaps with sending the current one.

use crate::client::{KojiClient, KojiError, retry_policy};
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

    /// The bytes' sha256, when whoever made them already computed it (the worker hashes the
    /// logs it writes); `None`: the upload computes it. A wrong one is caught by the hub,
    /// which checks every output's checksum at `CGImport`.
    fn sha256(&self) -> Option<String> {
        None
    }
}

/// A source whose sha256 is known.
#[derive(Debug, Clone)]
pub struct KnownSha256<S>(pub S, pub String);

impl<S: UploadSource> UploadSource for KnownSha256<S> {
    fn open(&self) -> BoxFuture<'_, std::io::Result<ByteStream>> {
        self.0.open()
    }
    fn sha256(&self) -> Option<String> {
        Some(self.1.clone())
    }
}

/// A local file.
#[derive(Debug, Clone)]
pub struct FileSource(pub PathBuf);

/// Bytes read from a file at a time: a whole default upload chunk, so that chunks are cut
/// from the pieces without copying.
const FILE_PIECE: usize = 8 << 20;

impl UploadSource for FileSource {
    fn open(&self) -> BoxFuture<'_, std::io::Result<ByteStream>> {
        Box::pin(async move {
            let file = std::fs::File::open(&self.0)?;
            let stream = futures::stream::unfold(Some(file), |file| async move {
                let mut file = file?;
                let read = tokio::task::spawn_blocking(move || {
                    use std::io::Read;
                    let mut piece = BytesMut::zeroed(FILE_PIECE);
                    let mut filled = 0;
                    while filled < piece.len() {
                        match file.read(&mut piece[filled..]) {
                            Ok(0) => break,
                            Ok(read) => filled += read,
                            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(error) => return Err(error),
                        }
                    }
                    piece.truncate(filled);
                    Ok((piece.freeze(), file))
                })
                .await
                .unwrap_or_else(|error| Err(std::io::Error::other(error)));
                match read {
                    Ok((piece, _)) if piece.is_empty() => None,
                    Ok((piece, file)) => Some((Ok(piece), Some(file))),
                    Err(error) => Some((Err(error), None)),
                }
            });
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

/// Splits a byte stream into chunks of a given size; a chunk inside one piece of the
/// stream is cut from it without copying.
struct Chunker {
    stream: ByteStream,
    pending: Bytes,
    buffer: BytesMut,
    done: bool,
}

impl Chunker {
    fn new(stream: ByteStream) -> Chunker {
        Chunker {
            stream,
            pending: Bytes::new(),
            buffer: BytesMut::new(),
            done: false,
        }
    }

    /// Up to `size` bytes; shorter only at the end of the stream.
    async fn next(&mut self, size: usize) -> std::io::Result<Bytes> {
        loop {
            if self.buffer.is_empty() && self.pending.len() >= size {
                return Ok(self.pending.split_to(size));
            }
            if !self.pending.is_empty() {
                self.buffer.reserve(size - self.buffer.len());
                let take = (size - self.buffer.len()).min(self.pending.len());
                self.buffer.extend_from_slice(&self.pending.split_to(take));
            }
            if self.buffer.len() == size || (self.done && self.pending.is_empty()) {
                return Ok(self.buffer.split().freeze());
            }
            if self.pending.is_empty() {
                match self.stream.next().await {
                    Some(Ok(bytes)) => self.pending = bytes,
                    Some(Err(error)) => return Err(error),
                    None => self.done = true,
                }
            }
        }
    }
}

/// The sha256 of an upload: known beforehand, or computed on a thread of its own while the
/// upload goes on.
enum Sha256Worker {
    Known(String),
    Computing {
        sender: tokio::sync::mpsc::Sender<Bytes>,
        task: tokio::task::JoinHandle<sha2::Sha256>,
    },
}

impl Sha256Worker {
    fn start(known: Option<String>) -> Sha256Worker {
        if let Some(known) = known {
            return Sha256Worker::Known(known);
        }
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let task = tokio::task::spawn_blocking(move || {
            let mut hasher = sha2::Sha256::new();
            while let Some(bytes) = receiver.blocking_recv() {
                hasher.update(&bytes);
            }
            hasher
        });
        Sha256Worker::Computing { sender, task }
    }

    async fn feed(&self, bytes: Bytes) {
        if let Sha256Worker::Computing { sender, .. } = self {
            // The thread only stops when its sender is dropped: a send cannot fail before.
            let _ = sender.send(bytes).await;
        }
    }

    async fn finish(self) -> String {
        match self {
            Sha256Worker::Known(known) => known,
            Sha256Worker::Computing { sender, task } => {
                drop(sender);
                let hasher = task.await.expect("the sha256 thread does not panic");
                hex::encode(hasher.finalize())
            }
        }
    }
}

/// zlib's `adler32_combine`: the adler32 of `a ++ b` from those of `a` and `b` and the
/// length of `b`, so the whole file's adler32 needs no second pass over its bytes.
pub fn adler32_combine(adler_a: u32, adler_b: u32, length_b: u64) -> u32 {
    const BASE: u64 = 65521;
    let remainder = length_b % BASE;
    let mut sum1 = u64::from(adler_a & 0xffff);
    let mut sum2 = (remainder * sum1) % BASE;
    sum1 += u64::from(adler_b & 0xffff) + BASE - 1;
    sum2 += u64::from(adler_a >> 16) + u64::from(adler_b >> 16) + BASE - remainder;
    if sum1 >= BASE {
        sum1 -= BASE;
    }
    if sum1 >= BASE {
        sum1 -= BASE;
    }
    if sum2 >= BASE << 1 {
        sum2 -= BASE << 1;
    }
    if sum2 >= BASE {
        sum2 -= BASE;
    }
    (sum1 | (sum2 << 16)) as u32
}

/// Running digests of a whole file (legacy uploads: its md5 for `offset=-1`).
#[derive(Clone)]
struct FileDigests {
    size: u64,
    sha256: sha2::Sha256,
    md5: md5::Md5,
}

impl FileDigests {
    fn new() -> FileDigests {
        FileDigests {
            size: 0,
            sha256: sha2::Sha256::new(),
            md5: md5::Md5::new(),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        self.size += bytes.len() as u64;
        self.sha256.update(bytes);
        self.md5.update(bytes);
    }
}

/// Koji's adler32 hex of `bytes` (`%08x`).
pub fn adler32_hex(bytes: &[u8]) -> String {
    format!("{:08x}", simd_adler32::adler32(&bytes))
}

fn adler_hex(adler: u32) -> String {
    format!("{adler:08x}")
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
        match self.config().upload_mode {
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
        let (size, sha256) = match api {
            UploadApi::Fast => self.fast_upload(dir, name, source).await?,
            UploadApi::Legacy => {
                let digests = self.legacy_upload(dir, name, source).await?;
                let sha256 = source
                    .sha256()
                    .unwrap_or_else(|| hex::encode(digests.sha256.finalize()));
                (digests.size, sha256)
            }
        };
        Ok(Uploaded {
            name: name.to_owned(),
            size,
            sha256,
        })
    }

    /// Returns the file's size and sha256.
    async fn fast_upload(
        &self,
        dir: &str,
        name: &str,
        source: &dyn UploadSource,
    ) -> Result<(u64, String), KojiError> {
        let chunk_size = self.config().chunk_bytes();
        let open = || async {
            source
                .open()
                .await
                .map(Chunker::new)
                .map_err(|error| read_error(dir, name, error))
        };
        let mut chunker = open().await?;
        let mut sha256 = Sha256Worker::start(source.sha256());
        let mut adler = 1u32;
        let mut offset = 0u64;
        let mut problems = false;

        // Resume what a previous attempt left on the hub, if its bytes are ours.
        if let Some(found) = self.check_upload(dir, name, Some("adler32")).await?
            && found.size > 0
        {
            let mut prefix = simd_adler32::Adler32::new();
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
                prefix.write(&piece);
                sha256.feed(piece).await;
            }
            if left == 0 && found.hexdigest.as_deref() == Some(adler_hex(prefix.finish()).as_str())
            {
                tracing::info!(
                    dir,
                    name,
                    offset = found.size,
                    "resuming an upload the hub already holds part of"
                );
                adler = prefix.finish();
                offset = found.size;
                problems = true;
            } else {
                chunker = open().await?;
                sha256 = Sha256Worker::start(source.sha256());
            }
        }

        // Read and checksum ahead while the current chunk is on its way.
        type Chunk = std::io::Result<(Bytes, u32)>;
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Chunk>(2);
        let reader = tokio::spawn(async move {
            let mut chunker = chunker;
            loop {
                let chunk = chunker.next(chunk_size).await;
                let last = chunk
                    .as_ref()
                    .map_or(true, |bytes| bytes.len() < chunk_size);
                let chunk = match chunk {
                    Ok(bytes) => {
                        sha256.feed(bytes.clone()).await;
                        // Checksums run on blocking threads: the async workers stay free for
                        // the requests (and, in the benchmark, the hub) on few cores.
                        let piece = bytes.clone();
                        let adler = tokio::task::spawn_blocking(move || {
                            simd_adler32::adler32(&piece.as_ref())
                        })
                        .await
                        .map_err(std::io::Error::other);
                        adler.map(|adler| (bytes, adler))
                    }
                    Err(error) => Err(error),
                };
                if sender.send(chunk).await.is_err() || last {
                    return sha256;
                }
            }
        });
        while let Some(chunk) = receiver.recv().await {
            let (chunk, chunk_adler) = chunk.map_err(|error| read_error(dir, name, error))?;
            // An empty chunk is sent only for an empty file (it creates it on the hub).
            if chunk.is_empty() && offset > 0 {
                break;
            }
            let length = chunk.len() as u64;
            problems |= self
                .send_chunk(dir, name, offset, chunk, adler_hex(chunk_adler))
                .await?;
            adler = adler32_combine(adler, chunk_adler, length);
            offset += length;
        }
        let sha256 = reader
            .await
            .map_err(|error| upload_error(dir, name, format!("reader task failed: {error}")))?
            .finish()
            .await;

        // koji's fastUpload: the hub must hold the whole file; its digest is compared when
        // anything had to be sent again (otherwise every chunk was already verified).
        let verify = problems.then_some("adler32");
        let check = self
            .check_upload(dir, name, verify)
            .await?
            .ok_or_else(|| upload_error(dir, name, "the hub has no such file after the upload"))?;
        if check.size != offset {
            return Err(upload_error(
                dir,
                name,
                format!("the hub holds {} bytes, {offset} were sent", check.size),
            ));
        }
        if problems && check.hexdigest.as_deref() != Some(adler_hex(adler).as_str()) {
            return Err(upload_error(
                dir,
                name,
                format!(
                    "the hub's copy has adler32 {:?}, the file {}",
                    check.hexdigest,
                    adler_hex(adler)
                ),
            ));
        }
        Ok((offset, sha256))
    }

    /// POSTs one chunk at `offset`, again at the same offset until it is verified or the
    /// retry budget is spent. Returns whether it had to be sent more than once.
    async fn send_chunk(
        &self,
        dir: &str,
        name: &str,
        offset: u64,
        chunk: Bytes,
        expected: String,
    ) -> Result<bool, KojiError> {
        let deadline = tokio::time::Instant::now() + self.config().retry_budget();
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
        let chunk_size = self.config().chunk_bytes().min(1 << 20);
        let mut chunker = Chunker::new(
            source
                .open()
                .await
                .map_err(|error| read_error(dir, name, error))?,
        );
        let mut digests = FileDigests::new();
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
        let md5 = hex::encode(digests.md5.clone().finalize());
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
        let deadline = tokio::time::Instant::now() + self.config().retry_budget();
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

    #[tokio::test]
    async fn chunks_of_a_large_piece_are_not_copied() {
        let piece = Bytes::from(vec![7u8; 10]);
        let address = piece.as_ptr();
        let mut chunker = Chunker::new(futures::stream::iter([Ok(piece)]).boxed());
        let first = chunker.next(4).await.unwrap();
        let second = chunker.next(4).await.unwrap();
        assert_eq!(first.as_ptr(), address);
        assert_eq!(second.as_ptr(), address.wrapping_add(4));
        assert_eq!(chunker.next(4).await.unwrap().len(), 2);
        assert!(chunker.next(4).await.unwrap().is_empty());
    }

    #[test]
    fn adler32_combines_like_zlib() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
        for cut in [0, 1, 65_520, 65_521, 100_000, 200_000] {
            let (a, b) = data.split_at(cut);
            let combined = adler32_combine(
                simd_adler32::adler32(&a),
                simd_adler32::adler32(&b),
                b.len() as u64,
            );
            assert_eq!(
                combined,
                simd_adler32::adler32(&data.as_slice()),
                "cut at {cut}"
            );
        }
    }
}
