//! The build state machine of DESIGN.md: names, parsing and allowed transitions.
//!
//! `queued → running → pushing → complete → imported`, or `failed`, `canceled`,
//! `superseded`, `import_failed`. Replays move a failed build back to `queued`.

use crate::v1::BuildState;

/// A state name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown build state {0:?}: expected one of queued, running, pushing, complete, imported, failed, canceled, superseded, import_failed"
)]
pub struct UnknownState(pub String);

impl BuildState {
    /// Every meaningful state, in the order a build goes through them (the web view's state
    /// filter lists them so): the way to `imported`, then the ends short of it.
    pub const ALL: [BuildState; 9] = [
        BuildState::Queued,
        BuildState::Running,
        BuildState::Pushing,
        BuildState::Complete,
        BuildState::Imported,
        BuildState::Failed,
        BuildState::ImportFailed,
        BuildState::Canceled,
        BuildState::Superseded,
    ];

    /// Lower-case name used in records, routing keys and JSON events.
    pub fn name(self) -> &'static str {
        match self {
            BuildState::Unspecified => "unspecified",
            BuildState::Queued => "queued",
            BuildState::Running => "running",
            BuildState::Pushing => "pushing",
            BuildState::Complete => "complete",
            BuildState::Imported => "imported",
            BuildState::Failed => "failed",
            BuildState::Canceled => "canceled",
            BuildState::Superseded => "superseded",
            BuildState::ImportFailed => "import_failed",
        }
    }

    /// Parses a name produced by [`BuildState::name`].
    pub fn parse(name: &str) -> Result<BuildState, UnknownState> {
        BuildState::ALL
            .into_iter()
            .find(|state| state.name() == name)
            .ok_or_else(|| UnknownState(name.to_owned()))
    }

    /// No worker will touch a build in this state again (a replay may requeue it).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            BuildState::Complete
                | BuildState::Imported
                | BuildState::Failed
                | BuildState::Canceled
                | BuildState::Superseded
                | BuildState::ImportFailed
        )
    }

    /// A build in this state has not started and can still be skipped.
    pub fn is_waiting(self) -> bool {
        self == BuildState::Queued
    }

    /// Whether a record may move from `self` to `to`.
    ///
    /// `running → running` is a takeover (a worker picking up the job of one that died);
    /// `running → queued` a requeue by a draining worker; `running/pushing → queued` a retry
    /// after a transient failure (the job waits in a retry queue); `failed/canceled/superseded/
    /// import_failed → queued` a replay.
    pub fn can_become(self, to: BuildState) -> bool {
        use BuildState::*;
        matches!(
            (self, to),
            (Queued, Running | Superseded | Canceled | Failed)
                | (Running, Running | Queued | Pushing | Failed | Canceled)
                | (Pushing, Complete | Failed | Canceled | Queued)
                | (Complete, Imported | ImportFailed)
                | (ImportFailed, Imported | ImportFailed)
                | (Failed | Canceled | Superseded, Queued)
                | (ImportFailed, Complete)
        )
    }

    /// The states from which `to` may be entered.
    pub fn sources_of(to: BuildState) -> Vec<BuildState> {
        BuildState::ALL
            .into_iter()
            .filter(|from| from.can_become(to))
            .collect()
    }
}

impl std::fmt::Display for BuildState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for BuildState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuildState::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildState::*;

    #[test]
    fn names_round_trip() {
        for state in BuildState::ALL {
            assert_eq!(BuildState::parse(state.name()), Ok(state));
        }
        assert!(BuildState::parse("done").is_err());
    }

    #[test]
    fn happy_path_is_allowed() {
        let path = [Queued, Running, Pushing, Complete, Imported];
        for pair in path.windows(2) {
            assert!(pair[0].can_become(pair[1]), "{} -> {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn finished_builds_do_not_run_again_without_a_replay() {
        for from in [Complete, Imported] {
            for to in [Queued, Running, Pushing, Failed] {
                assert!(!from.can_become(to), "{from} -> {to}");
            }
        }
        assert!(!Imported.can_become(ImportFailed));
        assert!(!Superseded.can_become(Running));
        assert!(Failed.can_become(Queued));
    }

    #[test]
    fn an_attempt_that_meets_an_outage_goes_back_to_queued() {
        for from in [Running, Pushing] {
            assert!(from.can_become(Queued), "{from} -> queued (a retry)");
        }
        assert!(
            !Pushing.can_become(Running),
            "a push is never run again in place"
        );
    }

    #[test]
    fn sources() {
        assert_eq!(BuildState::sources_of(Running), vec![Queued, Running]);
        assert_eq!(
            BuildState::sources_of(Imported),
            vec![Complete, ImportFailed]
        );
    }
}
