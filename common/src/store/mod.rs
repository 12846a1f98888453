//! The Redis adapter: build records with their state machine, idempotency keys, the listing
//! index, cancel marks, live build logs, locks, and each service's own keys — all as named
//! operations. The connection is private: no other crate writes a Redis command.
//!
//! Keys (prefix `osbs` by default):
//! - `osbs:build:<id>` hash: the record ([`BuildRecord`], fields named in [`field`]); `job`
//!   holds the `BuildJob` protobuf;
//! - `osbs:build:<id>:history` list of JSON entries ([`HistoryEntry`]);
//! - `osbs:builds` sorted set of ids by creation time, and `osbs:builds:by:<field>:<value>`
//!   the same per repository, branch, target, submitter and state ([`listing`]);
//! - `osbs:idem:<key>` → build id (de-duplication);
//! - `osbs:log:<id>` the live log, `osbs:log:<id>:<arch>` an arch job's ([`log`]); a
//!   multi-arch build's parts ([`arches`]); locks ([`Lock`]); the dispatcher's
//!   ([`dispatch`]), the worker's ([`worker`]) and the koji-bridge's ([`koji`]) keys.
//!
//! A record's state changes only through [`crate::state::change`]: one Lua script checks the
//! current state against the allowed sources ([`BuildState::can_become`]) and appends the
//! history entry, so two services racing on one record cannot both win. Redis holds state that
//! can be rebuilt: the durable record of a finished build is Koji and the registry.

/// Lua: `later(a, b)`, whether build id `a` sorts after `b` byte by byte (Lua's `<` on
/// strings follows the server's locale) — one definition for the scripts that move a
/// branch's tip.
macro_rules! lua_later {
    () => {
        r#"
local function later(a, b)
  for i = 1, math.max(#a, #b) do
    local x, y = string.byte(a, i) or 0, string.byte(b, i) or 0
    if x ~= y then return x > y end
  end
  return false
end
"#
    };
}

pub mod arches;
pub mod dispatch;
pub mod koji;
pub mod listing;
mod lock;
pub mod log;
pub(crate) mod record;
pub mod worker;

pub use arches::PartRecorded;
pub use dispatch::{DispatchedEvent, RequestOutcome, Tip};
pub use koji::ImportMarker;
pub use listing::{Dimension, ListPage, ListQuery};
pub use lock::Lock;
pub use log::{LogCursor, LogEntry};
pub use record::{BuildRecord, HistoryEntry, field, output_fields};
pub use worker::KeptReservation;

use crate::announcement::{Announcement, StateChange};
use crate::config::RedisConfig;
use osbs_proto::Message;
use osbs_proto::v1::{BuildJob, BuildState};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisWrite};
use std::collections::HashMap;
use std::sync::Arc;
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
    #[error("build record {id} is damaged: {reason}")]
    Corrupt { id: String, reason: String },
    #[error(
        "field {0:?} of a build record changes only with its state (osbs_common::state::change)"
    )]
    StateField(String),
}

pub(crate) fn redis_error(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Redis { operation, source }
}

/// What [`Store::create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// A new record, queued; its announcement is the caller's to publish
    /// ([`crate::Bus::announce`]) once what must precede it is done.
    New(Announcement),
    /// The idempotency key already named this build: nothing was written.
    Existing(String),
}

impl Created {
    pub fn build_id(&self) -> &str {
        match self {
            Created::New(announcement) => announcement.build_id(),
            Created::Existing(id) => id,
        }
    }
}

/// What the compare-and-set of a state change found.
#[derive(Debug)]
pub(crate) enum Swap {
    /// Recorded: the record as it is now, and the history entry appended.
    Moved {
        record: BuildRecord,
        entry: HistoryEntry,
    },
    /// The record's state is not one the change may start from; nothing was written.
    Refused(BuildRecord),
    /// No such record.
    Missing,
}

/// Refuses the fields only a state change or the record's creation writes.
fn check_fields(fields: &[(&str, String)]) -> Result<(), StoreError> {
    match fields.iter().find(|(name, _)| {
        [
            field::STATE,
            field::JOB,
            field::CREATED_MS,
            field::UPDATED_MS,
        ]
        .contains(name)
    }) {
        Some((name, _)) => Err(StoreError::StateField((*name).to_owned())),
        None => Ok(()),
    }
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

const CHANGE_LUA: &str = r#"
-- KEYS[1] record, KEYS[2] history, KEYS[3] prefix of the listing's state sets (+ state name)
-- ARGV[1] to, ARGV[2] now_ms, ARGV[3] n = number of allowed sources, ARGV[4] build id,
-- ARGV[5 .. 4+2n] (source, history entry JSON) pairs, then field/value pairs
local current = redis.call('HGET', KEYS[1], 'state')
if not current then return {'missing', '', {}} end
local n = tonumber(ARGV[3])
local entry = nil
for i = 0, n - 1 do
  if ARGV[5 + 2 * i] == current then entry = ARGV[6 + 2 * i] end
end
if not entry then return {'refused', current, redis.call('HGETALL', KEYS[1])} end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'updated_ms', ARGV[2])
for i = 5 + 2 * n, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('RPUSH', KEYS[2], entry)
if current ~= ARGV[1] then
  local created = tonumber(redis.call('HGET', KEYS[1], 'created_ms') or ARGV[2])
  redis.call('ZREM', KEYS[3] .. current, ARGV[4])
  redis.call('ZADD', KEYS[3] .. ARGV[1], created, ARGV[4])
end
return {'ok', current, redis.call('HGETALL', KEYS[1])}
"#;

// The record's fields go in one HSET (one call from Lua instead of one per field); the
// caller knows them all, so the script returns no HGETALL. Numbers stay the strings they
// came as (a Lua number would be formatted back to text for each call).
const CREATE_LUA: &str = concat!(
    r#"
-- KEYS[1] idempotency key, KEYS[2] record, KEYS[3] history, KEYS[4] the event's key ('' for
-- none), KEYS[5] the branch's tip key ('' unless a push), KEYS[6..] listing sets
-- ARGV[1] id, ARGV[2] now_ms, ARGV[3] idempotency ttl seconds, ARGV[4] history entry JSON,
-- ARGV[5..] field/value pairs
"#,
    lua_later!(),
    r#"
local existing = redis.call('GET', KEYS[1])
if existing then return {'existing', existing, '', ''} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'existing', ARGV[1], '', ''} end
local ttl = ARGV[3]
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
if KEYS[4] ~= '' then redis.call('SET', KEYS[4], ARGV[1], 'EX', ttl) end
local tip, other = '', ''
if KEYS[5] ~= '' then
  local current = redis.call('GET', KEYS[5])
  if current == ARGV[1] then
    tip = 'current'
  elseif current and later(current, ARGV[1]) then
    tip, other = 'behind', current
  else
    redis.call('SET', KEYS[5], ARGV[1], 'EX', ttl)
    tip, other = 'advanced', current or ''
  end
end
if tip == 'advanced' then
  redis.call('HSET', KEYS[2], 'state', 'queued', 'created_ms', ARGV[2], 'updated_ms', ARGV[2],
    'supersedes', other, unpack(ARGV, 5))
else
  redis.call('HSET', KEYS[2], 'state', 'queued', 'created_ms', ARGV[2], 'updated_ms', ARGV[2],
    unpack(ARGV, 5))
end
for i = 6, #KEYS do
  redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
end
redis.call('RPUSH', KEYS[3], ARGV[4])
return {'new', ARGV[1], tip, other}
"#
);

const RECREATE_LUA: &str = r#"
-- KEYS[1] record, KEYS[2] history, KEYS[3..] listing sets
-- ARGV[1] id, ARGV[2] created_ms, ARGV[3] now_ms, ARGV[4] state, ARGV[5] history entry JSON,
-- ARGV[6..] field/value pairs
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[4], 'created_ms', ARGV[2], 'updated_ms', ARGV[3])
for i = 6, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = 3, #KEYS do
  redis.call('ZADD', KEYS[i], tonumber(ARGV[2]), ARGV[1])
end
redis.call('RPUSH', KEYS[2], ARGV[5])
return 1
"#;

const SET_FIELDS_LUA: &str = r#"
-- KEYS[1] record; ARGV field/value pairs. Never creates a record without a state.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"#;

/// How long an idempotency key keeps naming its build.
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The scripts, hashed once.
struct Scripts {
    change: redis::Script,
    create: redis::Script,
    recreate: redis::Script,
    set_fields: redis::Script,
    tip: redis::Script,
    renew_lock: redis::Script,
    release_lock: redis::Script,
    page: redis::Script,
    record_part: redis::Script,
}

/// The Redis store.
#[derive(Clone)]
pub struct Store {
    connection: ConnectionManager,
    prefix: String,
    log_max_lines: usize,
    scripts: Arc<Scripts>,
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
        let timeout = Duration::from_secs(config.connect_timeout_secs);
        let connection = crate::connect::until_reachable("Redis", &config.url, timeout, || {
            ConnectionManager::new_with_config(client.clone(), manager_config.clone())
        })
        .await
        .map_err(connect_error)?;
        Ok(Store {
            connection,
            prefix: config.key_prefix.clone(),
            log_max_lines: config.log_max_lines.max(100),
            scripts: Arc::new(Scripts {
                change: redis::Script::new(CHANGE_LUA),
                create: redis::Script::new(CREATE_LUA),
                recreate: redis::Script::new(RECREATE_LUA),
                set_fields: redis::Script::new(SET_FIELDS_LUA),
                tip: redis::Script::new(dispatch::TIP_LUA),
                renew_lock: redis::Script::new(lock::RENEW_LOCK_LUA),
                release_lock: redis::Script::new(lock::RELEASE_LOCK_LUA),
                page: redis::Script::new(listing::PAGE_LUA),
                record_part: redis::Script::new(arches::RECORD_PART_LUA),
            }),
        })
    }

    /// A key under this store's prefix: `key(&["build", id])` → `osbs:build:<id>`.
    fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    fn connection(&self) -> ConnectionManager {
        self.connection.clone()
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
        let (created, _) = self
            .create_with(
                job,
                idempotency_key,
                now_ms,
                by,
                extra_fields,
                DispatchedEvent::default(),
            )
            .await?;
        Ok(created)
    }

    /// [`Store::create`] that, for a new record, also writes in the same atomic step what
    /// `event` names: its message id's key, and a push's branch tip (returned as its [`Tip`]).
    pub(crate) async fn create_with(
        &self,
        job: &BuildJob,
        idempotency_key: &str,
        now_ms: i64,
        by: &str,
        extra_fields: &[(&str, String)],
        event: DispatchedEvent<'_>,
    ) -> Result<(Created, Option<Tip>), StoreError> {
        debug_assert_eq!(field::SUPERSEDES, "supersedes", "named in CREATE_LUA");
        let entry = HistoryEntry::new(None, BuildState::Queued, "recorded", by, now_ms);
        let id = job.build_id.as_str();
        // Written straight into the command (no key or argument allocated on its own).
        let listing = listing::new_record_sets(job);
        let mut call = redis::cmd("EVALSHA");
        call.arg(self.scripts.create.get_hash())
            .arg(6 + listing.len());
        self.key_arg(&mut call, &["idem", idempotency_key]);
        self.key_arg(&mut call, &["build", id]);
        self.key_arg(&mut call, &["build", id, "history"]);
        match event.message_id {
            Some(message_id) => self.key_arg(&mut call, &["dispatch", "event", message_id]),
            None => {
                call.arg("");
            }
        }
        match event.coalesce_key {
            Some(coalesce_key) => self.key_arg(&mut call, &["dispatch", "tip", coalesce_key]),
            None => {
                call.arg("");
            }
        }
        self.key_arg(&mut call, &["builds"]);
        for (dimension, value) in listing {
            self.key_arg(&mut call, &listing::key_parts(dimension, value));
        }
        call.arg(id)
            .arg(now_ms)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .arg(entry.to_json())
            .arg(field::JOB)
            .arg(job.encode_to_vec());
        for (name, value) in record::job_fields(job) {
            call.arg(name).arg(value);
        }
        call.arg(field::ATTEMPTS).arg("0");
        for (name, value) in extra_fields {
            call.arg(*name).arg(value);
        }
        let (outcome, id, tip, other): (String, String, String, String) = self
            .eval(&call, CREATE_LUA)
            .await
            .map_err(redis_error("create"))?;
        if outcome != "new" {
            return Ok((Created::Existing(id), None));
        }
        let tip = event
            .coalesce_key
            .is_some()
            .then(|| dispatch::tip_from(&tip, other));
        // The record did not exist before: what the script wrote is all there is, and its
        // announcement is made from the job (no record to read back).
        Ok((Created::New(Announcement::created(job, &entry)), tip))
    }

    /// Appends the key `<prefix>:<parts joined by ':'>` to `call`, written in place.
    fn key_arg(&self, call: &mut redis::Cmd, parts: &[&str]) {
        use std::io::Write;
        let mut writer = call.writer_for_next_arg();
        // Writing to the command's buffer cannot fail.
        let _ = writer.write_all(self.prefix.as_bytes());
        for part in parts {
            let _ = writer.write_all(b":");
            let _ = writer.write_all(part.as_bytes());
        }
    }

    /// Runs `call`, an `EVALSHA` of the script whose source is `code`; loads the script first
    /// when Redis does not have it (a restart, `SCRIPT FLUSH`), as [`redis::Script`] does.
    async fn eval<T: redis::FromRedisValue>(
        &self,
        call: &redis::Cmd,
        code: &str,
    ) -> redis::RedisResult<T> {
        let mut connection = self.connection();
        match call.query_async(&mut connection).await {
            Err(error)
                if error.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(code)
                    .query_async::<String>(&mut connection)
                    .await?;
                call.query_async(&mut connection).await
            }
            other => other,
        }
    }

    /// The record of build `id`, if any.
    pub async fn get(&self, id: &str) -> Result<Option<BuildRecord>, StoreError> {
        let hash: HashMap<String, Vec<u8>> = self
            .connection()
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

    /// The compare-and-set of [`crate::state::change`]: moves the record to `change.to` if
    /// its state is one of the change's sources that can become it, with the history entry
    /// made for that source, in one script.
    pub(crate) async fn swap_state(
        &self,
        change: &StateChange<'_>,
        now_ms: i64,
    ) -> Result<Swap, StoreError> {
        debug_assert_eq!((field::STATE, field::UPDATED_MS), ("state", "updated_ms"));
        check_fields(&change.fields)?;
        let candidates = change.history_entries(now_ms);
        let mut invocation = self.scripts.change.prepare_invoke();
        invocation
            .key(self.key(&["build", change.build_id]))
            .key(self.key(&["build", change.build_id, "history"]))
            .key(self.listing_state_prefix())
            .arg(change.to.name())
            .arg(now_ms)
            .arg(candidates.len())
            .arg(change.build_id);
        for (source, entry) in &candidates {
            invocation.arg(source.name()).arg(entry.to_json());
        }
        for (name, value) in &change.fields {
            invocation.arg(*name).arg(value);
        }
        let (outcome, current, record): (String, String, Vec<Vec<u8>>) = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("state change"))?;
        if outcome == "missing" {
            return Ok(Swap::Missing);
        }
        let record = BuildRecord::from_flat(change.build_id, record)?;
        if outcome != "ok" {
            return Ok(Swap::Refused(record));
        }
        let entry = candidates
            .into_iter()
            .find(|(source, _)| source.name() == current)
            .map(|(_, entry)| entry)
            .ok_or_else(|| StoreError::Corrupt {
                id: change.build_id.to_owned(),
                reason: format!("moved from {current:?}, which the change did not allow"),
            })?;
        Ok(Swap::Moved { record, entry })
    }

    /// The announcement of the latest change that brought build `id` into `state`, built
    /// from the record and its history: for a caller that finds a change recorded whose
    /// announcement may not be out (a crash or a failed publish between the two). `None`
    /// when there is no record or no such change.
    pub async fn recorded_announcement(
        &self,
        id: &str,
        state: BuildState,
    ) -> Result<Option<Announcement>, StoreError> {
        let Some(record) = self.get(id).await? else {
            return Ok(None);
        };
        let history = self.history(id).await?;
        Ok(history
            .iter()
            .rev()
            .find(|entry| entry.to == state.name())
            .map(|entry| Announcement::new(&record, entry)))
    }

    /// Sets fields without changing the state (heartbeats, progress, koji ids). The state
    /// and the job are not among them: they change only through a state change. A record
    /// Redis no longer has is left missing (no record without a state is ever made):
    /// [`Store::recreate`] brings it back.
    pub async fn set_fields(&self, id: &str, fields: &[(&str, String)]) -> Result<(), StoreError> {
        check_fields(fields)?;
        if fields.is_empty() {
            return Ok(());
        }
        let mut invocation = self.scripts.set_fields.prepare_invoke();
        invocation.key(self.key(&["build", id]));
        for (name, value) in fields {
            invocation.arg(*name).arg(value);
        }
        invocation
            .invoke_async::<i64>(&mut self.connection())
            .await
            .map(|_| ())
            .map_err(redis_error("hset"))
    }

    /// Brings back the record of a build Redis lost (emptied by a restart without
    /// persistence, a failover to a lagging replica) from the job that carries it: in
    /// `state`, with `fields`, and one history entry saying why (`reason`). Nothing is
    /// announced: the state was announced when it was first reached. `false` when the
    /// record exists (someone else brought it back first): nothing is written.
    pub async fn recreate(
        &self,
        job: &BuildJob,
        state: BuildState,
        reason: &str,
        by: &str,
        now_ms: i64,
        fields: &[(&str, String)],
    ) -> Result<bool, StoreError> {
        check_fields(fields)?;
        let id = job.build_id.as_str();
        let entry = HistoryEntry::new(None, state, reason, by, now_ms);
        let created_ms = if job.requested_at_ms > 0 {
            job.requested_at_ms
        } else {
            now_ms
        };
        let mut invocation = self.scripts.recreate.prepare_invoke();
        invocation
            .key(self.key(&["build", id]))
            .key(self.key(&["build", id, "history"]))
            .key(self.key(&["builds"]));
        for key in self.listing_keys_of(job, state) {
            invocation.key(key);
        }
        invocation
            .arg(id)
            .arg(created_ms)
            .arg(now_ms)
            .arg(state.name())
            .arg(entry.to_json());
        invocation.arg(field::JOB).arg(job.encode_to_vec());
        for (name, value) in record::job_fields(job) {
            invocation.arg(name).arg(value);
        }
        invocation.arg(field::ENQUEUED).arg("1");
        for (name, value) in fields {
            invocation.arg(*name).arg(value);
        }
        let created: i64 = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("recreate"))?;
        Ok(created == 1)
    }

    /// The history of build `id`, oldest first.
    pub async fn history(&self, id: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let entries: Vec<String> = self
            .connection()
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
        let mut connection = self.connection();
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
            .connection()
            .hget(self.key(&["build", id]), field::CANCEL_REQUESTED)
            .await
            .map_err(redis_error("hget"))?;
        Ok(mark.as_deref() == Some("1"))
    }
}
