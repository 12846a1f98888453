//! The web view of OSBS: builds, a build with its live log, queues and dead letters, as
//! server-rendered HTML. Read-only: cancel and replay stay in the CLI.
//!
//! # Layout
//!
//! - [`config`]: `[web]` and the shared sections it reads.
//! - [`view`]: pure decisions (times, durations, states, links, pages), table-tested.
//! - [`html`]: pure rendering of the pages from records, a queue snapshot and `now`.
//! - [`assets`]: the embedded CSS and JavaScript.
//! - [`sampler`]: one task reading the broker (passive declares, dead letters peeked).
//! - [`server`]: the axum routes, the live log over Server-Sent Events, health, metrics.

pub mod assets;
pub mod config;
pub mod html;
pub mod sampler;
pub mod server;
pub mod view;

pub use config::Config;

use anyhow::Context;
use osbs_common::Store;
use osbs_common::http::{Health, Metrics};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What `osbs_common::service::main` needs of the configuration.
impl osbs_common::service::ServiceConfig for Config {
    fn telemetry(&self) -> &osbs_common::config::TelemetryConfig {
        &self.telemetry
    }
}

/// Binds `[web] http_listen`, then serves until `shutdown`; `bound` receives the address (the port
/// may be 0 in tests).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    tracing::info!(config = %osbs_common::config::effective(&config), "osbs-web starting");
    let store = Store::connect(&config.redis)
        .await
        .context("connecting to Redis")?;
    let listener = tokio::net::TcpListener::bind(config.web.http_listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (change `[web] http_listen`)",
                config.web.http_listen
            )
        })?;
    let address = listener.local_addr()?;
    let indexing = store.clone();
    tokio::spawn(async move {
        match indexing.index_listing().await {
            Ok(0) => {}
            Ok(count) => tracing::info!(
                count,
                "indexed the builds recorded before the listing index"
            ),
            Err(error) => {
                tracing::error!(error = %error, "cannot index the earlier builds; filters miss them")
            }
        }
    });
    let queues = sampler::Shared::default();
    tokio::spawn(sampler::run(
        config.amqp.clone(),
        config.web.queue_refresh(),
        config.web.dead_letters_shown,
        queues.clone(),
        shutdown.clone(),
    ));
    let health = Health::default();
    health.set_ready(true, "");
    let app = Arc::new(server::App::new(
        &config,
        store,
        queues,
        health,
        Metrics::new("web"),
    ));
    tracing::info!(%address, "serving the web view");
    if let Some(bound) = bound {
        let _ = bound.send(address);
    }
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving HTTP")
}
