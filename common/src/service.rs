//! What every service's `main` does around its `run`: reads `--config`, loads the
//! configuration, starts tracing as it says, turns SIGTERM/SIGINT into a token, and runs the
//! service on a multi-threaded runtime (as many threads as the service's configuration asks,
//! else one per core) until it returns. One place, so that the services start, log and stop
//! alike.

use crate::config::{self, ConfigError, TelemetryConfig};
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// A service's whole configuration, as it reads the shared file.
pub trait ServiceConfig: DeserializeOwned {
    /// `[telemetry]`: how the service logs.
    fn telemetry(&self) -> &TelemetryConfig;

    /// Threads of the async runtime; `None`: one per core (tokio's default).
    fn runtime_threads(&self) -> Option<usize> {
        None
    }
}

/// The runtime a service runs on: `threads` worker threads, or one per core.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    builder.enable_all().build()
}

/// A service binary: its name as installed, and what it does (its `--help`).
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    pub name: &'static str,
    pub about: &'static str,
}

/// Why a service stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("loading the configuration")]
    Config(#[source] Box<ConfigError>),
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    #[error("{0} stopped on an error")]
    Run(
        &'static str,
        #[source] Box<dyn std::error::Error + Send + Sync + 'static>,
    ),
}

/// Runs the service `binary` with `run`: the command line (`--config PATH`, `--help`,
/// `--version`), then the configuration ([`config::load`]), tracing, the shutdown token;
/// returns when `run` does.
pub fn main<C, E, Fut>(
    binary: Binary,
    run: impl FnOnce(C, CancellationToken) -> Fut,
) -> Result<(), ServiceError>
where
    C: ServiceConfig,
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    Fut: Future<Output = Result<(), E>>,
{
    let file = command_line(binary);
    let config: C =
        config::load(file.as_deref()).map_err(|error| ServiceError::Config(Box::new(error)))?;
    let runtime = runtime(config.runtime_threads()).map_err(ServiceError::Runtime)?;
    runtime.block_on(async {
        crate::telemetry::init(config.telemetry());
        let shutdown = crate::shutdown::on_signal();
        run(config, shutdown)
            .await
            .map_err(|error| ServiceError::Run(binary.name, error.into()))
    })
}

/// The configuration file named on the command line (clap exits on `--help`, `--version`
/// and bad arguments).
fn command_line(binary: Binary) -> Option<PathBuf> {
    let config = clap::Arg::new("config")
        .long("config")
        .value_name("CONFIG")
        .value_parser(clap::value_parser!(PathBuf))
        .help(
            "Configuration file (TOML); default $OSBS_CONFIG, then /etc/osbs/osbs.toml if present",
        );
    clap::Command::new(binary.name)
        .version(env!("CARGO_PKG_VERSION"))
        .about(binary.about)
        .arg(config)
        .get_matches()
        .remove_one("config")
}
