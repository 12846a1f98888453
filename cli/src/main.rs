//! `osbs`: the command line. Parses the arguments and hands each verb to its module.

mod squash;

use clap::{Parser, Subcommand};

/// OSBS command line.
#[derive(Debug, Parser)]
#[command(name = "osbs", version, about = "OSBS: the layered image build system")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Squash(squash::Args),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::Squash(args) => squash::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("osbs: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
