//! The crate's error: what can stop the dispatcher from starting or running.

use crate::config::RoutingError;
use crate::dispatch::DispatchError;
use osbs_common::{BusError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Routing(#[from] RoutingError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    #[error(transparent)]
    Http(#[from] std::io::Error),
    #[error("the dispatcher's consumer task failed: {0}")]
    Task(String),
}
