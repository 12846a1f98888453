//! `osbs-koji-bridge`: imports finished builds into Koji (see the library).

use anyhow::Context;
use clap::Parser;
use osbs_koji_bridge::BridgeConfig;

/// Imports finished OSBS builds into Koji as a content generator.
#[derive(Debug, Parser)]
#[command(name = "osbs-koji-bridge", version)]
struct Args {
    /// Configuration file (default: $OSBS_CONFIG, then /etc/osbs/osbs.toml if present).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config: BridgeConfig = osbs_common::config::load(args.config.as_deref())
        .context("cannot load the configuration")?;
    osbs_common::telemetry::init(&config.telemetry);
    let shutdown = osbs_common::shutdown::on_signal();
    osbs_koji_bridge::run(config, shutdown)
        .await
        .context("osbs-koji-bridge failed")
}
