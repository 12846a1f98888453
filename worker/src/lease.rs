//! Pick-up decisions and the lease schedule, pure.
//!
//! A job's delivery is held unacked while its build runs, so that a dead worker's job comes
//! back. RabbitMQ (before 3.12, without a per-queue `x-consumer-timeout`) closes a channel
//! whose delivery stays unacked past `consumer_timeout` (30 min by default), so a build that
//! runs longer swaps its delivery for a *lease*: a copy of the job published to
//! `osbs.jobs.lease` with a per-message expiration, which dead-letters back into `osbs.jobs`
//! when it expires. The owner publishes a new lease before the previous one expires and keeps
//! a heartbeat (the owner key in Redis, renewed every few seconds). A copy that comes back
//! while its build's owner is alive is dropped (the owner holds a newer lease); one that
//! comes back after the owner died finds the owner key expired and takes the build over.

use osbs_proto::BuildState;
use std::time::Duration;

/// AMQP header marking a lease copy published by the build's owner.
pub const HEADER_LEASE: &str = "x-osbs-lease";
/// AMQP header marking a copy put aside because its build's owner seemed alive.
pub const HEADER_DEFERRED: &str = "x-osbs-deferred";

/// What to do with a job, judged on its record before any ownership is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FirstLook {
    /// Nothing to do (finished, canceled or superseded): ack.
    Skip(&'static str),
    /// Finished, but its result was never published (the worker died in between): publish
    /// the stored result, then ack.
    Republish,
    /// Waiting or running: claim ownership to find out more.
    Claim,
}

pub fn first_look(state: BuildState, result_pending: bool) -> FirstLook {
    match state {
        BuildState::Queued | BuildState::Running | BuildState::Pushing => FirstLook::Claim,
        _ if result_pending => FirstLook::Republish,
        BuildState::Canceled => FirstLook::Skip("canceled before it started"),
        BuildState::Superseded => FirstLook::Skip("superseded by a newer commit"),
        _ => FirstLook::Skip("already finished"),
    }
}

/// What to do once the ownership claim answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pickup {
    /// A new build: `queued → running`.
    Start,
    /// The previous owner is gone: `running → running`, attempt + 1.
    TakeOver,
    /// The previous owner died while pushing: the record cannot go back to `running`, so
    /// the build fails and the job is dead-lettered for a replay.
    DiedWhilePushing,
    /// Another live worker owns it and this is one of its old lease copies: ack.
    OwnedElsewhere,
    /// Another worker seems alive but this is not a lease copy (the owner may have died
    /// before its first lease): put it aside until the heartbeat could have gone stale.
    Defer,
}

pub fn after_claim(state: BuildState, claimed: bool, is_lease_copy: bool) -> Pickup {
    match (claimed, state) {
        (true, BuildState::Queued) => Pickup::Start,
        (true, BuildState::Pushing) => Pickup::DiedWhilePushing,
        (true, _) => Pickup::TakeOver,
        (false, _) if is_lease_copy => Pickup::OwnedElsewhere,
        (false, _) => Pickup::Defer,
    }
}

/// When the next lease is due, counted from the start of the build: the first at
/// `lease_after`, then every half `ttl` so that a new one always exists before the last
/// expires.
pub fn next_lease_at(leases_so_far: u32, lease_after: Duration, ttl: Duration) -> Duration {
    lease_after + (ttl / 2) * leases_so_far
}

/// How long a deferred copy waits: past the moment a dead owner's heartbeat goes stale.
pub fn defer_for(heartbeat_stale: Duration) -> Duration {
    heartbeat_stale + Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use BuildState::*;

    #[test]
    fn first_look_table() {
        let table = [
            (Queued, false, FirstLook::Claim),
            (Running, false, FirstLook::Claim),
            (Pushing, true, FirstLook::Claim),
            (Complete, true, FirstLook::Republish),
            (Failed, true, FirstLook::Republish),
            (Complete, false, FirstLook::Skip("already finished")),
            (Imported, false, FirstLook::Skip("already finished")),
            (
                Canceled,
                false,
                FirstLook::Skip("canceled before it started"),
            ),
            (
                Superseded,
                false,
                FirstLook::Skip("superseded by a newer commit"),
            ),
        ];
        for (state, pending, expected) in table {
            assert_eq!(first_look(state, pending), expected, "{state} {pending}");
        }
    }

    #[test]
    fn after_claim_table() {
        let table = [
            (Queued, true, false, Pickup::Start),
            (Running, true, true, Pickup::TakeOver),
            (Running, true, false, Pickup::TakeOver),
            (Pushing, true, false, Pickup::DiedWhilePushing),
            (Running, false, true, Pickup::OwnedElsewhere),
            (Running, false, false, Pickup::Defer),
            (Queued, false, false, Pickup::Defer),
        ];
        for (state, claimed, lease, expected) in table {
            assert_eq!(
                after_claim(state, claimed, lease),
                expected,
                "{state} {claimed} {lease}"
            );
        }
    }

    #[test]
    fn leases_overlap() {
        let after = Duration::from_secs(1200);
        let ttl = Duration::from_secs(600);
        assert_eq!(next_lease_at(0, after, ttl), after);
        for n in 0..10 {
            let published = next_lease_at(n, after, ttl);
            let next = next_lease_at(n + 1, after, ttl);
            assert!(
                next < published + ttl,
                "lease {n} expires before the next exists"
            );
        }
        assert!(defer_for(Duration::from_secs(30)) > Duration::from_secs(30));
    }
}
