//! When a transient failure is retried, and after how long: one rule for the worker and the
//! koji-bridge, pure (the clock is an argument).
//!
//! A registry, a Koji hub or a Docker Engine that blinks for a few seconds should be ridden
//! out by the system, not by an operator running `osbs replay`. So a message whose handling
//! failed on one of them is not dead-lettered at once: it waits in a retry queue (see
//! `osbs_proto::names::retry_queue`) for a delay that grows with each retry — 5 s, 10 s,
//! 20 s… up to 5 min — and comes back, for as long as the *retry window* (counted from the
//! first failure) lasts. Past it, the failure stands: the build fails and the message is
//! dead-lettered for a replay, as before. Nothing sleeps on a message meanwhile: a worker
//! that hands a job to a retry queue is free for the next one.

use osbs_proto::names::RETRY_DELAYS_SECS;
use std::time::Duration;

/// Which outside system failed, if the failure is one that passes by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The registry (unreachable, 5xx, 408, 429).
    Registry,
    /// The Koji hub (unreachable, 5xx, offline or locked).
    Koji,
    /// The Docker Engine (its socket gone, its daemon restarting).
    Engine,
}

impl Outage {
    /// The `reason` label of the `retries_total` metric, and the word of the build log.
    pub fn name(self) -> &'static str {
        match self {
            Outage::Registry => "registry",
            Outage::Koji => "koji",
            Outage::Engine => "engine",
        }
    }
}

/// What a message carries of its earlier failures (the retry queue's headers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryState {
    /// Retries already made (0: this is the first failure).
    pub retries: u32,
    /// When the first of these failures happened (Unix ms); 0: none yet.
    pub failing_since_ms: i64,
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Send the message to the retry queue of this delay (one of `RETRY_DELAYS_SECS`), with
    /// this state in its headers.
    After { delay: Duration, next: RetryState },
    /// Not transient, or the window is over: the failure stands.
    GiveUp,
}

/// What to do after a failure: `outage` is `None` when the failure is not a transient one.
/// The delay grows with each retry (the next of `RETRY_DELAYS_SECS`, the last repeated), is
/// never longer than what is left of the window, and no retry is made when less than the
/// shortest delay is left.
pub fn decide(outage: Option<Outage>, state: RetryState, now_ms: i64, window: Duration) -> Retry {
    if outage.is_none() {
        return Retry::GiveUp;
    }
    let since = if state.failing_since_ms > 0 {
        state.failing_since_ms.min(now_ms)
    } else {
        now_ms
    };
    let elapsed = Duration::from_millis(u64::try_from(now_ms - since).unwrap_or(0));
    let Some(left) = window.checked_sub(elapsed) else {
        return Retry::GiveUp;
    };
    let step = usize::try_from(state.retries)
        .unwrap_or(usize::MAX)
        .min(RETRY_DELAYS_SECS.len() - 1);
    let wanted = RETRY_DELAYS_SECS[step].min(left.as_secs());
    match RETRY_DELAYS_SECS
        .iter()
        .rev()
        .find(|delay| **delay <= wanted)
    {
        Some(delay) => Retry::After {
            delay: Duration::from_secs(*delay),
            next: RetryState {
                retries: state.retries.saturating_add(1),
                failing_since_ms: since,
            },
        },
        None => Retry::GiveUp,
    }
}

/// When the window of a message failing since `failing_since_ms` closes (Unix ms), for the
/// build log.
pub fn window_closes_at(failing_since_ms: i64, window: Duration) -> i64 {
    failing_since_ms.saturating_add(i64::try_from(window.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);
    const T0: i64 = 1_700_000_000_000;

    /// Wait `delay` seconds, the window opened at `T0`.
    fn after(delay: u64, retries: u32) -> Retry {
        Retry::After {
            delay: Duration::from_secs(delay),
            next: state(retries, T0),
        }
    }

    fn state(retries: u32, since: i64) -> RetryState {
        RetryState {
            retries,
            failing_since_ms: since,
        }
    }

    /// `seconds` after `T0`.
    fn at(seconds: i64) -> i64 {
        T0 + seconds * 1000
    }

    #[test]
    fn decisions() {
        let (registry, koji, engine) = (
            Some(Outage::Registry),
            Some(Outage::Koji),
            Some(Outage::Engine),
        );
        let (ten, hour) = (10 * MIN, 60 * MIN);
        let table = [
            // Not transient: at once.
            (None, state(0, 0), T0, ten, Retry::GiveUp),
            // The first failure starts the window and waits the shortest delay.
            (registry, state(0, 0), T0, ten, after(5, 1)),
            // Growing delays.
            (registry, state(1, T0), at(5), ten, after(10, 2)),
            (registry, state(2, T0), at(15), ten, after(20, 3)),
            (koji, state(3, T0), at(35), ten, after(40, 4)),
            // The longest delay repeats.
            (engine, state(12, T0), at(60), hour, after(300, 13)),
            // Never past the window: 100 s left → 80 s, not 160 s.
            (registry, state(5, T0), at(500), ten, after(80, 6)),
            // Less than the shortest delay left: the failure stands.
            (registry, state(6, T0), at(597), ten, Retry::GiveUp),
            // The window is over.
            (registry, state(7, T0), at(601), ten, Retry::GiveUp),
            // A window of zero: no retries at all.
            (registry, state(0, 0), T0, Duration::ZERO, Retry::GiveUp),
            // A first failure time in the future (clocks of two hosts): counted as now.
            (registry, state(1, at(9)), T0, ten, after(10, 2)),
        ];
        for (outage, state, now, window, expected) in table {
            assert_eq!(
                decide(outage, state, now, window),
                expected,
                "{outage:?} {state:?} now={now} window={window:?}"
            );
        }
    }

    #[test]
    fn every_delay_has_a_queue_and_the_window_is_used() {
        // Retrying from the first failure until giving up covers most of the window.
        let window = 10 * MIN;
        let mut state = RetryState::default();
        let mut now = T0;
        let mut retries = 0;
        while let Retry::After { delay, next } = decide(Some(Outage::Registry), state, now, window)
        {
            assert!(RETRY_DELAYS_SECS.contains(&delay.as_secs()));
            now += i64::try_from(delay.as_millis()).unwrap();
            state = next;
            retries += 1;
        }
        assert!(now - T0 >= 595_000 && now - T0 <= 600_000, "{}", now - T0);
        assert_eq!(retries, state.retries);
        assert_eq!(window_closes_at(T0, window), T0 + 600_000);
    }
}
