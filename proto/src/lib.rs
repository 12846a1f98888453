//! The OSBS contract: the `osbs.v1` protobuf messages that travel on the internal bus, the
//! build state machine, bus names, and the JSON shape of the state events sent to outside
//! listeners.
//!
//! # Layout
//!
//! - [`v1`]: generated prost types (`BuildJob`, `BuildResult`, `BuildStateChange`, ...).
//! - [`state`]: names, parsing and the allowed transitions of [`v1::BuildState`].
//! - [`names`]: exchanges, queues, routing keys and AMQP `type` values.
//! - [`external`]: the fedora-messaging JSON body of `osbs.build.state.change`.
//! - [`secret`]: [`Secret`](secret::Secret) and [`CredentialUrl`](secret::CredentialUrl),
//!   credentials that print masked.
//!
//! This crate does no I/O and depends on no runtime: it is data and pure functions only.

pub mod external;
pub mod names;
pub mod secret;
pub mod state;

/// Generated from `osbs/v1/osbs.proto`.
#[allow(missing_debug_implementations)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/osbs.v1.rs"));
}

pub use prost::Message;
pub use v1::{BuildJob, BuildResult, BuildState, BuildStateChange};

/// Milliseconds since the Unix epoch, the unit of every `*_ms` field.
pub type UnixMillis = i64;
