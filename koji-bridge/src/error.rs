//! The crate's error: what stops the service (the per-import errors are
//! [`crate::import::ImportError`] and [`osbs_koji::KojiError`]).

use osbs_common::{BusError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot log in to the Koji hub: {0} (check [koji] hub_url and [koji.auth])")]
    Koji(#[from] osbs_koji::KojiError),
    #[error("{0}")]
    Http(std::io::Error),
    #[error("cannot read images back: {0}")]
    Registry(#[from] osbs_registry::RegistryError),
}
