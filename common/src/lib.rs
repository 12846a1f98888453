//! What every OSBS service shares.
//!
//! # Layout
//!
//! - [`config`]: layered configuration (defaults < TOML < `OSBS_…` env), secrets masked.
//! - [`telemetry`]: tracing set-up, the wall clock, the host name.
//! - [`shutdown`]: SIGTERM/SIGINT → a cancellation token.
//! - [`bus`]: the AMQP adapter (lapin): topology, confirmed publishing, consuming,
//!   dead-lettering, recovery.
//! - [`store`]: the Redis adapter: build records and their state machine, idempotency keys,
//!   cancel marks, live logs.
//! - [`request`]: what became of an explicit build request (the dispatcher writes it, the
//!   CLI reads it).
//! - [`http`]: `/healthz` and Prometheus `/metrics`.

pub mod bus;
pub mod config;
pub mod http;
pub mod request;
pub mod shutdown;
pub mod store;
pub mod telemetry;

pub use bus::{Bus, BusError};
pub use store::{Store, StoreError};
