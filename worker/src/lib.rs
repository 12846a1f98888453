//! The OSBS build worker (WIP layout; see the final tour below once complete).

pub mod adapters;
pub mod buildlog;
pub mod config;
pub mod context;
pub mod error;
pub mod inspect;
pub mod lease;
pub mod plan;
pub mod release;
pub mod report;
pub mod source;
