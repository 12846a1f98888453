//! Following a build's log: the live Redis stream from its first line to its end entry, or —
//! once the build is over and the stream was trimmed — the complete log file the worker
//! keeps under `[storage] artifacts_dir`. A multi-arch build (DESIGN.md "Architectures")
//! has its own log and one per arch job, followed together ([`follow_many`]).

use crate::error::{CliError, Result};
use crate::progress::Progress;
use osbs_common::Store;
use osbs_common::store::{BuildRecord, LogCursor, LogEntry, field};
use std::collections::BTreeSet;
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
            return Err(still_running(id, &record, timeout));
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

/// The record field in which the worker's orchestrator lists a multi-arch build's arches
/// (`field::ARCHES`: comma-separated; empty for a single-arch build).
pub const ARCHES_FIELD: &str = osbs_common::store::field::ARCHES;

/// The arches `record` lists: the worker writes `x86_64,aarch64`; spaces are read too.
pub fn record_arches(record: &BuildRecord) -> Vec<String> {
    record
        .field(ARCHES_FIELD)
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The logs to follow: `only`'s alone (`--arch`), else the build's own and each of
/// `listed`'s. Pure.
pub fn logs_to_follow(only: Option<&str>, listed: &[String]) -> Vec<Option<String>> {
    match only {
        Some(arch) => vec![Some(arch.to_owned())],
        None => std::iter::once(None)
            .chain(listed.iter().cloned().map(Some))
            .collect(),
    }
}

/// Why `--arch only` cannot be followed on a build that lists `listed` (and is over, when
/// `over`): an arch the build does not have. A running build may not list its arches yet.
/// Pure.
pub fn unknown_arch(only: &str, listed: &[String], over: bool) -> Option<String> {
    if listed.iter().any(|arch| arch == only) || (listed.is_empty() && !over) {
        return None;
    }
    Some(if listed.is_empty() {
        format!("the build has no arch logs (it was built for one arch): drop --arch {only}")
    } else {
        format!(
            "the build has no {only} log: its arches are {}",
            listed.join(", ")
        )
    })
}

/// A line as shown among several logs: an arch job's with `<arch>: ` in front, the build's
/// own as it is. Pure.
pub fn prefixed(arch: Option<&str>, line: &str) -> String {
    match arch {
        Some(arch) => format!("{arch}: {line}"),
        None => line.to_owned(),
    }
}

/// A stream entry id (`<ms>-<seq>`) as numbers, for ordering entries of several streams.
fn entry_order(entry: &LogEntry) -> (u64, u64) {
    let (LogEntry::Line { id, .. } | LogEntry::End { id, .. }) = entry;
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// One read of several logs in the order their entries were written (Redis stamps every
/// entry with its time). Pure.
pub fn interleave(mut entries: Vec<(Option<String>, LogEntry)>) -> Vec<(Option<String>, LogEntry)> {
    entries.sort_by_key(|(_, entry)| entry_order(entry));
    entries
}

/// Where following several logs stands: a cursor per log, and the logs that ended.
#[derive(Debug, Default)]
struct Cursors {
    cursors: Vec<LogCursor>,
    ended: BTreeSet<Option<String>>,
}

impl Cursors {
    /// Adds the logs not followed yet (the orchestrator lists the arches once it decided
    /// them, maybe after following began).
    fn follow(&mut self, logs: Vec<Option<String>>) {
        for arch in logs {
            if !self.cursors.iter().any(|cursor| cursor.arch == arch) {
                self.cursors.push(LogCursor {
                    arch,
                    after: "0".to_owned(),
                });
            }
        }
    }

    /// Moves past `entry` of log `arch`; a line after an end (a replayed or taken-over job
    /// goes on) reopens the log.
    fn advance(&mut self, arch: &Option<String>, entry: &LogEntry) {
        let (LogEntry::Line { id, .. } | LogEntry::End { id, .. }) = entry;
        if let Some(cursor) = self.cursors.iter_mut().find(|cursor| &cursor.arch == arch) {
            cursor.after.clone_from(id);
        }
        match entry {
            LogEntry::Line { .. } => self.ended.remove(arch),
            LogEntry::End { .. } => self.ended.insert(arch.clone()),
        };
    }

    fn all_ended(&self) -> bool {
        self.cursors
            .iter()
            .all(|cursor| self.ended.contains(&cursor.arch))
    }
}

/// Follows several logs of build `id` together — `only`'s alone, or the build's own and
/// every arch's the record lists — printing each line through `sink` with the arch of its
/// log, in the order they were written, until the build is over (its record final and
/// every log ended, or quiet for a grace), or fails after `timeout`.
pub async fn follow_many(
    store: &Store,
    id: &str,
    only: Option<&str>,
    timeout: Duration,
    progress: &Progress,
    sink: &mut dyn FnMut(Option<&str>, &str),
) -> Result<Followed> {
    let deadline = Instant::now() + timeout;
    let mut record = store.require(id).await?;
    let mut cursors = Cursors::default();
    cursors.follow(logs_to_follow(only, &record_arches(&record)));
    let mut lines = 0u64;
    let mut record_read_at = Instant::now();
    let mut final_since: Option<Instant> = None;
    progress.waiting(&record);
    loop {
        if Instant::now() >= deadline {
            return Err(still_running(id, &record, timeout));
        }
        let entries = store
            .read_logs(id, &cursors.cursors, 500, Some(READ_BLOCK))
            .await?;
        let quiet = entries.is_empty();
        for (arch, entry) in interleave(entries) {
            if let LogEntry::Line { text, .. } = &entry {
                progress.suspend(|| sink(arch.as_deref(), text));
                lines += 1;
            }
            cursors.advance(&arch, &entry);
        }
        if !quiet {
            progress.running(&record, lines);
        }
        if record_read_at.elapsed() < RECORD_EVERY && !quiet {
            continue;
        }
        record = store.require(id).await?;
        record_read_at = Instant::now();
        if only.is_none() {
            cursors.follow(logs_to_follow(None, &record_arches(&record)));
        }
        if quiet {
            progress.waiting(&record);
        }
        if !record.state.is_final() {
            final_since = None;
            continue;
        }
        let since = *final_since.get_or_insert_with(Instant::now);
        if quiet && (cursors.all_ended() || since.elapsed() >= NO_END_GRACE) {
            progress.finish();
            return Ok(Followed { record, lines });
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

/// The error of a build still running when the command's time is over: it goes on.
fn still_running(id: &str, record: &BuildRecord, timeout: Duration) -> CliError {
    CliError::Timeout(format!(
        "build {id} is still {} after {}s: it goes on; follow it with `osbs watch-logs {id}` (or raise [cli] build_timeout_secs)",
        record.state,
        timeout.as_secs()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_arches_are_read_as_the_worker_writes_them() {
        let table = [
            ("x86_64,aarch64", vec!["x86_64", "aarch64"]),
            ("x86_64 aarch64", vec!["x86_64", "aarch64"]),
            ("x86_64, aarch64", vec!["x86_64", "aarch64"]),
            ("", vec![]),
        ];
        for (field, arches) in table {
            let record = BuildRecord::new(
                "b1",
                osbs_proto::v1::BuildState::Running,
                Default::default(),
                &[(ARCHES_FIELD, field)],
            );
            assert_eq!(record_arches(&record), arches, "{field:?}");
        }
    }

    #[test]
    fn several_logs_are_told_apart_and_interleaved() {
        let listed = vec!["x86_64".to_owned(), "aarch64".to_owned()];
        assert_eq!(
            logs_to_follow(None, &listed),
            vec![None, Some("x86_64".into()), Some("aarch64".into())]
        );
        assert_eq!(
            logs_to_follow(Some("aarch64"), &listed),
            vec![Some("aarch64".into())]
        );
        assert_eq!(logs_to_follow(None, &[]), vec![None]);
        assert_eq!(unknown_arch("aarch64", &listed, true), None);
        assert_eq!(unknown_arch("aarch64", &[], false), None, "not listed yet");
        assert_eq!(
            unknown_arch("s390x", &listed, false).as_deref(),
            Some("the build has no s390x log: its arches are x86_64, aarch64")
        );
        assert!(
            unknown_arch("s390x", &[], true)
                .unwrap()
                .contains("built for one arch")
        );
        assert_eq!(prefixed(Some("s390x"), "Step 1/2"), "s390x: Step 1/2");
        assert_eq!(prefixed(None, "Step 1/2"), "Step 1/2");

        let line = |id: &str, text: &str| LogEntry::Line {
            id: id.into(),
            text: text.into(),
        };
        let read = vec![
            (None, line("1700000000000-0", "a")),
            (None, line("1700000000900-0", "d")),
            (Some("x86_64".into()), line("1700000000100-1", "c")),
            (Some("x86_64".into()), line("1700000000100-0", "b")),
        ];
        let texts: Vec<String> = interleave(read)
            .into_iter()
            .map(|(_, entry)| match entry {
                LogEntry::Line { text, .. } => text,
                LogEntry::End { .. } => String::new(),
            })
            .collect();
        assert_eq!(texts, vec!["a", "b", "c", "d"]);

        let mut cursors = Cursors::default();
        cursors.follow(vec![None, Some("x86_64".into())]);
        cursors.follow(vec![None, Some("x86_64".into())]);
        assert_eq!(cursors.cursors.len(), 2, "each log followed once");
        let end = |id: &str| LogEntry::End {
            id: id.into(),
            state: "complete".into(),
        };
        cursors.advance(&None, &end("5-0"));
        assert!(!cursors.all_ended());
        cursors.advance(&Some("x86_64".into()), &end("6-0"));
        assert!(cursors.all_ended());
        cursors.advance(&Some("x86_64".into()), &line("7-0", "taken over"));
        assert!(!cursors.all_ended(), "a line after the end reopens the log");
        assert_eq!(cursors.cursors[1].after, "7-0");
    }

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
