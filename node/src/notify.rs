//! Chain notifications, delivered in order on one dedicated thread (Core's validation
//! interface queue).
//!
//! The chain state publishes while it holds its own lock, so events enter the queue in the
//! order they happened; one delivery thread calls every subscriber for each event in turn.
//! Subscribers therefore run outside the chain state's lock and may call back into it (the
//! wallet's `block_connected` asks `get_height`) without deadlock. [`Notifier::sync`] waits
//! until everything published before it has been delivered (`Chain::wait_for_notifications`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use bitcoin::{Block, BlockHash, Transaction};

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
    /// The active tip changed (after a whole connect or reorganisation step).
    UpdatedBlockTip {
        /// The new tip.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
}

/// A subscriber callback.
pub type Callback = Arc<dyn Fn(&ChainEvent) + Send + Sync>;

/// Subscribers by id, each with the sequence number of the first event it receives.
type Subscribers = Arc<Mutex<BTreeMap<u64, (u64, Callback)>>>;

enum Message {
    Event(u64, ChainEvent),
    Sync(mpsc::SyncSender<()>),
}

/// The ordered notification queue with its delivery thread.
pub struct Notifier {
    subscribers: Subscribers,
    next_id: AtomicU64,
    /// Sequence number of the next published event.
    next_event: AtomicU64,
    queue: Option<Sender<Message>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Notifier")
            .field("subscribers", &n)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts the delivery thread.
    pub fn new() -> std::io::Result<Self> {
        let subscribers: Subscribers = Arc::default();
        let (tx, rx) = mpsc::channel::<Message>();
        let subs = Arc::clone(&subscribers);
        let thread = thread::Builder::new()
            .name("notifications".into())
            .spawn(move || {
                for msg in rx {
                    match msg {
                        Message::Event(seq, ev) => {
                            // Snapshot, so callbacks may subscribe or unsubscribe.
                            let list: Vec<Callback> = subs
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .values()
                                .filter(|(from, _)| *from <= seq)
                                .map(|(_, cb)| Arc::clone(cb))
                                .collect();
                            for cb in list {
                                cb(&ev);
                            }
                        }
                        Message::Sync(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })?;
        Ok(Self {
            subscribers,
            next_id: AtomicU64::new(0),
            next_event: AtomicU64::new(0),
            queue: Some(tx),
            thread: Some(thread),
        })
    }

    /// Registers `callback` for every event published from now on (not for events still
    /// queued). Dropping the returned [`Subscription`] unsubscribes.
    pub fn subscribe(&self, callback: Callback) -> Subscription {
        // Relaxed: ids only need to be unique.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // Read under the subscribers lock; publishers number events outside it, so an event
        // published concurrently with this call may or may not be delivered, either is fine.
        let from = self.next_event.load(Ordering::SeqCst);
        subs.insert(id, (from, callback));
        drop(subs);
        Subscription {
            id,
            subscribers: Arc::downgrade(&self.subscribers),
        }
    }

    /// Queues an event for delivery after every event queued before it.
    pub fn publish(&self, event: ChainEvent) {
        if let Some(q) = &self.queue {
            let seq = self.next_event.fetch_add(1, Ordering::SeqCst);
            let _ = q.send(Message::Event(seq, event));
        }
    }

    /// Blocks until every event published before this call has been delivered. Must not be
    /// called from a subscriber callback (it would wait for itself).
    pub fn sync(&self) {
        let Some(q) = &self.queue else { return };
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        if q.send(Message::Sync(done_tx)).is_ok() {
            let _ = done_rx.recv();
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
#[derive(Debug)]
pub struct Subscription {
    id: u64,
    subscribers: std::sync::Weak<Mutex<BTreeMap<u64, (u64, Callback)>>>,
}

impl Subscription {
    /// Unsubscribes now.
    pub fn disconnect(self) {}
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(subs) = self.subscribers.upgrade() {
            subs.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_arrive_in_order_and_unsubscribe_stops_them() {
        let n = Notifier::new().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let sub = n.subscribe(Arc::new(move |ev| {
            if let ChainEvent::UpdatedBlockTip { height, .. } = ev {
                s.lock().unwrap().push(*height);
            }
        }));
        for height in 0..100 {
            n.publish(ChainEvent::UpdatedBlockTip {
                hash: BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
                height,
            });
        }
        n.sync();
        assert_eq!(*seen.lock().unwrap(), (0..100).collect::<Vec<_>>());
        sub.disconnect();
        n.publish(ChainEvent::UpdatedBlockTip {
            hash: BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
            height: 1000,
        });
        n.sync();
        assert_eq!(seen.lock().unwrap().len(), 100);
    }
}
