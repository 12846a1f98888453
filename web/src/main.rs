//! `osbs-web --config PATH`: loads the configuration, starts tracing, serves the web view until
//! SIGTERM/SIGINT.

use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;

/// A read-only web view of builds, queues and live logs.
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
    let config: osbs_web::Config =
        osbs_common::config::load(args.config.as_deref()).context("loading the configuration")?;
    osbs_common::telemetry::init(&config.telemetry);
    let shutdown = osbs_common::shutdown::on_signal();
    osbs_web::run(config, shutdown, None)
        .await
        .context("osbs-web stopped on an error")
}
