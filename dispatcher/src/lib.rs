//! The OSBS dispatcher: where build events become build jobs.
//!
//! It consumes `osbs.events` (fedora-messaging events bound from `amq.topic`: dist-git pushes
//! `git.receive` and explicit requests `osbs.build.request`), validates them, maps repository
//! and branch to a target, de-duplicates, coalesces the pushes of a branch, records the build
//! in Redis and enqueues a `BuildJob` on `osbs.jobs`.
//!
//! # Layout
//!
//! - The JSON shapes of both events are the contract's: [`osbs_proto::events`] (re-exported
//!   here as [`CommitV1Body`], [`LegacyBody`], [`BuildRequest`]).
//! - [`rules`]: DESIGN.md's validation rules as pure functions.
//! - [`config`]: `[dispatcher]` and its checked form [`Routing`].
//! - [`decide`]: event bytes + headers + routing + now → [`Decision`]. Pure; every rule is
//!   unit-tested there.
//! - [`tip`]: a push against its branch's head in dist-git → build it, build the tip instead
//!   (the pushed commit is recorded superseded), or nothing (a tag, a deleted branch). Pure;
//!   [`distgit`] is the adapter asking dist-git (`git ls-remote`).
//! - [`build_id`]: short, sortable build ids.
//! - [`dispatch`]: carries out a decision against Redis and RabbitMQ, then settles the
//!   delivery (ack, dead-letter, requeue).
//! - [`service`]: [`run`] / [`start`]: topology, consumer with lanes, health and metrics.
//!
//! Its Redis keys (message ids, branch tips, request outcomes) are named operations of
//! `osbs_common::store` (`store::dispatch`); its state changes go through
//! `osbs_common::state::change`. The CLI publishes its requests itself and reads their
//! outcome with `Store::request_outcome`.

pub mod acks;
pub mod build_id;
pub mod config;
pub mod decide;
pub mod dispatch;
pub mod distgit;
pub mod error;
pub mod rules;
pub mod service;
pub mod tip;

#[cfg(test)]
mod testing;

pub use config::{Config, DispatcherConfig, Routing, TargetOverrides, TargetSettings};
pub use decide::{Decision, Incoming, Plan, decide};
pub use error::Error;
pub use osbs_common::store::RequestOutcome;
pub use osbs_proto::events::{BuildRequest, BuildRequestOptions, CommitV1Body, LegacyBody};
pub use service::{Running, run, start};

/// What `osbs_common::service::main` needs of the configuration.
impl osbs_common::service::ServiceConfig for Config {
    fn telemetry(&self) -> &osbs_common::config::TelemetryConfig {
        &self.telemetry
    }

    fn runtime_threads(&self) -> Option<usize> {
        self.dispatcher.threads()
    }
}
