//! Chain notifications, delivered in order to each subscriber on its own thread (Core's
//! validation interface queue, with one queue per subscriber).
//!
//! The chain state publishes while it holds its own lock, so events are queued in the order
//! they happened. Each subscriber has a bounded queue and a delivery thread that calls it
//! for one event at a time, in that order (an [`interfaces::delivery::Delivery`]).
//! Subscribers therefore run outside the chain state's lock and may call back into it (the
//! wallet's `block_connected` asks `get_height`) without deadlock, and a slow subscriber
//! delays only itself.
//!
//! # Slow subscribers
//!
//! Publishing never blocks. A subscriber that falls more than [`MAX_QUEUED_EVENTS`] events
//! or [`MAX_QUEUED_BYTES`] bytes (blocks and transactions counted at their serialized size)
//! behind is dropped: its queue is discarded, it receives nothing more, and the reason is
//! logged. Memory held for subscribers is thus bounded however a peer behaves.
//!
//! # Invariants
//!
//! - A subscriber receives exactly the events published after [`Notifier::subscribe`]
//!   returned and before it was unsubscribed (or dropped for falling behind), in
//!   publication order, one at a time.
//! - Once [`Subscription::disconnect`] (or drop) returns, no further event is taken for the
//!   callback; one taken just before may still be delivered, its callback running or even
//!   beginning after the return (as with Core's `UnregisterValidationInterface`). Unsubscribing never waits for a callback, so it cannot
//!   deadlock with one (a wallet may disconnect from inside its notification handler, or
//!   while holding a lock its handler takes).
//! - [`Notifier::sync`] returns once every subscriber has handled every event published
//!   before the call (or was dropped).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use bitcoin::{Block, BlockHash, Transaction};
use interfaces::delivery::{Delivery, Limits, Pushed};

use crate::chainstate::TipInfo;

/// Most events a subscriber may have waiting before it is dropped.
pub const MAX_QUEUED_EVENTS: usize = 100_000;
/// Most bytes of blocks and transactions a subscriber may have waiting before it is dropped.
pub const MAX_QUEUED_BYTES: usize = 256 << 20;
/// Most subscribers at once, each with its delivery thread. A peer that keeps subscribing
/// (and holding on to its handlers) is refused past this many, instead of the node running
/// out of threads for everything else.
pub const MAX_SUBSCRIBERS: usize = 128;

/// Why [`Notifier::subscribe`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum SubscribeError {
    /// [`MAX_SUBSCRIBERS`] are subscribed already.
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// The delivery thread could not be started.
    Thread(std::io::Error),
}

impl fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooMany { limit } => {
                write!(f, "too many notification subscribers (limit {limit})")
            }
            Self::Thread(e) => write!(f, "cannot start a notification thread: {e}"),
        }
    }
}

impl std::error::Error for SubscribeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TooMany { .. } => None,
            Self::Thread(e) => Some(e),
        }
    }
}

/// Why a transaction left the mempool (Core's `MemPoolRemovalReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemovalReason {
    /// It was included in a connected block.
    Block,
    /// A transaction in a connected block spent one of the same outputs.
    Conflict,
    /// It is no longer valid after a reorganisation.
    Reorg,
}

/// One chain event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainEvent {
    /// A transaction entered the mempool.
    TransactionAddedToMempool(Arc<Transaction>),
    /// A transaction left the mempool.
    TransactionRemovedFromMempool(Arc<Transaction>, RemovalReason),
    /// A block was connected to the active chain at `height`.
    BlockConnected {
        /// The block.
        block: Arc<Block>,
        /// Its height.
        height: u32,
    },
    /// A block was disconnected from the active chain; it was at `height`.
    BlockDisconnected {
        /// The block.
        block: Arc<Block>,
        /// Its former height.
        height: u32,
    },
    /// The active tip changed (after a whole connect or reorganisation step); the new tip.
    UpdatedBlockTip(TipInfo),
    /// The chain state up to this locator's first block is on disk. Every change is
    /// durable when it is made, so this follows every tip change. The locator is shared:
    /// every subscriber's queue holds the same one.
    ChainStateFlushed(Arc<[BlockHash]>),
}

impl ChainEvent {
    /// Bytes the event stands for in a subscriber's queue budget.
    fn weight(&self) -> usize {
        64 + match self {
            Self::TransactionAddedToMempool(tx) | Self::TransactionRemovedFromMempool(tx, _) => {
                tx.total_size()
            }
            Self::BlockConnected { block, .. } | Self::BlockDisconnected { block, .. } => {
                block.total_size()
            }
            Self::UpdatedBlockTip(_) => 0,
            // Shared like blocks and transactions, and counted in full like them: the
            // budget bounds what a subscriber keeps alive.
            Self::ChainStateFlushed(locator) => locator.len() * 32,
        }
    }
}

/// A subscriber callback.
pub type Callback = Arc<dyn Fn(&ChainEvent) + Send + Sync>;

/// The delivery limits of every subscriber (see the module docs).
const LIMITS: Limits = Limits {
    events: MAX_QUEUED_EVENTS,
    bytes: MAX_QUEUED_BYTES,
};

struct Subscriber {
    id: u64,
    delivery: Arc<Delivery<ChainEvent>>,
}

struct Shared {
    subscribers: Mutex<BTreeMap<u64, Arc<Subscriber>>>,
    next_id: AtomicU64,
}

impl Shared {
    fn list(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Subscriber>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The notification fan-out: numbers events and queues them for every subscriber.
pub struct Notifier {
    shared: Arc<Shared>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("subscribers", &self.shared.list().len())
            .finish_non_exhaustive()
    }
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    /// A notifier without subscribers.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                subscribers: Mutex::default(),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Registers `callback` for every event published from now on, on a new delivery
    /// thread. Dropping the returned [`Subscription`] unsubscribes. Refused when
    /// [`MAX_SUBSCRIBERS`] are subscribed.
    pub fn subscribe(&self, callback: Callback) -> Result<Subscription, SubscribeError> {
        // Relaxed: ids only need to be unique.
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut list = self.shared.list();
        if list.len() >= MAX_SUBSCRIBERS {
            return Err(SubscribeError::TooMany {
                limit: MAX_SUBSCRIBERS,
            });
        }
        // Added under the list lock, which `publish` holds while it queues: the subscriber
        // gets exactly the events published from here on.
        let delivery = Delivery::start(format!("notify-{id}"), LIMITS, move |ev: ChainEvent| {
            callback(&ev);
        })
        .map_err(SubscribeError::Thread)?;
        let sub = Arc::new(Subscriber { id, delivery });
        list.insert(id, sub);
        Ok(Subscription {
            id,
            shared: Arc::downgrade(&self.shared),
        })
    }

    /// Queues an event for every subscriber, after every event published before it. Never
    /// blocks; a subscriber too far behind is dropped (see the module docs).
    pub fn publish(&self, event: ChainEvent) {
        // Under the list lock, so that every subscriber gets events in the same order.
        let mut list = self.shared.list();
        let weight = event.weight();
        let mut overflowed = Vec::new();
        let mut closed = Vec::new();
        for sub in list.values() {
            match sub.delivery.push(event.clone(), weight) {
                Pushed::Queued => {}
                Pushed::Overflow => overflowed.push(sub.id),
                // Its callback panicked: it hears nothing more, and gives its place back.
                Pushed::Closed => closed.push(sub.id),
            }
        }
        for id in overflowed {
            if let Some(sub) = list.remove(&id) {
                tracing::warn!(
                    subscriber = id,
                    "notification subscriber dropped: more than {MAX_QUEUED_EVENTS} events or \
                     {MAX_QUEUED_BYTES} bytes undelivered"
                );
                sub.delivery.close();
            }
        }
        for id in closed {
            list.remove(&id);
        }
    }

    /// Blocks until every subscriber has handled every event published before this call.
    /// A subscriber's own thread skips waiting for itself (it would wait forever).
    pub fn sync(&self) {
        self.sync_where(|_| true);
    }

    /// As [`Self::sync`], for the subscribers `ids` names only (those still subscribed).
    pub fn sync_only(&self, ids: &[SubscriptionId]) {
        self.sync_where(|id| ids.contains(&SubscriptionId(id)));
    }

    fn sync_where(&self, wanted: impl Fn(u64) -> bool) {
        // Publishing queues under the list lock: every event published before this call is
        // in the queues by the time the list is read.
        let subs: Vec<Arc<Subscriber>> = self
            .shared
            .list()
            .values()
            .filter(|sub| wanted(sub.id))
            .cloned()
            .collect();
        for sub in subs {
            sub.delivery.sync();
        }
    }
}

/// Names a [`Subscription`] to [`Notifier::sync_only`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionId(u64);

impl Drop for Notifier {
    fn drop(&mut self) {
        // Ends every delivery thread; each finishes the call it is in, if any.
        let subs: Vec<Arc<Subscriber>> = std::mem::take(&mut *self.shared.list())
            .into_values()
            .collect();
        for sub in subs {
            sub.delivery.close();
        }
    }
}

/// A registered subscriber; dropping it (or [`Subscription::disconnect`]) unsubscribes.
pub struct Subscription {
    id: u64,
    shared: Weak<Shared>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Subscription {
    /// Unsubscribes now: no event is taken for the callback after it returns (see the
    /// module docs for one taken just before).
    pub fn disconnect(self) {}

    /// Its name for [`Notifier::sync_only`].
    pub fn id(&self) -> SubscriptionId {
        SubscriptionId(self.id)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let sub = shared.list().remove(&self.id);
        if let Some(sub) = sub {
            sub.delivery.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use std::sync::Condvar;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    fn tip(height: u32) -> ChainEvent {
        ChainEvent::UpdatedBlockTip(TipInfo {
            hash: BlockHash::all_zeros(),
            height,
            time: 0,
            median_time_past: 0,
            chain_work: bitcoin::Work::from_be_bytes([0; 32]),
        })
    }

    /// Aborts the test process if the test still runs a minute from now: a deadlock must
    /// fail the run, not hang it. Dropping the guard (when the test ends) calls it off, so
    /// that one test's minute does not bound the tests that run after it.
    #[must_use = "the watchdog is called off when the guard is dropped"]
    fn watchdog(what: &'static str) -> std::sync::mpsc::Sender<()> {
        let (done, called_off) = std::sync::mpsc::channel::<()>();
        thread::spawn(move || {
            let minute = std::time::Duration::from_secs(60);
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = called_off.recv_timeout(minute)
            {
                // Straight to stderr: libtest captures eprintln! in test threads, and the
                // abort below would throw the capture away.
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "watchdog: {what}");
                std::process::abort();
            }
        });
        done
    }

    fn recorder(n: &Notifier) -> (Arc<Mutex<Vec<u32>>>, Subscription) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let sub = n
            .subscribe(Arc::new(move |ev| {
                if let ChainEvent::UpdatedBlockTip(t) = ev {
                    s.lock().unwrap().push(t.height);
                }
            }))
            .unwrap();
        (seen, sub)
    }

    #[test]
    fn subscribers_past_the_limit_are_refused_until_one_leaves() {
        let _watchdog = watchdog("subscribers past the limit");
        let n = Notifier::new();
        let subs: Vec<Subscription> = (0..MAX_SUBSCRIBERS)
            .map(|_| n.subscribe(Arc::new(|_| {})).unwrap())
            .collect();
        let refused = n.subscribe(Arc::new(|_| {})).unwrap_err();
        assert!(matches!(
            refused,
            SubscribeError::TooMany {
                limit: MAX_SUBSCRIBERS
            }
        ));
        assert_eq!(
            refused.to_string(),
            "too many notification subscribers (limit 128)"
        );
        // Events still reach everyone subscribed.
        n.publish(tip(1));
        n.sync();
        drop(subs.into_iter().next());
        let (seen, _sub) = recorder(&n);
        n.publish(tip(2));
        n.sync();
        assert_eq!(*seen.lock().unwrap(), vec![2]);
    }

    #[test]
    fn a_subscriber_whose_callback_panicked_gives_its_place_back() {
        let _watchdog = watchdog("a panicking subscriber");
        let n = Notifier::new();
        let _panics = n
            .subscribe(Arc::new(|_| panic!("a subscriber's bug")))
            .unwrap();
        n.publish(tip(1));
        n.sync();
        // The next event finds it closed and takes it off the list.
        n.publish(tip(2));
        let subs: Vec<Subscription> = (0..MAX_SUBSCRIBERS)
            .map(|_| n.subscribe(Arc::new(|_| {})).unwrap())
            .collect();
        assert_eq!(subs.len(), MAX_SUBSCRIBERS);
    }

    #[test]
    fn events_arrive_in_order_only_after_subscribing_and_stop_at_disconnect() {
        let n = Notifier::new();
        let (early, _early_sub) = recorder(&n);
        n.publish(tip(0));
        let (seen, sub) = recorder(&n);
        for height in 1..100 {
            n.publish(tip(height));
        }
        n.sync();
        assert_eq!(*seen.lock().unwrap(), (1..100).collect::<Vec<_>>());
        assert_eq!(*early.lock().unwrap(), (0..100).collect::<Vec<_>>());
        sub.disconnect();
        n.publish(tip(1000));
        n.sync();
        assert_eq!(seen.lock().unwrap().len(), 99);
    }

    /// Publishers and `sync` callers on several threads at once, against a subscriber
    /// that is sometimes busy and sometimes waiting: the wake-ups that are skipped when
    /// nobody waits must never leave a waiter asleep (a lost one hangs this test).
    #[test]
    fn concurrent_publishers_and_syncs_never_miss_a_wake_up() {
        let _dog = watchdog("a notifier wake-up was lost");
        let n = Arc::new(Notifier::new());
        let count = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&count);
        let _sub = n
            .subscribe(Arc::new(move |_| {
                if c.fetch_add(1, Ordering::Relaxed).is_multiple_of(7) {
                    thread::yield_now();
                }
            }))
            .unwrap();
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let n = Arc::clone(&n);
                thread::spawn(move || {
                    for round in 0..200u32 {
                        for height in 0..5 {
                            n.publish(tip(round * 5 + height));
                        }
                        n.sync();
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        n.sync();
        assert_eq!(count.load(Ordering::Relaxed), 4 * 200 * 5);
    }

    #[test]
    fn a_callback_may_unsubscribe_itself_and_sync_from_a_callback_returns() {
        let n = Arc::new(Notifier::new());
        let slot: Arc<Mutex<Option<Subscription>>> = Arc::default();
        let calls = Arc::new(AtomicU64::new(0));
        let (s, c, n2) = (Arc::clone(&slot), Arc::clone(&calls), Arc::downgrade(&n));
        let sub = n
            .subscribe(Arc::new(move |_| {
                c.fetch_add(1, Ordering::SeqCst);
                if let Some(n) = n2.upgrade() {
                    n.sync();
                }
                drop(s.lock().unwrap().take());
            }))
            .unwrap();
        *slot.lock().unwrap() = Some(sub);
        n.publish(tip(1));
        n.publish(tip(2));
        n.sync();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_stuck_subscriber_delays_nobody_and_is_dropped_when_too_far_behind() {
        let n = Notifier::new();
        let release = Arc::new((Mutex::new(false), Condvar::new()));
        let entered = Arc::new(AtomicBool::new(false));
        let (r, e) = (Arc::clone(&release), Arc::clone(&entered));
        let _stuck = n
            .subscribe(Arc::new(move |_| {
                e.store(true, Ordering::SeqCst);
                let (m, cv) = &*r;
                let mut go = m.lock().unwrap();
                while !*go {
                    go = cv.wait(go).unwrap();
                }
            }))
            .unwrap();
        let (seen, _sub) = recorder(&n);
        for h in 0..=MAX_QUEUED_EVENTS as u32 + 1 {
            n.publish(tip(h));
        }
        // The healthy subscriber got everything although the other never returned; the
        // stuck one was dropped once its queue overflowed, so sync does not wait for it.
        n.sync();
        assert_eq!(seen.lock().unwrap().len(), MAX_QUEUED_EVENTS + 2);
        assert!(entered.load(Ordering::SeqCst));
        assert_eq!(n.shared.list().len(), 1);
        let (m, cv) = &*release;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }

    #[test]
    fn disconnect_does_not_wait_for_a_callback_blocked_by_the_disconnecting_thread() {
        let _dog = watchdog("disconnect deadlocked");
        let n = Notifier::new();
        let wallet_lock = Arc::new(Mutex::new(()));
        let entered = Arc::new((Mutex::new(false), Condvar::new()));
        let (l, e) = (Arc::clone(&wallet_lock), Arc::clone(&entered));
        let sub = n
            .subscribe(Arc::new(move |_| {
                *e.0.lock().unwrap() = true;
                e.1.notify_all();
                drop(l.lock().unwrap()); // the handler needs the wallet's lock
            }))
            .unwrap();
        let held = wallet_lock.lock().unwrap(); // the wallet unloads, holding its lock
        n.publish(tip(1));
        let mut started = entered.0.lock().unwrap();
        while !*started {
            started = entered.1.wait(started).unwrap();
        }
        drop(started);
        sub.disconnect(); // returns although the handler is stuck on `held`
        drop(held);
        n.publish(tip(2));
        n.sync();
    }
}
