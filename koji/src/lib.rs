//! The Koji hub client: the one place OSBS speaks Koji's XML-RPC. The worker reserves and
//! refunds releases through it; the koji-bridge imports builds through it.
//!
//! # Layout
//!
//! - [`config`]: `[koji]`, the hub part ([`KojiConfig`]: URL, auth, CG name, timeouts).
//! - [`xmlrpc`]: the wire format, pure: calls with koji's keyword arguments, answers and
//!   faults (dxr).
//! - [`client`]: [`KojiClient`], one hub session: session headers and call numbers, logins
//!   (`login`, `sslLogin`) and logging in again when the hub lost the session, retries of
//!   read-only calls, typed faults ([`KojiError`]), and the calls: `getNextRelease`,
//!   `getBuild`, `CGInitBuild`/`CGRefundBuild` (reserve and refund a release), `CGImport`,
//!   `getBuildTarget`, `listTags`, `tagBuild`/`tagBuildBypass`, tasks, `checkUpload`.
//! - [`fault`]: what the hub's faults mean (codes, and the texts that say "taken",
//!   "already tagged", "nothing to refund"), pure.
//! - [`upload`]: into the hub's work area: fast upload with resume, legacy `uploadFile`.
//!
//! Invariants: no session key, password or reservation token reaches a log line or an
//! error; calls that change the hub are never retried blindly (a lost answer may hide a
//! success: the caller checks).

pub mod client;
pub mod config;
pub mod fault;
pub mod upload;
pub mod xmlrpc;

pub use client::{
    BuildTarget, KojiBuild, KojiBuildState, KojiClient, KojiError, RefundState, Reservation,
    TaskInfo, UploadCheck, retry_policy,
};
pub use config::{AuthMethod, KojiAuth, KojiConfig, UploadMode};
