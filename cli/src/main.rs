//! `osbs`: the command line. Parses the arguments and hands each verb to its module: `squash`
//! here, every other verb to the library (`osbs_cli::app`).

mod squash;

use clap::{Parser, Subcommand};

/// OSBS command line.
#[derive(Debug, Parser)]
#[command(
    name = "osbs",
    version,
    about = "OSBS: the layered image build system",
    after_help = osbs_cli::error::EXIT_CODES_HELP
)]
struct Cli {
    #[command(flatten)]
    global: osbs_cli::app::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Squash(squash::Args),
    #[command(flatten)]
    Ops(osbs_cli::app::Verb),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Squash(args) => squash::run(args).await,
        Command::Ops(verb) => {
            return std::process::ExitCode::from(osbs_cli::app::run(&cli.global, &verb).await);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("osbs: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
