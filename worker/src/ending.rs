//! How a build attempt ends, pure: from how it stopped (and, for a failure, whose fault it
//! is and whether an outage passes by itself) to what the service does — record an end and
//! ack or dead-letter the job, send it to a retry queue, hand it back, or let it go.
//!
//! What to do with a job before it runs (skip, republish, claim, take over, defer) is
//! [`crate::lease`]'s `first_look` and `after_claim`; this is the other end.

use crate::error::Blame;
use osbs_common::retry::{self, Outage, Retry, RetryState};
use osbs_proto::BuildState;
use std::time::Duration;

/// A failed attempt, as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// One line, for the record, the log and the event.
    pub reason: String,
    pub blame: Blame,
    /// The outside system whose passing outage caused it, if any.
    pub outage: Option<Outage>,
}

/// How the supervised attempt stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    Succeeded,
    /// The build's own job published its arch jobs (DESIGN.md "Architectures"): they build
    /// it now.
    Orchestrated,
    Failed(Failure),
    /// Ran longer than this limit.
    TimedOut(Duration),
    Canceled,
    /// Another worker took the build over.
    Lost,
    /// The worker stops and the grace period is over.
    Drained,
}

/// What the service does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Another worker runs the build now: ack the delivery, record nothing.
    LetGo,
    /// The build's arch jobs run it now: ack the delivery, record nothing, keep the release.
    Orchestrated,
    /// Back to `queued` and to `osbs.jobs` for another worker.
    HandBack,
    /// Back to `queued`; the job waits `delay` in a retry queue with `next` in its headers.
    Retry {
        outage: Outage,
        reason: String,
        delay: Duration,
        next: RetryState,
    },
    /// The build ends in `state` with `reason` (empty when it succeeded); its job is
    /// dead-lettered (an infrastructure failure, for a replay) or acked.
    End {
        state: BuildState,
        reason: String,
        dead_letter: bool,
    },
}

/// The ending of an attempt that stopped as `stop`, given the job's earlier transient
/// failures, the time and the retry window.
pub fn ending(stop: Stop, earlier: RetryState, now_ms: i64, window: Duration) -> Ending {
    match stop {
        Stop::Succeeded => Ending::End {
            state: BuildState::Complete,
            reason: String::new(),
            dead_letter: false,
        },
        Stop::Failed(failure) => match retry::decide(failure.outage, earlier, now_ms, window) {
            Retry::After { delay, next } => Ending::Retry {
                // `decide` retries outages only.
                outage: failure.outage.unwrap_or(Outage::Registry),
                reason: failure.reason,
                delay,
                next,
            },
            Retry::GiveUp => Ending::End {
                state: BuildState::Failed,
                dead_letter: failure.blame == Blame::Infrastructure,
                reason: failure.reason,
            },
        },
        Stop::TimedOut(limit) => Ending::End {
            state: BuildState::Failed,
            reason: format!(
                "the build ran longer than its limit of {}; make it faster or raise `[worker] build_timeout_secs`",
                humane(limit)
            ),
            dead_letter: false,
        },
        Stop::Canceled => Ending::End {
            state: BuildState::Canceled,
            reason: "canceled on request".to_owned(),
            dead_letter: false,
        },
        Stop::Lost => Ending::LetGo,
        Stop::Orchestrated => Ending::Orchestrated,
        Stop::Drained => Ending::HandBack,
    }
}

/// `3 h`, `20 min`, `45 s`.
pub fn humane(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs >= 3600 && secs.is_multiple_of(3600) {
        format!("{} h", secs / 3600)
    } else if secs >= 60 && secs.is_multiple_of(60) {
        format!("{} min", secs / 60)
    } else {
        format!("{secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;
    const WINDOW: Duration = Duration::from_secs(600);

    fn failure(blame: Blame, outage: Option<Outage>) -> Stop {
        Stop::Failed(Failure {
            reason: "why".into(),
            blame,
            outage,
        })
    }

    fn end(state: BuildState, reason: &str, dead_letter: bool) -> Ending {
        Ending::End {
            state,
            reason: reason.into(),
            dead_letter,
        }
    }

    #[test]
    fn ending_table() {
        let fresh = RetryState::default();
        let worn = RetryState {
            retries: 9,
            failing_since_ms: T0 - 601_000,
        };
        let retry = |outage| Ending::Retry {
            outage,
            reason: "why".into(),
            delay: Duration::from_secs(5),
            next: RetryState {
                retries: 1,
                failing_since_ms: T0,
            },
        };
        let table = [
            (Stop::Succeeded, fresh, end(BuildState::Complete, "", false)),
            (
                failure(Blame::Packager, None),
                fresh,
                end(BuildState::Failed, "why", false),
            ),
            (
                failure(Blame::Infrastructure, None),
                fresh,
                end(BuildState::Failed, "why", true),
            ),
            (
                failure(Blame::Infrastructure, Some(Outage::Registry)),
                fresh,
                retry(Outage::Registry),
            ),
            (
                failure(Blame::Infrastructure, Some(Outage::Koji)),
                fresh,
                retry(Outage::Koji),
            ),
            (
                failure(Blame::Infrastructure, Some(Outage::Engine)),
                worn,
                end(BuildState::Failed, "why", true),
            ),
            (
                Stop::TimedOut(Duration::from_secs(1200)),
                fresh,
                end(
                    BuildState::Failed,
                    "the build ran longer than its limit of 20 min; make it faster or raise `[worker] build_timeout_secs`",
                    false,
                ),
            ),
            (
                Stop::Canceled,
                fresh,
                end(BuildState::Canceled, "canceled on request", false),
            ),
            (Stop::Lost, fresh, Ending::LetGo),
            (Stop::Orchestrated, fresh, Ending::Orchestrated),
            (Stop::Drained, worn, Ending::HandBack),
        ];
        for (stop, earlier, expected) in table {
            assert_eq!(
                ending(stop.clone(), earlier, T0, WINDOW),
                expected,
                "{stop:?} {earlier:?}"
            );
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(humane(Duration::from_secs(10_800)), "3 h");
        assert_eq!(humane(Duration::from_secs(1200)), "20 min");
        assert_eq!(humane(Duration::from_secs(45)), "45 s");
    }
}
