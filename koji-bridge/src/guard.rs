//! Exactly once, across redeliveries and bridges: a Redis lock per OSBS build (one bridge
//! imports it at a time; the others wait, then find it done) and a marker of what the import
//! produced (so a duplicate is acknowledged without touching Koji, and a crash between the
//! import and the state event resumes at the event). Koji's own NVR checks and
//! [`crate::import`]'s recognition of its earlier imports cover what Redis cannot (a lost
//! marker, a flushed Redis).
//!
//! Keys: `<prefix>:koji:lock:<build id>` (owner token, with a TTL renewed while importing),
//! `<prefix>:koji:import:<build id>` (hash: kind, koji_build_id, nvr, tag, dir, published).

use osbs_common::store::{Store, StoreError};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the marker of a finished import is kept (replays come within this time).
pub const MARKER_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

fn redis_error(operation: &'static str) -> impl FnOnce(redis::RedisError) -> StoreError {
    move |source| StoreError::Redis { operation, source }
}

/// What a finished import produced, as recorded in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Marker {
    /// `hub` or `bundle`.
    pub kind: String,
    pub koji_build_id: i64,
    pub nvr: String,
    pub tag: String,
    pub dir: String,
    /// The `imported` state change is out.
    pub published: bool,
}

impl Marker {
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

    fn from_hash(hash: &HashMap<String, String>) -> Marker {
        let get = |name: &str| hash.get(name).cloned().unwrap_or_default();
        Marker {
            kind: get("kind"),
            koji_build_id: get("koji_build_id").parse().unwrap_or(0),
            nvr: get("nvr"),
            tag: get("tag"),
            dir: get("dir"),
            published: get("published") == "1",
        }
    }
}

/// Locks and markers in the shared Redis.
#[derive(Debug, Clone)]
pub struct Guard {
    store: Store,
    ttl: Duration,
}

/// The right to import one build; renewed in the background until released.
#[derive(Debug)]
pub struct ImportLock {
    store: Store,
    key: String,
    token: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Guard {
    pub fn new(store: Store, ttl: Duration) -> Guard {
        Guard { store, ttl }
    }

    fn lock_key(&self, build_id: &str) -> String {
        self.store.key(&["koji", "lock", build_id])
    }

    fn marker_key(&self, build_id: &str) -> String {
        self.store.key(&["koji", "import", build_id])
    }

    /// The marker of `build_id`'s finished import, if any.
    pub async fn marker(&self, build_id: &str) -> Result<Option<Marker>, StoreError> {
        let hash: HashMap<String, String> = self
            .store
            .connection()
            .hgetall(self.marker_key(build_id))
            .await
            .map_err(redis_error("hgetall"))?;
        Ok((!hash.is_empty()).then(|| Marker::from_hash(&hash)))
    }

    /// Records what `build_id`'s import produced.
    pub async fn mark(&self, build_id: &str, marker: &Marker) -> Result<(), StoreError> {
        let key = self.marker_key(build_id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(&key, &marker.fields())
            .ignore()
            .expire(&key, MARKER_TTL.as_secs() as i64)
            .ignore();
        pipe.query_async::<()>(&mut self.store.connection())
            .await
            .map_err(redis_error("hset"))
    }

    /// Takes the lock of `build_id`, waiting while another bridge holds it. `None` when
    /// `shutdown` comes first.
    pub async fn acquire(
        &self,
        build_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<ImportLock>, StoreError> {
        let key = self.lock_key(build_id);
        let token = uuid::Uuid::new_v4().to_string();
        let mut waited = false;
        loop {
            let taken: bool = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl.as_millis() as u64)
                .query_async::<Option<String>>(&mut self.store.connection())
                .await
                .map_err(redis_error("set nx"))?
                .is_some();
            if taken {
                let renewer = self.spawn_renewer(key.clone(), token.clone());
                return Ok(Some(ImportLock {
                    store: self.store.clone(),
                    key,
                    token,
                    renewer,
                }));
            }
            if !waited {
                tracing::info!(
                    build_id,
                    "another bridge is importing this build; waiting for it"
                );
                waited = true;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(None),
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    fn spawn_renewer(&self, key: String, token: String) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let ttl = self.ttl;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store.renew_lock(&key, &token, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(lock = %key, "the import lock expired while held (Redis unreachable too long?): another bridge may import the same build; Koji's NVR checks still stop a second build");
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(lock = %key, error = %error, "cannot renew the import lock; trying again");
                    }
                }
            }
        })
    }
}

impl ImportLock {
    /// Gives the lock up (only if still ours).
    pub async fn release(self) {
        self.renewer.abort();
        if let Err(error) = self.store.release_lock(&self.key, &self.token).await {
            tracing::warn!(lock = %self.key, error = %error, "cannot release the import lock; it expires by itself");
        }
    }
}

impl Drop for ImportLock {
    fn drop(&mut self) {
        // Dropped without release (a task aborted at shutdown): stop renewing, let it expire.
        self.renewer.abort();
    }
}
