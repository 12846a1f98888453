//! The koji-bridge: turns each finished OSBS build into a Koji build — content-generator
//! metadata, its logs and image archive uploaded, `CGImport`, tagged — exactly once; refunds
//! the NVR reservations of builds that failed; writes import bundles when no hub is set.
//! It speaks to the hub through osbs-koji's client ([`osbs_koji::KojiClient`]).
//!
//! # Layout
//!
//! - [`config`]: `[koji]` ([`KojiSection`]: the hub's [`osbs_koji::KojiConfig`] and the
//!   service's knobs).
//! - [`metadata`]: pure — metadata v0 from a `BuildResult`, and the hub's checks run early.
//! - [`archive`]: the `docker save` archive of the pushed image, streamed from its registry
//!   (read through osbs-registry, with `[koji] registry_auth`).
//! - [`import`]: one import (or bundle, or refund), safe to run again.
//! - [`guard`]: the Redis lock and marker that make imports happen once.
//! - [`service`]: the AMQP consumer: decisions, records, state events, acks.
//!
//! Invariants: no Koji credential, session key or reservation token reaches a log line;
//! a result is acknowledged only after its outcome is recorded and published; one OSBS
//! build gives at most one Koji build.

pub mod archive;
pub mod bundle;
pub mod config;
pub mod error;
pub mod guard;
pub mod import;
pub mod metadata;
pub mod service;

pub use config::{BridgeConfig, KojiSection};
pub use error::BridgeError;
pub use service::run;

/// What `osbs_common::service::main` needs of the configuration.
impl osbs_common::service::ServiceConfig for BridgeConfig {
    fn telemetry(&self) -> &osbs_common::config::TelemetryConfig {
        &self.telemetry
    }
}
