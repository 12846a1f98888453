//! The dispatcher's keys, beside the build records:
//!
//! - `<prefix>:dispatch:event:<message_id>` → build id: a redelivered or republished message
//!   names its build at once;
//! - `<prefix>:dispatch:tip:<namespace>/<repo>:<branch>:<target>` → the newest push build of
//!   that branch and target (coalescing);
//! - `<prefix>:request:<request_id>` hash `{outcome, build_id, reason, at_ms}`: what became of
//!   an explicit request, for the CLI ([`Store::request_outcome`]).
//!
//! Every key expires after [`IDEMPOTENCY_TTL`], like the idempotency keys.

use super::{Created, IDEMPOTENCY_TTL, Store, StoreError, field, redis_error};
use osbs_proto::v1::BuildJob;
use redis::AsyncCommands;
use std::collections::HashMap;

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

/// What became of an explicit build request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOutcome {
    /// `enqueued` (a new build), `duplicate` (an existing build answers it), `ignored` (the
    /// routing does not build that repository) or `refused` (invalid; `reason` says why).
    pub outcome: String,
    /// The build answering the request: new or existing.
    pub build_id: Option<String>,
    pub reason: String,
    pub at_ms: i64,
}

pub(super) const TIP_LUA: &str = concat!(
    r#"
-- KEYS[1] tip key, KEYS[2] record of ARGV[1]; ARGV[1] build id, ARGV[2] ttl seconds
"#,
    lua_later!(),
    r#"
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
"#
);

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

/// The event a dispatched record comes from, for [`Store::create_dispatched`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DispatchedEvent<'a> {
    /// Its AMQP `message_id`, mapped to the build for redeliveries.
    pub message_id: Option<&'a str>,
    /// A push's branch ([`Store::advance_tip`]'s key), whose tip moves in the same step.
    pub coalesce_key: Option<&'a str>,
}

/// The [`Tip`] of a script's answer (`advanced`, `current` or `behind`, and the other build).
pub(super) fn tip_from(outcome: &str, other: String) -> Tip {
    match outcome {
        "behind" => Tip::Behind { newer: other },
        "current" => Tip::Current {
            previous: non_empty(other),
        },
        _ => Tip::Advanced {
            previous: non_empty(other),
        },
    }
}

impl Store {
    /// The build an event (by AMQP `message_id`) already made, if any.
    pub async fn build_of_event(&self, message_id: &str) -> Result<Option<String>, StoreError> {
        self.connection()
            .get(self.key(&["dispatch", "event", message_id]))
            .await
            .map_err(redis_error("get"))
    }

    /// Makes `build_id` the newest push build of `coalesce_key` unless a later one is, in one
    /// atomic step that also records what it superseded (so that a redelivery finds it).
    pub async fn advance_tip(&self, coalesce_key: &str, build_id: &str) -> Result<Tip, StoreError> {
        debug_assert_eq!(field::SUPERSEDES, "supersedes", "named in TIP_LUA");
        let (outcome, other): (String, String) = self
            .scripts
            .tip
            .key(self.key(&["dispatch", "tip", coalesce_key]))
            .key(self.key(&["build", build_id]))
            .arg(build_id)
            .arg(IDEMPOTENCY_TTL.as_secs())
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("coalesce"))?;
        Ok(tip_from(&outcome, other))
    }

    /// [`Store::create`] for the dispatcher, with the writes that follow a new record in the
    /// same atomic step (one round trip instead of three): `message_id` → build id (what
    /// [`Store::settle_dispatch`] would write) and, for a push (`coalesce_key`), the branch's
    /// tip as [`Store::advance_tip`] moves it, whose answer comes back beside the record. An
    /// existing record is left as it is (`None`: the caller advances the tip itself).
    pub async fn create_dispatched(
        &self,
        job: &BuildJob,
        idempotency_key: &str,
        now_ms: i64,
        by: &str,
        extra_fields: &[(&str, String)],
        event: DispatchedEvent<'_>,
    ) -> Result<(Created, Option<Tip>), StoreError> {
        self.create_with(job, idempotency_key, now_ms, by, extra_fields, event)
            .await
    }

    /// Records what became of a request (refused or ignored ones; see
    /// [`Store::settle_dispatch`]).
    pub async fn record_request(
        &self,
        request_id: &str,
        outcome: &RequestOutcome,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_request(&mut pipe, request_id, outcome);
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(redis_error("hset"))
    }

    /// The last writes of a handled event, in one atomic round trip: the record's `enqueued`
    /// mark (when the dispatcher just finished it), the message id → build id key, and the
    /// request's outcome.
    pub async fn settle_dispatch(
        &self,
        build_id: &str,
        mark_enqueued: bool,
        message_id: Option<&str>,
        request: Option<(&str, &RequestOutcome)>,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        // MULTI/EXEC only when there is more than one write (two more commands for Redis).
        let writes = usize::from(mark_enqueued)
            + usize::from(message_id.is_some())
            + if request.is_some() { 2 } else { 0 };
        if writes == 0 {
            return Ok(());
        }
        if writes > 1 {
            pipe.atomic();
        }
        if mark_enqueued {
            pipe.hset(self.key(&["build", build_id]), field::ENQUEUED, "1")
                .ignore();
        }
        if let Some(message_id) = message_id {
            pipe.set_ex(
                self.key(&["dispatch", "event", message_id]),
                build_id,
                IDEMPOTENCY_TTL.as_secs(),
            )
            .ignore();
        }
        if let Some((request_id, outcome)) = request {
            self.add_request(&mut pipe, request_id, outcome);
        }
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(redis_error("settle"))
    }

    fn add_request(&self, pipe: &mut redis::Pipeline, request_id: &str, outcome: &RequestOutcome) {
        let key = self.key(&["request", request_id]);
        pipe.hset_multiple(
            &key,
            &[
                ("outcome", outcome.outcome.clone()),
                ("build_id", outcome.build_id.clone().unwrap_or_default()),
                ("reason", outcome.reason.clone()),
                ("at_ms", outcome.at_ms.to_string()),
            ],
        )
        .ignore()
        .expire(&key, IDEMPOTENCY_TTL.as_secs() as i64)
        .ignore();
    }

    /// What became of the build request with `request_id`, once the dispatcher has handled
    /// it; `None` before (or when its body was unreadable).
    pub async fn request_outcome(
        &self,
        request_id: &str,
    ) -> Result<Option<RequestOutcome>, StoreError> {
        let mut hash: HashMap<String, String> = self
            .connection()
            .hgetall(self.key(&["request", request_id]))
            .await
            .map_err(redis_error("hgetall"))?;
        if hash.is_empty() {
            return Ok(None);
        }
        let mut take = |name: &str| hash.remove(name).unwrap_or_default();
        Ok(Some(RequestOutcome {
            outcome: take("outcome"),
            build_id: non_empty(take("build_id")),
            reason: take("reason"),
            at_ms: take("at_ms").parse().unwrap_or(0),
        }))
    }
}
