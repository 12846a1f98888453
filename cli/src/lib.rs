//! The `osbs` command line's library: every verb but `squash`, as functions over values
//! with the I/O at the edges, so that the binary only parses arguments and dispatches.
//!
//! # Layout
//!
//! - [`app`]: global options, the verbs, exit codes.
//! - verbs, one file each: [`container_build`], [`watch_logs`], [`status`], [`list`],
//!   [`cancel`], [`replay`], [`queue`], [`git_hook`].
//! - shared pieces: [`config`] (`[cli]`), [`context`] (connections, output), [`logs`]
//!   (following a build's log), [`render`] (records for people and scripts), [`progress`]
//!   (the spinner), [`fedmsg`] (fedora-messaging messages), [`git`] (the git adapter and
//!   the readings of its output), [`error`] (the error type and exit codes).
//!
//! The CLI holds no state of its own: builds are the Redis records, queues are RabbitMQ's.

pub mod app;
pub mod cancel;
pub mod config;
pub mod container_build;
pub mod context;
pub mod error;
pub mod fedmsg;
pub mod git;
pub mod git_hook;
pub mod list;
pub mod logs;
pub mod progress;
pub mod queue;
pub mod render;
pub mod replay;
pub mod status;
pub mod watch_logs;
