//! `osbs-dispatcher --config PATH`: loads the configuration, starts tracing, runs the service
//! until SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

/// Turns dist-git pushes and build requests into build jobs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML); default $OSBS_CONFIG, then /etc/osbs/osbs.toml if present.
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: osbs_dispatcher::Config =
        osbs_common::config::load(args.config.as_deref()).context("loading the configuration")?;
    osbs_common::telemetry::init(&config.telemetry);
    let shutdown = osbs_common::shutdown::on_signal();
    osbs_dispatcher::run(config, shutdown)
        .await
        .context("osbs-dispatcher stopped on an error")
}
