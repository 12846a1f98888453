//! The worker's own Redis keys, through the common store's connection:
//!
//! - `<prefix>:releases:<name>:<version>`: the set of releases held by builds in flight for
//!   that name-version. `SADD` is atomic, so two builds can never hold the same release; a
//!   build removes its release when it ends; the set expires as a safety net for workers that
//!   die without cleaning up.
//! - `<prefix>:result:<build_id>`: the final `BuildResult` (protobuf) of a build, kept until
//!   it expires so that a worker that died between recording the end and publishing it can
//!   be followed by one that publishes it.
//! - `<prefix>:reservation:<build_id>`: the release (and Koji reservation) a build holds,
//!   so that the attempt that takes a build over (or runs it after a drain) reuses them.
//! - `<prefix>:owner:<build_id>`: which worker instance runs a build, with a time to live
//!   renewed by its heartbeat. It is the takeover lock: `SET NX` succeeds only for the first
//!   worker after the owner stopped renewing.

use crate::release;
use osbs_common::{Store, StoreError};
use redis::AsyncCommands;
use std::time::Duration;

fn redis_error(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Redis { operation, source }
}

/// Releases to try past the first before giving up (a name-version with that many builds in
/// flight is a runaway loop, not a workload).
const MAX_RELEASE_TRIES: usize = 1000;

fn release_set(store: &Store, name: &str, version: &str) -> String {
    store.key(&["releases", name, version])
}

/// Holds the first free release at or after `first` for `name-version` (bumping by Koji's
/// rules past releases other builds hold). `keep_for` bounds how long a forgotten hold lives.
pub async fn reserve_release(
    store: &Store,
    name: &str,
    version: &str,
    first: &str,
    keep_for: Duration,
) -> Result<Option<String>, StoreError> {
    let key = release_set(store, name, version);
    let mut connection = store.connection();
    let mut candidate = first.to_owned();
    for _ in 0..MAX_RELEASE_TRIES {
        let added: i64 = connection
            .sadd(&key, &candidate)
            .await
            .map_err(redis_error("sadd"))?;
        if added == 1 {
            let _: bool = connection
                .expire(&key, i64::try_from(keep_for.as_secs()).unwrap_or(i64::MAX))
                .await
                .map_err(redis_error("expire"))?;
            return Ok(Some(candidate));
        }
        match release::bump(&candidate) {
            Some(next) => candidate = next,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// Holds exactly `release` (a release set in the Dockerfile or forced by the request), or
/// `false` if another build in flight holds it.
pub async fn hold_release(
    store: &Store,
    name: &str,
    version: &str,
    release: &str,
    keep_for: Duration,
) -> Result<bool, StoreError> {
    let key = release_set(store, name, version);
    let mut connection = store.connection();
    let added: i64 = connection
        .sadd(&key, release)
        .await
        .map_err(redis_error("sadd"))?;
    let _: bool = connection
        .expire(&key, i64::try_from(keep_for.as_secs()).unwrap_or(i64::MAX))
        .await
        .map_err(redis_error("expire"))?;
    Ok(added == 1)
}

/// Lets go of a release when the build ends.
pub async fn free_release(
    store: &Store,
    name: &str,
    version: &str,
    release: &str,
) -> Result<(), StoreError> {
    store
        .connection()
        .srem::<_, _, ()>(release_set(store, name, version), release)
        .await
        .map_err(redis_error("srem"))
}

/// Releases of `name-version` held by builds in flight.
pub async fn held_releases(
    store: &Store,
    name: &str,
    version: &str,
) -> Result<Vec<String>, StoreError> {
    store
        .connection()
        .smembers(release_set(store, name, version))
        .await
        .map_err(redis_error("smembers"))
}

fn owner_key(store: &Store, build_id: &str) -> String {
    store.key(&["owner", build_id])
}

/// Takes ownership of `build_id` for `instance` unless another live worker has it.
pub async fn claim(
    store: &Store,
    build_id: &str,
    instance: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    let reply: Option<String> = redis::cmd("SET")
        .arg(owner_key(store, build_id))
        .arg(instance)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis() as u64)
        .query_async(&mut store.connection())
        .await
        .map_err(redis_error("set nx"))?;
    Ok(reply.is_some())
}

/// Extends `instance`'s ownership; `false` when it lost it (expired and taken over).
pub async fn renew(
    store: &Store,
    build_id: &str,
    instance: &str,
    ttl: Duration,
) -> Result<bool, StoreError> {
    store
        .renew_lock(&owner_key(store, build_id), instance, ttl)
        .await
}

/// Gives ownership up (only if `instance` still has it).
pub async fn disown(store: &Store, build_id: &str, instance: &str) -> Result<(), StoreError> {
    store
        .release_lock(&owner_key(store, build_id), instance)
        .await
}

/// How long a build's final result is kept for a late publication.
pub const RESULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Keeps a build's final result (protobuf bytes).
pub async fn keep_result(store: &Store, build_id: &str, result: &[u8]) -> Result<(), StoreError> {
    store
        .connection()
        .set_ex::<_, _, ()>(
            store.key(&["result", build_id]),
            result,
            RESULT_TTL.as_secs(),
        )
        .await
        .map_err(redis_error("set result"))
}

/// The kept final result of a build, if any.
pub async fn kept_result(store: &Store, build_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store
        .connection()
        .get(store.key(&["result", build_id]))
        .await
        .map_err(redis_error("get result"))
}

/// The release a build holds, and its Koji reservation (`build_id` 0: none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptReservation {
    pub name: String,
    pub version: String,
    pub release: String,
    pub koji_build_id: i64,
    pub koji_token: String,
}

pub async fn keep_reservation(
    store: &Store,
    build_id: &str,
    kept: &KeptReservation,
    keep_for: Duration,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(kept).expect("a plain struct serializes");
    store
        .connection()
        .set_ex::<_, _, ()>(
            store.key(&["reservation", build_id]),
            json,
            keep_for.as_secs(),
        )
        .await
        .map_err(redis_error("set reservation"))
}

pub async fn kept_reservation(
    store: &Store,
    build_id: &str,
) -> Result<Option<KeptReservation>, StoreError> {
    let json: Option<String> = store
        .connection()
        .get(store.key(&["reservation", build_id]))
        .await
        .map_err(redis_error("get reservation"))?;
    Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
}

pub async fn forget_reservation(store: &Store, build_id: &str) -> Result<(), StoreError> {
    store
        .connection()
        .del::<_, ()>(store.key(&["reservation", build_id]))
        .await
        .map_err(redis_error("del reservation"))
}
