//! What every OSBS service shares.
//!
//! # Layout
//!
//! - [`config`]: layered configuration (defaults < TOML < `OSBS_…` env), secrets masked.
//! - [`telemetry`]: tracing set-up, the wall clock, the host name.
//! - [`shutdown`]: SIGTERM/SIGINT → a cancellation token.
//! - [`bus`]: the AMQP adapter (lapin): topology, confirmed publishing, consuming,
//!   dead-lettering, recovery.
//! - [`failover`]: the nodes of a RabbitMQ cluster behind one connection: which one a
//!   (re)connection tries first, what their URLs may differ in (pure).
//! - [`store`]: the Redis adapter: build records and their compare-and-set, idempotency
//!   keys, cancel marks, live logs, locks, and each service's keys as named operations.
//! - [`state`]: the one way to change a build's state: compare-and-set, history entry, one
//!   confirmed announcement.
//! - [`http`]: `/healthz` and Prometheus `/metrics`.
//! - [`queues`]: the operators' view of the broker: depths, rates, dead letters peeked.
//! - [`service`]: what every service's `main` does: command line, configuration, tracing,
//!   shutdown token, runtime.
//! - [`retry`]: when a transient failure (registry, Koji hub, engine) is retried through a
//!   retry queue, and after how long (pure).

pub mod announcement;
pub mod bus;
pub mod config;
mod connect;
pub mod failover;
pub mod http;
pub mod queues;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;

pub use bus::{Bus, BusError};
pub use state::{ChangeError, Changed, StateChange};
pub use store::{Store, StoreError};
