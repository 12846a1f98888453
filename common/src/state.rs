//! The one way to change a build's state: [`change`] compares and sets the record in Redis
//! along `osbs_proto::state::can_become`, appends the history entry in the same script, and
//! then announces the change once — the JSON state event on `amq.topic`, confirmed by the
//! broker.
//!
//! The order is the safety: a state is recorded before it is announced (an [`Announcement`]
//! can only be made from a record read back from Redis), and an announcement that did not go
//! out is an error the caller sees ([`ChangeError::NotAnnounced`]), with the record already
//! changed. The caller keeps the message that caused the change unacked; its redelivery finds
//! the change recorded and announces it again ([`crate::Store::recorded_announcement`]).
//! Listeners may therefore hear a change twice, never zero times, where the caller resumes.

pub use crate::announcement::{Announcement, StateChange, state_event};
use crate::bus::{Bus, BusError};
use crate::store::{BuildRecord, Store, StoreError, Swap};
use osbs_proto::v1::BuildState;

/// What a state change did.
#[derive(Debug)]
pub enum Changed {
    /// Recorded, then announced.
    Done(Transition),
    /// The record is in a state the change may not start from: nothing was written. The
    /// record as it is.
    Refused(BuildRecord),
    /// Redis has no record of this build (it was emptied): nothing was written or announced.
    Missing,
}

/// A recorded change.
#[derive(Debug, Clone)]
pub struct Transition {
    pub from: BuildState,
    pub to: BuildState,
    /// The record after the change.
    pub record: BuildRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Nothing known to be written (a reply lost on the way may hide a write: the caller
    /// retries, and the retry finds the record changed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Recorded, but the broker did not confirm the announcement.
    #[error(
        "build {} is {} (recorded), but its state event was not confirmed by RabbitMQ: {source}",
        .announcement.build_id(), .transition.to
    )]
    NotAnnounced {
        transition: Box<Transition>,
        /// To publish again.
        announcement: Announcement,
        #[source]
        source: BusError,
    },
}

/// Changes a build's state: compare-and-set with its history entry, then one confirmed
/// announcement.
pub async fn change(
    store: &Store,
    bus: &Bus,
    change: StateChange<'_>,
) -> Result<Changed, ChangeError> {
    let now_ms = crate::telemetry::now_ms();
    let (record, entry) = match store.swap_state(&change, now_ms).await? {
        Swap::Moved { record, entry } => (record, entry),
        Swap::Refused(record) => return Ok(Changed::Refused(record)),
        Swap::Missing => return Ok(Changed::Missing),
    };
    let announcement = Announcement::new(&record, &entry);
    let transition = Transition {
        from: entry.from_state(),
        to: change.to,
        record,
    };
    match bus.announce(&announcement).await {
        Ok(()) => Ok(Changed::Done(transition)),
        Err(source) => Err(ChangeError::NotAnnounced {
            transition: Box::new(transition),
            announcement,
            source,
        }),
    }
}
