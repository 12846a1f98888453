//! The dispatcher's own Redis keys and record fields, beside the build records of
//! `osbs_common::store` (same prefix, same connection):
//!
//! - `<prefix>:dispatch:event:<message_id>` → build id: a redelivered or republished message
//!   names its build at once;
//! - `<prefix>:dispatch:tip:<namespace>/<repo>:<branch>:<target>` → the newest push build of
//!   that branch and target (coalescing);
//! - `<prefix>:request:<request_id>`: what became of an explicit request, for the CLI
//!   ([`osbs_common::request`]);
//! - record fields [`field::ENQUEUED`], [`field::SUPERSEDES`], [`field::REQUEST_ID`].
//!
//! Every key expires after [`IDEMPOTENCY_TTL`], like the store's idempotency keys.

use osbs_common::request::{self, RequestOutcome};
use osbs_common::store::{IDEMPOTENCY_TTL, Store, StoreError};
use redis::AsyncCommands;
use std::sync::Arc;

/// Record fields the dispatcher writes.
pub mod field {
    /// `1` once the dispatcher's work for the record is done: its job confirmed on
    /// `osbs.jobs` (or none needed because it was superseded at once) and its state events
    /// published. A record without it after a crash is finished by the redelivered event.
    pub const ENQUEUED: &str = "enqueued";
    /// The push build this one superseded when it became the branch's newest (may be empty).
    pub const SUPERSEDES: &str = "supersedes";
    pub const REQUEST_ID: &str = "request_id";
    /// AMQP priority the job was published with.
    pub const PRIORITY: &str = "priority";
}

/// Where a push build stands among the builds of its branch and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tip {
    /// It is the newest now; `previous` was the newest before it.
    Advanced { previous: Option<String> },
    /// It already was the newest (a redelivery); `previous` as recorded when it advanced.
    Current { previous: Option<String> },
    /// A newer build of the branch exists: this one is superseded by `newer`.
    Behind { newer: String },
}

// Ids are compared byte by byte: Lua's `<` on strings follows the server's locale.
const TIP_LUA: &str = r#"
-- KEYS[1] tip key, KEYS[2] record of ARGV[1]; ARGV[1] build id, ARGV[2] ttl seconds
local function later(a, b)
  for i = 1, math.max(#a, #b) do
    local x, y = string.byte(a, i) or 0, string.byte(b, i) or 0
    if x ~= y then return x > y end
  end
  return false
end
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  return {'current', redis.call('HGET', KEYS[2], 'supersedes') or ''}
end
if current and later(current, ARGV[1]) then
  return {'behind', current}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], 'supersedes', current or '')
return {'advanced', current or ''}
"#;

fn redis_error(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Redis { operation, source }
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// The dispatcher's keys, on the store's connection.
#[derive(Clone)]
pub struct Records {
    store: Store,
    tip: Arc<redis::Script>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("store", &self.store)
            .finish()
    }
}

impl Records {
    pub fn new(store: Store) -> Records {
        Records {
            store,
            tip: Arc::new(redis::Script::new(TIP_LUA)),
        }
    }

    /// The build an event (by AMQP `message_id`) already made, if any.
    pub async fn build_of_event(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        self.store
            .connection()
            .get(self.store.key(&["dispatch", "event", message_id]))
            .await
            .map_err(redis_error("get"))
    }

    /// Makes `build_id` the newest push build of `coalesce_key` unless a later one is, in one
    /// atomic step that also records what it superseded (so that a redelivery finds it).
    pub async fn advance_tip(&self, coalesce_key: &str, build_id: &str) -> Result<Tip, StoreError> {
        let (outcome, other): (String, String) = self
            .tip
            .key(self.store.key(&["dispatch", "tip", coalesce_key]))
            .key(self.store.key(&["build", build_id]))
            .arg(build_id)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .invoke_async(&mut self.store.connection())
            .await
            .map_err(redis_error("coalesce"))?;
        Ok(match outcome.as_str() {
            "behind" => Tip::Behind { newer: other },
            "current" => Tip::Current {
                previous: non_empty(other),
            },
            _ => Tip::Advanced {
                previous: non_empty(other),
            },
        })
    }

    /// Records what became of a request (refused or ignored ones; see [`Records::settle`]).
    pub async fn record_request(
        &self,
        request_id: &str,
        outcome: &RequestOutcome,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_request(&mut pipe, request_id, outcome);
        pipe.query_async::<()>(&mut self.store.connection())
            .await
            .map_err(redis_error("hset"))
    }

    /// The last writes of a handled event, in one atomic round trip: the record's `enqueued`
    /// mark (when the dispatcher just finished it), the message id → build id key, and the
    /// request's outcome.
    pub async fn settle(
        &self,
        build_id: &str,
        mark_enqueued: bool,
        message_id: Option<&str>,
        request: Option<(&str, &RequestOutcome)>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        if mark_enqueued {
            pipe.hset(self.store.key(&["build", build_id]), field::ENQUEUED, "1")
                .ignore();
        }
        if let Some(message_id) = message_id {
            pipe.set_ex(
                self.store.key(&["dispatch", "event", message_id]),
                build_id,
                IDEMPOTENCY_TTL.as_secs(),
            )
            .ignore();
        }
        if let Some((request_id, outcome)) = request {
            self.add_request(&mut pipe, request_id, outcome);
        }
        pipe.query_async::<()>(&mut self.store.connection())
            .await
            .map_err(redis_error("settle"))
    }

    fn add_request(&self, pipe: &mut redis::Pipeline, request_id: &str, outcome: &RequestOutcome) {
        let key = request::key(&self.store, request_id);
        pipe.hset_multiple(&key, &outcome.fields())
            .ignore()
            .expire(&key, IDEMPOTENCY_TTL.as_secs() as i64)
            .ignore();
    }
}
