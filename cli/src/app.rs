//! The `osbs` command line: global options, one subcommand per verb, and the exit code
//! each outcome maps to.

use crate::cancel::CancelArgs;
use crate::config::Config;
use crate::container_build::BuildArgs;
use crate::context::Context;
use crate::error::{CliError, EXIT_CODES_HELP, Result};
use crate::git_hook::GitHookArgs;
use crate::list::ListArgs;
use crate::queue::QueueArgs;
use crate::replay::ReplayArgs;
use crate::status::StatusArgs;
use crate::watch_logs::WatchArgs;
use std::path::PathBuf;

/// Global options of every verb that talks to OSBS.
#[derive(Debug, Clone, clap::Args)]
pub struct Global {
    /// Configuration file (the services' file: [amqp], [redis], [storage], [cli])
    #[arg(long, global = true, env = "OSBS_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print JSON for scripts instead of text for people
    #[arg(long, global = true)]
    pub json: bool,
}

/// The verbs of the OSBS operations CLI (everything but `squash`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Verb {
    /// Build the container image of this dist-git checkout (fedpkg container-build)
    #[command(after_help = EXIT_CODES_HELP)]
    ContainerBuild(BuildArgs),
    /// Print a build's log from its first line, following it until the build ends
    #[command(after_help = EXIT_CODES_HELP)]
    WatchLogs(WatchArgs),
    /// Show a build: state, NVR, pullspecs, digest, error, history
    #[command(after_help = EXIT_CODES_HELP)]
    Status(StatusArgs),
    /// List builds, newest first
    #[command(after_help = EXIT_CODES_HELP)]
    List(ListArgs),
    /// Cancel a queued or running build
    #[command(after_help = EXIT_CODES_HELP)]
    Cancel(CancelArgs),
    /// Send dead-lettered jobs, results and events back, once their cause is fixed
    #[command(after_help = EXIT_CODES_HELP)]
    Replay(ReplayArgs),
    /// Messages waiting, consumers and net rate of every OSBS queue
    #[command(after_help = EXIT_CODES_HELP)]
    Queue(QueueArgs),
    /// dist-git post-receive hook: announce pushed commits (reads `old new ref` lines)
    #[command(
        after_help = "Install: `printf '#!/bin/sh\\nexec osbs git-hook\\n' > REPO.git/hooks/post-receive; chmod +x REPO.git/hooks/post-receive`.\nThe pusher is $GL_USER, else $REMOTE_USER, else [cli] user, else the login name as getpass.getuser() finds it ($LOGNAME, $USER, $LNAME, $USERNAME, the account of the uid).\n\n"
    )]
    GitHook(GitHookArgs),
}

/// Runs `verb` and returns the process exit code, printing any error as one line.
pub async fn run(global: &Global, verb: &Verb) -> u8 {
    match run_verb(global, verb).await {
        Ok(()) => crate::error::exit::OK,
        Err(error) => {
            eprintln!("osbs: {error}");
            error.exit_code()
        }
    }
}

async fn run_verb(global: &Global, verb: &Verb) -> Result<()> {
    let config: Config =
        osbs_common::config::load(global.config.as_deref()).map_err(CliError::from)?;
    let context = Context {
        config,
        json: global.json,
    };
    match verb {
        Verb::ContainerBuild(args) => crate::container_build::run(&context, args).await,
        Verb::WatchLogs(args) => crate::watch_logs::run(&context, args).await,
        Verb::Status(args) => crate::status::run(&context, args).await,
        Verb::List(args) => crate::list::run(&context, args).await,
        Verb::Cancel(args) => crate::cancel::run(&context, args).await,
        Verb::Replay(args) => crate::replay::run(&context, args).await,
        Verb::Queue(args) => crate::queue::run(&context, args).await,
        Verb::GitHook(args) => crate::git_hook::run_verb(&context, args).await,
    }
}
