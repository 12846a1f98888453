//! A build's log, written twice: complete, to `<artifacts_dir>/<build_id>/build.log` (the file
//! Koji keeps, hashed as it is written), and live, to the build's capped Redis stream in
//! batches (what `osbs watch-logs` follows while the build runs). An arch job of a
//! multi-arch build writes its own: `<artifacts_dir>/<build_id>/<arch>/build.log` (its part's
//! `build.log`, which the bridge names `<arch>.log` in Koji) and the stream `<build_id>:<arch>`.

use osbs_common::Store;
use osbs_proto::BuildState;
use osbs_proto::v1::LogFile;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// Lines sent to Redis in one pipeline at most.
const BATCH_LINES: usize = 256;
/// Longest a line waits before it is sent to Redis.
const BATCH_DELAY: Duration = Duration::from_millis(200);
/// Longest line kept (a progress bar without newlines must not become one huge entry).
const MAX_LINE: usize = 16 * 1024;

enum Live {
    Line(String),
    /// The build ended in this state: write the end marker and stop.
    End(BuildState),
    /// This attempt stops but the build goes on elsewhere: flush and stop, no end marker.
    Stop,
}

struct FileSink {
    writer: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    size: u64,
    /// Text after the last newline of a chunked stream, waiting for its end.
    partial: String,
    failed: bool,
}

/// The log of one build attempt. Cheap to share by reference; every method is sync and
/// never fails the build: a log that cannot be written is reported once in the service log.
pub struct BuildLog {
    build_id: String,
    path: PathBuf,
    file: Mutex<FileSink>,
    live: mpsc::UnboundedSender<Live>,
    live_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for BuildLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildLog")
            .field("build_id", &self.build_id)
            .field("path", &self.path)
            .finish()
    }
}

impl BuildLog {
    /// Creates (truncates) `dir/build.log` and starts the live writer.
    pub fn create(dir: &Path, build_id: &str, store: Store) -> std::io::Result<BuildLog> {
        BuildLog::open(dir, build_id, store, false)
    }

    /// Like [`BuildLog::create`], but keeps what earlier attempts wrote (`resume`): a build
    /// retried after a transient outage keeps one log that says each retry, hashed whole.
    pub fn open(
        dir: &Path,
        build_id: &str,
        store: Store,
        resume: bool,
    ) -> std::io::Result<BuildLog> {
        BuildLog::open_for(dir, build_id, "", store, resume)
    }

    /// Like [`BuildLog::open`], for the build (`arch` empty) or one of its arch jobs (whose
    /// `dir` is its own), live on the stream `<build_id>:<arch>`.
    pub fn open_for(
        dir: &Path,
        build_id: &str,
        arch: &str,
        store: Store,
        resume: bool,
    ) -> std::io::Result<BuildLog> {
        std::fs::create_dir_all(dir).map_err(|error| {
            std::io::Error::new(
                error.kind(),
                format!(
                    "cannot create the artifacts directory {}: {error}; check `[storage] artifacts_dir`",
                    dir.display()
                ),
            )
        })?;
        let path = dir.join("build.log");
        let mut hasher = Sha256::new();
        let mut size = 0;
        let file = if resume && path.exists() {
            let mut earlier = std::fs::File::open(&path)?;
            size = std::io::copy(&mut earlier, &mut hasher)?;
            std::fs::OpenOptions::new().append(true).open(&path)?
        } else {
            std::fs::File::create(&path)?
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let stream = osbs_common::store::log::stream(build_id, arch);
        let task = tokio::spawn(live_writer(store, stream, receiver));
        Ok(BuildLog {
            build_id: build_id.to_owned(),
            path,
            file: Mutex::new(FileSink {
                writer: std::io::BufWriter::new(file),
                hasher,
                size,
                partial: String::new(),
                failed: false,
            }),
            live: sender,
            live_task: Mutex::new(Some(task)),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A line from the worker itself (prefixed `osbs: `).
    pub fn note(&self, text: &str) {
        self.line(&format!("osbs: {text}"));
    }

    /// One or more complete lines.
    pub fn line(&self, text: &str) {
        let mut sink = self.file.lock().expect("build log lock");
        for line in text.split('\n') {
            self.emit(&mut sink, line);
        }
    }

    /// A piece of a stream that may end mid-line (Docker's build output): complete lines go
    /// out now, the rest waits for the next chunk or [`BuildLog::flush_partial`].
    pub fn chunk(&self, text: &str) {
        let mut sink = self.file.lock().expect("build log lock");
        sink.partial.push_str(text);
        while let Some(end) = sink.partial.find('\n') {
            let line: String = sink.partial.drain(..=end).collect();
            self.emit(&mut sink, line.trim_end_matches('\n'));
        }
        if sink.partial.len() > MAX_LINE {
            let line = std::mem::take(&mut sink.partial);
            self.emit(&mut sink, &line);
        }
    }

    /// Writes out a pending partial line.
    pub fn flush_partial(&self) {
        let mut sink = self.file.lock().expect("build log lock");
        if !sink.partial.is_empty() {
            let line = std::mem::take(&mut sink.partial);
            self.emit(&mut sink, &line);
        }
    }

    fn emit(&self, sink: &mut FileSink, line: &str) {
        // Progress output rewrites its line with `\r`: keep what a terminal would show last.
        let line = line
            .rsplit('\r')
            .find(|part| !part.is_empty())
            .unwrap_or("");
        let line = match line.char_indices().nth(MAX_LINE) {
            Some((cut, _)) => &line[..cut],
            None => line,
        };
        let bytes = line.len() as u64 + 1;
        if !sink.failed {
            let written = sink
                .writer
                .write_all(line.as_bytes())
                .and_then(|()| sink.writer.write_all(b"\n"));
            if let Err(error) = written {
                sink.failed = true;
                tracing::error!(build_id = %self.build_id, path = %self.path.display(), error = %error, "cannot write the build log file; the complete log will be missing");
            }
        }
        sink.hasher.update(line.as_bytes());
        sink.hasher.update(b"\n");
        sink.size += bytes;
        let _ = self.live.send(Live::Line(line.to_owned()));
    }

    /// Closes the file and the live stream (`end` = the build's final state; `None` leaves
    /// the stream open for the attempt that continues the build) and describes the file
    /// for Koji.
    pub async fn finish(&self, end: Option<BuildState>) -> std::io::Result<LogFile> {
        self.flush_partial();
        let (size, digest) = {
            let mut sink = self.file.lock().expect("build log lock");
            sink.writer.flush()?;
            sink.writer.get_ref().sync_data()?;
            (sink.size, hex::encode(sink.hasher.clone().finalize()))
        };
        let _ = self.live.send(match end {
            Some(state) => Live::End(state),
            None => Live::Stop,
        });
        let task = self.live_task.lock().expect("live task lock").take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(LogFile {
            name: "build.log".into(),
            path: self.path.display().to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: digest,
        })
    }
}

/// Sends lines to Redis in batches; a Redis error drops that batch of the live view only
/// (the file has every line).
async fn live_writer(store: Store, build_id: String, mut receiver: mpsc::UnboundedReceiver<Live>) {
    let mut batch = Vec::new();
    let mut warned = false;
    loop {
        let first = receiver.recv().await;
        // Some(None): stop without an end marker.
        let mut end: Option<Option<BuildState>> = None;
        match first {
            Some(Live::Line(line)) => batch.push(line),
            Some(Live::End(state)) => end = Some(Some(state)),
            Some(Live::Stop) => end = Some(None),
            None => return,
        }
        if end.is_none() {
            let deadline = tokio::time::Instant::now() + BATCH_DELAY;
            while batch.len() < BATCH_LINES {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(Live::Line(line))) => batch.push(line),
                    Ok(Some(Live::End(state))) => {
                        end = Some(Some(state));
                        break;
                    }
                    Ok(Some(Live::Stop)) => {
                        end = Some(None);
                        break;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
        if !batch.is_empty() {
            if let Err(error) = store.append_log(&build_id, &batch).await
                && !warned
            {
                warned = true;
                tracing::warn!(build_id = %build_id, error = %error, "live log lines lost (the log file has them)");
            }
            batch.clear();
        }
        match end {
            Some(Some(state)) => {
                if let Err(error) = store.end_log(&build_id, state).await {
                    tracing::warn!(build_id = %build_id, error = %error, "cannot close the live log");
                }
                return;
            }
            Some(None) => return,
            None => {}
        }
    }
}

/// Writes `content` as `dir/name` and describes it for Koji.
pub fn write_artifact(dir: &Path, name: &str, content: &[u8]) -> std::io::Result<LogFile> {
    let path = dir.join(name);
    std::fs::write(&path, content)?;
    Ok(LogFile {
        name: name.to_owned(),
        path: path.display().to_string(),
        size: i64::try_from(content.len()).unwrap_or(i64::MAX),
        sha256: hex::encode(Sha256::digest(content)),
    })
}
