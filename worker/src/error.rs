//! The worker's one error type, composed from each step's and adapter's errors, and who is to
//! blame for each: the packager (the build fails, the job is done) or the infrastructure (the
//! build fails and the job is dead-lettered so an operator can replay it once fixed).

use crate::adapters::docker::DockerError;
use crate::adapters::git::GitError;
use crate::adapters::http::HttpError;
use crate::checkout::CheckoutError;
use crate::inspect::InspectError;
use crate::plan::PlanError;
use crate::reach::ReachError;
use crate::release::ReleaseError;
use crate::source::SourceError;
use osbs_common::{BusError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    #[error(transparent)]
    Reach(#[from] ReachError),
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Registry(#[from] osbs_registry::RegistryError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A packager mistake found by the pipeline itself (no FROM, missing labels, a FROM on
    /// another registry...).
    #[error("{0}")]
    Packager(String),
    /// An infrastructure failure found by the pipeline itself.
    #[error("{0}")]
    Infrastructure(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Who must act for the build to succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// Fix the repository or the request and build again.
    Packager,
    /// An operator fixes the service and replays the dead-lettered job.
    Infrastructure,
}

impl Blame {
    /// As recorded in the record's `blame` field.
    pub fn name(self) -> &'static str {
        match self {
            Blame::Packager => "packager",
            Blame::Infrastructure => "infrastructure",
        }
    }
}

impl WorkerError {
    pub fn blame(&self) -> Blame {
        let packager = match self {
            WorkerError::Source(_)
            | WorkerError::Release(_)
            | WorkerError::Plan(_)
            | WorkerError::Inspect(_)
            | WorkerError::Reach(_)
            | WorkerError::Packager(_) => true,
            WorkerError::Checkout(error) => error.is_packager_error(),
            WorkerError::Git(error) => error.is_packager_error(),
            WorkerError::Docker(error) => error.is_packager_error(),
            WorkerError::Http(HttpError::NotFound { .. } | HttpError::Source(_)) => true,
            // A reference the packager wrote that the registry grammar refuses.
            WorkerError::Registry(osbs_registry::RegistryError::Reference(_)) => true,
            WorkerError::Registry(_) => false,
            WorkerError::Http(_)
            | WorkerError::Store(_)
            | WorkerError::Bus(_)
            | WorkerError::Infrastructure(_)
            | WorkerError::Io { .. } => false,
        };
        if packager {
            Blame::Packager
        } else {
            Blame::Infrastructure
        }
    }

    /// The reason as one line, for the record, the log's last line and the state event.
    pub fn reason(&self) -> String {
        osbs_common::bus::one_line(&self.to_string(), 1000)
    }

    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> WorkerError {
        let what = what.into();
        move |source| WorkerError::Io { what, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_table() {
        let table = [
            (
                WorkerError::Source(SourceError::UnsafeName {
                    name: "../x".into(),
                }),
                Blame::Packager,
            ),
            (
                WorkerError::Git(GitError::CommitNotFound {
                    commit: "c".into(),
                    repo: "r".into(),
                }),
                Blame::Packager,
            ),
            (
                WorkerError::Git(GitError::Failed {
                    step: "fetch",
                    repo: "r".into(),
                    detail: "Could not resolve host".into(),
                }),
                Blame::Infrastructure,
            ),
            (
                WorkerError::Docker(DockerError::Build {
                    message: "returned a non-zero code: 1".into(),
                }),
                Blame::Packager,
            ),
            (
                WorkerError::Docker(DockerError::Unreachable {
                    host: "unix:///var/run/docker.sock".into(),
                    detail: "no socket".into(),
                }),
                Blame::Infrastructure,
            ),
            (
                WorkerError::Http(HttpError::NotFound {
                    what: "lookaside cache file",
                    url: "http://x".into(),
                    hint: "",
                }),
                Blame::Packager,
            ),
            (
                WorkerError::Http(HttpError::Unreachable {
                    what: "yum repo file",
                    url: "http://x".into(),
                    detail: "connection refused".into(),
                }),
                Blame::Infrastructure,
            ),
            (
                WorkerError::Registry(osbs_registry::ReferenceError::Tag("-bad".into()).into()),
                Blame::Packager,
            ),
            (
                WorkerError::Registry(osbs_registry::RegistryError::Denied {
                    registry: "quay.io".into(),
                    action: "read the manifest base:1".into(),
                    detail: "HTTP 401".into(),
                }),
                Blame::Infrastructure,
            ),
        ];
        for (error, blame) in table {
            assert_eq!(error.blame(), blame, "{error}");
            assert!(!error.reason().contains('\n'));
        }
    }
}
