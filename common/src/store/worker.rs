//! The worker's keys, beside the build records:
//!
//! - `<prefix>:releases:<name>:<version>`: the set of releases held by builds in flight for
//!   that name-version. `SADD` is atomic, so two builds can never hold the same release; a
//!   build removes its release when it ends; the set expires as a safety net for workers that
//!   die without cleaning up.
//! - `<prefix>:released:<name>:<version>`: without a Koji hub, the releases of that
//!   name-version pushed by any build, whatever its registry repository: the stand-in for
//!   the builds Koji would hold, so that the next release is unique per name-version. Kept
//!   without expiry, as Koji keeps its builds.
//! - `<prefix>:result:<build_id>`: the final `BuildResult` (protobuf) of a build, kept so that
//!   a worker that died between recording the end and publishing it can be followed by one
//!   that publishes it.
//! - `<prefix>:reservation:<build_id>`: the release (and Koji reservation) a build holds, so
//!   that the attempt that takes a build over (or runs it after a drain) reuses them.
//!
//! Ownership of a running build is a lock ([`super::Lock::BuildOwner`]).

use super::{Store, StoreError, redis_error};
use redis::AsyncCommands;
use std::time::Duration;

/// What the store's operations answer.
type Answer<T> = Result<T, StoreError>;

/// How long a build's final result is kept for a late publication.
pub const RESULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The release a build holds, and its Koji reservation (`koji_build_id` 0: none).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeptReservation {
    pub name: String,
    pub version: String,
    pub release: String,
    pub koji_build_id: i64,
    pub koji_token: String,
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl Store {
    fn release_set(&self, name: &str, version: &str) -> String {
        self.key(&["releases", name, version])
    }

    fn pushed_set(&self, name: &str, version: &str) -> String {
        self.key(&["released", name, version])
    }

    async fn add_member(&self, set: String, member: &str, doing: &'static str) -> Answer<()> {
        self.connection()
            .sadd(set, member)
            .await
            .map_err(redis_error(doing))
    }

    async fn remove_member(&self, set: String, member: &str, doing: &'static str) -> Answer<()> {
        self.connection()
            .srem(set, member)
            .await
            .map_err(redis_error(doing))
    }

    async fn members(&self, set: String, doing: &'static str) -> Answer<Vec<String>> {
        self.connection()
            .smembers(set)
            .await
            .map_err(redis_error(doing))
    }

    /// Holds `release` of `name-version` for a build in flight; `false` if another build
    /// holds it. `keep_for` bounds how long a forgotten hold lives.
    pub async fn hold_release(
        &self,
        name: &str,
        version: &str,
        release: &str,
        keep_for: Duration,
    ) -> Result<bool, StoreError> {
        let key = self.release_set(name, version);
        let (added, _): (i64, bool) = redis::pipe()
            .sadd(&key, release)
            .expire(&key, seconds(keep_for))
            .query_async(&mut self.connection())
            .await
            .map_err(redis_error("hold a release"))?;
        Ok(added == 1)
    }

    /// Lets go of a release when the build ends.
    pub async fn free_release(&self, name: &str, version: &str, release: &str) -> Answer<()> {
        self.remove_member(self.release_set(name, version), release, "free a release")
            .await
    }

    /// Releases of `name-version` held by builds in flight.
    pub async fn held_releases(&self, name: &str, version: &str) -> Answer<Vec<String>> {
        self.members(self.release_set(name, version), "read held releases")
            .await
    }

    /// Without a hub: records that `release` of `name-version` was pushed.
    pub async fn record_release(&self, name: &str, version: &str, release: &str) -> Answer<()> {
        let key = self.pushed_set(name, version);
        self.add_member(key, release, "record a pushed release")
            .await
    }

    /// Without a hub: the releases of `name-version` pushed so far.
    pub async fn recorded_releases(&self, name: &str, version: &str) -> Answer<Vec<String>> {
        self.members(self.pushed_set(name, version), "read pushed releases")
            .await
    }

    /// Keeps a build's final result (protobuf bytes) for [`RESULT_TTL`].
    pub async fn keep_result(&self, build_id: &str, result: &[u8]) -> Result<(), StoreError> {
        self.connection()
            .set_ex::<_, _, ()>(
                self.key(&["result", build_id]),
                result,
                RESULT_TTL.as_secs(),
            )
            .await
            .map_err(redis_error("keep a result"))
    }

    /// The kept final result of a build, if any.
    pub async fn kept_result(&self, build_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.connection()
            .get(self.key(&["result", build_id]))
            .await
            .map_err(redis_error("read a kept result"))
    }

    pub async fn keep_reservation(
        &self,
        build_id: &str,
        kept: &KeptReservation,
        keep_for: Duration,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(kept).expect("a plain struct serializes");
        self.connection()
            .set_ex::<_, _, ()>(
                self.key(&["reservation", build_id]),
                json,
                keep_for.as_secs(),
            )
            .await
            .map_err(redis_error("keep a reservation"))
    }

    pub async fn kept_reservation(
        &self,
        build_id: &str,
    ) -> Result<Option<KeptReservation>, StoreError> {
        let json: Option<String> = self
            .connection()
            .get(self.key(&["reservation", build_id]))
            .await
            .map_err(redis_error("read a kept reservation"))?;
        Ok(json.and_then(|json| serde_json::from_str(&json).ok()))
    }

    pub async fn forget_reservation(&self, build_id: &str) -> Result<(), StoreError> {
        self.connection()
            .del::<_, ()>(self.key(&["reservation", build_id]))
            .await
            .map_err(redis_error("forget a reservation"))
    }
}
