//! Acks of `osbs.events` deliveries, one `basic.ack` with `multiple` for a run of finished
//! events instead of one frame per event (the broker's work per event is most of the
//! dispatcher's cost, docs/BENCHMARKS.md).
//!
//! Safety: `multiple` acks every delivery of the channel up to its tag that is still
//! unacked, so a run is acked only when every delivery up to its last one that the channel
//! still holds unacked is finished. Every delivery is registered in delivery order before its
//! handler runs ([`Acks::register`]); one settled another way (requeued, dead-lettered,
//! ignored) is removed only after its own frame is sent ([`Acks::settled`]). A handler waits
//! until its ack is on the wire ([`Acks::ack`]), as it did acking alone, so nothing is left
//! unsent when the service stops. A finished delivery held back by an unfinished one before
//! it is acked alone after [`HOLD`]: a slow event (dist-git, a lane's turn, a retry's pause)
//! never stalls the others' acks.
//!
//! Decisions are the pure [`Window`]; [`Acks`] is its adapter (a task and the frames).

use lapin::Acker;
use lapin::options::BasicAckOptions;
use osbs_common::bus::Delivery;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot};

/// How long a finished delivery waits for the ones before it before it is acked alone.
pub const HOLD: Duration = Duration::from_millis(50);

/// One delivery of the window.
#[derive(Debug)]
struct Slot<T> {
    /// Finished at this time, waiting to be acked; `None`: its handler is still running.
    done_at: Option<Instant>,
    /// Whether the channel it came on is gone (its ack can no longer be sent).
    dead: bool,
    /// What the adapter keeps for it (the acker and the handler's waiter).
    item: T,
}

/// The unacked deliveries of one channel, by delivery tag.
#[derive(Debug)]
pub struct Window<T> {
    slots: BTreeMap<u64, Slot<T>>,
    highest: u64,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            slots: BTreeMap::new(),
            highest: 0,
        }
    }
}

/// What to send.
#[derive(Debug, PartialEq)]
pub struct Flush<T> {
    /// The run: the last one's ack with `multiple` covers them all (empty: none).
    pub run: Vec<T>,
    /// Finished deliveries held back too long: each acked alone.
    pub alone: Vec<T>,
    /// Deliveries of a lost channel: nothing to send, the broker redelivers them.
    pub lost: Vec<T>,
}

impl<T> Window<T> {
    /// A delivery with tag `tag` is in hand. A tag that does not count up means a new channel
    /// (recovery): the deliveries of the old one are lost, and returned.
    pub fn register(&mut self, tag: u64, item: T) -> Vec<T> {
        let mut lost = Vec::new();
        if tag <= self.highest {
            lost = std::mem::take(&mut self.slots)
                .into_values()
                .map(|slot| slot.item)
                .collect();
        }
        self.highest = tag;
        self.slots.insert(
            tag,
            Slot {
                done_at: None,
                dead: false,
                item,
            },
        );
        lost
    }

    /// Delivery `tag` is finished and wants its ack; `item` replaces what was kept.
    /// `Err`: no such delivery running (its channel was replaced since): ack it alone.
    pub fn finish(&mut self, tag: u64, now: Instant, item: T) -> Result<(), T> {
        match self.slots.get_mut(&tag) {
            Some(slot) if slot.done_at.is_none() => {
                slot.done_at = Some(now);
                slot.item = item;
                Ok(())
            }
            _ => Err(item),
        }
    }

    /// Delivery `tag` was settled by its own frame (sent already): it no longer holds back
    /// the ones after it.
    pub fn settled(&mut self, tag: u64) -> Option<T> {
        self.slots.remove(&tag).map(|slot| slot.item)
    }

    /// Delivery `tag`'s channel is gone.
    pub fn mark_dead(&mut self, tag: u64) {
        if let Some(slot) = self.slots.get_mut(&tag) {
            slot.dead = true;
        }
    }

    /// Tags of the deliveries still running (the adapter checks whether their channel died).
    pub fn running(&self) -> impl Iterator<Item = (u64, &T)> {
        self.slots
            .iter()
            .filter(|(_, slot)| slot.done_at.is_none() && !slot.dead)
            .map(|(tag, slot)| (*tag, &slot.item))
    }

    /// Whether a finished delivery waits.
    pub fn holds_finished(&self) -> bool {
        self.slots.values().any(|slot| slot.done_at.is_some())
    }

    /// What to send now: the run of finished deliveries from the lowest unacked one (dead
    /// ones before it dropped), then the finished ones held back longer than `hold`.
    pub fn flush(&mut self, now: Instant, hold: Duration) -> Flush<T> {
        let mut flush = Flush {
            run: Vec::new(),
            alone: Vec::new(),
            lost: Vec::new(),
        };
        while let Some(entry) = self.slots.first_entry() {
            let (dead, done) = (entry.get().dead, entry.get().done_at.is_some());
            if dead {
                flush.lost.push(entry.remove().item);
            } else if done {
                flush.run.push(entry.remove().item);
            } else {
                break;
            }
        }
        let overdue: Vec<u64> = self
            .slots
            .iter()
            .filter(|(_, slot)| {
                slot.done_at
                    .is_some_and(|at| now.saturating_duration_since(at) >= hold)
            })
            .map(|(tag, _)| *tag)
            .collect();
        for tag in overdue {
            if let Some(slot) = self.slots.remove(&tag) {
                flush.alone.push(slot.item);
            }
        }
        flush
    }
}

/// What the adapter keeps per delivery: its acker, and once finished, its handler's waiter.
#[derive(Debug)]
struct Kept {
    acker: Acker,
    waiter: Option<oneshot::Sender<()>>,
}

impl Kept {
    fn release(self) {
        if let Some(waiter) = self.waiter {
            let _ = waiter.send(());
        }
    }
}

/// The adapter: registers deliveries, and a task sends the acks [`Window::flush`] decides.
#[derive(Debug, Clone)]
pub struct Acks {
    window: Arc<Mutex<Window<Kept>>>,
    wake: Arc<Notify>,
}

impl Acks {
    /// Starts the task that sends the acks (it ends when every handle is dropped).
    pub fn start() -> Acks {
        let acks = Acks {
            window: Arc::default(),
            wake: Arc::new(Notify::new()),
        };
        let weak_window = Arc::downgrade(&acks.window);
        let wake = acks.wake.clone();
        tokio::spawn(async move {
            loop {
                let holding = match weak_window.upgrade() {
                    Some(window) => window.lock().expect("acks lock").holds_finished(),
                    None => return,
                };
                if holding {
                    let _ = tokio::time::timeout(HOLD, wake.notified()).await;
                } else {
                    // Checked now and then so that the task ends once the service is gone.
                    let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
                }
                let Some(window) = weak_window.upgrade() else {
                    return;
                };
                send(&window).await;
            }
        });
        acks
    }

    /// Takes delivery `delivery` into the window (in delivery order, before its handler runs).
    pub fn register(&self, delivery: &Delivery) {
        let lost = self.window.lock().expect("acks lock").register(
            delivery.delivery_tag,
            Kept {
                acker: delivery.acker.clone(),
                waiter: None,
            },
        );
        lost.into_iter().for_each(Kept::release);
    }

    /// Acks `delivery` (with the run it ends, or alone after [`HOLD`]); returns once the
    /// frame that acks it is sent.
    pub async fn ack(&self, delivery: &Delivery) {
        if delivery.acker.poisoned() {
            // Its channel is gone (the broker redelivers it); its tag may be a new
            // channel's now, which must not be touched.
            return;
        }
        let (waiter, sent) = oneshot::channel();
        let kept = Kept {
            acker: delivery.acker.clone(),
            waiter: Some(waiter),
        };
        let refused = self.window.lock().expect("acks lock").finish(
            delivery.delivery_tag,
            Instant::now(),
            kept,
        );
        match refused {
            Ok(()) => {
                self.wake.notify_one();
                let _ = sent.await;
            }
            // Not in the window (its channel was replaced): alone, as before.
            Err(_) => osbs_common::bus::ack(delivery).await,
        }
    }

    /// `delivery` was settled by a frame of its own, sent (requeued, dead-lettered).
    pub fn settled(&self, delivery: &Delivery) {
        if delivery.acker.poisoned() {
            return;
        }
        let removed = self
            .window
            .lock()
            .expect("acks lock")
            .settled(delivery.delivery_tag);
        if let Some(kept) = removed {
            // The window may hold a run behind it.
            kept.release();
            self.wake.notify_one();
        }
    }
}

/// One round of the task: the run's ack, the overdue ones, and the lost ones released.
async fn send(window: &Mutex<Window<Kept>>) {
    let flush = {
        let mut window = window.lock().expect("acks lock");
        let dead: Vec<u64> = window
            .running()
            .filter(|(_, kept)| kept.acker.poisoned())
            .map(|(tag, _)| tag)
            .collect();
        for tag in dead {
            window.mark_dead(tag);
        }
        window.flush(Instant::now(), HOLD)
    };
    flush.lost.into_iter().for_each(Kept::release);
    if let Some(last) = flush.run.last()
        && let Err(error) = last.acker.ack(BasicAckOptions { multiple: true }).await
    {
        tracing::warn!(error = %error, "ack failed (channel lost); the messages will be redelivered");
    }
    flush.run.into_iter().for_each(Kept::release);
    for kept in flush.alone {
        if let Err(error) = kept.acker.ack(BasicAckOptions::default()).await {
            tracing::warn!(error = %error, "ack failed (channel lost); the message will be redelivered");
        }
        kept.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flushed(window: &mut Window<u64>, now: Instant) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let flush = window.flush(now, HOLD);
        (flush.run, flush.alone, flush.lost)
    }

    #[test]
    fn a_run_is_acked_only_up_to_the_first_unfinished_delivery() {
        let now = Instant::now();
        let mut window = Window::default();
        for tag in 1..=5 {
            assert!(window.register(tag, tag).is_empty());
        }
        for tag in [1, 2, 4, 5] {
            window.finish(tag, now, tag).unwrap();
        }
        // 3 runs: 1 and 2 go (the ack of 2 with `multiple`), 4 and 5 wait.
        assert_eq!(flushed(&mut window, now), (vec![1, 2], vec![], vec![]));
        assert_eq!(flushed(&mut window, now), (vec![], vec![], vec![]));
        // 3 requeued by its own frame: 4 and 5 are the next run.
        assert_eq!(window.settled(3), Some(3));
        assert_eq!(flushed(&mut window, now), (vec![4, 5], vec![], vec![]));
    }

    #[test]
    fn finished_deliveries_behind_a_slow_one_are_acked_alone_after_the_hold() {
        let now = Instant::now();
        let mut window = Window::default();
        for tag in 1..=3 {
            window.register(tag, tag);
        }
        window.finish(2, now, 2).unwrap();
        window.finish(3, now + HOLD, 3).unwrap();
        assert_eq!(flushed(&mut window, now), (vec![], vec![], vec![]));
        // 2 has waited HOLD: acked alone (never with `multiple`: 1 still runs); 3 waits on.
        assert_eq!(flushed(&mut window, now + HOLD), (vec![], vec![2], vec![]));
        assert!(window.holds_finished());
        window.finish(1, now + HOLD, 1).unwrap();
        // 2 is acked: the run is 1 and 3 (the broker holds 2 no longer).
        assert_eq!(
            flushed(&mut window, now + HOLD),
            (vec![1, 3], vec![], vec![])
        );
        assert!(!window.holds_finished());
    }

    #[test]
    fn a_new_channel_drops_the_old_one_and_dead_deliveries_do_not_block() {
        let now = Instant::now();
        let mut window = Window::default();
        for tag in 1..=3 {
            window.register(tag, tag);
        }
        window.finish(2, now, 2).unwrap();
        // The channel died: 1 and 3 cannot be acked; 2's run is just itself.
        window.mark_dead(1);
        window.mark_dead(3);
        assert_eq!(flushed(&mut window, now), (vec![2], vec![], vec![1, 3]));
        // Tags count from 1 again on the recovered channel; whatever the old one left is lost.
        window.register(4, 4);
        assert_eq!(window.register(1, 10), vec![4]);
        // An old delivery finishing now is not in the window: acked alone (a no-op).
        assert_eq!(window.finish(4, now, 40), Err(40));
        window.finish(1, now, 10).unwrap();
        assert_eq!(flushed(&mut window, now), (vec![10], vec![], vec![]));
    }
}
