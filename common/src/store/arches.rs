//! The parts of a multi-arch build (DESIGN.md "Architectures"), beside its record:
//!
//! - `<prefix>:arch:<build id>:<arch>`: the `ArchBuild` (protobuf) its arch job recorded;
//! - `<prefix>:arches-done:<build id>`: the set of arches whose part is recorded.
//!
//! A part and its mark are written by one script, which says whether this mark completed the
//! set: exactly one arch job of a build sees `Completed` (the one that assembles), however
//! the others race it.

use super::{Store, StoreError, redis_error};
use redis::AsyncCommands;
use std::time::Duration;

/// How long parts are kept: longer than any build (a build's assembly reads them).
pub const PARTS_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// What recording an arch's part did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartRecorded {
    /// This arch was the last of the set: the caller assembles.
    Completed,
    /// Recorded; other arches are still to come.
    Waiting,
    /// The part was recorded before (a redelivery): nothing written. `true` when the set is
    /// complete.
    AlreadyRecorded { complete: bool },
}

pub(crate) const RECORD_PART_LUA: &str = r#"
-- KEYS[1] part, KEYS[2] done set; ARGV[1] part bytes, ARGV[2] arch, ARGV[3] ttl secs,
-- ARGV[4..] every arch of the build
local function complete()
  for i = 4, #ARGV do
    if redis.call('SISMEMBER', KEYS[2], ARGV[i]) == 0 then return false end
  end
  return true
end
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 1 then
  if complete() then return 3 else return 2 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
if complete() then return 1 else return 0 end
"#;

impl Store {
    fn part_key(&self, build_id: &str, arch: &str) -> String {
        self.key(&["arch", build_id, arch])
    }

    fn done_key(&self, build_id: &str) -> String {
        self.key(&["arches-done", build_id])
    }

    /// Records `arch`'s part of build `build_id` (whose arches are `arches`) and marks it
    /// done, in one script.
    pub async fn record_arch_part(
        &self,
        build_id: &str,
        arch: &str,
        part: &[u8],
        arches: &[String],
    ) -> Result<PartRecorded, StoreError> {
        let mut invocation = self.scripts.record_part.prepare_invoke();
        invocation
            .key(self.part_key(build_id, arch))
            .key(self.done_key(build_id))
            .arg(part)
            .arg(arch)
            .arg(PARTS_TTL.as_secs());
        for each in arches {
            invocation.arg(each);
        }
        let outcome: i64 = invocation
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("record an arch part"))?;
        Ok(match outcome {
            1 => PartRecorded::Completed,
            0 => PartRecorded::Waiting,
            other => PartRecorded::AlreadyRecorded {
                complete: other == 3,
            },
        })
    }

    /// The recorded part of `arch`, if any.
    pub async fn arch_part(
        &self,
        build_id: &str,
        arch: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.connection()
            .get(self.part_key(build_id, arch))
            .await
            .map_err(redis_error("read an arch part"))
    }

    /// Whether every one of `arches` has its part recorded.
    pub async fn arches_complete(
        &self,
        build_id: &str,
        arches: &[String],
    ) -> Result<bool, StoreError> {
        let done: Vec<String> = self
            .connection()
            .smembers(self.done_key(build_id))
            .await
            .map_err(redis_error("read the arches done"))?;
        Ok(arches.iter().all(|arch| done.contains(arch)))
    }

    /// Forgets the parts of `arches` and the done set: a build orchestrated again (a replay)
    /// builds every arch again, with its new release.
    pub async fn clear_arch_parts(
        &self,
        build_id: &str,
        arches: &[String],
    ) -> Result<(), StoreError> {
        let mut keys: Vec<String> = arches
            .iter()
            .map(|arch| self.part_key(build_id, arch))
            .collect();
        keys.push(self.done_key(build_id));
        self.connection()
            .del::<_, ()>(keys)
            .await
            .map_err(redis_error("clear arch parts"))
    }
}
