//! The Redis adapter: build records with their state machine, idempotency keys, the listing
//! index, cancel marks, and live build logs.
//!
//! Keys (prefix `osbs` by default):
//! - `osbs:build:<id>` hash: the record ([`BuildRecord`]); `job` holds the `BuildJob` protobuf;
//! - `osbs:build:<id>:history` list of JSON transitions ([`HistoryEntry`]);
//! - `osbs:builds` sorted set of ids by creation time (listing);
//! - `osbs:idem:<key>` → build id (de-duplication);
//! - `osbs:log:<id>` stream of log lines, capped; a final entry with field `end` closes it.
//!
//! State changes go through one Lua script that checks the current state against the allowed
//! sources ([`BuildState::can_become`]), so two services racing on one record cannot both win.
//! Redis holds state that can be rebuilt: the durable record of a finished build is Koji and
//! the registry.

use crate::config::RedisConfig;
use backon::{ExponentialBuilder, Retryable};
use osbs_proto::Message;
use osbs_proto::v1::{BuildJob, BuildState};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Value};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "cannot reach Redis at {url}: {source}. Is it running? Start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no` (or set OSBS_REDIS__URL)"
    )]
    Connect {
        url: String,
        #[source]
        source: redis::RedisError,
    },
    #[error("Redis {operation} failed: {source}")]
    Redis {
        operation: &'static str,
        #[source]
        source: redis::RedisError,
    },
    #[error("no build with id {0:?}: check the id with `osbs list`")]
    NotFound(String),
    #[error("build {id} is {current}; it cannot become {to}")]
    Refused {
        id: String,
        current: BuildState,
        to: BuildState,
    },
    #[error("build record {id} is damaged: {reason}")]
    Corrupt { id: String, reason: String },
}

fn redis_error(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Redis { operation, source }
}

/// A build record, as read back from Redis.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildRecord {
    pub id: String,
    pub state: BuildState,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The job as enqueued (request, target, options).
    pub job: BuildJob,
    /// Every other field (nvr, pullspecs, digest, error, worker, attempts, koji_build_id,
    /// log_path, superseded_by...), as strings.
    pub fields: HashMap<String, String>,
}

impl BuildRecord {
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }
    pub fn error(&self) -> &str {
        self.field(field::ERROR)
    }
    pub fn nvr(&self) -> &str {
        self.field(field::NVR)
    }
    pub fn digest(&self) -> &str {
        self.field(field::DIGEST)
    }
    pub fn attempts(&self) -> u32 {
        self.field(field::ATTEMPTS).parse().unwrap_or(0)
    }
    /// Pullspecs, stored as a JSON array.
    pub fn pullspecs(&self) -> Vec<String> {
        serde_json::from_str(self.field(field::PULLSPECS)).unwrap_or_default()
    }
    pub fn cancel_requested(&self) -> bool {
        self.field(field::CANCEL_REQUESTED) == "1"
    }

    fn from_hash(id: &str, mut hash: HashMap<String, Vec<u8>>) -> Result<BuildRecord, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            id: id.to_owned(),
            reason,
        };
        let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
        let state = hash
            .remove(field::STATE)
            .map(text)
            .ok_or_else(|| corrupt("no state".into()))?;
        let state = BuildState::parse(&state).map_err(|error| corrupt(error.to_string()))?;
        let job = hash
            .remove(field::JOB)
            .ok_or_else(|| corrupt("no job".into()))
            .and_then(|bytes| {
                BuildJob::decode(bytes.as_slice()).map_err(|error| corrupt(error.to_string()))
            })?;
        let number =
            |value: Option<Vec<u8>>| value.map(text).and_then(|v| v.parse().ok()).unwrap_or(0);
        let created_ms = number(hash.remove(field::CREATED_MS));
        let updated_ms = number(hash.remove(field::UPDATED_MS));
        Ok(BuildRecord {
            id: id.to_owned(),
            state,
            created_ms,
            updated_ms,
            job,
            fields: hash
                .into_iter()
                .map(|(key, value)| (key, text(value)))
                .collect(),
        })
    }
}

/// Names of record fields shared across services.
pub mod field {
    pub const STATE: &str = "state";
    pub const JOB: &str = "job";
    pub const CREATED_MS: &str = "created_ms";
    pub const UPDATED_MS: &str = "updated_ms";
    pub const NVR: &str = "nvr";
    pub const PULLSPECS: &str = "pullspecs";
    pub const DIGEST: &str = "digest";
    pub const ERROR: &str = "error";
    pub const WORKER: &str = "worker";
    pub const ATTEMPTS: &str = "attempts";
    pub const KOJI_BUILD_ID: &str = "koji_build_id";
    pub const LOG_PATH: &str = "log_path";
    pub const CANCEL_REQUESTED: &str = "cancel_requested";
    pub const SUPERSEDED_BY: &str = "superseded_by";
    pub const HEARTBEAT_MS: &str = "heartbeat_ms";
    pub const REPO: &str = "repo";
    pub const BRANCH: &str = "branch";
    pub const TARGET: &str = "target";
    pub const SUBMITTER: &str = "submitter";
}

/// One entry of a record's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub at_ms: i64,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub by: String,
}

/// What [`Store::create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new record, queued.
    New(String),
    /// The idempotency key already named this build: nothing was written.
    Existing(String),
}

/// A successful transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: BuildState,
    pub to: BuildState,
}

/// What to change along with the state.
#[derive(Debug, Clone, Default)]
pub struct Change<'a> {
    pub reason: &'a str,
    /// Service or host making the change, for the history.
    pub by: &'a str,
    pub fields: Vec<(&'a str, String)>,
}

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

/// Filters of [`Store::list`].
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<BuildState>,
    pub repo: Option<String>,
    pub user: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: usize,
}

/// Extends a lock only for its holder (compare the token, then PEXPIRE).
const RENEW_LOCK_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Deletes a lock only for its holder.
const RELEASE_LOCK_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

const TRANSITION_LUA: &str = r#"
-- KEYS[1] record, KEYS[2] history
-- ARGV[1] to, ARGV[2] now_ms, ARGV[3] allowed sources (space separated), ARGV[4] reason,
-- ARGV[5] by, ARGV[6..] field/value pairs
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', ''} end
local allowed = false
for source in string.gmatch(ARGV[3], '%S+') do
  if source == current then allowed = true end
end
if not allowed then return {'refused', current} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_ms', ARGV[2])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('RPUSH', KEYS[2], cjson.encode({at_ms = tonumber(ARGV[2]), from = current, to = ARGV[1], reason = ARGV[4], by = ARGV[5]}))
return {'ok', current}
"#;

const CREATE_LUA: &str = r#"
-- KEYS[1] idempotency key, KEYS[2] record, KEYS[3] history, KEYS[4] index
-- ARGV[1] id, ARGV[2] now_ms, ARGV[3] idempotency ttl seconds, ARGV[4] by, ARGV[5] reason,
-- ARGV[6..] field/value pairs
local existing = redis.call('GET', KEYS[1])
if existing then return {'existing', existing} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'existing', ARGV[1]} end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[3]))
redis.call('HSET', KEYS[2], 'state', 'queued', 'created_ms', ARGV[2], 'updated_ms', ARGV[2])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('ZADD', KEYS[4], tonumber(ARGV[2]), ARGV[1])
redis.call('RPUSH', KEYS[3], cjson.encode({at_ms = tonumber(ARGV[2]), from = '', to = 'queued', reason = ARGV[5], by = ARGV[4]}))
return {'new', ARGV[1]}
"#;

/// How long an idempotency key keeps naming its build.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The Redis store.
#[derive(Clone)]
pub struct Store {
    connection: ConnectionManager,
    prefix: String,
    log_max_lines: usize,
    transition: std::sync::Arc<redis::Script>,
    create: std::sync::Arc<redis::Script>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Store {
    /// Connects (retrying for `connect_timeout_secs`); the connection then reconnects by
    /// itself.
    pub async fn connect(config: &RedisConfig) -> Result<Store, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: config.url.masked(),
            source,
        };
        let client = redis::Client::open(config.url.expose()).map_err(connect_error)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(6)
            .set_max_delay(Duration::from_secs(2))
            // XREAD BLOCK waits up to 5 s: answers may take that long.
            .set_response_timeout(Some(Duration::from_secs(15)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(config.connect_timeout_secs);
        let connection = (|| ConnectionManager::new_with_config(client.clone(), manager_config.clone()))
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(200))
                    .with_max_delay(Duration::from_secs(3))
                    .with_max_times(usize::MAX),
            )
            .when(|_| tokio::time::Instant::now() < deadline)
            .notify(|error, wait| {
                tracing::warn!(url = %config.url, error = %error, ?wait, "Redis not reachable yet; retrying");
            })
            .await
            .map_err(connect_error)?;
        Ok(Store {
            connection,
            prefix: config.key_prefix.clone(),
            log_max_lines: config.log_max_lines.max(100),
            transition: std::sync::Arc::new(redis::Script::new(TRANSITION_LUA)),
            create: std::sync::Arc::new(redis::Script::new(CREATE_LUA)),
        })
    }

    /// A key under this store's prefix: `key(&["build", id])` → `osbs:build:<id>`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// The connection, for a service's own keys (release reservations, coalescing...).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Extends the lock `key` by `ttl` if `token` still holds it; `false` when it does not
    /// (expired, and maybe taken by someone else). Locks are plain keys holding their owner's
    /// token, set with `SET NX PX`.
    pub async fn renew_lock(
        &self,
        key: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let renewed: i64 = redis::Script::new(RENEW_LOCK_LUA)
            .key(key)
            .arg(token)
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("renew a lock"))?;
        Ok(renewed == 1)
    }

    /// Deletes the lock `key` if `token` still holds it.
    pub async fn release_lock(&self, key: &str, token: &str) -> Result<(), StoreError> {
        let _: i64 = redis::Script::new(RELEASE_LOCK_LUA)
            .key(key)
            .arg(token)
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("release a lock"))?;
        Ok(())
    }

    /// Records a new queued build for `job` unless `idempotency_key` already names one.
    pub async fn create(
        &self,
        job: &BuildJob,
        idempotency_key: &str,
        now_ms: i64,
        by: &str,
        extra_fields: &[(&str, String)],
    ) -> Result<Created, StoreError> {
        let mut invocation = self.create.prepare_invoke();
        invocation
            .key(self.key(&["idem", idempotency_key]))
            .key(self.key(&["build", &job.build_id]))
            .key(self.key(&["build", &job.build_id, "history"]))
            .key(self.key(&["builds"]))
            .arg(&job.build_id)
            .arg(now_ms)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .arg(by)
            .arg("recorded");
        invocation.arg(field::JOB).arg(job.encode_to_vec());
        let target = job
            .target
            .as_ref()
            .map(|target| target.name.clone())
            .unwrap_or_default();
        for (name, value) in [
            (field::REPO, job.repo.clone()),
            (field::BRANCH, job.branch.clone()),
            (field::TARGET, target),
            (field::SUBMITTER, job.submitter.clone()),
            (field::ATTEMPTS, "0".to_owned()),
        ] {
            invocation.arg(name).arg(value);
        }
        for (name, value) in extra_fields {
            invocation.arg(*name).arg(value);
        }
        let (outcome, id): (String, String) = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_error("create"))?;
        Ok(if outcome == "new" {
            Created::New(id)
        } else {
            Created::Existing(id)
        })
    }

    /// The record of build `id`, if any.
    pub async fn get(&self, id: &str) -> Result<Option<BuildRecord>, StoreError> {
        let hash: HashMap<String, Vec<u8>> = self
            .connection
            .clone()
            .hgetall(self.key(&["build", id]))
            .await
            .map_err(redis_error("hgetall"))?;
        if hash.is_empty() {
            return Ok(None);
        }
        BuildRecord::from_hash(id, hash).map(Some)
    }

    /// Like [`Store::get`], but a missing build is an error.
    pub async fn require(&self, id: &str) -> Result<BuildRecord, StoreError> {
        self.get(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(id.to_owned()))
    }

    /// Moves build `id` to `to` if the state machine allows it from its current state.
    pub async fn transition(
        &self,
        id: &str,
        to: BuildState,
        change: Change<'_>,
    ) -> Result<Transition, StoreError> {
        self.transition_from(id, &BuildState::sources_of(to), to, change)
            .await
    }

    /// Moves build `id` to `to` only from one of `sources` (a compare-and-set).
    pub async fn transition_from(
        &self,
        id: &str,
        sources: &[BuildState],
        to: BuildState,
        change: Change<'_>,
    ) -> Result<Transition, StoreError> {
        let allowed: Vec<&str> = sources
            .iter()
            .filter(|source| source.can_become(to))
            .map(|source| source.name())
            .collect();
        let mut invocation = self.transition.prepare_invoke();
        invocation
            .key(self.key(&["build", id]))
            .key(self.key(&["build", id, "history"]))
            .arg(to.name())
            .arg(crate::telemetry::now_ms())
            .arg(allowed.join(" "))
            .arg(change.reason)
            .arg(change.by);
        for (name, value) in &change.fields {
            invocation.arg(*name).arg(value);
        }
        let (outcome, current): (String, String) = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(redis_error("transition"))?;
        match outcome.as_str() {
            "ok" => Ok(Transition {
                from: BuildState::parse(&current).map_err(|error| StoreError::Corrupt {
                    id: id.to_owned(),
                    reason: error.to_string(),
                })?,
                to,
            }),
            "missing" => Err(StoreError::NotFound(id.to_owned())),
            _ => Err(StoreError::Refused {
                id: id.to_owned(),
                current: BuildState::parse(&current).unwrap_or(BuildState::Unspecified),
                to,
            }),
        }
    }

    /// Sets fields without changing the state (heartbeats, progress, koji ids).
    pub async fn set_fields(&self, id: &str, fields: &[(&str, String)]) -> Result<(), StoreError> {
        if fields.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("HSET");
        command.arg(self.key(&["build", id]));
        for (name, value) in fields {
            command.arg(*name).arg(value);
        }
        command
            .query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(redis_error("hset"))
    }

    /// The transitions of build `id`, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let entries: Vec<String> = self
            .connection
            .clone()
            .lrange(self.key(&["build", id, "history"]), 0, -1)
            .await
            .map_err(redis_error("lrange"))?;
        Ok(entries
            .iter()
            .filter_map(|entry| serde_json::from_str(entry).ok())
            .collect())
    }

    /// Builds, newest first, matching `filter`.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<BuildRecord>, StoreError> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let min = filter
            .since_ms
            .map_or("-inf".to_owned(), |since| since.to_string());
        let mut connection = self.connection.clone();
        let mut found = Vec::new();
        let mut offset = 0isize;
        const PAGE: isize = 500;
        loop {
            let ids: Vec<String> = connection
                .zrevrangebyscore_limit(self.key(&["builds"]), "+inf", &min, offset, PAGE)
                .await
                .map_err(redis_error("zrevrangebyscore"))?;
            if ids.is_empty() {
                return Ok(found);
            }
            offset += PAGE;
            for id in &ids {
                let Some(record) = self.get(id).await? else {
                    continue;
                };
                let keep = filter.state.is_none_or(|state| record.state == state)
                    && filter
                        .repo
                        .as_deref()
                        .is_none_or(|repo| record.job.repo == repo)
                    && filter
                        .user
                        .as_deref()
                        .is_none_or(|user| record.job.submitter == user);
                if keep {
                    found.push(record);
                    if found.len() >= limit {
                        return Ok(found);
                    }
                }
            }
        }
    }

    /// Marks build `id` for cancellation (workers poll it; the dispatcher's queued job is
    /// skipped when its turn comes).
    pub async fn request_cancel(&self, id: &str) -> Result<(), StoreError> {
        self.set_fields(id, &[(field::CANCEL_REQUESTED, "1".into())])
            .await
    }

    pub async fn is_cancel_requested(&self, id: &str) -> Result<bool, StoreError> {
        let mark: Option<String> = self
            .connection
            .clone()
            .hget(self.key(&["build", id]), field::CANCEL_REQUESTED)
            .await
            .map_err(redis_error("hget"))?;
        Ok(mark.as_deref() == Some("1"))
    }

    /// Appends lines to build `id`'s live log (capped at `log_max_lines`, oldest dropped).
    pub async fn append_log(&self, id: &str, lines: &[String]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let key = self.key(&["log", id]);
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
        pipe.query_async::<()>(&mut self.connection.clone())
            .await
            .map_err(redis_error("xadd"))
    }

    /// Closes build `id`'s live log: followers stop after this entry.
    pub async fn end_log(&self, id: &str, state: BuildState) -> Result<(), StoreError> {
        redis::cmd("XADD")
            .arg(self.key(&["log", id]))
            .arg("MAXLEN")
            .arg("~")
            .arg(self.log_max_lines)
            .arg("*")
            .arg("end")
            .arg(state.name())
            .query_async::<()>(&mut self.connection.clone())
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
        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(count.max(1));
        if let Some(block) = block {
            command
                .arg("BLOCK")
                .arg(block.as_millis().min(5_000) as u64);
        }
        command
            .arg("STREAMS")
            .arg(self.key(&["log", id]))
            .arg(after);
        let reply: Value = command
            .query_async(&mut self.connection.clone())
            .await
            .map_err(redis_error("xread"))?;
        Ok(parse_xread(reply))
    }
}

/// XREAD's reply (`[[key, [[id, [field, value, ...]], ...]]]`) → log entries.
fn parse_xread(reply: Value) -> Vec<LogEntry> {
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
                    "l" => entries.push(LogEntry::Line {
                        id: id.clone(),
                        text: value_text(value),
                    }),
                    "end" => entries.push(LogEntry::End {
                        id: id.clone(),
                        state: value_text(value),
                    }),
                    _ => {}
                }
            }
        }
    }
    entries
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

    #[test]
    fn xread_reply_becomes_entries() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
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
                LogEntry::Line {
                    id: "1-0".into(),
                    text: "Step 1/2".into()
                },
                LogEntry::End {
                    id: "2-0".into(),
                    state: "complete".into()
                },
            ]
        );
        assert!(parse_xread(Value::Nil).is_empty());
    }
}
