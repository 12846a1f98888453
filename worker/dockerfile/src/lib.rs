//! Reads a Dockerfile exactly as the Docker builder does and rewrites it for an OSBS build,
//! keeping every byte it does not have to change.
//!
//! # Layout
//!
//! - [`syntax`](crate::syntax): physical lines → parser directives and instructions with
//!   their source spans (continuations, comments, heredocs, JSON and shell forms, flags).
//! - `shell`: Docker's word lexer (quotes, escapes, `$VAR` and `${VAR…}` substitution).
//! - [`Dockerfile`]: stages, parent images, and per-stage ENV/ARG/LABEL/USER evaluation.
//! - `labels`: aliases, required labels, the injected labels, label quoting.
//! - `reach`: what the builder would fetch besides the context: images named by
//!   `COPY --from` / `RUN --mount from=` ([`Dockerfile::flag_images`]), remote `ADD` sources
//!   ([`Dockerfile::remote_sources`]), and both in a parent's ONBUILD triggers
//!   ([`Dockerfile::trigger_reach`]).
//! - `rewrite`: [`rewrite`] by a [`RewritePlan`] (and [`rewrite_for_squash`], the same split
//!   between the builder and the squash), yum repo and buildinfo file names.
//!
//! # Invariants
//!
//! - No I/O, no clock, no async: every function is a function of its arguments.
//! - `rewrite` with pins that map each parent reference to itself and nothing else planned
//!   returns the input byte for byte.
//! - A label value written by [`quote_label_value_with_escape`] reads back as itself
//!   (line breaks as `\n`) and cannot change any other instruction.
//!
//! Where BuildKit and the classic builder differ, this follows BuildKit (heredocs,
//! `${VAR-default}`); checks against the Docker Engine on this machine are noted in tests.
//!
//! ```
//! use osbs_dockerfile::{Dockerfile, RewritePlan, rewrite};
//! let dockerfile = Dockerfile::parse("FROM registry.local/base:1\nLABEL name=demo\n").unwrap();
//! let mut plan = RewritePlan::default();
//! plan.pins.insert("registry.local/base:1".into(), "registry.local/base@sha256:0123".into());
//! plan.labels.push(("release".into(), "1".into()));
//! assert_eq!(
//!     rewrite(&dockerfile, &plan).unwrap(),
//!     "FROM registry.local/base@sha256:0123\nLABEL name=demo\nLABEL release=\"1\"\n"
//! );
//! ```

mod dockerfile;
mod error;
mod labels;
mod reach;
mod rewrite;
mod shell;
pub mod syntax;

#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod reach_tests;
#[cfg(test)]
mod rewrite_tests;

pub use dockerfile::{Dockerfile, LabelStep, ParentImage, Stage, labels_can_be_left_to_the_squash};
pub use error::{DockerfileError, MissingLabels, ParseError, ParseErrorKind, RewriteError};
pub use labels::{
    ComponentNvr, InjectInputs, LABEL_ALIASES, Labels, label_value_as_stored, labels_to_inject,
    quote_label_value, quote_label_value_with_escape, required,
};
pub use reach::{FlagImage, ImageFlag, Reach, RemoteSource, is_remote_source};
pub use rewrite::{
    RewritePlan, Rewritten, buildinfo_name, rewrite, rewrite_for_squash, rewrite_with_parent_users,
    yum_repo_file_name,
};
pub use syntax::{Directive, Heredoc, Instruction, Keyword};
