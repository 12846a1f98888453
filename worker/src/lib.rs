//! The OSBS build worker: `osbs.jobs` in, images in the registry and `BuildResult`s out.
//!
//! # Layout
//!
//! Pure steps (values in, values out, table-tested):
//! - [`source`]: allowed clone and repo URLs, the `sources` file, lookaside URLs, hashes.
//! - [`parent`]: FROM references held to the target's base registry.
//! - [`release`]: Koji's next-release rules, the next release from registry tags.
//! - [`plan`]: repositories, tags (normal, scratch, isolated), pullspecs.
//! - [`arches`]: which architectures a build is for (target, `container.yaml` platforms,
//!   a scratch build's `arch_override`).
//! - [`inspect`]: the `rpm -qa` query, its parsing, the signed-content policy.
//! - [`lease`]: pick-up decisions (start, take over, skip, defer) and the lease schedule.
//! - [`ending`]: how an attempt ends (record an end and ack or dead-letter, retry later,
//!   hand back, let go), from how it stopped.
//! - [`report`]: step timings, `BuildResult` and state-change assembly.
//! - [`reach`]: what a build may fetch besides its context (`COPY --from`, `RUN --mount
//!   from=`, `ADD <url>`, a parent's ONBUILD triggers), held to the target's registry and
//!   `[worker] allowed_source_urls`.
//! - [`context`]: what the build context leaves out and how added files are archived (the
//!   tar itself is written by `adapters::context`, symlinks kept, never followed).
//!
//! [`leftovers`]: each attempt's ledger of the containers and images it made, locked while
//! it lives, so that a starting worker removes what a killed one left.
//!
//! The checkout ([`checkout`]) is reached through one directory handle: every file read
//! from or written into it is opened beneath it, never through a symlink that leads out.
//!
//! Adapters, one per external system ([`adapters`]): the Docker Engine (bollard), HTTP
//! (reqwest: lookaside, yum repos, registry API), dist-git (the `git` CLI), the worker's
//! own Redis keys (release reservations, build ownership) and the build context's tar. The bus and the build records
//! come from `osbs-common`; the Dockerfile rewrite from `osbs-dockerfile`; the squash from
//! `osbs-squash`.
//!
//! Wiring: [`pipeline`] runs the steps of one build attempt; [`service`] consumes jobs and
//! supervises attempts (cancel, time limit, heartbeat, leases, drain); [`finish`] carries
//! out each attempt's ending: the build's record, its published result and only then the
//! ack (or a retry queue, a hand-back). [`multiarch`]: a multi-arch build's arch jobs, the
//! part each records and the manifest list the last one assembles. [`buildlog`] writes the
//! build log to a file and to the live Redis stream.
//!
//! # Invariants
//!
//! - A job is acked only after its build's end is recorded and its result is published, or
//!   after it is dead-lettered with the reason; a job in hand when the worker stops is handed
//!   back (requeued), never acked.
//! - Two builds in flight never hold the same release of one name-version.
//! - Nothing is pulled from a registry other than the target's base registry, and nothing is
//!   downloaded by the engine from a URL `[worker] allowed_source_urls` does not allow.
//! - Nothing of a commit makes the worker read or write outside the build's checkout; no
//!   error or log line carries the content of a file outside it.

pub mod adapters;
pub mod arches;
pub mod archjob;
pub mod buildlog;
pub mod checkout;
pub mod config;
pub mod context;
pub mod ending;
pub mod error;
pub mod finish;
pub mod inspect;
pub mod lease;
pub mod leftovers;
pub mod multiarch;
pub mod parent;
pub mod pipeline;
pub mod plan;
pub mod reach;
pub mod release;
pub mod report;
pub mod service;
pub mod source;

pub use config::ServiceConfig;
pub use error::WorkerError;
pub use service::run;

/// What `osbs_common::service::main` needs of the configuration.
impl osbs_common::service::ServiceConfig for ServiceConfig {
    fn telemetry(&self) -> &osbs_common::config::TelemetryConfig {
        &self.telemetry
    }
}
