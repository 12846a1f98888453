//! Exactly once, across redeliveries and bridges: a Redis lock per OSBS build (one bridge
//! imports it at a time; the others wait, then find it done) and a marker of what the import
//! produced (so a duplicate is acknowledged without touching Koji, and a crash between the
//! import and the state event resumes at the event). Koji's own NVR checks and
//! [`crate::import`]'s recognition of its earlier imports cover what Redis cannot (a lost
//! marker, a flushed Redis).
//!
//! Both are the store's named operations (`osbs_common::store::koji`, `Lock::KojiImport`).

use osbs_common::store::{Lock, Store, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use osbs_common::store::ImportMarker as Marker;

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
    build_id: String,
    token: String,
    renewer: tokio::task::JoinHandle<()>,
}

impl Guard {
    pub fn new(store: Store, ttl: Duration) -> Guard {
        Guard { store, ttl }
    }

    /// The marker of `build_id`'s finished import, if any.
    pub async fn marker(&self, build_id: &str) -> Result<Option<Marker>, StoreError> {
        self.store.import_marker(build_id).await
    }

    /// Records what `build_id`'s import produced.
    pub async fn mark(&self, build_id: &str, marker: &Marker) -> Result<(), StoreError> {
        self.store.mark_import(build_id, marker).await
    }

    /// Takes the lock of `build_id`, waiting while another bridge holds it. `None` when
    /// `shutdown` comes first.
    pub async fn acquire(
        &self,
        build_id: &str,
        shutdown: &CancellationToken,
    ) -> Result<Option<ImportLock>, StoreError> {
        let token = uuid::Uuid::new_v4().to_string();
        let mut waited = false;
        loop {
            let taken = self
                .store
                .take_lock(Lock::KojiImport(build_id), &token, self.ttl)
                .await?;
            if taken {
                let renewer = self.spawn_renewer(build_id.to_owned(), token.clone());
                return Ok(Some(ImportLock {
                    store: self.store.clone(),
                    build_id: build_id.to_owned(),
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

    fn spawn_renewer(&self, build_id: String, token: String) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let ttl = self.ttl;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store
                    .renew_lock(Lock::KojiImport(&build_id), &token, ttl)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(
                            build_id,
                            "the import lock expired while held (Redis unreachable too long?): another bridge may import the same build; Koji's NVR checks still stop a second build"
                        );
                        return;
                    }
                    Err(error) => {
                        tracing::warn!(build_id, error = %error, "cannot renew the import lock; trying again");
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
        if let Err(error) = self
            .store
            .release_lock(Lock::KojiImport(&self.build_id), &self.token)
            .await
        {
            tracing::warn!(build_id = %self.build_id, error = %error, "cannot release the import lock; it expires by itself");
        }
    }
}

impl Drop for ImportLock {
    fn drop(&mut self) {
        // Dropped without release (a task aborted at shutdown): stop renewing, let it expire.
        self.renewer.abort();
    }
}
