//! Chain notifications, delivered in order on one dedicated thread (Core's validation
//! interface queue).
//!
//! The chain state publishes while it holds its own lock, so events enter the queue in the
//! order they happened; one delivery thread calls every subscriber for each event in turn.
//! Subscribers therefore run outside the chain state's lock and may call back into it (the
//! wallet's `block_connected` asks `get_height`) without deadlock. [`Notifier::sync`] waits
//! until everything published before it has been delivered (`Chain::wait_for_notifications`).
//!
//! # Invariants
//!
//! - A subscriber receives exactly the events published after [`Notifier::subscribe`]
//!   returned and before it was unsubscribed, in publication order.
//! - Once [`Subscription::disconnect`] (or drop) returns, its callback is not running and
//!   is never called again. A callback may unsubscribe itself (or another subscriber).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::{self, JoinHandle, ThreadId};

use bitcoin::{Block, BlockHash, Transaction};

use crate::chainstate::TipInfo;

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
    /// durable when it is made, so this follows every tip change.
    ChainStateFlushed(Vec<BlockHash>),
}

/// A subscriber callback.
pub type Callback = Arc<dyn Fn(&ChainEvent) + Send + Sync>;

struct Subscriber {
    /// Sequence number of the first event it receives.
    from: u64,
    /// Cleared by unsubscribing; read and written under `gate` (or on the delivery thread).
    active: AtomicBool,
    /// Held while the callback runs, so unsubscribing can wait for a running call.
    gate: Mutex<()>,
    callback: Callback,
}

struct Shared {
    subscribers: Mutex<BTreeMap<u64, Arc<Subscriber>>>,
    next_id: AtomicU64,
    /// Sequence number of the next published event.
    next_event: AtomicU64,
    /// Set once the delivery thread has started.
    delivery_thread: std::sync::OnceLock<ThreadId>,
}

impl Shared {
    fn list(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Subscriber>>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

enum Message {
    Event(u64, ChainEvent),
    Sync(mpsc::SyncSender<()>),
}

/// The ordered notification queue with its delivery thread.
pub struct Notifier {
    shared: Arc<Shared>,
    queue: Option<Sender<Message>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("subscribers", &self.shared.list().len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts the delivery thread.
    pub fn new() -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            subscribers: Mutex::default(),
            next_id: AtomicU64::new(0),
            next_event: AtomicU64::new(0),
            delivery_thread: std::sync::OnceLock::new(),
        });
        let (tx, rx) = mpsc::channel::<Message>();
        let sh = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("notifications".into())
            .spawn(move || {
                let _ = sh.delivery_thread.set(thread::current().id());
                for msg in rx {
                    match msg {
                        Message::Event(seq, ev) => deliver(&sh, seq, &ev),
                        Message::Sync(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        // Record the id here too, so it is known before the thread has run at all.
        let _ = shared.delivery_thread.set(thread.thread().id());
        Ok(Self {
            shared,
            queue: Some(tx),
            thread: Some(thread),
        })
    }

    /// Registers `callback` for every event published from now on (not for events still
    /// queued). Dropping the returned [`Subscription`] unsubscribes.
    pub fn subscribe(&self, callback: Callback) -> Subscription {
        // Relaxed: ids only need to be unique.
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut list = self.shared.list();
        // An event published concurrently with this call may or may not be delivered to the
        // new subscriber; events published after it returns always are.
        let from = self.shared.next_event.load(Ordering::SeqCst);
        let sub = Subscriber {
            from,
            active: AtomicBool::new(true),
            gate: Mutex::new(()),
            callback,
        };
        list.insert(id, Arc::new(sub));
        drop(list);
        Subscription {
            id,
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Queues an event for delivery after every event queued before it.
    pub fn publish(&self, event: ChainEvent) {
        if let Some(q) = &self.queue {
            let seq = self.shared.next_event.fetch_add(1, Ordering::SeqCst);
            let _ = q.send(Message::Event(seq, event));
        }
    }

    /// Blocks until every event published before this call has been delivered. Returns at
    /// once when called from a subscriber callback (waiting there would wait for itself).
    pub fn sync(&self) {
        if self.shared.delivery_thread.get() == Some(&thread::current().id()) {
            return;
        }
        let Some(q) = &self.queue else { return };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if q.send(Message::Sync(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }
}

/// Calls every subscriber registered for event `seq`.
fn deliver(shared: &Shared, seq: u64, ev: &ChainEvent) {
    // Snapshot, so callbacks may subscribe or unsubscribe.
    let list: Vec<Arc<Subscriber>> = shared
        .list()
        .values()
        .filter(|s| s.from <= seq)
        .cloned()
        .collect();
    for sub in list {
        let _running = sub.gate.lock().unwrap_or_else(PoisonError::into_inner);
        // Relaxed: `active` is written under `gate` (held here) or on this thread.
        if sub.active.load(Ordering::Relaxed) {
            (sub.callback)(ev);
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // Closing the queue ends the thread after it delivered what is queued.
        self.queue = None;
        if let Some(t) = self.thread.take()
            && t.thread().id() != thread::current().id()
        {
            let _ = t.join();
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
    /// Unsubscribes now; when it returns the callback is not running and will not run again.
    pub fn disconnect(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Some(sub) = shared.list().remove(&self.id) else {
            return;
        };
        if shared.delivery_thread.get() == Some(&thread::current().id()) {
            // Inside a callback (possibly this subscriber's own, which holds `gate`): the
            // delivery loop checks `active` before every later call.
            sub.active.store(false, Ordering::Relaxed);
        } else {
            let _wait_for_running_call = sub.gate.lock().unwrap_or_else(PoisonError::into_inner);
            sub.active.store(false, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn tip(height: u32) -> ChainEvent {
        ChainEvent::UpdatedBlockTip(TipInfo {
            hash: BlockHash::all_zeros(),
            height,
            time: 0,
            median_time_past: 0,
            chain_work: bitcoin::Work::from_be_bytes([0; 32]),
        })
    }

    fn recorder(n: &Notifier) -> (Arc<Mutex<Vec<u32>>>, Subscription) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let sub = n.subscribe(Arc::new(move |ev| {
            if let ChainEvent::UpdatedBlockTip(t) = ev {
                s.lock().unwrap().push(t.height);
            }
        }));
        (seen, sub)
    }

    #[test]
    fn events_arrive_in_order_only_after_subscribing_and_stop_at_disconnect() {
        let n = Notifier::new().unwrap();
        let (early, _early_sub) = recorder(&n);
        n.publish(tip(0));
        let (seen, sub) = recorder(&n);
        for height in 1..100 {
            n.publish(tip(height));
        }
        n.sync();
        assert_eq!(*seen.lock().unwrap(), (1..100).collect::<Vec<_>>());
        assert_eq!(early.lock().unwrap().len(), 100);
        sub.disconnect();
        n.publish(tip(1000));
        n.sync();
        assert_eq!(seen.lock().unwrap().len(), 99);
    }

    #[test]
    fn a_callback_may_unsubscribe_itself_and_sync_from_a_callback_returns() {
        let n = Arc::new(Notifier::new().unwrap());
        let slot: Arc<Mutex<Option<Subscription>>> = Arc::default();
        let calls = Arc::new(AtomicU64::new(0));
        let (s, c, n2) = (Arc::clone(&slot), Arc::clone(&calls), Arc::clone(&n));
        let sub = n.subscribe(Arc::new(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            n2.sync();
            drop(s.lock().unwrap().take());
        }));
        *slot.lock().unwrap() = Some(sub);
        n.publish(tip(1));
        n.publish(tip(2));
        n.sync();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
