//! The OSBS dispatcher: where build events become build jobs.
//!
//! It consumes `osbs.events` (fedora-messaging events bound from `amq.topic`: dist-git pushes
//! `git.receive` and explicit requests `osbs.build.request`), validates them, maps repository
//! and branch to a target, de-duplicates, coalesces the pushes of a branch, records the build
//! in Redis and enqueues a `BuildJob` on `osbs.jobs`.
//!
//! # Layout
//!
//! - [`events`]: the JSON shapes of both events (serde types), and [`BuildRequest`] for
//!   publishers.
//! - [`rules`]: DESIGN.md's validation rules as pure functions.
//! - [`config`]: `[dispatcher]` and its checked form [`Routing`].
//! - [`decide`]: event bytes + headers + routing + now → [`Decision`]. Pure; every rule is
//!   unit-tested there.
//! - [`build_id`]: short, sortable build ids.
//! - [`dispatch`]: carries out a decision against Redis and RabbitMQ, then settles the
//!   delivery (ack, dead-letter, requeue).
//! - [`service`]: [`run`] / [`start`]: topology, consumer with lanes, health and metrics.
//! - [`client`]: [`publish_build_request`] and [`request_outcome`] for the CLI.
//!
//! Its Redis keys (message ids, branch tips, request outcomes) are named operations of
//! `osbs_common::store` (`store::dispatch`); its state changes go through
//! `osbs_common::state::change`.

pub mod build_id;
pub mod client;
pub mod config;
pub mod decide;
pub mod dispatch;
pub mod error;
pub mod events;
pub mod rules;
pub mod service;

#[cfg(test)]
mod testing;

pub use client::{publish_build_request, request_outcome};
pub use config::{Config, DispatcherConfig, Routing, TargetOverrides, TargetSettings};
pub use decide::{Decision, Incoming, Plan, decide};
pub use error::Error;
pub use events::{BuildRequest, BuildRequestOptions, CommitV1Body, LegacyBody};
pub use osbs_common::store::RequestOutcome;
pub use service::{Running, run, start};
