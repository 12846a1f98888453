//! The listing index: sorted sets of build ids scored by creation time, one of every build
//! (`<prefix>:builds`) and one per value of each filter (`<prefix>:builds:by:<dimension>:<value>`
//! for repository, branch, target, submitter and state), so that a page of builds newest
//! first, filtered on any of them, costs one script and one pipeline whatever the number of
//! builds recorded. Records' creation adds to them and state changes move the id between the
//! state sets, in the same scripts that write the record ([`super::Store::create`],
//! [`super::Store::recreate`], [`crate::state::change`]); [`Store::index_listing`] adds records made before the index.

use super::{BuildRecord, Store, StoreError, field, redis_error};
use osbs_proto::v1::{BuildJob, BuildState};
use redis::AsyncCommands;
use std::collections::HashMap;

/// A filter the index keeps a set per value of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    Repo,
    Branch,
    Target,
    Submitter,
    State,
}

impl Dimension {
    pub const ALL: [Dimension; 5] = [
        Dimension::Repo,
        Dimension::Branch,
        Dimension::Target,
        Dimension::Submitter,
        Dimension::State,
    ];

    /// The record field it indexes.
    pub fn field(self) -> &'static str {
        match self {
            Dimension::Repo => field::REPO,
            Dimension::Branch => field::BRANCH,
            Dimension::Target => field::TARGET,
            Dimension::Submitter => field::SUBMITTER,
            Dimension::State => field::STATE,
        }
    }
}

/// One page of builds, newest first: every filter set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub repo: Option<String>,
    pub branch: Option<String>,
    pub target: Option<String>,
    pub submitter: Option<String>,
    pub state: Option<BuildState>,
    /// Builds skipped (newest first).
    pub offset: usize,
    /// Builds on the page (at least 1).
    pub limit: usize,
}

impl ListQuery {
    /// The filters that are set, as (dimension, value).
    pub fn filters(&self) -> Vec<(Dimension, String)> {
        [
            (Dimension::Repo, self.repo.clone()),
            (Dimension::Branch, self.branch.clone()),
            (Dimension::Target, self.target.clone()),
            (Dimension::Submitter, self.submitter.clone()),
            (
                Dimension::State,
                self.state.map(|state| state.name().to_owned()),
            ),
        ]
        .into_iter()
        .filter_map(|(dimension, value)| Some((dimension, value.filter(|v| !v.is_empty())?)))
        .collect()
    }
}

/// What [`Store::list_page`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// Builds matching the filters, all pages together.
    pub total: u64,
    pub records: Vec<BuildRecord>,
}

/// KEYS[1] scratch key, KEYS[2..] the sets to intersect (one: read as it is).
/// ARGV[1] offset, ARGV[2] limit. Returns {total, {ids newest first}}.
pub(crate) const PAGE_LUA: &str = r#"
local source = KEYS[2]
if #KEYS > 2 then
  -- unpack() expands only as the last argument: build the whole argument list.
  local args = {'ZINTERSTORE', KEYS[1], #KEYS - 1}
  for i = 2, #KEYS do args[#args + 1] = KEYS[i] end
  args[#args + 1] = 'AGGREGATE'
  args[#args + 1] = 'MAX'
  redis.call(unpack(args))
  source = KEYS[1]
end
local first = tonumber(ARGV[1])
local total = redis.call('ZCARD', source)
local ids = redis.call('ZREVRANGE', source, first, first + tonumber(ARGV[2]) - 1)
if #KEYS > 2 then redis.call('DEL', KEYS[1]) end
return {total, ids}
"#;

/// The (dimension, value) of each set a record of `job` in `state` belongs to, besides
/// `<prefix>:builds`.
fn sets_of(job: &BuildJob, state: BuildState) -> [(Dimension, &str); 5] {
    let target = job.target.as_ref().map(|t| t.name.as_str()).unwrap_or("");
    [
        (Dimension::Repo, job.repo.as_str()),
        (Dimension::Branch, job.branch.as_str()),
        (Dimension::Target, target),
        (Dimension::Submitter, job.submitter.as_str()),
        (Dimension::State, state.name()),
    ]
}

/// The parts of the key of the set of records whose `dimension` is `value`.
pub(crate) fn key_parts(dimension: Dimension, value: &str) -> [&str; 4] {
    ["builds", "by", dimension.field(), value]
}

/// [`sets_of`] a new queued record.
pub(crate) fn new_record_sets(job: &BuildJob) -> [(Dimension, &str); 5] {
    sets_of(job, BuildState::Queued)
}

/// Version of the index layout: [`Store::index_listing`] runs once per version.
const INDEX_VERSION: &str = "1";

impl Store {
    /// The set of builds whose `dimension` is `value`.
    pub(crate) fn listing_key(&self, dimension: Dimension, value: &str) -> String {
        self.key(&key_parts(dimension, value))
    }

    /// The prefix of the state sets; the state change script appends the state's name.
    pub(crate) fn listing_state_prefix(&self) -> String {
        self.key(&["builds", "by", field::STATE, ""])
    }

    /// The sets a record of `job` in `state` belongs to, besides `<prefix>:builds`.
    pub(crate) fn listing_keys_of(&self, job: &BuildJob, state: BuildState) -> Vec<String> {
        sets_of(job, state)
            .into_iter()
            .map(|(dimension, value)| self.listing_key(dimension, value))
            .collect()
    }

    /// One page of builds, newest first, matching every filter of `query`.
    pub async fn list_page(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        let limit = query.limit.max(1);
        let mut invocation = self.scripts.page.prepare_invoke();
        let scratch = format!("{}:{}", self.key(&["tmp", "page"]), uuid::Uuid::new_v4());
        invocation.key(scratch);
        let filters = query.filters();
        if filters.is_empty() {
            invocation.key(self.key(&["builds"]));
        }
        for (dimension, value) in &filters {
            invocation.key(self.listing_key(*dimension, value));
        }
        let (total, ids): (u64, Vec<String>) = invocation
            .arg(query.offset)
            .arg(limit)
            .invoke_async(&mut self.connection())
            .await
            .map_err(redis_error("list page"))?;
        let mut records = self.get_many(&ids).await?;
        // An index entry written while `index_listing` raced a state change may be stale:
        // the record decides.
        if let Some(state) = query.state {
            records.retain(|record| record.state == state);
        }
        Ok(ListPage { total, records })
    }

    /// The records of `ids`, in their order, in one round trip; missing ones are skipped.
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<BuildRecord>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.key(&["build", id]));
        }
        let hashes: Vec<HashMap<String, Vec<u8>>> = pipe
            .query_async(&mut self.connection())
            .await
            .map_err(redis_error("hgetall"))?;
        ids.iter()
            .zip(hashes)
            .filter(|(_, hash)| !hash.is_empty())
            .map(|(id, hash)| BuildRecord::from_hash(id, hash))
            .collect()
    }

    /// Adds every record listed in `<prefix>:builds` to the filter sets, once per index
    /// version (records created before the index existed); returns how many were indexed (0
    /// when it was done already). Safe to run while services write: adding is idempotent,
    /// and a state set entry made stale by a concurrent change is dropped by
    /// [`Store::list_page`]'s check.
    pub async fn index_listing(&self) -> Result<u64, StoreError> {
        let marker = self.key(&["builds", "indexed"]);
        let mut connection = self.connection();
        let done: Option<String> = connection.get(&marker).await.map_err(redis_error("get"))?;
        if done.as_deref() == Some(INDEX_VERSION) {
            return Ok(0);
        }
        const CHUNK: isize = 1000;
        let mut start = 0isize;
        let mut indexed = 0u64;
        loop {
            let ids: Vec<(String, f64)> = connection
                .zrange_withscores(self.key(&["builds"]), start, start + CHUNK - 1)
                .await
                .map_err(redis_error("zrange"))?;
            if ids.is_empty() {
                break;
            }
            start += CHUNK;
            let mut read = redis::pipe();
            for (id, _) in &ids {
                read.cmd("HMGET")
                    .arg(self.key(&["build", id]))
                    .arg(&Dimension::ALL.map(Dimension::field)[..]);
            }
            let values: Vec<Vec<Option<String>>> = read
                .query_async(&mut connection)
                .await
                .map_err(redis_error("hmget"))?;
            let mut write = redis::pipe();
            for ((id, score), values) in ids.iter().zip(values) {
                for (dimension, value) in Dimension::ALL.into_iter().zip(values) {
                    if let Some(value) = value {
                        write
                            .zadd(self.listing_key(dimension, &value), id, *score)
                            .ignore();
                    }
                }
                indexed += 1;
            }
            write
                .query_async::<()>(&mut connection)
                .await
                .map_err(redis_error("zadd"))?;
        }
        connection
            .set::<_, _, ()>(&marker, INDEX_VERSION)
            .await
            .map_err(redis_error("set"))?;
        Ok(indexed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_filters_set_are_intersected() {
        let query = ListQuery {
            repo: Some("httpd".into()),
            branch: Some(String::new()),
            state: Some(BuildState::Failed),
            ..Default::default()
        };
        assert_eq!(
            query.filters(),
            vec![
                (Dimension::Repo, "httpd".to_owned()),
                (Dimension::State, "failed".to_owned())
            ]
        );
        assert!(ListQuery::default().filters().is_empty());
    }
}
