//! The OSBS contract: the `osbs.v1` protobuf messages that travel on the internal bus, the
//! build state machine, bus names, the JSON shapes of the events taken in, and the JSON state
//! event every listener reads.
//!
//! # Layout
//!
//! - [`arch`]: architecture names, Koji's and the engine's.
//! - [`v1`]: generated prost types (`BuildJob`, `BuildResult`, ...).
//! - [`state`]: names, parsing and the allowed transitions of [`v1::BuildState`].
//! - [`names`]: exchanges, queues, routing keys and AMQP `type` values.
//! - [`events`]: the JSON bodies of the events in: the dist-git push (`git.receive`) and the
//!   explicit build request (`osbs.build.request`).
//! - [`external`]: [`StateEvent`], the fedora-messaging JSON body of
//!   `osbs.build.state.change`: how a state change is announced, and how it is read back.
//! - [`secret`]: [`Secret`](secret::Secret) and [`CredentialUrl`](secret::CredentialUrl),
//!   credentials that print masked.
//! - [`text`]: text from elsewhere made fit for one header or log line.
//!
//! This crate does no I/O and depends on no runtime: it is data and pure functions only.

pub mod arch;
pub mod events;
pub mod external;
pub mod names;
pub mod secret;
pub mod state;
pub mod text;

/// Generated from `osbs/v1/osbs.proto`.
#[allow(missing_debug_implementations)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/osbs.v1.rs"));
}

pub use external::StateEvent;
pub use prost::Message;
pub use v1::{BuildJob, BuildResult, BuildState};

/// Milliseconds since the Unix epoch, the unit of every `*_ms` field.
pub type UnixMillis = i64;
