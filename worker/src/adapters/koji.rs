//! The Koji hub adapter, through osbs-koji-bridge's client: the next release of a
//! name-version (`getNextRelease`) and NVR reservations (`CGInitBuild`). The session is
//! opened on first use, so a hub that is down delays builds that need it rather than the
//! worker's start.

use crate::error::WorkerError;
use osbs_koji_bridge::KojiConfig;
use osbs_koji_bridge::koji::{KojiClient, KojiError, Reservation};
use tokio::sync::OnceCell;

/// What `CGInitBuild` said.
#[derive(Debug)]
pub enum Reserve {
    Reserved(Reservation),
    /// The NVR exists or is reserved already (the hub's fault text).
    Taken(String),
}

/// A hub session shared by the builds of this worker (its calls go one at a time).
#[derive(Debug)]
pub struct Koji {
    config: KojiConfig,
    client: OnceCell<KojiClient>,
}

/// The hub's words for "this NVR is not free".
pub fn means_taken(fault_text: &str) -> bool {
    fault_text.contains("already exists") || fault_text.contains("already reserved")
}

fn infrastructure(error: KojiError) -> WorkerError {
    WorkerError::Infrastructure(osbs_common::bus::one_line(&error.to_string(), 500))
}

impl Koji {
    /// `None` when no hub is configured (`[koji] hub_url` empty).
    pub fn new(config: &KojiConfig) -> Option<Koji> {
        config.has_hub().then(|| Koji {
            config: config.clone(),
            client: OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<&KojiClient, WorkerError> {
        self.client
            .get_or_try_init(|| KojiClient::connect(&self.config))
            .await
            .map_err(infrastructure)
    }

    /// The release after the newest build of `name-version` the hub has.
    pub async fn next_release(&self, name: &str, version: &str) -> Result<String, WorkerError> {
        self.client()
            .await?
            .get_next_release(name, version)
            .await
            .map_err(infrastructure)
    }

    /// Reserves `name-version-release` for this content generator.
    pub async fn reserve(
        &self,
        name: &str,
        version: &str,
        release: &str,
    ) -> Result<Reserve, WorkerError> {
        match self
            .client()
            .await?
            .cg_init_build(name, version, release)
            .await
        {
            Ok(reservation) => Ok(Reserve::Reserved(reservation)),
            Err(error) => match error.fault() {
                Some((_, text)) if means_taken(text) => Ok(Reserve::Taken(text.to_owned())),
                _ => Err(infrastructure(error)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_faults() {
        assert!(means_taken("Build already exists (id=3, state=1): app-1-1"));
        assert!(means_taken("Build is already reserved"));
        assert!(!means_taken("Insufficient privileges"));
    }
}
