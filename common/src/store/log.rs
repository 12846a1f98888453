//! Live build logs: `<prefix>:log:<id>` is a stream of lines capped at `log_max_lines` (oldest
//! dropped); a final entry with field `end` closes it. A multi-arch build (DESIGN.md
//! "Architectures") has one more per arch job, `<prefix>:log:<id>:<arch>`: the worker names
//! it with [`stream`] (the build id alone names the build's log) and passes that name where
//! a build id goes; readers use the `*_arch_log` operations, and [`Store::read_logs`] reads
//! several of a build's logs at once.

use super::{Store, StoreError, redis_error};
use osbs_proto::v1::BuildState;
use redis::{AsyncCommands, Value};
use std::time::Duration;

/// One line of a live log, or its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    Line {
        id: String,
        text: String,
    },
    /// The build ended in this state; nothing follows.
    End {
        id: String,
        state: String,
    },
}

/// One of a build's live logs and where to read it from: its own (`arch: None`) or an arch
/// job's, after stream id `after` (`"0"` = from the start).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCursor {
    pub arch: Option<String>,
    pub after: String,
}

/// The name of the live log of build `id` (`arch` empty) or of its arch job of `arch`:
/// `id` or `id:arch`, what every log function of the store takes.
pub fn stream(id: &str, arch: &str) -> String {
    if arch.is_empty() {
        id.to_owned()
    } else {
        format!("{id}:{arch}")
    }
}

impl Store {
    /// The key of build `id`'s own live log, or of its `arch` job's.
    fn log_key(&self, id: &str, arch: Option<&str>) -> String {
        match arch {
            None => self.key(&["log", id]),
            Some(arch) => self.key(&["log", id, arch]),
        }
    }

    /// Appends lines to build `id`'s live log (capped at `log_max_lines`, oldest dropped); an
    /// arch job's log is named by [`stream`].
    pub async fn append_log(&self, id: &str, lines: &[String]) -> Result<(), StoreError> {
        self.append_to(self.log_key(id, None), lines).await
    }

    async fn append_to(&self, key: String, lines: &[String]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for line in lines {
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.log_max_lines)
                .arg("*")
                .arg("l")
                .arg(line)
                .ignore();
        }
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(redis_error("xadd"))
    }

    /// Closes build `id`'s live log: followers stop after this entry.
    pub async fn end_log(&self, id: &str, state: BuildState) -> Result<(), StoreError> {
        self.end(self.log_key(id, None), state).await
    }

    async fn end(&self, key: String, state: BuildState) -> Result<(), StoreError> {
        redis::cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.log_max_lines)
            .arg("*")
            .arg("end")
            .arg(state.name())
            .query_async::<()>(&mut self.connection())
            .await
            .map_err(redis_error("xadd"))
    }

    /// Log entries of build `id` after stream id `after` (`"0"` = from the start), waiting up
    /// to `block` for new ones when there are none.
    pub async fn read_log(
        &self,
        id: &str,
        after: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.read_arch_log(id, None, after, count, block).await
    }

    /// Like [`Store::read_log`], for build `id`'s `arch` job's log (`None`: the build's own).
    pub async fn read_arch_log(
        &self,
        id: &str,
        arch: Option<&str>,
        after: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let cursor = LogCursor {
            arch: arch.map(str::to_owned),
            after: after.to_owned(),
        };
        let entries = self.read_logs(id, &[cursor], count, block).await?;
        Ok(entries.into_iter().map(|(_, entry)| entry).collect())
    }

    /// Entries of several of build `id`'s logs in one read (up to `count` of each), each
    /// after its own cursor, with the arch of the log it comes from; waits up to `block`
    /// when none has new ones.
    pub async fn read_logs(
        &self,
        id: &str,
        cursors: &[LogCursor],
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<(Option<String>, LogEntry)>, StoreError> {
        if cursors.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = cursors
            .iter()
            .map(|cursor| self.log_key(id, cursor.arch.as_deref()))
            .collect();
        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(count.max(1));
        if let Some(block) = block {
            command
                .arg("BLOCK")
                .arg(block.as_millis().min(5_000) as u64);
        }
        command.arg("STREAMS").arg(&keys);
        for cursor in cursors {
            command.arg(&cursor.after);
        }
        let reply: Value = command
            .query_async(&mut self.connection())
            .await
            .map_err(redis_error("xread"))?;
        Ok(parse_xread(reply)
            .into_iter()
            .filter_map(|(key, entry)| {
                let index = keys.iter().position(|known| *known == key)?;
                Some((cursors[index].arch.clone(), entry))
            })
            .collect())
    }

    /// Lines dropped from the start of build `id`'s stream by its cap: `entries-added` minus
    /// `length` (Redis ≥ 7; older servers report 0). 0 when there is no stream.
    pub async fn log_lines_dropped(&self, id: &str) -> Result<u64, StoreError> {
        self.arch_log_lines_dropped(id, None).await
    }

    /// Like [`Store::log_lines_dropped`], for build `id`'s `arch` job's log.
    pub async fn arch_log_lines_dropped(
        &self,
        id: &str,
        arch: Option<&str>,
    ) -> Result<u64, StoreError> {
        let key = self.log_key(id, arch);
        let mut connection = self.connection();
        let exists: bool = connection
            .exists(&key)
            .await
            .map_err(redis_error("exists"))?;
        if !exists {
            return Ok(0);
        }
        let info: Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .map_err(redis_error("xinfo stream"))?;
        Ok(dropped_from_xinfo(&info))
    }
}

/// XREAD's reply (`[[key, [[id, [field, value, ...]], ...]]]`) → log entries, each with the
/// key of its stream.
fn parse_xread(reply: Value) -> Vec<(String, LogEntry)> {
    let mut entries = Vec::new();
    let streams = match reply {
        Value::Array(streams) => streams,
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(key, value)| Value::Array(vec![key, value]))
            .collect(),
        _ => return entries,
    };
    for stream in streams {
        let Value::Array(mut parts) = stream else {
            continue;
        };
        let Some(Value::Array(items)) = parts.pop() else {
            continue;
        };
        let key = parts.pop().map(|key| value_text(&key)).unwrap_or_default();
        for item in items {
            let Value::Array(mut pair) = item else {
                continue;
            };
            let (Some(Value::Array(fields)), Some(id)) = (pair.pop(), pair.pop()) else {
                continue;
            };
            let id = value_text(&id);
            let mut iter = fields.iter();
            while let (Some(name), Some(value)) = (iter.next(), iter.next()) {
                match value_text(name).as_str() {
                    "l" => entries.push((
                        key.clone(),
                        LogEntry::Line {
                            id: id.clone(),
                            text: value_text(value),
                        },
                    )),
                    "end" => entries.push((
                        key.clone(),
                        LogEntry::End {
                            id: id.clone(),
                            state: value_text(value),
                        },
                    )),
                    _ => {}
                }
            }
        }
    }
    entries
}

/// `entries-added - length` from an XINFO STREAM reply (a flat array or a RESP3 map).
fn dropped_from_xinfo(info: &Value) -> u64 {
    let pairs: Vec<(&Value, &Value)> = match info {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|pair| Some((pair.first()?, pair.get(1)?)))
            .collect(),
        Value::Map(pairs) => pairs.iter().map(|(key, value)| (key, value)).collect(),
        _ => return 0,
    };
    let number = |name: &str| {
        pairs.iter().find_map(|(key, value)| match value {
            Value::Int(number) if value_text(key) == name => u64::try_from(*number).ok(),
            _ => None,
        })
    };
    match (number("entries-added"), number("length")) {
        (Some(added), Some(length)) => added.saturating_sub(length),
        _ => 0,
    }
}

fn value_text(value: &Value) -> String {
    match value {
        Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::SimpleString(text) => text.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        Value::Int(number) => number.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn xread_reply_becomes_entries() {
        let reply = Value::Array(vec![Value::Array(vec![
            bulk("osbs:log:b1"),
            Value::Array(vec![
                Value::Array(vec![
                    bulk("1-0"),
                    Value::Array(vec![bulk("l"), bulk("Step 1/2")]),
                ]),
                Value::Array(vec![
                    bulk("2-0"),
                    Value::Array(vec![bulk("end"), bulk("complete")]),
                ]),
            ]),
        ])]);
        assert_eq!(
            parse_xread(reply),
            vec![
                (
                    "osbs:log:b1".into(),
                    LogEntry::Line {
                        id: "1-0".into(),
                        text: "Step 1/2".into()
                    }
                ),
                (
                    "osbs:log:b1".into(),
                    LogEntry::End {
                        id: "2-0".into(),
                        state: "complete".into()
                    }
                ),
            ]
        );
        assert!(parse_xread(Value::Nil).is_empty());
    }

    #[test]
    fn dropped_lines_from_both_reply_shapes() {
        let flat = Value::Array(vec![
            bulk("length"),
            Value::Int(100),
            bulk("entries-added"),
            Value::Int(130),
        ]);
        assert_eq!(dropped_from_xinfo(&flat), 30);
        let map = Value::Map(vec![
            (bulk("entries-added"), Value::Int(5)),
            (bulk("length"), Value::Int(5)),
        ]);
        assert_eq!(dropped_from_xinfo(&map), 0);
        assert_eq!(
            dropped_from_xinfo(&Value::Array(vec![bulk("length"), Value::Int(2)])),
            0
        );
    }
}
