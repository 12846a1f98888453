//! The Koji hub adapter, through osbs-koji's client: the build target (`getBuildTarget`),
//! the next release of a name-version (`getNextRelease`) and NVR reservations
//! (`CGInitBuild`). The session is
//! opened on first use, so a hub that is down delays builds that need it rather than the
//! worker's start.

use crate::error::WorkerError;
use osbs_koji::{KojiClient, KojiConfig, KojiError, Reservation, fault};
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

fn infrastructure(error: KojiError) -> WorkerError {
    WorkerError::Koji(error)
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

    /// Whether the hub has the build target `name`.
    pub async fn has_target(&self, name: &str) -> Result<bool, WorkerError> {
        self.client()
            .await?
            .get_build_target(name)
            .await
            .map(|target| target.is_some())
            .map_err(infrastructure)
    }

    /// The hub's answer to `getNextRelease` for `name-version`, as is (the pipeline patches
    /// it).
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
            Err(error) => match error.fault_that(fault::means_taken) {
                Some(text) => Ok(Reserve::Taken(text.to_owned())),
                None => Err(infrastructure(error)),
            },
        }
    }
}
