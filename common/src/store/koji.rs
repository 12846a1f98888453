//! The koji-bridge's key beside the build records: `<prefix>:koji:import:<build id>`, a hash
//! recording what a finished import produced (kind, koji_build_id, nvr, tag, dir, published),
//! so that a duplicate result is acknowledged without touching Koji and a crash between the
//! import and its state event resumes at the event. Its lock is [`super::Lock::KojiImport`].

use super::{Store, StoreError, redis_error};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::time::Duration;

/// How long the marker of a finished import is kept (replays come within this time).
pub const IMPORT_MARKER_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// What a finished import produced, as recorded in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportMarker {
    /// `hub` or `bundle`.
    pub kind: String,
    pub koji_build_id: i64,
    pub nvr: String,
    pub tag: String,
    pub dir: String,
    /// The `imported` state change is recorded and announced.
    pub published: bool,
}

impl ImportMarker {
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", self.kind.clone()),
            ("koji_build_id", self.koji_build_id.to_string()),
            ("nvr", self.nvr.clone()),
            ("tag", self.tag.clone()),
            ("dir", self.dir.clone()),
            ("published", if self.published { "1" } else { "0" }.into()),
        ]
    }

    fn from_hash(hash: &HashMap<String, String>) -> ImportMarker {
        let get = |name: &str| hash.get(name).cloned().unwrap_or_default();
        ImportMarker {
            kind: get("kind"),
            koji_build_id: get("koji_build_id").parse().unwrap_or(0),
            nvr: get("nvr"),
            tag: get("tag"),
            dir: get("dir"),
            published: get("published") == "1",
        }
    }
}

impl Store {
    /// The marker of `build_id`'s finished import, if any.
    pub async fn import_marker(&self, build_id: &str) -> Result<Option<ImportMarker>, StoreError> {
        let hash: HashMap<String, String> = self
            .connection()
            .hgetall(self.key(&["koji", "import", build_id]))
            .await
            .map_err(redis_error("read an import marker"))?;
        Ok((!hash.is_empty()).then(|| ImportMarker::from_hash(&hash)))
    }

    /// Records what `build_id`'s import produced, for [`IMPORT_MARKER_TTL`].
    pub async fn mark_import(
        &self,
        build_id: &str,
        marker: &ImportMarker,
    ) -> Result<(), StoreError> {
        let key = self.key(&["koji", "import", build_id]);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(&key, &marker.fields())
            .ignore()
            .expire(&key, IMPORT_MARKER_TTL.as_secs() as i64)
            .ignore();
        pipe.query_async::<()>(&mut self.connection())
            .await
            .map_err(redis_error("write an import marker"))
    }
}
