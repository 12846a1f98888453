//! The worker's Redis keys, through the common store's named operations
//! (`osbs_common::store::worker` says what each key holds): release holds, kept results and
//! reservations, and the ownership lock of a running build (`Lock::BuildOwner`: renewed by
//! the heartbeat; the first worker to take it after the owner stopped renewing takes over).

use crate::release;
use osbs_common::store::Lock;
use osbs_common::{Store, StoreError};
use std::time::Duration;

pub use osbs_common::store::KeptReservation;
pub use osbs_common::store::worker::RESULT_TTL;

/// Releases to try past the first before giving up (a name-version with that many builds in
/// flight is a runaway loop, not a workload).
const MAX_RELEASE_TRIES: usize = 1000;

/// Holds the first free release at or after `first` for `name-version` (the next release by
/// [`release::next`] past releases other builds hold). `keep_for` bounds how long a forgotten hold lives.
pub async fn reserve_release(
    store: &Store,
    name: &str,
    version: &str,
    first: &str,
    keep_for: Duration,
) -> Result<Option<String>, StoreError> {
    let mut candidate = first.to_owned();
    for _ in 0..MAX_RELEASE_TRIES {
        if store
            .hold_release(name, version, &candidate, keep_for)
            .await?
        {
            return Ok(Some(candidate));
        }
        match release::next(&candidate) {
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
    store.hold_release(name, version, release, keep_for).await
}

/// Lets go of a release when the build ends.
pub async fn free_release(
    store: &Store,
    name: &str,
    version: &str,
    release: &str,
) -> Result<(), StoreError> {
    store.free_release(name, version, release).await
}

/// Releases of `name-version` held by builds in flight.
pub async fn held_releases(
    store: &Store,
    name: &str,
    version: &str,
) -> Result<Vec<String>, StoreError> {
    store.held_releases(name, version).await
}

/// What the store answers.
type Answer<T> = Result<T, StoreError>;

/// Takes ownership of `build_id` for `instance` unless another live worker has it.
pub async fn claim(store: &Store, build_id: &str, instance: &str, ttl: Duration) -> Answer<bool> {
    store
        .take_lock(Lock::BuildOwner(build_id), instance, ttl)
        .await
}

/// Extends `instance`'s ownership; `false` when it lost it (expired and taken over).
pub async fn renew(store: &Store, build_id: &str, instance: &str, ttl: Duration) -> Answer<bool> {
    store
        .renew_lock(Lock::BuildOwner(build_id), instance, ttl)
        .await
}

/// Gives ownership up (only if `instance` still has it).
pub async fn disown(store: &Store, build_id: &str, instance: &str) -> Answer<()> {
    store
        .release_lock(Lock::BuildOwner(build_id), instance)
        .await
}

/// Keeps a build's final result (protobuf bytes).
pub async fn keep_result(store: &Store, build_id: &str, result: &[u8]) -> Result<(), StoreError> {
    store.keep_result(build_id, result).await
}

/// The kept final result of a build, if any.
pub async fn kept_result(store: &Store, build_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store.kept_result(build_id).await
}

pub async fn keep_reservation(
    store: &Store,
    build_id: &str,
    kept: &KeptReservation,
    keep_for: Duration,
) -> Result<(), StoreError> {
    store.keep_reservation(build_id, kept, keep_for).await
}

pub async fn kept_reservation(
    store: &Store,
    build_id: &str,
) -> Result<Option<KeptReservation>, StoreError> {
    store.kept_reservation(build_id).await
}

pub async fn forget_reservation(store: &Store, build_id: &str) -> Result<(), StoreError> {
    store.forget_reservation(build_id).await
}
