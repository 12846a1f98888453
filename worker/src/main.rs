//! `osbs-worker --config PATH`: loads the configuration, starts tracing, runs the worker
//! until SIGTERM/SIGINT (then drains).

use anyhow::Context;
use clap::Parser;

/// The OSBS build worker: consumes osbs.jobs, builds, squashes, inspects and pushes images.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML); OSBS_… environment variables override it.
    #[arg(long, env = "OSBS_CONFIG")]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: osbs_worker::ServiceConfig =
        osbs_common::config::load(args.config.as_deref()).context("loading the configuration")?;
    osbs_common::telemetry::init(&config.telemetry);
    let shutdown = osbs_common::shutdown::on_signal();
    osbs_worker::run(config, shutdown)
        .await
        .context("osbs-worker")
}
