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
use osbs_common::retry::Outage;
use osbs_common::{BusError, StoreError};
use osbs_koji::KojiError;
use osbs_squash::SquashError;

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
    /// The squash of the built image and its push (the registry's errors kept typed inside).
    #[error("squashing {image} and pushing it to {repository}: {source}")]
    Squash {
        image: String,
        repository: String,
        #[source]
        source: Box<SquashError>,
    },
    /// The Koji hub (next release, reservations), its fault or transport error kept whole.
    #[error("{}", osbs_common::bus::one_line(&.0.to_string(), 500))]
    Koji(#[from] KojiError),
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
            // A base list without the arch built: the base or the target's arches to fix.
            WorkerError::Registry(osbs_registry::RegistryError::NoArch { .. }) => true,
            WorkerError::Registry(_) => false,
            WorkerError::Squash { source, .. } => matches!(
                **source,
                SquashError::Registry(osbs_registry::RegistryError::Reference(_))
            ),
            WorkerError::Koji(_) => false,
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

    /// The outside system whose passing outage caused this, if it is one (the build is then
    /// retried later rather than failed: [`osbs_common::retry`]).
    pub fn outage(&self) -> Option<Outage> {
        match self {
            WorkerError::Registry(error) if error.is_transient() => Some(Outage::Registry),
            WorkerError::Squash { source, .. } => match &**source {
                SquashError::Registry(error) if error.is_transient() => Some(Outage::Registry),
                SquashError::Engine { .. } => Some(Outage::Engine),
                _ => None,
            },
            WorkerError::Docker(error @ DockerError::Unreachable { .. })
                if error.is_transient() =>
            {
                Some(Outage::Engine)
            }
            WorkerError::Docker(error) if error.is_transient() => Some(Outage::Registry),
            WorkerError::Koji(error) if error.is_transient() => Some(Outage::Koji),
            _ => None,
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

    fn registry_down() -> osbs_registry::RegistryError {
        osbs_registry::RegistryError::Unreachable {
            registry: "127.0.0.1:5000".into(),
            action: "push".into(),
            detail: "connection refused".into(),
        }
    }

    #[test]
    fn outage_table() {
        let table = [
            (
                WorkerError::Registry(registry_down()),
                Some(Outage::Registry),
            ),
            (
                WorkerError::Squash {
                    image: "i".into(),
                    repository: "r".into(),
                    source: Box::new(SquashError::Registry(registry_down())),
                },
                Some(Outage::Registry),
            ),
            (
                WorkerError::Squash {
                    image: "i".into(),
                    repository: "r".into(),
                    source: Box::new(SquashError::Engine {
                        action: "export".into(),
                        detail: "EOF".into(),
                    }),
                },
                Some(Outage::Engine),
            ),
            (
                WorkerError::Docker(DockerError::Unreachable {
                    host: "unix:///var/run/docker.sock".into(),
                    detail: "no socket".into(),
                }),
                Some(Outage::Engine),
            ),
            (
                WorkerError::Docker(DockerError::Pull {
                    image: "b".into(),
                    message: "connection refused".into(),
                }),
                Some(Outage::Registry),
            ),
            (
                WorkerError::Koji(KojiError::Transport {
                    method: "getNextRelease".into(),
                    url: "https://koji/kojihub".into(),
                    reason: "connection refused".into(),
                }),
                Some(Outage::Koji),
            ),
            (
                WorkerError::Koji(KojiError::Setup("no certificate".into())),
                None,
            ),
            (
                WorkerError::Registry(osbs_registry::RegistryError::Denied {
                    registry: "quay.io".into(),
                    action: "push".into(),
                    detail: "HTTP 401".into(),
                }),
                None,
            ),
            (
                WorkerError::Docker(DockerError::Build {
                    message: "returned a non-zero code: 1".into(),
                }),
                None,
            ),
            (WorkerError::Packager("no FROM".into()), None),
        ];
        for (error, outage) in table {
            assert_eq!(error.outage(), outage, "{error}");
        }
    }
}
