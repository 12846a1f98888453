//! A test double of the Koji hub: the XML-RPC API a content generator uses, with the checks
//! of the real hub (DESIGN.md "Koji hub facts") and its fault codes and texts, so that the
//! koji-bridge and the end-to-end test can import real builds without a Koji installation.
//!
//! # Layout
//!
//! - [`config`]: [`HubConfig`] — listen address, state directory, users, content generators,
//!   tags, targets, TLS, upload API.
//! - [`server`]: the hub on the network ([`KojiHub::start`] → [`RunningHub`]): XML-RPC and
//!   fast-upload POSTs, GET → 405, TLS with client certificates, fault injection
//!   (offline, cut uploads, lost responses, stop/restart) and inspection.
//! - [`methods`]: the XML-RPC methods and the session rules (call numbers, retries).
//! - [`cg_import`]: `CGImport`'s checks, pure over the state and the upload area.
//! - [`policy`]: koji's policy rules, for the `tag` policy (none configured: all allowed).
//! - [`state`]: everything the hub holds, persisted to `state.json`.
//! - [`rpc`], [`fault`], [`digest`], [`nvr`]: the wire format, faults, checksums, NVR rules.
//! - [`tls`]: server TLS and a throw-away PKI for tests.
//!
//! Not a Koji: no database, no rpm imports, no policies but `tag`, no builders beyond the one
//! that runs `tagBuild` tasks. Its answers were checked against koji's own hub (see the
//! crate's README.md).

pub mod cg_import;
pub mod config;
pub mod digest;
pub mod fault;
pub mod methods;
pub mod nvr;
pub mod policy;
pub mod rpc;
pub mod server;
pub mod state;
pub mod tls;

pub use config::{HubConfig, TagSpec, TargetSpec, TlsFiles, UserSpec};
pub use fault::Fault;
pub use server::{HubError, KojiHub, RunningHub};
pub use state::{Archive, Build, HubState};
pub use tls::TestPki;
