//! Owner-token locks: a plain key holding its owner's token with a time to live (`SET NX PX`),
//! renewed and released only by that owner (compare the token, then act, in one script).

use super::{Store, StoreError, redis_error};
use std::time::Duration;

/// Which lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock<'a> {
    /// `<prefix>:owner:<build id>`: the worker instance running a build, renewed by its
    /// heartbeat; the first worker to take it after the owner stopped renewing takes over.
    BuildOwner(&'a str),
    /// `<prefix>:koji:lock:<build id>`: the koji-bridge importing a build.
    KojiImport(&'a str),
}

/// Extends a lock only for its holder (compare the token, then PEXPIRE).
pub(super) const RENEW_LOCK_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// Deletes a lock only for its holder.
pub(super) const RELEASE_LOCK_LUA: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)
}

impl Store {
    fn lock_key(&self, lock: Lock<'_>) -> String {
        match lock {
            Lock::BuildOwner(build_id) => self.key(&["owner", build_id]),
            Lock::KojiImport(build_id) => self.key(&["koji", "lock", build_id]),
        }
    }

    /// Takes `lock` for `token` for `ttl` unless someone holds it; `false` when someone does.
    pub async fn take_lock(
        &self,
        lock: Lock<'_>,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let reply: Option<String> = redis::cmd("SET")
            .arg(self.lock_key(lock))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.connection())
            .await
            .map_err(redis_error("take a lock"))?;
        Ok(reply.is_some())
    }

    /// Extends `lock` by `ttl` if `token` still holds it; `false` when it does not (expired,
    /// and maybe taken by someone else).
    pub async fn renew_lock(
        &self,
        lock: Lock<'_>,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let renewed: i64 = self
            .scripts
            .renew_lock
            .key(self.lock_key(lock))
            .arg(token)
            .arg(millis(ttl))
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("renew a lock"))?;
        Ok(renewed == 1)
    }

    /// Deletes `lock` if `token` still holds it.
    pub async fn release_lock(&self, lock: Lock<'_>, token: &str) -> Result<(), StoreError> {
        let _: i64 = self
            .scripts
            .release_lock
            .key(self.lock_key(lock))
            .arg(token)
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("release a lock"))?;
        Ok(())
    }
}
