//! Following a build's log: the live Redis stream from its first line to its end entry, or —
//! once the build is over and the stream was trimmed — the complete log file the worker
//! keeps under `[storage] artifacts_dir`.

use crate::error::{CliError, Result};
use crate::progress::Progress;
use osbs_common::Store;
use osbs_common::store::{BuildRecord, LogEntry, field};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

/// Longest one read waits for new lines (then the record is checked).
const READ_BLOCK: Duration = Duration::from_secs(1);
/// How often the record is read while no end entry has come.
const RECORD_EVERY: Duration = Duration::from_secs(2);
/// A build can end without an end entry (superseded, canceled while queued, a worker that
/// died before its last write): its record says so, and the log gets this long to catch up.
const NO_END_GRACE: Duration = Duration::from_secs(3);
/// After an end entry, how long the record may take to show the final state.
const END_SETTLE: Duration = Duration::from_secs(5);

/// Where a finished build's log is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSource {
    /// The live stream holds every line.
    Stream,
    /// The stream lost its first lines (capped); the complete file is there.
    File(PathBuf),
    /// The stream lost its first lines and no file is readable: what is left of the stream.
    TrimmedStream { lost: u64 },
}

/// Picks where to read a finished build's log from.
pub fn finished_log_source(lost_lines: u64, file: Option<PathBuf>) -> LogSource {
    match (lost_lines, file) {
        (0, _) => LogSource::Stream,
        (_, Some(path)) => LogSource::File(path),
        (lost, None) => LogSource::TrimmedStream { lost },
    }
}

/// The complete log file of a build: the record's `log_path`, else the worker's layout
/// `<artifacts_dir>/<id>/build.log`.
pub fn log_file_path(record: &BuildRecord, artifacts_dir: &Path) -> PathBuf {
    let recorded = record.field(field::LOG_PATH);
    if recorded.is_empty() {
        artifacts_dir.join(&record.id).join("build.log")
    } else {
        PathBuf::from(recorded)
    }
}

/// Lines dropped from the start of build `id`'s stream by its cap (0 on Redis < 7).
pub async fn lost_lines(store: &Store, id: &str) -> Result<u64> {
    Ok(store.log_lines_dropped(id).await?)
}

/// What following ended with.
#[derive(Debug)]
pub struct Followed {
    pub record: BuildRecord,
    /// Lines printed.
    pub lines: u64,
}

/// Prints build `id`'s log through `sink` from its first line and returns once the build is
/// over (its record final and its stream ended), or fails after `timeout`.
pub async fn follow(
    store: &Store,
    id: &str,
    timeout: Duration,
    progress: &Progress,
    sink: &mut dyn FnMut(&str),
) -> Result<Followed> {
    let deadline = Instant::now() + timeout;
    let mut after = "0".to_owned();
    let mut lines = 0u64;
    let mut record = store.require(id).await?;
    let mut record_read_at = Instant::now();
    let mut final_since: Option<Instant> = None;
    progress.waiting(&record);
    loop {
        if Instant::now() >= deadline {
            return Err(CliError::Timeout(format!(
                "build {id} is still {} after {}s: it goes on; follow it with `osbs watch-logs {id}` (or raise [cli] build_timeout_secs)",
                record.state,
                timeout.as_secs()
            )));
        }
        let entries = store.read_log(id, &after, 500, Some(READ_BLOCK)).await?;
        for entry in &entries {
            match entry {
                LogEntry::Line { id: entry_id, text } => {
                    progress.suspend(|| sink(text));
                    lines += 1;
                    after.clone_from(entry_id);
                }
                LogEntry::End { id: entry_id, .. } => after.clone_from(entry_id),
            }
        }
        if matches!(entries.last(), Some(LogEntry::End { .. })) {
            // A replayed or taken-over build goes on after an end entry: only the last one
            // of a final record ends the log.
            let settle_until = Instant::now() + END_SETTLE;
            loop {
                record = store.require(id).await?;
                if record.state.is_final() || Instant::now() >= settle_until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let more = store.read_log(id, &after, 1, None).await?;
            if record.state.is_final() && more.is_empty() {
                progress.finish();
                return Ok(Followed { record, lines });
            }
            continue;
        }
        if !entries.is_empty() {
            progress.running(&record, lines);
        }
        if record_read_at.elapsed() >= RECORD_EVERY || entries.is_empty() {
            record = store.require(id).await?;
            record_read_at = Instant::now();
            if entries.is_empty() {
                progress.waiting(&record);
            }
            if record.state.is_final() {
                let since = *final_since.get_or_insert_with(Instant::now);
                if entries.is_empty() && since.elapsed() >= NO_END_GRACE {
                    progress.finish();
                    return Ok(Followed { record, lines });
                }
            } else {
                final_since = None;
            }
        }
    }
}

/// Prints a finished build's kept log: the stream, or the complete file when the stream was
/// trimmed. Returns the source used.
pub async fn print_finished(
    store: &Store,
    record: &BuildRecord,
    artifacts_dir: &Path,
    sink: &mut dyn FnMut(&str),
) -> Result<LogSource> {
    let lost = lost_lines(store, &record.id).await?;
    let file = Some(log_file_path(record, artifacts_dir)).filter(|path| path.is_file());
    let source = finished_log_source(lost, file);
    match &source {
        LogSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                CliError::Tool(format!(
                    "cannot read the log file {}: {error}; check [storage] artifacts_dir",
                    path.display()
                ))
            })?;
            for line in text.lines() {
                sink(line);
            }
        }
        LogSource::Stream | LogSource::TrimmedStream { .. } => {
            let mut after = "0".to_owned();
            loop {
                let entries = store.read_log(&record.id, &after, 1000, None).await?;
                if entries.is_empty() {
                    break;
                }
                for entry in entries {
                    match entry {
                        LogEntry::Line { id, text } => {
                            sink(&text);
                            after = id;
                        }
                        LogEntry::End { id, .. } => after = id,
                    }
                }
            }
        }
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_streams_fall_back_to_the_file() {
        let file = PathBuf::from("/a/b1/build.log");
        assert_eq!(
            finished_log_source(0, Some(file.clone())),
            LogSource::Stream
        );
        assert_eq!(
            finished_log_source(3, Some(file.clone())),
            LogSource::File(file)
        );
        assert_eq!(
            finished_log_source(3, None),
            LogSource::TrimmedStream { lost: 3 }
        );
    }
}
